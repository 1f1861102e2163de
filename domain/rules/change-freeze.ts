// The change_freeze rule: no changes inside a freeze window, unless an admin breaks the glass.
import type { Day, ParametersOf, RecurringWindow, Rule } from '../policy.js';
import { instant } from './instant.js';

type FreezeParameters = ParametersOf<'change_freeze'>;

const DAY_NAMES: readonly Day[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
/** Intl's en-US short weekday → index into DAY_NAMES. */
const WEEKDAY: Readonly<Record<string, number>> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

interface Zone {
  formatter: Intl.DateTimeFormat;
  /** The last instant asked about and its local day and minute: every policy in a decision asks about the same one. */
  ms: number;
  day: number;
  minute: number;
}

// Building a DateTimeFormat costs far more than using one, and rules run up to a thousand times per decision.
const zones = new Map<string, Zone>();

/** Wall-clock day (0 = Monday) and minute of the day at `ms` in `timeZone`. */
function localTime(ms: number, timeZone: string): Zone {
  let zone = zones.get(timeZone);
  if (!zone) {
    const formatter = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    zone = { formatter, ms: Number.NaN, day: 0, minute: 0 };
    zones.set(timeZone, zone);
  }
  if (zone.ms !== ms) {
    let minute = 0;
    for (const part of zone.formatter.formatToParts(ms)) {
      if (part.type === 'weekday') zone.day = WEEKDAY[part.value]!;
      else if (part.type === 'hour') minute += Number(part.value) * 60;
      else if (part.type === 'minute') minute += Number(part.value);
    }
    zone.minute = minute;
    zone.ms = ms;
  }
  return zone;
}

/** "HH:MM" (validated by the schema, up to "24:00") → minutes after midnight. */
const minutes = (clock: string) =>
  ((clock.charCodeAt(0) - 48) * 10 + clock.charCodeAt(1) - 48) * 60 + (clock.charCodeAt(3) - 48) * 10 + clock.charCodeAt(4) - 48;

/** Whether local `day`/`minute` fall in the window: [start, end) on a listed day, or past midnight when end <= start. */
function insideRecurring(window: RecurringWindow, day: number, minute: number): boolean {
  const start = minutes(window.start);
  const end = minutes(window.end);
  if (start < end) return minute >= start && minute < end && window.days.includes(DAY_NAMES[day]!);
  // Runs past midnight: the evening of a listed day, or the morning after one (Sunday's night ends on Monday).
  return (minute >= start && window.days.includes(DAY_NAMES[day]!)) || (minute < end && window.days.includes(DAY_NAMES[(day + 6) % 7]!));
}

const pad = (n: number) => (n < 10 ? `0${n}` : `${n}`);

function activeAt(parameters: FreezeParameters, ms: number): string | undefined {
  for (const window of parameters.windows ?? []) {
    if (ms >= instant(window.start) && ms < instant(window.end)) return `the freeze from ${window.start} to ${window.end}`;
  }
  for (const window of parameters.recurring ?? []) {
    const local = localTime(ms, window.timeZone);
    if (insideRecurring(window, local.day, local.minute)) {
      const now = `${DAY_NAMES[local.day]} ${pad(Math.floor(local.minute / 60))}:${pad(local.minute % 60)}`;
      return `the weekly freeze ${window.days.join(', ')} ${window.start}–${window.end} ${window.timeZone} (now ${now} there)`;
    }
  }
  return undefined;
}

/** A description of the freeze window `at` falls in, or undefined when it falls in none. */
export function activeFreezeWindow(parameters: FreezeParameters, at: Date): string | undefined {
  return activeAt(parameters, at.getTime());
}

/** Applies to every action: a freeze stops deletes and rollbacks as much as scale-ups. */
export const changeFreeze: Rule<'change_freeze'> = (parameters, change) => {
  const at = instant(change.at);
  if (Number.isNaN(at)) return { outcome: 'fail', message: `the change's time "${change.at}" is not an ISO date-time` };
  const window = activeAt(parameters, at);
  if (window === undefined) return { outcome: 'pass', message: `no change freeze at ${change.at}` };
  if (change.emergency) {
    return { outcome: 'pass', breakGlass: true, message: `break glass during ${window}: ${change.emergency.justification}` };
  }
  return { outcome: 'fail', message: `changes are frozen during ${window}` };
};
