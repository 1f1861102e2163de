// Which generation's tables queries read: the registry is asked again after a moment (half a second unless told), and
// a read-your-writes wait hands the query that follows it the generation whose checkpoint it saw.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { projectionRow, swapProjection } from '../../adapters/postgres/checkpoints.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { counter } from '../support/counting-projector.js';
import { events, uniqueStream } from '../support/events.js';

describe('the generation queries read', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });

  it('given a generation swapped in elsewhere, then queries see it after a moment, and at once after a read-your-writes wait', async () => {
    const type = `Counted${randomUUID().slice(0, 8)}`;
    const projector = counter(`tables-${type}`, type);
    // Reused for a minute here, so that nothing depends on how quickly the steps run; the lapse is tested below.
    const runtime = new ProjectionRuntime(db.knex, store, [projector], { logger: pino({ level: 'silent' }), lease: inProcessLease, generationReuseMs: 60_000 });
    await runtime.start();
    try {
      const written = await store.append(uniqueStream('counted'), events(1, type));
      expect(await runtime.waitFor(written.position, [projector.name], 10_000)).to.equal(true);
      const first = Object.values(await runtime.tables(projector))[0];
      expect(first).to.match(/_g1$/);

      // A rebuild in another process swaps in generation 2 (its tables are left to it; only the names matter here).
      const row = (await projectionRow(db.knex, projector.name))!;
      await db.knex.transaction((trx) => swapProjection(trx, { name: projector.name, version: 1, generation: 2, position: row.position, events: row.events }));

      expect(Object.values(await runtime.tables(projector))[0], 'reused for a moment').to.equal(first);
      await runtime.stop();

      // A wait that sees the checkpoint past the position leaves its generation for the query that follows.
      await db.knex.transaction((trx) => swapProjection(trx, { name: projector.name, version: 1, generation: 3, position: row.position, events: row.events }));
      expect(await runtime.waitFor(written.position, [projector.name], 1000)).to.equal(true);
      expect(Object.values(await runtime.tables(projector))[0]).to.match(/_g3$/);

      // Once the lookup is older than the reuse allows, the registry is asked again.
      const brief = new ProjectionRuntime(db.knex, store, [projector], { logger: pino({ level: 'silent' }), lease: inProcessLease, generationReuseMs: 50 });
      expect(Object.values(await brief.tables(projector))[0]).to.match(/_g3$/);
      await db.knex.transaction((trx) => swapProjection(trx, { name: projector.name, version: 1, generation: 4, position: row.position, events: row.events }));
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(Object.values(await brief.tables(projector))[0]).to.match(/_g4$/);
    } finally {
      await runtime.stop();
    }
  });
});
