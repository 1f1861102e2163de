// Waiting in tests for something that happens asynchronously, with a message that says what was last seen.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `probe` until `done` holds; a probe that throws counts as "not yet", and the last thing seen is reported. */
export async function eventually<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: { value: T } | { error: unknown } | undefined;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (done(value)) return value;
      last = { value };
    } catch (error) {
      last = { error };
    }
    await sleep(50);
  }
  const seen = last === undefined ? 'nothing' : 'error' in last ? String(last.error) : JSON.stringify(last.value);
  throw new Error(`${what} did not happen within ${timeoutMs} ms; last seen: ${seen}`);
}
