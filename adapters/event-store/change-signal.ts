// Wakes waiting subscribers when new events may be readable, so subscriptions sleep instead of busy polling.

export type WakeReason = 'notified' | 'timeout' | 'aborted';

export class ChangeSignal {
  private waiters = new Set<(reason: WakeReason) => void>();
  private notified = 0;

  /** How many times `notify()` has been called: taken before a read, it lets `wait` count what came during it. */
  get notifications(): number {
    return this.notified;
  }

  /**
   * Resolves on the next `notify()`, after `timeoutMs`, or when `abort` fires, whichever comes first; at once
   * when `notify()` has been called since `notifications` read `since`.
   */
  wait(timeoutMs: number, abort?: AbortSignal, since?: number): Promise<WakeReason> {
    if (abort?.aborted) return Promise.resolve('aborted');
    if (since !== undefined && since !== this.notified) return Promise.resolve('notified');
    return new Promise((resolve) => {
      const finish = (reason: WakeReason) => {
        clearTimeout(timer);
        abort?.removeEventListener('abort', onAbort);
        this.waiters.delete(finish);
        resolve(reason);
      };
      const onAbort = () => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), timeoutMs);
      abort?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(finish);
    });
  }

  notify(): void {
    this.notified += 1;
    for (const wake of [...this.waiters]) wake('notified');
  }

  get waiting(): number {
    return this.waiters.size;
  }
}
