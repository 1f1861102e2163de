// Durable timers (stream `timer-<timerId>`): a command due at a future time, recorded so that it survives restarts,
// and whether it fired or was cancelled first. One stream per timer, so that the append of its firing, made at the
// revision it was decided on, is what decides between two instances, or between a firing and a cancel.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { defineEvents, InvalidTransition, NotFound, RuleViolation, type Decider, type EventOf } from './decider.js';
import { timestamp } from './schemas.js';

/** Chosen by whoever schedules it, derived from what the timer is about (`plan-<planId>-expiry`), so a replay finds it. */
export const timerId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, 'letters, digits, ".", "_", ":" and "-", starting with a letter or digit, at most 200 characters');

/** Whose handler a firing goes to: the name the owner registered with the timer service. */
export const timerOwner = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'lower-case letters, digits and "-", starting with a letter, at most 63 characters');

/** What the owner needs to know when the timer fires (a plan id, a rollout step), as JSON. */
const payload = z.record(z.string(), z.unknown());

export const timerEvents = defineEvents({
  TimerScheduled: { version: 1, schema: z.object({ timerId, owner: timerOwner, dueAt: timestamp, payload, scheduledAt: timestamp }) },
  TimerFired: { version: 1, schema: z.object({ timerId, firedAt: timestamp }) },
  TimerCancelled: { version: 1, schema: z.object({ timerId, cancelledAt: timestamp, reason: z.string().optional() }) },
});
export type TimerEvent = EventOf<typeof timerEvents>;

// ---- state and commands -------------------------------------------------------------------------------

interface TimerSpec {
  timerId: string;
  owner: string;
  dueAt: string;
  payload: Record<string, unknown>;
  scheduledAt: string;
}

export type Timer =
  | { status: 'absent' }
  | (TimerSpec & { status: 'Scheduled' })
  | (TimerSpec & { status: 'Fired'; firedAt: string })
  | (TimerSpec & { status: 'Cancelled'; cancelledAt: string; reason?: string });

export type TimerCommand =
  | { type: 'ScheduleTimer'; timerId: string; owner: string; dueAt: string; payload: Record<string, unknown>; at: string }
  | { type: 'FireTimer'; timerId: string; at: string }
  | { type: 'CancelTimer'; timerId: string; owner: string; at: string; reason?: string };

export const initialState: Timer = { status: 'absent' };

export function evolve(state: Timer, event: TimerEvent): Timer {
  switch (event.type) {
    case 'TimerScheduled':
      return { status: 'Scheduled', ...event.data };
    case 'TimerFired':
      return state.status === 'absent' ? state : { ...specOf(state), status: 'Fired', firedAt: event.data.firedAt };
    case 'TimerCancelled':
      return state.status === 'absent'
        ? state
        : { ...specOf(state), status: 'Cancelled', cancelledAt: event.data.cancelledAt, ...(event.data.reason === undefined ? {} : { reason: event.data.reason }) };
  }
}

/**
 * A timer is scheduled once and never moved: scheduling the same timer again records nothing (a replayed reaction),
 * and a different one under the same id is refused. It fires once, not before it is due, and not after a cancel.
 */
export function decide(command: TimerCommand, state: Timer): TimerEvent[] {
  const id = command.timerId;
  if (command.type === 'ScheduleTimer') return schedule(command, state);
  if (state.status === 'absent') throw new NotFound('timer', id);
  switch (command.type) {
    case 'FireTimer':
      // A cancel recorded first wins; a firing recorded first is the one there is.
      if (state.status !== 'Scheduled') return [];
      if (instant(command.at, 'at') < instant(state.dueAt, 'dueAt')) {
        throw new RuleViolation(`timer ${id} is not due until ${state.dueAt}`, [{ path: 'at', message: `a date-time at or after ${state.dueAt}` }]);
      }
      return [{ type: 'TimerFired', data: { timerId: id, firedAt: command.at } }];
    case 'CancelTimer':
      if (command.owner !== state.owner) {
        throw new RuleViolation(`timer ${id} belongs to ${state.owner}, not to ${command.owner}`, [{ path: 'owner', message: `the timer's owner, ${state.owner}` }]);
      }
      if (state.status === 'Cancelled') return [];
      if (state.status === 'Fired') throw new InvalidTransition('timer', id, state.status, 'cancel', `it fired at ${state.firedAt}`);
      instant(command.at, 'at');
      return [{ type: 'TimerCancelled', data: { timerId: id, cancelledAt: command.at, ...(command.reason === undefined ? {} : { reason: command.reason }) } }];
  }
}

function schedule(command: Extract<TimerCommand, { type: 'ScheduleTimer' }>, state: Timer): TimerEvent[] {
  const { owner, dueAt, payload, at } = command;
  checked(timerId, command.timerId, 'timerId');
  checked(timerOwner, owner, 'owner');
  // A due time already past is allowed: such a timer fires at once.
  instant(dueAt, 'dueAt');
  instant(at, 'at');
  if (state.status === 'absent') return [{ type: 'TimerScheduled', data: { timerId: command.timerId, owner, dueAt, payload, scheduledAt: at } }];
  const same = state.owner === owner && Date.parse(state.dueAt) === Date.parse(dueAt) && isDeepStrictEqual(state.payload, payload);
  if (same) return [];
  throw new InvalidTransition(
    'timer',
    command.timerId,
    state.status,
    'schedule',
    `it was scheduled by ${state.owner} for ${state.dueAt}; a timer is never moved: schedule another id, and cancel this one if it is still scheduled`,
  );
}

export const timerDecider: Decider<TimerCommand, TimerEvent, Timer> = { initialState, evolve, decide };

function specOf(state: Exclude<Timer, { status: 'absent' }>): TimerSpec {
  const { timerId, owner, dueAt, payload, scheduledAt } = state;
  return { timerId, owner, dueAt, payload, scheduledAt };
}

/** Refuses what the event's schema would refuse when the event is read back. */
function checked(schema: z.ZodType<string>, value: string, path: string): void {
  const result = schema.safeParse(value);
  if (!result.success) throw new RuleViolation(`${path} ${JSON.stringify(value)} is not valid`, [{ path, message: result.error.issues[0]!.message }]);
}

/** The time a date-time names, checked as the event schemas will check it when the event is read. */
function instant(value: string, path: string): number {
  if (!timestamp.safeParse(value).success) throw new RuleViolation(`${path} is not a date-time`, [{ path, message: 'an ISO 8601 date-time such as 2026-01-31T12:00:00Z' }]);
  return Date.parse(value);
}
