// How many events to ask the store for at a time, so that a page of large events stays within a memory budget.
//
// A page is held in memory whole, often twice (the one being applied and the one read ahead), and each event's data
// takes a few times its JSON size once parsed and copied. Pages of a fixed count are fine for events of a kilobyte
// and ruinous for decisions of hundreds: 500 of those are 150 MB of JSON. So the count adapts: each page's size in
// JSON bytes (estimated from a sample of its events) sets the next page's count, within [MIN_PAGE, the configured
// maximum]. The count asked for is still what a reader compares a page against: a page shorter than asked means the
// end of the log, as before.
import type { RecordedEvent } from './event-store.js';

/** JSON bytes of event data one page may hold, as the events read so far suggest. */
export const DEFAULT_PAGE_BYTES = 8 * 1024 * 1024;
/** Never fewer events than this to a page, however large: progress stays steady. */
const MIN_PAGE = 8;
/** The first page before anything was measured: small enough for large events, soon doubled for small ones. */
const FIRST_PAGE = 64;
/** Events of a page whose data is measured: enough for its average size, few enough to cost little. */
const SAMPLED = 32;

export class PageSize {
  private current: number;

  constructor(
    private readonly max: number,
    private readonly budgetBytes: number = DEFAULT_PAGE_BYTES,
  ) {
    this.current = Math.max(1, Math.min(max, FIRST_PAGE));
  }

  /** How many events to ask for next. */
  get limit(): number {
    return this.current;
  }

  /**
   * Learns from a page that was read: the next count fits the budget at this page's average size. The average is
   * taken over at most SAMPLED events spread evenly through the page: writing every event's data out again only
   * to measure it cost more than a projector spent on some of them.
   */
  measured(events: readonly RecordedEvent[]): void {
    if (events.length === 0) return;
    const step = Math.max(1, Math.floor(events.length / SAMPLED));
    let bytes = 0;
    let sampled = 0;
    for (let i = 0; i < events.length; i += step) {
      bytes += JSON.stringify(events[i]!.data).length;
      sampled += 1;
    }
    const fitting = Math.floor(this.budgetBytes / Math.max(1, bytes / sampled));
    // Grows at most twofold a page, so that one page of small events does not let the next hold the whole budget
    // in large ones; shrinks at once.
    this.current = Math.max(Math.min(MIN_PAGE, this.max), Math.min(this.max, fitting, this.current * 2));
  }
}
