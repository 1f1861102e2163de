// Idempotency records in PostgreSQL (or PGlite): one row per (principal, key).
import type { Knex } from 'knex';
import type { IdempotencyRecord, IdempotencyStore, StoredResponse } from '../../commands/idempotency.js';

interface Row {
  request_hash: string;
  started_at: Date;
  response_status: number | null;
  response_body: unknown;
}

const TABLE = 'sentinel_idempotency_keys';

export class PostgresIdempotencyStore implements IdempotencyStore {
  constructor(private readonly knex: Knex) {}

  async claim(principalId: string, key: string, requestHash: string): Promise<IdempotencyRecord | undefined> {
    const inserted = await this.knex(TABLE)
      .insert({ principal_id: principalId, key, request_hash: requestHash })
      .onConflict(['principal_id', 'key'])
      .ignore()
      .returning('key');
    if (inserted.length > 0) return undefined;
    const row = (await this.knex(TABLE).where({ principal_id: principalId, key }).first()) as Row | undefined;
    // Purged between the insert and the read: the key is free again, so claim it afresh.
    if (!row) return this.claim(principalId, key, requestHash);
    return {
      requestHash: row.request_hash,
      startedAt: new Date(row.started_at),
      response: row.response_status === null ? undefined : { status: row.response_status, body: row.response_body },
    };
  }

  async takeOver(principalId: string, key: string, startedAt: Date): Promise<boolean> {
    const moved = await this.knex(TABLE)
      .where({ principal_id: principalId, key, started_at: startedAt })
      .whereNull('response_status')
      .update({ started_at: this.knex.fn.now() });
    return moved > 0;
  }

  async complete(principalId: string, key: string, response: StoredResponse): Promise<void> {
    await this.knex(TABLE)
      .where({ principal_id: principalId, key })
      .update({ response_status: response.status, response_body: JSON.stringify(response.body) });
  }

  async release(principalId: string, key: string): Promise<void> {
    await this.knex(TABLE).where({ principal_id: principalId, key }).whereNull('response_status').delete();
  }

  async purge(before: Date): Promise<number> {
    const purged = await this.knex(TABLE).where('started_at', '<', before).delete().returning('key');
    return purged.length;
  }
}
