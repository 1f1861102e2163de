// Routes for logging in, refreshing tokens, and managing users and service accounts.
import { z } from 'zod';
import { loginBody, refreshBody, rolesFrom, serviceAccountBody, userBody, userPatchBody } from '../../domain/access.js';
import type { AccessService } from '../access.js';
import { accepted, created, pathId } from './replies.js';
import { queryParameters, route, writeResult, type Route } from './route.js';

const tokenPair = z
  .object({ accessToken: z.string(), refreshToken: z.string(), expiresIn: z.number().int().describe('seconds') })
  .meta({ id: 'TokenPair' });
const me = z
  .object({ id: z.string(), kind: z.enum(['user', 'service']), name: z.string(), role: z.string() })
  .meta({ id: 'Principal' });

const PAGE_LIMIT = 500;

/** `limit`, `cursor` and `order`, as the query API's lists take them. */
const paging = queryParameters({
  limit: z
    .string()
    .regex(/^[0-9]{1,4}$/, `a whole number from 1 to ${PAGE_LIMIT}`)
    .transform(Number)
    .pipe(z.number().int().min(1, `a whole number from 1 to ${PAGE_LIMIT}`).max(PAGE_LIMIT, `a whole number from 1 to ${PAGE_LIMIT}`))
    .optional()
    .describe(`items per page, 1 to ${PAGE_LIMIT} (default 50)`),
  cursor: z.string().max(4096, "a previous page's nextCursor").optional().describe('nextCursor of the previous page, read in the same order'),
  order: z.enum(['asc', 'desc'], { error: 'asc or desc' }).default('asc').describe('asc: by name A to Z (the default); desc: Z to A'),
});

const userSummary = z
  .object({
    id: z.string(),
    username: z.string(),
    role: z.string(),
    disabled: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'User' });
const serviceAccountSummary = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    revoked: z.boolean(),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })
  .meta({ id: 'ServiceAccount' });

export function accessRoutes(access: AccessService): Route[] {
  const admin = rolesFrom('admin');
  return [
    route({
      method: 'post',
      path: '/auth/login',
      operationId: 'login',
      summary: 'Log in',
      tag: 'auth',
      access: 'public',
      body: loginBody,
      idempotent: false,
      success: { status: 200, schema: tokenPair, description: 'an access token and a single-use refresh token' },
      handle: async ({ body, clientAddress, context }) => ({
        status: 200,
        body: await access.login(body.username, body.password, { clientAddress, context }),
      }),
    }),
    route({
      method: 'post',
      path: '/auth/refresh',
      operationId: 'refresh',
      summary: 'Refresh tokens',
      tag: 'auth',
      access: 'public',
      body: refreshBody,
      idempotent: false,
      success: { status: 200, schema: tokenPair, description: 'a new pair; the refresh token sent is used up' },
      handle: async ({ body, clientAddress, context }) => ({ status: 200, body: await access.refresh(body.refreshToken, { clientAddress, context }) }),
    }),
    route({
      method: 'get',
      path: '/auth/me',
      operationId: 'me',
      summary: 'Show who the token belongs to',
      tag: 'auth',
      access: rolesFrom('viewer', { system: true }),
      idempotent: false,
      success: { status: 200, schema: me, description: 'the caller' },
      handle: async ({ principal }) => ({ status: 200, body: principal }),
    }),
    route({
      method: 'post',
      path: '/users',
      operationId: 'createUser',
      summary: 'Create a user',
      tag: 'users',
      access: admin,
      body: userBody,
      idempotent: true,
      success: { status: 201, schema: writeResult, description: 'the user exists' },
      handle: async ({ body, context }) => created(await access.createUser(body, context), '/users'),
    }),
    route({
      method: 'get',
      path: '/users',
      operationId: 'listUsers',
      summary: 'List users',
      tag: 'users',
      access: admin,
      query: paging,
      idempotent: false,
      success: {
        status: 200,
        schema: z.object({ items: z.array(userSummary), nextCursor: z.string().nullable() }).meta({ id: 'UserPage' }),
        description: '{items, nextCursor} in username order; never a password hash',
      },
      handle: async ({ query }) => ({ status: 200, body: await access.listUsers({ limit: query.limit ?? 50, cursor: query.cursor, order: query.order }) }),
    }),
    route({
      method: 'patch',
      path: '/users/:id',
      operationId: 'updateUser',
      summary: 'Change a user’s role, password or disabled flag',
      tag: 'users',
      access: admin,
      body: userPatchBody,
      idempotent: true,
      success: { status: 202, schema: writeResult, description: 'the change is recorded' },
      handle: async ({ body, params, context }) => accepted(await access.updateUser(pathId(params, 'user'), body, context)),
    }),
    route({
      method: 'get',
      path: '/service-accounts',
      operationId: 'listServiceAccounts',
      summary: 'List service accounts',
      tag: 'service accounts',
      access: admin,
      query: paging,
      idempotent: false,
      success: {
        status: 200,
        schema: z.object({ items: z.array(serviceAccountSummary), nextCursor: z.string().nullable() }).meta({ id: 'ServiceAccountPage' }),
        description: '{items, nextCursor} in name order, revoked accounts included; never a token',
      },
      handle: async ({ query }) => ({
        status: 200,
        body: await access.listServiceAccounts({ limit: query.limit ?? 50, cursor: query.cursor, order: query.order }),
      }),
    }),
    route({
      method: 'post',
      path: '/service-accounts',
      operationId: 'createServiceAccount',
      summary: 'Create a service account',
      tag: 'service accounts',
      access: admin,
      body: serviceAccountBody,
      idempotent: true,
      success: {
        status: 201,
        schema: writeResult.extend({ token: z.string().describe('shown once; revoke the account to end it') }).meta({ id: 'ServiceAccountCreated' }),
        description: 'the account and its long-lived token',
      },
      handle: async ({ body, context }) => {
        const result = await access.createServiceAccount(body, context);
        return {
          status: 201,
          body: { id: result.id, revision: result.revision, position: result.position, token: result.token },
          location: `/service-accounts/${result.id}`,
        };
      },
    }),
    route({
      method: 'delete',
      path: '/service-accounts/:id',
      operationId: 'revokeServiceAccount',
      summary: 'Revoke a service account',
      tag: 'service accounts',
      access: admin,
      idempotent: true,
      success: { status: 202, schema: writeResult, description: 'its tokens are refused from now on' },
      handle: async ({ params, context }) => accepted(await access.revokeServiceAccount(pathId(params, 'service account'), context)),
    }),
  ];
}
