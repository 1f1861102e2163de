// Aggregate snapshots: an aggregate's folded state at a revision of its stream, so a process that has not seen
// the stream yet reads only the events after it.
import type { Knex } from 'knex';

const UP = [
  // One row per stream: the latest snapshot written. `state` is JSON kept as text, so a row that does not parse
  // is ignored by the reader rather than refused by the database; `version` is the aggregate's snapshot version.
  `create table sentinel_aggregate_snapshots (
     stream     text primary key,
     revision   bigint not null check (revision >= 0),
     position   text,
     version    integer not null,
     state      text not null,
     written_at timestamptz not null default now()
   )`,
];

const DOWN = ['drop table sentinel_aggregate_snapshots'];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
