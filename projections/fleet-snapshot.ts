// Fleet snapshots at a time: every read model projected from the start of the log up to a point (a time or a position)
// into a schema of its own, read with the live read models' own queries, and dropped after use or when it expires.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { EventStore, Position } from '../domain/event-store.js';
import { fleetCost, fleetCostProjector, type FleetCost } from './fleet-cost.js';
import { tableNames, type Projector, type TableNames } from './projector.js';
import { READ_MODELS, type Page, type PageOf, type ReadModel } from './read-models.js';
import { GenerationFeed, quoteIdentifier, type GenerationTarget } from './rebuild.js';
import type { AsOf } from './time-travel.js';

/** The read models a snapshot holds, by the name its rows are served and written under (the query API's path). */
export const SNAPSHOT_READ_MODELS: Readonly<Record<string, ReadModel>> = {
  clusters: READ_MODELS.clusters,
  workloads: READ_MODELS.workloads,
  deployments: READ_MODELS.deployments,
  'action-plans': READ_MODELS.actionPlans,
  policies: READ_MODELS.policies,
  'policy-decisions': READ_MODELS.policyDecisions,
  nodes: READ_MODELS.nodes,
  'deployment-uptime': READ_MODELS.deploymentUptime,
};
/** The fleet's cost, a document rather than a list. */
export const FLEET_COST = 'fleet-cost';
export const SNAPSHOT_CONTENTS = [...Object.keys(SNAPSHOT_READ_MODELS), FLEET_COST] as const;

const PROJECTORS: readonly Projector[] = [...Object.values(SNAPSHOT_READ_MODELS).map((model) => model.projector as Projector), fleetCostProjector as Projector];

/** Every snapshot's schema is named with this prefix and the snapshot's id (a UUID without its dashes). */
export const SNAPSHOT_SCHEMA_PREFIX = 'sentinel_snapshot_';
/** The generation a snapshot's tables are named for, inside its own schema. */
const GENERATION = 1;
/** The snapshot's own row, beside its tables. */
const META = 'snapshot';

export type SnapshotState = 'projecting' | 'ready' | 'failed';

export interface SnapshotStatus {
  id: string;
  /** The point as asked: an ISO 8601 time or a log position. */
  at: string;
  status: SnapshotState;
  /** The last event applied (null while projecting, or when nothing lay at or before the point). */
  position: Position | null;
  /** Events applied, counted once per read model that read them. */
  events: number;
  createdAt: string;
  finishedAt: string | null;
  /** When it is dropped unless removed before. */
  expiresAt: string;
  /** Why it failed. */
  error?: string;
  /** What can be read from it: each read model's rows, and the fleet's cost. */
  contents: readonly string[];
}

interface MetaRow {
  id: string;
  at: string;
  status: SnapshotState;
  position: string | null;
  events: string | number;
  created_at: Date | string;
  finished_at: Date | string | null;
  expires_at: Date | string;
  error: string | null;
}

/** A snapshot that is not there (never made, removed, or expired), or not ready to be read. */
export class SnapshotUnavailable extends Error {
  override name = 'SnapshotUnavailable';
  constructor(
    readonly id: string,
    readonly reason: 'missing' | SnapshotState,
    message: string,
  ) {
    super(message);
  }
}

export function schemaOf(id: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw new Error(`a snapshot id is a UUID, not ${JSON.stringify(id)}`);
  return SNAPSHOT_SCHEMA_PREFIX + id.replaceAll('-', '').toLowerCase();
}

/**
 * Runs `work` in a transaction whose names resolve in the snapshot's schema alone (and `pg_catalog`): the read models'
 * own queries and projectors run there unchanged, and a name they do not own cannot reach a live table.
 */
async function inSnapshot<T>(knex: Knex, id: string, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return knex.transaction(async (trx) => {
    await trx.raw('select set_config(?, ?, true)', ['search_path', quoteIdentifier(schemaOf(id))]);
    return work(trx);
  });
}

function targets(): GenerationTarget[] {
  return PROJECTORS.map((projector) => ({ projector, tables: tableNames(projector, GENERATION) }));
}

/** Creates the snapshot's schema, its row (status `projecting`) and the empty tables of every read model, in one transaction. */
export async function createSnapshot(knex: Knex, options: { id: string; at: string; ttlSeconds: number }): Promise<SnapshotStatus> {
  const schema = schemaOf(options.id);
  await knex.transaction(async (trx) => {
    await trx.raw(`create schema ${quoteIdentifier(schema)}`);
    await trx.raw('select set_config(?, ?, true)', ['search_path', quoteIdentifier(schema)]);
    await trx.schema.createTable(META, (t) => {
      t.text('id').primary();
      t.text('at').notNullable();
      t.text('status').notNullable();
      t.text('position');
      t.bigInteger('events').notNullable();
      t.timestamp('created_at', { useTz: true }).notNullable();
      t.timestamp('finished_at', { useTz: true });
      t.timestamp('expires_at', { useTz: true }).notNullable();
      t.text('error');
    });
    await trx(META).insert({
      id: options.id,
      at: options.at,
      status: 'projecting',
      position: null,
      events: 0,
      created_at: trx.fn.now(),
      expires_at: trx.raw(`now() + make_interval(secs => ?)`, [options.ttlSeconds]),
    });
    for (const { projector, tables } of targets()) await projector.createTables(trx, tables);
  });
  return (await snapshotStatus(knex, options.id))!;
}

export interface ProjectSnapshotOptions {
  batchSize?: number;
  signal?: AbortSignal;
  onBatch?: (applied: number) => void;
}

/**
 * Projects the log up to the point into the snapshot's tables, with the machinery a rebuild uses, then marks it
 * ready; a failure marks it failed, with the reason, and is thrown on.
 */
export async function projectSnapshot(knex: Knex, store: EventStore, id: string, point: AsOf, options: ProjectSnapshotOptions = {}): Promise<SnapshotStatus> {
  const feed = new GenerationFeed(knex, store, targets(), { ...options, until: point, schema: schemaOf(id) });
  try {
    await feed.catchUp();
  } catch (error) {
    await inSnapshot(knex, id, (trx) =>
      trx(META).update({ status: 'failed', finished_at: trx.fn.now(), error: error instanceof Error ? error.message : String(error) }),
    ).catch(() => undefined);
    throw error;
  }
  await inSnapshot(knex, id, (trx) => trx(META).update({ status: 'ready', position: feed.position ?? null, events: feed.applied, finished_at: trx.fn.now() }));
  return (await snapshotStatus(knex, id))!;
}

/** The snapshot's status; undefined when there is none of that id. */
export async function snapshotStatus(knex: Knex, id: string): Promise<SnapshotStatus | undefined> {
  if (!(await schemaExists(knex, schemaOf(id)))) return undefined;
  // Dropped between the two reads: as good as never there.
  const row = (await inSnapshot(knex, id, (trx) => trx(META).first('*')).catch(() => undefined)) as MetaRow | undefined;
  return row && statusOf(row);
}

function statusOf(row: MetaRow): SnapshotStatus {
  const iso = (value: Date | string) => new Date(value).toISOString();
  return {
    id: row.id,
    at: row.at,
    status: row.status,
    position: row.position,
    events: Number(row.events),
    createdAt: iso(row.created_at),
    finishedAt: row.finished_at === null ? null : iso(row.finished_at),
    expiresAt: iso(row.expires_at),
    ...(row.error !== null ? { error: row.error } : {}),
    contents: SNAPSHOT_CONTENTS,
  };
}

/** Throws unless the snapshot is there and ready to read. */
async function ready(knex: Knex, id: string): Promise<void> {
  const status = await snapshotStatus(knex, id);
  if (status === undefined) throw new SnapshotUnavailable(id, 'missing', `fleet snapshot ${id} does not exist (removed, expired, or never made)`);
  if (status.status === 'projecting') throw new SnapshotUnavailable(id, 'projecting', `fleet snapshot ${id} is still being projected; its status says when it is ready`);
  if (status.status === 'failed') throw new SnapshotUnavailable(id, 'failed', `fleet snapshot ${id} failed: ${status.error ?? 'no reason recorded'}`);
}

/** One page of a read model's rows in the snapshot, with the paging and filters of the live list. */
export async function listSnapshot(knex: Knex, id: string, name: string, page: Page): Promise<PageOf> {
  const model = SNAPSHOT_READ_MODELS[name];
  if (model === undefined) throw new Error(`a snapshot holds ${SNAPSHOT_CONTENTS.join(', ')}; not ${JSON.stringify(name)}`);
  await ready(knex, id);
  return inSnapshot(knex, id, (trx) => model.list(trx, tableNames(model.projector, GENERATION) as TableNames, page));
}

/** The fleet's cost as the snapshot shows it. */
export async function snapshotFleetCost(knex: Knex, id: string): Promise<FleetCost> {
  await ready(knex, id);
  return inSnapshot(knex, id, (trx) => fleetCost(trx, tableNames(fleetCostProjector, GENERATION)));
}

/** Drops the snapshot and everything in it; false when there was none. */
export async function dropSnapshot(knex: Knex, id: string): Promise<boolean> {
  const schema = schemaOf(id);
  if (!(await schemaExists(knex, schema))) return false;
  await knex.raw(`drop schema if exists ${quoteIdentifier(schema)} cascade`);
  return true;
}

/** Drops every snapshot whose time is up; answers the ids dropped. */
export async function dropExpiredSnapshots(knex: Knex): Promise<string[]> {
  const rows = (await knex('pg_namespace').where('nspname', 'like', `${SNAPSHOT_SCHEMA_PREFIX}%`).select('nspname')) as { nspname: string }[];
  const dropped: string[] = [];
  for (const { nspname } of rows) {
    const expired = (await knex
      .withSchema(nspname)
      .from(META)
      .where('expires_at', '<', knex.fn.now())
      .first('id')
      .catch(() => undefined)) as { id: string } | undefined;
    if (expired === undefined) continue;
    await knex.raw(`drop schema if exists ${quoteIdentifier(nspname)} cascade`);
    dropped.push(expired.id);
  }
  return dropped;
}

async function schemaExists(knex: Knex, schema: string): Promise<boolean> {
  return (await knex('pg_namespace').where('nspname', schema).first('nspname')) !== undefined;
}

// ---- the service the query API serves snapshots from ---------------------------------------------------------

export interface FleetSnapshotsOptions {
  /** How long a snapshot is kept after it was asked for. */
  ttlSeconds: number;
  /** How often expired snapshots are looked for. */
  sweepSeconds?: number;
  batchSize?: number;
  logger: Logger;
}

/**
 * Fleet snapshots on demand: `create` answers at once and projects in the background; the status says when the rows
 * can be read. Expired snapshots are dropped on a timer, by whichever process serves the API.
 */
export class FleetSnapshots {
  private readonly abort = new AbortController();
  private readonly projecting = new Set<Promise<unknown>>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    private readonly knex: Knex,
    private readonly store: EventStore,
    private readonly options: FleetSnapshotsOptions,
  ) {}

  async create(id: string, at: string, point: AsOf): Promise<SnapshotStatus> {
    const created = await createSnapshot(this.knex, { id, at, ttlSeconds: this.options.ttlSeconds });
    const work = projectSnapshot(this.knex, this.store, id, point, { batchSize: this.options.batchSize, signal: this.abort.signal })
      .catch((error: unknown) => this.options.logger.error({ err: error, snapshot: id }, 'projecting a fleet snapshot failed; its status says why'))
      .finally(() => this.projecting.delete(work));
    this.projecting.add(work);
    return created;
  }

  status(id: string): Promise<SnapshotStatus | undefined> {
    return snapshotStatus(this.knex, id);
  }

  list(id: string, name: string, page: Page): Promise<PageOf> {
    return listSnapshot(this.knex, id, name, page);
  }

  fleetCost(id: string): Promise<FleetCost> {
    return snapshotFleetCost(this.knex, id);
  }

  remove(id: string): Promise<boolean> {
    return dropSnapshot(this.knex, id);
  }

  start(): void {
    const sweep = () => {
      this.sweeping = dropExpiredSnapshots(this.knex).then(
        (dropped) => {
          if (dropped.length > 0) this.options.logger.info({ snapshots: dropped }, 'dropped expired fleet snapshots');
        },
        (error: unknown) => this.options.logger.warn({ err: error }, 'dropping expired fleet snapshots failed; trying again at the next sweep'),
      );
    };
    sweep();
    this.sweeper = setInterval(sweep, (this.options.sweepSeconds ?? 60) * 1000).unref();
  }

  /** Stops the sweeper and the snapshots being projected (each is marked failed). */
  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    this.abort.abort();
    await Promise.allSettled([...this.projecting, this.sweeping]);
  }
}
