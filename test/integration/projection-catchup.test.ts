// Catch-up in large batches, live in small ones: while the runtime is behind the log its batches grow (each a
// transaction with its checkpoint), and once it has reached the head they are back to the live size.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import type { EventStore } from '../../domain/event-store.js';
import { ProjectionRuntime, type ProjectionMetrics } from '../../projections/runtime.js';
import { countOf, counter } from '../support/counting-projector.js';
import { events, settled, uniqueStream } from '../support/events.js';
import { backends, type Backend } from '../support/projection-backends.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });


/** The events of each batch a projector applied, in order. */
function recordingBatches(): { metrics: ProjectionMetrics; batches: Map<string, number[]> } {
  const batches = new Map<string, number[]>();
  return {
    batches,
    metrics: {
      applied(projector, count) {
        if (count > 0) batches.set(projector, [...(batches.get(projector) ?? []), count]);
      },
      lag: () => undefined,
    },
  };
}

async function appendMany(store: EventStore, stream: string, type: string, count: number): Promise<string> {
  let position = '';
  for (let i = 0; i < count; i += 50) position = (await store.append(stream, events(Math.min(50, count - i), type))).position;
  return position;
}

for (const backend of backends) {
  describe(`projection catch-up on ${backend.name}`, function () {
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

    it('applies a history in batches that grow while it is behind, and live appends in batches of the live size', async () => {
      const type = `Counted${randomUUID().slice(0, 8)}`;
      const projectors = [counter(`catch-up-a-${type}`, type), counter(`catch-up-b-${type}`, type)];
      const stream = uniqueStream('counted');
      // The history is visible before the runtime starts: a transaction open elsewhere on the server would hide its
      // newest events, the first reads would come back short, and the runtime would rightly take itself to be live.
      await settled(store, await appendMany(store, stream, type, 1000));

      const { metrics, batches } = recordingBatches();
      const runtime = new ProjectionRuntime(opened.db.knex, store, projectors, { logger, lease: opened.lease(), batchSize: 10, catchUpBatchSize: 200, metrics });
      await runtime.start();
      try {
        let last = await appendMany(store, stream, type, 50);
        expect(await runtime.waitFor(last, projectors.map((p) => p.name), 20_000)).to.equal(true);
        for (const projector of projectors) {
          expect(await countOf(opened.db.knex, runtime, projector, stream)).to.equal(1050);
          const sizes = batches.get(projector.name)!;
          // Each batch one transaction: 10, 20, 40, 80, 160, then 200 at a time, rather than a hundred of ten.
          expect(sizes.slice(0, 5)).to.deep.equal([10, 20, 40, 80, 160]);
          expect(Math.max(...sizes)).to.equal(200);
          expect(sizes.length).to.be.below(20);
        }

        // At the head: what comes next is applied in batches of the live size, however much arrives at once.
        const before = new Map(projectors.map((p) => [p.name, batches.get(p.name)!.length]));
        last = await appendMany(store, stream, type, 100);
        expect(await runtime.waitFor(last, projectors.map((p) => p.name), 20_000)).to.equal(true);
        for (const projector of projectors) {
          expect(await countOf(opened.db.knex, runtime, projector, stream)).to.equal(1150);
          const live = batches.get(projector.name)!.slice(before.get(projector.name));
          expect(live.reduce((a, b) => a + b, 0)).to.equal(100);
          expect(Math.max(...live)).to.be.at.most(10);
        }
      } finally {
        await runtime.stop();
      }
    });

    it('lets a projector far behind catch up on its own in growing batches too', async () => {
      const type = `Counted${randomUUID().slice(0, 8)}`;
      const stream = uniqueStream('counted');
      const early = counter(`early-${type}`, type);
      const first = new ProjectionRuntime(opened.db.knex, store, [early], { logger, lease: opened.lease(), batchSize: 10, catchUpBatchSize: 10 });
      await appendMany(store, stream, type, 20);
      await first.start();
      try {
        expect(await first.waitFor(await appendMany(store, stream, type, 10), [early.name], 20_000)).to.equal(true);
      } finally {
        await first.stop();
      }
      await settled(store, await appendMany(store, stream, type, 600));

      const late = counter(`late-${type}`, type);
      const { metrics, batches } = recordingBatches();
      const runtime = new ProjectionRuntime(opened.db.knex, store, [early, late], { logger, lease: opened.lease(), batchSize: 10, catchUpBatchSize: 100, metrics });
      await runtime.start();
      try {
        const last = await appendMany(store, stream, type, 10);
        expect(await runtime.waitFor(last, [early.name, late.name], 20_000)).to.equal(true);
        expect(await countOf(opened.db.knex, runtime, early, stream)).to.equal(640);
        expect(await countOf(opened.db.knex, runtime, late, stream)).to.equal(640);
        // The late one read its 640 events in batches of up to 100, not 64 batches of 10.
        const sizes = batches.get(late.name)!;
        expect(Math.max(...sizes)).to.equal(100);
        expect(sizes.length).to.be.below(20);
      } finally {
        await runtime.stop();
      }
    });
  });
}
