// Subscriptions caught up with the log share its reads: an append costs one read of the log, however many
// subscriptions a process has and whatever their filters, on PGlite and, when reachable, PostgreSQL.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import type { Database } from '../../adapters/postgres/database.js';
import type { EventFilter, RecordedEvent, Subscription } from '../../domain/event-store.js';
import { eventually } from '../support/eventually.js';
import { backends, type Backend } from '../support/projection-backends.js';

/** The database, counting the reads of the log sent (every shape of `readAll`). */
function counting(inner: Database): { db: Database; reads: () => number } {
  let reads = 0;
  return {
    reads: () => reads,
    db: {
      ...inner,
      query: <Row>(text: string, params?: unknown[], prepareAs?: string): Promise<Row[]> => {
        if (prepareAs?.startsWith('sentinel_read_all') || text.includes('with scan as not materialized')) reads += 1;
        return inner.query<Row>(text, params, prepareAs);
      },
    },
  };
}

/** Everything a subscription hands out, gathered in the background until it is closed. */
function gather(subscription: Subscription): RecordedEvent[] {
  const seen: RecordedEvent[] = [];
  void (async () => {
    for await (const event of subscription) seen.push(event);
  })();
  return seen;
}

for (const backend of backends) {
  describe(`subscriptions sharing the head of the log on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
    });
    after(() => opened?.close());

    it('given twelve subscriptions with their own filters at the head, when events are appended one at a time, then each append costs about one read, and each subscription gets exactly its events', async () => {
      const { db, reads } = counting(opened.db);
      // No timed polling in between: every read here is one an append's announcement asked for.
      const store = await PostgresEventStore.open(db, { minWaitMs: 60_000, maxWaitMs: 60_000, notifyOtherProcesses: false });
      const run = randomUUID().slice(0, 8);
      const types = ['A', 'B', 'C', 'D'].map((t) => `${t}${run}`);
      const filters: EventFilter[] = [
        ...types.map((type) => ({ types: [type] })),
        { types: [types[0]!, types[1]!] },
        { types: [types[2]!], streamPrefixes: [`odd-${run}`] },
        ...Array.from({ length: 5 }, () => ({ types })),
        { streamPrefixes: [`even-${run}`] },
      ];
      const start = (await store.readAll({ limit: 1_000_000 })).checkpoint;
      const subscriptions = filters.map((filter) => store.subscribe({ after: start, filter }));
      const seen = subscriptions.map(gather);
      try {
        const appends = 40;
        // The first announcement brings every subscription to the head on its own read; the counting starts after.
        await store.append(`even-${run}-warm`, [{ id: randomUUID(), type: types[0]!, data: {} }]);
        const warmed = [0, 4, 6, 7, 8, 9, 10, 11];
        await eventually('every subscription at the head', async () => warmed.every((i) => seen[i]!.length === 1), (ok) => ok, 10_000);
        const before = reads();
        for (let n = 0; n < appends; n++) {
          await store.append(`${n % 2 ? 'odd' : 'even'}-${run}-${n}`, [{ id: randomUUID(), type: types[n % 4]!, data: { n } }]);
          // One append at a time, each read by everyone before the next: the worst case for sharing.
          await eventually('the append read', async () => seen[8]!.length === n + 2, (ok) => ok, 10_000);
        }
        const perAppend = (reads() - before) / appends;
        // Twelve subscriptions reading for themselves took 12 to 24 reads an append.
        expect(perAppend, `${reads() - before} reads for ${appends} appends`).to.be.at.most(3);

        const all = await store.readAll({ after: start, limit: 1000 });
        filters.forEach((filter, i) => {
          const expected = all.events
            .filter((e) => !filter.types || filter.types.includes(e.type))
            .filter((e) => !filter.streamPrefixes || filter.streamPrefixes.some((p) => e.stream.startsWith(p)))
            .map((e) => e.id);
          expect(seen[i]!.map((e) => e.id), JSON.stringify(filter)).to.deep.equal(expected);
        });
      } finally {
        await Promise.all(subscriptions.map((s) => s.close()));
        await store.close();
      }
    });
  });
}
