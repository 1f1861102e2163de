// A projector's batch commits without waiting for the WAL to reach the disk, said by the checkpoint's own move rather
// than by a statement of its own; nothing outside that transaction is changed by it.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { advanceProjection, insertProjection } from '../../adapters/postgres/checkpoints.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { backends, type Backend } from '../support/projection-backends.js';

async function commitMode(run: (sql: string) => Promise<{ rows: { synchronous_commit: string }[] }>): Promise<string> {
  return (await run('show synchronous_commit')).rows[0]!.synchronous_commit;
}

for (const backend of backends) {
  describe(`a projector's checkpoint move on ${backend.name}`, function () {
    this.timeout(30_000);
    let opened: Awaited<ReturnType<Backend['open']>>;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      await migrateSentinel(opened.db.knex);
    });
    after(() => opened?.close());

    it('given a batch moving the checkpoint, then its commit does not wait for the disk, and the next transaction does again', async () => {
      const name = `commit-${randomUUID().slice(0, 8)}`;
      await opened.db.knex.transaction((trx) => insertProjection(trx, { name, version: 1 }));
      const knex = opened.db.knex;
      const inside = await knex.transaction(async (trx) => {
        const before = await commitMode((sql) => trx.raw(sql));
        expect(await advanceProjection(trx, { name, generation: 1, from: null, to: '0000000000000001-0000000000000001', events: 1 })).to.equal(true);
        return { before, after: await commitMode((sql) => trx.raw(sql)) };
      });
      expect(inside).to.deep.equal({ before: 'on', after: 'off' });
      // Local to that transaction: the connection it ran on goes back to the pool as it was.
      expect(await knex.transaction((trx) => commitMode((sql) => trx.raw(sql)))).to.equal('on');
      // A move from a checkpoint that is no longer there changes nothing.
      expect(await knex.transaction((trx) => advanceProjection(trx, { name, generation: 1, from: null, to: '0000000000000002-0000000000000001', events: 1 }))).to.equal(false);
    });
  });
}
