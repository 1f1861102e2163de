// PGlite has no autovacuum: the event store analyses its table itself, so the planner sees the log as it is.
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';

describe('event store statistics on PGlite', function () {
  this.timeout(60_000);
  let db: Database;
  after(async () => db?.close());

  const plannerRows = async () =>
    Number((await db.query<{ rows: number }>(`select reltuples::float8 as rows from pg_class where relname = 'sentinel_events'`))[0]!.rows);

  it('given events appended past the threshold, then the table is analysed and the planner counts them', async () => {
    db = await openPglite();
    const store = await PostgresEventStore.open(db);
    // Opened empty: analysed at open, with nothing in it.
    expect(await plannerRows()).to.be.at.most(0);
    for (let batch = 0; batch < 4; batch += 1) {
      const events = Array.from({ length: 25 }, (_, i) => ({ id: crypto.randomUUID(), type: `Thing${i % 3}`, data: { batch, i } }));
      await store.append(`thing-${batch}`, events);
    }
    await store.close();
    // 100 events is past 50 + 10% of none: one analysis ran, and close() waited for it.
    expect(await plannerRows()).to.be.at.least(50);
  });
});
