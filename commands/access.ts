// Users, service accounts and tokens: who a request comes from, and the admin commands that manage them.
import { randomBytes, randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { AccessEvent, Principal, UserRole } from '../domain/access.js';
import { accessEvents, type serviceAccountBody, type userBody, type userPatchBody } from '../domain/access.js';
import { NotFound } from '../domain/decider.js';
import type { EventStore } from '../domain/event-store.js';
import { metadataOf, type CommandContext, type WriteResult } from './command-handler.js';

// ---- ports --------------------------------------------------------------------------------------------

export interface UserRecord {
  id: string;
  username: string;
  passwordHash: string;
  role: UserRole;
  disabled: boolean;
}

export interface ServiceAccountRecord {
  id: string;
  name: string;
  description?: string;
  revoked: boolean;
}

export interface PrincipalStore {
  countUsers(): Promise<number>;
  /** Throws `NameTaken` when the username exists. */
  createUser(user: UserRecord): Promise<void>;
  /** Undoes a creation whose audit event could not be recorded. */
  deleteUser(id: string): Promise<void>;
  findUser(id: string): Promise<UserRecord | undefined>;
  findUserByUsername(username: string): Promise<UserRecord | undefined>;
  updateUser(id: string, changes: Partial<Pick<UserRecord, 'role' | 'disabled' | 'passwordHash'>>): Promise<UserRecord | undefined>;
  /** Throws `NameTaken` when the name exists. */
  createServiceAccount(account: Omit<ServiceAccountRecord, 'revoked'>): Promise<void>;
  deleteServiceAccount(id: string): Promise<void>;
  findServiceAccount(id: string): Promise<ServiceAccountRecord | undefined>;
  /** False when there was no such account or it was already revoked. */
  revokeServiceAccount(id: string): Promise<boolean>;
  saveRefreshToken(token: { id: string; userId: string; expiresAt: Date }): Promise<void>;
  /** Marks an unused, unexpired refresh token used and returns its user; undefined when it cannot be used. */
  useRefreshToken(id: string): Promise<string | undefined>;
  revokeRefreshTokens(userId: string): Promise<void>;
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /** Costs what `verify` costs and fails; used for unknown usernames. */
  verifyDecoy(password: string): Promise<false>;
}

export type TokenType = 'access' | 'refresh' | 'service';

export interface TokenClaims {
  type: TokenType;
  subject: string;
  /** Unique id of the token; for a refresh token, the id of its stored row. */
  tokenId: string;
}

export interface TokenService {
  readonly accessTtlSeconds: number;
  readonly refreshTtlSeconds: number;
  issue(type: TokenType, subject: string, tokenId: string): Promise<string>;
  /** Throws `Unauthenticated` for a token that is malformed, unsigned, wrongly signed, or expired. */
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

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

// ---- the service --------------------------------------------------------------------------------------

export class AccessService {
  constructor(
    private readonly principals: PrincipalStore,
    private readonly tokens: TokenService,
    private readonly passwords: PasswordHasher,
    private readonly eventStore: EventStore,
  ) {}

  async login(username: string, password: string): Promise<TokenPair> {
    const user = await this.principals.findUserByUsername(username);
    const valid = user ? await this.passwords.verify(password, user.passwordHash) : await this.passwords.verifyDecoy(password);
    if (!user || !valid || user.disabled) throw new Unauthenticated('wrong username or password, or the user is disabled');
    return this.tokenPair(user.id);
  }

  /** Exchanges a refresh token, once, for a new pair. */
  async refresh(refreshToken: string): Promise<TokenPair> {
    const claims = await this.tokens.verify(refreshToken);
    if (claims.type !== 'refresh') throw new Unauthenticated('not a refresh token');
    const userId = await this.principals.useRefreshToken(claims.tokenId);
    if (!userId || userId !== claims.subject) throw new Unauthenticated('the refresh token was already used or revoked');
    const user = await this.principals.findUser(userId);
    if (!user || user.disabled) throw new Unauthenticated('the user is disabled');
    return this.tokenPair(user.id);
  }

  /** The principal a bearer token stands for, checked against the store on every call. */
  async authenticate(token: string): Promise<Principal> {
    const claims = await this.tokens.verify(token);
    if (claims.type === 'access') {
      const user = await this.principals.findUser(claims.subject);
      if (!user || user.disabled) throw new Unauthenticated('the user no longer exists or is disabled');
      return { id: user.id, kind: 'user', name: user.username, role: user.role };
    }
    if (claims.type === 'service') {
      const account = await this.principals.findServiceAccount(claims.subject);
      if (!account || account.revoked) throw new Unauthenticated('the service account was revoked');
      return { id: account.id, kind: 'service', name: account.name, role: 'system' };
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
    });
    return this.recordOrUndo(
      () => this.record(`user-${id}`, id, { type: 'UserCreated', data: { userId: id, username: body.username, role: body.role } }, context),
      () => this.principals.deleteUser(id),
    );
  }

  async updateUser(id: string, patch: z.infer<typeof userPatchBody>, context: CommandContext): Promise<WriteResult> {
    const updated = await this.principals.updateUser(id, {
      role: patch.role,
      disabled: patch.disabled,
      passwordHash: patch.password === undefined ? undefined : await this.passwords.hash(patch.password),
    });
    if (!updated) throw new NotFound('user', id);
    // A disabled user or a changed password ends every session that could outlive the access token.
    if (patch.disabled || patch.password !== undefined) await this.principals.revokeRefreshTokens(id);
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

  async revokeServiceAccount(id: string, context: CommandContext): Promise<WriteResult> {
    const account = await this.principals.findServiceAccount(id);
    if (!account) throw new NotFound('service account', id);
    if (!(await this.principals.revokeServiceAccount(id))) {
      const [last] = await this.eventStore.readStream(`serviceaccount-${id}`, { direction: 'backwards', limit: 1 });
      return { id, revision: last?.revision ?? -1, position: last?.position ?? null, appended: 0 };
    }
    return this.record(`serviceaccount-${id}`, id, { type: 'ServiceAccountRevoked', data: { serviceAccountId: id } }, context);
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

  private async tokenPair(userId: string): Promise<TokenPair> {
    const refreshId = randomUUID();
    await this.principals.saveRefreshToken({
      id: refreshId,
      userId,
      expiresAt: new Date(Date.now() + this.tokens.refreshTtlSeconds * 1000),
    });
    return {
      accessToken: await this.tokens.issue('access', userId, randomUUID()),
      refreshToken: await this.tokens.issue('refresh', userId, refreshId),
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
