// Runs the event store contract against every adapter this run can reach.
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { KurrentDbEventStore } from '../../adapters/event-store/kurrentdb/kurrentdb-event-store.js';
import type { EventStore } from '../../domain/event-store.js';
import { SKIP_POSTGRES_REASON, TEST_DATABASE_URL, createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';
import { eventStoreContract } from './event-store.js';

describe('EventStore contract: postgres adapter on embedded PGlite', () => {
  let db: Database;
  let store: EventStore;
  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });
  eventStoreContract({ store: () => store });
});

describe('EventStore contract: postgres adapter on PostgreSQL', function () {
  let scratch: ScratchDatabase;
  let db: Database;
  let store: EventStore;
  before(async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    scratch = await createScratchDatabase();
    db = openPostgres(scratch.url, { poolMax: 20 });
    store = await PostgresEventStore.open(db);
  });
  after(async () => {
    await store?.close();
    await db?.close();
    await scratch?.drop();
  });
  eventStoreContract({ store: () => store });
});

describe('EventStore contract: kurrentdb adapter', function () {
  let store: EventStore;
  before(function () {
    if (!process.env.KURRENTDB_URL) {
      console.log('      skipped: KURRENTDB_URL is not set (no EventStoreDB/KurrentDB server can run on this machine)');
      return this.skip();
    }
    store = KurrentDbEventStore.connect(process.env.KURRENTDB_URL);
  });
  after(async () => {
    await store?.close();
  });
  eventStoreContract({ store: () => store });
});
