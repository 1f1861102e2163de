// Composition root: builds the stores and servers a configuration asks for, and takes them down in order.
import path from 'node:path';
import type { Logger } from 'pino';
import { KurrentDbEventStore } from '../adapters/event-store/kurrentdb/kurrentdb-event-store.js';
import { InstrumentedEventStore } from '../adapters/event-store/instrumented-event-store.js';
import { PostgresEventStore } from '../adapters/event-store/postgres/postgres-event-store.js';
import { createHttpApp, listen } from '../adapters/http/server.js';
import { openPglite, openPostgres, type Database } from '../adapters/postgres/database.js';
import { createMetricsRegistry } from '../adapters/prometheus/metrics.js';
import type { EventStore } from '../domain/event-store.js';
import type { Config } from './config.js';

export interface RunningSentinel {
  port: number;
  eventStore: EventStore;
  stop(): Promise<void>;
}

export async function startSentinel(config: Config, logger: Logger): Promise<RunningSentinel> {
  const metrics = createMetricsRegistry();
  const db = await openDatabase(config, logger);
  let eventStore: EventStore | undefined;
  try {
    eventStore = new InstrumentedEventStore(await openEventStore(config, db, logger), metrics);
    const store = eventStore;
    const app = createHttpApp({
      logger,
      metrics,
      readiness: async () => {
        await db.query('select 1');
        await store.ping();
      },
    });
    const server = await listen(app, config.HOST, config.PORT);
    logger.info({ host: config.HOST, port: server.port }, 'sentinel is listening');

    return {
      port: server.port,
      eventStore: store,
      async stop() {
        await server.close(config.SHUTDOWN_TIMEOUT_MS);
        await store.close();
        await db.close();
      },
    };
  } catch (error) {
    await eventStore?.close().catch(() => undefined);
    await db.close().catch(() => undefined);
    throw error;
  }
}

async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.DATABASE_URL) {
    logger.info({ database: redact(config.DATABASE_URL) }, 'using PostgreSQL');
    return openPostgres(config.DATABASE_URL, { poolMax: config.DATABASE_POOL_MAX });
  }
  const dataDir = path.resolve(config.SENTINEL_DATA_DIR, 'pglite');
  logger.info({ dataDir }, 'using embedded PGlite (for trying Sentinel and single-node development; not durable)');
  return openPglite(dataDir);
}

async function openEventStore(config: Config, db: Database, logger: Logger): Promise<EventStore> {
  if (config.KURRENTDB_URL) {
    logger.info({ eventStore: redact(config.KURRENTDB_URL) }, 'event store on KurrentDB');
    return KurrentDbEventStore.connect(config.KURRENTDB_URL);
  }
  return PostgresEventStore.open(db);
}

/** A connection string without its password, for logs. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
