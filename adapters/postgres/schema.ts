// Sentinel's own tables beside the event log (see migrations/).
import type { Knex } from 'knex';
import { compiledMigrations } from './compiled-migrations.js';
import * as access001 from './migrations/001-access-and-idempotency.js';
import * as projections002 from './migrations/002-projections.js';
import * as reactors003 from './migrations/003-reactors.js';
import * as access004 from './migrations/004-login-throttle-and-sessions.js';
import * as snapshots005 from './migrations/005-aggregate-snapshots.js';
import * as telemetry006 from './migrations/006-telemetry.js';
import * as parked007 from './migrations/007-parked-events.js';

export const SENTINEL_MIGRATIONS_TABLE = 'sentinel_migrations';

const migrations = compiledMigrations(SENTINEL_MIGRATIONS_TABLE, {
  '001-access-and-idempotency': access001,
  '002-projections': projections002,
  '003-reactors': reactors003,
  '004-login-throttle-and-sessions': access004,
  '005-aggregate-snapshots': snapshots005,
  '006-telemetry': telemetry006,
  '007-parked-events': parked007,
});

export async function migrateSentinel(knex: Knex): Promise<void> {
  await migrations.latest(knex);
}

export async function sentinelMigrated(knex: Knex): Promise<boolean> {
  return migrations.isCurrent(knex);
}
