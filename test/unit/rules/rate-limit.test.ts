import { expect } from 'chai';
import fc from 'fast-check';
import { NO_USAGE, type Change, type ParametersOf, type PastAction, type PolicyInputs, type RateLimitReadings } from '../../../domain/policy.js';
import { rateLimit, readRateLimits } from '../../../domain/rules/rate-limit.js';

const NOW = Date.parse('2026-03-10T12:00:00Z');
/** The ISO time `seconds` before the change (negative: after it). */
const ago = (seconds: number) => new Date(NOW - seconds * 1000).toISOString();

const change = (overrides: Partial<Change> = {}): Change => ({
  action: 'update',
  at: new Date(NOW).toISOString(),
  actor: { id: 'alice', kind: 'user' },
  target: { kind: 'deployment', id: 'dep-a' },
  clusterId: 'gpu-east',
  labels: {},
  ...overrides,
});

const scale = (from: number, to: number): Partial<Change> => ({
  action: 'scale',
  before: { replicas: from, cpuMillicores: 1000 * from, memoryBytes: 0, gpus: 0 },
  after: { replicas: to, cpuMillicores: 1000 * to, memoryBytes: 0, gpus: 0 },
});

const past = (secondsAgo: number, overrides: Partial<PastAction> = {}): PastAction => ({
  at: ago(secondsAgo),
  action: 'update',
  targetId: 'dep-a',
  actorId: 'alice',
  ...overrides,
});

const given = (rateLimits: RateLimitReadings): PolicyInputs => ({
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: { fleetHourlyUsd: 0, teamHourlyUsd: 0, targetHourlyUsdBefore: 0, targetHourlyUsdAfter: 0, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
  rateLimits,
});

const limit = (overrides: Partial<ParametersOf<'rate_limit'>> = {}): ParametersOf<'rate_limit'> => ({
  maxActions: 3,
  windowSeconds: 600,
  per: 'target',
  ...overrides,
});

/** The rule as a decision runs it: the history read for this one limit, then judged from the readings. */
const judge = (parameters: ParametersOf<'rate_limit'>, judged: Change, history: PastAction[]) =>
  rateLimit(parameters, judged, given(readRateLimits([parameters], judged, history)));

describe('rate_limit rule', () => {
  describe('sliding window', () => {
    it('given 2 changes in the window and a limit of 3, when another comes, then pass with the count', () => {
      const result = judge(limit(), change(), [past(10), past(300)]);
      expect(result).to.deep.equal({ outcome: 'pass', message: '2 changes to deployment dep-a in the last 600 s; at most 3 allowed' });
    });

    it('given no history, when a change comes, then pass with 0 changes', () => {
      expect(judge(limit(), change(), [])).to.deep.equal({
        outcome: 'pass',
        message: '0 changes to deployment dep-a in the last 600 s; at most 3 allowed',
      });
    });

    it('given 3 changes in the window and a limit of 3, when another comes, then fail naming when the oldest leaves the window', () => {
      const result = judge(limit(), change(), [past(10), past(100), past(400)]);
      expect(result).to.deep.equal({
        outcome: 'fail',
        message: '3 changes to deployment dep-a in the last 600 s; at most 3 allowed; next allowed at 2026-03-10T12:03:20Z',
      });
    });

    it('given an entry exactly windowSeconds old, when counted, then it is outside the window', () => {
      const result = judge(limit(), change(), [past(600), past(10), past(20)]);
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.match(/^2 changes /);
    });

    it('given an entry one millisecond inside the window, when counted, then it counts', () => {
      const result = judge(limit(), change(), [past(599.999), past(10), past(20)]);
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.contain('next allowed at 2026-03-10T12:00:00.001Z');
    });

    it('given an entry at the very time of the change, when counted, then it counts', () => {
      expect(judge(limit({ maxActions: 1 }), change(), [past(0)]).outcome).to.equal('fail');
    });

    it('given history later than the change, when judged, then those entries are ignored (replay)', () => {
      const result = judge(limit({ maxActions: 1 }), change(), [past(-1), past(-300)]);
      expect(result).to.deep.equal({ outcome: 'pass', message: '0 changes to deployment dep-a in the last 600 s; at most 1 allowed' });
    });

    it('given unsorted history, when over the limit, then the next allowed time still follows the oldest entry', () => {
      const result = judge(limit(), change(), [past(30), past(500), past(-50), past(5), past(700)]);
      expect(result.message).to.contain('next allowed at 2026-03-10T12:01:40Z');
    });

    it('given more entries than the limit, when over it, then the next allowed time is when enough have left', () => {
      // 5 counted, limit 3: three must leave, so the change waits for the third oldest (400 s ago).
      const result = judge(limit(), change(), [past(100), past(550), past(200), past(400), past(500)]);
      expect(result.message).to.equal(
        '5 changes to deployment dep-a in the last 600 s; at most 3 allowed; next allowed at 2026-03-10T12:03:20Z',
      );
    });

    it('given times written with offsets or without milliseconds, when counted, then the window edges hold all the same', () => {
      const history = [
        past(0, { at: '2026-03-10T11:50:00Z' }), // exactly 600 s old: outside
        past(0, { at: '2026-03-10T12:50:01+01:00' }), // 599 s old
        past(0, { at: '2026-03-10T07:00:00-05:00' }), // the very time of the change
        past(0, { at: '2026-03-10T13:00:01+01:00' }), // 1 s after the change: ignored
      ];
      expect(judge(limit(), change(), history).message).to.match(/^2 changes /);
      expect(judge(limit({ maxActions: 2 }), change(), history).message).to.contain('next allowed at 2026-03-10T12:00:01Z');
    });

    it('given an entry with an unreadable time, when counted, then it is not', () => {
      expect(judge(limit({ maxActions: 1 }), change(), [past(10, { at: 'yesterday' })]).outcome).to.equal('pass');
    });

    it('given a single change in the window, when passing, then the message says "1 change"', () => {
      expect(judge(limit(), change(), [past(10)]).message).to.match(/^1 change to deployment/);
    });

    it('given the same history in any order or time format, when judged, then the result is the same', () => {
      const entry = fc.record({
        secondsAgo: fc.integer({ min: -100, max: 1000 }),
        targetId: fc.constantFrom('dep-a', 'dep-b'),
        actorId: fc.constantFrom('alice', 'bob'),
        direction: fc.constantFrom('up', 'down', undefined),
      });
      const historyAndShuffled = fc
        .array(entry, { maxLength: 12 })
        .map((entries) =>
          entries.map(({ secondsAgo, direction, ...ids }) =>
            past(secondsAgo, { ...ids, action: direction ? 'scale' : 'update', ...(direction ? { direction } : {}) }),
          ),
        )
        .chain((history) => fc.tuple(fc.constant(history), fc.shuffledSubarray(history, { minLength: history.length })));
      fc.assert(
        fc.property(historyAndShuffled, fc.integer({ min: 1, max: 4 }), ([history, shuffled], maxActions) => {
          const parameters = limit({ maxActions, per: 'target_and_actor', stabilizationSeconds: 300 });
          const expected = judge(parameters, change(scale(3, 2)), history);
          expect(judge(parameters, change(scale(3, 2)), shuffled)).to.deep.equal(expected);
          const withOffsets = history.map((entry) => ({ ...entry, at: entry.at.replace('.000Z', '+00:00') }));
          expect(judge(parameters, change(scale(3, 2)), withOffsets)).to.deep.equal(expected);
        }),
      );
    });

    it('given a change time that is not a date-time, when judged, then fail saying so', () => {
      expect(judge(limit(), change({ at: 'soon' }), [])).to.deep.equal({
        outcome: 'fail',
        message: `the change's time "soon" is not an ISO date-time`,
      });
    });
  });

  describe('scope', () => {
    const history = [
      past(10),
      past(20, { actorId: 'bob' }),
      past(30, { targetId: 'dep-b' }),
      past(40, { targetId: 'dep-b', actorId: 'bob' }),
      past(50, { actorId: 'bob' }),
    ];

    it('given per target, when judged, then changes to the same target by anyone count', () => {
      const result = judge(limit({ maxActions: 10 }), change(), history);
      expect(result.message).to.equal('3 changes to deployment dep-a in the last 600 s; at most 10 allowed');
    });

    it('given per actor, when judged, then changes by the same actor to any target count', () => {
      const result = judge(limit({ maxActions: 10, per: 'actor' }), change(), history);
      expect(result.message).to.equal('2 changes by user alice in the last 600 s; at most 10 allowed');
    });

    it('given per target and actor, when judged, then only changes by the same actor to the same target count', () => {
      const result = judge(limit({ maxActions: 10, per: 'target_and_actor' }), change(), history);
      expect(result.message).to.equal('1 change to deployment dep-a by user alice in the last 600 s; at most 10 allowed');
    });

    it('given per actor and the actor at the limit, when it changes another target, then fail', () => {
      const result = judge(limit({ maxActions: 2, per: 'actor' }), change({ target: { kind: 'cluster', id: 'gpu-west' } }), history);
      expect(result).to.deep.equal({
        outcome: 'fail',
        message: '2 changes by user alice in the last 600 s; at most 2 allowed; next allowed at 2026-03-10T12:09:30Z',
      });
    });
  });

  describe('anti-flap', () => {
    const stable = limit({ maxActions: 100, stabilizationSeconds: 300 });
    const scaledUp = (secondsAgo: number, overrides: Partial<PastAction> = {}) =>
      past(secondsAgo, { action: 'scale', direction: 'up', ...overrides });
    const scaledDown = (secondsAgo: number, overrides: Partial<PastAction> = {}) =>
      past(secondsAgo, { action: 'scale', direction: 'down', ...overrides });

    it('given a scale up 100 s ago, when scaled down, then fail naming when a scale down is allowed', () => {
      const result = judge(stable, change(scale(4, 2)), [scaledUp(100)]);
      expect(result).to.deep.equal({
        outcome: 'fail',
        message:
          'deployment dep-a was scaled up at 2026-03-10T11:58:20Z; a scale down is refused until 2026-03-10T12:03:20Z (300 s stabilization)',
      });
    });

    it('given a scale up 100 s ago, when scaled up again, then pass', () => {
      expect(judge(stable, change(scale(4, 6)), [scaledUp(100)]).outcome).to.equal('pass');
    });

    it('given a scale up exactly stabilizationSeconds ago, when scaled down, then pass', () => {
      expect(judge(stable, change(scale(4, 2)), [scaledUp(300)]).outcome).to.equal('pass');
    });

    it('given a scale down then a later scale up, in any order, when scaled down, then the later one decides', () => {
      const result = judge(stable, change(scale(4, 2)), [scaledUp(50), scaledDown(200)]);
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.contain('scaled up at 2026-03-10T11:59:10Z');
      expect(judge(stable, change(scale(4, 6)), [scaledDown(200), scaledUp(50)]).outcome).to.equal('pass');
    });

    it('given a scale up then a later scale down, when scaled down again, then pass', () => {
      expect(judge(stable, change(scale(4, 2)), [scaledDown(50), scaledUp(200)]).outcome).to.equal('pass');
    });

    it('given a scale up and a scale down at the same moment, when scaled either way, then the reversal is refused', () => {
      const history = [scaledUp(50), scaledDown(50)];
      expect(judge(stable, change(scale(4, 2)), history).outcome).to.equal('fail');
      expect(judge(stable, change(scale(4, 6)), history).outcome).to.equal('fail');
    });

    it('given a recent scale up, when the change is not a scale, then stabilization does not apply', () => {
      const history = [scaledUp(10)];
      expect(judge(stable, change({ action: 'restart' }), history).outcome).to.equal('pass');
      expect(judge(stable, change({ ...scale(4, 2), action: 'update' }), history).outcome).to.equal('pass');
    });

    it('given a recent scale up, when a scale leaves the replicas as they are, then stabilization does not apply', () => {
      expect(judge(stable, change(scale(4, 4)), [scaledUp(10)]).outcome).to.equal('pass');
    });

    it('given no stabilizationSeconds, when a scale reverses the last one, then pass', () => {
      expect(judge(limit(), change(scale(4, 2)), [scaledUp(10)]).outcome).to.equal('pass');
    });

    it('given a recent scale up of another target, when scaled down, then pass', () => {
      expect(judge(stable, change(scale(4, 2)), [scaledUp(10, { targetId: 'dep-b' })]).outcome).to.equal('pass');
    });

    it('given per actor and a recent scale up of the target by someone else, when scaled down, then fail all the same', () => {
      const parameters = limit({ maxActions: 100, per: 'actor', stabilizationSeconds: 300 });
      expect(judge(parameters, change(scale(4, 2)), [scaledUp(10, { actorId: 'bob' })]).outcome).to.equal('fail');
    });

    it('given a scale up recorded after the change, when scaled down, then it is ignored (replay)', () => {
      expect(judge(stable, change(scale(4, 2)), [scaledUp(-10)]).outcome).to.equal('pass');
    });

    it('given both the limit reached and a reversal, when scaled down, then the message gives both reasons', () => {
      const parameters = limit({ maxActions: 1, stabilizationSeconds: 300 });
      const result = judge(parameters, change(scale(4, 2)), [scaledUp(100)]);
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.equal(
        '1 change to deployment dep-a in the last 600 s; at most 1 allowed; next allowed at 2026-03-10T12:08:20Z. ' +
          'Also, deployment dep-a was scaled up at 2026-03-10T11:58:20Z; a scale down is refused until 2026-03-10T12:03:20Z (300 s stabilization)',
      );
    });
  });
});

describe('rate_limit rule, judged from its readings alone', () => {
  const window = (count: number, reached?: { maxActions: number; nextAllowedAt: string }[]) => ({
    per: 'target' as const,
    windowSeconds: 600,
    count,
    ...(reached ? { reached } : {}),
  });

  it('given 2 changes counted in the window, when a limit of 3 judges, then pass with the count', () => {
    expect(rateLimit(limit(), change(), given({ windows: [window(2)] }))).to.deep.equal({
      outcome: 'pass',
      message: '2 changes to deployment dep-a in the last 600 s; at most 3 allowed',
    });
  });

  it('given 5 counted and the limit of 3 reached, when judged, then fail naming the time the readings give', () => {
    const readings = { windows: [window(5, [{ maxActions: 3, nextAllowedAt: '2026-03-10T12:03:20.000Z' }])] };
    expect(rateLimit(limit(), change(), given(readings))).to.deep.equal({
      outcome: 'fail',
      message: '5 changes to deployment dep-a in the last 600 s; at most 3 allowed; next allowed at 2026-03-10T12:03:20Z',
    });
  });

  it('given a count at the limit with no time read for it, when judged, then fail without naming one', () => {
    expect(rateLimit(limit(), change(), given({ windows: [window(3)] }))).to.deep.equal({
      outcome: 'fail',
      message: '3 changes to deployment dep-a in the last 600 s; at most 3 allowed',
    });
  });

  it('given readings without this limit’s window, when judged, then fail saying nothing was read', () => {
    const result = rateLimit(limit({ per: 'actor' }), change(), given({ windows: [window(0)] }));
    expect(result).to.deep.equal({ outcome: 'fail', message: 'no count of the changes by user alice in the last 600 s was read to judge by' });
  });

  it('given the target last scaled up 100 s ago, when a 300 s stabilization judges a scale down, then fail naming when it is allowed', () => {
    const readings = { windows: [window(1)], lastScale: { at: ago(100), direction: 'up' as const } };
    expect(rateLimit(limit({ maxActions: 100, stabilizationSeconds: 300 }), change(scale(4, 2)), given(readings))).to.deep.equal({
      outcome: 'fail',
      message: 'deployment dep-a was scaled up at 2026-03-10T11:58:20Z; a scale down is refused until 2026-03-10T12:03:20Z (300 s stabilization)',
    });
  });

  it('given the target last scaled up 100 s ago, when a 60 s stabilization or a scale up judges, then pass', () => {
    const readings = { windows: [window(1)], lastScale: { at: ago(100), direction: 'up' as const } };
    expect(rateLimit(limit({ maxActions: 100, stabilizationSeconds: 60 }), change(scale(4, 2)), given(readings)).outcome).to.equal('pass');
    expect(rateLimit(limit({ maxActions: 100, stabilizationSeconds: 300 }), change(scale(4, 6)), given(readings)).outcome).to.equal('pass');
  });
});

describe('what the rate limits read of the history', () => {
  it('given limits sharing a window, then one count per scope and window, with a time only for each limit reached', () => {
    const limits = [limit({ maxActions: 2 }), limit({ maxActions: 3 }), limit({ maxActions: 9 }), limit({ per: 'actor', windowSeconds: 60 })];
    const readings = readRateLimits(limits, change(), [past(10), past(100), past(400), past(30, { targetId: 'dep-b' }), past(90)]);
    expect(readings).to.deep.equal({
      windows: [
        {
          per: 'target',
          windowSeconds: 600,
          count: 4,
          reached: [
            { maxActions: 2, nextAllowedAt: '2026-03-10T12:08:30.000Z' },
            { maxActions: 3, nextAllowedAt: '2026-03-10T12:08:20.000Z' },
          ],
        },
        { per: 'actor', windowSeconds: 60, count: 2 },
      ],
    });
  });

  it('given a stabilization, when a scale moves replicas, then the target’s last scale within it is read, and otherwise not', () => {
    const history = [past(500, { action: 'scale', direction: 'down' }), past(50, { action: 'scale', direction: 'up' }), past(20)];
    const stable = limit({ maxActions: 100, stabilizationSeconds: 300 });
    expect(readRateLimits([stable], change(scale(4, 2)), history).lastScale).to.deep.equal({ at: ago(50), direction: 'up' });
    expect(readRateLimits([limit()], change(scale(4, 2)), history)).not.to.have.property('lastScale');
    expect(readRateLimits([stable], change(scale(4, 4)), history)).not.to.have.property('lastScale');
    expect(readRateLimits([stable], change(), history)).not.to.have.property('lastScale');
  });

  it('given 10 or 10,000 admitted changes, then the readings are the same size but for the digits of the count', () => {
    const history = (n: number) => Array.from({ length: n }, (_, i) => past((i * 500) / n, { action: 'scale', direction: i % 2 ? 'up' : 'down' }));
    const limits = [limit({ maxActions: 5, stabilizationSeconds: 300 }), limit({ maxActions: 5, per: 'target_and_actor' })];
    const few = readRateLimits(limits, change(scale(4, 2)), history(10));
    const many = readRateLimits(limits, change(scale(4, 2)), history(10_000));
    expect(many.windows.map((w) => w.count)).to.deep.equal([10_000, 10_000]);
    expect(JSON.stringify(many).length).to.equal(JSON.stringify(few).length + 2 * 3);
  });
});
