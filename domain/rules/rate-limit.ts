// The rate_limit rule: at most N allowed changes per sliding window, and no quick scale reversals (anti-flap).
import type { Change, ParametersOf, PastAction, Rule } from '../policy.js';

/** An ISO time without the `.000` a whole second would carry. */
const iso = (ms: number): string => {
  const text = new Date(ms).toISOString();
  return text.endsWith('.000Z') ? `${text.slice(0, -5)}Z` : text;
};

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

type Per = ParametersOf<'rate_limit'>['per'];

const inScope = (entry: PastAction, per: Per, change: Change) =>
  (per === 'actor' || entry.targetId === change.target.id) && (per === 'target' || entry.actorId === change.actor.id);

function scope(per: Per, change: Change): string {
  const target = `to ${change.target.kind} ${change.target.id}`;
  const actor = `by ${change.actor.kind} ${change.actor.id}`;
  return per === 'target' ? target : per === 'actor' ? actor : `${target} ${actor}`;
}

function scaleDirection(change: Change): 'up' | 'down' | undefined {
  if (change.action !== 'scale' || !change.before || !change.after) return undefined;
  const delta = change.after.replicas - change.before.replicas;
  return delta > 0 ? 'up' : delta < 0 ? 'down' : undefined;
}

/**
 * When the change would be allowed: once enough of the counted entries have left the window for the count to
 * drop below the limit (the oldest one, unless the history already holds more than the limit). NaN when the
 * counted times cannot say.
 */
function nextAllowed(counted: number[], maxActions: number, windowMs: number): number {
  counted.sort((a, b) => a - b);
  return (counted[counted.length - maxActions] ?? Number.NaN) + windowMs;
}

/**
 * The history's times as numbers, parsed once per history: every rate-limit policy in a decision reads the same
 * history, so a large set parses it once rather than once per policy. An unparseable time is NaN and never counts.
 */
const parsedTimes = new WeakMap<readonly PastAction[], Float64Array>();
function timesOf(history: readonly PastAction[]): Float64Array {
  let times = parsedTimes.get(history);
  if (!times) {
    times = Float64Array.from(history, (entry) => Date.parse(entry.at));
    parsedTimes.set(history, times);
  }
  return times;
}

interface Scan {
  count: number;
  lastScaleAt: number;
  lastScaleDirection: 'up' | 'down' | undefined;
}

/**
 * The scans of one history for one change, by what a scan depends on (scope, window, stabilization): a large set
 * repeats a handful of those, and each policy then only prints its own limit.
 */
const scans = new WeakMap<readonly PastAction[], { change: Change; byKey: Map<string, Scan> }>();

function scanOf(history: readonly PastAction[], change: Change, now: number, per: Per, windowSeconds: number, stabilizationSeconds: number | undefined): Scan {
  let forHistory = scans.get(history);
  if (!forHistory || forHistory.change !== change) {
    forHistory = { change, byKey: new Map() };
    scans.set(history, forHistory);
  }
  const key = `${per}|${windowSeconds}|${stabilizationSeconds ?? ''}`;
  let scan = forHistory.byKey.get(key);
  if (!scan) {
    scan = scanHistory(history, change, now, per, windowSeconds, stabilizationSeconds);
    forHistory.byKey.set(key, scan);
  }
  return scan;
}

function scanHistory(history: readonly PastAction[], change: Change, now: number, per: Per, windowSeconds: number, stabilizationSeconds: number | undefined): Scan {
  const windowStart = now - windowSeconds * 1000;
  const direction = stabilizationSeconds === undefined ? undefined : scaleDirection(change);
  const stabilizationStart = now - (stabilizationSeconds ?? 0) * 1000;
  const times = timesOf(history);
  const targetId = change.target.id;

  // The most recent scale of this target within the stabilization window; on a tie the opposite direction wins,
  // so the answer does not depend on the order of the history.
  let lastScaleAt = -Infinity;
  let lastScaleDirection: 'up' | 'down' | undefined;
  let count = 0;
  for (let i = 0; i < history.length; i++) {
    const entry = history[i]!;
    // Entries after the change are ignored, so that a replayed decision sees what the original one saw.
    const at = times[i]!;
    if (at > windowStart && at <= now && inScope(entry, per, change)) count++;
    if (
      direction !== undefined &&
      entry.direction !== undefined &&
      entry.action === 'scale' &&
      entry.targetId === targetId &&
      at > stabilizationStart &&
      at <= now
    ) {
      if (at > lastScaleAt || (at === lastScaleAt && entry.direction !== direction)) {
        lastScaleAt = at;
        lastScaleDirection = entry.direction;
      }
    }
  }
  return { count, lastScaleAt, lastScaleDirection };
}

export const rateLimit: Rule<'rate_limit'> = (parameters, change, inputs) => {
  const now = Date.parse(change.at);
  if (Number.isNaN(now)) return { outcome: 'fail', message: `the change's time "${change.at}" is not an ISO date-time` };
  const { maxActions, windowSeconds, per, stabilizationSeconds } = parameters;
  const history = inputs.history;
  const windowMs = windowSeconds * 1000;
  const windowStart = now - windowMs;
  const direction = stabilizationSeconds === undefined ? undefined : scaleDirection(change);
  const targetId = change.target.id;
  const { count, lastScaleAt, lastScaleDirection } = scanOf(history, change, now, per, windowSeconds, stabilizationSeconds);
  const times = timesOf(history);

  const counted = `${plural(count, 'change')} ${scope(per, change)} in the last ${windowSeconds} s; at most ${maxActions} allowed`;
  let overLimit: string | undefined;
  if (count >= maxActions) {
    const next = nextAllowed(countedTimes(history, times, change, per, windowStart, now), maxActions, windowMs);
    overLimit = Number.isFinite(next) ? `${counted}; next allowed at ${iso(next)}` : counted;
  }
  const flapping =
    lastScaleDirection !== undefined && lastScaleDirection !== direction
      ? `${change.target.kind} ${targetId} was scaled ${lastScaleDirection} at ${iso(lastScaleAt)}; a scale ${direction} is refused until ` +
        `${iso(lastScaleAt + stabilizationSeconds! * 1000)} (${stabilizationSeconds} s stabilization)`
      : undefined;
  if (overLimit && flapping) return { outcome: 'fail', message: `${overLimit}. Also, ${flapping}` };
  if (overLimit ?? flapping) return { outcome: 'fail', message: (overLimit ?? flapping)! };
  return { outcome: 'pass', message: counted };
};

/** The times of the entries the window counted; only gathered on the failing path. */
function countedTimes(history: readonly PastAction[], times: Float64Array, change: Change, per: Per, windowStart: number, now: number): number[] {
  const counted: number[] = [];
  for (let i = 0; i < history.length; i++) {
    const at = times[i]!;
    if (at > windowStart && at <= now && inScope(history[i]!, per, change)) counted.push(at);
  }
  return counted;
}
