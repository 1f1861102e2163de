// The reactor runtime: at-least-once handling from a checkpoint, retries, and side-by-side lanes whose checkpoint
// never passes an event that is not yet handled.
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { ReactorRuntime, type Reactor } from '../../reactors/reactor-runtime.js';
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
});
