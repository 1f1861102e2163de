// Secrets in a PostgreSQL table, addressed by the SHA-256 of their content.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { SecretStore } from '../../commands/secrets.js';

export class PostgresSecretStore implements SecretStore {
  constructor(private readonly knex: Knex) {}

  async put(data: string): Promise<string> {
    const ref = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    await this.knex('sentinel_secrets').insert({ ref, data }).onConflict('ref').ignore();
    return ref;
  }

  async get(ref: string): Promise<string | undefined> {
    const row = (await this.knex('sentinel_secrets').where({ ref }).first('data')) as { data: string } | undefined;
    return row?.data;
  }

  async getOrCreate(name: string, make: () => string): Promise<string> {
    const ref = `name:${name}`;
    await this.knex('sentinel_secrets').insert({ ref, data: make() }).onConflict('ref').ignore();
    return (await this.get(ref))!;
  }
}
