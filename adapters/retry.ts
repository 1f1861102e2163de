// The one retry policy: cockatiel's retry with exponential backoff and half jitter. Which failures are worth another
// try stays the caller's rule (Kubernetes statuses, concurrency conflicts, the reactor failure taxonomy).
import { DelegateBackoff, handleWhen, retry } from 'cockatiel';

/** Waits double from `baseMs` with each retry, never longer than `maxMs`. */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export interface RetryRules {
  backoff: Backoff;
  /** Tries in all, the first included; without it, tries go on until one succeeds or `signal` aborts. */
  attempts?: number;
  /** Whether this failure may heal by waiting; without it every failure is tried again. */
  retryable?: (error: unknown) => boolean;
  /** A wait the failure itself asks for (an HTTP Retry-After), taken instead of the backoff, capped at `maxMs`. */
  waitAskedBy?: (error: unknown) => number | undefined;
  /** Told before each wait: for a log line or a metric. */
  onRetry?: (retry: { error: unknown; attempt: number; delayMs: number }) => void;
  /** Stops the retrying: a wait under way ends at once and the call is not made again. */
  signal?: AbortSignal;
  random?: () => number;
}

/** Thrown by `retrying` when its signal aborted before a try succeeded. */
export class RetryAborted extends Error {
  constructor() {
    super('stopped before the call succeeded');
    this.name = 'RetryAborted';
  }
}

/**
 * Runs `call` until it succeeds, a failure is not retryable (thrown as it is), the attempts are used up (the last
 * failure is thrown) or the signal aborts (`RetryAborted`). `attempt` counts from 1.
 */
export async function retrying<T>(call: (attempt: number) => Promise<T>, rules: RetryRules): Promise<T> {
  const { signal } = rules;
  const policy = retry(
    handleWhen((error) => !(error instanceof RetryAborted) && !signal?.aborted && (rules.retryable?.(error) ?? true)),
    {
      maxAttempts: rules.attempts === undefined ? Infinity : rules.attempts - 1,
      backoff: new DelegateBackoff<{ attempt: number; result: { error: Error } | { value: unknown } }>(({ attempt, result }) => {
        const asked = 'error' in result ? rules.waitAskedBy?.(result.error) : undefined;
        return Math.min(asked ?? backoffDelay(attempt, rules.backoff, rules.random), rules.backoff.maxMs);
      }),
    },
  );
  // cockatiel's wait does not end on abort: the timer is let go of (so it keeps no process alive) and the abort
  // races it, and a try that would start after the abort is refused.
  const unrefed = policy.dangerouslyUnref();
  if (rules.onRetry) {
    const onRetry = rules.onRetry;
    unrefed.onRetry((event) => onRetry({ error: 'error' in event ? event.error : undefined, attempt: event.attempt, delayMs: event.delay }));
  }
  const run = unrefed.execute(({ attempt }) => {
    if (signal?.aborted) throw new RetryAborted();
    return call(attempt + 1);
  }, signal);
  return signal ? untilAborted(run, signal) : run;
}

/** The wait before retry `retry` (from 1): doubling from the base up to the cap; half of it fixed, half random, so retrying clients spread out. */
export function backoffDelay(retry: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** (retry - 1));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** Waits `ms`, or less when the signal aborts first; never rejects. For loops that wait between their own tries. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** `run`'s outcome, or `RetryAborted` as soon as the signal aborts; the listener goes once either happens. */
function untilAborted<T>(run: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new RetryAborted());
    run.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  });
}
