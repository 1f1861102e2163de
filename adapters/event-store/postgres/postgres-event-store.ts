// The event store on PostgreSQL or PGlite: one prepared statement per append, gap-safe global reads.
import pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import {
  comparePositions,
  ConcurrencyConflict,
  DuplicateEventConflict,
  MAX_CORRELATED_EVENTS,
  validate,
  type AppendResult,
  type CorrelationReader,
  type CountAfterOptions,
  type EventFilter,
  type EventStore,
  type EventToAppend,
  type ExpectedRevision,
  type Position,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type RecordedEvent,
  type StreamAppend,
  type StreamMetadata,
  type SubscribeOptions,
  type Subscription,
} from '../../../domain/event-store.js';
import type { Database } from '../../postgres/database.js';
import { ChangeSignal } from '../change-signal.js';
import { PgliteStatistics } from './pglite-statistics.js';
import { pollingSubscription, type PollingOptions, type SubscriptionPage } from '../polling-subscription.js';
import { SharedTail } from '../shared-tail.js';
import { decodePosition, encodePosition } from '../position.js';
import { DUPLICATES_SQL, appendManySql } from './append.js';
import { eventStoreMigrated, migrateEventStore } from './migrate.js';

export const NOTIFY_CHANNEL = 'sentinel_events';

/** Rounds of deciding again when concurrent appends to one stream keep winning the race. */
const MAX_APPEND_ATTEMPTS = 100;

export interface PostgresEventStoreOptions {
  /** Events fetched per subscription read. */
  batchSize?: number;
  /** Rows a stream-prefix filtered read looks at before it returns a checkpoint. */
  scanWindow?: number;
  minWaitMs?: number;
  maxWaitMs?: number;
  /**
   * Tell subscribers in other processes about appends with NOTIFY (PostgreSQL only); without it they find new
   * events by polling, up to `maxWaitMs` late.
   */
  notifyOtherProcesses?: boolean;
  /** At most one NOTIFY per this many milliseconds, however many appends happen. */
  notifyIntervalMs?: number;
  /**
   * Single-stream appends that run at once, each its own statement and commit; those that come meanwhile wait and
   * go together in one statement (see `append`).
   */
  appendStatements?: number;
}

const DEFAULT_APPEND_STATEMENTS = 2;

type BigIntLike = string | number | bigint;

interface EventRow {
  id: string;
  stream: string;
  revision: BigIntLike;
  type: string;
  schema_version: number;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  recorded_ms: number;
  tx_id: BigIntLike;
  seq: BigIntLike;
}

/** A row of a global read, its position made by the server (see `readAllColumns`). */
interface ReadAllRow extends Omit<EventRow, 'tx_id' | 'seq'> {
  position: string;
}

/** An append waiting for a statement. */
interface WaitingAppend {
  stream: string;
  events: EventToAppend[];
  expected: ExpectedRevision;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/** The most appends, and events, one statement stores together: it stays as bounded as one multi-stream append. */
const MAX_GROUPED_APPENDS = 100;
const MAX_GROUPED_EVENTS = 1000;

/** How many of the waiting appends, from the first, the next statement takes: at least one. */
function groupSize(waiting: readonly WaitingAppend[]): number {
  let events = waiting[0]?.events.length ?? 0;
  let size = 1;
  while (size < waiting.length && size < MAX_GROUPED_APPENDS && events + waiting[size]!.events.length <= MAX_GROUPED_EVENTS) {
    events += waiting[size]!.events.length;
    size += 1;
  }
  return size;
}

interface SharedRead {
  /** Settles when the read does, whatever its outcome. */
  done: Promise<void>;
  /** The read that starts once this one is done, for the callers that came while it ran. */
  next: Promise<EventRow[]> | undefined;
}

function noop(): void {}

interface AppendRow {
  revision: BigIntLike;
  tx_id: string;
  seq: BigIntLike;
}

function eventColumns(table = ''): string {
  const t = table ? `${table}.` : '';
  // Ordering columns keep their types (an alias of the same name would make ORDER BY sort text); the drivers
  // hand bigint and xid8 over as strings or numbers, and the mapping accepts either.
  return `${t}id, ${t}stream, ${t}revision, ${t}type, ${t}schema_version, ${t}data, ${t}metadata,
    (extract(epoch from ${t}recorded_at) * 1000)::float8 as recorded_ms, ${t}tx_id, ${t}seq`;
}

/**
 * The columns of a global read, with the position formatted on the server from the columns the log is ordered by:
 * on the client it took two BigInts and their hex text an event, about a tenth of reading one. A transaction id
 * stays below 2^63 until its epoch has wrapped two billion times, so it fits a bigint.
 */
function readAllColumns(table = ''): string {
  const t = table ? `${table}.` : '';
  return `${t}id, ${t}stream, ${t}revision, ${t}type, ${t}schema_version, ${t}data, ${t}metadata,
    (extract(epoch from ${t}recorded_at) * 1000)::float8 as recorded_ms,
    ${positionText(table)} as position`;
}

/** A row's position as text, as `encodePosition` writes it. */
function positionText(table = ''): string {
  const t = table ? `${table}.` : '';
  return `lpad(to_hex(${t}tx_id::text::bigint), 16, '0') || '-' || lpad(to_hex(${t}seq), 16, '0')`;
}

/** Events of transactions older than every running transaction: nothing can commit behind them any more. */
const VISIBLE = `tx_id < (select pg_snapshot_xmin(pg_current_snapshot()))`;

const START: [bigint, bigint] = [0n, 0n];

/** Reports `unsettled()` on each scrape: how far the visible horizon trails the newest appends. */
export function registerHorizonMetrics(store: PostgresEventStore, registry: Registry): void {
  const read = once(() => store.unsettled());
  new Gauge({
    name: 'sentinel_event_store_unsettled_events',
    help: 'Committed events not yet visible to readers because an older transaction on the server is still open',
    registers: [registry],
    async collect() {
      this.set((await read()).events);
    },
  });
  new Gauge({
    name: 'sentinel_event_store_visibility_lag_seconds',
    help: 'Age of the oldest committed event not yet visible to readers (0 when every event is visible)',
    registers: [registry],
    async collect() {
      this.set((await read()).oldestSeconds);
    },
  });
}

/** One read shared by the gauges of one scrape. */
function once<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= read().finally(() => setTimeout(() => (pending = undefined), 100));
    return pending;
  };
}

export class PostgresEventStore implements EventStore, CorrelationReader {
  private readonly signal = new ChangeSignal();
  private readonly polling: PollingOptions;
  private readonly scanWindow: number;
  private readonly notifyOthers: boolean;
  private listener: CrossProcessListener | undefined;
  private readonly notifyIntervalMs: number;
  private notifyTimer: NodeJS.Timeout | undefined;
  /** PGlite only: it has no autovacuum to keep the planner's statistics current. */
  private readonly statistics: PgliteStatistics | undefined;
  /** Appends that wait for one of the `appendStatements` running to end, in the order they came. */
  private readonly waitingAppends: WaitingAppend[] = [];
  private appendsRunning = 0;
  private readonly appendStatements: number;
  /** The stream read under way for each distinct request, and the one that waits for it to end. */
  private readonly streamReads = new Map<string, SharedRead>();
  /** The read of the head of the log that the caught-up subscriptions share. */
  private readonly tail: SharedTail;

  private constructor(
    private readonly db: Database,
    options: PostgresEventStoreOptions,
  ) {
    this.polling = {
      batchSize: options.batchSize ?? 1000,
      minWaitMs: options.minWaitMs ?? 5,
      maxWaitMs: options.maxWaitMs ?? 1000,
    };
    this.scanWindow = options.scanWindow ?? 10_000;
    this.notifyOthers = db.kind === 'postgres' && (options.notifyOtherProcesses ?? true);
    this.notifyIntervalMs = options.notifyIntervalMs ?? 10;
    this.statistics = db.kind === 'pglite' ? new PgliteStatistics(db) : undefined;
    this.appendStatements = Math.max(1, options.appendStatements ?? DEFAULT_APPEND_STATEMENTS);
    this.tail = new SharedTail((after, limit) => this.readAll({ after, limit }), this.signal, this.polling.batchSize);
  }

  /** Applies the event store's migrations, then returns the store. */
  static async open(db: Database, options: PostgresEventStoreOptions = {}): Promise<PostgresEventStore> {
    await migrateEventStore(db.knex);
    const store = new PostgresEventStore(db, options);
    await store.statistics?.start();
    return store;
  }

  /**
   * Group commit: up to `appendStatements` appends run at once, each as its own statement. Appends that come while
   * that many run wait, and go together as one statement (`sentinel_append_many`) when one ends: one round trip and
   * one commit for all of them, in the order they came. Each keeps its own expected state and its own answer. Should
   * the statement be rolled back (an expectation that does not hold, a race, a duplicate, a bad event), each of its
   * appends runs again on its own, so that only the appends at fault fail, with the error they would have met alone.
   * The events of the appends in one statement share its transaction, so readers see all of them or none; each
   * append's events stay together, in order.
   */
  async append(stream: string, events: EventToAppend[], options: { expected?: ExpectedRevision } = {}): Promise<AppendResult> {
    const expected = options.expected ?? 'any';
    validate.append(stream, events, expected);
    return new Promise((resolve, reject) => {
      this.waitingAppends.push({ stream, events, expected, resolve, reject });
      this.sendAppends();
    });
  }

  private sendAppends(): void {
    while (this.appendsRunning < this.appendStatements && this.waitingAppends.length > 0) {
      const group = this.waitingAppends.splice(0, groupSize(this.waitingAppends));
      this.appendsRunning += 1;
      void this.storeGroup(group).finally(() => {
        this.appendsRunning -= 1;
        this.sendAppends();
      });
    }
  }

  private async storeGroup(group: WaitingAppend[]): Promise<void> {
    const alone = (waiting: WaitingAppend) => this.appendAlone(waiting.stream, waiting.events, waiting.expected).then(waiting.resolve, waiting.reject);
    if (group.length === 1) return alone(group[0]!);
    let outcome: AppendRow[] | AppendFailure | undefined;
    try {
      outcome = await this.appendInOneStatement(manyRequest(group), group);
    } catch {
      outcome = undefined;
    }
    if (!Array.isArray(outcome)) {
      // Nothing of the group was stored: each append decides again on its own, and meets its own outcome.
      await Promise.all(group.map(alone));
      return;
    }
    this.announce(group.reduce((sum, { events }) => sum + events.length, 0));
    group.forEach((waiting, i) => waiting.resolve(this.result(outcome[i]!, false)));
  }

  private async appendAlone(stream: string, events: EventToAppend[], expected: ExpectedRevision): Promise<AppendResult> {
    const statement = appendStatement(stream, events, expected);
    for (let attempt = 1; ; attempt++) {
      let rows: AppendRow[] | undefined;
      try {
        rows = await this.db.query<AppendRow>(statement.text, statement.params, statement.name);
      } catch (error) {
        if (!lostRace(error)) throw error;
      }
      if (rows?.length) {
        const last = rows.reduce((a, b) => (Number(b.revision) > Number(a.revision) ? b : a));
        this.announce(events.length);
        return this.result(last, false);
      }
      // A conflict, or a race lost to another append of this stream: either this append is a retry of one
      // already stored, or the stream has moved on.
      const stored = await this.storedEvents(stream, events);
      if (stored.found > 0) {
        if (stored.found < events.length || !stored.same) {
          throw new DuplicateEventConflict(
            stream,
            events.map((e) => e.id),
          );
        }
        return this.result(stored, true);
      }
      const stillHolds = expected === 'any' || (expected === 'stream_exists' && stored.current !== 'no_stream');
      if (!rows && stillHolds && attempt < MAX_APPEND_ATTEMPTS) continue;
      throw new ConcurrencyConflict(stream, expected, stored.current);
    }
  }

  async appendMany(appends: StreamAppend[]): Promise<AppendResult[]> {
    const requests = validate.appendMany(appends);
    const text = manyRequest(requests);
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.appendInOneStatement(text, requests);
      if (Array.isArray(outcome)) {
        this.announce(requests.reduce((sum, { events }) => sum + events.length, 0));
        return outcome.map((last) => this.result(last, false));
      }
      // Everything was rolled back. As for one stream: either the whole call is a retry of one already stored,
      // or a stream has moved on.
      const stored = await Promise.all(requests.map(({ stream, events }) => this.storedEvents(stream, events)));
      if (stored.every((s, i) => s.found === requests[i]!.events.length && s.same)) {
        return stored.map((s) => this.result(s, true));
      }
      const partly = stored.findIndex((s) => s.found > 0);
      if (partly >= 0) {
        const { stream, events } = requests[partly]!;
        throw new DuplicateEventConflict(stream, events.map((e) => e.id));
      }
      const { stream, expected } = requests[outcome.failed]!;
      // A race lost to another append, or a deadlock with another multi-stream append, says nothing about the
      // expected states: decide again, and the statements check them anew.
      if (outcome.reason !== 'expectation' && attempt < MAX_APPEND_ATTEMPTS) continue;
      throw new ConcurrencyConflict(stream, expected, stored[outcome.failed]!.current);
    }
  }

  /**
   * Runs every stream's append, in the order given, as one statement (`sentinel_append_many`, migration 003): all of
   * them commit, or none does, in one round trip. The transaction's one id orders every event of the call, so
   * readers see all of them or none.
   */
  private async appendInOneStatement(appends: string, requests: readonly StreamAppend[]): Promise<AppendRow[] | AppendFailure> {
    let rows: ManyRow[];
    try {
      rows = await this.db.query<ManyRow>(APPEND_MANY_SQL, [appends], 'sentinel_append_many');
    } catch (error) {
      const { code, detail } = (error ?? {}) as { code?: string; detail?: string };
      if (code === EXPECTATION_FAILED) return { failed: Number(detail), reason: 'expectation' };
      // Which stream the race or the deadlock was on matters only to the error that ends the attempts.
      const failed = Math.max(0, requests.findIndex(({ stream }) => detail?.includes(`=(${stream}, `)));
      if (lostRace(error)) return { failed, reason: 'race' };
      if (deadlocked(error)) return { failed, reason: 'deadlock' };
      throw error;
    }
    const lasts: AppendRow[] = [];
    for (const row of rows) {
      const last = lasts[row.append_index];
      if (!last || Number(row.stored_revision) > Number(last.revision)) {
        lasts[row.append_index] = { revision: row.stored_revision, tx_id: row.stored_tx_id, seq: row.stored_seq };
      }
    }
    return lasts;
  }

  private async storedEvents(stream: string, events: EventToAppend[]) {
    const [row] = await this.db.query<{
      found: BigIntLike;
      same: boolean;
      current: BigIntLike | null;
      revision: BigIntLike | null;
      tx_id: string | null;
      seq: BigIntLike | null;
    }>(DUPLICATES_SQL, [stream, JSON.stringify(events.map(({ id, type, data }) => ({ id, type, data })))]);
    return {
      found: Number(row!.found),
      same: row!.same,
      current: row!.current == null ? ('no_stream' as const) : Number(row!.current),
      revision: row!.revision,
      tx_id: row!.tx_id,
      seq: row!.seq,
    };
  }

  /**
   * Identical reads of one stream that arrive while such a read is under way share the next one, which starts when
   * it ends: each caller gets what a read begun after its call sees (every append acknowledged before it, as a read
   * of its own would), and a stream that every command reads (the policy set, a cluster) costs a round trip or two
   * per turn of the clients rather than one for each of them. The events are the caller's own to change.
   */
  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    validate.readStream(stream, options);
    const key = JSON.stringify([stream, options.from ?? null, options.to ?? null, options.direction === 'backwards', options.limit ?? null]);
    const running = this.streamReads.get(key);
    if (running) {
      running.next ??= running.done.then(() => this.startStreamRead(key, stream, options));
      return (await running.next).map((row) => toRecordedEvent(row, true));
    }
    return (await this.startStreamRead(key, stream, options)).map((row) => toRecordedEvent(row));
  }

  private startStreamRead(key: string, stream: string, options: ReadStreamOptions): Promise<EventRow[]> {
    const rows = this.queryStream(stream, options);
    const read: SharedRead = { done: rows.then(noop, noop), next: undefined };
    this.streamReads.set(key, read);
    // Runs before the callbacks that start the next read, which then takes the key.
    void read.done.then(() => {
      if (this.streamReads.get(key) === read) this.streamReads.delete(key);
    });
    return rows;
  }

  private queryStream(stream: string, options: ReadStreamOptions): Promise<EventRow[]> {
    const backwards = options.direction === 'backwards';
    const [lowest, highest] = backwards ? [options.to, options.from] : [options.from, options.to];
    return this.db.query<EventRow>(
      `with m as (
         select coalesce((select truncate_before from sentinel_stream_metadata where stream = $1), 0) as truncate_before,
                (select max_age from sentinel_stream_metadata where stream = $1) as max_age,
                (select max_count from sentinel_stream_metadata where stream = $1) as max_count,
                (select revision from sentinel_events where stream = $1 order by revision desc limit 1) as current)
       select ${eventColumns('e')}
         from sentinel_events e, m
        where e.stream = $1
          and e.revision >= greatest(coalesce($2::bigint, 0), m.truncate_before)
          and ($3::bigint is null or e.revision <= $3::bigint)
          and (m.max_count is null or e.revision > m.current - m.max_count)
          and (m.max_age is null or e.recorded_at >= now() - make_interval(secs => m.max_age))
        order by e.revision ${backwards ? 'desc' : 'asc'}
        limit $4`,
      [stream, lowest ?? null, highest ?? null, options.limit ?? null],
      backwards ? 'sentinel_read_stream_backwards' : 'sentinel_read_stream',
    );
  }

  /** Through the (correlation id, tx_id, seq) index of migration 002; hidden as `readStream` hides them. */
  async readCorrelated(correlationId: string, options: { limit?: number } = {}): Promise<RecordedEvent[]> {
    validate.correlationId(correlationId, options.limit);
    const rows = await this.db.query<EventRow>(
      `select ${eventColumns('e')}
         from sentinel_events e
         left join sentinel_stream_metadata m on m.stream = e.stream
        where e.metadata ->> 'correlationId' = $1
          and e.revision >= coalesce(m.truncate_before, 0)
          and (m.max_age is null or e.recorded_at >= now() - make_interval(secs => m.max_age))
          and (m.max_count is null
               or e.revision > (select c.revision from sentinel_events c where c.stream = e.stream order by c.revision desc limit 1) - m.max_count)
        order by e.tx_id, e.seq
        limit $2`,
      [correlationId, options.limit ?? MAX_CORRELATED_EVENTS],
      'sentinel_read_correlated',
    );
    return rows.map((row) => toRecordedEvent(row));
  }

  async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
    validate.filter(options.filter);
    validate.limit(options.limit);
    const after = options.after === undefined ? START : decodePosition(options.after);
    return this.readAllAfter(after, options.filter, options.limit ?? this.polling.batchSize, options.after);
  }

  async countAfter(after: Position | undefined, options: CountAfterOptions = {}): Promise<number> {
    validate.filter(options.filter);
    validate.limit(options.limit);
    const [txId, seq] = after === undefined ? START : decodePosition(after);
    const types = options.filter?.types?.length ? options.filter.types : null;
    const prefixes = options.filter?.streamPrefixes?.length ? options.filter.streamPrefixes.map((p) => `${escapeLike(p)}%`) : null;
    const params: unknown[] = [txId.toString(), seq.toString(), options.limit ?? null];
    if (types) params.push(types);
    if (prefixes) params.push(prefixes);
    const [row] = await this.db.query<{ count: BigIntLike }>(countSql(types !== null, prefixes !== null), params);
    return Number(row!.count);
  }

  async isSettled(position: Position): Promise<boolean> {
    const [txId] = decodePosition(position);
    // The same horizon as VISIBLE: no transaction older than it is still running.
    const [row] = await this.db.query<{ settled: boolean }>(
      'select $1::xid8 < pg_snapshot_xmin(pg_current_snapshot()) as settled',
      [txId.toString()],
      'sentinel_is_settled',
    );
    return row!.settled;
  }

  /**
   * Committed events that readers cannot see yet because an older transaction, anywhere on the server, is still
   * running: how many, and how long ago the oldest was written. A long transaction delays every subscription.
   */
  async unsettled(): Promise<{ events: number; oldestSeconds: number }> {
    const [row] = await this.db.query<{ events: BigIntLike; oldest_seconds: number | null }>(
      `select count(*) as events, extract(epoch from now() - min(recorded_at))::float8 as oldest_seconds
         from sentinel_events where tx_id >= pg_snapshot_xmin(pg_current_snapshot())`,
    );
    return { events: Number(row!.events), oldestSeconds: Math.max(0, row!.oldest_seconds ?? 0) };
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    validate.filter(options.filter);
    validate.limit(options.batchSize);
    if (options.after !== undefined) decodePosition(options.after);
    if (this.notifyOthers && !this.listener) {
      this.listener = new CrossProcessListener(this.db.connectionString!, this.signal);
      this.listener.start();
    }
    const { filter } = options;
    return pollingSubscription((after, limit, since) => this.subscriptionRead(after, filter, limit, since), this.signal, options, this.polling);
  }

  /**
   * A subscription's read: shared with the others at the same place near the head of the log, else (and after a
   * wait that timed out) its own. Its own read, by type or of everything, that comes back short has reached the
   * visible head (a read by stream prefix alone looks at a window of the log, so a short one may not have).
   */
  private async subscriptionRead(after: Position | undefined, filter: EventFilter | undefined, limit: number, since: number | undefined): Promise<SubscriptionPage> {
    if (since !== undefined && this.tail.serves(after)) return this.tail.read(after!, filter, limit, since);
    const read = await this.readAll({ after, filter, limit });
    const atHead = read.events.length < limit && !(filter?.streamPrefixes?.length && !filter.types?.length);
    if (atHead) this.tail.reached(read.checkpoint);
    return { ...read, atHead };
  }

  async getStreamMetadata(stream: string): Promise<StreamMetadata> {
    validate.stream(stream);
    const [row] = await this.db.query<{
      truncate_before: string | null;
      max_age: string | null;
      max_count: string | null;
      custom: Record<string, unknown> | null;
    }>(
      `select truncate_before::text, max_age::text, max_count::text, custom from sentinel_stream_metadata where stream = $1`,
      [stream],
    );
    const metadata: StreamMetadata = {};
    if (row?.truncate_before != null) metadata.truncateBefore = Number(row.truncate_before);
    if (row?.max_age != null) metadata.maxAge = Number(row.max_age);
    if (row?.max_count != null) metadata.maxCount = Number(row.max_count);
    if (row?.custom != null) metadata.custom = row.custom;
    return metadata;
  }

  async setStreamMetadata(stream: string, metadata: StreamMetadata): Promise<void> {
    validate.stream(stream);
    validate.metadata(metadata);
    await this.db.query(
      `insert into sentinel_stream_metadata as s (stream, truncate_before, max_age, max_count, custom)
       values ($1, $2, $3, $4, $5::jsonb)
       on conflict (stream) do update set truncate_before = excluded.truncate_before, max_age = excluded.max_age,
         max_count = excluded.max_count, custom = excluded.custom`,
      [
        stream,
        metadata.truncateBefore ?? null,
        metadata.maxAge ?? null,
        metadata.maxCount ?? null,
        metadata.custom === undefined ? null : JSON.stringify(metadata.custom),
      ],
    );
  }

  async deleteStream(stream: string, options: { expected?: ExpectedRevision } = {}): Promise<void> {
    const expected = options.expected ?? 'any';
    validate.stream(stream);
    validate.expected(expected);
    const { current } = await this.storedEvents(stream, []);
    const live = current !== 'no_stream';
    const ok =
      expected === 'any' ||
      (expected === 'stream_exists' && live) ||
      (expected === 'no_stream' && !live) ||
      (typeof expected === 'number' && current === expected);
    if (!ok) throw new ConcurrencyConflict(stream, expected, current);
    if (!live) return;
    // Hide everything up to the current revision; an append that lands meanwhile stays visible, as it came after.
    await this.db.query(
      `insert into sentinel_stream_metadata (stream, truncate_before) values ($1, $2 + 1)
       on conflict (stream) do update set truncate_before = greatest(excluded.truncate_before,
         coalesce(sentinel_stream_metadata.truncate_before, 0))`,
      [stream, current],
    );
  }

  async ping(): Promise<void> {
    if (!(await eventStoreMigrated(this.db.knex))) throw new Error('event store migrations are not applied');
  }

  async close(): Promise<void> {
    // A notification still waiting goes now, while the database is open: after, it would only fail.
    if (this.notifyTimer) await this.notifyNow();
    await this.listener?.stop();
    await this.statistics?.idle();
  }

  private async readAllAfter(
    after: [bigint, bigint],
    filter: EventFilter | undefined,
    limit: number,
    afterPosition: string | undefined,
  ): Promise<ReadAllResult> {
    const types = filter?.types?.length ? filter.types : null;
    const prefixes = filter?.streamPrefixes?.length ? filter.streamPrefixes.map((p) => `${escapeLike(p)}%`) : null;
    const params = [after[0].toString(), after[1].toString(), limit];

    if (!types && !prefixes) {
      const rows = await this.db.query<ReadAllRow>(
        `select ${readAllColumns()} from sentinel_events
          where (tx_id, seq) > ($1::xid8, $2::bigint) and ${VISIBLE}
          order by tx_id, seq limit $3`,
        params,
        'sentinel_read_all',
      );
      return page(rows, afterPosition);
    }

    if (types) {
      const rows = await this.db.query<ReadAllRow & { head: boolean }>(TYPES_READ_SQL, [...params, types, prefixes], 'sentinel_read_all_types');
      const events = rows.filter((row) => !row.head);
      const head = rows.find((row) => row.head)?.position;
      const read = page(events, afterPosition);
      // Short: nothing else of these types up to the visible head, so the next read starts there. Every caught-up
      // reader then stands at the same place, whatever its types, and they can share one read (see SharedTail).
      if (head !== undefined && (read.checkpoint === undefined || comparePositions(head, read.checkpoint) > 0)) read.checkpoint = head;
      return read;
    }

    // Stream prefixes only: look at a bounded window of the log and report how far it got, so a read for a
    // rare prefix still moves its checkpoint forward at a bounded cost per call.
    const rows = await this.db.query<EventRow & { scan_end: boolean }>(WINDOW_READ_SQL, [...params, this.scanWindow, prefixes]);
    const events = rows.filter((r) => !r.scan_end);
    const scanEnd = rows.find((r) => r.scan_end);
    if (events.length === limit || !scanEnd) return page(events, afterPosition);
    return { events: events.map((row) => toRecordedEvent(row)), checkpoint: encodePosition(BigInt(scanEnd.tx_id), BigInt(scanEnd.seq)) };
  }

  private result(row: { revision: BigIntLike | null; tx_id: string | null; seq: BigIntLike | null }, duplicate: boolean): AppendResult {
    return {
      revision: Number(row.revision),
      position: encodePosition(BigInt(row.tx_id!), BigInt(row.seq!)),
      duplicate,
    };
  }

  /**
   * Wakes local subscribers at once, and subscribers in other processes with one NOTIFY per interval at most,
   * sent on its own rather than inside appends: NOTIFY serializes the commits of the transactions that send it.
   */
  private announce(appended: number): void {
    this.statistics?.appended(appended);
    this.signal.notify();
    if (!this.notifyOthers || this.notifyTimer) return;
    this.notifyTimer = setTimeout(() => void this.notifyNow(), this.notifyIntervalMs);
  }

  private notifyNow(): Promise<void> {
    clearTimeout(this.notifyTimer);
    this.notifyTimer = undefined;
    // Subscribers elsewhere also poll, so a lost notification only delays them.
    return this.db.query('select pg_notify($1, null)', [NOTIFY_CHANNEL]).then(
      () => undefined,
      () => undefined,
    );
  }
}

/**
 * A read by type: one ordered range scan of the (type, tx_id, seq) index per type, merged, so that cost follows what
 * is read, not how long the log is. When fewer than $3 match, a last row (`head`) gives the position of the newest
 * visible event, judged in the same statement, hence against the same visible horizon.
 */
const TYPES_READ_SQL = `
with matched as (
  select x.* from unnest($4::text[]) as t(name), lateral (
    select * from sentinel_events e
     where e.type = t.name and (e.tx_id, e.seq) > ($1::xid8, $2::bigint) and ${VISIBLE}
       and ($5::text[] is null or e.stream like any($5::text[]))
     order by e.tx_id, e.seq limit $3) as x
   order by x.tx_id, x.seq limit $3),
head as (
  select tx_id, seq from sentinel_events where ${VISIBLE} and (select count(*) from matched) < $3
   order by tx_id desc, seq desc limit 1)
select ${readAllColumns('matched')}, false as head from matched
union all
select null, null, null, null, null, null, null, null, ${positionText('head')}, true from head
order by head, position`;

/**
 * A stream-prefix read: the events matching $5 among the next $4 (the window) after ($1, $2), at most $3, and
 * the window's last position (`scan_end`) when fewer than $3 matched. Both walk the position index in order and
 * stop early: the matches as soon as $3 are found, so a prefix most events match reads about what it returns;
 * the window's end only when it is needed. Only the page itself is held and sorted. The window's size is a
 * subquery so that the planner, which cannot see its value then, plans for the first rows rather than sorting every
 * later event to pick the window (what it chose without statistics, and PGlite never gathers any). One statement:
 * the window and its end are judged against the same visible horizon.
 */
const WINDOW_READ_SQL = `
with scan as not materialized (
  select id, stream, revision, type, schema_version, data, metadata, recorded_at, tx_id, seq from sentinel_events
   where (tx_id, seq) > ($1::xid8, $2::bigint) and ${VISIBLE}
   order by tx_id, seq limit (select $4::integer)),
matched as (
  select * from scan where stream like any($5::text[]) order by tx_id, seq limit $3),
scan_end as (
  select tx_id, seq from scan where (select count(*) from matched) < $3 order by tx_id desc, seq desc limit 1)
select ${eventColumns('matched')}, false as scan_end from matched
union all
select null, null, null, null, null, null, null, null, tx_id, seq, true from scan_end
order by scan_end, tx_id, seq`;

/**
 * Counts the events a read from the same place would return, under the same visibility horizon, without
 * touching their data: only positions and, for a filter, types and stream names are looked at. Each scan walks
 * an index in log order and stops at the limit ($3; none when null), one scan per type as `readAll` does, so the
 * cost follows the limit rather than how far behind the position is. (A stream-prefix filter alone still looks
 * at every event after the position until enough match.) Text per filter shape, each planned for its own index.
 */
function countSql(byType: boolean, byPrefix: boolean): string {
  const prefix = byPrefix ? ` and e.stream like any($${byType ? 5 : 4}::text[])` : '';
  const after = `(e.tx_id, e.seq) > ($1::xid8, $2::bigint) and ${VISIBLE}${prefix}`;
  const counted = byType
    ? `select 1 from unnest($4::text[]) as t(name), lateral (
         select 1 from sentinel_events e where e.type = t.name and ${after} order by e.tx_id, e.seq limit $3) as x
        limit $3`
    : `select 1 from sentinel_events e where ${after} order by e.tx_id, e.seq limit $3`;
  return `select count(*) as count from (${counted}) as counted`;
}

/*
 * Two multi-stream appends that write the same streams in different orders would each insert a revision the
 * other then waits on: a deadlock, which PostgreSQL breaks only after a second. `sentinel_append_many` takes a lock
 * per stream first, always in the same order, so the second waits for the first instead; its lock class is
 * 0x53454e54 ('SENT'). Single-stream appends take none: one statement on one stream never waits on a lock while it
 * holds another. The two-key form keeps these locks apart from the single-key ones that projection leases hold.
 */

/** Why a multi-stream append was rolled back, and at which of its appends. */
interface AppendFailure {
  failed: number;
  reason: 'expectation' | 'race' | 'deadlock';
}

/** A row `sentinel_append_many` stored: the index of its append, and its revision and position. */
interface ManyRow {
  append_index: number;
  stored_revision: BigIntLike;
  stored_tx_id: string;
  stored_seq: BigIntLike;
}

const APPEND_MANY_SQL = 'select append_index, stored_revision, stored_tx_id, stored_seq from sentinel_append_many($1::jsonb)';

/** The SQLSTATE `sentinel_append_many` raises when an append's expected state does not hold; its detail is the index. */
const EXPECTATION_FAILED = 'SE409';

/** Statements for appends of up to this many events are prepared once per size and connection. */
const PREPARED_APPEND_SIZES = 64;
const appendManyStatements = new Map<number, string>();

interface AppendStatement {
  name: string | undefined;
  text: string;
  params: unknown[];
}

function appendStatement(stream: string, events: EventToAppend[], expected: ExpectedRevision): AppendStatement {
  const params: unknown[] = [
    stream,
    typeof expected === 'number' ? 'revision' : expected,
    typeof expected === 'number' ? expected : null,
  ];
  for (const e of events) {
    params.push(e.id, e.type, e.schemaVersion ?? 1, JSON.stringify(e.data), JSON.stringify(e.metadata ?? {}));
  }
  let text = appendManyStatements.get(events.length);
  if (!text) {
    text = appendManySql(events.length);
    if (events.length <= PREPARED_APPEND_SIZES) appendManyStatements.set(events.length, text);
  }
  const name = events.length <= PREPARED_APPEND_SIZES ? `sentinel_append_${events.length}` : undefined;
  return { name, text, params };
}

/** The argument of `sentinel_append_many`: each append, in order, with its expected state and its events. */
function manyRequest(appends: readonly StreamAppend[]): string {
  return JSON.stringify(
    appends.map(({ stream, events, expected }) => ({
      stream,
      kind: typeof expected === 'number' ? 'revision' : (expected ?? 'any'),
      expected: typeof expected === 'number' ? expected : null,
      events: events.map((e) => ({ id: e.id, type: e.type, schemaVersion: e.schemaVersion ?? 1, data: e.data, metadata: e.metadata ?? {} })),
    })),
  );
}

function page(rows: readonly (EventRow | ReadAllRow)[], afterPosition: string | undefined): ReadAllResult {
  const events = rows.map((row) => toRecordedEvent(row));
  return { events, checkpoint: events.at(-1)?.position ?? afterPosition };
}

/** `shared`: the row is another caller's too, so the event gets copies of its documents. */
function toRecordedEvent(row: EventRow | ReadAllRow, shared = false): RecordedEvent {
  return {
    id: row.id,
    stream: row.stream,
    type: row.type,
    schemaVersion: row.schema_version,
    revision: Number(row.revision),
    position: 'position' in row ? row.position : encodePosition(BigInt(row.tx_id), BigInt(row.seq)),
    recordedAt: new Date(row.recorded_ms),
    data: shared ? structuredClone(row.data) : row.data,
    metadata: shared ? structuredClone(row.metadata) : row.metadata,
  };
}

/** True when an append ran into a unique index because a concurrent append to the same stream won. */
function lostRace(error: unknown): boolean {
  const { code, constraint, message } = (error ?? {}) as { code?: string; constraint?: string; message?: string };
  const name = constraint ?? message ?? '';
  return code === '23505' && /sentinel_events_stream_(revision|id)/.test(name);
}

/**
 * True when PostgreSQL ended the transaction to break a deadlock: two multi-stream appends that write the same
 * streams in different orders can each wait on a revision the other has inserted.
 */
function deadlocked(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === '40P01';
}

function escapeLike(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** A dedicated connection that LISTENs for appends made by other processes; reconnects with backoff. */
class CrossProcessListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retryMs = 100;

  constructor(
    private readonly connectionString: string,
    private readonly signal: ChangeSignal,
  ) {}

  start(): void {
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.connectionString, application_name: 'sentinel-listener' });
    let lost = false;
    const retry = () => {
      if (lost || this.stopped) return;
      lost = true;
      this.client = undefined;
      client.end().catch(() => undefined);
      setTimeout(() => void this.connect(), this.retryMs).unref();
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
    client.on('notification', () => this.signal.notify());
    client.on('error', retry);
    client.on('end', retry);
    try {
      await client.connect();
      await client.query(`listen ${NOTIFY_CHANNEL}`);
      this.client = client;
      this.retryMs = 100;
      this.signal.notify(); // anything appended while we were not listening is readable now
    } catch {
      retry();
    }
  }
}
