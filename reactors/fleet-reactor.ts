// Keeps one connection, and one cluster reactor, per registered cluster: made when a cluster is registered, made
// again when its credentials or API server change, and let go of the moment it is deregistered.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { clusters } from '../commands/aggregates.js';
import type { CommandHandler } from '../commands/command-handler.js';
import { clusterEvents, type ClusterSpec, type Credentials } from '../domain/cluster.js';
import type { RecordedEvent } from '../domain/event-store.js';
import { ClusterError, type ClusterDriver } from './cluster-driver.js';
import { reportBy } from './reaction-context.js';
import { everyEventOf, type Reactor } from './reactor-runtime.js';

export interface FleetReactorDeps {
  handler: CommandHandler;
  logger: Logger;
  /**
   * A driver for the cluster, from its recorded credentials, once they pass the credentials policy. A refusal, or
   * credentials that cannot work, is a ClusterError that is not transient.
   */
  connect(clusterId: string, credentials: Credentials): Promise<ClusterDriver>;
  /** Starts following the cluster (adds a ClusterReactor to the runtime). */
  follow(clusterId: string, driver: ClusterDriver): void;
  /** Stops following it: its cluster reactor leaves the runtime and its driver is closed. */
  unfollow(clusterId: string): Promise<void>;
}

/** What a connection was made from; a change to either means connecting again. */
type Endpoint = Pick<ClusterSpec, 'apiServer' | 'credentials'>;

export const FLEET_EVENTS = ['ClusterRegistered', 'ClusterUpdated', 'ClusterDeregistered'] as const;

export class FleetReactor implements Reactor {
  readonly name = 'fleet';
  readonly eventTypes = FLEET_EVENTS;
  private readonly connected = new Map<string, Endpoint>();

  constructor(private readonly deps: FleetReactorDeps) {}

  /** Clusters registered before this instance started: a handful, read from the start of the log. */
  async start(): Promise<void> {
    const store = this.deps.handler.store;
    const seen = new Set<string>();
    let failure: unknown;
    for await (const event of everyEventOf(store, ['ClusterRegistered'])) {
      const clusterId = clusterIdOf(event);
      if (seen.has(clusterId)) continue;
      seen.add(clusterId);
      // One cluster that cannot be reached yet keeps none of the others waiting; the runtime starts this again.
      await this.reconcile(clusterId).catch((error: unknown) => (failure ??= error));
    }
    if (failure) throw failure;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.connected.keys()].map((clusterId) => this.disconnect(clusterId, 'the fleet reactor stopped')));
  }

  async handle(event: RecordedEvent): Promise<void> {
    await this.reconcile(clusterIdOf(event));
  }

  /** Brings the cluster's connection in line with the cluster as recorded now, whichever event led here. */
  private async reconcile(clusterId: string): Promise<void> {
    const { state } = await this.deps.handler.loadState(clusters, clusterId);
    const wanted: Endpoint | undefined =
      state.status === 'absent' || state.status === 'deregistered' ? undefined : { apiServer: state.spec.apiServer, credentials: state.spec.credentials };
    const current = this.connected.get(clusterId);
    if (current && wanted && isDeepStrictEqual(current, wanted)) return;
    if (current) await this.disconnect(clusterId, wanted ? 'its credentials or API server changed' : 'it was deregistered');
    if (!wanted) return;

    let driver: ClusterDriver;
    try {
      driver = await this.deps.connect(clusterId, wanted.credentials);
    } catch (error) {
      if (!(error instanceof ClusterError) || error.transient) throw error;
      // Refused or unusable credentials are an operator's to fix: a change to the cluster brings them here again.
      this.deps.logger.error(
        { clusterId, source: wanted.credentials.source, reason: error.message },
        'not connecting to the cluster: its credentials are refused or do not work; update the cluster to try again',
      );
      await this.deps.handler.execute(clusters, clusterId, { type: 'RecordClusterUnreachable', clusterId, cause: error.message }, reportBy(this.name));
      return;
    }
    this.connected.set(clusterId, wanted);
    this.deps.follow(clusterId, driver);
    this.deps.logger.info({ clusterId, source: wanted.credentials.source }, 'connected to the cluster');
  }

  private async disconnect(clusterId: string, why: string): Promise<void> {
    this.connected.delete(clusterId);
    await this.deps.unfollow(clusterId);
    this.deps.logger.info({ clusterId, why }, 'let go of the cluster');
  }
}

function clusterIdOf(event: RecordedEvent): string {
  return clusterEvents.parse(event.type, event.schemaVersion, event.data).data.clusterId;
}
