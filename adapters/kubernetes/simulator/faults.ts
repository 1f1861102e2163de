// Injected faults: failed requests, added latency, and images whose pods never pass readiness.

export interface FaultMatch {
  method?: string;
  /** Tested against the request path, without the query string. */
  path?: RegExp;
}

interface PendingFailure {
  remaining: number;
  status: number;
  match: FaultMatch;
}

function test(pattern: RegExp, text: string): boolean {
  // A global or sticky pattern remembers where it last matched; matching must not depend on earlier requests.
  pattern.lastIndex = 0;
  return pattern.test(text);
}

export class Faults {
  private failures: PendingFailure[] = [];
  private neverReadyImages: RegExp[] = [];
  latencyMs = 0;

  failNext(count: number, status: number, match: FaultMatch = {}): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`failNext count must be a non-negative integer, got ${count}`);
    if (!Number.isInteger(status) || status < 100 || status > 599) throw new RangeError(`failNext status must be an HTTP status, got ${status}`);
    if (count > 0) this.failures.push({ remaining: count, status, match });
  }

  /** The status the request must fail with, consuming one injected failure, or undefined to serve it. */
  takeFailure(method: string, path: string): number | undefined {
    const failure = this.failures.find(
      (f) => (!f.match.method || f.match.method.toUpperCase() === method.toUpperCase()) && (!f.match.path || test(f.match.path, path)),
    );
    if (!failure) return undefined;
    failure.remaining -= 1;
    if (failure.remaining === 0) this.failures = this.failures.filter((f) => f !== failure);
    return failure.status;
  }

  setLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be a non-negative number of milliseconds, got ${ms}`);
    this.latencyMs = ms;
  }

  neverReady(image: RegExp): void {
    this.neverReadyImages.push(image);
  }

  isNeverReady(images: string[]): boolean {
    return images.some((image) => this.neverReadyImages.some((pattern) => test(pattern, image)));
  }

  clear(): void {
    this.failures = [];
    this.neverReadyImages = [];
    this.latencyMs = 0;
  }
}
