// The polling subscription reads one page ahead of its consumer: what that may and may not change.
import { expect } from 'chai';
import { ChangeSignal } from '../../adapters/event-store/change-signal.js';
import { pollingSubscription } from '../../adapters/event-store/polling-subscription.js';
import type { ReadAllResult, RecordedEvent, Subscription } from '../../domain/event-store.js';
import { eventually } from '../support/eventually.js';

const position = (n: number) => String(n).padStart(8, '0');

function recorded(n: number): RecordedEvent {
  return {
    id: `event-${n}`,
    stream: 'test-1',
    type: 'SomethingHappened',
    schemaVersion: 1,
    revision: n,
    position: position(n),
    recordedAt: new Date(0),
    data: {},
    metadata: {},
  };
}

/** A log in memory whose reads the test can hold, fail and count. */
class Log {
  readonly events: RecordedEvent[] = [];
  /** The checkpoint each read started after, in the order the reads began. */
  readonly reads: (string | undefined)[] = [];
  inFlight = 0;
  /** Awaited by every read before it answers: hold reads by replacing it. */
  gate: () => Promise<void> = () => Promise.resolve();
  /** Set to make reads after this checkpoint fail. */
  failAfter: string | undefined;

  append(count: number): void {
    for (let i = 0; i < count; i++) this.events.push(recorded(this.events.length));
  }

  read = async (after: string | undefined, limit: number): Promise<ReadAllResult> => {
    this.reads.push(after);
    this.inFlight += 1;
    // What the read sees is the log as it was when the read began.
    const from = after === undefined ? 0 : Number(after) + 1;
    const events = this.events.slice(from, from + limit);
    try {
      await this.gate();
      if (after !== undefined && after === this.failAfter) throw new Error('the log is unreachable');
      return { events, checkpoint: events.at(-1)?.position ?? after };
    } finally {
      this.inFlight -= 1;
    }
  };
}

/** A promise and the function that settles it. */
function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function subscribe(log: Log, signal = new ChangeSignal(), minWaitMs = 5): Subscription {
  return pollingSubscription(log.read, signal, { batchSize: 10 }, { batchSize: 10, minWaitMs, maxWaitMs: 60_000 });
}

describe('polling subscription', () => {
  it('reads the next page while the consumer handles the one in hand, and no further', async () => {
    const log = new Log();
    log.append(35);
    const subscription = subscribe(log);
    const iterator = subscription[Symbol.asyncIterator]();
    await iterator.next();
    await turn();
    // The first page is in hand; the second is being read from where the first ended.
    expect(log.reads).to.deep.equal([undefined, position(9)]);
    for (let i = 0; i < 5; i++) await turn();
    expect(log.reads, 'one page ahead at most').to.have.length(2);
    await subscription.close();
  });

  it('with a slow consumer, hands out every event once, in order', async () => {
    const log = new Log();
    log.append(95);
    const subscription = subscribe(log);
    const got: string[] = [];
    for await (const event of subscription) {
      got.push(event.id);
      await turn();
      if (got.length === 95) break;
    }
    expect(got).to.deep.equal(log.events.map((e) => e.id));
    // Each page read once: ten pages, and the read past the end that the last one started.
    expect(log.reads).to.deep.equal([undefined, ...[9, 19, 29, 39, 49, 59, 69, 79, 89, 94].map(position)]);
  });

  it('closed while a read ahead is in flight, waits for it: close() resolves and no read is left running', async () => {
    const log = new Log();
    log.append(25);
    const subscription = subscribe(log);
    const iterator = subscription[Symbol.asyncIterator]();
    const ahead = deferred();
    let reads = 0;
    log.gate = () => (reads++ === 0 ? Promise.resolve() : ahead.promise);
    await iterator.next();
    expect(log.inFlight, 'the read ahead is held').to.equal(1);
    let closed = false;
    const closing = subscription.close().then(() => (closed = true));
    await turn();
    expect(closed, 'close() waits for the read in flight').to.equal(false);
    ahead.resolve();
    await closing;
    expect(log.inFlight).to.equal(0);
    expect(await iterator.next()).to.deep.equal({ done: true, value: undefined });
  });

  it('a read ahead that fails surfaces once the page in hand has been handed out', async () => {
    const log = new Log();
    log.append(15);
    log.failAfter = position(9);
    const subscription = subscribe(log);
    const got: string[] = [];
    let failure: unknown;
    try {
      for await (const event of subscription) {
        got.push(event.id);
        await turn();
      }
    } catch (error) {
      failure = error;
    }
    expect(got).to.have.length(10);
    expect((failure as Error).message).to.equal('the log is unreachable');
  });

  it('an append notified while a read found nothing is read at once, not after the wait', async () => {
    const log = new Log();
    const signal = new ChangeSignal();
    // A missed notification would cost the whole first wait: a minute.
    const subscription = subscribe(log, signal, 60_000);
    const iterator = subscription[Symbol.asyncIterator]();
    const held = deferred();
    log.gate = () => held.promise;
    const next = iterator.next();
    await turn();
    // The read has looked and found nothing; an append lands and notifies before the read answers.
    log.append(1);
    signal.notify();
    log.gate = () => Promise.resolve();
    held.resolve();
    for (let i = 0; i < 10 && log.reads.length < 2; i++) await turn();
    expect(log.reads.slice(0, 2), 'read again without waiting').to.deep.equal([undefined, undefined]);
    expect((await next).value?.id).to.equal('event-0');
    await subscription.close();
  });

  it('given a read that says it reached the head, then the next waits for an announcement, and one after a wait that timed out reads anew', async () => {
    const log = new Log();
    log.append(3);
    const signal = new ChangeSignal();
    const asked: (number | undefined)[] = [];
    // The head as this log knows it: a read that comes back short holds everything there was.
    const read = async (after: string | undefined, limit: number, since: number | undefined) => {
      asked.push(since);
      const page = await log.read(after, limit);
      return { ...page, atHead: page.events.length < limit };
    };
    const subscription = pollingSubscription(read, signal, { batchSize: 10 }, { batchSize: 10, minWaitMs: 20, maxWaitMs: 60_000 });
    const iterator = subscription[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) await iterator.next();
    await turn();
    expect(log.reads, 'no read ahead of a page at the head').to.deep.equal([undefined]);
    expect(asked).to.deep.equal([0]);

    log.append(1);
    signal.notify();
    expect((await iterator.next()).value?.id).to.equal('event-3');
    expect(asked).to.deep.equal([0, 1]);
    // Nothing is announced now: the wait times out, and the read after it may not share one begun earlier.
    const next = iterator.next();
    await eventually('the read after the wait', async () => asked.length, (n) => n >= 3, 10_000);
    expect(asked[2]).to.equal(undefined);
    log.append(1);
    signal.notify();
    expect((await next).value?.id).to.equal('event-4');
    await subscription.close();
  });
});
