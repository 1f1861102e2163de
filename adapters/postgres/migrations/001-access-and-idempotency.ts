// Tables the write side keeps outside the event log: principals and their credentials, refresh tokens,
// idempotency records, and secrets that must never enter the immutable log.
import type { Knex } from 'knex';

const UP = [
  `create table sentinel_users (
     id            uuid primary key,
     username      text not null unique,
     password_hash text not null,
     role          text not null check (role in ('viewer', 'operator', 'admin')),
     disabled      boolean not null default false,
     created_at    timestamptz not null default now(),
     updated_at    timestamptz not null default now()
   )`,
  `create table sentinel_service_accounts (
     id          uuid primary key,
     name        text not null unique,
     description text,
     created_at  timestamptz not null default now(),
     revoked_at  timestamptz
   )`,
  // A refresh token is good once: using it marks it used and issues the next one.
  `create table sentinel_refresh_tokens (
     id         uuid primary key,
     user_id    uuid not null references sentinel_users (id) on delete cascade,
     expires_at timestamptz not null,
     used_at    timestamptz
   )`,
  `create index sentinel_refresh_tokens_expiry on sentinel_refresh_tokens (expires_at)`,
  `create table sentinel_idempotency_keys (
     principal_id    text not null,
     key             text not null,
     request_hash    text not null,
     -- Millisecond precision, as a JavaScript Date holds it: a takeover matches the value it read.
     started_at      timestamptz(3) not null default now(),
     response_status integer,
     response_body   jsonb,
     primary key (principal_id, key)
   )`,
  `create index sentinel_idempotency_keys_age on sentinel_idempotency_keys (started_at)`,
  `create table sentinel_secrets (
     ref        text primary key,
     data       text not null,
     created_at timestamptz not null default now()
   )`,
];

const DOWN = [
  'drop table sentinel_secrets',
  'drop table sentinel_idempotency_keys',
  'drop table sentinel_refresh_tokens',
  'drop table sentinel_service_accounts',
  'drop table sentinel_users',
];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
