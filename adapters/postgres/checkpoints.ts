// The checkpoint registry: how far each projector and each reactor has followed the log, one row each in one table,
// with a projector's version and serving generation beside its checkpoint. The only module that names the table
// or reads its rows, so that both runtimes, the rebuild, the routes and the CLI need not import each other.
import type { Knex } from 'knex';
import type { Position } from '../../domain/event-store.js';

/** The registry table (migration 008-one-checkpoint-table). */
export const CHECKPOINT_REGISTRY = 'sentinel_checkpoints';

/** What follows the log: a projector and a reactor may share a name, as their leases are named apart. */
export type CheckpointKind = 'projection' | 'reactor';

export interface ProjectionRow {
  name: string;
  version: number;
  generation: number;
  /** The last event applied; null before the first. */
  position: Position | null;
  /** Events applied to the serving generation. */
  events: number;
  updatedAt: Date;
}

export interface ReactorCheckpoint {
  name: string;
  /** The last event handled: the reactor goes on after it. */
  position: Position;
  updatedAt: Date;
}

interface Row {
  name: string;
  version: number | null;
  generation: number | null;
  position: string | null;
  events: string | number | null;
  updated_at: Date | string;
}

const projections = (db: Knex | Knex.Transaction) => db(CHECKPOINT_REGISTRY).where({ kind: 'projection' satisfies CheckpointKind });
const reactors = (db: Knex | Knex.Transaction) => db(CHECKPOINT_REGISTRY).where({ kind: 'reactor' satisfies CheckpointKind });

function toProjection(row: Row): ProjectionRow {
  if (row.version === null || row.generation === null) throw new Error(`projection ${row.name} has no version or generation in ${CHECKPOINT_REGISTRY}`);
  return {
    name: row.name,
    version: row.version,
    generation: row.generation,
    position: row.position,
    events: Number(row.events ?? 0),
    updatedAt: new Date(row.updated_at),
  };
}

function toReactor(row: Pick<Row, 'name' | 'position' | 'updated_at'>): ReactorCheckpoint {
  if (row.position === null) throw new Error(`reactor ${row.name} has a checkpoint row without a position in ${CHECKPOINT_REGISTRY}`);
  return { name: row.name, position: row.position, updatedAt: new Date(row.updated_at) };
}

// ---- projectors ------------------------------------------------------------------------------------------------

/** The advisory lock class of the registry: 0x43484b50, 'CHKP' (the event store's stream locks use 'SENT'). */
const REGISTRY_LOCK_CLASS = 1128811344;

/**
 * Serialises registering projectors and creating generations across processes, until the transaction ends. An
 * advisory lock rather than a lock on the table: reactors' checkpoint writes and projectors' advances, which
 * never need it, go on while a generation's tables are created.
 */
export async function lockProjections(trx: Knex.Transaction): Promise<void> {
  await trx.raw('select pg_advisory_xact_lock(?, 0)', [REGISTRY_LOCK_CLASS]);
}

/** A projector's row; `forUpdate` locks it until the transaction ends. */
export async function projectionRow(db: Knex | Knex.Transaction, name: string, options: { forUpdate?: boolean } = {}): Promise<ProjectionRow | undefined> {
  const query = projections(db).where({ name });
  if (options.forUpdate) query.forUpdate();
  const row = (await query.first('name', 'version', 'generation', 'position', 'events', 'updated_at')) as Row | undefined;
  return row && toProjection(row);
}

/** Every projector's row, or those named, by name. */
export async function projectionRows(db: Knex | Knex.Transaction, names?: readonly string[]): Promise<ProjectionRow[]> {
  const query = projections(db).orderBy('name');
  if (names !== undefined) query.whereIn('name', names);
  return ((await query.select('name', 'version', 'generation', 'position', 'events', 'updated_at')) as Row[]).map(toProjection);
}

/** A projector seen for the first time: its first generation, which has applied nothing. */
export async function insertProjection(trx: Knex.Transaction, projection: { name: string; version: number }): Promise<void> {
  await trx(CHECKPOINT_REGISTRY).insert({
    kind: 'projection' satisfies CheckpointKind,
    name: projection.name,
    version: projection.version,
    generation: 1,
    position: null,
    events: 0,
    updated_at: trx.fn.now(),
  });
}

/**
 * Moves a projector's checkpoint from `from` to `to`, counting `events` more applied, only while the row still
 * says `generation` and `from`: false when it does not (a rebuild swapped in a new generation, or another writer).
 */
export async function advanceProjection(
  trx: Knex.Transaction,
  move: { name: string; generation: number; from: Position | null; to: Position; events: number },
): Promise<boolean> {
  const moved = await projections(trx)
    .where({ name: move.name, generation: move.generation })
    .andWhere((where) => (move.from === null ? where.whereNull('position') : where.where('position', move.from)))
    .update({ position: move.to, events: trx.raw('events + ?', [move.events]), updated_at: trx.fn.now() })
    // The commit that follows does not wait for the WAL to reach the disk (SET LOCAL synchronous_commit = off, said
    // here rather than in a round trip of its own): a read model and its checkpoint move together, so losing the
    // last few commits in a server crash only moves the checkpoint back with them, and they are applied again.
    .returning(trx.raw("set_config('synchronous_commit', 'off', true) as commit_mode"));
  return moved.length === 1;
}

/** Points a projector at a rebuilt generation, its version and its checkpoint. */
export async function swapProjection(
  trx: Knex.Transaction,
  to: { name: string; version: number; generation: number; position: Position | null; events: number },
): Promise<void> {
  await projections(trx)
    .where({ name: to.name })
    .update({ version: to.version, generation: to.generation, position: to.position, events: to.events, updated_at: trx.fn.now() });
}

/** The lowest checkpoint of any projector that has applied something: every read model has applied up to it. */
export async function projectionFloor(db: Knex): Promise<Position | undefined> {
  const row = (await projections(db).whereNotNull('position').min({ floor: 'position' }).first()) as { floor: string | null } | undefined;
  return row?.floor ?? undefined;
}

// ---- reactors --------------------------------------------------------------------------------------------------

/** Every reactor's checkpoint: the position it has handled up to, and when that last moved. */
export async function reactorCheckpoints(db: Knex): Promise<ReactorCheckpoint[]> {
  const rows = (await reactors(db).orderBy('name').select('name', 'position', 'updated_at')) as Pick<Row, 'name' | 'position' | 'updated_at'>[];
  return rows.map(toReactor);
}

/** Where a reactor goes on from; undefined before it has handled anything. */
export async function reactorCheckpoint(db: Knex, name: string): Promise<Position | undefined> {
  const row = (await reactors(db).where({ name }).first('position')) as { position: string | null } | undefined;
  return row?.position ?? undefined;
}

/** Moves a reactor's checkpoint to `position`, creating it on the reactor's first event. */
export async function saveReactorCheckpoint(db: Knex, name: string, position: Position): Promise<void> {
  await db(CHECKPOINT_REGISTRY)
    .insert({ kind: 'reactor' satisfies CheckpointKind, name, position, updated_at: db.fn.now() })
    .onConflict(['kind', 'name'])
    .merge(['position', 'updated_at']);
}

/** Drops a reactor's checkpoint: a reactor of that name then handles the log again from its start. */
export async function forgetReactorCheckpoint(db: Knex, name: string): Promise<void> {
  await reactors(db).where({ name }).delete();
}
