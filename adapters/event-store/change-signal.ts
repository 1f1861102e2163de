// Wakes waiting subscribers when new events may be readable, so subscriptions sleep instead of busy polling.

export type WakeReason = 'notified' | 'timeout' | 'aborted';

export class ChangeSignal {
  private waiters = new Set<(reason: WakeReason) => void>();

  /** Resolves on the next `notify()`, after `timeoutMs`, or when `abort` fires, whichever comes first. */
  wait(timeoutMs: number, abort?: AbortSignal): Promise<WakeReason> {
    if (abort?.aborted) return Promise.resolve('aborted');
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
    for (const wake of [...this.waiters]) wake('notified');
  }

  get waiting(): number {
    return this.waiters.size;
  }
}
