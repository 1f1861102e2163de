// Users, service accounts and refresh tokens in PostgreSQL (or PGlite).
import type { Knex } from 'knex';
import { NameTaken, type PrincipalStore, type ServiceAccountRecord, type UserRecord } from '../../commands/access.js';
import type { UserRole } from '../../domain/access.js';

interface UserRow {
  id: string;
  username: string;
  password_hash: string;
  role: UserRole;
  disabled: boolean;
}

interface ServiceAccountRow {
  id: string;
  name: string;
  description: string | null;
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

  async updateUser(
    id: string,
    changes: Partial<Pick<UserRecord, 'role' | 'disabled' | 'passwordHash'>>,
  ): Promise<UserRecord | undefined> {
    const [row] = await this.knex<UserRow>('sentinel_users')
      .where({ id })
      .update({
        ...(changes.role !== undefined ? { role: changes.role } : {}),
        ...(changes.disabled !== undefined ? { disabled: changes.disabled } : {}),
        ...(changes.passwordHash !== undefined ? { password_hash: changes.passwordHash } : {}),
        updated_at: this.knex.fn.now(),
      } as Partial<UserRow>)
      .returning('*');
    return toUser(row as UserRow | undefined);
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

  async revokeServiceAccount(id: string): Promise<boolean> {
    const updated = await this.knex('sentinel_service_accounts').where({ id }).whereNull('revoked_at').update({ revoked_at: this.knex.fn.now() });
    return updated > 0;
  }

  async saveRefreshToken(token: { id: string; userId: string; expiresAt: Date }): Promise<void> {
    // Expired tokens are of no use to anyone; clearing them here keeps the table small without a timer.
    await this.knex('sentinel_refresh_tokens').where('expires_at', '<', this.knex.fn.now()).delete();
    await this.knex('sentinel_refresh_tokens').insert({ id: token.id, user_id: token.userId, expires_at: token.expiresAt });
  }

  async useRefreshToken(id: string): Promise<string | undefined> {
    const [row] = await this.knex('sentinel_refresh_tokens')
      .where({ id })
      .whereNull('used_at')
      .where('expires_at', '>', this.knex.fn.now())
      .update({ used_at: this.knex.fn.now() })
      .returning<{ user_id: string }[]>('user_id');
    return row?.user_id;
  }

  async revokeRefreshTokens(userId: string): Promise<void> {
    await this.knex('sentinel_refresh_tokens').where({ user_id: userId }).whereNull('used_at').update({ used_at: this.knex.fn.now() });
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
    row && { id: row.id, username: row.username, passwordHash: row.password_hash, role: row.role, disabled: row.disabled }
  );
}
