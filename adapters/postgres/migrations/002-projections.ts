// The projection registry: which generation of each projector serves queries, and how far it has read.
import type { Knex } from 'knex';

const UP = [
  `create table sentinel_projections (
     name        text primary key,
     version     integer not null,
     generation  integer not null,
     -- Position of the last event applied; null before the first. Moved in the transaction that applies events.
     position    text,
     events      bigint not null default 0,
     updated_at  timestamptz not null default now()
   )`,
];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table sentinel_projections');
}
