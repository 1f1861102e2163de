// Telemetry samples on PostgreSQL (or PGlite): batches stored exactly once per agent, 1-minute rollups accumulated
// in the ingest process and folded in every few seconds (exactly once, across crashes and agents moving between
// processes), daily partitions created ahead and dropped after the retention, and the reads the query side uses.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../adapters/postgres/database.js';
import type { Batch, Hello, Sample } from '../adapters/grpc/telemetry-proto.js';
import type { LatestSample, LatestSamples } from '../domain/telemetry.js';

export type { LatestSample } from '../domain/telemetry.js';
import { AgentNotHeld, type BatchStore, type StoreOutcome } from './ingest-server.js';

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
  /** Silent agents whose stored batches were rolled up from the samples. */
  recovered: string[];
}

const DAY_MS = 86_400_000;

/**
 * The partitioned tables, each with its retention. telemetry_samples holds the samples stored one row each before
 * migration 011: read and expired, never written.
 */
type PartitionedTable = 'telemetry_samples' | 'telemetry_sample_batches' | 'telemetry_rollups_1m';
/** The tables written, whose partitions are created ahead. */
const WRITTEN: readonly PartitionedTable[] = ['telemetry_sample_batches', 'telemetry_rollups_1m'];
/**
 * A rollup row is updated by every batch of its minute, never in an indexed column: free room on its page lets
 * PostgreSQL write the new version there without touching the indexes (a HOT update). Samples are only appended.
 */
const STORAGE: Record<PartitionedTable, string> = { telemetry_samples: '', telemetry_sample_batches: '', telemetry_rollups_1m: 'with (fillfactor = 70)' };

/**
 * One statement stores a batch, so it is one transaction: the agent's high-water mark is raised only when the
 * batch's sequence is above it and this process holds the agent's stream (`owner`), and the samples are written only
 * when it was. A resend therefore writes nothing, a batch that arrives late on a stream the agent has left writes
 * nothing, and two streams of the same agent serialise on the agent's row. `unrolled_since` keeps a bound at or below
 * the time of every sample not yet rolled up.
 *
 * The samples are stored as one telemetry_sample_batches row per UTC day the batch touches (one, but for a batch
 * across midnight): each distinct series (metric and labels) once ($7, a jsonb array), then each sample's series
 * index ($8), value ($9) and milliseconds after its row's earliest sample ($10) as arrays. The arrays hold the
 * samples grouped by day, row r taking elements $14[r] to $15[r] and starting at $13[r] (epoch milliseconds). A row
 * per sample, repeating the node, metric and labels, wrote some 260 bytes of WAL and 240 of table a sample, and made
 * every batch's commit wait on writing and syncing them: this writes about 11 and 12. Rollups are not written here:
 * the process accumulates them and folds them in by FLUSH_ROLLUPS.
 */
const STORE_BATCH = `
  with raised as (
    update telemetry_agents agent
       set high_water = $4::bigint, dropped_samples = $5::bigint, last_batch_at = $6::timestamptz,
           unrolled_since = least(agent.unrolled_since, $12::timestamptz)
      from telemetry_agents previous
     where agent.agent_id = $1::text and previous.agent_id = $1::text and agent.high_water < $4::bigint and agent.owner = $11::text
    returning previous.dropped_samples as previous_dropped
  ),
  samples as (
    insert into telemetry_sample_batches (cluster_id, node_name, agent_id, sequence, time, series, series_indexes, offsets_ms, sample_values)
    select $2::text, $3::text, $1::text, $4::bigint, to_timestamp(r.base / 1000), $7::jsonb,
           ($8::integer[])[r.first:r.last], ($10::integer[])[r.first:r.last], ($9::double precision[])[r.first:r.last]
      from unnest($13::double precision[], $14::integer[], $15::integer[]) as r(base, first, last)
     where exists (select from raised)
  )
  select previous_dropped from raised`;

/**
 * How a rollup row takes in more of its series and minute. The last value is the one with the latest time, the
 * greater value between two of the same time, whichever order they arrive in.
 */
const MERGE_ROLLUP = `
  on conflict (cluster_id, node_name, metric, labels_key, minute) do update set
    count = r.count + excluded.count,
    sum = r.sum + excluded.sum,
    min = least(r.min, excluded.min),
    max = greatest(r.max, excluded.max),
    last_value = case when (excluded.last_time, excluded.last_value) > (r.last_time, r.last_value) then excluded.last_value else r.last_value end,
    last_time = greatest(r.last_time, excluded.last_time)`;

/**
 * Folds the accumulated rollups of the agents whose advance was allowed into the rollup table. Rows of several
 * agents of one node may share a series and minute, and one statement may not update a row twice: they are merged
 * first, then written in key order so that two writers touching the same rows cannot deadlock.
 */
const FLUSH_ROLLUPS = `
  insert into telemetry_rollups_1m as r
    (cluster_id, node_name, metric, labels_key, labels, minute, count, sum, min, max, last_value, last_time)
  select cluster_id, node_name, metric, labels::text, labels, to_timestamp(minute / 1000), sum(count), sum(sum), min(min), max(max),
         (max(array[last_ms, last_value]))[2], to_timestamp((max(array[last_ms, last_value]))[1] / 1000)
    from jsonb_to_recordset(?::jsonb) as d(cluster_id text, node_name text, metric text, labels jsonb, minute double precision,
         count bigint, sum double precision, min double precision, max double precision, last_value double precision, last_ms double precision)
   group by cluster_id, node_name, metric, labels, minute
   order by cluster_id, node_name, metric, labels::text, minute
  ${MERGE_ROLLUP}`;

/**
 * Rolls up, from the stored samples, an agent's batches with a sequence in (:from, :through] and samples at or after
 * :since: what a process that held the agent's stream stored and did not fold in. The time bound prunes the days that
 * cannot hold them (a batch row's time is its earliest sample); the samples have no other index. Samples stored one
 * row each before migration 011 are read too. Times are epoch milliseconds, exact in a double.
 */
const RECOVER_ROLLUPS = `
  insert into telemetry_rollups_1m as r
    (cluster_id, node_name, metric, labels_key, labels, minute, count, sum, min, max, last_value, last_time)
  select cluster_id, node_name, metric, labels::text, labels, to_timestamp(floor(ms / 60000) * 60), count(*), sum(value), min(value), max(value),
         (max(array[ms, value]))[2], to_timestamp((max(array[ms, value]))[1] / 1000)
    from (select cluster_id, node_name, metric, labels, value, (extract(epoch from time) * 1000)::double precision as ms
            from telemetry_samples
           where agent_id = :agent and sequence > :from and sequence <= :through and time >= :since::timestamptz
          union all
          select b.cluster_id, b.node_name, d.series->>'metric', d.series->'labels', s.value, (extract(epoch from b.time) * 1000)::double precision + s.offset_ms
            from telemetry_sample_batches b
            cross join lateral unnest(b.series_indexes, b.offsets_ms, b.sample_values) as s(series, offset_ms, value)
            join lateral jsonb_array_elements(b.series) with ordinality as d(series, n) on d.n = s.series + 1
           where b.agent_id = :agent and b.sequence > :from and b.sequence <= :through and b.time >= :since::timestamptz) s
   group by cluster_id, node_name, metric, labels, floor(ms / 60000)
   order by cluster_id, node_name, metric, labels::text, floor(ms / 60000)
  ${MERGE_ROLLUP}`;

export class SampleStore implements BatchStore, LatestSamples {
  readonly sampleRetentionMs: number;
  readonly rollupRetentionMs: number;
  /** Names this process in `telemetry_agents.owner` while it holds an agent's stream. */
  readonly ownerId = randomUUID();
  /** Days (since the epoch, UTC) whose partitions exist in both tables, as far as this process knows. */
  private readonly days = new Set<number>();
  /** Partition DDL runs one at a time in this process. */
  private ddl: Promise<unknown> = Promise.resolve();
  /** The agents whose streams this process holds (as of their hello here), with the rollups not yet folded in. */
  private readonly held = new Map<string, HeldAgent>();
  /** The tail of each agent's queue: its hellos, stores and recoveries in this process run one after another. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Flushes run one at a time. */
  private flushing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: Database,
    options: SampleStoreOptions = {},
  ) {
    this.sampleRetentionMs = days(options.sampleRetentionDays ?? DEFAULT_SAMPLE_RETENTION_DAYS, 'sampleRetentionDays') * DAY_MS;
    this.rollupRetentionMs = days(options.rollupRetentionDays ?? DEFAULT_ROLLUP_RETENTION_DAYS, 'rollupRetentionDays') * DAY_MS;
  }

  /**
   * Records the agent's hello, takes its stream for this process and answers the highest sequence stored for it (0
   * when none). Taking the stream from another process, or from none, first rolls up what was stored and not
   * rolled up: the previous holder's accumulated rollups are refused from then on.
   */
  hello(hello: Hello, at: Date): Promise<number> {
    return this.serially(hello.agentId, async () => {
      const held = this.held.get(hello.agentId);
      const taken = await this.db.knex.transaction(async (trx) => {
        await trx.raw(
          `insert into telemetry_agents (agent_id, node_name, cluster_id, agent_version, last_hello_at) values (?, ?, ?, ?, ?)
           on conflict (agent_id) do nothing`,
          [hello.agentId, hello.nodeName, hello.clusterId, hello.agentVersion, at],
        );
        const agent = await lockAgent(trx, hello.agentId);
        // Held here already: what is stored and not rolled up is in `held`, on its way to the rollups.
        const keeps = held !== undefined && agent!.owner === this.ownerId;
        if (!keeps) await recover(trx, agent!);
        await trx.raw(
          `update telemetry_agents set node_name = ?, cluster_id = ?, agent_version = ?, last_hello_at = ?, owner = ?${keeps ? '' : ', rolled_up_through = high_water, unrolled_since = null'}
            where agent_id = ?`,
          [hello.nodeName, hello.clusterId, hello.agentVersion, at, this.ownerId, hello.agentId],
        );
        return { keeps, highWater: Number(agent!.high_water) };
      });
      if (!taken.keeps) this.held.set(hello.agentId, newHeldAgent(taken.highWater));
      return taken.highWater;
    });
  }

  /**
   * Stores a validated batch unless its sequence is at or below the agent's high-water mark, and accumulates its
   * rollups for the next flush. Throws AgentNotHeld when the agent's stream is held by another process (or, after
   * a failure, by none): the agent has moved on, and its new stream takes over.
   */
  async store(batch: Batch, receivedAt: Date): Promise<StoreOutcome> {
    const firstSampleMs = await this.ensurePartitionsFor(batch);
    return this.serially(batch.agentId, () => {
      const agent = this.held.get(batch.agentId);
      if (!agent) throw new AgentNotHeld(batch.agentId);
      return this.storeHeld(agent, batch, receivedAt, firstSampleMs);
    });
  }

  /**
   * Folds the rollups accumulated since the last flush into telemetry_rollups_1m, in one transaction, and advances
   * each agent's `rolled_up_through` to the highest sequence they cover, where this process still holds the agent
   * and the mark is where it left it. An agent refused there is recovered: taken back from the samples when this
   * process still holds it, forgotten when another one does (that one recovered it from the samples).
   */
  flushRollups(): Promise<void> {
    const run = this.flushing.then(() => this.flushOnce());
    this.flushing = run.catch(() => undefined);
    return run;
  }

  /**
   * Creates the partitions of today and tomorrow (UTC), drops those entirely older than their retention, and rolls
   * up the stored batches of agents silent for SILENT_AGENT_MS whose rollups were never folded in (the process that
   * held them stopped, and they did not come back).
   */
  async maintain(now: Date): Promise<MaintenanceReport> {
    const today = epochDay(now.getTime());
    const created = await this.ensureDays([today, today + 1]);
    const dropped = [
      ...(await this.dropBefore('telemetry_sample_batches', epochDay(now.getTime() - this.sampleRetentionMs))),
      ...(await this.dropBefore('telemetry_samples', epochDay(now.getTime() - this.sampleRetentionMs))),
      ...(await this.dropBefore('telemetry_rollups_1m', epochDay(now.getTime() - this.rollupRetentionMs))),
    ];
    const recovered = await this.recoverSilent(new Date(now.getTime() - SILENT_AGENT_MS));
    return { created, dropped, recovered };
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

  private async storeHeld(agent: HeldAgent, batch: Batch, receivedAt: Date, firstSampleMs: number): Promise<StoreOutcome> {
    const series = indexSeries(batch.samples);
    const [seriesJson, indexes, values, offsets, bases, firsts, lasts] = columnsOf(series, firstSampleMs);
    let raised: { previous_dropped: string | number } | undefined;
    agent.staged = { sequence: batch.sequence, firstSampleMs };
    try {
      [raised] = await this.db.query<{ previous_dropped: string | number }>(
        STORE_BATCH,
        [
          batch.agentId,
          batch.clusterId,
          batch.nodeName,
          batch.sequence,
          batch.droppedSamples,
          receivedAt,
          seriesJson,
          indexes,
          values,
          offsets,
          this.ownerId,
          new Date(firstSampleMs),
          bases,
          firsts,
          lasts,
        ],
        'telemetry-store-batch',
      );
    } catch (error) {
      // The batch may have been stored without this process learning it: its next hello recovers from the samples.
      this.forget(batch.agentId, agent);
      throw error;
    } finally {
      agent.staged = undefined;
    }
    // In the same turn as the commit's answer: a flush sees the batch either staged or accumulated.
    if (raised) {
      accumulate(agent, batch, series);
      return { stored: true, acknowledged: batch.sequence, droppedIncrease: droppedIncrease(Number(raised.previous_dropped), batch.droppedSamples) };
    }
    const [row] = await this.db.query<{ high_water: string | number; owner: string | null }>(
      'select high_water, owner from telemetry_agents where agent_id = $1',
      [batch.agentId],
    );
    if (!row) throw new Error(`telemetry agent ${batch.agentId} has no hello stored: a batch can only follow the agent's hello`);
    if (batch.sequence <= Number(row.high_water)) return { stored: false, acknowledged: Number(row.high_water) };
    this.forget(batch.agentId, agent);
    throw new AgentNotHeld(batch.agentId);
  }

  private async flushOnce(): Promise<void> {
    const taken: FlushedAgent[] = [];
    for (const [agentId, agent] of this.held) {
      if (agent.rollups.size === 0) continue;
      taken.push({ agentId, agent, expected: agent.rolledUpThrough, through: agent.accumulatedThrough, ...unrolledAfterFlush(agent), rollups: agent.rollups });
      agent.rollups = new Map();
    }
    if (taken.length === 0) return;
    let advanced: Set<string>;
    try {
      advanced = await this.writeRollups(taken);
    } catch (error) {
      // Nothing was written: the rollups wait for the next flush, ahead of what accumulated since.
      for (const { agentId, agent, rollups } of taken) if (this.held.get(agentId) === agent) agent.rollups = mergeRollups(rollups, agent.rollups);
      throw error;
    }
    const refused: Promise<void>[] = [];
    for (const { agentId, agent, through } of taken) {
      if (advanced.has(agentId)) agent.rolledUpThrough = Math.max(agent.rolledUpThrough, through);
      else if (this.held.get(agentId) === agent) refused.push(this.serially(agentId, () => this.reclaim(agentId, agent)));
    }
    await Promise.all(refused);
  }

  /**
   * Writes the agents' rollups and advances their marks, in one transaction, for the agents whose advance is allowed;
   * answers those. The rollups are written first, so that the agents' rows are locked only from the advance to the
   * commit, a moment: stores of the same agents wait on those rows, and would otherwise wait for every rollup row.
   * When an advance is refused the transaction is rolled back and written again without that agent (rare: the
   * agent moved to another process). A hello taking an agent over while its old process flushes may deadlock with
   * that flush (the hello holds the agent's row and wants rollup rows the flush holds): PostgreSQL ends one of them,
   * and either way nothing is counted twice (a failed flush keeps its rollups, a failed hello is said again).
   */
  private async writeRollups(taken: FlushedAgent[]): Promise<Set<string>> {
    let candidates = taken;
    while (candidates.length > 0) {
      try {
        await this.db.knex.transaction(async (trx) => {
          const rows: ReturnType<typeof flushRow>[] = [];
          for (const { rollups } of candidates) for (const minutes of rollups.values()) for (const rollup of minutes.values()) rows.push(flushRow(rollup));
          await trx.raw(FLUSH_ROLLUPS, [JSON.stringify(rows)]);
          const advanced = await this.advanceMarks(trx, candidates);
          const refused = candidates.filter(({ agentId }) => !advanced.has(agentId)).map(({ agentId }) => agentId);
          if (refused.length > 0) throw new AdvanceRefused(refused);
        });
        return new Set(candidates.map(({ agentId }) => agentId));
      } catch (error) {
        if (!(error instanceof AdvanceRefused)) throw error;
        candidates = candidates.filter(({ agentId }) => !error.agentIds.includes(agentId));
      }
    }
    return new Set();
  }

  /**
   * Moves each agent's `rolled_up_through` from where this process left it to the highest sequence flushed, where
   * this process still holds the agent; answers the agents moved. Rows are locked in one order by every flush, so
   * that two processes' flushes cannot deadlock.
   */
  private async advanceMarks(trx: Knex.Transaction, candidates: FlushedAgent[]): Promise<Set<string>> {
    await trx.raw('select from telemetry_agents where agent_id in (select jsonb_array_elements_text(?::jsonb)) order by agent_id for update', [
      JSON.stringify(candidates.map(({ agentId }) => agentId)),
    ]);
    const marks = candidates.map(({ agentId, expected, through, staged, unrolledSince }) => ({
      agent_id: agentId,
      expected,
      through,
      staged,
      unrolled_since: unrolledSince === undefined ? null : new Date(unrolledSince).toISOString(),
    }));
    const advanced = rowsOf<{ agent_id: string }>(
      await trx.raw(
        `update telemetry_agents a
            set rolled_up_through = m.through,
                unrolled_since = case when a.high_water = m.through then null
                                      when a.high_water <= m.staged then m.unrolled_since
                                      else a.unrolled_since end
           from jsonb_to_recordset(?::jsonb) as m(agent_id text, expected bigint, through bigint, staged bigint, unrolled_since timestamptz)
          where a.agent_id = m.agent_id and a.owner = ? and a.rolled_up_through = m.expected
         returning a.agent_id`,
        [JSON.stringify(marks), this.ownerId],
      ),
    );
    return new Set(advanced.map((row) => row.agent_id));
  }

  /**
   * After a flush was refused for an agent held here: when this process still holds it, its mark moved without
   * this process knowing (a commit whose answer was lost), so everything stored and not rolled up is rolled up from
   * the samples and the accumulated rollups are dropped; when another process (or none) holds it, it is forgotten.
   */
  private async reclaim(agentId: string, agent: HeldAgent): Promise<void> {
    if (this.held.get(agentId) !== agent) return;
    const stillHeld = await this.db.knex.transaction(async (trx) => {
      const row = await lockAgent(trx, agentId);
      if (row?.owner !== this.ownerId) return undefined;
      await recover(trx, row);
      await trx.raw('update telemetry_agents set rolled_up_through = high_water, unrolled_since = null where agent_id = ?', [agentId]);
      return Number(row.high_water);
    });
    if (stillHeld === undefined) this.forget(agentId, agent);
    else this.held.set(agentId, newHeldAgent(stillHeld));
  }

  /** Rolls up, and releases, the agents silent since `before` with batches stored and not rolled up. */
  private async recoverSilent(before: Date): Promise<string[]> {
    const silent = await this.db.query<{ agent_id: string }>(
      `select agent_id from telemetry_agents
        where rolled_up_through < high_water and greatest(last_hello_at, last_batch_at) < $1 order by agent_id`,
      [before],
    );
    const recovered: string[] = [];
    for (const { agent_id: agentId } of silent) {
      const done = await this.serially(agentId, () =>
        this.db.knex.transaction(async (trx) => {
          const row = await lockAgent(trx, agentId);
          // It may have come back since it was listed.
          if (!row || Number(row.rolled_up_through) >= Number(row.high_water) || new Date(row.last_hello_at) >= before || (row.last_batch_at !== null && new Date(row.last_batch_at) >= before)) return false;
          await recover(trx, row);
          await trx.raw('update telemetry_agents set rolled_up_through = high_water, unrolled_since = null, owner = null where agent_id = ?', [agentId]);
          return true;
        }),
      );
      if (!done) continue;
      this.held.delete(agentId);
      recovered.push(agentId);
    }
    return recovered;
  }

  /** Drops what this process holds of an agent (its accumulated rollups included), unless a newer hello replaced it. */
  private forget(agentId: string, agent: HeldAgent): void {
    if (this.held.get(agentId) === agent) this.held.delete(agentId);
  }

  /** Runs `step` after every earlier step of the same agent in this process. */
  private serially<T>(agentId: string, step: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(agentId) ?? Promise.resolve()).then(step);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(agentId, tail);
    void tail.then(() => {
      if (this.queues.get(agentId) === tail) this.queues.delete(agentId);
    });
    return run;
  }

  /**
   * Samples may be late (an agent resending its buffer) or slightly early: every day a batch touches needs its
   * partitions. Answers the batch's earliest sample time.
   */
  private async ensurePartitionsFor(batch: Batch): Promise<number> {
    let first = Infinity;
    let last = -Infinity;
    for (const sample of batch.samples) {
      if (sample.timestampUnixMs < first) first = sample.timestampUnixMs;
      if (sample.timestampUnixMs > last) last = sample.timestampUnixMs;
    }
    const needed: number[] = [];
    for (let day = epochDay(first); day <= epochDay(last); day++) if (!this.days.has(day)) needed.push(day);
    if (needed.length > 0) await this.ensureDays(needed);
    return first;
  }

  /** Creates the missing partitions of the given days in both tables; answers the names it created. */
  private ensureDays(dayList: number[]): Promise<string[]> {
    const run = this.ddl.then(async () => {
      const created: string[] = [];
      for (const day of dayList) {
        for (const table of WRITTEN) {
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

/** One series over one minute, as this process accumulated it from the batches it stored. */
interface RollupDelta {
  clusterId: string;
  nodeName: string;
  metric: string;
  labels: Record<string, string>;
  minuteMs: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  lastValue: number;
  lastMs: number;
}

/** Rolls back a flush's transaction: the marks of these agents may not advance. */
class AdvanceRefused extends Error {
  constructor(readonly agentIds: string[]) {
    super(`the rollup marks of telemetry agents ${agentIds.join(', ')} may not advance: another process holds them`);
  }
}

/** Rollups by series (metric and labels, as seriesKey makes it) and minute (epoch milliseconds). */
type SeriesRollups = Map<string, Map<number, RollupDelta>>;

/** An agent whose stream this process holds. */
interface HeldAgent {
  /** `rolled_up_through` as this process last wrote or read it. */
  rolledUpThrough: number;
  /** The highest sequence stored through this process: `rollups` cover every batch above rolledUpThrough up to it. */
  accumulatedThrough: number;
  rollups: SeriesRollups;
  /** The batch being stored, if one is: the only one a flush cannot see in `rollups` yet may find committed. */
  staged: { sequence: number; firstSampleMs: number } | undefined;
}

/** An agent's rollups taken by a flush. */
interface FlushedAgent {
  agentId: string;
  agent: HeldAgent;
  expected: number;
  through: number;
  /** The highest sequence that may be stored and not in this flush, and the earliest sample time it may hold. */
  staged: number;
  unrolledSince: number | undefined;
  rollups: SeriesRollups;
}

interface AgentLockRow {
  agent_id: string;
  high_water: string | number;
  rolled_up_through: string | number;
  owner: string | null;
  unrolled_since: Date | string | null;
  last_hello_at: Date | string;
  last_batch_at: Date | string | null;
}

/**
 * How long an agent with batches not rolled up may be silent before maintenance rolls them up from the samples. A
 * process holding a live agent folds its rollups in every few seconds, so only a stopped process leaves them.
 */
export const SILENT_AGENT_MS = 5 * 60_000;

function newHeldAgent(rolledUpThrough: number): HeldAgent {
  return { rolledUpThrough, accumulatedThrough: rolledUpThrough, rollups: new Map(), staged: undefined };
}

/** What lies beyond a flush that takes the agent's rollups now: at most the batch being stored. */
function unrolledAfterFlush(agent: HeldAgent): { staged: number; unrolledSince: number | undefined } {
  return agent.staged ? { staged: agent.staged.sequence, unrolledSince: agent.staged.firstSampleMs } : { staged: agent.accumulatedThrough, unrolledSince: undefined };
}

async function lockAgent(trx: Knex.Transaction, agentId: string): Promise<AgentLockRow | undefined> {
  const [row] = rowsOf<AgentLockRow>(
    await trx.raw(
      'select agent_id, high_water, rolled_up_through, owner, unrolled_since, last_hello_at, last_batch_at from telemetry_agents where agent_id = ? for update',
      [agentId],
    ),
  );
  return row;
}

/** Rolls up the agent's batches stored and not rolled up, from the samples; the caller holds the agent's row. */
async function recover(trx: Knex.Transaction, agent: AgentLockRow): Promise<void> {
  if (Number(agent.rolled_up_through) >= Number(agent.high_water)) return;
  // Never null here, as every batch stored sets it; were it, every day would be read rather than samples missed.
  const since = agent.unrolled_since === null ? '-infinity' : new Date(agent.unrolled_since).toISOString();
  await trx.raw(RECOVER_ROLLUPS, { agent: agent.agent_id, from: agent.rolled_up_through, through: agent.high_water, since });
}

function rowsOf<Row>(result: unknown): Row[] {
  return (result as { rows: Row[] }).rows;
}

/** Adds a stored batch's samples to the agent's rollups, by series and minute. */
function accumulate(agent: HeldAgent, batch: Batch, { series, indexes, values, times }: BatchSeries): void {
  // Samples of one series mostly fall in one minute: the last rollup of each series is kept at hand.
  const current: (RollupDelta | undefined)[] = new Array(series.length);
  for (let i = 0; i < indexes.length; i++) {
    const index = indexes[i]!;
    const value = values[i]!;
    const ms = times[i]!;
    const minuteMs = Math.floor(ms / 60_000) * 60_000;
    let rollup = current[index];
    if (rollup?.minuteMs !== minuteMs) {
      const { metric, labels, key } = series[index]!;
      // `key` was hashed once already, finding the series in the batch: V8 keeps a string's hash.
      let minutes = agent.rollups.get(key);
      if (!minutes) agent.rollups.set(key, (minutes = new Map()));
      rollup = minutes.get(minuteMs);
      if (!rollup) {
        rollup = { clusterId: batch.clusterId, nodeName: batch.nodeName, metric, labels, minuteMs, count: 0, sum: 0, min: Infinity, max: -Infinity, lastValue: 0, lastMs: -Infinity };
        minutes.set(minuteMs, rollup);
      }
      current[index] = rollup;
    }
    rollup.count++;
    rollup.sum += value;
    if (value < rollup.min) rollup.min = value;
    if (value > rollup.max) rollup.max = value;
    if (ms > rollup.lastMs || (ms === rollup.lastMs && value > rollup.lastValue)) {
      rollup.lastMs = ms;
      rollup.lastValue = value;
    }
  }
  agent.accumulatedThrough = batch.sequence;
}

/** `older` and `newer` rollups as one map (a flush that failed hands its rollups back). */
function mergeRollups(older: SeriesRollups, newer: SeriesRollups): SeriesRollups {
  for (const [key, minutes] of newer) {
    const olderMinutes = older.get(key);
    if (olderMinutes) for (const rollup of minutes.values()) mergeRollup(olderMinutes, rollup);
    else older.set(key, minutes);
  }
  return older;
}

function mergeRollup(minutes: Map<number, RollupDelta>, rollup: RollupDelta): void {
  const before = minutes.get(rollup.minuteMs);
  if (!before) {
    minutes.set(rollup.minuteMs, rollup);
    return;
  }
  before.count += rollup.count;
  before.sum += rollup.sum;
  before.min = Math.min(before.min, rollup.min);
  before.max = Math.max(before.max, rollup.max);
  if (rollup.lastMs > before.lastMs || (rollup.lastMs === before.lastMs && rollup.lastValue > before.lastValue)) {
    before.lastMs = rollup.lastMs;
    before.lastValue = rollup.lastValue;
  }
}

/** A rollup as FLUSH_ROLLUPS reads it. */
function flushRow(rollup: RollupDelta) {
  return {
    cluster_id: rollup.clusterId,
    node_name: rollup.nodeName,
    metric: rollup.metric,
    labels: rollup.labels,
    minute: rollup.minuteMs,
    count: rollup.count,
    sum: rollup.sum,
    min: rollup.min,
    max: rollup.max,
    last_value: rollup.lastValue,
    last_ms: rollup.lastMs,
  };
}

/**
 * How many more samples the agent dropped since its previous stored batch. The count is cumulative since the agent
 * started, so a count lower than before means the agent restarted: all of it is new.
 */
export function droppedIncrease(previous: number, reported: number): number {
  return reported >= previous ? reported - previous : reported;
}

/** A series as the store refers to it: its key (seriesKey) and its element of the statement's series array. */
interface SeriesText {
  key: string;
  json: string;
}

/** The distinct series of a batch, and each sample's series index, value and time as columns. */
interface BatchSeries {
  series: { metric: string; labels: Record<string, string>; key: string; json: string }[];
  indexes: number[];
  values: number[];
  times: number[];
}

/**
 * The key and JSON text of series whose labels object is frozen (the ingest's decoder shares one per series across
 * batches), by labels object and metric: a node sends the same series in every batch, and building their text again
 * for each batch was a good part of storing it. Held weakly, so the series of a decoder's forgotten labels go too.
 */
const seriesTexts = new WeakMap<object, Map<string, SeriesText>>();

function seriesTextOf(sample: Sample): SeriesText {
  const frozen = Object.isFrozen(sample.labels);
  let metrics = frozen ? seriesTexts.get(sample.labels) : undefined;
  let text = metrics?.get(sample.metric);
  if (text) return text;
  text = { key: seriesKey(sample), json: JSON.stringify({ metric: sample.metric, labels: sample.labels }) };
  if (frozen) {
    if (!metrics) seriesTexts.set(sample.labels, (metrics = new Map()));
    metrics.set(sample.metric, text);
  }
  return text;
}

/**
 * Finds the distinct series of a batch and lays its samples out as columns, in one pass. Samples of one series
 * usually share their labels object (the ingest's decoder makes it so): found by identity first, the series key is
 * looked up only once per distinct labels object and metric.
 */
function indexSeries(samples: readonly Sample[]): BatchSeries {
  const byKey = new Map<string, number>();
  const byLabels = new Map<object, Map<string, number>>();
  const series: BatchSeries['series'] = [];
  const indexes: number[] = new Array(samples.length);
  const values: number[] = new Array(samples.length);
  const times: number[] = new Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const sample = samples[i]!;
    let metrics = byLabels.get(sample.labels);
    let index = metrics?.get(sample.metric);
    if (index === undefined) {
      const { key, json } = seriesTextOf(sample);
      index = byKey.get(key);
      if (index === undefined) {
        byKey.set(key, (index = series.length));
        series.push({ metric: sample.metric, labels: sample.labels, key, json });
      }
      if (!metrics) byLabels.set(sample.labels, (metrics = new Map()));
      metrics.set(sample.metric, index);
    }
    indexes[i] = index;
    values[i] = sample.value;
    times[i] = sample.timestampUnixMs;
  }
  return { series, indexes, values, times };
}

/**
 * The batch as STORE_BATCH's arguments $7 to $10 and $13 to $15: the distinct series as one JSON array; series index,
 * value and milliseconds after the row's earliest sample as array literals (joined here: pg's own array encoding
 * quotes and escapes every element), grouped by UTC day; and each day's row as its earliest sample and the first and
 * last (1-based) positions of its samples in the arrays.
 */
function columnsOf(columns: BatchSeries, firstSampleMs: number): [string, string, string, string, string, string, string] {
  let seriesJson = '';
  for (const { json } of columns.series) seriesJson += seriesJson === '' ? json : `,${json}`;
  const firstDay = epochDay(firstSampleMs);
  const days = columns.times.some((ms) => epochDay(ms) !== firstDay) ? byDay(columns) : { ...columns, rows: [{ base: firstSampleMs, first: 1, last: columns.times.length }] };
  const { indexes, values, times, rows } = days;
  // Samples of a batch share a few times (one per scrape): each distinct offset is written once.
  let offsets = '';
  let previous = NaN;
  let previousText = '';
  for (let row = 0, i = 0; row < rows.length; row++) {
    const { base, last } = rows[row]!;
    for (; i < last; i++) {
      const offset = times[i]! - base;
      if (offset !== previous) {
        previous = offset;
        previousText = String(offset);
      }
      offsets += i === 0 ? previousText : `,${previousText}`;
    }
  }
  return [
    `[${seriesJson}]`,
    `{${indexes.join(',')}}`,
    `{${values.join(',')}}`,
    `{${offsets}}`,
    `{${rows.map(({ base }) => base).join(',')}}`,
    `{${rows.map(({ first }) => first).join(',')}}`,
    `{${rows.map(({ last }) => last).join(',')}}`,
  ];
}

/**
 * A batch across midnight: its samples' columns grouped by UTC day (in batch order within a day), and each day's
 * row: its earliest sample and the 1-based positions of its first and last samples.
 */
function byDay({ indexes, values, times }: BatchSeries): Pick<BatchSeries, 'indexes' | 'values' | 'times'> & { rows: { base: number; first: number; last: number }[] } {
  const days = new Map<number, number[]>();
  times.forEach((ms, i) => {
    const day = epochDay(ms);
    let positions = days.get(day);
    if (!positions) days.set(day, (positions = []));
    positions.push(i);
  });
  const grouped = { indexes: [] as number[], values: [] as number[], times: [] as number[], rows: [] as { base: number; first: number; last: number }[] };
  for (const day of [...days.keys()].sort((a, b) => a - b)) {
    const first = grouped.times.length + 1;
    let base = Infinity;
    for (const i of days.get(day)!) {
      grouped.indexes.push(indexes[i]!);
      grouped.values.push(values[i]!);
      grouped.times.push(times[i]!);
      base = Math.min(base, times[i]!);
    }
    grouped.rows.push({ base, first, last: grouped.times.length });
  }
  return grouped;
}

/**
 * Tells series apart, within a batch and across batches. Names and values are joined with NUL, which validation
 * refuses in all of them, so two label sets never share a key; this runs once per series and batch and costs a
 * fraction of JSON.stringify. The same labels in another key order get another key, which is harmless: the flush
 * groups by the labels as jsonb, which makes them one series again.
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
