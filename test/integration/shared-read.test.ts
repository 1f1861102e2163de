// One read of the log for every projector: given N projectors in step, each batch is read from the store once;
// given one far behind, it catches up on reads of its own while the others read only what is new to them.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { ChangeSignal } from '../../adapters/event-store/change-signal.js';
import { pollingSubscription } from '../../adapters/event-store/polling-subscription.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import type { EventStore, EventToAppend, ExpectedRevision, ReadAllOptions, SubscribeOptions } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { countOf, counter } from '../support/counting-projector.js';
import { events, settled, uniqueStream } from '../support/events.js';
import { backends, type Backend } from '../support/projection-backends.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

/**
 * The store, with every read of events counted: reads made for a subscription apart from reads made directly
 * (read-your-writes' probes for one event aside).
 */
class CountingStore extends ForwardingEventStore {
  readonly reads = { subscribed: { pages: 0, events: 0 }, direct: { pages: 0, events: 0 } };
  subscriptions = 0;
  private readonly signal = new ChangeSignal();

  override async append(stream: string, appended: EventToAppend[], options?: { expected?: ExpectedRevision }) {
    const result = await this.inner.append(stream, appended, options);
    this.signal.notify();
    return result;
  }

  override readAll(options?: ReadAllOptions) {
    return this.read('direct', options);
  }

  override subscribe(options: SubscribeOptions = {}) {
    this.subscriptions += 1;
    return pollingSubscription((after, limit) => this.read('subscribed', { after, filter: options.filter, limit }), this.signal, options, {
      batchSize: 1000,
      minWaitMs: 5,
      maxWaitMs: 100,
    });
  }

  private async read(kind: 'subscribed' | 'direct', options?: ReadAllOptions) {
    const page = await this.inner.readAll(options);
    if (options?.limit === 1) return page;
    if (page.events.length > 0) this.reads[kind].pages += 1;
    this.reads[kind].events += page.events.length;
    return page;
  }
}


/** Appends `count` events in appends of ten, and returns the position of the last. */
async function appendMany(store: EventStore, stream: string, type: string, count: number): Promise<string> {
  let position = '';
  for (let i = 0; i < count; i += 10) position = (await store.append(stream, events(Math.min(10, count - i), type))).position;
  return position;
}

for (const backend of backends) {
  describe(`one shared read of the log on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let inner: PostgresEventStore;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      inner = await PostgresEventStore.open(opened.db);
      await migrateSentinel(opened.db.knex);
    });
    after(async () => {
      await inner?.close();
      await opened?.close();
    });

    it('reads each batch once for N projectors in step, and each applies every event once', async () => {
      const type = `Counted${randomUUID().slice(0, 8)}`;
      const store = new CountingStore(inner);
      const projectors = [1, 2, 3, 4].map((n) => counter(`in-step-${n}-${type}`, type));
      const stream = uniqueStream('counted');
      // The history is counted in pages of what the log shows: wait until it shows all 200 (a transaction open
      // elsewhere on the server holds back what PostgreSQL shows).
      await settled(inner, await appendMany(store, stream, type, 200));

      const runtime = new ProjectionRuntime(opened.db.knex, store, projectors, { logger, lease: opened.lease(), batchSize: 50 });
      await runtime.start();
      try {
        const last = await appendMany(store, stream, type, 20);
        expect(await runtime.waitFor(last, projectors.map((p) => p.name), 20_000)).to.equal(true);
        for (const projector of projectors) expect(await countOf(opened.db.knex, runtime, projector, stream)).to.equal(220);
        // 220 events read once, whatever the number of projectors; nothing read for one projector alone. The history
        // is read in pages that grow while they come back full (50, 100, then what is left), the live appends by the
        // one subscription.
        expect(store.subscriptions).to.equal(1);
        expect(store.reads.direct.events + store.reads.subscribed.events).to.equal(220);
        expect(store.reads.direct.pages).to.equal(3);
        // Three pages of the history (the last may hold live appends too), then up to two for the live appends: not
        // four reads of each.
        expect(store.reads.direct.pages + store.reads.subscribed.pages).to.be.within(3, 5);
      } finally {
        await runtime.stop();
      }
    });

    it('lets a projector far behind catch up on its own while the others read only what is new to them', async () => {
      const type = `Counted${randomUUID().slice(0, 8)}`;
      const stream = uniqueStream('counted');
      const early = [1, 2, 3].map((n) => counter(`early-${n}-${type}`, type));
      const first = new ProjectionRuntime(opened.db.knex, inner, early, { logger, lease: opened.lease(), batchSize: 50 });
      await first.start();
      try {
        const last = await appendMany(inner, stream, type, 200);
        expect(await first.waitFor(last, early.map((p) => p.name), 20_000)).to.equal(true);
      } finally {
        await first.stop();
      }

      const store = new CountingStore(inner);
      // Visible before the runtime starts, so that the late one's first reads find the whole history.
      await settled(inner, await appendMany(store, stream, type, 100));
      const late = counter(`late-${type}`, type);
      // Batches of one size throughout, so that every read the shared read makes is its subscription's.
      const runtime = new ProjectionRuntime(opened.db.knex, store, [...early, late], { logger, lease: opened.lease(), batchSize: 50, catchUpBatchSize: 50 });
      await runtime.start();
      try {
        const everyone = [...early, late].map((p) => p.name);
        let last = await appendMany(store, stream, type, 10);
        expect(await runtime.waitFor(last, everyone, 20_000)).to.equal(true);
        // The late one read the whole history by itself; the shared read began where the others had stopped.
        expect(store.reads.direct.events).to.be.at.least(300);
        expect(store.reads.subscribed.events).to.equal(110);
        for (const projector of [...early, late]) expect(await countOf(opened.db.knex, runtime, projector, stream)).to.equal(310);

        // Once it has caught up it shares the read: what comes next is read once for all four.
        const direct = store.reads.direct.events;
        last = await appendMany(store, stream, type, 30);
        expect(await runtime.waitFor(last, everyone, 20_000)).to.equal(true);
        expect(store.reads.direct.events).to.equal(direct);
        expect(store.reads.subscribed.events).to.equal(140);
        for (const projector of [...early, late]) expect(await countOf(opened.db.knex, runtime, projector, stream)).to.equal(340);
      } finally {
        await runtime.stop();
      }
    });
  });
}
