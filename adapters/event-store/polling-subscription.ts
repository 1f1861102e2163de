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

export function pollingSubscription(
  readAll: (after: string | undefined, limit: number) => Promise<ReadAllResult>,
  signal: ChangeSignal,
  options: SubscribeOptions,
  polling: PollingOptions,
): Subscription {
  const abort = new AbortController();
  // At most `batchSize` events a read, fewer when they are large: a page is held whole while it is handed out.
  const pages = new PageSize(options.batchSize ?? polling.batchSize);

  async function* run(): AsyncGenerator<RecordedEvent, void, undefined> {
    let checkpoint = options.after;
    let waitMs = polling.minWaitMs;
    while (!abort.signal.aborted) {
      const { events, checkpoint: next } = await readAll(checkpoint, pages.limit);
      pages.measured(events);
      const advanced = next !== checkpoint;
      checkpoint = next ?? checkpoint;
      for (const event of events) {
        yield event;
        if (abort.signal.aborted) return;
      }
      if (advanced) {
        // Found events, or a filtered read moved past events that did not match: there may be more.
        waitMs = polling.minWaitMs;
        continue;
      }
      const reason = await signal.wait(waitMs, abort.signal);
      waitMs = reason === 'notified' ? polling.minWaitMs : Math.min(waitMs * 2, polling.maxWaitMs);
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
