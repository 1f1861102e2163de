// Users, service accounts and tokens: who a request comes from, and the admin commands that manage them.
import { randomBytes, randomUUID } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { AccessEvent, LoginLimit, Principal, UserRole } from '../domain/access.js';
import { accessEvents, type serviceAccountBody, type userBody, type userPatchBody } from '../domain/access.js';
import { NotFound, RuleViolation } from '../domain/decider.js';
import type { EventStore } from '../domain/event-store.js';
import { systemClock, type Clock } from './clock.js';
import { metadataOf, type CommandContext, type WriteResult } from './command-handler.js';
import { DEFAULT_LIVE_PRINCIPAL_MS, LivePrincipals } from './live-principals.js';

// ---- ports --------------------------------------------------------------------------------------------

export interface UserRecord {
  id: string;
  username: string;
  passwordHash: string;
  role: UserRole;
  disabled: boolean;
  /** Every token carries the epoch it was issued under; raising the epoch ends every token issued before. */
  tokenEpoch: number;
}

export interface UserChanges {
  role?: UserRole;
  disabled?: boolean;
  passwordHash?: string;
  /** End every token issued so far: raise the epoch and revoke every session. */
  endTokens?: boolean;
}

/** Runs inside the change's transaction with the user's row and every active admin's row locked; throws to refuse. */
export type UserChangeCheck = (current: UserRecord, activeAdmins: number) => void;

export interface ServiceAccountRecord {
  id: string;
  name: string;
  description?: string;
  revoked: boolean;
}

/** A user as an admin sees it in a list: never its password hash. */
export interface UserSummary {
  id: string;
  username: string;
  role: UserRole;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

/** A service account as an admin sees it in a list: never a token. */
export interface ServiceAccountSummary {
  id: string;
  name: string;
  description: string | null;
  revoked: boolean;
  createdAt: string;
  revokedAt: string | null;
}

/** A slice of principals in name order: those after `after` (before it, newest-name first, for `desc`), at most `limit`. */
export interface PrincipalSlice {
  after?: string;
  order: 'asc' | 'desc';
  limit: number;
}

/** What presenting a refresh token came to. */
export type RefreshTokenUse =
  | { outcome: 'used'; userId: string; familyId: string }
  /** Presented before: its family is revoked; `revokedNow` when this presentation is what revoked it. */
  | { outcome: 'reused'; userId: string; familyId: string; revokedNow: boolean }
  /** Unknown, expired, or of a session that was ended. */
  | { outcome: 'refused' };

export interface PrincipalStore {
  countUsers(): Promise<number>;
  /** Throws `NameTaken` when the username exists. */
  createUser(user: UserRecord): Promise<void>;
  /** Undoes a creation whose audit event could not be recorded. */
  deleteUser(id: string): Promise<void>;
  findUser(id: string): Promise<UserRecord | undefined>;
  findUserByUsername(username: string): Promise<UserRecord | undefined>;
  /** Applies the changes in one transaction, after `check` let them through; undefined when there is no such user. */
  updateUser(id: string, changes: UserChanges, check?: UserChangeCheck): Promise<UserRecord | undefined>;
  /** The user, and whether the session (the token family of one login) is still live, in one read. */
  findSession(userId: string, familyId: string): Promise<{ user: UserRecord; sessionLive: boolean } | undefined>;
  /** Throws `NameTaken` when the name exists. */
  createServiceAccount(account: Omit<ServiceAccountRecord, 'revoked'>): Promise<void>;
  deleteServiceAccount(id: string): Promise<void>;
  findServiceAccount(id: string): Promise<ServiceAccountRecord | undefined>;
  findServiceAccountByName(name: string): Promise<ServiceAccountRecord | undefined>;
  /** Users ordered by username. */
  listUsers(slice: PrincipalSlice): Promise<UserSummary[]>;
  /** Service accounts ordered by name, revoked ones included. */
  listServiceAccounts(slice: PrincipalSlice): Promise<ServiceAccountSummary[]>;
  /** False when there was no such account or it was already revoked. */
  revokeServiceAccount(id: string): Promise<boolean>;
  /** Stores a refresh token in its family (created with the first token), which lives at least until `sessionExpiresAt`. */
  saveRefreshToken(token: { id: string; userId: string; familyId: string; expiresAt: Date; sessionExpiresAt: Date }): Promise<void>;
  /** Marks an unused, unexpired refresh token of a live family used; a second use revokes the whole family. */
  useRefreshToken(id: string): Promise<RefreshTokenUse>;
}

/** Failed-login counters shared by every process on the database. */
export interface LoginThrottle {
  /**
   * Counts one attempt against every key before the password is checked, so a burst of parallel guesses is
   * counted rather than raced; or, when a key is locked or backing off, counts nothing and says how long to wait.
   */
  claim(keys: ThrottleKey[], now: Date): Promise<LoginClaim>;
  /** Forgets a key's failures (a successful login's user name; a password reset). */
  forget(key: Pick<ThrottleKey, 'scope' | 'key'>): Promise<void>;
  /** Takes back the attempt a successful login was charged, and the lock it set, if it set one. */
  giveBack(key: Pick<ThrottleKey, 'scope' | 'key'>, liftLock: boolean): Promise<void>;
}

export type ThrottleScope = 'username' | 'address';

export interface ThrottleKey {
  scope: ThrottleScope;
  key: string;
  limit: LoginLimit;
}

export type LoginClaim =
  /** `locked`: the keys this attempt brought to their limit (a lock that a right password lifts again). */
  | { granted: true; locked: ThrottleScope[] }
  | { granted: false; retryAfterSeconds: number; locked: boolean };

export type LoginResult = 'ok' | 'failed' | 'throttled' | 'locked';

export interface LoginMetrics {
  login(result: LoginResult): void;
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /** Costs what `verify` costs and fails; used for unknown usernames. */
  verifyDecoy(password: string): Promise<false>;
}

export type TokenType = 'access' | 'refresh' | 'service';

/** What ties a user's token to the login it came from and to the user's token epoch. */
export interface TokenSession {
  /** The user's token epoch when the token was issued. */
  epoch: number;
  /** Id of the token family: every token descending from one login. */
  family: string;
}

export interface TokenClaims {
  type: TokenType;
  /** A UUID: the user or service account. */
  subject: string;
  /** Unique id (a UUID) of the token; for a refresh token, the id of its stored row. */
  tokenId: string;
  /** On access and refresh tokens; service-account tokens have none. */
  session?: TokenSession;
}

export interface TokenService {
  readonly accessTtlSeconds: number;
  readonly refreshTtlSeconds: number;
  /** Access and refresh tokens need a session. */
  issue(type: TokenType, subject: string, tokenId: string, session?: TokenSession): Promise<string>;
  /** Throws `Unauthenticated` for a token that is malformed, unsigned, wrongly signed, expired, or lacks a claim. */
  verify(token: string): Promise<TokenClaims>;
}

// ---- errors -------------------------------------------------------------------------------------------

/** No valid credentials: answered with 401. */
export class Unauthenticated extends Error {
  override name = 'Unauthenticated';
}

/** A username or service-account name that is already in use. */
export class NameTaken extends Error {
  override name = 'NameTaken';
  constructor(
    readonly field: string,
    readonly value: string,
  ) {
    super(`${field} "${value}" is already taken`);
  }
}

/** Too many failed logins for a user name or from a client address: answered with 429 and Retry-After. */
export class LoginThrottled extends Error {
  override name = 'LoginThrottled';
  constructor(
    readonly retryAfterSeconds: number,
    readonly locked: boolean,
  ) {
    super(
      locked
        ? `too many failed logins: locked for ${retryAfterSeconds} more seconds`
        : `too many failed logins: wait ${retryAfterSeconds} seconds before trying again`,
    );
  }
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

// ---- the service --------------------------------------------------------------------------------------

/** Failed logins allowed before a lock, per user name and per client address, and how long a lock lasts. */
export interface LoginSettings {
  maxFailures: number;
  addressMaxFailures: number;
  lockSeconds: number;
}

export interface AccessOptions {
  throttle: LoginThrottle;
  login: LoginSettings;
  clock?: Clock;
  metrics?: LoginMetrics;
  logger?: Pick<Logger, 'info' | 'warn'>;
  /**
   * How long (ms) a principal the store found live for a token is believed without asking it again; 1000 unless
   * given, 0 asks on every request. A change made through this service (a disable, a new password or role, a revoked
   * service account, a reused refresh token) counts at once; one made by another process, within this bound.
   */
  livePrincipalMs?: number;
}

/** Where a login or refresh comes from. */
export interface AccessRequest {
  /** The client's IP address as the socket reports it; absent, every such request shares one counter. */
  clientAddress?: string;
  context?: CommandContext;
}

const WRONG_CREDENTIALS = 'wrong username or password, or the user is disabled';

export class AccessService {
  private readonly clock: Clock;
  private readonly live: LivePrincipals;

  constructor(
    private readonly principals: PrincipalStore,
    private readonly tokens: TokenService,
    private readonly passwords: PasswordHasher,
    private readonly eventStore: EventStore,
    private readonly options: AccessOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.live = new LivePrincipals(options.livePrincipalMs ?? DEFAULT_LIVE_PRINCIPAL_MS, () => this.clock.now().getTime());
  }

  /**
   * Checks a password, counted against the user name and the client address. Whether the name exists changes
   * neither the answer nor its cost: an unknown name is verified against a decoy, and a throttled try is
   * refused before any user is looked up.
   */
  async login(username: string, password: string, request: AccessRequest = {}): Promise<TokenPair> {
    const { lockSeconds } = this.options.login;
    const address = addressKey(request.clientAddress);
    const name: ThrottleKey = { scope: 'username', key: username, limit: { maxFailures: this.options.login.maxFailures, lockSeconds } };
    const from: ThrottleKey = { scope: 'address', key: address, limit: { maxFailures: this.options.login.addressMaxFailures, lockSeconds } };
    const now = this.clock.now();
    const claim = await this.options.throttle.claim([name, from], now);
    if (!claim.granted) {
      const result = claim.locked ? 'locked' : 'throttled';
      this.options.metrics?.login(result);
      this.options.logger?.warn(
        { username, address, clientAddress: request.clientAddress ?? 'unknown', reason: result, result, retryAfterSeconds: claim.retryAfterSeconds },
        'login refused: too many failures',
      );
      throw new LoginThrottled(claim.retryAfterSeconds, claim.locked);
    }

    const user = await this.principals.findUserByUsername(username);
    const valid = user ? await this.passwords.verify(password, user.passwordHash) : await this.passwords.verifyDecoy(password);
    if (user && valid && !user.disabled) {
      await this.options.throttle.forget(name);
      await this.options.throttle.giveBack(from, claim.locked.includes('address'));
      this.options.metrics?.login('ok');
      return this.tokenPair(user);
    }

    this.options.metrics?.login('failed');
    // Who tried, from where, and why it failed; never the password.
    const reason = !user ? 'unknown username' : !valid ? 'wrong password' : 'user disabled';
    this.options.logger?.warn({ username, address, clientAddress: request.clientAddress ?? 'unknown', userId: user?.id, reason, result: 'failed' }, 'login failed');
    if (claim.locked.length > 0) {
      const lockedUntil = new Date(now.getTime() + lockSeconds * 1000).toISOString();
      this.options.logger?.warn({ username, address, userId: user?.id, locked: claim.locked, lockedUntil }, 'too many failed logins: locked');
      if (user && claim.locked.includes('username')) {
        await this.record(
          `user-${user.id}`,
          user.id,
          { type: 'LoginLocked', data: { userId: user.id, failures: name.limit.maxFailures, lockedUntil, address } },
          request.context ?? anonymous(),
        );
      }
    }
    throw new Unauthenticated(WRONG_CREDENTIALS);
  }

  /**
   * Exchanges a refresh token, once, for a new pair of the same family. A second use of a token means it leaked
   * (or the client is broken): the whole family is revoked, so neither party keeps a session (RFC 9700).
   */
  async refresh(refreshToken: string, request: AccessRequest = {}): Promise<TokenPair> {
    const claims = await this.tokens.verify(refreshToken);
    if (claims.type !== 'refresh' || !claims.session) throw new Unauthenticated('not a refresh token');
    // A second use revokes the token's whole family, which its access tokens must feel at once.
    const use = await this.live.changing(() => this.principals.useRefreshToken(claims.tokenId));
    if (use.outcome === 'reused') {
      this.options.logger?.warn(
        { userId: use.userId, familyId: use.familyId, address: addressKey(request.clientAddress) },
        'refresh token reused: its family is revoked',
      );
      if (use.revokedNow) {
        await this.record(
          `user-${use.userId}`,
          use.userId,
          { type: 'TokenFamilyRevoked', data: { userId: use.userId, familyId: use.familyId, reason: 'refresh_token_reused' } },
          request.context ?? anonymous(),
        );
      }
      throw new Unauthenticated('the refresh token was already used: every token of its login is revoked; log in again');
    }
    if (use.outcome !== 'used' || use.userId !== claims.subject || use.familyId !== claims.session.family) {
      throw new Unauthenticated('the refresh token was already used or revoked');
    }
    const user = await this.principals.findUser(use.userId);
    if (!user || user.disabled) throw new Unauthenticated('the user is disabled');
    if (user.tokenEpoch !== claims.session.epoch) throw new Unauthenticated(ENDED);
    return this.tokenPair(user, use.familyId);
  }

  /**
   * The principal a bearer token stands for, checked against the store: on every call, or (`livePrincipalMs`)
   * once for every token naming the same principal, session and epoch within that many milliseconds. The token
   * itself (signature, expiry) is checked on every call.
   */
  async authenticate(token: string): Promise<Principal> {
    const claims = await this.tokens.verify(token);
    if (claims.type === 'access') {
      const session = claims.session;
      if (!session) throw new Unauthenticated('the token lacks its claims');
      return this.live.get(`access ${claims.subject} ${session.family} ${session.epoch}`, async () => {
        const found = await this.principals.findSession(claims.subject, session.family);
        if (!found || found.user.disabled) throw new Unauthenticated('the user no longer exists or is disabled');
        if (found.user.tokenEpoch !== session.epoch) throw new Unauthenticated(ENDED);
        if (!found.sessionLive) throw new Unauthenticated('the login this token belongs to was ended; log in again');
        const { user } = found;
        return { id: user.id, kind: 'user', name: user.username, role: user.role };
      });
    }
    if (claims.type === 'service') {
      return this.live.get(`service ${claims.subject}`, async () => {
        const account = await this.principals.findServiceAccount(claims.subject);
        if (!account || account.revoked) throw new Unauthenticated('the service account was revoked');
        return { id: account.id, kind: 'service', name: account.name, role: 'system' };
      });
    }
    throw new Unauthenticated('a refresh token cannot authorize requests; exchange it at /api/v1/auth/refresh');
  }

  async createUser(body: z.infer<typeof userBody>, context: CommandContext): Promise<WriteResult> {
    const id = randomUUID();
    await this.principals.createUser({
      id,
      username: body.username,
      passwordHash: await this.passwords.hash(body.password),
      role: body.role,
      disabled: false,
      tokenEpoch: 0,
    });
    return this.recordOrUndo(
      () => this.record(`user-${id}`, id, { type: 'UserCreated', data: { userId: id, username: body.username, role: body.role } }, context),
      () => this.principals.deleteUser(id),
    );
  }

  async updateUser(id: string, patch: z.infer<typeof userPatchBody>, context: CommandContext): Promise<WriteResult> {
    const passwordHash = patch.password === undefined ? undefined : await this.passwords.hash(patch.password);
    const updated = await this.live.changing(() =>
      this.principals.updateUser(
        id,
        {
          role: patch.role,
          disabled: patch.disabled,
          passwordHash,
          // A disable or a new password ends every token issued before it; enabling again brings none back.
          endTokens: patch.disabled === true || patch.password !== undefined,
        },
        keepsAnAdmin(patch),
      ),
    );
    if (!updated) throw new NotFound('user', id);
    return this.record(
      `user-${id}`,
      id,
      {
        type: 'UserUpdated',
        data: { userId: id, role: patch.role, disabled: patch.disabled, passwordChanged: patch.password !== undefined || undefined },
      },
      context,
    );
  }

  /**
   * The way back in when no admin can log in: a new generated password, the user enabled, every token it had
   * ended, its failed logins forgotten, and optionally a new role. Returns the password, to be shown once.
   */
  async resetPassword(username: string, options: { role?: UserRole }, context: CommandContext): Promise<WriteResult & { password: string }> {
    const user = await this.principals.findUserByUsername(username);
    if (!user) throw new NotFound('user', username);
    const password = randomBytes(18).toString('base64url');
    const passwordHash = await this.passwords.hash(password);
    const updated = await this.live.changing(() =>
      this.principals.updateUser(user.id, { role: options.role, disabled: false, passwordHash, endTokens: true }, keepsAnAdmin({ role: options.role })),
    );
    if (!updated) throw new NotFound('user', username);
    await this.options.throttle.forget({ scope: 'username', key: username });
    const written = await this.record(
      `user-${user.id}`,
      user.id,
      {
        type: 'UserUpdated',
        data: {
          userId: user.id,
          role: options.role !== undefined && options.role !== user.role ? options.role : undefined,
          disabled: user.disabled ? false : undefined,
          passwordChanged: true,
        },
      },
      context,
    );
    return { ...written, password };
  }

  async createServiceAccount(
    body: z.infer<typeof serviceAccountBody>,
    context: CommandContext,
  ): Promise<WriteResult & { token: string }> {
    const id = randomUUID();
    await this.principals.createServiceAccount({ id, name: body.name, description: body.description });
    const written = await this.recordOrUndo(
      () =>
        this.record(
          `serviceaccount-${id}`,
          id,
          { type: 'ServiceAccountCreated', data: { serviceAccountId: id, name: body.name, description: body.description } },
          context,
        ),
      () => this.principals.deleteServiceAccount(id),
    );
    return { ...written, token: await this.tokens.issue('service', id, randomUUID()) };
  }

  /**
   * A token of a service account that Sentinel runs itself (the simulated node agents of the embedded default),
   * creating the account on first use. Tokens are not stored: each start issues another for the same account, and
   * revoking the account (`DELETE /service-accounts/:id`) ends them all and stops them being issued.
   */
  async ownServiceToken(name: string, description: string, context: CommandContext): Promise<string> {
    const existing = await this.principals.findServiceAccountByName(name);
    if (existing?.revoked) throw new Unauthenticated(`the service account ${name} was revoked; it gets no new tokens`);
    if (existing) return this.tokens.issue('service', existing.id, randomUUID());
    return (await this.createServiceAccount({ name, description }, context)).token;
  }

  async revokeServiceAccount(id: string, context: CommandContext): Promise<WriteResult> {
    const account = await this.principals.findServiceAccount(id);
    if (!account) throw new NotFound('service account', id);
    if (!(await this.live.changing(() => this.principals.revokeServiceAccount(id)))) {
      const [last] = await this.eventStore.readStream(`serviceaccount-${id}`, { direction: 'backwards', limit: 1 });
      return { id, revision: last?.revision ?? -1, position: last?.position ?? null, appended: 0 };
    }
    return this.record(`serviceaccount-${id}`, id, { type: 'ServiceAccountRevoked', data: { serviceAccountId: id } }, context);
  }

  /** Users in username order, paged; what `PATCH /users/:id` needs is the id. */
  async listUsers(page: PrincipalPage): Promise<PageOfPrincipals<UserSummary>> {
    return pageOfPrincipals(page, (slice) => this.principals.listUsers(slice), (user) => user.username);
  }

  /** Service accounts in name order, paged, revoked ones included. */
  async listServiceAccounts(page: PrincipalPage): Promise<PageOfPrincipals<ServiceAccountSummary>> {
    return pageOfPrincipals(page, (slice) => this.principals.listServiceAccounts(slice), (account) => account.name);
  }

  /**
   * Creates the first admin when there are no users. Returns the password when it had to generate one, so
   * the caller can show it once.
   */
  async bootstrapAdmin(password: string | undefined, context: CommandContext): Promise<{ username: string; generatedPassword?: string } | undefined> {
    if ((await this.principals.countUsers()) > 0) return undefined;
    const generated = password === undefined ? randomBytes(18).toString('base64url') : undefined;
    try {
      await this.createUser({ username: 'admin', password: password ?? generated!, role: 'admin' }, context);
    } catch (error) {
      if (error instanceof NameTaken) return undefined; // another process bootstrapped first
      throw error;
    }
    return { username: 'admin', generatedPassword: generated };
  }

  /** A new pair: of a new family for a login, of the same family for a refresh. */
  private async tokenPair(user: UserRecord, familyId: string = randomUUID()): Promise<TokenPair> {
    const refreshId = randomUUID();
    const now = Date.now();
    const expiresAt = new Date(now + this.tokens.refreshTtlSeconds * 1000);
    // The family outlives every token of it, so that an access token never outlives the record of its family.
    const sessionExpiresAt = new Date(now + Math.max(this.tokens.refreshTtlSeconds, this.tokens.accessTtlSeconds) * 1000);
    await this.principals.saveRefreshToken({ id: refreshId, userId: user.id, familyId, expiresAt, sessionExpiresAt });
    const session = { epoch: user.tokenEpoch, family: familyId };
    return {
      accessToken: await this.tokens.issue('access', user.id, randomUUID(), session),
      refreshToken: await this.tokens.issue('refresh', user.id, refreshId, session),
      expiresIn: this.tokens.accessTtlSeconds,
    };
  }

  /** A principal that exists without its audit event would be a change nobody can trace: undo the row. */
  private async recordOrUndo(record: () => Promise<WriteResult>, undo: () => Promise<void>): Promise<WriteResult> {
    try {
      return await record();
    } catch (error) {
      await undo();
      throw error;
    }
  }

  /** Principals live in tables; the log keeps an audit record of every change to them, without secrets. */
  private async record(stream: string, id: string, event: AccessEvent, context: CommandContext): Promise<WriteResult> {
    const result = await this.eventStore.append(stream, [
      {
        id: context.eventIds?.(0) ?? randomUUID(),
        type: event.type,
        schemaVersion: accessEvents.version(event.type),
        data: JSON.parse(JSON.stringify(event.data)) as Record<string, unknown>,
        metadata: metadataOf(context),
      },
    ]);
    return { id, revision: result.revision, position: result.position, appended: 1 };
  }
}

export interface PrincipalPage {
  limit: number;
  cursor?: string;
  order: 'asc' | 'desc';
}

export interface PageOfPrincipals<Item> {
  items: Item[];
  nextCursor: string | null;
}

/** A cursor is the order and the last name of a page; one read in the other order, or made up, is refused. */
async function pageOfPrincipals<Item>(
  page: PrincipalPage,
  slice: (slice: PrincipalSlice) => Promise<Item[]>,
  nameOf: (item: Item) => string,
): Promise<PageOfPrincipals<Item>> {
  let after: string | undefined;
  if (page.cursor) {
    let key: unknown;
    try {
      key = JSON.parse(Buffer.from(page.cursor, 'base64url').toString('utf8'));
    } catch {
      key = undefined;
    }
    if (!Array.isArray(key) || key.length !== 2 || key[0] !== page.order || typeof key[1] !== 'string') {
      throw new InvalidPrincipalQuery(`the cursor is not one this list handed out for order=${page.order}`, [
        { path: 'cursor', message: `a nextCursor of a page read with order=${page.order}` },
      ]);
    }
    after = key[1];
  }
  const rows = await slice({ after, order: page.order, limit: page.limit + 1 });
  const items = rows.slice(0, page.limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > page.limit && last ? Buffer.from(JSON.stringify([page.order, nameOf(last)])).toString('base64url') : null,
  };
}

/** A list query of principals that cannot be answered as asked; `errors` name the parameter. */
export class InvalidPrincipalQuery extends Error {
  override name = 'InvalidPrincipalQuery';
  constructor(
    message: string,
    readonly errors: { path: string; message: string }[],
  ) {
    super(message);
  }
}

const ENDED = 'the token was issued before the user’s password changed or the user was disabled; log in again';

/** Refuses to demote or disable the last active admin, which would leave nobody able to manage users. */
function keepsAnAdmin(change: { role?: UserRole; disabled?: boolean }): UserChangeCheck {
  return (current, activeAdmins) => {
    if (current.role !== 'admin' || current.disabled || activeAdmins > 1) return;
    const field = change.role !== undefined && change.role !== 'admin' ? 'role' : change.disabled === true ? 'disabled' : undefined;
    if (!field) return;
    throw new RuleViolation(`user ${current.username} is the last active admin`, [
      { path: field, message: 'the last active admin cannot be demoted or disabled: make another user an admin first' },
    ]);
  };
}

function anonymous(): CommandContext {
  return { actor: { id: 'anonymous', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() };
}

/**
 * The key failed logins from a client are counted under: the address itself for IPv4, the /64 prefix for IPv6
 * (one host usually holds a whole /64, so counting single addresses would be no limit at all).
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const bare = address.split('%')[0]!;
  if (!ipaddr.isValid(bare)) return bare;
  const parsed = ipaddr.parse(bare);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const v6 = parsed as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  return `${v6.parts.slice(0, 4).map((part) => part.toString(16)).join(':')}::/64`;
}
