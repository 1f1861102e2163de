// A catch-up-then-live subscription built on repeated `readAll` calls, woken by a change signal.
import type { ReadAllResult, RecordedEvent, SubscribeOptions, Subscription } from '../../domain/event-store.js';
import { PageSize } from '../../domain/read-pages.js';
import type { ChangeSignal } from './change-signal.js';

export interface PollingOptions {
  /** First wait after a read that found nothing new; doubles on each further empty read. */
  minWaitMs: number;
  /** Longest wait between reads when no change signal arrives (the safety net for a missed signal). */
  maxWaitMs: number;
  batchSize: number;
}

/**
 * A page of a subscription's read. `atHead` when it holds everything visible once the appends announced before the
 * read was asked for had committed: there is nothing more to read until the next announcement.
 */
export interface SubscriptionPage extends ReadAllResult {
  atHead?: boolean;
}

/**
 * Reads the page after `after`. `since` is the change signal's count when it was asked for: a read of the log begun
 * since then may answer it. Undefined after a wait that timed out: the visible horizon may have moved without an
 * announcement (a transaction elsewhere ended), and only a read begun now sees that.
 */
export type SubscriptionRead = (after: string | undefined, limit: number, since: number | undefined) => Promise<SubscriptionPage>;

/** A read of the page after `after`, started before anyone waits for it. */
interface PageRead {
  after: string | undefined;
  page: Promise<SubscriptionPage>;
  /** The signal's count when the read began: a notification since may concern an event the read missed. */
  notifiedBefore: number;
}

/**
 * While the consumer handles one page, the next one is being read: one read ahead, so at most two pages are held.
 * The read ahead starts from the checkpoint the page in hand returned, exactly where a read after it would start,
 * so order and the visible horizon hold as they would without it; a read that fails surfaces once the consumer
 * reaches it. Ending the subscription (close(), or `break` out of the loop) waits for a read in flight, so none is
 * left running against a store about to close.
 */
export function pollingSubscription(
  readAll: SubscriptionRead,
  signal: ChangeSignal,
  options: SubscribeOptions,
  polling: PollingOptions,
): Subscription {
  const abort = new AbortController();
  // At most `batchSize` events a read, fewer when they are large: a page is held whole while it is handed out.
  const pages = new PageSize(options.batchSize ?? polling.batchSize);

  function startRead(after: string | undefined, timedOut = false): PageRead {
    const notifiedBefore = signal.notifications;
    const read: PageRead = { after, page: readAll(after, pages.limit, timedOut ? undefined : notifiedBefore), notifiedBefore };
    // Its failure is reported when the consumer gets to it; until then it must not count as unhandled.
    read.page.catch(() => undefined);
    return read;
  }

  async function* run(): AsyncGenerator<RecordedEvent, void, undefined> {
    let checkpoint = options.after;
    let waitMs = polling.minWaitMs;
    let ahead: PageRead | undefined;
    let timedOut = false;
    try {
      while (!abort.signal.aborted) {
        const current = ahead ?? startRead(checkpoint, timedOut);
        ahead = undefined;
        const { events, checkpoint: next, atHead } = await current.page;
        if (abort.signal.aborted) return;
        pages.measured(events);
        checkpoint = next ?? checkpoint;
        const moved = checkpoint !== current.after;
        if (moved) waitMs = polling.minWaitMs;
        // Found events, or a filtered read moved past events that did not match: there may be more, unless the read
        // says it reached the head.
        if (moved && !atHead) ahead = startRead(checkpoint);
        for (const event of events) {
          yield event;
          if (abort.signal.aborted) return;
        }
        if (ahead) continue;
        // Nothing more. An append notified since the read began may have missed it: read again at once.
        const reason = await signal.wait(waitMs, abort.signal, current.notifiedBefore);
        timedOut = reason === 'timeout';
        waitMs = reason === 'notified' ? polling.minWaitMs : Math.min(waitMs * 2, polling.maxWaitMs);
      }
    } finally {
      await ahead?.page.catch(() => undefined);
    }
  }

  const iterator = run();
  return {
    [Symbol.asyncIterator]: () => iterator,
    async close() {
      abort.abort();
      await iterator.return(undefined);
    },
  };
}
