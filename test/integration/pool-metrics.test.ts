// The database pool on /metrics: connections in use and free, statements waiting, and how long they waited.
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { openPostgres } from '../../adapters/postgres/database.js';
import { registerPoolMetrics } from '../../adapters/prometheus/pool-metrics.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL } from '../support/postgres.js';

/** A metric's samples from the text exposition, by their labels as written. */
function samples(exposition: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const [, labels, value] of exposition.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) found.set(labels ?? '', Number(value));
  return found;
}

describe('database pool metrics on PostgreSQL', function () {
  this.timeout(30_000);

  before(function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      this.skip();
    }
  });

  it('given a pool of one connection held by a slow statement, then the next statement is counted waiting, and its wait is measured', async () => {
    const scratch = await createScratchDatabase();
    const db = openPostgres(scratch.url, { poolMax: 1 });
    const registry = new Registry();
    registerPoolMetrics(db.knex, registry);
    try {
      const slow = db.query('select pg_sleep(0.2)');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const quick = db.query('select 1');
      const during = await registry.metrics();
      expect(samples(during, 'sentinel_db_pool_waiting').get('')).to.equal(1);
      expect(samples(during, 'sentinel_db_pool_connections').get('{state="used"}')).to.equal(1);
      await Promise.all([slow, quick]);

      const after = await registry.metrics();
      expect(samples(after, 'sentinel_db_pool_waiting').get('')).to.equal(0);
      expect(samples(after, 'sentinel_db_pool_connections')).to.deep.equal(new Map([['{state="used"}', 0], ['{state="free"}', 1]]));
      const waits = samples(after, 'sentinel_db_pool_acquire_seconds_bucket');
      expect(samples(after, 'sentinel_db_pool_acquire_seconds_count').get('')).to.equal(2);
      // The second waited out the rest of the slow statement: at least 150 ms.
      expect(waits.get('{le="0.1"}')).to.be.at.most(1);
      expect(waits.get('{le="2.5"}')).to.equal(2);
      expect(samples(after, 'sentinel_db_pool_acquire_seconds_sum').get('')).to.be.at.least(0.14);
    } finally {
      await db.close();
      await scratch.drop();
    }
  });
});
