// Telemetry samples on PostgreSQL (or PGlite): batches stored exactly once per agent, 1-minute rollups kept in the
// same statement, daily partitions created ahead and dropped after the retention, and the reads the query side uses.
import type { Database } from '../adapters/postgres/database.js';
import type { Batch, Hello, Sample } from '../adapters/grpc/telemetry-proto.js';
import type { LatestSample, LatestSamples } from '../domain/telemetry.js';

export type { LatestSample } from '../domain/telemetry.js';
import type { BatchStore, StoreOutcome } from './ingest-server.js';

export interface SampleStoreOptions {
  /** Days raw samples are kept (default 7). */
  sampleRetentionDays?: number;
  /** Days 1-minute rollups are kept (default 30). */
  rollupRetentionDays?: number;
}

export const DEFAULT_SAMPLE_RETENTION_DAYS = 7;
export const DEFAULT_ROLLUP_RETENTION_DAYS = 30;

/** One series over one minute. */
export interface Rollup {
  clusterId: string;
  nodeName: string;
  metric: string;
  labels: Record<string, string>;
  minute: Date;
  count: number;
  sum: number;
  min: number;
  max: number;
  lastValue: number;
  lastTime: Date;
}

/** What Sentinel knows of one node agent. */
export interface AgentRecord {
  agentId: string;
  nodeName: string;
  clusterId: string;
  agentVersion: string;
  /** The highest batch sequence stored for the agent. */
  highWater: number;
  /** Samples the agent reported its buffer dropped, as of its latest stored batch (cumulative since it started). */
  droppedSamples: number;
  lastHelloAt: Date;
  lastBatchAt: Date | null;
}

/** What one maintenance pass did, by partition name. */
export interface MaintenanceReport {
  created: string[];
  dropped: string[];
}

const DAY_MS = 86_400_000;

/** The partitioned tables, each with its retention. */
type PartitionedTable = 'telemetry_samples' | 'telemetry_rollups_1m';
const PARTITIONED: readonly PartitionedTable[] = ['telemetry_samples', 'telemetry_rollups_1m'];
/**
 * A rollup row is updated by every batch of its minute, never in an indexed column: free room on its page lets
 * PostgreSQL write the new version there without touching the indexes (a HOT update). Samples are only appended.
 */
const STORAGE: Record<PartitionedTable, string> = { telemetry_samples: '', telemetry_rollups_1m: 'with (fillfactor = 70)' };

/**
 * One statement stores a batch, so it is one transaction: the agent's high-water mark is raised only when the
 * batch's sequence is above it, and the samples and rollups are written only when it was. A resent batch therefore
 * writes nothing, and two streams of the same agent serialise on the agent's row.
 *
 * The batch arrives as columns (`unnest` of one array per field) with each distinct series (metric and labels) sent
 * once ($7, a jsonb array) and referred to by its index ($8): a node's batch repeats a few hundred series, and
 * parsing and grouping a small integer costs far less than a jsonb value per sample. The rollup rows are
 * aggregated from the batch and merged into what earlier batches wrote for the same minute, in key order so that
 * two batches touching the same series cannot deadlock. Minutes are computed from the epoch milliseconds, so they do
 * not depend on the session's time zone.
 */
const STORE_BATCH = `
  with raised as (
    update telemetry_agents agent
       set high_water = $4::bigint, dropped_samples = $5::bigint, last_batch_at = $6::timestamptz
      from telemetry_agents previous
     where agent.agent_id = $1::text and previous.agent_id = $1::text and agent.high_water < $4::bigint
    returning previous.dropped_samples as previous_dropped
  ),
  series as materialized (
    select ordinality::integer - 1 as series, value->>'metric' as metric, value->'labels' as labels, (value->'labels')::text as labels_key
      from jsonb_array_elements($7::jsonb) with ordinality
     where exists (select from raised)
  ),
  incoming as materialized (
    select s.series, s.value, s.ms, floor(s.ms / 60000) as minute
      from unnest($8::integer[], $9::double precision[], $10::double precision[]) as s(series, value, ms)
     where exists (select from raised)
  ),
  samples as (
    insert into telemetry_samples (cluster_id, node_name, agent_id, metric, labels, value, time)
    select $2::text, $3::text, $1::text, d.metric, d.labels, i.value, to_timestamp(i.ms / 1000)
      from incoming i join series d using (series)
  ),
  per_series as (
    select series, minute, count(*) as count, sum(value) as sum, min(value) as min, max(value) as max,
           max(array[ms, value]) as last
      from incoming
     group by series, minute
  ),
  -- Two entries of the batch's series may be one series (the same labels in another key order): merged here, as
  -- one statement may not update a rollup row twice.
  per_key as (
    select d.metric, d.labels_key, (array_agg(d.labels))[1] as labels, g.minute, sum(g.count) as count, sum(g.sum) as sum,
           min(g.min) as min, max(g.max) as max, max(g.last) as last
      from per_series g join series d using (series)
     group by d.metric, d.labels_key, g.minute
  ),
  rollups as (
    insert into telemetry_rollups_1m as r
      (cluster_id, node_name, metric, labels_key, labels, minute, count, sum, min, max, last_value, last_time)
    select $2::text, $3::text, metric, labels_key, labels, to_timestamp(minute * 60), count, sum, min, max,
           last[2], to_timestamp(last[1] / 1000)
      from per_key
     order by metric, labels_key, minute
    on conflict (cluster_id, node_name, metric, labels_key, minute) do update set
      count = r.count + excluded.count,
      sum = r.sum + excluded.sum,
      min = least(r.min, excluded.min),
      max = greatest(r.max, excluded.max),
      last_value = case when excluded.last_time >= r.last_time then excluded.last_value else r.last_value end,
      last_time = greatest(r.last_time, excluded.last_time)
  )
  select previous_dropped from raised`;

export class SampleStore implements BatchStore, LatestSamples {
  readonly sampleRetentionMs: number;
  readonly rollupRetentionMs: number;
  /** Days (since the epoch, UTC) whose partitions exist in both tables, as far as this process knows. */
  private readonly days = new Set<number>();
  /** Partition DDL runs one at a time in this process. */
  private ddl: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: Database,
    options: SampleStoreOptions = {},
  ) {
    this.sampleRetentionMs = days(options.sampleRetentionDays ?? DEFAULT_SAMPLE_RETENTION_DAYS, 'sampleRetentionDays') * DAY_MS;
    this.rollupRetentionMs = days(options.rollupRetentionDays ?? DEFAULT_ROLLUP_RETENTION_DAYS, 'rollupRetentionDays') * DAY_MS;
  }

  /** Records the agent's hello and answers the highest sequence stored for it (0 when none). */
  async hello(hello: Hello, at: Date): Promise<number> {
    const [row] = await this.db.query<{ high_water: string | number }>(
      `insert into telemetry_agents (agent_id, node_name, cluster_id, agent_version, last_hello_at)
       values ($1, $2, $3, $4, $5)
       on conflict (agent_id) do update set
         node_name = excluded.node_name, cluster_id = excluded.cluster_id,
         agent_version = excluded.agent_version, last_hello_at = excluded.last_hello_at
       returning high_water`,
      [hello.agentId, hello.nodeName, hello.clusterId, hello.agentVersion, at],
      'telemetry-hello',
    );
    return Number(row!.high_water);
  }

  /** Stores a validated batch unless its sequence is at or below the agent's high-water mark. */
  async store(batch: Batch, receivedAt: Date): Promise<StoreOutcome> {
    await this.ensurePartitionsFor(batch);
    const [raised] = await this.db.query<{ previous_dropped: string | number }>(
      STORE_BATCH,
      [batch.agentId, batch.clusterId, batch.nodeName, batch.sequence, batch.droppedSamples, receivedAt, ...columnsOf(batch.samples)],
      'telemetry-store-batch',
    );
    if (raised) {
      return { stored: true, acknowledged: batch.sequence, droppedIncrease: droppedIncrease(Number(raised.previous_dropped), batch.droppedSamples) };
    }
    return { stored: false, acknowledged: await this.highWater(batch.agentId) };
  }

  /** Creates the partitions of today and tomorrow (UTC) and drops those entirely older than their retention. */
  async maintain(now: Date): Promise<MaintenanceReport> {
    const today = epochDay(now.getTime());
    const created = await this.ensureDays([today, today + 1]);
    const dropped = [
      ...(await this.dropBefore('telemetry_samples', epochDay(now.getTime() - this.sampleRetentionMs))),
      ...(await this.dropBefore('telemetry_rollups_1m', epochDay(now.getTime() - this.rollupRetentionMs))),
    ];
    return { created, dropped };
  }

  /**
   * The latest value of each series (cluster, node, metric, labels) seen at or after `since`, optionally of one
   * cluster, one node and metrics starting with `metricPrefix`. Served from the rollups: the last value of a
   * series' newest minute is its latest value, and the primary key orders the rows as DISTINCT ON needs them.
   */
  async latestSamples(query: { clusterId?: string; nodeName?: string; metricPrefix?: string; since: Date }): Promise<LatestSample[]> {
    const where = conditions();
    where.add('minute >= ?', new Date(Math.floor(query.since.getTime() / 60_000) * 60_000));
    where.add('last_time >= ?', query.since);
    if (query.clusterId !== undefined) where.add('cluster_id = ?', query.clusterId);
    if (query.nodeName !== undefined) where.add('node_name = ?', query.nodeName);
    if (query.metricPrefix !== undefined) where.add('starts_with(metric, ?)', query.metricPrefix);
    const rows = await this.db.query<RollupRow>(
      `select distinct on (cluster_id, node_name, metric, labels_key) cluster_id, node_name, metric, labels, last_value, last_time
         from telemetry_rollups_1m where ${where.sql}
        order by cluster_id, node_name, metric, labels_key, minute desc`,
      where.params,
    );
    return rows.map((row) => ({
      clusterId: row.cluster_id,
      nodeName: row.node_name,
      metric: row.metric,
      labels: row.labels,
      value: Number(row.last_value),
      time: new Date(row.last_time),
    }));
  }

  /** Every agent that has said hello, by agent id. */
  async agents(): Promise<AgentRecord[]> {
    const rows = await this.db.query<AgentRow>('select * from telemetry_agents order by agent_id');
    return rows.map((row) => ({
      agentId: row.agent_id,
      nodeName: row.node_name,
      clusterId: row.cluster_id,
      agentVersion: row.agent_version,
      highWater: Number(row.high_water),
      droppedSamples: Number(row.dropped_samples),
      lastHelloAt: new Date(row.last_hello_at),
      lastBatchAt: row.last_batch_at === null ? null : new Date(row.last_batch_at),
    }));
  }

  /** The 1-minute rollups of one metric with `from` <= minute < `to`, by cluster, node, labels and minute. */
  async rollups(query: { clusterId?: string; nodeName?: string; metric: string; from: Date; to: Date }): Promise<Rollup[]> {
    const where = conditions();
    where.add('metric = ?', query.metric);
    where.add('minute >= ?', query.from);
    where.add('minute < ?', query.to);
    if (query.clusterId !== undefined) where.add('cluster_id = ?', query.clusterId);
    if (query.nodeName !== undefined) where.add('node_name = ?', query.nodeName);
    const rows = await this.db.query<RollupRow>(
      `select * from telemetry_rollups_1m where ${where.sql} order by cluster_id, node_name, labels_key, minute`,
      where.params,
    );
    return rows.map((row) => ({
      clusterId: row.cluster_id,
      nodeName: row.node_name,
      metric: row.metric,
      labels: row.labels,
      minute: new Date(row.minute),
      count: Number(row.count),
      sum: Number(row.sum),
      min: Number(row.min),
      max: Number(row.max),
      lastValue: Number(row.last_value),
      lastTime: new Date(row.last_time),
    }));
  }

  private async highWater(agentId: string): Promise<number> {
    const [row] = await this.db.query<{ high_water: string | number }>('select high_water from telemetry_agents where agent_id = $1', [agentId]);
    if (!row) throw new Error(`telemetry agent ${agentId} has no hello stored: a batch can only follow the agent's hello`);
    return Number(row.high_water);
  }

  /** Samples may be late (an agent resending its buffer) or slightly early: every day a batch touches needs its partitions. */
  private async ensurePartitionsFor(batch: Batch): Promise<void> {
    let first = Infinity;
    let last = -Infinity;
    for (const sample of batch.samples) {
      if (sample.timestampUnixMs < first) first = sample.timestampUnixMs;
      if (sample.timestampUnixMs > last) last = sample.timestampUnixMs;
    }
    const needed: number[] = [];
    for (let day = epochDay(first); day <= epochDay(last); day++) if (!this.days.has(day)) needed.push(day);
    if (needed.length > 0) await this.ensureDays(needed);
  }

  /** Creates the missing partitions of the given days in both tables; answers the names it created. */
  private ensureDays(dayList: number[]): Promise<string[]> {
    const run = this.ddl.then(async () => {
      const created: string[] = [];
      for (const day of dayList) {
        for (const table of PARTITIONED) {
          const name = partitionName(table, day);
          if (await this.createPartition(table, name, day)) created.push(name);
        }
        this.days.add(day);
      }
      return created;
    });
    this.ddl = run.catch(() => undefined);
    return run;
  }

  /** False when the partition existed already (another process may have created it a moment before). */
  private async createPartition(table: PartitionedTable, name: string, day: number): Promise<boolean> {
    const [existing] = await this.db.query('select 1 from pg_class where relname = $1', [name]);
    if (existing) return false;
    try {
      await this.db.query(
        `create table ${name} partition of ${table} for values from ('${isoDay(day)}') to ('${isoDay(day + 1)}') ${STORAGE[table]}`,
      );
      return true;
    } catch (error) {
      if (isAlreadyThere(error)) return false;
      throw error;
    }
  }

  /** Detaches and drops every daily partition of `table` that ends at or before the start of `firstKeptDay`. */
  private async dropBefore(table: PartitionedTable, firstKeptDay: number): Promise<string[]> {
    const partitions = await this.db.query<{ relname: string }>(
      'select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = $1::regclass',
      [table],
    );
    const expired = partitions
      .map(({ relname }) => ({ name: relname, day: dayOfPartition(table, relname) }))
      .filter((partition): partition is { name: string; day: number } => partition.day !== undefined && partition.day < firstKeptDay);
    for (const { name, day } of expired) {
      await this.db.knex.transaction(async (trx) => {
        await trx.raw(`alter table ${table} detach partition ${name}`);
        await trx.raw(`drop table ${name}`);
      });
      this.days.delete(day);
    }
    return expired.map(({ name }) => name);
  }
}

interface RollupRow {
  cluster_id: string;
  node_name: string;
  metric: string;
  labels: Record<string, string>;
  minute: Date | string;
  count: string | number;
  sum: number;
  min: number;
  max: number;
  last_value: number;
  last_time: Date | string;
}

interface AgentRow {
  agent_id: string;
  node_name: string;
  cluster_id: string;
  agent_version: string;
  high_water: string | number;
  dropped_samples: string | number;
  last_hello_at: Date | string;
  last_batch_at: Date | string | null;
}

/**
 * How many more samples the agent dropped since its previous stored batch. The count is cumulative since the agent
 * started, so a count lower than before means the agent restarted: all of it is new.
 */
export function droppedIncrease(previous: number, reported: number): number {
  return reported >= previous ? reported - previous : reported;
}

/**
 * The samples as the statement's columns: the distinct series as one JSON array, then series index, value and time
 * as array literals (joined here: pg's own array encoding quotes and escapes every element). The same labels in
 * another key order become two entries, which is harmless: jsonb makes them one series again.
 */
function columnsOf(samples: readonly Sample[]): [string, string, string, string] {
  const series = new Map<string, number>();
  // Samples of one series usually share their labels object (the ingest's decoder makes it so): found by identity
  // first, the series key is built only once per distinct labels object and metric.
  const byLabels = new Map<object, Map<string, number>>();
  const seriesList: string[] = [];
  const indexes: number[] = new Array(samples.length);
  const values: number[] = new Array(samples.length);
  const times: number[] = new Array(samples.length);
  samples.forEach((sample, i) => {
    let metrics = byLabels.get(sample.labels);
    let index = metrics?.get(sample.metric);
    if (index === undefined) {
      const key = seriesKey(sample);
      index = series.get(key);
      if (index === undefined) {
        series.set(key, (index = seriesList.length));
        seriesList.push(JSON.stringify({ metric: sample.metric, labels: sample.labels }));
      }
      if (!metrics) byLabels.set(sample.labels, (metrics = new Map()));
      metrics.set(sample.metric, index);
    }
    indexes[i] = index;
    values[i] = sample.value;
    times[i] = sample.timestampUnixMs;
  });
  return [`[${seriesList.join(',')}]`, `{${indexes.join(',')}}`, `{${values.join(',')}}`, `{${times.join(',')}}`];
}

/**
 * Tells series apart within a batch. Names and values are joined with NUL, which validation refuses in all of them,
 * so two label sets never share a key; this runs once per sample and costs a fraction of JSON.stringify.
 */
function seriesKey(sample: Sample): string {
  let key = sample.metric;
  for (const name in sample.labels) key += `\0${name}\0${sample.labels[name]}`;
  return key;
}

/** A WHERE clause built from `?` conditions, numbered `$1`, `$2`, ... in order. */
function conditions() {
  const parts: string[] = [];
  const params: unknown[] = [];
  return {
    add(condition: string, value: unknown) {
      params.push(value);
      parts.push(condition.replace('?', `$${params.length}`));
    },
    get sql() {
      return parts.join(' and ');
    },
    params,
  };
}

function days(value: number, option: string): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${option} must be a whole number of days, at least 1 (got ${value})`);
  return value;
}

function epochDay(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

function isoDay(day: number): string {
  return `${new Date(day * DAY_MS).toISOString().slice(0, 10)} 00:00:00+00`;
}

/** `telemetry_samples_p20300101` holds 2030-01-01 (UTC). */
function partitionName(table: PartitionedTable, day: number): string {
  return `${table}_p${new Date(day * DAY_MS).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

function dayOfPartition(table: PartitionedTable, name: string): number | undefined {
  const match = new RegExp(`^${table}_p(\\d{4})(\\d{2})(\\d{2})$`).exec(name);
  if (!match) return undefined;
  return epochDay(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
}

/** duplicate_table, or the catalog's unique index when two sessions create the same table at once. */
function isAlreadyThere(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '42P07' || code === '23505';
}
