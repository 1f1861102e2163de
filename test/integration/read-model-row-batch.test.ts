// How a read model's rows reach their table: RowBatch folds and upserts them, insertRows adds them, each a JSON
// document the server reads into the table's row type. Run on PGlite and, when there is one, a PostgreSQL server.
import { expect } from 'chai';
import type { Knex } from 'knex';
import { insertRows, RowBatch } from '../../projections/row-batch.js';
import { backends } from '../support/projection-backends.js';

const TABLE = 'rm_row_batch_items_g1';
const EVENTS = 'rm_row_batch_events_g1';

async function createTables(knex: Knex): Promise<void> {
  await knex.schema.createTable(TABLE, (t) => {
    t.specificType('id', 'text collate "C"').primary();
    t.text('name').notNullable();
    t.integer('count').notNullable();
    t.boolean('active').notNullable();
    t.jsonb('labels').notNullable();
    t.jsonb('tags').notNullable();
    t.jsonb('note');
    t.timestamp('updated_at', { useTz: true }).notNullable();
  });
  await knex.schema.createTable(EVENTS, (t) => {
    t.text('item_id').notNullable();
    t.integer('revision').notNullable();
    t.jsonb('detail').notNullable();
    t.jsonb('extra');
    t.primary(['item_id', 'revision']);
  });
}

for (const backend of backends) {
  describe(`read-model rows written in batches (${backend.name})`, function () {
    let opened: Awaited<ReturnType<typeof backend.open>>;

    before(async function () {
      // Opening PGlite takes a while on a busy machine.
      this.timeout(60_000);
      if (backend.skip) this.skip();
      opened = await backend.open();
      await createTables(opened.db.knex);
    });
    after(async () => opened?.close());

    it('given rows with jsonb objects, arrays and strings, when a batch inserts them, then each column reads back as it was given', async () => {
      const at = new Date('2026-03-04T05:06:07.089Z');
      await opened.db.knex.transaction(async (trx) => {
        const rows = new RowBatch(trx, TABLE, ['id']);
        rows.insert({ id: 'a', name: 'first', count: 1, active: true, labels: { team: 'ml', tier: '1' }, tags: ['x', 'y'], note: 'plain text', updated_at: at });
        rows.insert({ id: 'b', name: "it's \"quoted\"\n", count: 2, active: false, labels: {}, tags: [], note: null, updated_at: at });
        await rows.flush();
      });
      const read = (await opened.db.knex(TABLE).orderBy('id')) as Record<string, unknown>[];
      expect(read).to.deep.equal([
        { id: 'a', name: 'first', count: 1, active: true, labels: { team: 'ml', tier: '1' }, tags: ['x', 'y'], note: 'plain text', updated_at: at },
        { id: 'b', name: "it's \"quoted\"\n", count: 2, active: false, labels: {}, tags: [], note: null, updated_at: at },
      ]);
    });

    it('given rows in the table, when a later batch loads, changes and flushes some, then those take the new values and the others stay', async () => {
      const later = new Date('2026-03-05T00:00:00.000Z');
      await opened.db.knex.transaction(async (trx) => {
        const rows = new RowBatch(trx, TABLE, ['id']);
        await rows.load([['a'], ['missing']]);
        expect(rows.get(['missing'])).to.equal(undefined);
        expect(rows.get(['a'])).to.include({ name: 'first', count: 1 });
        rows.update(['a'], { count: 5, tags: ['z'], updated_at: later });
        await rows.flush();
      });
      const [a, b] = (await opened.db.knex(TABLE).orderBy('id')) as Record<string, unknown>[];
      expect(a).to.include({ name: 'first', count: 5, note: 'plain text' });
      expect(a!['tags']).to.deep.equal(['z']);
      expect(a!['updated_at']).to.deep.equal(later);
      expect(b).to.include({ name: "it's \"quoted\"\n", count: 2 });
    });

    it('given a table keyed by two columns, when a batch loads by both and by the leading one, then it finds exactly the rows with those keys', async () => {
      await opened.db.knex.transaction(async (trx) => {
        await insertRows(trx, EVENTS, [
          { item_id: 'a', revision: 1, detail: { replicas: 2 }, extra: ['one'] },
          { item_id: 'a', revision: 2, detail: [1, 2] },
          { item_id: 'b', revision: 1, detail: 'text', extra: null },
        ]);
      });
      await opened.db.knex.transaction(async (trx) => {
        const events = new RowBatch(trx, EVENTS, ['item_id', 'revision']);
        await events.load([
          ['a', 2],
          ['b', 2],
        ]);
        expect(events.filter(() => true).map((row) => [row['item_id'], row['revision']])).to.deep.equal([['a', 2]]);
        await events.loadWhere('item_id', ['b']);
        expect(events.get(['b', 1])).to.deep.include({ detail: 'text', extra: null });
      });
      const read = (await opened.db.knex(EVENTS).orderBy(['item_id', 'revision'])) as Record<string, unknown>[];
      expect(read).to.deep.equal([
        { item_id: 'a', revision: 1, detail: { replicas: 2 }, extra: ['one'] },
        { item_id: 'a', revision: 2, detail: [1, 2], extra: null },
        { item_id: 'b', revision: 1, detail: 'text', extra: null },
      ]);
    });

    it('given awkward values in every kind of column, when rows are added, then each column holds what the JSON document gives it', async () => {
      const awkward = "tab\there, line\nbreak, return\r, back\\slash, \"quote\", \\N, é \u{1F600}";
      const rows = [
        { id: 'a', name: awkward, count: 1, active: true, labels: { text: awkward, n: [1, null] }, tags: [awkward], note: awkward, updated_at: new Date('2026-03-04T05:06:07.089Z') },
        { id: 'b', name: '\\N', count: 2.5e1, active: false, labels: 'a jsonb string', tags: { a: 1 }, note: 'null', updated_at: '2026-03-04T05:06:07.089+01:00' },
        { id: 'c', name: { an: 'object in a text column' }, count: -0, active: 'true', labels: true, tags: 12, note: null, updated_at: new Date(0), extra: undefined },
      ];
      const json = (await opened.db.knex.raw('select * from json_populate_recordset(null::??, ?::json) order by id', [TABLE, JSON.stringify(rows)])) as
        | { rows: Record<string, unknown>[] }
        | Record<string, unknown>[];
      await opened.db.knex.transaction(async (trx) => {
        await trx(TABLE).del();
        await insertRows(
          trx,
          TABLE,
          rows.map(({ extra: _extra, ...row }) => row),
        );
      });
      const read = (await opened.db.knex(TABLE).orderBy('id')) as Record<string, unknown>[];
      expect(read).to.deep.equal(Array.isArray(json) ? json : json.rows);
      expect(read[0]!['name']).to.equal(awkward);
      expect(read[1]!['labels']).to.equal('a jsonb string');
    });
  });
}
