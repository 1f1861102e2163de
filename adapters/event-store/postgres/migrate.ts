// Runs the event store's knex migrations, which are compiled in rather than read from disk.
import type { Knex } from 'knex';
import * as eventStore001 from './migrations/001-event-store.js';

const migrations: Record<string, Knex.Migration> = {
  '001-event-store': eventStore001,
};

const source: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations),
  getMigrationName: (name) => name,
  getMigration: async (name) => migrations[name]!,
};

export const EVENT_STORE_MIGRATIONS_TABLE = 'sentinel_event_store_migrations';

export async function migrateEventStore(knex: Knex): Promise<void> {
  await knex.migrate.latest({ migrationSource: source, tableName: EVENT_STORE_MIGRATIONS_TABLE });
}

/** True when every migration this build knows about has been applied. */
export async function eventStoreMigrated(knex: Knex): Promise<boolean> {
  const [, pending] = (await knex.migrate.list({ migrationSource: source, tableName: EVENT_STORE_MIGRATIONS_TABLE })) as [
    unknown[],
    unknown[],
  ];
  return pending.length === 0;
}
