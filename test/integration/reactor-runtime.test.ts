// The reactor runtime: at-least-once handling from a checkpoint, retries, side-by-side lanes whose checkpoint never
// passes an event that is not yet handled, batches for a batch reactor, and how far each reactor trails the log.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import * as parked007 from '../../adapters/postgres/migrations/007-parked-events.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { CHECKPOINT_REGISTRY } from '../../adapters/postgres/checkpoints.js';
import { PermanentFailure, TransientFailure } from '../../reactors/failures.js';
import { listParked, ReactorRuntime, requestRetry, type Reactor } from '../../reactors/reactor-runtime.js';
import { events, uniqueStream } from '../support/events.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('reactor runtime', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    // Until the migration is listed in schema.ts, the table is made here.
    if (!(await db.knex.schema.hasTable('sentinel_reactor_parked'))) await parked007.up(db.knex);
  });
  after(async () => {
    await store.close();
    await db.close();
  });

  it('given a failing handler, when it fails twice, then the same event is tried again and the checkpoint waits for it', async () => {
    const stream = uniqueStream('retried');
    const seen: number[] = [];
    let failures = 2;
    const reactor: Reactor = {
      name: `retry-${stream}`,
      eventTypes: ['Retried'],
      async handle(event) {
        if (event.stream !== stream) return;
        if (failures-- > 0) throw new Error('transient');
        seen.push((event.data as { i: number }).i);
      },
    };
    const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, retryBaseMs: 5 });
    const written = await store.append(stream, events(3, 'Retried'));
    runtime.add(reactor);
    try {
      await eventually(async () => (await runtime.checkpoint(reactor.name)) === written.position);
      expect(seen).to.deep.equal([0, 1, 2]);
    } finally {
      await runtime.stop();
    }
  });

  it('given a reactor still starting, when the runtime stops, then it stops (it does not go on to follow the log)', async () => {
    let handled = 0;
    let started!: () => void;
    const starting = new Promise<void>((resolve) => (started = resolve));
    const reactor: Reactor = {
      name: `slow-start-${uniqueStream('x')}`,
      eventTypes: ['Anything'],
      async start() {
        started();
        await new Promise((resolve) => setTimeout(resolve, 100));
      },
      async handle() {
        handled += 1;
      },
    };
    const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease });
    runtime.add(reactor);
    await starting;
    await runtime.stop(); // hung before: the loop subscribed after stop() had closed every subscription
    await store.append(uniqueStream('anything'), events(1, 'Anything'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(handled).to.equal(0);
  });

  it('given lanes, when a later event of another key finishes first, then the checkpoint stays before the unfinished one, and a restart handles it', async () => {
    const stream = uniqueStream('laned');
    const release: Record<string, () => void> = {};
    const handled: string[] = [];
    const keyed = (event: RecordedEvent) => (event.data as { i: number }).i === 0 ? 'slow' : 'fast';
    const reactor = (hold: boolean): Reactor => ({
      name: `lanes-${stream}`,
      eventTypes: ['Laned'],
      keyOf: keyed,
      async handle(event) {
        if (event.stream !== stream) return;
        if (hold && keyed(event) === 'slow') await new Promise<void>((resolve) => (release[event.id] = resolve));
        handled.push(`${keyed(event)}:${(event.data as { i: number }).i}`);
      },
    });
    const written = await store.append(stream, events(3, 'Laned'));
    const [first] = await store.readStream(stream);

    const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease });
    runtime.add(reactor(true));
    await eventually(() => handled.length === 2 && release[first!.id] !== undefined);
    expect(handled).to.deep.equal(['fast:1', 'fast:2']);
    // Events 1 and 2 are done, event 0 is not: the checkpoint may not pass it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await runtime.checkpoint(`lanes-${stream}`)).to.equal(undefined);
    release[first!.id]!();
    await eventually(async () => (await runtime.checkpoint(`lanes-${stream}`)) === written.position);
    await runtime.stop();

    // A second run from the stored checkpoint has nothing left to do.
    handled.length = 0;
    const again = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease });
    again.add(reactor(false));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await again.stop();
    expect(handled).to.deep.equal([]);
  });

  describe('lag', () => {
    /** The value of a lag gauge for one reactor; undefined when it has no series. */
    async function lagGauge(registry: Registry, name: string, reactor: string): Promise<number | undefined> {
      return (await registry.getSingleMetric(name)!.get()).values.find((value) => value.labels['reactor'] === reactor)?.value;
    }

    it('given a reactor held on its first event, then its lag counts the events past its checkpoint and the age of the oldest, and is 0 once it catches up', async () => {
      // A type of its own, so that other tests' events are not counted.
      const type = `Lagged${randomUUID().replaceAll('-', '')}`;
      const stream = uniqueStream('lagged');
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const reactor: Reactor = {
        name: `lag-${stream}`,
        eventTypes: [type],
        async handle() {
          await held;
        },
      };
      const registry = new Registry();
      const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, registry, lagSampleMs: 10 });
      const written = await store.append(stream, events(3, type));
      const [oldest] = await store.readStream(stream);
      runtime.add(reactor);
      try {
        const before = Date.now();
        const lag = await runtime.lag(reactor.name);
        const after = Date.now();
        expect(lag!.events).to.equal(3);
        expect(lag!.seconds).to.be.within((before - oldest!.recordedAt.getTime()) / 1000, (after - oldest!.recordedAt.getTime()) / 1000);
        await eventually(async () => (await lagGauge(registry, 'sentinel_reactor_lag_events', reactor.name)) === 3);
        await eventually(async () => ((await lagGauge(registry, 'sentinel_reactor_lag_seconds', reactor.name)) ?? 0) > 0);

        release();
        await eventually(async () => (await runtime.checkpoint(reactor.name)) === written.position);
        expect(await runtime.lag(reactor.name)).to.deep.equal({ events: 0, seconds: 0 });
        await eventually(async () => (await lagGauge(registry, 'sentinel_reactor_lag_events', reactor.name)) === 0);
        await eventually(async () => (await lagGauge(registry, 'sentinel_reactor_lag_seconds', reactor.name)) === 0);

        // Taken out of the runtime (its cluster deregistered, say): its series go, and it has no lag here.
        await runtime.remove(reactor.name);
        expect(await runtime.lag(reactor.name)).to.equal(undefined);
        expect(await lagGauge(registry, 'sentinel_reactor_lag_events', reactor.name)).to.equal(undefined);
        expect(await lagGauge(registry, 'sentinel_reactor_lag_seconds', reactor.name)).to.equal(undefined);
      } finally {
        release();
        await runtime.stop();
      }
    });
  });

  describe('failures by kind', () => {
    /** A logger whose lines the test reads. */
    function recordingLogger() {
      const lines: Record<string, unknown>[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      });
      return { lines, logger: pino({ level: 'debug' }, sink) };
    }

    /** Handles `Poisoned` events of one stream, failing on the one whose `i` is in `poison` with what `failure` makes. */
    function poisonable(stream: string, poison: Set<number>, failure: () => unknown) {
      const handled: number[] = [];
      const reactor: Reactor = {
        name: `poison-${stream}`,
        eventTypes: ['Poisoned'],
        async handle(event) {
          if (event.stream !== stream) return;
          const i = (event.data as { i: number }).i;
          if (poison.has(i)) throw failure();
          handled.push(i);
        },
      };
      return { reactor, handled };
    }

    it('given a permanent failure, then the event is parked, the checkpoint moves on, the next event is handled, and a retry asked for handles it', async () => {
      const stream = uniqueStream('poisoned');
      const poison = new Set([1]);
      const { reactor, handled } = poisonable(stream, poison, () => new PermanentFailure('the cluster refused it'));
      const registry = new Registry();
      const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, registry, parkedPollMs: 20 });
      const written = await store.append(stream, events(3, 'Poisoned'));
      const [, poisoned] = await store.readStream(stream);
      runtime.add(reactor);
      try {
        await eventually(async () => (await runtime.checkpoint(reactor.name)) === written.position);
        expect(handled).to.deep.equal([0, 2]);
        const [parked, ...others] = await listParked(db.knex, reactor.name);
        expect(others).to.deep.equal([]);
        expect(parked).to.include({ eventId: poisoned!.id, stream, type: 'Poisoned', kind: 'permanent', error: 'the cluster refused it', failures: 1, retryRequestedAt: null });
        const metrics = await registry.metrics();
        expect(metrics).to.include(`sentinel_reactor_parked_events_total{reactor="${reactor.name}",kind="permanent"} 1`);
        expect(metrics).to.include(`sentinel_reactor_parked_events{reactor="${reactor.name}",kind="permanent"} 1`);

        // Asked again while it still fails: it stays parked, counted once more.
        expect(await requestRetry(db.knex, parked!.id)).to.include({ id: parked!.id });
        await eventually(async () => (await listParked(db.knex, reactor.name))[0]?.failures === 2);
        expect((await listParked(db.knex, reactor.name))[0]).to.include({ retryRequestedAt: null, kind: 'permanent' });

        // Mended, and asked again: handled, and no longer parked.
        poison.clear();
        await requestRetry(db.knex, parked!.id);
        await eventually(async () => (await listParked(db.knex, reactor.name)).length === 0);
        expect(handled).to.deep.equal([0, 2, 1]);
      } finally {
        await runtime.stop();
      }
    });

    it('given a batch reactor and a poison event in a batch, then it gets the events in batches, its checkpoint moves once per batch, and only the poison event is parked', async () => {
      const stream = uniqueStream('batched');
      const batches: number[][] = [];
      const checkpointsBefore: (string | undefined)[] = [];
      const handled: number[] = [];
      const index = (event: RecordedEvent) => (event.data as { i: number }).i;
      const reactor: Reactor = {
        name: `batch-${stream}`,
        eventTypes: ['Batched'],
        maxBatch: 4,
        async handleBatch(batch) {
          checkpointsBefore.push(await runtime.checkpoint(reactor.name));
          batches.push(batch.map(index));
          if (batch.some((event) => index(event) === 5)) throw new PermanentFailure('the broker refused one of them');
          handled.push(...batch.map(index));
        },
        async handle(event) {
          if (index(event) === 5) throw new PermanentFailure('the broker refused it');
          handled.push(index(event));
        },
      };
      let checkpointWrites = 0;
      const countWrites = (query: { sql: string; bindings?: unknown[] }) => {
        if (query.sql.startsWith(`insert into "${CHECKPOINT_REGISTRY}"`) && query.bindings?.includes(reactor.name)) checkpointWrites += 1;
      };
      const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease });
      const written = await store.append(stream, events(10, 'Batched'));
      const stored = await store.readStream(stream);
      db.knex.on('query', countWrites);
      runtime.add(reactor);
      try {
        await eventually(async () => (await runtime.checkpoint(reactor.name)) === written.position);
      } finally {
        await runtime.stop();
        db.knex.off('query', countWrites);
      }
      expect(batches).to.deep.equal([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
      expect(checkpointWrites).to.equal(batches.length);
      // Each batch starts where the one before it left the checkpoint: at its last event.
      expect(checkpointsBefore).to.deep.equal([undefined, stored[3]!.position, stored[7]!.position]);
      expect(handled).to.deep.equal([0, 1, 2, 3, 4, 6, 7, 8, 9]);
      expect((await listParked(db.knex, reactor.name)).map((parked) => parked.eventId)).to.deep.equal([stored[5]!.id]);
    });

    it('given a retry asked for an id that is not parked, then nothing', async () => {
      expect(await requestRetry(db.knex, 987_654_321)).to.equal(undefined);
    });

    it('given a transient failure, then the same event is tried again with a growing wait until it succeeds, and nothing is parked', async () => {
      const stream = uniqueStream('flaky');
      let failures = 3;
      const { lines, logger: recording } = recordingLogger();
      const handled: number[] = [];
      const flaky: Reactor = {
        name: `flaky-${stream}`,
        eventTypes: ['Poisoned'],
        async handle(event) {
          if (event.stream !== stream) return;
          if (failures-- > 0) throw new TransientFailure('store away');
          handled.push((event.data as { i: number }).i);
        },
      };
      const runtime = new ReactorRuntime(db.knex, store, { logger: recording, lease: inProcessLease, retryBaseMs: 2, retryMaxMs: 1000 });
      const written = await store.append(stream, events(1, 'Poisoned'));
      runtime.add(flaky);
      try {
        await eventually(async () => (await runtime.checkpoint(flaky.name)) === written.position);
      } finally {
        await runtime.stop();
      }
      const retries = lines.filter((line) => line['msg'] === 'reaction failed; trying again');
      expect(retries.map((line) => line['attempt'])).to.deep.equal([1, 2, 3]);
      // Doubling from 2 ms, half of each wait fixed: 1-2, 2-4, 4-8 ms.
      retries.forEach((line, index) => expect(line['retryInMs']).to.be.within(2 ** index, 2 ** (index + 1)));
      expect(handled).to.deep.equal([0]);
      expect(await listParked(db.knex, flaky.name)).to.deep.equal([]);
    });

    it('given a bug, then the event is parked as one, without retries, and the error is logged with its stack', async () => {
      const stream = uniqueStream('buggy');
      const { lines, logger: recording } = recordingLogger();
      const { reactor, handled } = poisonable(stream, new Set([0]), () => new TypeError("Cannot read properties of undefined (reading 'replicas')"));
      const runtime = new ReactorRuntime(db.knex, store, { logger: recording, lease: inProcessLease });
      const written = await store.append(stream, events(2, 'Poisoned'));
      runtime.add(reactor);
      try {
        await eventually(async () => (await runtime.checkpoint(reactor.name)) === written.position);
      } finally {
        await runtime.stop();
      }
      expect(handled).to.deep.equal([1]);
      expect((await listParked(db.knex, reactor.name)).map((parked) => parked.kind)).to.deep.equal(['bug']);
      expect(lines.filter((line) => line['msg'] === 'reaction failed; trying again')).to.deep.equal([]);
      const logged = lines.find((line) => line['msg'] === 'reaction failed on a bug; event parked');
      expect(logged?.['level']).to.equal(50);
      expect(logged?.['stack']).to.be.a('string').that.includes('TypeError').and.includes('reactor-runtime.test.ts');
    });
  });
});
