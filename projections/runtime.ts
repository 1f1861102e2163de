// Runs projectors: catch-up then live, each batch applied in one transaction with its checkpoint, one active
// instance per projector, lag exported as metrics.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { batchParent, inSpan, linkBatch } from '../adapters/tracing.js';
import { comparePositions, type EventStore, type Position, type RecordedEvent } from '../domain/event-store.js';
import type { Lease } from '../domain/lease.js';
import { followUnderLease, lagAfter, type Held } from '../domain/log-follower.js';
import { tableNames, type Projector, type TableNames } from './projector.js';
import { rebuildProjection } from './rebuild.js';
import { advanceProjection, insertProjection, lockProjections, projectionRow, projectionRows } from '../adapters/postgres/checkpoints.js';
import { CatchUpPages, filterOf, filterOfAll, SharedRead, type Member } from './shared-read.js';

export { filterOf } from './shared-read.js';
export { LAG_COUNT_LIMIT } from '../domain/log-follower.js';

/** One active instance per projector across processes: whoever holds the lease projects, the others wait. */
export type ProjectionLease = Lease;

export interface ProjectionMetrics {
  applied(projector: string, events: number, seconds: number): void;
  lag(projector: string, events: number, seconds: number): void;
}

export interface ProjectionStatus {
  name: string;
  version: number;
  generation: number;
  position: Position | null;
  eventsApplied: number;
  /** Events after the position that this projector reads (counted up to 10,000). */
  lagEvents: number;
  /** Age of the oldest event it has not applied yet; 0 when caught up. */
  lagSeconds: number;
  /** Whether this process is the one projecting it. */
  active: boolean;
  updatedAt: string;
}

export interface RuntimeOptions {
  logger: Logger;
  metrics?: ProjectionMetrics;
  lease: ProjectionLease;
  /** Events per batch once caught up with the log (500 when not given); each batch is one transaction. */
  batchSize?: number;
  /**
   * The most events per batch while behind the log, catching up (10 times `batchSize` when not given). Far fewer
   * transactions per event; a live batch stays small, since while its transaction runs, writes to the log that
   * commit after it began are not yet visible to readers.
   */
  catchUpBatchSize?: number;
  /** How often a standby instance tries for the lease. */
  standbyRetryMs?: number;
  /** How often lag is sampled for the metrics. */
  lagSampleMs?: number;
  /** How long queries reuse a lookup of a projector's serving generation (`GENERATION_REUSE_MS` unless given). */
  generationReuseMs?: number;
}

interface Registered {
  generation: number;
  position: Position | null;
}

/**
 * Thrown inside a batch's transaction when the checkpoint moved under it: a rebuild swapped in a new generation,
 * or someone else is projecting. The runtime then starts again from what the registry says.
 */
export class CheckpointMoved extends Error {
  override name = 'CheckpointMoved';
}

/** While catching up, a batch holds up to this many times the events of a live one. */
const CATCH_UP_BATCHES = 10;

/** A projector with nothing to apply moves its checkpoint once this many batches of the log have gone by. */
const IDLE_CHECKPOINT_BATCHES = 10;

/**
 * How long a lookup of a projector's serving generation is reused by queries: well within the time a rebuild keeps
 * the tables it swapped out (`projections rebuild --drop-after`, two seconds unless told).
 */
const GENERATION_REUSE_MS = 500;

export class ProjectionRuntime {
  private readonly abort = new AbortController();
  private readonly running: Promise<void>[] = [];
  /** Each projector's serving generation as last looked up, and when (see `tables`). */
  private readonly generations = new Map<string, { generation: number; at: number }>();
  private readonly active = new Set<string>();
  private readonly feed: SharedRead;
  private lagTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly knex: Knex,
    private readonly store: EventStore,
    readonly projectors: readonly Projector[],
    private readonly options: RuntimeOptions,
  ) {
    this.feed = new SharedRead(store, {
      filter: filterOfAll(projectors),
      batchSize: this.batchSize,
      catchUpBatchSize: this.catchUpBatchSize,
      signal: this.abort.signal,
      deliver: (member, batch) => this.deliver(member, batch),
      apply: (member, events, last) => this.applyBatch(member, events, last),
      onError: (error) => options.logger.error({ err: error }, 'reading the log failed; projectors start again from their checkpoints'),
    });
  }

  /**
   * Registers every projector, creating its first generation's tables; queries can be served from then on. A
   * projector registered at an older version keeps serving that version's tables: the instance that holds its
   * lease builds the new version and swaps it in (see `upgrade`).
   */
  async prepare(): Promise<void> {
    for (const projector of this.projectors) await this.register(projector, { upgrade: false });
  }

  /** Prepares, then starts projecting. */
  async start(): Promise<void> {
    await this.prepare();
    // Every projector counts as on its way before its loop begins, so the shared read starts once for all.
    for (const projector of this.projectors) this.feed.registering(projector.name, true);
    this.running.push(this.feed.run());
    for (const projector of this.projectors) this.running.push(this.loop(projector));
    // Lag is measured against the log, so it is sampled rather than kept up on every batch.
    if (this.options.metrics) {
      this.lagTimer = setInterval(() => void this.status().catch(() => undefined), this.options.lagSampleMs ?? 10_000).unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.lagTimer);
    this.abort.abort();
    await Promise.allSettled(this.running);
    // A projector whose loop is between retries still holds its lease: release every one.
    for (const projector of this.projectors) await this.options.lease.release(projector.name).catch(() => undefined);
    this.active.clear();
  }

  /**
   * The tables queries read for a projector: its serving generation's, looked up again once the last lookup is
   * `GENERATION_REUSE_MS` old. A rebuild keeps the old generation's tables for a while after it swaps in the new one
   * (`DEFAULT_DROP_AFTER_MS`), so a name looked up that recently still names tables that exist, whose rows are at
   * most that much older. A `waitFor` that succeeds records the generations it saw past the position, so the
   * read-your-writes query after it reads those.
   */
  async tables<Base extends string>(projector: Projector<Base>): Promise<TableNames<Base>> {
    const known = this.generations.get(projector.name);
    const asked = performance.now();
    if (known && asked - known.at < (this.options.generationReuseMs ?? GENERATION_REUSE_MS)) return tableNames(projector, known.generation);
    const row = await projectionRow(this.knex, projector.name);
    const generation = row?.generation ?? 1;
    this.generations.set(projector.name, { generation, at: asked });
    return tableNames(projector, generation);
  }

  async status(): Promise<ProjectionStatus[]> {
    const rows = await projectionRows(this.knex);
    return Promise.all(
      rows.map(async (row) => {
        const projector = this.projectors.find((p) => p.name === row.name);
        const lag = await this.lag(projector, row.position);
        this.options.metrics?.lag(row.name, lag.events, lag.seconds);
        return {
          name: row.name,
          version: row.version,
          generation: row.generation,
          position: row.position,
          eventsApplied: row.events,
          lagEvents: lag.events,
          lagSeconds: lag.seconds,
          active: this.active.has(row.name),
          updatedAt: row.updatedAt.toISOString(),
        };
      }),
    );
  }

  /**
   * Read-your-writes: resolves true once every named projector has applied everything it reads up to
   * `position`, false when `timeoutMs` passes first.
   */
  async waitFor(position: Position, names: readonly string[], timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (let wait = 2; ; wait = Math.min(wait * 2, 25)) {
      const asked = performance.now();
      const rows = await projectionRows(this.knex, names);
      let settled: Promise<boolean> | undefined;
      const behind = await Promise.all(
        names.map(async (name) => {
          const checkpoint = rows.find((row) => row.name === name)?.position ?? undefined;
          if (checkpoint !== undefined && comparePositions(checkpoint, position) >= 0) return false;
          // Not past it by position; but if nothing it reads lies between, it has nothing left to do. A read
          // proves that only once no write ordered before the position can still commit.
          settled ??= this.store.isSettled(position);
          if (!(await settled)) return true;
          const projector = this.projectors.find((p) => p.name === name);
          const next = await this.store.readAll({ after: checkpoint, filter: filterOf(projector), limit: 1 });
          const first = next.events[0];
          return first !== undefined && comparePositions(first.position, position) <= 0;
        }),
      );
      if (!behind.some(Boolean)) {
        // The generations whose checkpoints were just seen past the position: the query that follows reads those.
        for (const row of rows) this.generations.set(row.name, { generation: row.generation, at: asked });
        return true;
      }
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(wait, Math.max(1, deadline - Date.now())));
    }
  }

  private async register(projector: Projector, options: { upgrade: boolean }): Promise<Registered> {
    for (;;) {
      const registered = await this.knex.transaction(async (trx): Promise<Registered | 'outdated'> => {
        // Serialises registration across processes starting together.
        await lockProjections(trx);
        const row = await projectionRow(trx, projector.name);
        if (row && row.version === projector.version) return { generation: row.generation, position: row.position };
        if (row && row.version > projector.version) {
          throw new Error(`projection ${projector.name} is at version ${row.version}, newer than this build's ${projector.version}`);
        }
        if (row) return options.upgrade ? 'outdated' : { generation: row.generation, position: row.position };
        // New: its first generation, projected from the start of the log.
        await projector.createTables(trx, tableNames(projector, 1));
        await insertProjection(trx, projector);
        return { generation: 1, position: null };
      });
      if (registered !== 'outdated') return registered;
      await this.upgrade(projector);
    }
  }

  /**
   * A newer version of a registered projector: build it into the next generation while queries go on reading
   * the old one (frozen, since this build cannot apply the old version), then swap. Until the swap finishes,
   * readers see the old version's last state rather than an empty table.
   */
  private async upgrade(projector: Projector): Promise<void> {
    // The shared read need not wait for a rebuild: the projector joins it when the rebuild is done.
    this.feed.registering(projector.name, false);
    try {
      await this.rebuild(projector);
    } finally {
      this.feed.registering(projector.name, true);
    }
  }

  private async rebuild(projector: Projector): Promise<void> {
    const { logger } = this.options;
    logger.info({ projector: projector.name, version: projector.version }, 'new projector version; rebuilding before it serves');
    let loggedAt = 0;
    const result = await rebuildProjection(this.knex, this.store, projector, {
      lease: this.options.lease,
      signal: this.abort.signal,
      batchSize: this.options.batchSize,
      onProgress: ({ applied, total, eventsPerSecond }) => {
        if (Date.now() - loggedAt < 10_000) return;
        loggedAt = Date.now();
        logger.info({ projector: projector.name, applied, total, eventsPerSecond: Math.round(eventsPerSecond) }, 'rebuilding');
      },
    });
    logger.info({ projector: projector.name, generation: result.generation, events: result.events }, 'rebuilt and swapped in');
  }

  /**
   * Projects under the projector's lease, a standby until it is held. The lease is kept through a failure: the
   * projector goes on from its checkpoint, at once when a rebuild moved it, a second later otherwise.
   */
  private loop(projector: Projector): Promise<void> {
    const { logger } = this.options;
    return followUnderLease({
      lease: this.options.lease,
      name: projector.name,
      signal: this.abort.signal,
      standbyRetryMs: this.options.standbyRetryMs,
      keepLeaseOnFailure: true,
      trying: () => this.feed.registering(projector.name, true),
      standby: () => this.feed.registering(projector.name, false),
      follow: async (held) => {
        this.active.add(projector.name);
        logger.info({ projector: projector.name }, 'projecting');
        await this.project(projector, held);
      },
      failed: (error) => {
        this.feed.registering(projector.name, false);
        if (error instanceof CheckpointMoved) {
          // Most often a rebuild that swapped in a new generation: follow it at once, from its checkpoint.
          logger.info({ projector: projector.name }, 'checkpoint moved; continuing from the registry');
          return 0;
        }
        this.active.delete(projector.name);
        logger.error({ err: error, projector: projector.name }, 'projector stopped; retrying');
        return 1000;
      },
    });
  }

  /**
   * Registers the projector (upgrading it first when its version is new), then hands it to the shared read.
   * Resolves when the runtime stops; rejects with whatever took the projector off the shared read.
   */
  private async project(projector: Projector, lease: Held): Promise<void> {
    let registered: Registered;
    this.feed.registering(projector.name, true);
    try {
      registered = await this.register(projector, { upgrade: true });
    } finally {
      this.feed.registering(projector.name, false);
    }
    // An upgrade, or a rebuild elsewhere, may have swapped in a generation: queries look it up again.
    this.generations.delete(projector.name);
    const member: Member = {
      projector,
      types: projector.eventTypes ? new Set(projector.eventTypes) : undefined,
      generation: registered.generation,
      tables: tableNames(projector, registered.generation),
      position: registered.position,
      unsaved: 0,
      lease,
    };
    // A projector far behind the others reads on its own until it has caught up, so the others never wait for
    // it nor read again what they have applied.
    while ((await this.feed.join(member)) === 'behind') await this.catchUpAlone(member);
  }

  /** Reads and applies the projector's own events until a read comes back short: it has reached the head. */
  private async catchUpAlone(member: Member): Promise<void> {
    const pages = new CatchUpPages(this.batchSize, this.catchUpBatchSize);
    for (;;) {
      this.abort.signal.throwIfAborted();
      const { limit } = pages;
      const page = await this.store.readAll({ after: member.position ?? undefined, filter: filterOf(member.projector), limit });
      pages.measured(page.events);
      const last = page.events.at(-1);
      if (last) await this.applyBatch(member, page.events, last.position);
      if (page.events.length < limit) return;
    }
  }

  /**
   * Applies a projector's events and moves its checkpoint to `last` (which may lie past the last of them: the
   * events between were not the projector's), in one transaction. The checkpoint moves last, only from where
   * this instance read it: a second writer, or a batch begun before a rebuild swapped in a new generation, rolls
   * back. Moving it last keeps the transaction from taking a transaction id until its first write, so the
   * time it holds the visible horizon of the log back is the time of its writes, not of its reads.
   */
  private async applyBatch(member: Member, events: readonly RecordedEvent[], last: Position): Promise<void> {
    // A batch that only moves the checkpoint is nobody's work to follow.
    if (events.length === 0) return this.commitBatch(member, events, last);
    const traceparents = events.map((event) => event.metadata.traceparent);
    const attributes = { 'sentinel.projector': member.projector.name, 'sentinel.events': events.length, 'sentinel.position': last };
    // A rebuild that swapped in a new generation moves the checkpoint: the projector follows it, nothing failed.
    const failure = (error: unknown) => !(error instanceof CheckpointMoved);
    await inSpan(`project ${member.projector.name}`, { parent: batchParent(traceparents), attributes, failure }, async (span) => {
      linkBatch(span, traceparents);
      await this.commitBatch(member, events, last);
    });
  }

  private async commitBatch(member: Member, events: readonly RecordedEvent[], last: Position): Promise<void> {
    const { projector } = member;
    const started = performance.now();
    const from = member.position;
    await this.knex.transaction(async (trx) => {
      // A read model and its checkpoint commit together, so losing the last few commits in a server crash only
      // moves the checkpoint back with them: they are applied again, exactly once. So the commit does not wait for
      // the WAL to reach the disk (`advanceProjection` says so), which makes each batch's commit, and the time it
      // holds the visible horizon back, shorter.
      if (events.length > 0) await projector.apply(events, trx, member.tables);
      const moved = await advanceProjection(trx, { name: projector.name, generation: member.generation, from, to: last, events: events.length });
      if (!moved) throw new CheckpointMoved(`the checkpoint of ${projector.name} moved under this instance`);
    });
    member.position = last;
    member.unsaved = 0;
    this.options.metrics?.applied(projector.name, events.length, (performance.now() - started) / 1000);
  }

  /**
   * One batch of the shared read, for one projector: its events after its checkpoint, applied with the
   * checkpoint. A batch holding none of its events moves its checkpoint only once several batches' worth of the
   * log have gone by: an idle projector costs next to nothing per batch, and after a restart it has little to
   * read again (and reads it through its own filter, which skips what it does not read).
   */
  private async deliver(member: Member, batch: readonly RecordedEvent[]): Promise<void> {
    const { position, types } = member;
    const last = batch.at(-1)!.position;
    // A member that joined ahead of the shared read (it read to the head on its own) has nothing in a batch it is
    // past, and its checkpoint must not move back to the batch's end: what lies between would be applied again.
    if (position !== null && comparePositions(last, position) <= 0) return;
    // The batch is in log order: positions need comparing only when the checkpoint lies inside it.
    const inside = position !== null && comparePositions(batch[0]!.position, position) <= 0 ? position : null;
    const events = batch.filter((event) => (types === undefined || types.has(event.type)) && (inside === null || comparePositions(event.position, inside) > 0));
    member.unsaved += batch.length;
    if (events.length === 0 && member.unsaved < IDLE_CHECKPOINT_BATCHES * this.batchSize) return;
    try {
      await this.applyBatch(member, events, last);
    } catch (error) {
      // A batch that failed on tables a rebuild has since swapped out (and perhaps dropped) is a moved checkpoint.
      if (!(error instanceof CheckpointMoved) && (await this.checkpointMoved(member))) {
        throw new CheckpointMoved(`the checkpoint of ${member.projector.name} moved under this instance`);
      }
      throw error;
    }
    await member.lease.confirm();
  }

  private async checkpointMoved(member: Member): Promise<boolean> {
    const row = await projectionRow(this.knex, member.projector.name).catch(() => undefined);
    return row !== undefined && (row.generation !== member.generation || row.position !== member.position);
  }

  private get batchSize(): number {
    return this.options.batchSize ?? 500;
  }

  private get catchUpBatchSize(): number {
    return Math.max(this.batchSize, this.options.catchUpBatchSize ?? CATCH_UP_BATCHES * this.batchSize);
  }

  /** Asked by the sampler, `GET /projections` and the CLI alike, so counted by the store (see `lagAfter`). */
  private lag(projector: Projector | undefined, position: string | null): Promise<{ events: number; seconds: number }> {
    return lagAfter(this.store, position ?? undefined, filterOf(projector));
  }
}
