import { expect } from 'chai';
import fc from 'fast-check';
import { nextHistory, type HistoryEntry } from '../../domain/ledger-history.js';
import type { Change, ParametersOf } from '../../domain/policy.js';
import { instantAt } from '../../domain/rules/instant.js';
import { readRateLimits } from '../../domain/rules/rate-limit.js';

// The ledger's history is indexed as it folds: the next history and each rate-limit reading must come out exactly
// as the plain filter and the plain walk make them, whatever order the times come in and whichever history a fold
// goes on from.

const T0 = Date.parse('2026-03-10T12:00:00Z');
const TARGETS = ['dep-a', 'dep-b', 'dep-c'];
const ACTORS = ['alice', 'bob'];

/** The history after an admission, as the ledger always made it. */
function plainNext(
  history: readonly HistoryEntry[],
  horizon: number,
  replaces: { targetId: string; targetRevision?: number },
  entry: HistoryEntry | undefined,
): HistoryEntry[] {
  const next = history.filter(
    (past) =>
      instantAt(past) > horizon &&
      !(past.targetId === replaces.targetId && past.targetRevision !== undefined && past.targetRevision === replaces.targetRevision),
  );
  if (entry) next.push(entry);
  return next;
}

interface Step {
  /** Which earlier history to go on from, counted back from the newest: mostly the newest. */
  back: number;
  /** Seconds from T0; the horizon is the latest time so far less the window. */
  seconds: number;
  unreadable: boolean;
  targetId: string;
  actorId: string;
  action: 'scale' | 'update';
  direction: 'up' | 'down' | undefined;
  /** A revision from a small set, so that retries replace earlier admissions. */
  targetRevision: number | undefined;
  settles: boolean;
}

const step: fc.Arbitrary<Step> = fc.record({
  back: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }) }),
  seconds: fc.integer({ min: 0, max: 400 }),
  unreadable: fc.oneof({ weight: 30, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  targetId: fc.constantFrom(...TARGETS),
  actorId: fc.constantFrom(...ACTORS),
  action: fc.constantFrom('scale', 'update'),
  direction: fc.constantFrom('up', 'down', undefined),
  targetRevision: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
  settles: fc.oneof({ weight: 10, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

const entryOf = (s: Step): HistoryEntry => ({
  at: s.unreadable ? 'not a time' : new Date(T0 + s.seconds * 1000).toISOString(),
  action: s.action,
  targetId: s.targetId,
  actorId: s.actorId,
  ...(s.direction ? { direction: s.direction } : {}),
  ...(s.targetRevision !== undefined ? { targetRevision: s.targetRevision } : {}),
});

const LIMITS: ParametersOf<'rate_limit'>[] = [
  { maxActions: 2, windowSeconds: 60, per: 'target', stabilizationSeconds: 120 },
  { maxActions: 3, windowSeconds: 200, per: 'actor' },
  { maxActions: 1, windowSeconds: 90, per: 'target_and_actor' },
];

const changeAt = (seconds: number, targetId: string, actorId: string): Change => ({
  action: 'scale',
  at: new Date(T0 + seconds * 1000).toISOString(),
  actor: { id: actorId, kind: 'user' },
  target: { kind: 'deployment', id: targetId },
  clusterId: 'gpu-east',
  labels: {},
  before: { replicas: 2, cpuMillicores: 0, memoryBytes: 0, gpus: 0 },
  after: { replicas: 1, cpuMillicores: 0, memoryBytes: 0, gpus: 0 },
});

/** Folds the steps both ways, checking every history and the readings taken from it. */
function foldBothWays(steps: Step[], windowSeconds: number): void {
  const indexed: HistoryEntry[][] = [[]];
  const plain: HistoryEntry[][] = [[]];
  let latest = -Infinity;
  for (const s of steps) {
    const from = Math.max(0, indexed.length - 1 - s.back);
    latest = Math.max(latest, T0 + s.seconds * 1000);
    const horizon = latest - windowSeconds * 1000;
    const entry = s.settles ? undefined : entryOf(s);
    const replaces = { targetId: s.targetId, ...(s.targetRevision !== undefined ? { targetRevision: s.targetRevision } : {}) };
    const next = nextHistory(indexed[from]!, horizon, replaces, entry);
    const expected = plainNext(plain[from]!, horizon, replaces, entry);
    expect(next).to.have.length(expected.length);
    next.forEach((past, i) => expect(past).to.equal(expected[i]));
    indexed.push(next);
    plain.push(expected);

    for (const targetId of TARGETS) {
      const change = changeAt(s.seconds + 1, targetId, s.actorId);
      // A copy has no index: the reading walks it.
      expect(readRateLimits(LIMITS, change, next)).to.deep.equal(readRateLimits(LIMITS, change, [...expected]));
    }
  }
}

describe('the ledger history index', () => {
  it('gives the same histories and readings as the plain filter and walk, in any order of times and from any earlier history', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 80 }), fc.integer({ min: 1, max: 300 }), (steps, windowSeconds) => {
        foldBothWays(steps, windowSeconds);
      }),
      { numRuns: 300 },
    );
  });

  it('stays the same over a long fold, where the index starts afresh from the newest history', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 2200, maxLength: 2400 }), (steps) => {
        // Times creep forward with some jitter, so the oldest entries keep ageing out, some of them out of order.
        foldBothWays(
          steps.map((s, i) => ({ ...s, back: s.back > 0 && i % 7 !== 0 ? 0 : s.back, seconds: i + (s.seconds % 9) })),
          40,
        );
      }),
      { numRuns: 2 },
    );
  });

  it('keeps an entry with an unreadable time out of every reading, and drops it at the next admission', () => {
    const bad: HistoryEntry = { at: 'soon', action: 'scale', targetId: 'dep-a', actorId: 'alice', direction: 'up' };
    const first = nextHistory([], T0 - 1000, { targetId: 'dep-a' }, bad);
    expect(first).to.deep.equal([bad]);
    const readings = readRateLimits(LIMITS, changeAt(1, 'dep-a', 'alice'), first);
    expect(readings.windows.every((window) => window.count === 0)).to.equal(true);
    expect(readings.lastScale).to.equal(undefined);
    expect(nextHistory(first, T0 - 1000, { targetId: 'dep-b' }, undefined)).to.deep.equal([]);
  });
});
