// Wiring of the reactors: a simulated cluster on the embedded default, a cluster reactor per registered cluster,
// and the plan reactor, all under one reactor runtime; and the kubeconfig policy every cluster connection passes.
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { v5 as uuidv5 } from 'uuid';
import { createKubeClusterDriver } from '../adapters/kubernetes/kube-driver.js';
import { KubeconfigPolicy } from '../adapters/kubernetes/kubeconfig-policy.js';
import { startClusterSimulator, type ClusterSimulator } from '../adapters/kubernetes/simulator/index.js';
import { KafkaEventLog } from '../adapters/kafka/kafka-event-log.js';
import { KafkaPublisher } from '../reactors/kafka-publisher.js';
import type { Database } from '../adapters/postgres/database.js';
import { clusters } from '../commands/aggregates.js';
import { ClusterCommands, NodeDrainCommands } from '../commands/cluster-commands.js';
import type { Clock } from '../commands/clock.js';
import type { CommandContext, CommandHandler } from '../commands/command-handler.js';
import { DeploymentCommands } from '../commands/deployment-commands.js';
import type { PolicyEngine } from '../commands/policy-engine.js';
import type { SecretStore } from '../commands/secrets.js';
import type { EventStore } from '../domain/event-store.js';
import { ClusterError, type ClusterDriver } from '../reactors/cluster-driver.js';
import { ClusterReactor } from '../reactors/cluster-reactor.js';
import { FleetReactor } from '../reactors/fleet-reactor.js';
import { LedgerAuditor } from '../reactors/ledger-audit.js';
import { PlanExpiry } from '../reactors/plan-expiry.js';
import { PlanReactor } from '../reactors/plan-reactor.js';
import { PrometheusApi } from '../adapters/prometheus/prometheus-api.js';
import { prometheusPlanMetrics } from '../adapters/prometheus/plan-metrics.js';
import type { MetricProvider } from '../reactors/analysis-runner.js';
import { createPrometheusMetricProvider } from '../reactors/prometheus-metric-provider.js';
import { RolloutReactor } from '../reactors/rollout-reactor.js';
import { createTelemetryMetricProvider } from '../reactors/telemetry-metric-provider.js';
import { SampleStore } from '../telemetry/sample-store.js';
import { REACTOR_ACTOR } from '../reactors/reaction-context.js';
import { ReactorRuntime } from '../reactors/reactor-runtime.js';
import { TimerService } from '../reactors/timers.js';
import type { ProjectionLease } from '../projections/runtime.js';
import type { Config } from './config.js';

export interface ReactorDeps {
  config: Config;
  db: Database;
  store: EventStore;
  handler: CommandHandler;
  policy: PolicyEngine;
  secrets: SecretStore;
  clock: Clock;
  lease: ProjectionLease;
  logger: Logger;
  /** Where the runtime's parked-event metrics go. */
  metrics?: Registry;
}

export interface RunningReactors {
  runtime: ReactorRuntime;
  /** Durable timers: a reactor registers its owner name with them (before they fire for it) and schedules through it. */
  timers: TimerService;
  /** The simulated cluster, when this process started one. */
  simulator?: ClusterSimulator;
  stop(): Promise<void>;
}

/** The simulated cluster's id: the same on every start, so restarts find it registered. */
export const SIMULATED_CLUSTER_ID = uuidv5('sentinel/simulated-cluster', '0b9c1a1e-5f0e-5c39-9d8f-6f1e2a3b4c5d');

/** Where kubeconfig files may be when SENTINEL_KUBECONFIG_DIR is not set. */
export function kubeconfigDir(config: Config): string {
  return resolve(config.SENTINEL_KUBECONFIG_DIR ?? resolve(config.SENTINEL_DATA_DIR, 'kubeconfigs'));
}

/** Where the built-in simulator writes its kubeconfig; allowed only to a process that runs the simulator. */
export function simulatorDir(config: Config): string {
  return resolve(config.SENTINEL_DATA_DIR, 'simulator');
}

/** What cluster credentials may make this process run, read and trust, as configured. */
export function kubeconfigPolicy(config: Config, extraDirs: string[] = []): KubeconfigPolicy {
  return new KubeconfigPolicy({
    execAllow: config.SENTINEL_KUBECONFIG_EXEC_ALLOW,
    kubeconfigDirs: [kubeconfigDir(config), ...extraDirs],
    allowInsecure: config.SENTINEL_ALLOW_INSECURE_CLUSTERS,
  });
}

export async function startReactors(deps: ReactorDeps): Promise<RunningReactors> {
  const { config, handler, logger } = deps;
  const simulated = useSimulator(config);
  const policy = kubeconfigPolicy(config, simulated ? [simulatorDir(config)] : []);
  const simulator = simulated ? await startSimulatedCluster(deps, policy) : undefined;
  const runtime = new ReactorRuntime(deps.db.knex, deps.store, { logger, lease: deps.lease, ...(deps.metrics ? { registry: deps.metrics } : {}) });
  const drivers = new Map<string, ClusterDriver>();
  const deploymentCommands = new DeploymentCommands(handler, deps.clock, deps.policy);
  const timers = new TimerService(handler, { logger, ...(deps.metrics ? { registry: deps.metrics } : {}) });

  runtime.add(
    new FleetReactor({
      handler,
      logger,
      connect: (clusterId, credentials) =>
        createKubeClusterDriver(credentials, (ref) => deps.secrets.get(ref), { logger: logger.child({ clusterId }), policy }),
      follow(clusterId, driver) {
        drivers.set(clusterId, driver);
        runtime.add(
          new ClusterReactor(clusterId, driver, handler, {
            logger,
            judged: (action, deploymentId, context) => deploymentCommands.judgedObservation(action, deploymentId, context),
            settled: (deploymentId, context) => deploymentCommands.settledObservation(deploymentId, context),
            progressDeadlineSeconds: config.SENTINEL_PROGRESS_DEADLINE_SECONDS,
            resyncIntervalMs: config.SENTINEL_RESYNC_SECONDS * 1000,
          }),
        );
      },
      async unfollow(clusterId) {
        const driver = drivers.get(clusterId);
        drivers.delete(clusterId);
        // The reactor's signal goes first, so that a reaction caught by the closing driver is dropped, not recorded.
        const removed = runtime.remove(`cluster-${clusterId}`);
        await driver?.close();
        await removed;
      },
    }),
  );
  runtime.add(
    new PlanReactor(
      {
        handler,
        deployments: deploymentCommands,
        drains: new NodeDrainCommands(handler, deps.clock, deps.policy),
        clock: deps.clock,
        async driverFor(clusterId) {
          const driver = drivers.get(clusterId);
          // Right after a start the fleet reactor may not have connected it yet: transient, so the plan waits.
          if (!driver) throw new ClusterError(`cluster ${clusterId} is not connected in this process (yet)`, undefined, true);
          return driver;
        },
      },
      {
        logger,
        actionTimeoutMs: config.SENTINEL_PLAN_ACTION_TIMEOUT_SECONDS * 1000,
        evictionTimeoutMs: config.SENTINEL_EVICTION_TIMEOUT_SECONDS * 1000,
        ...(deps.metrics ? { metrics: prometheusPlanMetrics(deps.metrics) } : {}),
      },
    ),
  );

  // Every timer owner registers before the timer service follows the log, so that no firing finds its owner missing.
  const planExpiry = new PlanExpiry(handler, timers);
  const rolloutReactor = new RolloutReactor(handler, timers, {
    logger,
    async driverFor(clusterId) {
      const driver = drivers.get(clusterId);
      if (!driver) throw new ClusterError(`cluster ${clusterId} is not connected in this process (yet)`, undefined, true);
      return driver;
    },
    providers: metricProviders(deps),
    progressDeadlineSeconds: config.SENTINEL_PROGRESS_DEADLINE_SECONDS,
    clock: deps.clock,
    judged: (action, deploymentId, context) => deploymentCommands.judgedObservation(action, deploymentId, context),
    settled: (deploymentId, context) => deploymentCommands.settledObservation(deploymentId, context),
    ...(deps.metrics ? { registry: deps.metrics } : {}),
  });
  runtime.add(timers);
  runtime.add(planExpiry);
  runtime.add(rolloutReactor);

  runtime.add(
    new LedgerAuditor(
      { handler, policy: deps.policy, clock: deps.clock },
      { logger, intervalMs: config.SENTINEL_LEDGER_AUDIT_SECONDS * 1000, ...(deps.metrics ? { registry: deps.metrics } : {}) },
    ),
  );

  if (config.KAFKA_BROKERS) {
    runtime.add(
      new KafkaPublisher(
        new KafkaEventLog({
          brokers: config.KAFKA_BROKERS,
          clientId: config.KAFKA_CLIENT_ID,
          topicPrefix: config.KAFKA_TOPIC_PREFIX,
          ...(config.KAFKA_TOPIC_PARTITIONS ? { partitions: config.KAFKA_TOPIC_PARTITIONS } : {}),
          logger: logger.child({ component: 'kafka' }),
        }),
      ),
    );
  }

  return {
    runtime,
    timers,
    ...(simulator ? { simulator } : {}),
    async stop() {
      await runtime.stop();
      await Promise.allSettled([...drivers.values()].map((driver) => driver.close()));
      await simulator?.close();
    },
  };
}

/** Where canary analysis reads its metrics: Prometheus when PROMETHEUS_URL is set, and Sentinel's own telemetry. */
function metricProviders(deps: ReactorDeps): { prometheus?: MetricProvider; telemetry: MetricProvider } {
  const url = deps.config.PROMETHEUS_URL;
  const api = url ? new PrometheusApi(url) : undefined;
  const samples = new SampleStore(deps.db);
  return {
    ...(api ? { prometheus: createPrometheusMetricProvider((promql) => api.instantQuery(promql)) } : {}),
    telemetry: createTelemetryMetricProvider({ samples: { latestSamples: (query) => samples.latestSamples(query) } }),
  };
}

function useSimulator(config: Config): boolean {
  const setting = config.SENTINEL_CLUSTER_SIMULATOR;
  return setting === 'on' || (setting === 'auto' && !config.DATABASE_URL && !config.KURRENTDB_URL);
}

/**
 * Starts the built-in cluster simulator, writes its kubeconfig under the data directory and registers it as the
 * cluster "simulated" (once; later starts only point it at the new address). The kubeconfig is https with the
 * simulator's own CA and a token, so it passes the kubeconfig policy with no insecure allowance.
 */
async function startSimulatedCluster(deps: ReactorDeps, policy: KubeconfigPolicy): Promise<ClusterSimulator> {
  const simulator = await startClusterSimulator();
  try {
    const dir = simulatorDir(deps.config);
    await mkdir(dir, { recursive: true });
    const path = resolve(dir, 'kubeconfig');
    await writeFile(path, simulator.kubeconfig(), { mode: 0o600 });

    const context: CommandContext = { actor: REACTOR_ACTOR, correlationId: SIMULATED_CLUSTER_ID, causationId: SIMULATED_CLUSTER_ID, source: 'simulator' };
    const { state } = await deps.handler.loadState(clusters, SIMULATED_CLUSTER_ID);
    if (state.status === 'absent') {
      await new ClusterCommands(deps.handler, deps.secrets, policy).register(
        SIMULATED_CLUSTER_ID,
        {
          name: 'simulated',
          apiServer: simulator.url,
          credentials: { source: 'kubeconfig-file', path },
          region: 'local',
          labels: { 'sentinel.io/simulated': 'true' },
          gpuSkus: ['nvidia-a100-80gb'],
        },
        context,
      );
    } else if (state.spec.apiServer !== simulator.url) {
      await deps.handler.execute(clusters, SIMULATED_CLUSTER_ID, { type: 'UpdateCluster', clusterId: SIMULATED_CLUSTER_ID, changes: { apiServer: simulator.url } }, context);
    }
    deps.logger.info({ clusterId: SIMULATED_CLUSTER_ID, apiServer: simulator.url, kubeconfig: path }, 'simulated cluster is up');
    return simulator;
  } catch (error) {
    await simulator.close();
    throw error;
  }
}
