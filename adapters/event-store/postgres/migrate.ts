// The event store's schema migrations.
import type { Knex } from 'knex';
import { compiledMigrations } from '../../postgres/compiled-migrations.js';
import * as eventStore001 from './migrations/001-event-store.js';
import * as eventStore002 from './migrations/002-correlation-index.js';
import * as eventStore003 from './migrations/003-append-many.js';
import * as eventStore004 from './migrations/004-append-many-heads-first.js';

export const EVENT_STORE_MIGRATIONS_TABLE = 'sentinel_event_store_migrations';

const migrations = compiledMigrations(EVENT_STORE_MIGRATIONS_TABLE, {
  '001-event-store': eventStore001,
  '002-correlation-index': eventStore002,
  '003-append-many': eventStore003,
  '004-append-many-heads-first': eventStore004,
});

export async function migrateEventStore(knex: Knex): Promise<void> {
  await migrations.latest(knex);
}

/** True when every migration this build knows about has been applied. */
export async function eventStoreMigrated(knex: Knex): Promise<boolean> {
  return migrations.isCurrent(knex);
}
