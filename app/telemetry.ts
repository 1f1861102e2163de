// Wiring of the telemetry role: the gRPC ingest node agents push to, the sample store behind it, the health facts
// derived from what they push, the silence check, and the remediation that proposes draining an unfit node (a reactor
// following the facts in the log, so a fact recorded just before a crash still gets its plan).
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { AdvisoryLease, inProcessLease } from '../adapters/postgres/advisory-lease.js';
import type { Database } from '../adapters/postgres/database.js';
import { grpcServerMetrics } from '../adapters/prometheus/grpc-metrics.js';
import type { AccessService } from '../commands/access.js';
import { ActionPlanCommands } from '../commands/action-plan-commands.js';
import type { Clock } from '../commands/clock.js';
import type { CommandHandler } from '../commands/command-handler.js';
import { FleetFacts } from '../commands/fleet-facts.js';
import { NodeHealthCommands } from '../commands/node-commands.js';
import type { PolicyEngine } from '../commands/policy-engine.js';
import type { EventStore } from '../domain/event-store.js';
import type { ProjectionLease } from '../projections/runtime.js';
import { ReactorRuntime } from '../reactors/reactor-runtime.js';
import { HealthFacts } from '../telemetry/health-facts.js';
import { startTelemetryIngest } from '../telemetry/ingest-server.js';
import { allListeners, KafkaTelemetrySink } from '../telemetry/kafka-sink.js';
import { Remediation } from '../telemetry/remediation.js';
import { SampleStore } from '../telemetry/sample-store.js';
import type { Config, ConfigFiles } from './config.js';

export interface TelemetryDeps {
  config: Config;
  files: ConfigFiles;
  db: Database;
  store: EventStore;
  handler: CommandHandler;
  policy: PolicyEngine;
  access: Pick<AccessService, 'authenticate'>;
  clock: Clock;
  metrics: Registry;
  logger: Logger;
  /** The lease that keeps remediation to one active instance; one of its own on the database when not given. */
  lease?: ProjectionLease;
}

export interface RunningTelemetry {
  /** The port the ingest listens on (the configured one, or the one picked for 0). */
  port: number;
  stop(): Promise<void>;
}

/** The sample store as configured: the ingest writes it, the query API reads it. */
export function sampleStore(config: Config, db: Database): SampleStore {
  return new SampleStore(db, {
    sampleRetentionDays: config.SENTINEL_TELEMETRY_RETENTION_DAYS,
    rollupRetentionDays: config.SENTINEL_TELEMETRY_ROLLUP_RETENTION_DAYS,
  });
}

export async function startTelemetry(deps: TelemetryDeps): Promise<RunningTelemetry> {
  const { config, handler, logger } = deps;
  const log = logger.child({ component: 'telemetry' });
  const facts = new HealthFacts(new NodeHealthCommands(handler), deps.store, {
    intervalMs: config.SENTINEL_NODE_CHECK_SECONDS * 1000,
    silentAfterMs: config.SENTINEL_NODE_SILENT_SECONDS * 1000,
    clock: deps.clock,
    logger: log,
  });
  // With Kafka configured, every stored batch also goes to `<prefix>.telemetry.v1`.
  const kafka = config.KAFKA_BROKERS
    ? new KafkaTelemetrySink({ brokers: config.KAFKA_BROKERS, clientId: config.KAFKA_CLIENT_ID, topicPrefix: config.KAFKA_TOPIC_PREFIX, logger: log })
    : undefined;
  await facts.start();
  const remediation = config.SENTINEL_REMEDIATION_MODE === 'off' ? undefined : startRemediation(deps, log);
  try {
    const ingest = await startTelemetryIngest({
      host: config.TELEMETRY_GRPC_HOST,
      port: config.TELEMETRY_GRPC_PORT,
      store: sampleStore(config, deps.db),
      authenticate: (token) => deps.access.authenticate(token),
      ...(deps.files.telemetryTls ? { tls: deps.files.telemetryTls } : {}),
      listener: kafka ? allListeners(facts, kafka) : facts,
      metrics: deps.metrics,
      interceptors: [grpcServerMetrics(deps.metrics)],
      logger: log,
      clock: deps.clock,
      rollupFlushMs: config.TELEMETRY_ROLLUP_FLUSH_MS,
    });
    log.info({ host: config.TELEMETRY_GRPC_HOST, port: ingest.port, tls: deps.files.telemetryTls !== undefined, remediation: config.SENTINEL_REMEDIATION_MODE }, 'telemetry ingest is listening');
    return {
      port: ingest.port,
      async stop() {
        await ingest.stop();
        await facts.stop();
        await remediation?.stop();
        await kafka?.close();
      },
    };
  } catch (error) {
    await facts.stop();
    await remediation?.stop();
    await kafka?.close();
    throw error;
  }
}

/** Remediation as a reactor of its own: from its checkpoint, under its lease, in a runtime of this role's. */
function startRemediation(deps: TelemetryDeps, log: Logger): ReactorRuntime {
  const { config, db, handler } = deps;
  const lease = deps.lease ?? (db.kind === 'postgres' && db.connectionString ? new AdvisoryLease(db.connectionString) : inProcessLease);
  const runtime = new ReactorRuntime(db.knex, deps.store, { logger: log, lease });
  const plans = new ActionPlanCommands(handler, deps.clock, deps.policy, new FleetFacts(handler), { defaultTtlSeconds: config.SENTINEL_PLAN_TTL_SECONDS });
  runtime.add(new Remediation(plans, deps.store, { mode: config.SENTINEL_REMEDIATION_MODE, logger: log }));
  return runtime;
}
