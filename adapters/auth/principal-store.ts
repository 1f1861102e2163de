// Users, service accounts, refresh tokens and their families in PostgreSQL (or PGlite).
import type { Knex } from 'knex';
import {
  NameTaken,
  type PrincipalStore,
  type PrincipalSlice,
  type RefreshTokenUse,
  type ServiceAccountRecord,
  type ServiceAccountSummary,
  type UserChangeCheck,
  type UserChanges,
  type UserRecord,
  type UserSummary,
} from '../../commands/access.js';
import type { UserRole } from '../../domain/access.js';

interface UserRow {
  id: string;
  username: string;
  password_hash: string;
  role: UserRole;
  disabled: boolean;
  token_epoch: number;
}

interface ServiceAccountRow {
  id: string;
  name: string;
  description: string | null;
  created_at: Date;
  revoked_at: Date | null;
}

const UNIQUE_VIOLATION = '23505';

export class PostgresPrincipalStore implements PrincipalStore {
  constructor(private readonly knex: Knex) {}

  async countUsers(): Promise<number> {
    const [row] = await this.knex('sentinel_users').count<{ count: string | number }[]>('* as count');
    return Number(row?.count ?? 0);
  }

  async createUser(user: UserRecord): Promise<void> {
    await this.insert('username', user.username, () =>
      this.knex('sentinel_users').insert({
        id: user.id,
        username: user.username,
        password_hash: user.passwordHash,
        role: user.role,
        disabled: user.disabled,
        token_epoch: user.tokenEpoch,
      }),
    );
  }

  async deleteUser(id: string): Promise<void> {
    await this.knex('sentinel_users').where({ id }).delete();
  }

  async findUser(id: string): Promise<UserRecord | undefined> {
    return toUser(await this.knex<UserRow>('sentinel_users').where({ id }).first());
  }

  async findUserByUsername(username: string): Promise<UserRecord | undefined> {
    return toUser(await this.knex<UserRow>('sentinel_users').where({ username }).first());
  }

  async updateUser(id: string, changes: UserChanges, check?: UserChangeCheck): Promise<UserRecord | undefined> {
    return this.knex.transaction(async (trx) => {
      // Every active admin's row, locked in one order: two admins demoting each other take turns, and the
      // second, reading again after the first commits, no longer counts the one the first demoted.
      const admins = await trx('sentinel_users').where({ role: 'admin', disabled: false }).orderBy('id').forUpdate().select('id');
      const current = toUser(await trx<UserRow>('sentinel_users').where({ id }).forUpdate().first());
      if (!current) return undefined;
      check?.(current, admins.length);
      const [row] = await trx<UserRow>('sentinel_users')
        .where({ id })
        .update({
          ...(changes.role !== undefined ? { role: changes.role } : {}),
          ...(changes.disabled !== undefined ? { disabled: changes.disabled } : {}),
          ...(changes.passwordHash !== undefined ? { password_hash: changes.passwordHash } : {}),
          ...(changes.endTokens ? { token_epoch: trx.raw('token_epoch + 1') } : {}),
          updated_at: trx.fn.now(),
        } as Partial<UserRow>)
        .returning('*');
      if (changes.endTokens) {
        await trx('sentinel_token_families').where({ user_id: id }).whereNull('revoked_at').update({ revoked_at: trx.fn.now() });
      }
      return toUser(row as UserRow | undefined);
    });
  }

  async findSession(userId: string, familyId: string): Promise<{ user: UserRecord; sessionLive: boolean } | undefined> {
    const row = await this.knex<UserRow>('sentinel_users as u')
      .leftJoin('sentinel_token_families as f', (join) => {
        join.on('f.user_id', 'u.id').andOn('f.id', this.knex.raw('?', [familyId]));
      })
      .where('u.id', userId)
      .first<(UserRow & { family_id: string | null; revoked_at: Date | null }) | undefined>('u.*', 'f.id as family_id', 'f.revoked_at');
    const user = toUser(row);
    return user && { user, sessionLive: row!.family_id !== null && row!.revoked_at === null };
  }

  async createServiceAccount(account: Omit<ServiceAccountRecord, 'revoked'>): Promise<void> {
    await this.insert('name', account.name, () =>
      this.knex('sentinel_service_accounts').insert({ id: account.id, name: account.name, description: account.description ?? null }),
    );
  }

  async deleteServiceAccount(id: string): Promise<void> {
    await this.knex('sentinel_service_accounts').where({ id }).delete();
  }

  async findServiceAccount(id: string): Promise<ServiceAccountRecord | undefined> {
    const row = await this.knex<ServiceAccountRow>('sentinel_service_accounts').where({ id }).first();
    return row && { id: row.id, name: row.name, description: row.description ?? undefined, revoked: row.revoked_at !== null };
  }

  async findServiceAccountByName(name: string): Promise<ServiceAccountRecord | undefined> {
    const row = await this.knex<ServiceAccountRow>('sentinel_service_accounts').where({ name }).first();
    return row && { id: row.id, name: row.name, description: row.description ?? undefined, revoked: row.revoked_at !== null };
  }

  async listUsers(slice: PrincipalSlice): Promise<UserSummary[]> {
    // Only the columns an admin may see: the password hash never leaves the table.
    const rows = (await this.slice('sentinel_users', 'username', slice).select('id', 'username', 'role', 'disabled', 'created_at', 'updated_at')) as (Pick<
      UserRow,
      'id' | 'username' | 'role' | 'disabled'
    > & { created_at: Date; updated_at: Date })[];
    return rows.map((row) => ({
      id: row.id,
      username: row.username,
      role: row.role,
      disabled: row.disabled,
      createdAt: new Date(row.created_at).toISOString(),
      updatedAt: new Date(row.updated_at).toISOString(),
    }));
  }

  async listServiceAccounts(slice: PrincipalSlice): Promise<ServiceAccountSummary[]> {
    const rows = (await this.slice('sentinel_service_accounts', 'name', slice).select('id', 'name', 'description', 'created_at', 'revoked_at')) as ServiceAccountRow[];
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      description: row.description,
      revoked: row.revoked_at !== null,
      createdAt: new Date(row.created_at).toISOString(),
      revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at).toISOString(),
    }));
  }

  async revokeServiceAccount(id: string): Promise<boolean> {
    const updated = await this.knex('sentinel_service_accounts').where({ id }).whereNull('revoked_at').update({ revoked_at: this.knex.fn.now() });
    return updated > 0;
  }

  async saveRefreshToken(token: { id: string; userId: string; familyId: string; expiresAt: Date; sessionExpiresAt: Date }): Promise<void> {
    // Expired tokens and families are of no use to anyone; clearing them here keeps the tables small without a timer.
    await this.knex('sentinel_refresh_tokens').where('expires_at', '<', this.knex.fn.now()).delete();
    await this.knex('sentinel_token_families').where('expires_at', '<', this.knex.fn.now()).delete();
    await this.knex('sentinel_token_families')
      .insert({ id: token.familyId, user_id: token.userId, expires_at: token.sessionExpiresAt })
      .onConflict('id')
      .merge({ expires_at: this.knex.raw('greatest(sentinel_token_families.expires_at, excluded.expires_at)') });
    await this.knex('sentinel_refresh_tokens').insert({ id: token.id, user_id: token.userId, family_id: token.familyId, expires_at: token.expiresAt });
  }

  async useRefreshToken(id: string): Promise<RefreshTokenUse> {
    return this.knex.transaction(async (trx) => {
      // The family's row is locked too, so two tokens of one family are never exchanged at once.
      const row = await trx('sentinel_refresh_tokens as t')
        .join('sentinel_token_families as f', 'f.id', 't.family_id')
        .where('t.id', id)
        .forUpdate()
        .first<{ user_id: string; family_id: string; used_at: Date | null; expired: boolean; revoked_at: Date | null } | undefined>(
          't.user_id',
          't.family_id',
          't.used_at',
          trx.raw('t.expires_at <= now() as expired'),
          'f.revoked_at',
        );
      if (!row || row.expired) return { outcome: 'refused' as const };
      const family = { userId: row.user_id, familyId: row.family_id };
      if (row.used_at !== null) {
        const revoked = await trx('sentinel_token_families').where({ id: row.family_id }).whereNull('revoked_at').update({ revoked_at: trx.fn.now() });
        return { outcome: 'reused' as const, ...family, revokedNow: revoked > 0 };
      }
      if (row.revoked_at !== null) return { outcome: 'refused' as const };
      await trx('sentinel_refresh_tokens').where({ id }).update({ used_at: trx.fn.now() });
      return { outcome: 'used' as const, ...family };
    });
  }

  /** Rows in the order of a unique name column, after (or, newest-name first, before) a name; byte order on every database. */
  private slice(table: string, column: string, { after, order, limit }: PrincipalSlice): Knex.QueryBuilder {
    const sorted = this.knex.raw('?? collate "C"', [column]);
    const query = this.knex(table).orderByRaw(`?? collate "C" ${order === 'asc' ? 'asc' : 'desc'}`, [column]).limit(limit);
    if (after !== undefined) query.where(sorted, order === 'asc' ? '>' : '<', after);
    return query;
  }

  private async insert(field: string, value: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (error) {
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) throw new NameTaken(field, value);
      throw error;
    }
  }
}

function toUser(row: UserRow | undefined): UserRecord | undefined {
  return (
    row && {
      id: row.id,
      username: row.username,
      passwordHash: row.password_hash,
      role: row.role,
      disabled: row.disabled,
      tokenEpoch: row.token_epoch,
    }
  );
}
