// Telemetry rollups leave the batch statement: the ingest process accumulates them and folds them in every couple of
// seconds. Each sample row records its batch's sequence, and each agent row how far its batches are rolled up and
// which ingest process holds its stream, so that batches stored but not yet rolled up can be rolled up again from
// the samples after a crash or a handover, exactly once.
import type { Knex } from 'knex';

const UP = [
  // Null for the rows stored before this migration: those were rolled up with their batch.
  'alter table telemetry_samples add column sequence bigint',
  // Every batch of the agent at or below `rolled_up_through` is in the rollups; those in
  // (rolled_up_through, high_water] are stored and not yet rolled up. `owner` is the ingest process that holds the
  // agent's stream (null: none); only it may store the agent's batches and advance `rolled_up_through`.
  // `unrolled_since` is at or below the time of every sample not yet rolled up (null when there is none), so
  // that recovery reads only the partitions that can hold them.
  `alter table telemetry_agents
     add column rolled_up_through bigint not null default 0 check (rolled_up_through >= 0),
     add column owner text,
     add column unrolled_since timestamptz`,
  // Until now a batch's rollups were written in its own statement: every stored batch is rolled up.
  'update telemetry_agents set rolled_up_through = high_water',
];

const DOWN = [
  'alter table telemetry_agents drop column unrolled_since, drop column owner, drop column rolled_up_through',
  'alter table telemetry_samples drop column sequence',
];

export async function up(knex: Knex): Promise<void> {
  // One statement at a time: PGlite's extended protocol takes a single command per query.
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
