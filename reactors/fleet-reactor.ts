// Starts a cluster reactor for every registered cluster, including those registered while Sentinel runs.
import type { Logger } from 'pino';
import { clusters } from '../commands/aggregates.js';
import type { CommandHandler } from '../commands/command-handler.js';
import type { Credentials } from '../domain/cluster.js';
import type { RecordedEvent } from '../domain/event-store.js';
import type { ClusterDriver } from './cluster-driver.js';
import { everyEventOf, type Reactor } from './reactor-runtime.js';

export interface FleetReactorDeps {
  handler: CommandHandler;
  logger: Logger;
  /** A driver for the cluster, from its recorded credentials. */
  connect(clusterId: string, credentials: Credentials): Promise<ClusterDriver>;
  /** Starts following the cluster (adds a ClusterReactor to the runtime). */
  follow(clusterId: string, driver: ClusterDriver): void;
}

export class FleetReactor implements Reactor {
  readonly name = 'fleet';
  readonly eventTypes = ['ClusterRegistered'];
  private readonly followed = new Set<string>();

  constructor(private readonly deps: FleetReactorDeps) {}

  /** Clusters registered before this instance started: a handful, read from the start of the log. */
  async start(): Promise<void> {
    const store = this.deps.handler.store;
    for await (const event of everyEventOf(store, ['ClusterRegistered'])) await this.handle(event);
  }

  async handle(event: RecordedEvent): Promise<void> {
    const { clusterId } = event.data as { clusterId: string };
    if (this.followed.has(clusterId)) return;
    const { state } = await this.deps.handler.load(clusters, clusterId);
    if (state.status === 'absent' || state.status === 'deregistered') return;
    try {
      const driver = await this.deps.connect(clusterId, state.spec.credentials);
      this.followed.add(clusterId);
      this.deps.follow(clusterId, driver);
    } catch (error) {
      // Credentials that do not work (a missing file, a bad kubeconfig) are an operator's to fix; say so and go on.
      this.deps.logger.error({ err: error, clusterId }, 'cannot connect to the cluster; its changes wait until Sentinel restarts with working credentials');
    }
  }
}
