// Snapshot history: every snapshot written is kept beside the latest, so a fold up to a past point starts from the
// newest one at or below it instead of the stream's first event.
import type { Knex } from 'knex';

const UP = [
  // Keyed by version first: a reader asks for the snapshots of the version it folds with, and a version no reader
  // asks for any more is deleted in one range. `position` and `recorded_at` are those of the snapshot's own event:
  // what a read at a position or at a time picks by (null when not known: such a row answers neither).
  `create table sentinel_aggregate_snapshot_history (
     stream      text not null,
     version     integer not null,
     revision    bigint not null check (revision >= 0),
     position    text,
     recorded_at timestamptz,
     state       text not null,
     written_at  timestamptz not null default now(),
     constraint sentinel_aggregate_snapshot_history_pkey primary key (stream, version, revision)
   )`,
  `create index sentinel_aggregate_snapshot_history_position on sentinel_aggregate_snapshot_history (stream, version, position)`,
  `create index sentinel_aggregate_snapshot_history_recorded_at on sentinel_aggregate_snapshot_history (stream, version, recorded_at)`,
  `alter table sentinel_aggregate_snapshots add column recorded_at timestamptz`,
  // The snapshots already written start the history, so existing databases keep them.
  `insert into sentinel_aggregate_snapshot_history (stream, version, revision, position, state, written_at)
   select stream, version, revision, position, state, written_at from sentinel_aggregate_snapshots`,
  // Their recorded times from the events, where the PostgreSQL event store keeps them on this same database: to the
  // millisecond, as the event store reads them.
  `do $$
   begin
     if to_regclass('sentinel_events') is not null then
       update sentinel_aggregate_snapshot_history h set recorded_at = date_trunc('milliseconds', e.recorded_at)
         from sentinel_events e where e.stream = h.stream and e.revision = h.revision;
       update sentinel_aggregate_snapshots s set recorded_at = date_trunc('milliseconds', e.recorded_at)
         from sentinel_events e where e.stream = s.stream and e.revision = s.revision;
     end if;
   end
   $$`,
];

const DOWN = ['drop table sentinel_aggregate_snapshot_history', 'alter table sentinel_aggregate_snapshots drop column recorded_at'];

export async function up(knex: Knex): Promise<void> {
  // One statement at a time: PGlite's extended protocol takes a single command per query.
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
