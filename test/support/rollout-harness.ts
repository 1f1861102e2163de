// Canary rollouts end to end, for tests and the rollout bench: the cluster simulator driven by the real Kubernetes
// client, an event store on PGlite, the cluster reactor, the timer service and the rollout reactor under one reactor
// runtime (started again at will, as after a crash), and a real Prometheus scraping the simulator's pod metrics.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { PrometheusApi } from '../../adapters/prometheus/prometheus-api.js';
import { deployments } from '../../commands/aggregates.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands, rollouts } from '../../commands/deployment-commands.js';
import { systemClock } from '../../commands/clock.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import type { CanaryStep, DeploymentCommand, PlacedDeployment } from '../../domain/deployment.js';
import type { EventStore, RecordedEvent } from '../../domain/event-store.js';
import { rolloutIdOf, type Rollout } from '../../domain/rollout.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { ClusterReactor } from '../../reactors/cluster-reactor.js';
import { createPrometheusMetricProvider } from '../../reactors/prometheus-metric-provider.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { RolloutReactor } from '../../reactors/rollout-reactor.js';
import { TimerService } from '../../reactors/timers.js';
import { eventually } from './eventually.js';
import { createScratchDatabase, TEST_DATABASE_URL, type ScratchDatabase } from './postgres.js';
import { startPrometheus, type RunningPrometheus } from './prometheus.js';

export const STABLE_IMAGE = 'registry.local/llm:1.0';
/** The simulator serves a pod's metrics by its image tag: `-slow` breaks the latency SLO below. */
export const GOOD_IMAGE = 'registry.local/llm:1.1';
export const SLOW_IMAGE = 'registry.local/llm:1.1-slow';
/** p99 of the simulator's healthy pods is about 0.99 s, of its slow ones about 4.96 s. */
export const LATENCY_SLO_MS = 1500;

/**
 * Analysis as short as the 1 s scrape allows: a measurement a second, rate() over 4 s. The window holds four scrapes,
 * as Prometheus advises: over 2 s, a scrape that came late (a busy machine) left one sample in the window, rate() had
 * nothing to say, and three such readings in a row paused the rollout for a person instead of judging it. The first
 * measurement waits until the canary's series cover a whole window: rate() over a series younger than its window
 * reads too low, and would fail a good canary's throughput against the stable side's.
 */
export function quickAnalysis(count = 2): CanaryStep {
  return { analysis: { template: 'inference', interval: '1s', count, rateWindow: '4s', inconclusiveLimit: 2, initialDelay: '5s' } };
}

export interface Reacting {
  runtime: ReactorRuntime;
  timers: TimerService;
  rollouts: RolloutReactor;
}

export interface RolloutHarness {
  sim: ClusterSimulator;
  /** The simulator's kubeconfig, for the tests' own clients (`h.kubeConfig.makeApiClient(AppsV1Api)`). */
  kubeConfig: KubeConfig;
  handler: CommandHandler;
  store: EventStore;
  /** The deployment commands people send (promote and abort among them), judged by an empty policy set. */
  commands: DeploymentCommands;
  prometheus: RunningPrometheus;
  reacting: Reacting;
  /** Stops the reactors (as a crash would leave the log) and starts fresh instances on the same store. */
  restart(): Promise<void>;
  /** Creates a deployment of `image` with a canary strategy and waits until it is Available (a first deploy just deploys). */
  deploy(namespace: string, steps: CanaryStep[], options?: { replicas?: number; name?: string }): Promise<string>;
  /** Moves the deployment to `image`: its revision 2, rolled out as a canary. */
  update(deploymentId: string, image: string): Promise<void>;
  /** Scales the deployment, as an operator would (the cluster active). */
  scale(deploymentId: string, replicas: number): Promise<void>;
  deployment(deploymentId: string): Promise<PlacedDeployment>;
  rollout(deploymentId: string, revision: number): Promise<Rollout>;
  rolloutEvents(deploymentId: string, revision: number): Promise<RecordedEvent[]>;
  deploymentEvents(deploymentId: string): Promise<RecordedEvent[]>;
  /** Waits until `probe` passes, failing after `timeoutMs` (only a broken run takes that long). */
  until<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

const CLUSTER_ID = '0c0c0c0c-1111-4a4a-8a8a-00000000c1a5';

function byOperator(): CommandContext {
  const id = randomUUID();
  return { actor: { id: 'test-operator', kind: 'user' }, correlationId: id, causationId: id };
}

export async function startRolloutHarness(
  options: { logger?: Logger; progressDeadlineSeconds?: number; /** How long `until` waits by default (30 s). */ patienceMs?: number } = {},
): Promise<RolloutHarness> {
  const logger = options.logger ?? pino({ level: process.env['TEST_LOG'] ?? 'silent' });
  const sim = await startClusterSimulator({ podReadyAfterMs: 100, controllerIntervalMs: 25, bookmarkIntervalMs: 150 });
  const dir = await mkdtemp(path.join(tmpdir(), 'sentinel-rollout-'));
  const caFile = path.join(dir, 'ca.pem');
  await writeFile(caFile, sim.caPem);
  const prometheus = await startPrometheus({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    scrape_configs: [
      {
        job_name: 'sentinel-simulator',
        scheme: 'https',
        metrics_path: '/sim/metrics',
        tls_config: { ca_file: caFile },
        authorization: { credentials: sim.token },
        static_configs: [{ targets: [new URL(sim.url).host] }],
      },
    ],
  });
  // PostgreSQL when the run has one (a scratch database, dropped afterwards); embedded PGlite otherwise.
  const scratch: ScratchDatabase | undefined = TEST_DATABASE_URL ? await createScratchDatabase() : undefined;
  const db: Database = scratch ? openPostgres(scratch.url) : await openPglite();
  const store = await PostgresEventStore.open(db);
  await migrateSentinel(db.knex);
  const handler = new CommandHandler(store);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sim.kubeconfig());
  const api = new PrometheusApi(prometheus.url);
  const progressDeadlineSeconds = options.progressDeadlineSeconds ?? 20;
  const workloads = new Map<string, { spec: WorkloadSpec; workloadId: string }>();
  const commands = new DeploymentCommands(handler, systemClock, new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth }));

  const react = (): Reacting => {
    const driver = new KubeClusterDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 100, requestTimeoutMs: 5_000 } });
    const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, standbyRetryMs: 100, retryBaseMs: 50, retryMaxMs: 1_000 });
    const timers = new TimerService(handler, { logger });
    const rolloutReactor = new RolloutReactor(handler, timers, {
      logger,
      driverFor: async () => driver,
      providers: { prometheus: createPrometheusMetricProvider((promql) => api.instantQuery(promql)) },
      progressDeadlineSeconds,
      pollMs: 50,
      judged: (action, deploymentId, context) => commands.judgedObservation(action, deploymentId, context),
      settled: (deploymentId, context) => commands.settledObservation(deploymentId, context),
    });
    runtime.add(
      new ClusterReactor(CLUSTER_ID, driver, handler, {
        logger,
        progressDeadlineSeconds,
        judged: (action, deploymentId, context) => commands.judgedObservation(action, deploymentId, context),
        settled: (deploymentId, context) => commands.settledObservation(deploymentId, context),
      }),
    );
    runtime.add(timers);
    runtime.add(rolloutReactor);
    return { runtime, timers, rollouts: rolloutReactor };
  };

  const execute = (command: DeploymentCommand) => handler.execute(deployments, command.deploymentId, command, byOperator());
  const harness: RolloutHarness = {
    sim,
    kubeConfig,
    handler,
    store,
    commands,
    prometheus,
    reacting: react(),
    async restart() {
      await harness.reacting.runtime.stop();
      harness.reacting = react();
    },
    async deploy(namespace, steps, { replicas = 2, name = 'llm' } = {}) {
      const deploymentId = randomUUID();
      const spec: WorkloadSpec = {
        name,
        namespace,
        type: 'inference',
        image: STABLE_IMAGE,
        env: {},
        resources: { cpu: '100m', memory: '128Mi' },
        labels: {},
        slo: { latencyP99Ms: LATENCY_SLO_MS },
      };
      const workloadId = randomUUID();
      workloads.set(deploymentId, { spec, workloadId });
      await execute({
        type: 'CreateDeployment',
        deploymentId,
        workload: { id: workloadId, status: 'active', specRevision: 1, spec: spec as unknown as Record<string, unknown> },
        cluster: { id: CLUSTER_ID, status: 'active', gpuSkus: [] },
        replicas,
        strategy: { type: 'canary', steps },
        driftPolicy: 'revert',
      });
      await harness.until(`deployment ${deploymentId} Available`, () => harness.deployment(deploymentId), (d) => d.status === 'Available' && d.currentRevision === 1);
      return deploymentId;
    },
    async update(deploymentId, image) {
      const { spec } = workloads.get(deploymentId)!;
      await execute({
        type: 'UpdateDeployment',
        deploymentId,
        workload: { status: 'active', specRevision: 2, spec: { ...spec, image } as unknown as Record<string, unknown> },
        workloadRevision: 2,
      });
    },
    async scale(deploymentId, replicas) {
      await execute({ type: 'ScaleDeployment', deploymentId, replicas, cluster: { status: 'active' } });
    },
    async deployment(deploymentId) {
      const { state } = await handler.loadState(deployments, deploymentId);
      if (state.status === 'absent') throw new Error(`deployment ${deploymentId} does not exist`);
      return state;
    },
    async rollout(deploymentId, revision) {
      return (await handler.loadState(rollouts, rolloutIdOf(deploymentId, revision))).state;
    },
    async rolloutEvents(deploymentId, revision) {
      return (await handler.load(rollouts, rolloutIdOf(deploymentId, revision))).recorded;
    },
    async deploymentEvents(deploymentId) {
      return (await handler.load(deployments, deploymentId)).recorded;
    },
    until: (what, probe, done, timeoutMs = options.patienceMs ?? 30_000) => eventually(what, probe, done, timeoutMs),
    async stop() {
      await harness.reacting.runtime.stop();
      await store.close();
      await db.close();
      await scratch?.drop();
      await prometheus.stop();
      await sim.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return harness;
}
