// Telemetry storage: raw samples and their 1-minute rollups, both partitioned by day, and one row per node agent
// holding the highest batch sequence stored for it.
import type { Knex } from 'knex';

const UP = [
  // Raw samples, partitioned by RANGE on their time, one partition per day (created ahead of need by the sample
  // store's maintenance pass, dropped whole when older than the retention). No index beyond the partitioning: every
  // read Sentinel makes is served by the rollups, and an index here would cost each of the many inserted rows.
  `create table telemetry_samples (
     cluster_id text not null,
     node_name  text not null,
     agent_id   text not null,
     metric     text not null,
     labels     jsonb not null,
     value      double precision not null,
     time       timestamptz not null
   ) partition by range (time)`,
  // One row per series (cluster, node, metric, labels) and minute. `labels_key` is the labels as jsonb text,
  // which is canonical (jsonb orders keys and drops duplicates), so one label set has one key. Partitioned by day
  // like the samples so that retention drops whole days rather than deleting rows one by one.
  `create table telemetry_rollups_1m (
     cluster_id text not null,
     node_name  text not null,
     metric     text not null,
     labels_key text not null,
     labels     jsonb not null,
     minute     timestamptz not null,
     count      bigint not null,
     sum        double precision not null,
     min        double precision not null,
     max        double precision not null,
     last_value double precision not null,
     last_time  timestamptz not null,
     primary key (cluster_id, node_name, metric, labels_key, minute)
   ) partition by range (minute)`,
  // Reads of one metric across the fleet (rollups({ metric, from, to }) without a cluster or node).
  'create index telemetry_rollups_1m_metric on telemetry_rollups_1m (metric, minute)',
  // `high_water` is raised in the transaction that stores the batch: a batch at or below it was stored already.
  `create table telemetry_agents (
     agent_id        text primary key,
     node_name       text not null,
     cluster_id      text not null,
     agent_version   text not null,
     high_water      bigint not null default 0 check (high_water >= 0),
     dropped_samples bigint not null default 0 check (dropped_samples >= 0),
     last_hello_at   timestamptz not null,
     last_batch_at   timestamptz
   )`,
];

const DOWN = ['drop table telemetry_agents', 'drop table telemetry_rollups_1m', 'drop table telemetry_samples'];

export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
