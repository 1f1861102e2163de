// The subscriptions caught up with the log share one read of its head, each taking its own events from it.
import { expect } from 'chai';
import { ChangeSignal } from '../../adapters/event-store/change-signal.js';
import { SharedTail } from '../../adapters/event-store/shared-tail.js';
import type { ReadAllResult, RecordedEvent } from '../../domain/event-store.js';

const position = (n: number) => String(n).padStart(8, '0');

function recorded(n: number, type: string, stream = 'workload-1'): RecordedEvent {
  return { id: `event-${n}`, stream, type, schemaVersion: 1, revision: n, position: position(n), recordedAt: new Date(0), data: { n, nested: { seen: false } }, metadata: {} };
}

/** A log in memory whose reads of everything after a position the test counts and can hold or fail. */
class Log {
  readonly events: RecordedEvent[] = [];
  readonly reads: string[] = [];
  gate: () => Promise<void> = () => Promise.resolve();
  failing = false;

  append(...types: string[]): void {
    for (const type of types) this.events.push(recorded(this.events.length, type));
  }

  read = async (after: string, limit: number): Promise<ReadAllResult> => {
    this.reads.push(after);
    const from = Number(after) + 1;
    // What the read sees is the log as it was when the read began.
    const events = this.events.slice(from, from + limit);
    await this.gate();
    if (this.failing) throw new Error('the log is unreachable');
    return { events, checkpoint: events.at(-1)?.position ?? after };
  };
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('shared tail of the log', () => {
  function tailAtHead(log: Log, signal: ChangeSignal, limit = 100): SharedTail {
    const tail = new SharedTail(log.read, signal, limit);
    tail.reached(position(log.events.length - 1));
    return tail;
  }

  it('given subscriptions at the head, when an append is announced, then one read serves them all, each its own types', async () => {
    const log = new Log();
    log.append('A', 'B');
    const signal = new ChangeSignal();
    const tail = tailAtHead(log, signal);
    const head = position(1);

    log.append('A', 'C', 'B');
    signal.notify();
    const since = signal.notifications;
    const [onlyA, onlyB, everything, noneOfThem] = await Promise.all([
      tail.read(head, { types: ['A'] }, 10, since),
      tail.read(head, { types: ['B'] }, 10, since),
      tail.read(head, undefined, 10, since),
      tail.read(head, { types: ['Z'] }, 10, since),
    ]);

    expect(log.reads).to.deep.equal([head]);
    expect(onlyA.events.map((e) => e.type)).to.deep.equal(['A']);
    expect(onlyB.events.map((e) => e.type)).to.deep.equal(['B']);
    expect(everything.events.map((e) => e.type)).to.deep.equal(['A', 'C', 'B']);
    expect(noneOfThem.events).to.deep.equal([]);
    // Each goes on from past the whole page, and knows it has everything until the next announcement.
    for (const answer of [onlyA, onlyB, everything, noneOfThem]) expect(answer).to.deep.include({ checkpoint: position(4), atHead: true });
    // The next reads stand at the new head together.
    expect(tail.serves(position(4))).to.equal(true);
  });

  it('gives each subscription its own copy of an event, so one that changes it changes nobody else\'s', async () => {
    const log = new Log();
    log.append('A');
    const signal = new ChangeSignal();
    const tail = tailAtHead(log, signal);
    log.append('A');
    signal.notify();
    const [first, second] = await Promise.all([0, 1].map(() => tail.read(position(0), undefined, 10, signal.notifications)));
    (first!.events[0]!.data['nested'] as { seen: boolean }).seen = true;
    expect(second!.events[0]!.data).to.deep.equal({ n: 1, nested: { seen: false } });
  });

  it('given a read under way that began before an announcement, then a subscription asking after it waits for a read begun since', async () => {
    const log = new Log();
    log.append('A');
    const signal = new ChangeSignal();
    const tail = tailAtHead(log, signal);
    const held = deferred();
    log.gate = () => held.promise;
    const early = tail.read(position(0), undefined, 10, signal.notifications);

    log.append('A');
    signal.notify();
    const late = tail.read(position(0), undefined, 10, signal.notifications);
    log.gate = () => Promise.resolve();
    held.resolve();

    // The early read began before the append: it found nothing, and says so only to the one that asked before it.
    expect(await early).to.deep.include({ events: [], checkpoint: position(0), atHead: true });
    expect((await late).events.map((e) => e.id)).to.deep.equal(['event-1']);
    expect(log.reads).to.deep.equal([position(0), position(0)]);
  });

  it('given a read that began before an announcement and found events, then it answers with them but not that it reached the head', async () => {
    const log = new Log();
    log.append('A', 'A');
    const signal = new ChangeSignal();
    const tail = new SharedTail(log.read, signal, 100);
    tail.reached(position(0));
    const before = signal.notifications;
    await tail.read(position(0), undefined, 10, before);
    signal.notify();

    const answer = await tail.read(position(0), undefined, 10, signal.notifications);
    expect(answer).to.deep.include({ checkpoint: position(1), atHead: false });
    expect(answer.events.map((e) => e.id)).to.deep.equal(['event-1']);
    expect(log.reads).to.have.length(1);
  });

  it('stops a subscription at its own limit and goes on after the last event it took', async () => {
    const log = new Log();
    log.append('A');
    const signal = new ChangeSignal();
    const tail = tailAtHead(log, signal);
    log.append('A', 'B', 'A', 'A', 'B');
    signal.notify();

    const first = await tail.read(position(0), { types: ['A'] }, 2, signal.notifications);
    expect(first.events.map((e) => e.id)).to.deep.equal(['event-1', 'event-3']);
    expect(first).to.deep.include({ checkpoint: position(3), atHead: false });
    // Further on in the same page: the rest of its events, with no read of the log of its own.
    const rest = await tail.read(position(3), { types: ['A'] }, 2, signal.notifications);
    expect(rest.events.map((e) => e.id)).to.deep.equal(['event-4']);
    expect(log.reads).to.have.length(2);
  });

  it('given a page of the log that comes back full, then no subscription is told it reached the head', async () => {
    const log = new Log();
    log.append('A');
    const signal = new ChangeSignal();
    const tail = tailAtHead(log, signal, 2);
    log.append('A', 'A', 'A');
    signal.notify();
    const answer = await tail.read(position(0), undefined, 10, signal.notifications);
    expect(answer).to.deep.include({ checkpoint: position(2), atHead: false });
  });

  it('takes stream prefixes as the store does: the events of streams that begin with one of them', async () => {
    const log = new Log();
    log.append('A');
    log.events.push(recorded(1, 'A', 'plan-7'), recorded(2, 'A', 'workload-7'), recorded(3, 'B', 'plan-8'));
    const signal = new ChangeSignal();
    const tail = tailAtHead(log, signal);
    tail.reached(position(0));
    signal.notify();
    const answer = await tail.read(position(0), { types: ['A'], streamPrefixes: ['plan-'] }, 10, signal.notifications);
    expect(answer.events.map((e) => e.id)).to.deep.equal(['event-1']);
  });

  it('given a read of the log that fails, then every subscription waiting on it gets the error, and the next asks again', async () => {
    const log = new Log();
    log.append('A');
    const signal = new ChangeSignal();
    const tail = tailAtHead(log, signal);
    log.failing = true;
    const since = signal.notifications;
    const failures = await Promise.all([0, 1].map(() => tail.read(position(0), undefined, 10, since).catch((error: Error) => error.message)));
    expect(failures).to.deep.equal(['the log is unreachable', 'the log is unreachable']);

    log.failing = false;
    log.append('A');
    expect((await tail.read(position(0), undefined, 10, since)).events).to.have.length(1);
    expect(log.reads).to.have.length(2);
  });

  it('serves only the places near the head it knows of: a subscription far behind reads for itself', () => {
    const log = new Log();
    log.append('A', 'A', 'A');
    const tail = tailAtHead(log, new ChangeSignal());
    expect(tail.serves(position(2))).to.equal(true);
    expect(tail.serves(position(0))).to.equal(false);
    expect(tail.serves(undefined)).to.equal(false);
    // A head reported further on moves the place; one reported behind it does not.
    tail.reached(position(5));
    tail.reached(position(4));
    expect(tail.serves(position(5))).to.equal(true);
    expect(tail.serves(position(4))).to.equal(false);
  });
});
