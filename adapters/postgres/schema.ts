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
import * as checkpoints008 from './migrations/008-one-checkpoint-table.js';
import * as snapshots009 from './migrations/009-snapshot-history.js';
import * as rollups010 from './migrations/010-telemetry-rollups-off-batch.js';
import * as sampleBatches011 from './migrations/011-telemetry-sample-batches.js';

export const SENTINEL_MIGRATIONS_TABLE = 'sentinel_migrations';

/** Every migration, in the order they apply. */
const SENTINEL_MIGRATIONS: Record<string, Knex.Migration> = {
  '001-access-and-idempotency': access001,
  '002-projections': projections002,
  '003-reactors': reactors003,
  '004-login-throttle-and-sessions': access004,
  '005-aggregate-snapshots': snapshots005,
  '006-telemetry': telemetry006,
  '007-parked-events': parked007,
  '008-one-checkpoint-table': checkpoints008,
  '009-snapshot-history': snapshots009,
  '010-telemetry-rollups-off-batch': rollups010,
  '011-telemetry-sample-batches': sampleBatches011,
};

const migrations = compiledMigrations(SENTINEL_MIGRATIONS_TABLE, SENTINEL_MIGRATIONS);

/** The schema as it stood before the migration `name`, under the same bookkeeping table: for upgrade tests. */
export function sentinelMigrationsBefore(name: string) {
  const names = Object.keys(SENTINEL_MIGRATIONS);
  const end = names.indexOf(name);
  if (end < 0) throw new Error(`no migration is named ${name}; there are ${names.join(', ')}`);
  return compiledMigrations(SENTINEL_MIGRATIONS_TABLE, Object.fromEntries(names.slice(0, end).map((n) => [n, SENTINEL_MIGRATIONS[n]!])));
}

export async function migrateSentinel(knex: Knex): Promise<void> {
  await migrations.latest(knex);
}

export async function sentinelMigrated(knex: Knex): Promise<boolean> {
  return migrations.isCurrent(knex);
}
