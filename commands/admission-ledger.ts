// The admission ledger as this process sees it: the state folded from the stream, admissions judged but not yet
// stored, and the one writer that stores them, many to an append.
//
// Every admitted change goes to the single stream `quota-global`, so that quotas and budgets hold under
// concurrency. Appending each admission with the revision it was judged at made concurrent commands collide on
// that stream and run again, most of their time spent losing. Here, within a process, judging and admitting take
// turns (a judgement for admission holds the turn until it admits or lets go), an admitted change joins a queue
// at once, and the next judgement already counts it. One append at a time stores everything queued, with the
// revision the queue was built on: another process that wrote in between makes it fail, and every admission in
// it, and those judged on top of it, fail with a `ConcurrencyConflict` that runs their commands again.
import { randomUUID } from 'node:crypto';
import type { EventStore, RecordedEvent } from '../domain/event-store.js';
import { fold } from '../domain/decider.js';
import { LEDGER_STREAM, ledgerDecider, ledgerEvents, type Admission, type Ledger, type LedgerEvent } from '../domain/ledger.js';
import { metadataOf, type CommandContext } from './command-handler.js';

/** A snapshot of the ledger every this many events keeps loading it short. */
const SNAPSHOT_EVERY = 200;
/** A backwards page when looking for the last snapshot. */
const PAGE = 256;

export interface Folded<State> {
  state: State;
  revision: number;
}

/** The right to admit one change, given to a judgement made with the ledger to itself. */
export interface AdmissionTurn {
  /** The ledger the judgement read: what is stored plus what is queued. */
  readonly ledger: Ledger;
  /** Queues the admission and gives the turn up; resolves once it is stored. */
  admit(admission: Admission, context: CommandContext): Promise<void>;
  /** Gives the turn up without admitting anything; harmless after `admit` or a second time. */
  release(): void;
}

interface Queued {
  event: LedgerEvent;
  context: CommandContext;
  settle(error?: Error): void;
}

export class AdmissionLedger {
  private stored: Folded<Ledger> = { state: ledgerDecider.initialState, revision: -1 };
  /** Admitted, not yet stored, in the order they were judged; the last one's state is what a judgement reads. */
  private queue: Queued[] = [];
  private queuedState: Ledger = ledgerDecider.initialState;
  /** The stored ledger the queue was built on: its revision is the one the next append expects. */
  private queueBase: Folded<Ledger> = this.stored;
  private writing = false;
  /** Whether another process may have written since this copy was read (at first, and after a failed append). */
  private stale = true;
  private turnHeld = false;
  private readonly waitingForTurn: (() => void)[] = [];

  constructor(private readonly store: EventStore) {}

  /** The ledger as stored, read forward from this process's copy (back to its last snapshot on first use). */
  async current(): Promise<Folded<Ledger>> {
    const known = this.stored;
    const newer = known.revision === -1 ? await this.sinceSnapshot() : await this.store.readStream(LEDGER_STREAM, { from: known.revision + 1 });
    if (newer.length === 0) return this.stored;
    const base = newer[0]!.type === 'LedgerSnapshotted' ? ledgerDecider.initialState : known.state;
    const read = { state: fold(ledgerDecider, newer.map(parseLedgerEvent), base), revision: newer.at(-1)!.revision };
    // An append of this process's may have moved the copy on while the read was under way.
    if (read.revision > this.stored.revision) this.stored = read;
    return this.stored;
  }

  /** The ledger a judgement that admits nothing reads: stored, and queued on top. */
  async view(): Promise<Ledger> {
    if (this.queue.length > 0) return this.queuedState;
    return (await this.current()).state;
  }

  /**
   * Waits for the turn to admit, then reads the ledger. Whoever takes a turn must `admit` or `release` it: until
   * then no other judgement for admission in this process proceeds.
   *
   * The turn reads the store only when this process has reason to think another one wrote (on first use, and after
   * an append of its own met a conflict): otherwise its copy, with what is queued, is the ledger, and a turn costs
   * no round trip. Should another process have written meanwhile, the append expecting this copy's revision fails,
   * and the commands judged on it run again on what the store holds.
   */
  async turn(): Promise<AdmissionTurn> {
    await this.takeTurn();
    let ledger: Ledger;
    try {
      if (this.queue.length > 0) ledger = this.queuedState;
      else ledger = this.stale ? (await this.current()).state : this.stored.state;
      this.stale = false;
    } catch (error) {
      this.giveTurn();
      throw error;
    }
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.giveTurn();
    };
    return {
      ledger,
      admit: (admission, context) => {
        if (!held) throw new Error('an admission turn admits once');
        const stored = this.enqueue(admission, context);
        release();
        return stored;
      },
      release,
    };
  }

  private enqueue(admission: Admission, context: CommandContext): Promise<void> {
    const event: LedgerEvent = { type: 'ChangeAdmitted', data: admission };
    if (this.queue.length === 0) {
      this.queueBase = this.stored;
      this.queuedState = this.stored.state;
    }
    this.queuedState = ledgerDecider.evolve(this.queuedState, event);
    let settle!: (error?: Error) => void;
    const stored = new Promise<void>((resolve, reject) => {
      settle = (error) => (error ? reject(error) : resolve());
    });
    this.queue.push({ event, context, settle });
    void this.write();
    return stored;
  }

  /** Stores everything queued in one append, while anything is queued; one append at a time. */
  private async write(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.slice();
        const base = this.queueBase;
        const events = batch.map((queued) => queued.event);
        const after = fold(ledgerDecider, events, base.state);
        try {
          const result = await this.store.append(LEDGER_STREAM, this.toAppend(batch, base.revision, after), {
            expected: base.revision === -1 ? 'no_stream' : base.revision,
          });
          this.stored = { state: after, revision: result.revision };
          this.queueBase = this.stored;
          this.queue.splice(0, batch.length);
          for (const queued of batch) queued.settle();
        } catch (error) {
          this.fail(error);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /**
   * An append failed: every queued admission was judged on a ledger that includes what did not get stored, so
   * all of them fail. A `ConcurrencyConflict` (another process wrote) runs their commands again, and the next
   * turn reads what the other process wrote forward from the stored copy, which is still true.
   */
  private fail(error: unknown): void {
    this.stale = true;
    const reason = error instanceof Error ? error : new Error(String(error));
    for (const queued of this.queue.splice(0)) queued.settle(reason);
  }

  private toAppend(batch: Queued[], baseRevision: number, after: Ledger) {
    const appended = batch.map((queued) => ({
      id: randomUUID(),
      type: queued.event.type,
      schemaVersion: ledgerEvents.version(queued.event.type),
      data: JSON.parse(JSON.stringify(queued.event.data)) as Record<string, unknown>,
      metadata: metadataOf(queued.context),
    }));
    // A snapshot closes the append that would reach the next multiple of SNAPSHOT_EVERY events.
    const snapshotRevision = baseRevision + appended.length + 1;
    if (Math.floor(snapshotRevision / SNAPSHOT_EVERY) > Math.max(0, Math.floor(baseRevision / SNAPSHOT_EVERY))) {
      appended.push({
        id: randomUUID(),
        type: 'LedgerSnapshotted',
        schemaVersion: ledgerEvents.version('LedgerSnapshotted'),
        data: JSON.parse(JSON.stringify(after)) as Record<string, unknown>,
        metadata: appended.at(-1)!.metadata,
      });
    }
    return appended;
  }

  private takeTurn(): Promise<void> {
    if (!this.turnHeld) {
      this.turnHeld = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waitingForTurn.push(resolve));
  }

  /** Hands the turn to the next in line, or frees it. */
  private giveTurn(): void {
    const next = this.waitingForTurn.shift();
    if (next) next();
    else this.turnHeld = false;
  }

  /** Events back to (and including) the last snapshot, oldest first. */
  private async sinceSnapshot(): Promise<RecordedEvent[]> {
    const collected: RecordedEvent[] = [];
    let from: number | undefined;
    for (;;) {
      const page = await this.store.readStream(LEDGER_STREAM, { direction: 'backwards', from, limit: PAGE });
      for (const event of page) {
        collected.push(event);
        if (event.type === 'LedgerSnapshotted') return collected.reverse();
      }
      const last = page.at(-1);
      if (page.length < PAGE || !last || last.revision === 0) return collected.reverse();
      from = last.revision - 1;
    }
  }
}

function parseLedgerEvent(event: RecordedEvent): LedgerEvent {
  return ledgerEvents.parse(event.type, event.schemaVersion, event.data);
}
