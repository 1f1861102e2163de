// Wiring of the telemetry role: the gRPC ingest node agents push to, the sample store behind it, the health facts
// derived from what they push, the silence check, and the remediation that proposes draining an unfit node.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
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
  const remediation =
    config.SENTINEL_REMEDIATION_MODE === 'off'
      ? undefined
      : new Remediation(new ActionPlanCommands(handler, deps.clock, deps.policy, new FleetFacts(handler), { defaultTtlSeconds: config.SENTINEL_PLAN_TTL_SECONDS }), {
          mode: config.SENTINEL_REMEDIATION_MODE,
          logger: log,
        });
  const facts = new HealthFacts(new NodeHealthCommands(handler), deps.store, remediation, {
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
    });
    log.info({ host: config.TELEMETRY_GRPC_HOST, port: ingest.port, tls: deps.files.telemetryTls !== undefined, remediation: config.SENTINEL_REMEDIATION_MODE }, 'telemetry ingest is listening');
    return {
      port: ingest.port,
      async stop() {
        await ingest.stop();
        await facts.stop();
        await kafka?.close();
      },
    };
  } catch (error) {
    await facts.stop();
    await kafka?.close();
    throw error;
  }
}
