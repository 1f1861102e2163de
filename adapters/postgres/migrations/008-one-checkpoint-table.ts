// One checkpoint table for projectors and reactors: the projection registry becomes sentinel_checkpoints, keyed by
// kind and name, and every reactor's checkpoint moves into it at the position it had, so no reactor handles the
// log again from its start after the upgrade.
import type { Knex } from 'knex';

const UP = [
  'alter table sentinel_projections rename to sentinel_checkpoints',
  // Every row so far is a projector's; the default only fills them in, writers say which kind they write.
  `alter table sentinel_checkpoints add column kind text not null default 'projection' check (kind in ('projection', 'reactor'))`,
  'alter table sentinel_checkpoints alter column kind drop default',
  // A projector and a reactor may share a name (their leases are named apart).
  'alter table sentinel_checkpoints drop constraint sentinel_projections_pkey',
  'alter table sentinel_checkpoints add constraint sentinel_checkpoints_pkey primary key (kind, name)',
  // Version, generation and the count of events applied are a projector's; a reactor has only its position.
  `alter table sentinel_checkpoints
     alter column version drop not null,
     alter column generation drop not null,
     alter column events drop not null,
     alter column events drop default`,
  `alter table sentinel_checkpoints add constraint sentinel_checkpoints_projection_columns check (
     case kind
       when 'projection' then version is not null and generation is not null and events is not null
       else version is null and generation is null and events is null and position is not null
     end)`,
  `insert into sentinel_checkpoints (kind, name, position, updated_at)
     select 'reactor', name, position, updated_at from sentinel_reactor_checkpoints`,
  'drop table sentinel_reactor_checkpoints',
];

const DOWN = [
  `create table sentinel_reactor_checkpoints (
     name        text primary key,
     position    text not null,
     updated_at  timestamptz not null default now()
   )`,
  `insert into sentinel_reactor_checkpoints (name, position, updated_at)
     select name, position, updated_at from sentinel_checkpoints where kind = 'reactor'`,
  `delete from sentinel_checkpoints where kind = 'reactor'`,
  'alter table sentinel_checkpoints drop constraint sentinel_checkpoints_projection_columns',
  `alter table sentinel_checkpoints
     alter column version set not null,
     alter column generation set not null,
     alter column events set default 0,
     alter column events set not null`,
  'alter table sentinel_checkpoints drop constraint sentinel_checkpoints_pkey',
  'alter table sentinel_checkpoints drop column kind',
  'alter table sentinel_checkpoints rename to sentinel_projections',
  'alter table sentinel_projections add constraint sentinel_projections_pkey primary key (name)',
];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
