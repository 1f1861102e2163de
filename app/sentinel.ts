// Composition root: builds the stores and servers a configuration asks for, and takes them down in order.
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import { JwtTokens } from '../adapters/auth/jwt-tokens.js';
import { scryptPasswords } from '../adapters/auth/passwords.js';
import { PostgresPrincipalStore } from '../adapters/auth/principal-store.js';
import { PostgresLoginThrottle } from '../adapters/auth/login-throttle.js';
import { KurrentDbEventStore } from '../adapters/event-store/kurrentdb/kurrentdb-event-store.js';
import { InstrumentedEventStore } from '../adapters/event-store/instrumented-event-store.js';
import { PostgresEventStore, registerHorizonMetrics } from '../adapters/event-store/postgres/postgres-event-store.js';
import { createHttpApp, listen } from '../adapters/http/server.js';
import { openPglite, openPostgres, type Database } from '../adapters/postgres/database.js';
import { PostgresIdempotencyStore } from '../adapters/postgres/idempotency-store.js';
import { migrateSentinel, sentinelMigrated } from '../adapters/postgres/schema.js';
import { PostgresSecretStore } from '../adapters/postgres/secret-store.js';
import { PostgresEventLocator, PostgresSnapshotStore } from '../adapters/postgres/snapshot-store.js';
import { prometheusAggregateStateMetrics } from '../adapters/prometheus/aggregate-state-metrics.js';
import { prometheusAuditChainMetrics } from '../adapters/prometheus/audit-chain-metrics.js';
import { prometheusCommandMetrics, prometheusDecisionMetrics } from '../adapters/prometheus/command-metrics.js';
import { prometheusLoginMetrics } from '../adapters/prometheus/login-metrics.js';
import { registerPoolMetrics } from '../adapters/prometheus/pool-metrics.js';
import { createMetricsRegistry } from '../adapters/prometheus/metrics.js';
import { AccessService, type LoginSettings } from '../commands/access.js';
import { systemClock } from '../commands/clock.js';
import { CommandHandler } from '../commands/command-handler.js';
import { commandApi } from '../commands/http/api.js';
import { PolicyEngine } from '../commands/policy-engine.js';
import { AdvisoryLease, inProcessLease } from '../adapters/postgres/advisory-lease.js';
import { prometheusProjectionMetrics } from '../adapters/prometheus/projection-metrics.js';
import { AuditChainMonitor } from '../projections/audit-chain-monitor.js';
import { auditProjector } from '../projections/audit-trail.js';
import { readModelDecisionIndex } from '../projections/decision-index.js';
import { queryRoutes } from '../projections/http/query-routes.js';
import { LIVE_OPENAPI_PATHS, liveRoutes, readSideFloor } from '../projections/http/live-routes.js';
import { consoleRouter } from './console/console-router.js';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { signingKeyFrom } from '../commands/audit-export.js';
import { anchorTopicOf, FileAnchorLog, KafkaAnchorLog, startAnchoring, type AnchorLog } from '../commands/audit-export-anchor.js';
import { FleetSnapshots } from '../projections/fleet-snapshot.js';
import { policyDecisions, READ_MODEL_PROJECTORS } from '../projections/read-models.js';
import { ProjectionRuntime } from '../projections/runtime.js';
import { kubeconfigPolicy, SIMULATED_CLUSTER_ID, startReactors, type RunningReactors } from './reactors.js';
import { startSimulatedAgents } from './simulated-agents.js';
import { startInframind } from './inframind.js';
import type { RunningInframindLink } from '../reactors/inframind/link.js';
import { sampleStore, startTelemetry, type RunningTelemetry } from './telemetry.js';
import { FileHealthSource } from '../adapters/policy/file-health-source.js';
import { PrometheusApi } from '../adapters/prometheus/prometheus-api.js';
import { PrometheusHealth } from '../adapters/prometheus/prometheus-health.js';
import { ObservedHealthSource } from '../commands/observed-health.js';
import { deploymentUptime, uptimeReader } from '../projections/read-models/deployment-uptime.js';
import type { SecretStore } from '../commands/secrets.js';
import { isCorrelationReader, type EventStore } from '../domain/event-store.js';
import { checkConfig, type Config, type ConfigFiles } from './config.js';
import { startTracing } from './tracing.js';

export interface RunningSentinel {
  port: number;
  eventStore: EventStore;
  /** The reactors, when this process runs the reactor role. */
  reactors?: RunningReactors;
  /** The telemetry ingest's gRPC port, when this process runs the telemetry role. */
  telemetryPort?: number;
  /** The InfraMind link's gRPC port, when this process runs the inframind role. */
  inframindPort?: number;
  stop(): Promise<void>;
}

/**
 * Starts what the configuration asks for. `checked` is what `checkConfig` returned for it; without it, the check is
 * made here first, before anything is opened or written.
 */
export async function startSentinel(config: Config, logger: Logger, checked?: ConfigFiles): Promise<RunningSentinel> {
  const files = checked ?? (await checkConfig(config));
  // Before the database opens: knex loads pg's client then, which the pg instrumentation patches as it loads.
  const tracing = await startTracing(config.SENTINEL_ROLE);
  if (tracing.enabled) logger.info('tracing is on: spans are exported as the OTEL_* variables say');
  const metrics = createMetricsRegistry();
  const db = await openDatabase(config, logger);
  registerPoolMetrics(db.knex, metrics);
  let eventStore: EventStore | undefined;
  let runtime: ProjectionRuntime | undefined;
  let reactors: RunningReactors | undefined;
  let telemetry: RunningTelemetry | undefined;
  let agents: { stop(): Promise<void> } | undefined;
  let health: ObservedHealthSource | undefined;
  let inframind: RunningInframindLink | undefined;
  let auditChain: AuditChainMonitor | undefined;
  let anchoring: { stop(): Promise<void> } | undefined;
  let anchorLogs: AnchorLog[] = [];
  let fleetSnapshots: FleetSnapshots | undefined;
  try {
    const opened = await openEventStore(config, db, logger);
    if (opened instanceof PostgresEventStore) registerHorizonMetrics(opened, metrics);
    eventStore = new InstrumentedEventStore(opened, metrics);
    const store = eventStore;
    await migrateSentinel(db.knex);

    const secrets = new PostgresSecretStore(db.knex);
    const idempotency = new PostgresIdempotencyStore(db.knex);
    const access = new AccessService(
      new PostgresPrincipalStore(db.knex),
      new JwtTokens({
        secret: await signingSecret(config, files, secrets),
        accessTtlSeconds: config.SENTINEL_ACCESS_TOKEN_TTL_SECONDS,
        refreshTtlSeconds: config.SENTINEL_REFRESH_TOKEN_TTL_SECONDS,
      }),
      scryptPasswords,
      store,
      {
        throttle: new PostgresLoginThrottle(db.knex),
        login: loginSettings(config),
        metrics: prometheusLoginMetrics(metrics),
        logger,
      },
    );
    const roles = new Set(config.SENTINEL_ROLE);
    const servesApi = roles.has('api');

    const lease = db.kind === 'postgres' && db.connectionString ? new AdvisoryLease(db.connectionString) : inProcessLease;
    const projections = new ProjectionRuntime(db.knex, store, [...READ_MODEL_PROJECTORS, auditProjector], {
      logger,
      lease,
      metrics: prometheusProjectionMetrics(metrics),
    });
    // Other roles read (or serve queries from) tables a projector process keeps; they only make sure they exist.
    if (roles.has('projector')) await projections.start();
    else await projections.prepare();
    runtime = projections;
    // The api role serves GET /audit/verify, and checks the same chain on a schedule for the AuditChainBroken alert.
    if (servesApi) {
      auditChain = new AuditChainMonitor({
        knex: db.knex,
        table: async () => (await projections.tables(auditProjector)).audit,
        metrics: prometheusAuditChainMetrics(metrics),
        logger: logger.child({ component: 'audit-chain' }),
        intervalSeconds: config.AUDIT_VERIFY_INTERVAL_SECONDS,
        fullEvery: config.AUDIT_VERIFY_FULL_EVERY,
      });
      auditChain.start();
    }

    // Signed anchors of the audit trail's head, published outside the database (a file, a Kafka topic) by the
    // projector role; the api role checks the chain against the last one.
    const signingKey: KeyObject | undefined = config.AUDIT_SIGNING_KEY_FILE
      ? signingKeyFrom(await readFile(config.AUDIT_SIGNING_KEY_FILE, 'utf8'), `AUDIT_SIGNING_KEY_FILE (${config.AUDIT_SIGNING_KEY_FILE})`)
      : undefined;
    const anchorTopic = anchorTopicOf(config.AUDIT_ANCHOR_KAFKA);
    anchorLogs = [
      ...(config.AUDIT_ANCHOR_FILE ? [new FileAnchorLog(config.AUDIT_ANCHOR_FILE)] : []),
      ...(anchorTopic && config.KAFKA_BROKERS
        ? [new KafkaAnchorLog({ brokers: config.KAFKA_BROKERS, topic: anchorTopic, clientId: `${config.KAFKA_CLIENT_ID}-audit-anchors`, logger })]
        : []),
    ];
    if (anchorLogs.length > 0 && roles.has('projector')) {
      if (!signingKey) throw new Error('AUDIT_ANCHOR_FILE or AUDIT_ANCHOR_KAFKA is set, but AUDIT_SIGNING_KEY_FILE is not: anchors are signed with that key');
      anchoring = startAnchoring({
        knex: db.knex,
        table: async () => (await projections.tables(auditProjector)).audit,
        key: signingKey,
        logs: anchorLogs,
        intervalSeconds: config.AUDIT_ANCHOR_INTERVAL_SECONDS,
        logger: logger.child({ component: 'audit-anchor' }),
      });
    }
    // Fleet snapshots at a time, projected and served by the api role, dropped when they expire.
    if (servesApi) {
      fleetSnapshots = new FleetSnapshots(db.knex, store, {
        ttlSeconds: config.SENTINEL_FLEET_SNAPSHOT_TTL_SECONDS,
        logger: logger.child({ component: 'fleet-snapshots' }),
      });
      fleetSnapshots.start();
    }

    const handler = new CommandHandler(store, {
      metrics: prometheusCommandMetrics(metrics),
      stateMetrics: prometheusAggregateStateMetrics(metrics),
      cacheSize: config.SENTINEL_AGGREGATE_CACHE_SIZE,
      ...(config.SENTINEL_SNAPSHOT_EVERY > 0 ? { snapshots: new PostgresSnapshotStore(db), snapshotEvery: config.SENTINEL_SNAPSHOT_EVERY } : {}),
      // A derived event id is looked up in the event table only when the events are on this database.
      ...(opened instanceof PostgresEventStore ? { eventLocator: new PostgresEventLocator(db) } : {}),
      logger,
    });
    // Observed health for the SLA and SLO rules, refreshed in the background: a judgement never waits on it.
    health = new ObservedHealthSource({
      uptime: uptimeReader(db.knex, () => projections.tables(deploymentUptime.projector)),
      ...(config.PROMETHEUS_URL ? { latency: new PrometheusHealth(new PrometheusApi(config.PROMETHEUS_URL)) } : {}),
      ...(config.SENTINEL_HEALTH_FILE ? { file: new FileHealthSource(config.SENTINEL_HEALTH_FILE) } : {}),
      refreshSeconds: config.SENTINEL_HEALTH_REFRESH_SECONDS,
      logger,
    });
    health.start();
    const policy = new PolicyEngine(store, { prices: files.prices, health, metrics: prometheusDecisionMetrics(metrics) });
    if (roles.has('reactor')) {
      reactors = await startReactors({ config, db, store, handler, policy, secrets, clock: systemClock, lease, logger, metrics });
    }
    if (roles.has('telemetry')) {
      telemetry = await startTelemetry({ config, files, db, store, handler, policy, access, clock: systemClock, metrics, logger, lease });
    }
    if (roles.has('inframind')) {
      inframind = await startInframind({ config, db, store, handler, policy, access, projections, clock: systemClock, metrics, logger });
    }
    const simulator = reactors?.simulator;
    if (config.SENTINEL_SIMULATED_AGENTS !== 'off' && simulator && telemetry) {
      agents = await startSimulatedAgents({
        simulator,
        clusterId: SIMULATED_CLUSTER_ID,
        telemetryHost: config.TELEMETRY_GRPC_HOST,
        telemetryPort: telemetry.port,
        access,
        logger,
      });
    } else if (config.SENTINEL_SIMULATED_AGENTS === 'on') {
      logger.warn('SENTINEL_SIMULATED_AGENTS=on, but this process runs no cluster simulator and telemetry ingest together: no simulated agents');
    }

    const api = commandApi({
      handler,
      policy,
      access,
      secrets,
      clusterAccess: kubeconfigPolicy(config),
      idempotency,
      clock: systemClock,
      logger,
      planTtlSeconds: config.SENTINEL_PLAN_TTL_SECONDS,
      version: SENTINEL_VERSION,
      documentedPaths: LIVE_OPENAPI_PATHS,
      decisionIndex: readModelDecisionIndex(db.knex, () => projections.tables(policyDecisions.projector)),
      queryRoutes: queryRoutes({
        knex: db.knex,
        runtime: projections,
        telemetry: sampleStore(config, db),
        health,
        staleAfterSeconds: config.SENTINEL_NODE_SILENT_SECONDS,
        events: store,
        snapshots: new PostgresSnapshotStore(db),
        ...(isCorrelationReader(store) ? { correlations: store } : {}),
        // Where this process runs a reactor, its lag counts only the events it reads.
        reactorEventTypes: (reactor) => reactors?.runtime.eventTypesOf(reactor),
        // The Kafka topic when there is one (every process reads the same), else the file.
        ...(anchorLogs.length > 0 ? { auditAnchors: { log: anchorLogs.at(-1)!, ...(signingKey ? { publicKey: createPublicKey(signingKey) } : {}) } } : {}),
        ...(fleetSnapshots ? { fleetSnapshots } : {}),
      }),
    });
    // The log followed live (Server-Sent Events) by the console, under the query API's auth.
    const live = liveRoutes({ store, access, start: readSideFloor(db.knex), logger });
    let started = false;
    const app = createHttpApp({
      logger,
      metrics,
      readiness: async () => {
        // The port is bound a moment before start-up ends (the first admin is created after it): not ready yet.
        if (!started) throw new Error('sentinel is still starting');
        await db.query('select 1');
        await store.ping();
        if (!(await sentinelMigrated(db.knex))) throw new Error('the database schema is behind this build');
      },
      routers: servesApi
        ? [
            { path: '/api/v1', router: live },
            { path: '/api/v1', router: api },
            { path: '/', router: consoleRouter() },
          ]
        : [],
      metricsToken: config.SENTINEL_METRICS_TOKEN,
    });
    const purge = setInterval(() => {
      idempotency.purge(new Date(Date.now() - IDEMPOTENCY_RETENTION_MS)).catch((error: unknown) => {
        logger.warn({ err: error }, 'purging old idempotency keys failed');
      });
    }, 3_600_000).unref();
    const server = await listen(app, config.HOST, config.PORT);
    // Only now that start-up has succeeded: a first start that failed earlier (port in use, a bad file) must
    // not have used up the one-time password that only this start prints.
    if (servesApi) {
      try {
        await bootstrapAdmin(access, config, logger);
      } catch (error) {
        await server.close(0);
        throw error;
      }
    }
    started = true;
    logger.info({ host: config.HOST, port: server.port }, 'sentinel is listening');

    return {
      port: server.port,
      eventStore: store,
      ...(reactors ? { reactors } : {}),
      ...(telemetry ? { telemetryPort: telemetry.port } : {}),
      ...(inframind ? { inframindPort: inframind.port } : {}),
      async stop() {
        clearInterval(purge);
        // Open event streams would hold the server's close until its timeout: they end first, and clients reconnect.
        await live.endStreams();
        await server.close(config.SHUTDOWN_TIMEOUT_MS);
        await agents?.stop();
        await inframind?.stop();
        await telemetry?.stop();
        await reactors?.stop();
        await health?.stop();
        await auditChain?.stop();
        await anchoring?.stop();
        await fleetSnapshots?.stop();
        await Promise.allSettled(anchorLogs.map((log) => log.close()));
        await projections.stop();
        // Snapshots are written after their command answered: the ones under way finish before the pool closes.
        await handler.snapshotsWritten();
        await store.close();
        await db.close();
        await tracing.flush();
      },
    };
  } catch (error) {
    await health?.stop().catch(() => undefined);
    await auditChain?.stop().catch(() => undefined);
    await anchoring?.stop().catch(() => undefined);
    await fleetSnapshots?.stop().catch(() => undefined);
    await Promise.allSettled(anchorLogs.map((log) => log.close()));
    await agents?.stop().catch(() => undefined);
    await inframind?.stop().catch(() => undefined);
    await telemetry?.stop().catch(() => undefined);
    await reactors?.stop().catch(() => undefined);
    await runtime?.stop().catch(() => undefined);
    await eventStore?.close().catch(() => undefined);
    await db.close().catch(() => undefined);
    throw error;
  }
}

const SENTINEL_VERSION = '0.1.0';
/** How long an Idempotency-Key is remembered. */
const IDEMPOTENCY_RETENTION_MS = 24 * 3_600_000;

/**
 * The key that signs tokens: from the environment or a file when given; otherwise one generated once and
 * kept in the database, so every process on that database (and every restart) signs with the same key.
 */
async function signingSecret(config: Config, files: ConfigFiles, secrets: SecretStore): Promise<Uint8Array> {
  const given = config.SENTINEL_JWT_SECRET ?? files.jwtSecret;
  if (given) return new TextEncoder().encode(given);
  return Buffer.from(await secrets.getOrCreate('jwt-signing-key', () => randomBytes(48).toString('base64')), 'base64');
}

/** Failed logins allowed per user name and per client address, and the lock length, as configured. */
export function loginSettings(config: Config): LoginSettings {
  return {
    maxFailures: config.SENTINEL_LOGIN_MAX_FAILURES,
    addressMaxFailures: config.SENTINEL_LOGIN_ADDRESS_MAX_FAILURES,
    lockSeconds: config.SENTINEL_LOGIN_LOCK_SECONDS,
  };
}

async function bootstrapAdmin(access: AccessService, config: Config, logger: Logger): Promise<void> {
  const context = { actor: { id: 'sentinel', kind: 'system' as const }, correlationId: randomUUID(), causationId: randomUUID(), source: 'bootstrap' };
  const admin = await access.bootstrapAdmin(config.SENTINEL_ADMIN_PASSWORD, context);
  if (!admin) return;
  if (admin.generatedPassword) {
    // Shown once, on the terminal only: it is not in the log stream, the database keeps only its hash.
    process.stderr.write(
      `\nsentinel: created user "${admin.username}" with the one-time password\n\n    ${admin.generatedPassword}\n\n` +
        'Log in with POST /api/v1/auth/login and change it with PATCH /api/v1/users/:id; it will not be shown again.\n\n',
    );
  }
  logger.info({ username: admin.username, passwordFrom: admin.generatedPassword ? 'generated' : 'SENTINEL_ADMIN_PASSWORD' }, 'created the first admin');
}

/** Where embedded PGlite keeps its files when no DATABASE_URL is set. */
export function pgliteDataDir(config: Config): string {
  return path.resolve(config.SENTINEL_DATA_DIR, 'pglite');
}

export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.DATABASE_URL) {
    logger.info({ database: redact(config.DATABASE_URL) }, 'using PostgreSQL');
    return openPostgres(config.DATABASE_URL, { poolMax: config.DATABASE_POOL_MAX });
  }
  const dataDir = pgliteDataDir(config);
  logger.info({ dataDir }, 'using embedded PGlite (for trying Sentinel and single-node development; not durable)');
  return openPglite(dataDir);
}

export async function openEventStore(config: Config, db: Database, logger: Logger): Promise<EventStore> {
  if (config.KURRENTDB_URL) {
    logger.info({ eventStore: redact(config.KURRENTDB_URL) }, 'event store on KurrentDB');
    return KurrentDbEventStore.connect(config.KURRENTDB_URL);
  }
  return PostgresEventStore.open(db);
}

/** A connection string without its password, for logs. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
