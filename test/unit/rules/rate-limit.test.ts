import { expect } from 'chai';
import fc from 'fast-check';
import { NO_USAGE, type Change, type ParametersOf, type PastAction, type PolicyInputs } from '../../../domain/policy.js';
import { rateLimit } from '../../../domain/rules/rate-limit.js';

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

const inputs = (history: PastAction[]): PolicyInputs => ({
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: { fleetHourlyUsd: 0, teamHourlyUsd: 0, targetHourlyUsdBefore: 0, targetHourlyUsdAfter: 0, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
  history,
});

const limit = (overrides: Partial<ParametersOf<'rate_limit'>> = {}): ParametersOf<'rate_limit'> => ({
  maxActions: 3,
  windowSeconds: 600,
  per: 'target',
  ...overrides,
});

describe('rate_limit rule', () => {
  describe('sliding window', () => {
    it('given 2 changes in the window and a limit of 3, when another comes, then pass with the count', () => {
      const result = rateLimit(limit(), change(), inputs([past(10), past(300)]));
      expect(result).to.deep.equal({ outcome: 'pass', message: '2 changes to deployment dep-a in the last 600 s; at most 3 allowed' });
    });

    it('given no history, when a change comes, then pass with 0 changes', () => {
      expect(rateLimit(limit(), change(), inputs([]))).to.deep.equal({
        outcome: 'pass',
        message: '0 changes to deployment dep-a in the last 600 s; at most 3 allowed',
      });
    });

    it('given 3 changes in the window and a limit of 3, when another comes, then fail naming when the oldest leaves the window', () => {
      const result = rateLimit(limit(), change(), inputs([past(10), past(100), past(400)]));
      expect(result).to.deep.equal({
        outcome: 'fail',
        message: '3 changes to deployment dep-a in the last 600 s; at most 3 allowed; next allowed at 2026-03-10T12:03:20Z',
      });
    });

    it('given an entry exactly windowSeconds old, when counted, then it is outside the window', () => {
      const result = rateLimit(limit(), change(), inputs([past(600), past(10), past(20)]));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.match(/^2 changes /);
    });

    it('given an entry one millisecond inside the window, when counted, then it counts', () => {
      const result = rateLimit(limit(), change(), inputs([past(599.999), past(10), past(20)]));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.contain('next allowed at 2026-03-10T12:00:00.001Z');
    });

    it('given an entry at the very time of the change, when counted, then it counts', () => {
      expect(rateLimit(limit({ maxActions: 1 }), change(), inputs([past(0)])).outcome).to.equal('fail');
    });

    it('given history later than the change, when judged, then those entries are ignored (replay)', () => {
      const result = rateLimit(limit({ maxActions: 1 }), change(), inputs([past(-1), past(-300)]));
      expect(result).to.deep.equal({ outcome: 'pass', message: '0 changes to deployment dep-a in the last 600 s; at most 1 allowed' });
    });

    it('given unsorted history, when over the limit, then the next allowed time still follows the oldest entry', () => {
      const result = rateLimit(limit(), change(), inputs([past(30), past(500), past(-50), past(5), past(700)]));
      expect(result.message).to.contain('next allowed at 2026-03-10T12:01:40Z');
    });

    it('given more entries than the limit, when over it, then the next allowed time is when enough have left', () => {
      // 5 counted, limit 3: three must leave, so the change waits for the third oldest (400 s ago).
      const result = rateLimit(limit(), change(), inputs([past(100), past(550), past(200), past(400), past(500)]));
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
      expect(rateLimit(limit(), change(), inputs(history)).message).to.match(/^2 changes /);
      expect(rateLimit(limit({ maxActions: 2 }), change(), inputs(history)).message).to.contain('next allowed at 2026-03-10T12:00:01Z');
    });

    it('given an entry with an unreadable time, when counted, then it is not', () => {
      expect(rateLimit(limit({ maxActions: 1 }), change(), inputs([past(10, { at: 'yesterday' })])).outcome).to.equal('pass');
    });

    it('given a single change in the window, when passing, then the message says "1 change"', () => {
      expect(rateLimit(limit(), change(), inputs([past(10)])).message).to.match(/^1 change to deployment/);
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
          const expected = rateLimit(parameters, change(scale(3, 2)), inputs(history));
          expect(rateLimit(parameters, change(scale(3, 2)), inputs(shuffled))).to.deep.equal(expected);
          const withOffsets = history.map((entry) => ({ ...entry, at: entry.at.replace('.000Z', '+00:00') }));
          expect(rateLimit(parameters, change(scale(3, 2)), inputs(withOffsets))).to.deep.equal(expected);
        }),
      );
    });

    it('given a change time that is not a date-time, when judged, then fail saying so', () => {
      expect(rateLimit(limit(), change({ at: 'soon' }), inputs([]))).to.deep.equal({
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
      const result = rateLimit(limit({ maxActions: 10 }), change(), inputs(history));
      expect(result.message).to.equal('3 changes to deployment dep-a in the last 600 s; at most 10 allowed');
    });

    it('given per actor, when judged, then changes by the same actor to any target count', () => {
      const result = rateLimit(limit({ maxActions: 10, per: 'actor' }), change(), inputs(history));
      expect(result.message).to.equal('2 changes by user alice in the last 600 s; at most 10 allowed');
    });

    it('given per target and actor, when judged, then only changes by the same actor to the same target count', () => {
      const result = rateLimit(limit({ maxActions: 10, per: 'target_and_actor' }), change(), inputs(history));
      expect(result.message).to.equal('1 change to deployment dep-a by user alice in the last 600 s; at most 10 allowed');
    });

    it('given per actor and the actor at the limit, when it changes another target, then fail', () => {
      const result = rateLimit(limit({ maxActions: 2, per: 'actor' }), change({ target: { kind: 'cluster', id: 'gpu-west' } }), inputs(history));
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
      const result = rateLimit(stable, change(scale(4, 2)), inputs([scaledUp(100)]));
      expect(result).to.deep.equal({
        outcome: 'fail',
        message:
          'deployment dep-a was scaled up at 2026-03-10T11:58:20Z; a scale down is refused until 2026-03-10T12:03:20Z (300 s stabilization)',
      });
    });

    it('given a scale up 100 s ago, when scaled up again, then pass', () => {
      expect(rateLimit(stable, change(scale(4, 6)), inputs([scaledUp(100)])).outcome).to.equal('pass');
    });

    it('given a scale up exactly stabilizationSeconds ago, when scaled down, then pass', () => {
      expect(rateLimit(stable, change(scale(4, 2)), inputs([scaledUp(300)])).outcome).to.equal('pass');
    });

    it('given a scale down then a later scale up, in any order, when scaled down, then the later one decides', () => {
      const result = rateLimit(stable, change(scale(4, 2)), inputs([scaledUp(50), scaledDown(200)]));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.contain('scaled up at 2026-03-10T11:59:10Z');
      expect(rateLimit(stable, change(scale(4, 6)), inputs([scaledDown(200), scaledUp(50)])).outcome).to.equal('pass');
    });

    it('given a scale up then a later scale down, when scaled down again, then pass', () => {
      expect(rateLimit(stable, change(scale(4, 2)), inputs([scaledDown(50), scaledUp(200)])).outcome).to.equal('pass');
    });

    it('given a scale up and a scale down at the same moment, when scaled either way, then the reversal is refused', () => {
      const history = [scaledUp(50), scaledDown(50)];
      expect(rateLimit(stable, change(scale(4, 2)), inputs(history)).outcome).to.equal('fail');
      expect(rateLimit(stable, change(scale(4, 6)), inputs(history)).outcome).to.equal('fail');
    });

    it('given a recent scale up, when the change is not a scale, then stabilization does not apply', () => {
      const history = [scaledUp(10)];
      expect(rateLimit(stable, change({ action: 'restart' }), inputs(history)).outcome).to.equal('pass');
      expect(rateLimit(stable, change({ ...scale(4, 2), action: 'update' }), inputs(history)).outcome).to.equal('pass');
    });

    it('given a recent scale up, when a scale leaves the replicas as they are, then stabilization does not apply', () => {
      expect(rateLimit(stable, change(scale(4, 4)), inputs([scaledUp(10)])).outcome).to.equal('pass');
    });

    it('given no stabilizationSeconds, when a scale reverses the last one, then pass', () => {
      expect(rateLimit(limit(), change(scale(4, 2)), inputs([scaledUp(10)])).outcome).to.equal('pass');
    });

    it('given a recent scale up of another target, when scaled down, then pass', () => {
      expect(rateLimit(stable, change(scale(4, 2)), inputs([scaledUp(10, { targetId: 'dep-b' })])).outcome).to.equal('pass');
    });

    it('given per actor and a recent scale up of the target by someone else, when scaled down, then fail all the same', () => {
      const parameters = limit({ maxActions: 100, per: 'actor', stabilizationSeconds: 300 });
      expect(rateLimit(parameters, change(scale(4, 2)), inputs([scaledUp(10, { actorId: 'bob' })])).outcome).to.equal('fail');
    });

    it('given a scale up recorded after the change, when scaled down, then it is ignored (replay)', () => {
      expect(rateLimit(stable, change(scale(4, 2)), inputs([scaledUp(-10)])).outcome).to.equal('pass');
    });

    it('given both the limit reached and a reversal, when scaled down, then the message gives both reasons', () => {
      const parameters = limit({ maxActions: 1, stabilizationSeconds: 300 });
      const result = rateLimit(parameters, change(scale(4, 2)), inputs([scaledUp(100)]));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.equal(
        '1 change to deployment dep-a in the last 600 s; at most 1 allowed; next allowed at 2026-03-10T12:08:20Z. ' +
          'Also, deployment dep-a was scaled up at 2026-03-10T11:58:20Z; a scale down is refused until 2026-03-10T12:03:20Z (300 s stabilization)',
      );
    });
  });
});
