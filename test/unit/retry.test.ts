// The one retry policy (cockatiel underneath): attempts, which failures are retried, the backoff, and stopping.
import { expect } from 'chai';
import { backoffDelay, pause, RetryAborted, retrying } from '../../adapters/retry.js';

const fast = { baseMs: 1, maxMs: 4 };

/** A call that fails `times` times with `error`, then answers `ok`. */
function failing(times: number, error: unknown = new Error('down')) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    call: async (): Promise<string> => {
      calls += 1;
      if (calls <= times) throw error;
      return 'ok';
    },
  };
}

describe('retrying', () => {
  it('given two failures, then the third try answers, and each retry is told its attempt and wait', async () => {
    const flaky = failing(2);
    const told: { attempt: number; delayMs: number }[] = [];
    const answer = await retrying(flaky.call, { backoff: fast, onRetry: ({ attempt, delayMs }) => told.push({ attempt, delayMs }) });
    expect(answer).to.equal('ok');
    expect(flaky.calls).to.equal(3);
    expect(told.map((retry) => retry.attempt)).to.deep.equal([1, 2]);
    for (const { delayMs } of told) expect(delayMs).to.be.within(0, fast.maxMs);
  });

  it('given failures every time, then the last failure after the attempts, the first one included', async () => {
    const error = new Error('still down');
    const down = failing(10, error);
    const thrown = await retrying(down.call, { backoff: fast, attempts: 3 }).catch((caught: unknown) => caught);
    expect(thrown).to.equal(error);
    expect(down.calls).to.equal(3);
  });

  it('given a failure the caller says will not heal, then it is thrown at once', async () => {
    const error = new Error('refused');
    const refused = failing(1, error);
    const thrown = await retrying(refused.call, { backoff: fast, retryable: (e) => e !== error }).catch((caught: unknown) => caught);
    expect(thrown).to.equal(error);
    expect(refused.calls).to.equal(1);
  });

  it('given a wait the failure asks for, then that wait, capped at the maximum', async () => {
    const waits: number[] = [];
    await retrying(failing(2).call, {
      backoff: { baseMs: 1, maxMs: 3 },
      waitAskedBy: () => 1000,
      onRetry: ({ delayMs }) => waits.push(delayMs),
    });
    expect(waits).to.deep.equal([3, 3]);
  });

  it('given an abort during a long wait, then RetryAborted at once and no further try', async () => {
    const abort = new AbortController();
    const down = failing(10);
    const run = retrying(down.call, { backoff: { baseMs: 60_000, maxMs: 60_000 }, signal: abort.signal, onRetry: () => abort.abort() });
    const thrown = await run.catch((caught: unknown) => caught);
    expect(thrown).to.be.instanceOf(RetryAborted);
    expect(down.calls).to.equal(1);
  });

  it('given an aborted signal, then no try at all', async () => {
    const abort = new AbortController();
    abort.abort();
    const never = failing(0);
    expect(await retrying(never.call, { backoff: fast, signal: abort.signal }).catch((caught: unknown) => caught)).to.be.instanceOf(RetryAborted);
    expect(never.calls).to.equal(0);
  });
});

describe('backoffDelay', () => {
  it('doubles from the base, half fixed and half jitter, up to the cap', () => {
    const backoff = { baseMs: 100, maxMs: 2000 };
    expect(backoffDelay(1, backoff, () => 0)).to.equal(50);
    expect(backoffDelay(1, backoff, () => 1)).to.equal(100);
    expect(backoffDelay(4, backoff, () => 1)).to.equal(800);
    expect(backoffDelay(20, backoff, () => 1)).to.equal(2000);
  });
});

describe('pause', () => {
  it('given an abort, then it ends at once', async () => {
    const abort = new AbortController();
    const paused = pause(60_000, abort.signal);
    abort.abort();
    await paused;
  });
});
