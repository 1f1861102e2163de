// What the fleet costs per hour now: one row per placed deployment, from the admission ledger, summed by team,
// cluster and GPU SKU.
import type { Knex } from 'knex';
import { LEDGER_STREAM, ledgerEvents, type Placement } from '../domain/ledger.js';
import { roundUsd } from '../domain/pricing.js';
import type { RecordedEvent } from '../domain/event-store.js';
import type { Projector, TableNames } from './projector.js';

/** The team of placements whose workload has no `team` label. */
export const NO_TEAM = '(none)';

/** Rows per statement: 12 columns a row, far below PostgreSQL's parameter limit. */
const INSERT_CHUNK = 1000;

type FleetCostTables = 'fleet_placements';

/** Every figure is in dollars of whole micro-dollars: at most six decimals, summed exactly. */
export interface FleetCost {
  /** $/hour of everything placed. */
  hourlyUsd: number;
  byTeam: { team: string; hourlyUsd: number; gpus: number }[];
  byCluster: { clusterId: string; hourlyUsd: number; gpus: number }[];
  /** Deployments holding GPUs only; `hourlyUsd` is their whole cost, CPU and memory included. */
  byGpuSku: { sku: string; gpus: number; hourlyUsd: number }[];
  /** Placed deployments, those scaled to zero included. */
  deployments: number;
}

// ---- the projector --------------------------------------------------------------------------------------

function placementRow(deploymentId: string, placed: Placement, event: RecordedEvent) {
  const { footprint } = placed;
  return {
    deployment_id: deploymentId,
    cluster_id: placed.clusterId,
    namespace: placed.namespace,
    team: placed.team ?? null,
    gpu_sku: footprint.gpuSku ?? null,
    gpus: footprint.gpus,
    cpu_millicores: footprint.cpuMillicores,
    memory_bytes: footprint.memoryBytes,
    replicas: footprint.replicas,
    hourly_usd: roundUsd(placed.hourlyUsd),
    updated_position: event.position,
    updated_at: event.recordedAt,
  };
}

export const fleetCostProjector: Projector<FleetCostTables> = {
  name: 'fleet-cost',
  // 2: money as numeric, summed exactly (1 summed float8, whose cent depended on the order rows were read in).
  version: 2,
  eventTypes: ledgerEvents.types,
  tables: ['fleet_placements'],

  async createTables(trx, tables) {
    await trx.schema.createTable(tables.fleet_placements, (t) => {
      // Byte order, not the database locale's, as every read model's keys.
      t.specificType('deployment_id', 'text collate "C"').primary();
      t.text('cluster_id').notNullable();
      t.text('namespace').notNullable();
      t.text('team');
      t.text('gpu_sku');
      // The ledger's quantities are JSON numbers: float8 keeps them as they are and reads back as numbers.
      t.double('gpus').notNullable();
      t.double('cpu_millicores').notNullable();
      t.double('memory_bytes').notNullable();
      t.double('replicas').notNullable();
      // Whole micro-dollars as numeric, so that sum() is exact and the same in whatever order it reads the rows.
      // The name stays: the previous generation, float8, keeps serving the same query until a rebuild swaps.
      t.decimal('hourly_usd', 20, 6).notNullable();
      t.specificType('updated_position', 'text collate "C"').notNullable();
      t.timestamp('updated_at', { useTz: true }).notNullable();
    });
  },

  async apply(events, trx, tables) {
    // Folded in memory in log order, then written in a few statements: a snapshot empties the table, and each
    // placement ends up written (or deleted) once with its last state.
    let snapshotted = false;
    const placements = new Map<string, ReturnType<typeof placementRow> | null>();
    for (const event of events) {
      if (event.stream !== LEDGER_STREAM) continue;
      const e = ledgerEvents.parse(event.type, event.schemaVersion, event.data);
      if (e.type === 'LedgerSnapshotted') {
        // The whole state: what the table holds is replaced by the snapshot's placements.
        snapshotted = true;
        placements.clear();
        for (const [id, placed] of Object.entries(e.data.placements)) placements.set(id, placementRow(id, placed, event));
        continue;
      }
      if (e.type === 'PolicySetChanged') continue;
      const { targetId, placement } = e.data;
      // Absent: the change left the placement as it was (a restart).
      if (placement === undefined) continue;
      placements.set(targetId, placement === null ? null : placementRow(targetId, placement, event));
    }
    const table = () => trx(tables.fleet_placements);
    if (snapshotted) await table().delete();
    const removed = [...placements].flatMap(([id, row]) => (row === null ? [id] : []));
    const rows = [...placements.values()].filter((row) => row !== null);
    for (let i = 0; i < removed.length && !snapshotted; i += INSERT_CHUNK) await table().whereIn('deployment_id', removed.slice(i, i + INSERT_CHUNK)).delete();
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) await table().insert(rows.slice(i, i + INSERT_CHUNK)).onConflict('deployment_id').merge();
  },
};

// ---- the query ------------------------------------------------------------------------------------------

interface GroupRow {
  team: string | null;
  cluster_id: string | null;
  gpu_sku: string | null;
  /** grouping(team, cluster_id, gpu_sku): a bit set for each column the row is not grouped by. */
  grouped: number | string;
  /** numeric: a string from PostgreSQL. */
  hourly_usd: number | string | null;
  gpus: number | string | null;
  deployments: number | string;
}

const BY_TEAM = 0b011;
const BY_CLUSTER = 0b101;
const BY_SKU = 0b110;
const TOTAL = 0b111;

/** Most expensive first; ties by key in byte order, so the answer is the same on every database. */
function byCost<Item extends { hourlyUsd: number }>(items: Item[], key: (item: Item) => string): Item[] {
  return items.sort((a, b) => b.hourlyUsd - a.hourlyUsd || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** $/hour now, in total and by team, cluster and GPU SKU. */
export async function fleetCost(knex: Knex, tables: TableNames<FleetCostTables>): Promise<FleetCost> {
  // One statement, so the totals and every breakdown read the same state of the table.
  const result = (await knex.raw(
    `select team, cluster_id, gpu_sku, grouping(team, cluster_id, gpu_sku) as grouped,
            sum(hourly_usd) as hourly_usd, sum(gpus) as gpus, count(*) as deployments
       from (select coalesce(team, ?) as team, cluster_id, gpu_sku, hourly_usd, gpus from ??) as placed
      group by grouping sets ((team), (cluster_id), (gpu_sku), ())`,
    [NO_TEAM, tables.fleet_placements],
  )) as { rows: GroupRow[] };

  const answer: FleetCost = { hourlyUsd: 0, byTeam: [], byCluster: [], byGpuSku: [], deployments: 0 };
  for (const row of result.rows) {
    // Exact already; the rounding only tidies what a previous generation's float8 sum reads while it still serves.
    const hourlyUsd = roundUsd(Number(row.hourly_usd ?? 0));
    const gpus = Number(row.gpus ?? 0);
    switch (Number(row.grouped)) {
      case BY_TEAM:
        answer.byTeam.push({ team: row.team!, hourlyUsd, gpus });
        break;
      case BY_CLUSTER:
        answer.byCluster.push({ clusterId: row.cluster_id!, hourlyUsd, gpus });
        break;
      case BY_SKU:
        // Placements without a GPU, or with a SKU but no replicas, hold no GPU to name.
        if (row.gpu_sku !== null && gpus > 0) answer.byGpuSku.push({ sku: row.gpu_sku, gpus, hourlyUsd });
        break;
      case TOTAL:
        answer.hourlyUsd = hourlyUsd;
        answer.deployments = Number(row.deployments);
        break;
    }
  }
  byCost(answer.byTeam, (item) => item.team);
  byCost(answer.byCluster, (item) => item.clusterId);
  byCost(answer.byGpuSku, (item) => item.sku);
  return answer;
}
