// The one contract every EventStore adapter must keep; run against each adapter by event-store.test.ts.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import {
  ConcurrencyConflict,
  DuplicateEventConflict,
  InvalidEventStoreRequest,
  comparePositions,
  isCorrelationReader,
  type EventStore,
  type EventToAppend,
  type RecordedEvent,
} from '../../domain/event-store.js';
import { anEvent, collect, events, settled, uniqueStream } from '../support/events.js';
import { eventually } from '../support/eventually.js';
import { rejection } from '../support/rejection.js';

export interface EventStoreFixture {
  store(): EventStore;
  /** Some guarantees are the adapter's own; a missing one is skipped with its reason. */
  lacks?: { contentMismatch?: string; maxAge?: string };
}

async function settleAll<T>(promises: Promise<T>[]): Promise<{ fulfilled: T[]; rejected: unknown[] }> {
  const fulfilled: T[] = [];
  const rejected: unknown[] = [];
  for (const result of await Promise.allSettled(promises)) {
    if (result.status === 'fulfilled') fulfilled.push(result.value);
    else rejected.push(result.reason);
  }
  return { fulfilled, rejected };
}

async function readEverything(store: EventStore, after?: string): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  let checkpoint = after;
  for (;;) {
    const page = await store.readAll({ after: checkpoint, limit: 1000 });
    all.push(...page.events);
    if (page.events.length === 0) return all;
    checkpoint = page.checkpoint;
  }
}

export function eventStoreContract(fixture: EventStoreFixture): void {
  const store = () => fixture.store();

  describe('append and readStream', () => {
    it('given a new stream, when events are appended, then they read back in order with revisions from 0', async () => {
      const stream = uniqueStream();
      const batch = events(3, 'WorkloadRegistered');
      const result = await store().append(stream, batch, { expected: 'no_stream' });
      expect(result).to.include({ revision: 2, duplicate: false });

      const read = await store().readStream(stream);
      expect(read.map((e) => e.revision)).to.deep.equal([0, 1, 2]);
      expect(read.map((e) => e.id)).to.deep.equal(batch.map((e) => e.id));
      expect(read[2]!.position).to.equal(result.position);
      expect(read[0]).to.deep.include({ stream, type: 'WorkloadRegistered', schemaVersion: 1, data: { i: 0 } });
      expect(read[0]!.metadata).to.deep.equal(batch[0]!.metadata);
      expect(read[0]!.recordedAt).to.be.instanceOf(Date);
      expect(Math.abs(read[0]!.recordedAt.getTime() - Date.now())).to.be.below(60_000);
      expect(comparePositions(read[0]!.position, read[1]!.position)).to.equal(-1);
    });

    it('keeps the schema version an event was written with', async () => {
      const stream = uniqueStream();
      await store().append(stream, [{ ...anEvent('DeploymentRequested'), schemaVersion: 3 }]);
      const [event] = await store().readStream(stream);
      expect(event!.schemaVersion).to.equal(3);
    });

    it('reads backwards, from a revision, up to a revision and with a limit', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(10));
      const revisions = async (options: Parameters<EventStore['readStream']>[1]) =>
        (await store().readStream(stream, options)).map((e) => e.revision);
      expect(await revisions({ from: 7 })).to.deep.equal([7, 8, 9]);
      expect(await revisions({ from: 2, to: 4 })).to.deep.equal([2, 3, 4]);
      expect(await revisions({ from: 5, limit: 2 })).to.deep.equal([5, 6]);
      expect(await revisions({ direction: 'backwards', limit: 3 })).to.deep.equal([9, 8, 7]);
      expect(await revisions({ direction: 'backwards', from: 4, limit: 2 })).to.deep.equal([4, 3]);
      expect(await revisions({ direction: 'backwards', from: 4, to: 2 })).to.deep.equal([4, 3, 2]);
    });

    it('reads a stream that does not exist as empty', async () => {
      expect(await store().readStream(uniqueStream())).to.deep.equal([]);
    });
  });

  describe('expected state, enforced at write time', () => {
    it('no_stream: allowed on a new stream, refused on an existing one with the actual revision', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(2), { expected: 'no_stream' });
      const error = await rejection(store().append(stream, events(1), { expected: 'no_stream' }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ stream, expected: 'no_stream', actual: 1 });
    });

    it('stream_exists: refused on a missing stream, allowed on an existing one', async () => {
      const stream = uniqueStream();
      const error = await rejection(store().append(stream, events(1), { expected: 'stream_exists' }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ expected: 'stream_exists', actual: 'no_stream' });
      expect(await store().readStream(stream)).to.deep.equal([]);

      await store().append(stream, events(1));
      const result = await store().append(stream, events(1), { expected: 'stream_exists' });
      expect(result.revision).to.equal(1);
    });

    it('exact revision: allowed when it matches, refused with the actual revision when it does not', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(3));
      expect((await store().append(stream, events(1), { expected: 2 })).revision).to.equal(3);
      const error = await rejection(store().append(stream, events(1), { expected: 2 }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ expected: 2, actual: 3 });
      const missing = await rejection(store().append(uniqueStream(), events(1), { expected: 0 }));
      expect(missing).to.include({ actual: 'no_stream' });
    });

    it('20 concurrent no_stream appends to one new stream: exactly one succeeds', async () => {
      const stream = uniqueStream();
      const { fulfilled, rejected } = await settleAll(
        Array.from({ length: 20 }, () => store().append(stream, events(2), { expected: 'no_stream' })),
      );
      expect(fulfilled).to.have.length(1);
      expect(rejected).to.have.length(19);
      for (const error of rejected) expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect((await store().readStream(stream)).map((e) => e.revision)).to.deep.equal([0, 1]);
    });

    it('20 concurrent appends expecting the same exact revision: exactly one succeeds', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(5));
      const { fulfilled, rejected } = await settleAll(
        Array.from({ length: 20 }, () => store().append(stream, events(1), { expected: 4 })),
      );
      expect(fulfilled).to.have.length(1);
      expect(fulfilled[0]!.revision).to.equal(5);
      for (const error of rejected) expect(error).to.be.instanceOf(ConcurrencyConflict).and.include({ actual: 5 });
      expect(await store().readStream(stream)).to.have.length(6);
    });

    it('concurrent appends with any: none lost, revisions dense', async () => {
      const stream = uniqueStream();
      await Promise.all(Array.from({ length: 20 }, () => store().append(stream, events(3))));
      expect((await store().readStream(stream)).map((e) => e.revision)).to.deep.equal([...Array(60).keys()]);
    });
  });

  describe('idempotency', () => {
    it('re-appending the same events returns the original result and writes nothing', async () => {
      const stream = uniqueStream();
      const batch = events(2);
      const first = await store().append(stream, batch, { expected: 'no_stream' });
      const again = await store().append(stream, batch, { expected: 'no_stream' });
      expect(again).to.deep.equal({ ...first, duplicate: true });
      expect(await store().readStream(stream)).to.have.length(2);
    });

    it('the same event id with different content is an error and writes nothing', async function () {
      if (fixture.lacks?.contentMismatch) this.skip();
      const stream = uniqueStream();
      const event = anEvent('ScaleRequested', { replicas: 2 });
      await store().append(stream, [event]);
      const error = await rejection(store().append(stream, [{ ...event, data: { replicas: 3 } }]));
      expect(error).to.be.instanceOf(DuplicateEventConflict);
      const partial = await rejection(store().append(stream, [event, anEvent()]));
      expect(partial).to.be.instanceOf(DuplicateEventConflict);
      expect(await store().readStream(stream)).to.have.length(1);
    });

    it('concurrent retries of one append store it once', async () => {
      const stream = uniqueStream();
      const batch = events(2);
      const results = await Promise.all(Array.from({ length: 10 }, () => store().append(stream, batch)));
      expect(results.filter((r) => !r.duplicate)).to.have.length(1);
      expect(new Set(results.map((r) => r.position)).size).to.equal(1);
      expect(await store().readStream(stream)).to.have.length(2);
    });
  });

  describe('appendMany', () => {
    it('given two new streams, when appended together, then both read back and the results follow the order given', async () => {
      const deployment = uniqueStream('deployment');
      const quota = uniqueStream('quota');
      const scaled = events(2, 'DeploymentScaled');
      const admitted = [{ ...anEvent('ChangeAdmitted', { gpus: 2 }), schemaVersion: 2 }];
      const results = await store().appendMany([
        { stream: deployment, events: scaled, expected: 'no_stream' },
        { stream: quota, events: admitted },
      ]);

      const [readDeployment, readQuota] = [await store().readStream(deployment), await store().readStream(quota)];
      expect(results).to.have.length(2);
      expect(results[0]).to.deep.equal({ revision: 1, position: readDeployment[1]!.position, duplicate: false });
      expect(results[1]).to.deep.equal({ revision: 0, position: readQuota[0]!.position, duplicate: false });
      expect(readDeployment.map((e) => e.id)).to.deep.equal(scaled.map((e) => e.id));
      expect(readQuota[0]).to.deep.include({ type: 'ChangeAdmitted', schemaVersion: 2, data: { gpus: 2 }, metadata: admitted[0]!.metadata });
      // Stream by stream, in the order given.
      const positions = [...readDeployment, ...readQuota].map((e) => e.position);
      expect([...positions].sort(comparePositions)).to.deep.equal(positions);
    });

    it('when one stream is not in its expected state, then nothing of any stream is written and the conflict names it', async () => {
      const free = uniqueStream('deployment');
      const taken = uniqueStream('quota');
      await store().append(taken, events(2));
      for (const order of ['taken last', 'taken first']) {
        const appends = [
          { stream: free, events: events(1), expected: 'no_stream' as const },
          { stream: taken, events: events(1), expected: 0 },
        ];
        const error = await rejection(store().appendMany(order === 'taken last' ? appends : appends.reverse()));
        expect(error, order).to.be.instanceOf(ConcurrencyConflict);
        expect(error, order).to.include({ stream: taken, expected: 0, actual: 1 });
      }
      expect(await store().readStream(free)).to.deep.equal([]);
      expect(await store().readStream(taken)).to.have.length(2);
    });

    it('given a call already stored, when it is sent again, then each append is answered as a duplicate and nothing is written', async () => {
      const a = uniqueStream('deployment');
      const b = uniqueStream('quota');
      await store().append(b, events(3));
      const call = [
        { stream: a, events: events(2), expected: 'no_stream' as const },
        { stream: b, events: events(1), expected: 2 },
      ];
      const first = await store().appendMany(call);
      const again = await store().appendMany(call);
      expect(again).to.deep.equal(first.map((result) => ({ ...result, duplicate: true })));
      const withAny = await store().appendMany(call.map(({ stream, events }) => ({ stream, events })));
      expect(withAny).to.deep.equal(again);
      expect(await store().readStream(a)).to.have.length(2);
      expect(await store().readStream(b)).to.have.length(4);
    });

    it('given one append of a call already stored and another not, then it is a duplicate conflict and writes nothing', async () => {
      const a = uniqueStream('deployment');
      const b = uniqueStream('quota');
      const stored = events(1);
      await store().append(a, stored);
      const error = await rejection(store().appendMany([{ stream: a, events: stored }, { stream: b, events: events(1) }]));
      expect(error).to.be.instanceOf(DuplicateEventConflict).and.include({ stream: a });
      expect(await store().readStream(b)).to.deep.equal([]);
    });

    it('20 concurrent calls expecting the same revisions: exactly one succeeds, and only its events are stored', async () => {
      const a = uniqueStream('deployment');
      const b = uniqueStream('quota');
      await store().append(a, events(1));
      await store().append(b, events(1));
      const { fulfilled, rejected } = await settleAll(
        Array.from({ length: 20 }, () =>
          store().appendMany([
            { stream: a, events: events(1), expected: 0 },
            { stream: b, events: events(2), expected: 0 },
          ]),
        ),
      );
      expect(fulfilled).to.have.length(1);
      for (const error of rejected) expect(error).to.be.instanceOf(ConcurrencyConflict).and.include({ actual: 1 });
      expect(await store().readStream(a)).to.have.length(2);
      expect(await store().readStream(b)).to.have.length(3);
    });

    it('concurrent calls with any, on the same streams in either order: none lost, revisions dense', async () => {
      const a = uniqueStream('deployment');
      const b = uniqueStream('quota');
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => {
          const pair = [
            { stream: a, events: events(2) },
            { stream: b, events: events(1) },
          ];
          return store().appendMany(i % 2 === 0 ? pair : pair.reverse());
        }),
      );
      expect((await store().readStream(a)).map((e) => e.revision)).to.deep.equal([...Array(16).keys()]);
      expect((await store().readStream(b)).map((e) => e.revision)).to.deep.equal([...Array(8).keys()]);
    });

    it('a subscriber sees every event of a call, in the order given', async () => {
      const category = `many${Date.now().toString(36)}`;
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      const subscription = store().subscribe({ after: start, filter: { streamPrefixes: [`${category}-`] } });
      const received = collect(subscription, 3, 10_000);
      const [first, second] = [events(1), events(2)];
      await store().appendMany([
        { stream: `${category}-b`, events: first },
        { stream: `${category}-a`, events: second },
      ]);
      expect((await received).map((e) => e.id)).to.deep.equal([...first, ...second].map((e) => e.id));
    });

    const refused: [string, () => Promise<unknown>, string][] = [
      ['no appends', () => store().appendMany([]), 'appends'],
      ['an append with no events', () => store().appendMany([{ stream: uniqueStream(), events: events(1) }, { stream: uniqueStream(), events: [] }]), 'appends.1.events'],
      ['a bad event id, naming where it is', () => store().appendMany([{ stream: uniqueStream(), events: [anEvent(), { ...anEvent(), id: 'nope' }] }]), 'appends.0.events.1.id'],
      ['a negative expected revision', () => store().appendMany([{ stream: uniqueStream(), events: events(1), expected: -1 }]), 'appends.0.expected'],
      ['one stream twice', () => {
        const stream = uniqueStream();
        return store().appendMany([{ stream, events: events(1) }, { stream, events: events(1) }]);
      }, 'appends.1.stream'],
    ];
    for (const [what, attempt, path] of refused) {
      it(`refuses ${what} with InvalidEventStoreRequest`, async () => {
        const error = await rejection(attempt());
        expect(error).to.be.instanceOf(InvalidEventStoreRequest);
        expect((error as Error).message).to.match(/^invalid /);
        expect((error as InvalidEventStoreRequest).issues.map((i) => i.path)).to.include(path);
      });
    }
  });

  describe('countAfter', () => {
    it('counts what readAll would return after a position: with and without a filter, and up to a limit', async () => {
      const marker = await store().append(uniqueStream('marker'), [anEvent('CountProbeMarker')]);
      const category = `count${Date.now().toString(36)}`;
      await store().append(`${category}-1`, [anEvent('CountProbeA'), anEvent('CountProbeB'), anEvent('CountProbeA')]);
      await store().append(`${category}-2`, [anEvent('CountProbeB'), anEvent('CountProbeA')]);
      const last = await store().append(uniqueStream('other'), [anEvent('CountProbeA')]);
      await settled(store(), last.position);
      const after = marker.position;

      expect(await store().countAfter(after)).to.equal((await readEverything(store(), after)).length).and.equal(6);
      expect(await store().countAfter(after, { filter: { types: ['CountProbeA'] } })).to.equal(4);
      expect(await store().countAfter(after, { filter: { types: ['CountProbeA', 'CountProbeB'] } })).to.equal(6);
      expect(await store().countAfter(after, { filter: { streamPrefixes: [`${category}-`] } })).to.equal(5);
      expect(await store().countAfter(after, { filter: { types: ['CountProbeA'], streamPrefixes: [`${category}-`] } })).to.equal(3);
      expect(await store().countAfter(after, { filter: { types: ['NoSuchEventType'] } })).to.equal(0);
      expect(await store().countAfter(after, { limit: 4 })).to.equal(4);
      expect(await store().countAfter(after, { filter: { types: ['CountProbeA'] }, limit: 2 })).to.equal(2);
      expect(await store().countAfter(after, { limit: 100 })).to.equal(6);
      expect(await store().countAfter(last.position)).to.equal(0);
      expect(await store().countAfter(undefined, { limit: 3 })).to.equal(3);
      expect(await store().countAfter(undefined, { filter: { types: ['CountProbeMarker'] } })).to.be.at.least(1);
    });

    it('refuses a malformed position, a zero limit and a bad filter', async () => {
      expect(await rejection(store().countAfter('garbage'))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(await rejection(store().countAfter(undefined, { limit: 0 }))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(await rejection(store().countAfter(undefined, { filter: { types: [''] } }))).to.be.instanceOf(InvalidEventStoreRequest);
    });
  });

  describe('bad input', () => {
    const cases: [string, () => Promise<unknown>][] = [
      ['an empty stream name', () => store().append('', events(1))],
      ['no events', () => store().append(uniqueStream(), [])],
      ['an event id that is not a UUID', () => store().append(uniqueStream(), [{ ...anEvent(), id: 'nope' }])],
      ['an event without a type', () => store().append(uniqueStream(), [{ ...anEvent(), type: '' }])],
      ['a negative expected revision', () => store().append(uniqueStream(), events(1), { expected: -1 })],
      ['duplicate ids inside one append', () => {
        const event = anEvent();
        return store().append(uniqueStream(), [event, event]);
      }],
      ['a malformed checkpoint', () => store().readAll({ after: 'garbage' })],
      ['a zero limit', () => store().readAll({ limit: 0 })],
    ];
    for (const [what, attempt] of cases) {
      it(`rejects ${what} with InvalidEventStoreRequest`, async () => {
        const error = await rejection(attempt());
        expect(error).to.be.instanceOf(InvalidEventStoreRequest);
        expect((error as Error).message).to.match(/^invalid /);
      });
    }

    it('a rejected append writes nothing', async () => {
      const stream = uniqueStream();
      await rejection(store().append(stream, [anEvent(), { ...anEvent(), id: 'bad' }]));
      expect(await store().readStream(stream)).to.deep.equal([]);
    });
  });

  describe('readAll', () => {
    it('pages through the log in global order with exclusive checkpoints', async () => {
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      const a = uniqueStream('alpha');
      const b = uniqueStream('beta');
      await store().append(a, events(3));
      await store().append(b, events(2));
      await settled(store(), (await store().append(a, events(1))).position);
      const firstPage = await store().readAll({ after: start, limit: 4 });
      expect(firstPage.events).to.have.length(4);
      const rest = await readEverything(store(), firstPage.checkpoint);
      const mine = [...firstPage.events, ...rest].filter((e) => e.stream === a || e.stream === b);
      expect(mine.map((e) => `${e.stream === a ? 'a' : 'b'}${e.revision}`)).to.deep.equal(['a0', 'a1', 'a2', 'b0', 'b1', 'a3']);
      const positions = mine.map((e) => e.position);
      expect([...positions].sort(comparePositions)).to.deep.equal(positions);
    });

    it('filters by event type and by stream prefix', async () => {
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      const category = `cat${Date.now().toString(36)}`;
      const stream = uniqueStream(category);
      await store().append(stream, [anEvent('FilterProbeA'), anEvent('FilterProbeB'), anEvent('FilterProbeA')]);
      await settled(store(), (await store().append(uniqueStream('other'), [anEvent('FilterProbeA')])).position);

      const byType = await store().readAll({ after: start, filter: { types: ['FilterProbeB'] } });
      expect(byType.events.map((e) => e.type)).to.deep.equal(['FilterProbeB']);

      const byPrefix = await store().readAll({ after: start, filter: { streamPrefixes: [`${category}-`] } });
      expect(byPrefix.events.map((e) => e.revision)).to.deep.equal([0, 1, 2]);

      const both = await store().readAll({
        after: start,
        filter: { types: ['FilterProbeA'], streamPrefixes: [`${category}-`] },
      });
      expect(both.events.map((e) => e.revision)).to.deep.equal([0, 2]);

      const none = await store().readAll({ after: start, filter: { types: ['NoSuchEventType'] } });
      expect(none.events).to.deep.equal([]);
    });

    it('a position is settled once nothing ordered before it can still commit; a bad position is refused', async () => {
      const written = await store().append(uniqueStream('settled'), events(1));
      // Eventually: a transaction elsewhere on a shared server may hold the horizon back for a moment.
      await eventually('the append to settle', () => store().isSettled(written.position), (settled) => settled, 10_000);
      expect(await rejection(store().isSettled('nowhere'))).to.be.instanceOf(InvalidEventStoreRequest);
    });

    it('a filtered read reports a checkpoint past what it looked at', async () => {
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      await store().append(uniqueStream('skipme'), events(5));
      const page = await store().readAll({ after: start, filter: { streamPrefixes: ['nothing-matches-'] } });
      expect(page.events).to.deep.equal([]);
      expect(page.checkpoint).to.be.a('string');
      expect(comparePositions(page.checkpoint!, start ?? '')).to.be.at.least(0);
    });
  });

  describe('subscribe', () => {
    it('16 concurrent writers, 20,000 events: a subscriber from the start gets each exactly once, streams in order', async function () {
      this.timeout(180_000);
      const before = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      const writers = 16;
      const perWriter = 1250;
      const category = `race${Date.now().toString(36)}`;
      const expected = new Set<string>();

      const subscription = store().subscribe({ after: before, filter: { streamPrefixes: [`${category}-`] } });
      const received = collect(subscription, writers * perWriter, 150_000);

      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          for (let i = 0; i < perWriter; i++) {
            const event = anEvent('RaceProbe', { w, i });
            expected.add(event.id);
            // 40 streams shared by all writers, so revisions of one stream come from many writers
            await store().append(`${category}-${(w * 7 + i) % 40}`, [event]);
          }
        }),
      );

      const got = await received;
      expect(got).to.have.length(expected.size);
      expect(new Set(got.map((e) => e.id)).size).to.equal(got.length, 'no event delivered twice');
      for (const event of got) expect(expected.has(event.id)).to.equal(true);
      const lastRevision = new Map<string, number>();
      for (const event of got) {
        const previous = lastRevision.get(event.stream) ?? -1;
        expect(event.revision, `${event.stream} in order`).to.equal(previous + 1);
        lastRevision.set(event.stream, event.revision);
      }
      for (let i = 1; i < got.length; i++) expect(comparePositions(got[i - 1]!.position, got[i]!.position)).to.equal(-1);
    });

    it('from a checkpoint taken mid-way, delivers exactly the remainder', async () => {
      const category = `mid${Date.now().toString(36)}`;
      const stream = `${category}-1`;
      await store().append(stream, events(50));
      const firstHalf = (await store().readStream(stream)).slice(0, 20);
      await store().append(stream, events(30));
      const rest = await collect(
        store().subscribe({ after: firstHalf.at(-1)!.position, filter: { streamPrefixes: [`${category}-`] } }),
        60,
      );
      expect(rest.map((e) => e.revision)).to.deep.equal([...Array(60).keys()].map((i) => i + 20));
    });

    it('stopped and restarted from its stored checkpoint, repeats nothing and loses nothing', async () => {
      const category = `restart${Date.now().toString(36)}`;
      const prefixes = [`${category}-`];
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      const writing = (async () => {
        for (let i = 0; i < 30; i++) await store().append(`${category}-${i % 3}`, events(5));
      })();
      const seen: RecordedEvent[] = [];
      let checkpoint = start;
      while (seen.length < 150) {
        const subscription = store().subscribe({ after: checkpoint, filter: { streamPrefixes: prefixes } });
        const chunk = await collect(subscription, Math.min(17, 150 - seen.length));
        seen.push(...chunk);
        checkpoint = chunk.at(-1)?.position ?? checkpoint;
      }
      await writing;
      const more = await collect(store().subscribe({ after: checkpoint, filter: { streamPrefixes: prefixes } }), 1, 300);
      expect(more).to.deep.equal([]);
      expect(new Set(seen.map((e) => e.id)).size).to.equal(150);
    });

    it('a consumer slower than the reads gets every event once, in order, across many pages', async () => {
      const category = `slow${Date.now().toString(36)}`;
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      for (let i = 0; i < 6; i++) await store().append(`${category}-${i % 3}`, events(40));
      const subscription = store().subscribe({ after: start, filter: { streamPrefixes: [`${category}-`] }, batchSize: 25 });
      const got: RecordedEvent[] = [];
      for await (const event of subscription) {
        got.push(event);
        // Slower than a read: whatever the store reads ahead is ready long before it is asked for.
        if (got.length % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
        if (got.length === 240) break;
      }
      await subscription.close();
      expect(new Set(got.map((e) => e.id)).size).to.equal(240, 'no event delivered twice');
      for (let i = 1; i < got.length; i++) expect(comparePositions(got[i - 1]!.position, got[i]!.position)).to.equal(-1);
      for (let i = 0; i < 3; i++) {
        expect(got.filter((e) => e.stream === `${category}-${i}`).map((e) => e.revision)).to.deep.equal([...Array(80).keys()]);
      }
    });

    it('closed in the middle of a page, close() resolves and the iteration is done', async () => {
      const category = `close${Date.now().toString(36)}`;
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      await store().append(`${category}-1`, events(60));
      const subscription = store().subscribe({ after: start, filter: { streamPrefixes: [`${category}-`] }, batchSize: 20 });
      const iterator = subscription[Symbol.asyncIterator]();
      const first = await iterator.next();
      expect(first.done).to.equal(false);
      // The next page may be on its way now; closing waits for it and hands nothing more out.
      await subscription.close();
      expect(await iterator.next()).to.deep.equal({ done: true, value: undefined });
    });

    it('goes live: events appended after it caught up arrive promptly', async () => {
      const category = `live${Date.now().toString(36)}`;
      const start = (await store().readAll({ limit: 1_000_000 })).checkpoint;
      const subscription = store().subscribe({ after: start, filter: { types: ['LiveProbe'] } });
      const received = collect(subscription, 3, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await store().append(`${category}-1`, [anEvent('LiveProbe'), anEvent('Other'), anEvent('LiveProbe')]);
      await store().append(`${category}-2`, [anEvent('LiveProbe')]);
      const got = await received;
      expect(got.map((e) => e.type)).to.deep.equal(['LiveProbe', 'LiveProbe', 'LiveProbe']);
    });
  });

  describe('stream metadata and soft delete', () => {
    it('maxCount keeps only the newest events visible to readStream', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(5));
      await store().setStreamMetadata(stream, { maxCount: 2 });
      expect((await store().readStream(stream)).map((e) => e.revision)).to.deep.equal([3, 4]);
      expect(await store().getStreamMetadata(stream)).to.deep.include({ maxCount: 2 });
    });

    it('truncateBefore hides earlier revisions', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(5));
      await store().setStreamMetadata(stream, { truncateBefore: 3, custom: { owner: 'ml-platform' } });
      expect((await store().readStream(stream)).map((e) => e.revision)).to.deep.equal([3, 4]);
      expect(await store().getStreamMetadata(stream)).to.deep.include({ truncateBefore: 3, custom: { owner: 'ml-platform' } });
    });

    it('maxAge hides events older than it', async function () {
      if (fixture.lacks?.maxAge) this.skip();
      this.timeout(10_000);
      const stream = uniqueStream();
      await store().append(stream, events(2));
      await store().setStreamMetadata(stream, { maxAge: 1 });
      expect(await store().readStream(stream)).to.have.length(2);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await store().append(stream, events(1));
      expect((await store().readStream(stream)).map((e) => e.revision)).to.deep.equal([2]);
    });

    it('a soft-deleted stream reads empty, and a later append continues its revisions', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(3));
      await store().deleteStream(stream, { expected: 2 });
      expect(await store().readStream(stream)).to.deep.equal([]);
      const result = await store().append(stream, events(1), { expected: 'no_stream' });
      expect(result.revision).to.equal(3);
      expect((await store().readStream(stream)).map((e) => e.revision)).to.deep.equal([3]);
    });

    it('delete with a stale expected revision is a conflict and deletes nothing', async () => {
      const stream = uniqueStream();
      await store().append(stream, events(3));
      expect(await rejection(store().deleteStream(stream, { expected: 1 }))).to.be.instanceOf(ConcurrencyConflict);
      expect(await store().readStream(stream)).to.have.length(3);
    });
  });

  describe('readCorrelated (a store that reads by correlation id)', () => {
    const correlated = (correlationId: string, count: number): EventToAppend[] =>
      events(count).map((e) => ({ ...e, metadata: { ...e.metadata, correlationId, causationId: 'request-1' } }));

    it('given one correlation across streams and appends, then it reads exactly its events, in log order', async function () {
      const reader = store();
      if (!isCorrelationReader(reader)) return this.skip();
      const [correlationId, other] = [`corr-${randomUUID()}`, `corr-${randomUUID()}`];
      const [a, b, c] = [uniqueStream(), uniqueStream(), uniqueStream()];
      await reader.append(a, correlated(correlationId, 2));
      await reader.append(b, correlated(other, 2));
      await reader.appendMany([
        { stream: b, events: correlated(correlationId, 1) },
        { stream: c, events: correlated(correlationId, 2) },
      ]);
      await reader.append(a, correlated(correlationId, 1));
      const expected = (await Promise.all([a, b, c].map((s) => reader.readStream(s))))
        .flat()
        .filter((e) => e.metadata.correlationId === correlationId)
        .sort((x, y) => comparePositions(x.position, y.position));
      // A store may index correlations behind its writes (KurrentDB's projection): what it reads must come to this.
      const read = await eventually('the correlation to be read whole', () => reader.readCorrelated(correlationId), (found) => found.length >= 6, 10_000);
      expect(read).to.deep.equal(expected);
      expect(read.map((e) => e.stream)).to.deep.equal([a, a, b, c, c, a]);
      expect((await reader.readCorrelated(correlationId, { limit: 2 })).map((e) => e.id)).to.deep.equal(expected.slice(0, 2).map((e) => e.id));
    });

    it('leaves out what a stream hides, reads an unknown id as empty, and refuses an empty id or one with control characters', async function () {
      const reader = store();
      if (!isCorrelationReader(reader)) return this.skip();
      const correlationId = `corr-${randomUUID()}`;
      const stream = uniqueStream();
      await reader.append(stream, correlated(correlationId, 3));
      await eventually('the correlation to be read', () => reader.readCorrelated(correlationId), (found) => found.length === 3, 10_000);
      await reader.setStreamMetadata(stream, { truncateBefore: 2 });
      expect((await reader.readCorrelated(correlationId)).map((e) => e.revision)).to.deep.equal([2]);
      expect(await reader.readCorrelated(`corr-${randomUUID()}`)).to.deep.equal([]);
      expect(await rejection(reader.readCorrelated(''))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(await rejection(reader.readCorrelated('a\u0000b'))).to.be.instanceOf(InvalidEventStoreRequest);
    });
  });
}
