// The admission ledger as this process sees it: the state folded from the stream, admissions judged but not yet
// stored, and the one writer that stores them, many to an append, each together with the change it admits.
//
// Every admitted change goes to the single stream `quota-global`, so that quotas and budgets hold under
// concurrency. Appending each admission with the revision it was judged at made concurrent commands collide on
// that stream and run again, most of their time spent losing. Here, within a process, judging and admitting take
// turns (a judgement for admission holds the turn until it admits or lets go), an admitted change joins a queue
// at once, and the next judgement already counts it. One append at a time stores everything queued, with the
// revision the queue was built on: another process that wrote in between makes it fail, and every admission in
// it, and those judged on top of it, fail with a `ConcurrencyConflict` that runs their commands again.
//
// An admission is stored in the same atomic append (`appendMany`) as the events of the command it admits. An
// admission stored without its change would be a ghost: a footprint and a rate-limit entry for something that never
// ran, which made the ledger count less than ran once the target's real next change replaced the placement, and
// refused retries that counted the ghost. Now a command that loses its own stream to a concurrent change stores
// nothing, and runs again; the others in the append are stored without it.
import { randomUUID } from 'node:crypto';
import { ConcurrencyConflict, DuplicateEventConflict, type AppendResult, type EventStore, type RecordedEvent, type StreamAppend } from '../domain/event-store.js';
import { fold } from '../domain/decider.js';
import { jsonCopy } from '../domain/json-copy.js';
import { LEDGER_STREAM, ledgerDecider, ledgerEvents, type Admission, type Ledger, type LedgerEvent } from '../domain/ledger.js';
import { metadataOf, type CommandContext } from './command-handler.js';

/**
 * A snapshot of the ledger every this many events keeps loading it short; and, for a ledger holding more than twice
 * as many entries (placements and admitted changes within the retention), every half as many events as it holds,
 * so that what the snapshots write per admission stays flat however long the history (a snapshot every 200 events
 * of a ledger holding a day of changes wrote the whole day again each time).
 */
const SNAPSHOT_EVERY = 200;

/** Events between snapshots of a ledger like `state`. */
export function snapshotInterval(state: Ledger): number {
  return Math.max(SNAPSHOT_EVERY, Math.ceil((state.history.length + Object.keys(state.placements).length) / 2));
}
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
  /**
   * Whether this turn read the ledger from the store, because another process may have written: what it read may
   * include a `PolicySetChanged`, so whoever judges with it reads the policy set again after it.
   */
  readonly readFromStore: boolean;
  /**
   * Queues the admission with the append of the change it admits, and gives the turn up; resolves with the
   * append's result once both are stored, or rejects when neither is (a `ConcurrencyConflict` names the stream).
   */
  admit(admission: Admission, context: CommandContext, append: StreamAppend): Promise<AppendResult>;
  /** Gives the turn up without admitting anything; harmless after `admit` or a second time. */
  release(): void;
}

interface Queued {
  event: LedgerEvent;
  /** The ledger with this admission and every one queued before it counted. */
  ledger: Ledger;
  context: CommandContext;
  /** The change the admission is for, stored in the same append. */
  append: StreamAppend;
  settle(outcome: { result: AppendResult } | { error: Error }): void;
}

export class AdmissionLedger {
  private stored: Folded<Ledger> = { state: ledgerDecider.initialState, revision: -1 };
  /** The revision of the last snapshot this process has read or written; -1 before any. */
  private snapshotRevision = -1;
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
    const snapshot = newer.findLast((event) => event.type === 'LedgerSnapshotted');
    if (snapshot && snapshot.revision > this.snapshotRevision) this.snapshotRevision = snapshot.revision;
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
    let readFromStore = false;
    try {
      if (this.queue.length > 0) ledger = this.queuedState;
      else if (this.stale) {
        ledger = (await this.current()).state;
        readFromStore = true;
      } else ledger = this.stored.state;
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
      readFromStore,
      admit: (admission, context, append) => {
        if (!held) throw new Error('an admission turn admits once');
        const stored = this.enqueue(admission, context, append);
        release();
        return stored;
      },
      release,
    };
  }

  /**
   * Stores a change of the policy set together with `PolicySetChanged` on the ledger, in one atomic append. Every
   * admission judged against the policy set before it expects the ledger where it was, so its append conflicts and
   * its command runs again, judged against the new policy set; this process reads the ledger afresh at its next turn.
   */
  async storePolicyChange(append: StreamAppend, policySetRevision: number, context: CommandContext): Promise<AppendResult> {
    const event: LedgerEvent = { type: 'PolicySetChanged', data: { policySetRevision } };
    const marker = { id: randomUUID(), type: event.type, schemaVersion: ledgerEvents.version(event.type), data: { ...event.data }, metadata: metadataOf(context) };
    const [, result] = await this.store.appendMany([{ stream: LEDGER_STREAM, events: [marker], expected: 'any' }, append]);
    this.stale = true;
    return result!;
  }

  private enqueue(admission: Admission, context: CommandContext, append: StreamAppend): Promise<AppendResult> {
    const event: LedgerEvent = { type: 'ChangeAdmitted', data: admission };
    if (this.queue.length === 0) {
      this.queueBase = this.stored;
      this.queuedState = this.stored.state;
    }
    this.queuedState = ledgerDecider.evolve(this.queuedState, event);
    let settle!: Queued['settle'];
    const stored = new Promise<AppendResult>((resolve, reject) => {
      settle = (outcome) => ('error' in outcome ? reject(outcome.error) : resolve(outcome.result));
    });
    this.queue.push({ event, ledger: this.queuedState, context, append, settle });
    void this.write();
    return stored;
  }

  /**
   * Stores everything queued, with the changes it admits, in one atomic append, while anything is queued; one
   * append at a time. A stream may be written once per append: a second change to the same stream waits for the
   * next one (where, decided on the same revision as the first, it meets the conflict it would have met anyway).
   */
  private async write(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const streams = new Set<string>();
        const batch = this.queue.filter((queued) => !streams.has(queued.append.stream) && streams.add(queued.append.stream));
        const base = this.queueBase;
        // Evolving the ledger costs as much as its history is long: a batch that is the head of the queue (the usual
        // case) ends where its last admission's ledger stands, folded once already when it was queued.
        const head = batch.every((queued, i) => this.queue[i] === queued);
        const after = head ? batch.at(-1)!.ledger : fold(ledgerDecider, batch.map((queued) => queued.event), base.state);
        const events = this.toAppend(batch, base.revision, after);
        let results: AppendResult[];
        try {
          results = await this.store.appendMany([
            { stream: LEDGER_STREAM, events, expected: base.revision === -1 ? 'no_stream' : base.revision },
            ...batch.map((queued) => queued.append),
          ]);
        } catch (error) {
          if ((error instanceof ConcurrencyConflict || error instanceof DuplicateEventConflict) && error.stream !== LEDGER_STREAM) this.leaveOut(batch, error);
          else this.fail(error);
          continue;
        }
        this.stored = { state: after, revision: results[0]!.revision };
        if (events.at(-1)!.type === 'LedgerSnapshotted') this.snapshotRevision = Math.max(this.snapshotRevision, results[0]!.revision);
        this.queue = head ? this.queue.slice(batch.length) : this.queue.filter((queued) => !batch.includes(queued));
        // What was queued after the head was folded on top of it: it stands as it is.
        if (head) this.queueBase = this.stored;
        else this.rebase();
        batch.forEach((queued, i) => queued.settle({ result: results[i + 1]! }));
      }
    } finally {
      this.writing = false;
    }
  }

  /**
   * One change of the batch lost its stream to a concurrent write (or was stored already, by an earlier try of the
   * same command): it fails alone (its command runs again, or finds its events) and the rest are stored without it. What was judged after it counted it; with it gone, they asked for no more than
   * they were judged to take, so they stand.
   */
  private leaveOut(batch: Queued[], conflict: ConcurrencyConflict | DuplicateEventConflict): void {
    const lost = batch.find((queued) => queued.append.stream === conflict.stream);
    if (!lost) return this.fail(conflict);
    this.queue = this.queue.filter((queued) => queued !== lost);
    this.rebase();
    lost.settle({ error: conflict });
  }

  /** The queue's ledger again, from what is stored: after some of it was stored, or left out. */
  private rebase(): void {
    this.queueBase = this.stored;
    this.queuedState = this.stored.state;
    for (const queued of this.queue) queued.ledger = this.queuedState = ledgerDecider.evolve(this.queuedState, queued.event);
  }

  /**
   * The ledger's append failed: every queued admission was judged on a ledger that includes what did not get
   * stored, so all of them fail. A `ConcurrencyConflict` (another process wrote) runs their commands again, and the
   * next turn reads what the other process wrote forward from the stored copy, which is still true.
   */
  private fail(error: unknown): void {
    this.stale = true;
    const reason = error instanceof Error ? error : new Error(String(error));
    for (const queued of this.queue.splice(0)) queued.settle({ error: reason });
  }

  private toAppend(batch: Queued[], baseRevision: number, after: Ledger) {
    const appended = batch.map((queued) => ({
      id: randomUUID(),
      type: queued.event.type,
      schemaVersion: ledgerEvents.version(queued.event.type),
      data: jsonCopy(queued.event.data) as Record<string, unknown>,
      metadata: metadataOf(queued.context),
    }));
    // A snapshot closes the append that brings the events since the last one to the ledger's interval.
    if (baseRevision + appended.length - this.snapshotRevision >= snapshotInterval(after)) {
      appended.push({
        id: randomUUID(),
        type: 'LedgerSnapshotted',
        schemaVersion: ledgerEvents.version('LedgerSnapshotted'),
        data: jsonCopy(after) as unknown as Record<string, unknown>,
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
