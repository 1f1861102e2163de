// Reactor checkpoints: how far each reactor (one per cluster, and the plan reactor) has handled the log.
import type { Knex } from 'knex';

const UP = [
  `create table sentinel_reactor_checkpoints (
     name        text primary key,
     -- Position of the last event handled; the reactor goes on after it. Moved after the event's effects.
     position    text not null,
     updated_at  timestamptz not null default now()
   )`,
];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table sentinel_reactor_checkpoints');
}
