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
});
export type AccessEvent = EventOf<typeof accessEvents>;
