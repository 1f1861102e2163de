// Failed-login counters shared by every process on the database, and what lets a token end before it expires:
// a per-user token epoch, and token families (every token descending from one login) that can be revoked.
import type { Knex } from 'knex';

const UP = [
  // One row per user name or client address with recent failures; rows are forgotten after `forget_at`.
  `create table sentinel_login_throttle (
     scope           text not null check (scope in ('username', 'address')),
     key             text not null,
     failures        integer not null,
     last_failure_at timestamptz(3),
     locked_until    timestamptz(3),
     forget_at       timestamptz(3) not null,
     primary key (scope, key)
   )`,
  `create index sentinel_login_throttle_forget on sentinel_login_throttle (forget_at)`,
  // Raised by a password change, a disable or a reset: a token issued under an older epoch is refused.
  `alter table sentinel_users add column token_epoch integer not null default 0`,
  `create table sentinel_token_families (
     id         uuid primary key,
     user_id    uuid not null references sentinel_users (id) on delete cascade,
     expires_at timestamptz not null,
     revoked_at timestamptz
   )`,
  `create index sentinel_token_families_user on sentinel_token_families (user_id)`,
  `create index sentinel_token_families_expiry on sentinel_token_families (expires_at)`,
  // Refresh tokens issued before families existed carry no family claim and could not be used anyway.
  `delete from sentinel_refresh_tokens`,
  `alter table sentinel_refresh_tokens add column family_id uuid not null references sentinel_token_families (id) on delete cascade`,
  `create index sentinel_refresh_tokens_family on sentinel_refresh_tokens (family_id)`,
];

const DOWN = [
  'alter table sentinel_refresh_tokens drop column family_id',
  'drop table sentinel_token_families',
  'alter table sentinel_users drop column token_epoch',
  'drop table sentinel_login_throttle',
];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
