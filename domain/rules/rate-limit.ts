// The rate_limit rule: at most N allowed changes per sliding window, and no quick scale reversals (anti-flap).
// What it needs of the admitted changes is read first (`readRateLimits`): a count per window and the target's last
// scale. A decision records those readings, not the changes, and the rule judges from the readings alone.
import type { Change, ParametersOf, PastAction, RateLimitReadings, Rule } from '../policy.js';
import { entriesOf } from '../ledger-history.js';
import { instant, instantAt } from './instant.js';

type Limit = ParametersOf<'rate_limit'>;
type Per = Limit['per'];
type Direction = 'up' | 'down';

/** An ISO time without the `.000` a whole second would carry. */
const iso = (ms: number): string => {
  const text = new Date(ms).toISOString();
  return text.endsWith('.000Z') ? `${text.slice(0, -5)}Z` : text;
};

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

const inScope = (entry: PastAction, per: Per, change: Change) =>
  (per === 'actor' || entry.targetId === change.target.id) && (per === 'target' || entry.actorId === change.actor.id);

function scope(per: Per, change: Change): string {
  const target = `to ${change.target.kind} ${change.target.id}`;
  const actor = `by ${change.actor.kind} ${change.actor.id}`;
  return per === 'target' ? target : per === 'actor' ? actor : `${target} ${actor}`;
}

function scaleDirection(change: Change): Direction | undefined {
  if (change.action !== 'scale' || !change.before || !change.after) return undefined;
  const delta = change.after.replicas - change.before.replicas;
  return delta > 0 ? 'up' : delta < 0 ? 'down' : undefined;
}

/** One window being counted while the history is read. */
interface Counting {
  per: Per;
  windowSeconds: number;
  start: number;
  /** The limits of the policies that count this window. */
  limits: Set<number>;
  times: number[];
}

/**
 * Reads the history for every rate limit given (those that apply to the change): how many admitted changes
 * each scope and window holds, when each limit already reached lets a change through again, and the target's last
 * scale within the longest stabilization. Entries after the change, or with an unreadable time, never count, so
 * that a replay sees what the original decision saw. What comes out grows with the limits, never with the history.
 */
export function readRateLimits(limits: readonly Limit[], change: Change, history: readonly PastAction[]): RateLimitReadings {
  const now = Date.parse(change.at);
  const windows = new Map<string, Counting>();
  let stabilizationSeconds: number | undefined;
  for (const { per, windowSeconds, maxActions, stabilizationSeconds: seconds } of limits) {
    const key = `${per}|${windowSeconds}`;
    let counting = windows.get(key);
    if (!counting) {
      counting = { per, windowSeconds, start: now - windowSeconds * 1000, limits: new Set(), times: [] };
      windows.set(key, counting);
    }
    counting.limits.add(maxActions);
    if (seconds !== undefined) stabilizationSeconds = Math.max(stabilizationSeconds ?? 0, seconds);
  }
  // Only a scale that moves replicas can reverse the last one.
  const direction = stabilizationSeconds === undefined ? undefined : scaleDirection(change);
  const stabilizationStart = now - (stabilizationSeconds ?? 0) * 1000;
  const counted = [...windows.values()];

  let lastScaleAt = -Infinity;
  let lastScaleDirection: Direction | undefined;
  const lastScaleFrom = (entry: PastAction, at: number) => {
    if (
      direction !== undefined &&
      entry.action === 'scale' &&
      entry.direction !== undefined &&
      entry.targetId === change.target.id &&
      at > stabilizationStart &&
      // On a tie the opposite direction wins, so that the reading does not depend on the order of the history.
      (at > lastScaleAt || (at === lastScaleAt && entry.direction !== direction))
    ) {
      lastScaleAt = at;
      lastScaleDirection = entry.direction;
    }
  };
  // A ledger's history is indexed by target and by actor: each window reads only its scope's entries (a window per
  // target and actor, those of the target), and the last scale only the target's. Any other history is walked whole.
  const byActor = counted.some((window) => window.per === 'actor');
  const ofTarget = entriesOf(history, 'target', change.target.id);
  const ofActor = byActor ? entriesOf(history, 'actor', change.actor.id) : undefined;
  if (ofTarget && (!byActor || ofActor)) {
    for (const window of counted) {
      const { entries, instants } = window.per === 'actor' ? ofActor! : ofTarget;
      entries.forEach((entry, i) => {
        const at = instants[i]!;
        if (at <= now && at > window.start && inScope(entry, window.per, change)) window.times.push(at);
      });
    }
    ofTarget.entries.forEach((entry, i) => {
      const at = ofTarget.instants[i]!;
      if (at <= now) lastScaleFrom(entry, at);
    });
  } else {
    for (const entry of history) {
      const at = instantAt(entry);
      if (!(at <= now)) continue;
      for (const window of counted) if (at > window.start && inScope(entry, window.per, change)) window.times.push(at);
      lastScaleFrom(entry, at);
    }
  }

  return {
    windows: counted.map(({ per, windowSeconds, limits: maxima, times }) => {
      const reached = [...maxima].filter((maxActions) => maxActions <= times.length).sort((a, b) => a - b);
      if (reached.length === 0) return { per, windowSeconds, count: times.length };
      // The count drops below a limit of N once the Nth most recent counted change leaves the window.
      times.sort((a, b) => b - a);
      const nextAllowed = (maxActions: number) => new Date(times[maxActions - 1]! + windowSeconds * 1000).toISOString();
      return { per, windowSeconds, count: times.length, reached: reached.map((maxActions) => ({ maxActions, nextAllowedAt: nextAllowed(maxActions) })) };
    }),
    ...(lastScaleDirection ? { lastScale: { at: new Date(lastScaleAt).toISOString(), direction: lastScaleDirection } } : {}),
  };
}

/** The reading of one scope and window, if the decision read it. */
function windowOf(readings: RateLimitReadings, per: Per, windowSeconds: number): RateLimitReadings['windows'][number] | undefined {
  for (const reading of readings.windows) if (reading.per === per && reading.windowSeconds === windowSeconds) return reading;
  return undefined;
}

export const rateLimit: Rule<'rate_limit'> = (parameters, change, inputs) => {
  const now = instant(change.at);
  if (Number.isNaN(now)) return { outcome: 'fail', message: `the change's time "${change.at}" is not an ISO date-time` };
  const { maxActions, windowSeconds, per, stabilizationSeconds } = parameters;
  const readings = inputs.rateLimits;
  const window = readings && windowOf(readings, per, windowSeconds);
  // Evaluation reads every applicable limit's window; a missing one means the inputs were not gathered for this set.
  if (!readings || !window) {
    return { outcome: 'fail', message: `no count of the changes ${scope(per, change)} in the last ${windowSeconds} s was read to judge by` };
  }

  const counted = `${plural(window.count, 'change')} ${scope(per, change)} in the last ${windowSeconds} s; at most ${maxActions} allowed`;
  let overLimit: string | undefined;
  if (window.count >= maxActions) {
    const next = instant(window.reached?.find((reached) => reached.maxActions === maxActions)?.nextAllowedAt ?? '');
    overLimit = Number.isFinite(next) ? `${counted}; next allowed at ${iso(next)}` : counted;
  }

  const direction = stabilizationSeconds === undefined ? undefined : scaleDirection(change);
  const last = readings.lastScale;
  const lastAt = last ? instant(last.at) : Number.NaN;
  const flapping =
    direction !== undefined && last !== undefined && last.direction !== direction && lastAt > now - stabilizationSeconds! * 1000 && lastAt <= now
      ? `${change.target.kind} ${change.target.id} was scaled ${last.direction} at ${iso(lastAt)}; a scale ${direction} is refused until ` +
        `${iso(lastAt + stabilizationSeconds! * 1000)} (${stabilizationSeconds} s stabilization)`
      : undefined;
  if (overLimit && flapping) return { outcome: 'fail', message: `${overLimit}. Also, ${flapping}` };
  if (overLimit ?? flapping) return { outcome: 'fail', message: (overLimit ?? flapping)! };
  return { outcome: 'pass', message: counted };
};
