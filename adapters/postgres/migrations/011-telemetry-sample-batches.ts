// Telemetry samples stored one row per batch and day rather than one row per sample: a batch's distinct series
// once, then each sample's series index, time offset and value as arrays. A row per sample repeated its cluster,
// node, agent, metric and labels (about 240 bytes of table and 260 of WAL a sample); the arrays take about 12 and
// 11, and one row's insert replaces a thousand. Rows stored before stay in telemetry_samples, read beside the
// batches until the retention drops their days; telemetry_sample_rows shows both as one row per sample.
import type { Knex } from 'knex';

const UP = [
  // `time` is the earliest sample of the row, and every sample of a row falls on the same UTC day: partitioned by
  // day like telemetry_samples, so retention drops whole days. `series` is a JSON array of {metric, labels};
  // sample i is series `series_indexes[i]` (0-based) at `time` + `offsets_ms[i]` milliseconds, of `sample_values[i]`.
  `create table telemetry_sample_batches (
     cluster_id     text not null,
     node_name      text not null,
     agent_id       text not null,
     sequence       bigint not null,
     time           timestamptz not null,
     series         jsonb not null,
     series_indexes integer[] not null,
     offsets_ms     integer[] not null,
     sample_values  double precision[] not null
   ) partition by range (time)`,
  `create view telemetry_sample_rows as
     select cluster_id, node_name, agent_id, metric, labels, value, time, sequence from telemetry_samples
     union all
     select b.cluster_id, b.node_name, b.agent_id, d.series->>'metric', d.series->'labels', s.value,
            b.time + s.offset_ms * interval '1 millisecond', b.sequence
       from telemetry_sample_batches b
       cross join lateral unnest(b.series_indexes, b.offsets_ms, b.sample_values) as s(series, offset_ms, value)
       join lateral jsonb_array_elements(b.series) with ordinality as d(series, n) on d.n = s.series + 1`,
];

const DOWN = ['drop view telemetry_sample_rows', 'drop table telemetry_sample_batches'];

export async function up(knex: Knex): Promise<void> {
  // One statement at a time: PGlite's extended protocol takes a single command per query.
  for (const statement of UP) await knex.raw(statement);
}

export async function down(knex: Knex): Promise<void> {
  for (const statement of DOWN) await knex.raw(statement);
}
