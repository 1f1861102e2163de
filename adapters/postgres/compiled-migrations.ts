// knex migrations compiled into the build rather than read from disk, each set with its own bookkeeping table.
import type { Knex } from 'knex';

export interface MigrationSet {
  /** Applies every migration not yet applied. */
  latest(knex: Knex): Promise<void>;
  /** True when every migration this build knows about has been applied. */
  isCurrent(knex: Knex): Promise<boolean>;
}

export function compiledMigrations(tableName: string, migrations: Record<string, Knex.Migration>): MigrationSet {
  const migrationSource: Knex.MigrationSource<string> = {
    getMigrations: async () => Object.keys(migrations),
    getMigrationName: (name) => name,
    getMigration: async (name) => migrations[name]!,
  };
  return {
    async latest(knex) {
      await knex.migrate.latest({ migrationSource, tableName });
    },
    async isCurrent(knex) {
      const [, pending] = (await knex.migrate.list({ migrationSource, tableName })) as [unknown[], unknown[]];
      return pending.length === 0;
    },
  };
}
