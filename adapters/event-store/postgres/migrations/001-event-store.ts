// Schema of the PostgreSQL event store: the log and per-stream metadata.
import type { Knex } from 'knex';

/*
 * Global order is (tx_id, seq). tx_id is the writing transaction's id; readers only return events whose
 * transaction is older than every transaction still running (pg_snapshot_xmin), so an event that commits late
 * can never land behind a checkpoint a reader has already passed. seq orders events inside a transaction.
 *
 * A stream's revision is its highest stored revision; the unique (stream, revision) index is what makes
 * expected-revision checks hold under concurrency (see append.ts).
 */
const UP = [
  `create table sentinel_events (
     tx_id          xid8 not null default pg_current_xact_id(),
     seq            bigint generated always as identity,
     id             uuid not null,
     stream         text not null,
     revision       bigint not null,
     type           text not null,
     schema_version integer not null,
     data           jsonb not null,
     metadata       jsonb not null,
     recorded_at    timestamptz not null default clock_timestamp(),
     constraint sentinel_events_pkey primary key (tx_id, seq),
     constraint sentinel_events_stream_revision unique (stream, revision),
     constraint sentinel_events_stream_id unique (stream, id)
   )`,
  `create index sentinel_events_type_position on sentinel_events (type, tx_id, seq)`,
  `create table sentinel_stream_metadata (
     stream          text primary key,
     truncate_before bigint,
     max_age         bigint,
     max_count       bigint,
     custom          jsonb
   )`,
];

export async function up(knex: Knex): Promise<void> {
  // One statement at a time: PGlite's extended protocol takes a single command per query.
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table if exists sentinel_stream_metadata');
  await knex.raw('drop table if exists sentinel_events');
}
