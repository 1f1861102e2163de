// Runs projectors: catch-up then live, each batch applied in one transaction with its checkpoint, one active
// instance per projector, lag exported as metrics.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { comparePositions, type EventStore, type Position, type RecordedEvent, type Subscription } from '../domain/event-store.js';
import { tableNames, type Projector, type TableNames } from './projector.js';
import { rebuildProjection } from './rebuild.js';

/** One active instance per projector across processes: whoever holds the lease projects, the others wait. */
export interface ProjectionLease {
  /** True when this process now holds (or already held) the lease for `name`. */
  tryAcquire(name: string): Promise<boolean>;
  /** False once the lease was lost (the connection holding it died). */
  stillHeld(name: string): Promise<boolean>;
  release(name: string): Promise<void>;
}

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
  batchSize?: number;
  /** How often a standby instance tries for the lease. */
  standbyRetryMs?: number;
  /** How often lag is sampled for the metrics. */
  lagSampleMs?: number;
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

/** The registry table (migration 002-projections). */
export const PROJECTION_REGISTRY = 'sentinel_projections';
const REGISTRY = PROJECTION_REGISTRY;
/** `lagEvents` counts up to this many. */
export const LAG_COUNT_LIMIT = 10_000;

export class ProjectionRuntime {
  private readonly abort = new AbortController();
  private readonly running: Promise<void>[] = [];
  private readonly active = new Set<string>();
  private readonly subscriptions = new Set<Subscription>();
  private lagTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly knex: Knex,
    private readonly store: EventStore,
    readonly projectors: readonly Projector[],
    private readonly options: RuntimeOptions,
  ) {}

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
    for (const projector of this.projectors) this.running.push(this.loop(projector));
    // Lag is measured against the log, so it is sampled rather than kept up on every batch.
    if (this.options.metrics) {
      this.lagTimer = setInterval(() => void this.status().catch(() => undefined), this.options.lagSampleMs ?? 10_000).unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.lagTimer);
    this.abort.abort();
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    await Promise.allSettled(this.running);
    // A projector whose loop is between retries still holds its lease: release every one.
    for (const projector of this.projectors) await this.options.lease.release(projector.name).catch(() => undefined);
    this.active.clear();
  }

  /** The tables queries read for a projector: its serving generation's. */
  async tables<Base extends string>(projector: Projector<Base>): Promise<TableNames<Base>> {
    const row = (await this.knex(REGISTRY).where({ name: projector.name }).first('generation')) as { generation: number } | undefined;
    return tableNames(projector, row?.generation ?? 1);
  }

  async status(): Promise<ProjectionStatus[]> {
    const rows = (await this.knex(REGISTRY).select('*').orderBy('name')) as {
      name: string;
      version: number;
      generation: number;
      position: string | null;
      events: string | number;
      updated_at: Date;
    }[];
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
          eventsApplied: Number(row.events),
          lagEvents: lag.events,
          lagSeconds: lag.seconds,
          active: this.active.has(row.name),
          updatedAt: new Date(row.updated_at).toISOString(),
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
      const rows = (await this.knex(REGISTRY).whereIn('name', names).select('name', 'position')) as { name: string; position: string | null }[];
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
      if (!behind.some(Boolean)) return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(wait, Math.max(1, deadline - Date.now())));
    }
  }

  private async register(projector: Projector, options: { upgrade: boolean }): Promise<Registered> {
    for (;;) {
      const registered = await this.knex.transaction(async (trx): Promise<Registered | 'outdated'> => {
        // Serialises registration across processes starting together.
        await trx.raw('lock table sentinel_projections in share row exclusive mode');
        const row = (await trx(REGISTRY).where({ name: projector.name }).first('generation', 'position', 'version')) as
          | { generation: number; position: string | null; version: number }
          | undefined;
        if (row && row.version === projector.version) return { generation: row.generation, position: row.position };
        if (row && row.version > projector.version) {
          throw new Error(`projection ${projector.name} is at version ${row.version}, newer than this build's ${projector.version}`);
        }
        if (row) return options.upgrade ? 'outdated' : { generation: row.generation, position: row.position };
        // New: its first generation, projected from the start of the log.
        await projector.createTables(trx, tableNames(projector, 1));
        await trx(REGISTRY).insert({ name: projector.name, version: projector.version, generation: 1, position: null, events: 0, updated_at: trx.fn.now() });
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

  private async loop(projector: Projector): Promise<void> {
    const { lease, logger } = this.options;
    while (!this.abort.signal.aborted) {
      try {
        if (!(await lease.tryAcquire(projector.name))) {
          await sleep(this.options.standbyRetryMs ?? 1000, undefined, { signal: this.abort.signal });
          continue;
        }
        this.active.add(projector.name);
        logger.info({ projector: projector.name }, 'projecting');
        await this.project(projector);
      } catch (error) {
        if (this.abort.signal.aborted) return;
        if (error instanceof CheckpointMoved) {
          // Most often a rebuild that swapped in a new generation: follow it at once, from its checkpoint.
          logger.info({ projector: projector.name }, 'checkpoint moved; continuing from the registry');
          continue;
        }
        this.active.delete(projector.name);
        logger.error({ err: error, projector: projector.name }, 'projector stopped; retrying');
        await sleep(1000, undefined, { signal: this.abort.signal }).catch(() => undefined);
      }
    }
  }

  private async project(projector: Projector): Promise<void> {
    const registered = await this.register(projector, { upgrade: true });
    const tables = tableNames(projector, registered.generation);
    let position = registered.position;
    const subscription = this.store.subscribe({
      after: position ?? undefined,
      filter: filterOf(projector),
      batchSize: this.options.batchSize ?? 500,
    });
    this.subscriptions.add(subscription);
    // stop() may have run while this was registering, after it closed the subscriptions it knew of.
    if (this.abort.signal.aborted) await subscription.close();
    try {
      for await (const batch of batches(subscription, this.options.batchSize ?? 500)) {
        if (this.abort.signal.aborted) return;
        const started = performance.now();
        const last = batch.at(-1)!.position;
        await this.knex.transaction(async (trx) => {
          // The checkpoint moves only from where this instance read it: a second writer rolls back instead. It
          // moves first, so the row stays locked while the batch applies (a rebuild's swap waits for it), and a
          // batch begun after a swap stops here, before it touches the old generation's tables.
          const moved = await trx(REGISTRY)
            .where({ name: projector.name, generation: registered.generation })
            .andWhere((where) => (position === null ? where.whereNull('position') : where.where('position', position)))
            .update({ position: last, events: trx.raw('events + ?', [batch.length]), updated_at: trx.fn.now() });
          if (moved !== 1) throw new CheckpointMoved(`the checkpoint of ${projector.name} moved under this instance`);
          await projector.apply(batch, trx, tables);
        });
        position = last;
        this.options.metrics?.applied(projector.name, batch.length, (performance.now() - started) / 1000);
        if (!(await this.options.lease.stillHeld(projector.name))) throw new Error(`lost the lease on ${projector.name}`);
      }
    } finally {
      this.subscriptions.delete(subscription);
      await subscription.close();
    }
  }

  private async lag(projector: Projector | undefined, position: string | null): Promise<{ events: number; seconds: number }> {
    const page = await this.store.readAll({ after: position ?? undefined, filter: filterOf(projector), limit: LAG_COUNT_LIMIT });
    const oldest = page.events[0];
    return { events: page.events.length, seconds: oldest ? Math.max(0, (Date.now() - oldest.recordedAt.getTime()) / 1000) : 0 };
  }
}

/** The event-store filter for the events a projector reads. */
export function filterOf(projector: Projector | undefined) {
  return projector?.eventTypes ? { types: [...projector.eventTypes] } : undefined;
}

/** Groups a subscription's events: whatever has arrived together, up to `max`, goes in one batch. */
async function* batches(subscription: Subscription, max: number): AsyncGenerator<RecordedEvent[]> {
  const iterator = subscription[Symbol.asyncIterator]();
  const idle = Symbol('idle');
  let pending = iterator.next();
  for (;;) {
    const first = await pending;
    if (first.done) return;
    const batch = [first.value];
    pending = iterator.next();
    while (batch.length < max) {
      const next = await Promise.race([pending, new Promise<typeof idle>((resolve) => setImmediate(() => resolve(idle)))]);
      if (next === idle) break;
      if (next.done) {
        yield batch;
        return;
      }
      batch.push(next.value);
      pending = iterator.next();
    }
    yield batch;
  }
}
