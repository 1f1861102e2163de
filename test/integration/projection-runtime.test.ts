// The projector runtime: batches applied with their checkpoint in one transaction, catch-up then live,
// read-your-writes, lag, and one active instance per projector.
import { expect } from 'chai';
import type { Knex } from 'knex';
import pg from 'pg';
import { pino } from 'pino';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import type { CountAfterOptions, Position, ReadAllOptions, ReadStreamOptions, RecordedEvent } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
import type { Projector, TableNames } from '../../projections/projector.js';
import { LAG_COUNT_LIMIT, ProjectionRuntime } from '../../projections/runtime.js';
import { createScratchDatabase } from '../support/postgres.js';
import { anEvent, events, uniqueStream } from '../support/events.js';
import { backends, type Backend } from '../support/projection-backends.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

/** Counts events per stream; fails on demand, to show a failed batch leaves nothing behind. */
function counter(name: string, options: { failOn?: (event: RecordedEvent) => boolean } = {}): Projector<'counts'> {
  // Table base names are global; each test's projector gets its own.
  const base = `counts_${name.replaceAll('-', '_')}`;
  const own = (tables: TableNames<'counts'>) => ({ counts: (tables as unknown as Record<string, string>)[base]! });
  return {
    name,
    version: 1,
    eventTypes: ['Counted'],
    tables: [base as 'counts'],
    async createTables(trx, named) {
      const tables = own(named);
      await trx.schema.createTable(tables.counts, (table) => {
        table.text('stream').primary();
        table.integer('count').notNullable();
        table.text('last_position').notNullable();
      });
    },
    async apply(batch, trx, named) {
      const tables = own(named);
      for (const event of batch) {
        if (options.failOn?.(event)) throw new Error('projector failed on purpose');
        await trx(tables.counts)
          .insert({ stream: event.stream, count: 1, last_position: event.position })
          .onConflict('stream')
          .merge({ count: trx.raw('?? + 1', [`${tables.counts}.count`]), last_position: event.position });
      }
    },
  };
}

async function counts(knex: Knex, tables: TableNames<'counts'>): Promise<Record<string, number>> {
  const [table] = Object.values(tables) as string[];
  const rows = (await knex(table!).select('stream', 'count')) as { stream: string; count: number }[];
  return Object.fromEntries(rows.map((row) => [row.stream, Number(row.count)]));
}

/** Notes how the store is read: how many events each read asks for, and what is counted instead. */
class ReadRecordingStore extends ForwardingEventStore {
  readonly reads: { kind: 'all' | 'stream'; limit: number | undefined }[] = [];
  readonly counts: (CountAfterOptions | undefined)[] = [];

  override readAll(options?: ReadAllOptions) {
    this.reads.push({ kind: 'all', limit: options?.limit });
    return super.readAll(options);
  }
  override readStream(stream: string, options?: ReadStreamOptions) {
    this.reads.push({ kind: 'stream', limit: options?.limit });
    return super.readStream(stream, options);
  }
  override countAfter(after: Position | undefined, options?: CountAfterOptions) {
    this.counts.push(options);
    return super.countAfter(after, options);
  }
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const backend of backends) {
  describe(`projection runtime on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      store = await PostgresEventStore.open(opened.db);
      await migrateSentinel(opened.db.knex);
    });
    after(async () => {
      await store?.close();
      await opened?.close();
    });

    it('catches up, then follows live appends, checkpointing with every batch', async () => {
      const projector = counter('catch-up');
      const a = uniqueStream('counted');
      await store.append(a, events(120, 'Counted'));
      await store.append(uniqueStream('other'), events(5, 'Ignored'));
      const runtime = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease(), batchSize: 50 });
      await runtime.start();
      try {
        const tables = await runtime.tables(projector);
        await eventually(async () => (await counts(opened.db.knex, tables))[a] === 120);
        const b = uniqueStream('counted');
        const written = await store.append(b, events(7, 'Counted'));
        expect(await runtime.waitFor(written.position, ['catch-up'], 10_000)).to.equal(true);
        expect((await counts(opened.db.knex, tables))[b]).to.equal(7);
        const [status] = (await runtime.status()).filter((s) => s.name === 'catch-up');
        expect(status).to.deep.include({ eventsApplied: 127, position: written.position, lagEvents: 0, lagSeconds: 0, active: true });
      } finally {
        await runtime.stop();
      }
    });

    it('given a projector far behind on a log of large events, then its lag is counted by the store, reading one event at most', async () => {
      const projector = counter('large-lag');
      const first = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease() });
      await first.start();
      const caughtUp = await store.append(uniqueStream('counted'), events(1, 'Counted'));
      expect(await first.waitFor(caughtUp.position, ['large-lag'], 10_000)).to.equal(true);
      await first.stop();

      // 150 events of 64 KB that it reads, beside others it does not.
      const payload = 'x'.repeat(64 * 1024);
      let last = caughtUp;
      for (let i = 0; i < 5; i++) {
        last = await store.append(uniqueStream('counted'), Array.from({ length: 30 }, () => anEvent('Counted', { payload })));
        await store.append(uniqueStream('other'), events(3, 'Ignored'));
      }
      await eventually(() => store.isSettled(last.position));

      const recording = new ReadRecordingStore(store);
      const idle = new ProjectionRuntime(opened.db.knex, recording, [projector], { logger, lease: opened.lease() });
      const [status] = (await idle.status()).filter((s) => s.name === 'large-lag');

      expect(status).to.deep.include({ position: caughtUp.position, lagEvents: 150, active: false });
      expect(status!.lagSeconds).to.be.above(0);
      expect(recording.counts).to.deep.include({ filter: { types: ['Counted'] }, limit: LAG_COUNT_LIMIT });
      expect(recording.reads.filter((read) => read.kind === 'stream' || read.limit !== 1)).to.deep.equal([]);
    });

    it('never applies an event twice or loses one across restarts, and a failed batch leaves nothing behind', async () => {
      let failing = true;
      const stream = uniqueStream('counted');
      const projector = counter('restarts', { failOn: (event) => failing && event.stream === stream && (event.data as { i: number }).i === 30 });
      await store.append(stream, events(60, 'Counted'));
      const first = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease(), batchSize: 25 });
      await first.start();
      const tables = await first.tables(projector);
      // The batch holding event 30 fails again and again: what is applied is exactly what the checkpoint says.
      await eventually(async () => ((await counts(opened.db.knex, tables))[stream] ?? 0) > 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const applied = await counts(opened.db.knex, tables);
      const [status] = (await first.status()).filter((s) => s.name === 'restarts');
      expect(applied[stream]).to.be.below(31);
      expect(status!.eventsApplied).to.equal(Object.values(applied).reduce((a, b) => a + b, 0));
      await first.stop();

      failing = false;
      const second = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease(), batchSize: 25 });
      await second.start();
      try {
        await eventually(async () => (await counts(opened.db.knex, tables))[stream] === 60);
        await store.append(stream, events(3, 'Counted'));
        await eventually(async () => (await counts(opened.db.knex, tables))[stream] === 63);
      } finally {
        await second.stop();
      }
    });

    it('answers read-your-writes for a position the projector does not read, and times out when it is stopped', async () => {
      const projector = counter('ryw');
      const runtime = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease() });
      await runtime.start();
      const unrelated = await store.append(uniqueStream('other'), events(1, 'Ignored'));
      expect(await runtime.waitFor(unrelated.position, ['ryw'], 5_000)).to.equal(true);
      await runtime.stop();
      const pending = await store.append(uniqueStream('counted'), events(1, 'Counted'));
      expect(await runtime.waitFor(pending.position, ['ryw'], 100)).to.equal(false);
    });

    it('read-your-writes waits while a transaction anywhere on the server holds the visible horizon back', async function () {
      if (backend.name !== 'PostgreSQL') return this.skip();
      const projector = counter('horizon');
      const runtime = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease() });
      await runtime.start();
      // Another database on the same server, as another application would be: its open transaction holds an id.
      const elsewhere = await createScratchDatabase();
      const other = new pg.Client({ connectionString: elsewhere.url });
      await other.connect();
      try {
        await other.query('begin');
        await other.query('select pg_current_xact_id()');
        const stream = uniqueStream('counted');
        const written = await store.append(stream, events(1, 'Counted'));

        expect(await store.isSettled(written.position)).to.equal(false);
        expect((await store.unsettled()).events).to.be.at.least(1);
        expect(await runtime.waitFor(written.position, ['horizon'], 300)).to.equal(false);
        expect((await counts(opened.db.knex, await runtime.tables(projector)))[stream]).to.equal(undefined);

        await other.query('commit');
        expect(await runtime.waitFor(written.position, ['horizon'], 10_000)).to.equal(true);
        expect((await counts(opened.db.knex, await runtime.tables(projector)))[stream]).to.equal(1);
        expect(await store.isSettled(written.position)).to.equal(true);
      } finally {
        await other.end();
        await elsewhere.drop();
        await runtime.stop();
      }
    });

    it('builds a new projector version beside the old generation, which serves until the new one is swapped in', async () => {
      const stream = uniqueStream('counted');
      await store.append(stream, events(40, 'Counted'));
      const v1 = counter('upgrade');
      const old = new ProjectionRuntime(opened.db.knex, store, [v1], { logger, lease: opened.lease() });
      await old.start();
      const oldTables = await old.tables(v1);
      await eventually(async () => (await counts(opened.db.knex, oldTables))[stream] === 40);
      await old.stop();

      // Version 2 counts every event twice, and slowly, so the rebuild is still going when it is looked at.
      const base = counter('upgrade');
      const v2: typeof base = {
        ...base,
        version: 2,
        async apply(batch, trx, tables) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          await base.apply([...batch, ...batch], trx, tables);
        },
      };
      const upgraded = new ProjectionRuntime(opened.db.knex, store, [v2], { logger, lease: opened.lease(), batchSize: 5 });
      await upgraded.start();
      try {
        await new Promise((resolve) => setTimeout(resolve, 50));
        // Mid-rebuild, readers are still on the old generation with everything it had, not on an empty table.
        expect(await upgraded.tables(v2)).to.deep.equal(oldTables);
        expect((await counts(opened.db.knex, oldTables))[stream]).to.equal(40);

        await eventually(async () => JSON.stringify(await upgraded.tables(v2)) !== JSON.stringify(oldTables));
        const newTables = await upgraded.tables(v2);
        expect((await counts(opened.db.knex, newTables))[stream]).to.equal(80);
        const written = await store.append(stream, events(2, 'Counted'));
        expect(await upgraded.waitFor(written.position, ['upgrade'], 10_000)).to.equal(true);
        expect((await counts(opened.db.knex, newTables))[stream]).to.equal(84);
        const [status] = (await upgraded.status()).filter((s) => s.name === 'upgrade');
        expect(status).to.deep.include({ version: 2, generation: 2 });
      } finally {
        await upgraded.stop();
      }
    });

    it('runs one active instance per projector; a standby takes over when the active one goes', async function () {
      if (backend.name === 'PGlite') return this.skip(); // one process by construction
      const projector = counter('leased');
      const stream = uniqueStream('counted');
      const one = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease(), standbyRetryMs: 50 });
      const two = new ProjectionRuntime(opened.db.knex, store, [projector], { logger, lease: opened.lease(), standbyRetryMs: 50 });
      await one.start();
      await two.start();
      try {
        await store.append(stream, events(10, 'Counted'));
        const tables = await one.tables(projector);
        await eventually(async () => (await counts(opened.db.knex, tables))[stream] === 10);
        const active = async () => [(await one.status()).find((s) => s.name === 'leased')!.active, (await two.status()).find((s) => s.name === 'leased')!.active];
        const before = await active();
        expect(before.filter(Boolean)).to.have.length(1);
        await (before[0] ? one : two).stop();
        await store.append(stream, events(5, 'Counted'));
        await eventually(async () => (await counts(opened.db.knex, tables))[stream] === 15);
      } finally {
        await one.stop();
        await two.stop();
      }
    });
  });
}
