// Rebuilds one projection from the start of the log into a fresh generation of tables while the current one
// keeps serving queries and the live runtime keeps applying to it, then swaps the new one in.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { comparePositions, type EventFilter, type EventStore, type Position, type RecordedEvent } from '../domain/event-store.js';
import type { Lease } from '../domain/lease.js';
import { PageSize } from '../domain/read-pages.js';
import { tableNames, type Projector, type TableNames } from './projector.js';
import { lockProjections, projectionRow, swapProjection, type ProjectionRow } from '../adapters/postgres/checkpoints.js';
import { filterOf, filterOfAll } from './shared-read.js';
import { within, type AsOf } from './time-travel.js';

export interface RebuildProgress {
  /** Events applied to the new generation so far. */
  applied: number;
  /** Events the projector reads, counted before projecting; grows when the log does. */
  total: number;
  eventsPerSecond: number;
  /** Infinity until there is a rate to go by. */
  etaSeconds: number;
}

export interface RebuildOptions {
  /** Called after every batch (and once before the first). */
  onProgress?: (progress: RebuildProgress) => void;
  /** Events per batch; each batch is one transaction. */
  batchSize?: number;
  /**
   * How long the old generation's tables stay after the swap, so that a query which looked up their names just
   * before it still finds them. Then they are dropped.
   */
  dropAfterMs?: number;
  /** Held as `rebuild:<name>` for the whole rebuild, so two rebuilds of one projection never overlap. */
  lease?: Lease;
  /** Stops before the swap (after the batch in hand); the new generation's tables are dropped. */
  signal?: AbortSignal;
}

export interface RebuildResult {
  name: string;
  version: number;
  previousGeneration: number;
  generation: number;
  /** The checkpoint the new generation was swapped in at: the last event it applied. */
  position: Position | null;
  /** Events applied to the new generation. */
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** Swaps tried: one more for each time the live runtime had got ahead of the rebuild (see `swap`). */
  swapAttempts: number;
  /** Whether the old generation's tables were dropped; `dropError` says why not. */
  previousDropped: boolean;
  dropError?: string;
}

/** A rebuild that cannot go ahead or was overtaken; the serving generation is untouched. */
export class RebuildError extends Error {
  override name = 'RebuildError';
}

export const DEFAULT_REBUILD_BATCH_SIZE = 1000;
export const DEFAULT_DROP_AFTER_MS = 2000;
const MAX_SWAP_ATTEMPTS = 100;
type RegistryRow = Pick<ProjectionRow, 'generation' | 'version' | 'position'>;

/**
 * Projects the whole log into generation `current + 1`, each batch in its own transaction, catches up with the
 * head and swaps the registry over to it in one transaction; the live runtime follows on its next batch.
 */
export async function rebuildProjection(knex: Knex, store: EventStore, projector: Projector, options: RebuildOptions = {}): Promise<RebuildResult> {
  const leaseName = `rebuild:${projector.name}`;
  if (options.lease && !(await options.lease.tryAcquire(leaseName))) {
    throw new RebuildError(`another rebuild of ${projector.name} is running; it keeps serving from its current generation`);
  }
  try {
    return await rebuild(knex, store, projector, options);
  } finally {
    await options.lease?.release(leaseName);
  }
}

async function rebuild(knex: Knex, store: EventStore, projector: Projector, options: RebuildOptions): Promise<RebuildResult> {
  const { signal } = options;
  const started = performance.now();
  const from = await createNextGeneration(knex, projector);
  const generation = from.generation + 1;
  const tables = tableNames(projector, generation);

  let swapped = false;
  try {
    let total = await countEvents(store, projector, signal);
    const projecting = performance.now();
    const report = (applied: number) => {
      total = Math.max(total, applied);
      const seconds = (performance.now() - projecting) / 1000;
      const eventsPerSecond = seconds > 0 ? applied / seconds : 0;
      const left = total - applied;
      options.onProgress?.({ applied, total, eventsPerSecond, etaSeconds: left === 0 ? 0 : eventsPerSecond > 0 ? left / eventsPerSecond : Infinity });
    };
    const feed = new GenerationFeed(knex, store, [{ projector, tables }], { batchSize: options.batchSize, signal, onBatch: report });

    report(0);
    let swapAttempts = 0;
    for (;;) {
      await feed.catchUp();
      swapAttempts += 1;
      if (await swap(knex, projector, from, { generation, position: feed.position, events: feed.applied })) break;
      if (swapAttempts >= MAX_SWAP_ATTEMPTS) {
        throw new RebuildError(
          `the live projector of ${projector.name} kept getting ahead of the rebuild (${swapAttempts} swaps tried); try again when the log is quieter`,
        );
      }
    }
    swapped = true;
    const projectedSeconds = (performance.now() - projecting) / 1000;

    // After the swap nothing writes to the old tables: a live batch begun on them stops at its checkpoint update.
    const dropAfterMs = options.dropAfterMs ?? DEFAULT_DROP_AFTER_MS;
    if (dropAfterMs > 0) await sleep(dropAfterMs, undefined, { signal }).catch(() => undefined);
    let dropError: string | undefined;
    await dropTables(knex, projector, from.generation).catch((error: unknown) => {
      dropError = error instanceof Error ? error.message : String(error);
    });

    return {
      name: projector.name,
      version: projector.version,
      previousGeneration: from.generation,
      generation,
      position: feed.position ?? null,
      events: feed.applied,
      seconds: (performance.now() - started) / 1000,
      eventsPerSecond: projectedSeconds > 0 ? feed.applied / projectedSeconds : 0,
      swapAttempts,
      previousDropped: dropError === undefined,
      ...(dropError !== undefined ? { dropError } : {}),
    };
  } finally {
    // The error that stopped the rebuild is the one to report; tables left here go at the next rebuild's start.
    if (!swapped) await dropUnlessServing(knex, projector, generation).catch(() => undefined);
  }
}

/** Creates the tables of the generation after the serving one, under the same lock registration takes. */
async function createNextGeneration(knex: Knex, projector: Projector): Promise<RegistryRow> {
  return knex.transaction(async (trx) => {
    await lockProjections(trx);
    const row = await projectionRow(trx, projector.name);
    if (!row) throw new RebuildError(`projection ${projector.name} is not registered yet: start Sentinel once, so that it creates its tables`);
    if (row.version > projector.version) {
      throw new RebuildError(`projection ${projector.name} is at version ${row.version}, newer than this build's ${projector.version}`);
    }
    const tables = tableNames(projector, row.generation + 1);
    // Left behind by a rebuild that stopped before its swap: the registry never pointed at them.
    for (const table of Object.values<string>(tables)) await trx.schema.dropTableIfExists(table);
    await projector.createTables(trx, tables);
    return row;
  });
}

/**
 * The swap, in one transaction: lock the registry row; if the live runtime has applied something the rebuild
 * has not (its checkpoint lies past the rebuild's), give up this attempt so the caller catches up and tries
 * again, since swapping then would take the served tables back in time; otherwise point the row at the new
 * generation and the rebuild's checkpoint. The live runtime's next checkpoint update, guarded by generation and
 * position, then matches nothing, and it starts again from the registry, on the new generation.
 *
 * Events appended after the rebuild's last read are not applied here: the live runtime applies them after the
 * swap. Reading them inside this transaction would need a second connection, which embedded PGlite lacks.
 */
async function swap(
  knex: Knex,
  projector: Projector,
  from: RegistryRow,
  to: { generation: number; position: Position | undefined; events: number },
): Promise<boolean> {
  return knex.transaction(async (trx) => {
    const row = await projectionRow(trx, projector.name, { forUpdate: true });
    if (!row || row.generation !== from.generation) {
      throw new RebuildError(
        `projection ${projector.name} moved from generation ${from.generation} to ${row?.generation ?? 'none'} while it was being rebuilt; nothing was swapped`,
      );
    }
    // Only the same version's checkpoint says what the rebuild lacks; an older version's generation is frozen.
    const overtaken = row.version === projector.version && row.position !== null && (to.position === undefined || comparePositions(row.position, to.position) > 0);
    if (overtaken) return false;
    await swapProjection(trx, { name: projector.name, version: projector.version, generation: to.generation, position: to.position ?? null, events: to.events });
    return true;
  });
}

async function dropTables(knex: Knex, projector: Projector, generation: number): Promise<void> {
  await knex.transaction(async (trx) => {
    for (const table of Object.values<string>(tableNames(projector, generation))) await trx.schema.dropTableIfExists(table);
  });
}

/** After a failed rebuild: drops its tables, unless (against every expectation) the registry serves them. */
async function dropUnlessServing(knex: Knex, projector: Projector, generation: number): Promise<void> {
  const row = await projectionRow(knex, projector.name);
  if (row?.generation !== generation) await dropTables(knex, projector, generation);
}

/** How many events the projector reads, for the progress report. */
async function countEvents(store: EventStore, projector: Projector, signal: AbortSignal | undefined): Promise<number> {
  signal?.throwIfAborted();
  // Counted where the events are kept: a rebuild of a log of large events must not load them to report progress.
  return store.countAfter(undefined, { filter: filterOf(projector) });
}

// ---- projecting the log into a generation of tables nothing serves yet --------------------------------------

/** A projector and the tables of the generation it is projected into. */
export interface GenerationTarget {
  projector: Projector;
  tables: TableNames;
}

export interface GenerationFeedOptions {
  /** Events per read; each page is applied in one transaction. */
  batchSize?: number;
  signal?: AbortSignal;
  /** Stops at the first event past this point: the generation then shows the log as it stood there. */
  until?: AsOf;
  /** The schema the tables lie in: each batch's transaction then resolves names in it alone (see fleet-snapshot.ts). */
  schema?: string;
  /** Called after every batch with the events applied so far. */
  onBatch?: (applied: number) => void;
}

/**
 * A filter by event type is worth reading with only while it keeps less than this share of the log: each page of
 * such a read is one index scan per type, merged, and each scan fetches up to a page of whole events, so where the
 * types make up most of the log it reads several times what it keeps (a fleet snapshot over a log of decisions
 * and cluster events took twelve times as long on PGlite as reading every event in order).
 */
const FILTERED_READ_MAX_SHARE = 0.25;

/**
 * Reads the log from the start (or from where the last `catchUp` stopped) and applies it to the targets' tables, one
 * read of the log for all of them, each page in one transaction. A rebuild feeds one projector and catches up again
 * until its swap holds; a fleet snapshot feeds every read model up to a point.
 */
export class GenerationFeed {
  /** Events applied, counted once per target that read them. */
  applied = 0;
  /** The last event read and applied (to some target): a rebuild's checkpoint once swapped. */
  position: Position | undefined;
  /** True once an event past `until` was read: nothing after it is applied. */
  passed = false;
  /** Where reading goes on from; with a filter it can lie past `position`. */
  private readFrom: Position | undefined;
  private readonly pages: PageSize;
  private readonly types: (ReadonlySet<string> | undefined)[];
  /** What the targets read between them: a filter on the store's side, or every event (see `chooseFilter`). */
  private readonly filter: EventFilter | undefined;
  /** The filter the log is read with, once chosen; null before the first `catchUp`. */
  private readFilter: EventFilter | undefined | null = null;
  /** The types any target reads, to pick out of pages read without the filter; undefined when one reads all. */
  private readonly wanted: ReadonlySet<string> | undefined;

  constructor(
    private readonly knex: Knex,
    private readonly store: EventStore,
    private readonly targets: readonly GenerationTarget[],
    private readonly options: GenerationFeedOptions = {},
  ) {
    // Fewer events a read than the batch size when they are large: each page is held whole while it is applied.
    this.pages = new PageSize(options.batchSize ?? DEFAULT_REBUILD_BATCH_SIZE);
    this.types = targets.map(({ projector }) => (projector.eventTypes ? new Set(projector.eventTypes) : undefined));
    this.filter = filterOfAll(targets.map(({ projector }) => projector));
    this.wanted = this.filter?.types && new Set(this.filter.types);
  }

  /** Applies everything after where reading stands that the store shows now (up to `until`). */
  async catchUp(): Promise<void> {
    const { signal, until } = this.options;
    const filter = await this.chooseFilter();
    const wanted = filter === undefined ? this.wanted : undefined;
    while (!this.passed) {
      signal?.throwIfAborted();
      const page = await this.store.readAll({ after: this.readFrom, filter, limit: this.pages.limit });
      this.pages.measured(page.events);
      // Read without the filter, the page is narrowed to what the filter would have read: the same events, the same point.
      let events = wanted === undefined ? page.events : page.events.filter((event) => wanted.has(event.type));
      if (until !== undefined) {
        const past = events.findIndex((event) => !within(event, until));
        if (past >= 0) {
          events = events.slice(0, past);
          this.passed = true;
        }
      }
      const last = events.at(-1);
      if (!last) {
        if (this.passed) return;
        // An empty page can still move the checkpoint past events the filter skipped; read on until it stops.
        if (page.checkpoint === undefined || page.checkpoint === this.readFrom) return;
        this.readFrom = page.checkpoint;
        continue;
      }
      await this.apply(events);
      this.position = last.position;
      this.readFrom = this.passed ? last.position : (page.checkpoint ?? last.position);
      this.options.onBatch?.(this.applied);
    }
  }

  /**
   * The targets' filter, or none when what it keeps of the log ahead is at least FILTERED_READ_MAX_SHARE of it:
   * counted once, where the events are kept, before the first read.
   */
  private async chooseFilter(): Promise<EventFilter | undefined> {
    if (this.readFilter !== null) return this.readFilter;
    const filter = this.filter;
    if (filter === undefined) return (this.readFilter = undefined);
    const [kept, all] = await Promise.all([this.store.countAfter(this.readFrom, { filter }), this.store.countAfter(this.readFrom)]);
    this.readFilter = kept >= all * FILTERED_READ_MAX_SHARE ? undefined : filter;
    return this.readFilter;
  }

  private async apply(events: readonly RecordedEvent[]): Promise<void> {
    const { schema } = this.options;
    let applied = 0;
    await this.knex.transaction(async (trx) => {
      // Nothing serves these tables yet: a crash before they are used drops them (a rebuild's swap commits as usual).
      await trx.raw('set local synchronous_commit = off');
      if (schema !== undefined) await trx.raw('select set_config(?, ?, true)', ['search_path', quoteIdentifier(schema)]);
      for (const [index, { projector, tables }] of this.targets.entries()) {
        const types = this.types[index];
        const own = types === undefined ? events : events.filter((event) => types.has(event.type));
        if (own.length === 0) continue;
        await projector.apply(own, trx, tables);
        applied += own.length;
      }
    });
    this.applied += applied;
  }
}

/** A name as PostgreSQL reads it between double quotes. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
