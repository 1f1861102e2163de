// Parked reactor events: an event whose handling failed in a way no retry heals, set aside so its reactor moves on.
import type { Knex } from 'knex';

const UP = [
  `create table sentinel_reactor_parked (
     id                  bigint generated always as identity primary key,
     reactor             text not null,
     event_id            text not null,
     event_stream        text not null,
     event_type          text not null,
     event_position      text not null,
     -- permanent (no retry heals it) or bug (an error only a mistake in code throws).
     kind                text not null check (kind in ('permanent', 'bug')),
     error               text not null,
     -- Times the event was handled and failed: once when parked, once more for each retry asked for that failed.
     failures            integer not null default 1,
     parked_at           timestamptz not null default now(),
     -- Set by \`sentinel reactors retry\`; the running reactor tries the event again and clears it.
     retry_requested_at  timestamptz,
     unique (reactor, event_id)
   )`,
];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table sentinel_reactor_parked');
}
