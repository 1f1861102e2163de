// Who may do what: principals, roles, and the events that record changes to them.
import { z } from 'zod';
import { defineEvents, type EventOf } from './decider.js';
import { name } from './schemas.js';

/** One role per principal. Users are ordered viewer < operator < admin; service accounts are `system`. */
export const USER_ROLES = ['viewer', 'operator', 'admin'] as const;
export type UserRole = (typeof USER_ROLES)[number];
export type Role = UserRole | 'system';
export const ROLES: readonly Role[] = [...USER_ROLES, 'system'];

export interface Principal {
  id: string;
  kind: 'user' | 'service';
  /** Username or service-account name. */
  name: string;
  role: Role;
}

/** The roles a route grants to, from its least privileged user role upwards, and optionally to `system`. */
export function rolesFrom(least: UserRole | 'none', options: { system?: boolean } = {}): Role[] {
  const users = least === 'none' ? [] : USER_ROLES.slice(USER_ROLES.indexOf(least));
  return options.system ? [...users, 'system'] : users;
}

// ---- bodies -------------------------------------------------------------------------------------------

const username = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9_.@]*[a-z0-9])?$/, 'lower-case letters, digits and "-_.@", starting and ending with a letter or digit')
  .max(64, 'at most 64 characters');
const password = z.string().min(12, 'at least 12 characters').max(1024, 'at most 1024 characters');
const userRole = z.enum(USER_ROLES, { error: `one of: ${USER_ROLES.join(', ')}` });

export const loginBody = z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) });
export const refreshBody = z.strictObject({ refreshToken: z.string().min(1, 'the refresh token from /auth/login') });
export const userBody = z.strictObject({ username, password, role: userRole });
export const userPatchBody = z
  .strictObject({ role: userRole, disabled: z.boolean(), password })
  .partial()
  .refine((patch) => Object.keys(patch).length > 0, 'at least one of role, disabled, password');
export const serviceAccountBody = z.strictObject({
  name,
  description: z.string().max(500, 'at most 500 characters').optional(),
});

// ---- events (streams user-<id> and serviceaccount-<id>; they never carry secrets) -------------------------

export const accessEvents = defineEvents({
  UserCreated: { version: 1, schema: z.object({ userId: z.string(), username: z.string(), role: z.string() }) },
  UserUpdated: {
    version: 1,
    schema: z.object({
      userId: z.string(),
      role: z.string().optional(),
      disabled: z.boolean().optional(),
      passwordChanged: z.boolean().optional(),
    }),
  },
  ServiceAccountCreated: {
    version: 1,
    schema: z.object({ serviceAccountId: z.string(), name: z.string(), description: z.string().optional() }),
  },
  ServiceAccountRevoked: { version: 1, schema: z.object({ serviceAccountId: z.string() }) },
  /**
   * A user's name reached the failed-login limit and is locked until `lockedUntil`. Only lock transitions of
   * existing users are events: every single failure, and locks of unknown names or of client addresses, are
   * metrics and log lines, so that nobody can grow the log by guessing.
   */
  LoginLocked: {
    version: 1,
    schema: z.object({
      userId: z.string(),
      failures: z.number().int(),
      lockedUntil: z.string().describe('ISO 8601'),
      /** The client address (an IPv6 address as its /64) of the attempt that reached the limit. */
      address: z.string(),
    }),
  },
  /** A refresh token was presented a second time: every token of its login (the family) is refused from now on. */
  TokenFamilyRevoked: {
    version: 1,
    schema: z.object({ userId: z.string(), familyId: z.string(), reason: z.enum(['refresh_token_reused']) }),
  },
});
export type AccessEvent = EventOf<typeof accessEvents>;

// ---- failed logins: backoff, then a lock (pure; the store keeps the counters, the clock comes in) ---------------

export interface LoginLimit {
  /** Failures, within `lockSeconds` of each other, that lock the name or address. */
  maxFailures: number;
  lockSeconds: number;
}

/** The failures counted against one user name or client address. */
export interface LoginCounter {
  failures: number;
  lastFailureAt: Date | null;
  lockedUntil: Date | null;
}

export const NO_FAILURES: LoginCounter = { failures: 0, lastFailureAt: null, lockedUntil: null };

/** The counter as it stands at `now`: a lock that has run out, or failures older than the lock length, are forgotten. */
export function standing(counter: LoginCounter, now: Date, limit: LoginLimit): LoginCounter {
  if (counter.lockedUntil) return counter.lockedUntil > now ? counter : NO_FAILURES;
  const quiet = counter.lastFailureAt === null || now.getTime() - counter.lastFailureAt.getTime() >= limit.lockSeconds * 1000;
  return quiet ? NO_FAILURES : counter;
}

/**
 * Seconds to wait after the last failure before the next try: none for the first half of the allowed failures,
 * then 1, 2, 4, … doubling with each failure, never more than the lock length.
 */
export function backoffSeconds(failures: number, limit: LoginLimit): number {
  const free = Math.ceil(limit.maxFailures / 2);
  return failures < free ? 0 : Math.min(2 ** (failures - free), limit.lockSeconds);
}

/** How long a new try must wait, or undefined when it may go ahead. */
export function loginWait(counter: LoginCounter, now: Date, limit: LoginLimit): { seconds: number; locked: boolean } | undefined {
  const current = standing(counter, now, limit);
  const secondsUntil = (at: number) => Math.max(1, Math.ceil((at - now.getTime()) / 1000));
  if (current.lockedUntil) return { seconds: secondsUntil(current.lockedUntil.getTime()), locked: true };
  if (current.lastFailureAt === null) return undefined;
  // A counter at the limit without a lock was counted under a lower limit (the setting changed): it is locked.
  if (current.failures >= limit.maxFailures) {
    return { seconds: secondsUntil(current.lastFailureAt.getTime() + limit.lockSeconds * 1000), locked: true };
  }
  const until = current.lastFailureAt.getTime() + backoffSeconds(current.failures, limit) * 1000;
  return until > now.getTime() ? { seconds: secondsUntil(until), locked: false } : undefined;
}

/** The counter after one more try is counted against it, locked when that try reaches the limit. */
export function countAttempt(counter: LoginCounter, now: Date, limit: LoginLimit): LoginCounter {
  const failures = standing(counter, now, limit).failures + 1;
  const lockedUntil = failures >= limit.maxFailures ? new Date(now.getTime() + limit.lockSeconds * 1000) : null;
  return { failures, lastFailureAt: now, lockedUntil };
}

/** When a counter row may be forgotten: after its lock, or after the lock length has passed since its last failure. */
export function forgetAfter(counter: LoginCounter, limit: LoginLimit): Date {
  const quietAt = (counter.lastFailureAt?.getTime() ?? 0) + limit.lockSeconds * 1000;
  return new Date(Math.max(quietAt, counter.lockedUntil?.getTime() ?? 0));
}
