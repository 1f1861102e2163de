// One read of the head of the log for all the subscriptions of a process that have caught up with it.
//
// Every append wakes every subscription, and each used to read the log for itself: with a projector, a dozen
// reactors and the InfraMind link in one process, an append cost some forty reads of the log, most finding nothing
// of their types. Caught-up subscriptions stand at the same place (a read that comes back short reports the visible
// head as its checkpoint, filtered or not), so one read of the whole log from there serves them all, each taking its
// own events from it in memory.
import type { EventFilter, Position, ReadAllResult, RecordedEvent } from '../../domain/event-store.js';
import { comparePositions, filterAccepts } from '../../domain/event-store.js';
import type { ChangeSignal } from './change-signal.js';

/** A page for one subscription; `atHead` when it holds everything visible when the last append was announced. */
export interface TailAnswer extends ReadAllResult {
  atHead: boolean;
}

/** A read of the whole log after `after`, shared by every subscription standing there. */
interface TailRead {
  after: Position;
  /** The change signal's count when the read began: it sees every append announced up to then. */
  startedAt: number;
  page: Promise<ReadAllResult>;
  /** What it found, once it has settled. */
  settled?: { complete: boolean; movedPast: boolean };
}

/** How many places are remembered: the current head, and a few behind it for subscriptions a page behind. */
const PLACES = 4;

export class SharedTail {
  /** The newest read from each of the last few places, oldest first. */
  private readonly reads = new Map<Position, TailRead>();
  /** The furthest visible head any read has reported: where the caught-up subscriptions stand. */
  private head: Position | undefined;

  constructor(
    /** Reads the whole log after a position, at most `limit` events. */
    private readonly readAll: (after: Position, limit: number) => Promise<ReadAllResult>,
    private readonly signal: ChangeSignal,
    /** Events a shared read asks for. */
    private readonly limit: number,
  ) {}

  /** Whether a read from `after` is answered here rather than by a read of the subscription's own. */
  serves(after: Position | undefined): boolean {
    return after !== undefined && (after === this.head || this.reads.has(after));
  }

  /**
   * Learns where the visible head was from a subscription's own read that came back short: the subscriptions that
   * reach it from then on share their reads.
   */
  reached(checkpoint: Position | undefined): void {
    if (checkpoint !== undefined && (this.head === undefined || comparePositions(checkpoint, this.head) > 0)) this.head = checkpoint;
  }

  /**
   * The page after `after` for a subscription with `filter`, at most `limit` events. `since` is the change signal's
   * count when the subscription asked: an append announced after a shared read began may be missing from it, so such
   * a read answers only with the events it has, never that the subscription is at the head.
   */
  async read(after: Position, filter: EventFilter | undefined, limit: number, since: number): Promise<TailAnswer> {
    for (;;) {
      let read = this.reads.get(after);
      // A read begun before the subscription asked, which found nothing, says nothing of what was appended since.
      if (!read || (read.startedAt < since && read.settled?.movedPast === false)) read = this.begin(after);
      const page = await read.page;
      const fresh = read.startedAt >= since;
      if (!fresh && page.checkpoint === after) continue;
      return answer(page, filter, limit, fresh && read.settled!.complete);
    }
  }

  private begin(after: Position): TailRead {
    const read: TailRead = { after, startedAt: this.signal.notifications, page: this.readAll(after, this.limit) };
    this.reads.delete(after);
    this.reads.set(after, read);
    for (const place of this.reads.keys()) {
      if (this.reads.size <= PLACES) break;
      this.reads.delete(place);
    }
    // Registered before any subscription waits on the page, so it has run by the time one reads `settled`.
    read.page.then(
      (page) => {
        read.settled = { complete: page.events.length < this.limit, movedPast: page.checkpoint !== after };
        if (read.settled.complete) this.reached(page.checkpoint);
      },
      () => {
        // A failed read is every waiting subscription's failure, and the next one reads again.
        if (this.reads.get(after) === read) this.reads.delete(after);
      },
    );
    return read;
  }
}

/**
 * One subscription's share of a page of the whole log: its events, at most `limit`, each a copy (another
 * subscription has the same page), and where it continues from: past every event of the page when it took all of
 * its own, else just after the last it took.
 */
function answer(page: ReadAllResult, filter: EventFilter | undefined, limit: number, complete: boolean): TailAnswer {
  const events: RecordedEvent[] = [];
  for (const event of page.events) {
    if (!filterAccepts(filter, event.type, event.stream)) continue;
    if (events.length === limit) return { events, checkpoint: events.at(-1)!.position, atHead: false };
    events.push(copyOf(event));
  }
  return { events, checkpoint: page.checkpoint, atHead: complete };
}

function copyOf(event: RecordedEvent): RecordedEvent {
  return { ...event, data: structuredClone(event.data), metadata: structuredClone(event.metadata) };
}
