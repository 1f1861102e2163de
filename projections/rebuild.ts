// Rebuilds one projection from the start of the log into a fresh generation of tables while the current one
// keeps serving queries and the live runtime keeps applying to it, then swaps the new one in.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { comparePositions, type EventStore, type Position } from '../domain/event-store.js';
import { PageSize } from '../domain/read-pages.js';
import { tableNames, type Projector } from './projector.js';
import { filterOf, PROJECTION_REGISTRY, type ProjectionLease } from './runtime.js';

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
  lease?: ProjectionLease;
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
interface RegistryRow {
  generation: number;
  version: number;
  position: string | null;
}

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
  // Fewer events a read than the batch size when they are large: each page is held whole while it is applied.
  const pages = new PageSize(options.batchSize ?? DEFAULT_REBUILD_BATCH_SIZE);
  const filter = filterOf(projector);
  const from = await createNextGeneration(knex, projector);
  const generation = from.generation + 1;
  const tables = tableNames(projector, generation);

  let swapped = false;
  try {
    let total = await countEvents(store, projector, signal);
    const projecting = performance.now();
    let applied = 0;
    /** The last event applied to the new generation: its checkpoint once swapped. */
    let position: Position | undefined;
    /** Where reading goes on from; with a filter it can lie past `position`. */
    let readFrom: Position | undefined;

    const report = () => {
      total = Math.max(total, applied);
      const seconds = (performance.now() - projecting) / 1000;
      const eventsPerSecond = seconds > 0 ? applied / seconds : 0;
      const left = total - applied;
      options.onProgress?.({ applied, total, eventsPerSecond, etaSeconds: left === 0 ? 0 : eventsPerSecond > 0 ? left / eventsPerSecond : Infinity });
    };

    /** Applies everything after `readFrom` that the store shows now. */
    const catchUp = async () => {
      for (;;) {
        signal?.throwIfAborted();
        const page = await store.readAll({ after: readFrom, filter, limit: pages.limit });
        pages.measured(page.events);
        const last = page.events.at(-1);
        if (!last) {
          // An empty page can still move the checkpoint past events the filter skipped; read on until it stops.
          if (page.checkpoint === undefined || page.checkpoint === readFrom) return;
          readFrom = page.checkpoint;
          continue;
        }
        await knex.transaction(async (trx) => {
          // Nothing serves these tables until the swap, which commits as usual; a crash before it drops them.
          await trx.raw('set local synchronous_commit = off');
          await projector.apply(page.events, trx, tables);
        });
        applied += page.events.length;
        position = last.position;
        readFrom = page.checkpoint ?? last.position;
        if (applied > total) total = applied;
        report();
      }
    };

    report();
    let swapAttempts = 0;
    for (;;) {
      await catchUp();
      swapAttempts += 1;
      if (await swap(knex, projector, from, { generation, position, events: applied })) break;
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
      position: position ?? null,
      events: applied,
      seconds: (performance.now() - started) / 1000,
      eventsPerSecond: projectedSeconds > 0 ? applied / projectedSeconds : 0,
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
    await trx.raw(`lock table ${PROJECTION_REGISTRY} in share row exclusive mode`);
    const row = (await trx(PROJECTION_REGISTRY).where({ name: projector.name }).first('generation', 'version', 'position')) as RegistryRow | undefined;
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
    const row = (await trx(PROJECTION_REGISTRY).where({ name: projector.name }).forUpdate().first('generation', 'version', 'position')) as
      | RegistryRow
      | undefined;
    if (!row || row.generation !== from.generation) {
      throw new RebuildError(
        `projection ${projector.name} moved from generation ${from.generation} to ${row?.generation ?? 'none'} while it was being rebuilt; nothing was swapped`,
      );
    }
    // Only the same version's checkpoint says what the rebuild lacks; an older version's generation is frozen.
    const overtaken = row.version === projector.version && row.position !== null && (to.position === undefined || comparePositions(row.position, to.position) > 0);
    if (overtaken) return false;
    await trx(PROJECTION_REGISTRY)
      .where({ name: projector.name })
      .update({ version: projector.version, generation: to.generation, position: to.position ?? null, events: to.events, updated_at: trx.fn.now() });
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
  const row = (await knex(PROJECTION_REGISTRY).where({ name: projector.name }).first('generation')) as { generation: number } | undefined;
  if (row?.generation !== generation) await dropTables(knex, projector, generation);
}

/** How many events the projector reads, for the progress report. */
async function countEvents(store: EventStore, projector: Projector, signal: AbortSignal | undefined): Promise<number> {
  signal?.throwIfAborted();
  // Counted where the events are kept: a rebuild of a log of large events must not load them to report progress.
  return store.countAfter(undefined, { filter: filterOf(projector) });
}
