// The checkpoint registry's lock: registering a projector or creating a generation holds it, and a reactor's
// checkpoint write does not wait for it. PostgreSQL only (PGlite has one connection, so nothing can wait there).
import { expect } from 'chai';
import { lockProjections, reactorCheckpoint, saveReactorCheckpoint } from '../../adapters/postgres/checkpoints.js';
import { openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { eventually } from '../support/eventually.js';

describe('checkpoint registry lock on PostgreSQL', function () {
  this.timeout(30_000);
  let scratch: ScratchDatabase;
  let db: Database;

  before(async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      this.skip();
    }
    scratch = await createScratchDatabase();
    db = openPostgres(scratch.url);
    await migrateSentinel(db.knex);
  });
  after(async () => {
    await db?.close();
    await scratch?.drop();
  });

  /** Sessions of this database waiting on an advisory lock. */
  async function advisoryWaiters(): Promise<number> {
    const rows = await db.query<{ waiting: string | number }>(
      `select count(*) as waiting from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'`,
    );
    return Number(rows[0]!.waiting);
  }

  it('given the registry locked by a registration, then a reactor checkpoint is written meanwhile and a second registration waits for the first', async () => {
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstLocked!: () => void;
    const locked = new Promise<void>((resolve) => (firstLocked = resolve));
    const order: string[] = [];

    const first = db.knex.transaction(async (trx) => {
      await lockProjections(trx);
      firstLocked();
      await firstHolds;
      order.push('first done');
    });
    await locked;

    await saveReactorCheckpoint(db.knex, 'plans', '00000000000000000042');
    expect(await reactorCheckpoint(db.knex, 'plans')).to.equal('00000000000000000042');

    const second = db.knex.transaction(async (trx) => {
      await lockProjections(trx);
      order.push('second locked');
    });
    await eventually('the second registration waiting on the registry lock', advisoryWaiters, (waiting) => waiting === 1, 10_000);
    expect(order).to.deep.equal([]);

    releaseFirst();
    await Promise.all([first, second]);
    expect(order).to.deep.equal(['first done', 'second locked']);
  });
});
