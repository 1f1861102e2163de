// The nodes read model: every node an agent reports from, whether it is reporting or silent, its GPUs' conditions
// and why it is unfit, if it is. The row holds the node's state as the domain folds it (`nodeDecider.evolve`), so
// the status rules live in one place, the domain; the columns beside it are what lists filter and sort by.
import { nodeDecider, nodeEvents, type Node, type NodeEvent } from '../../domain/node.js';
import { RowBatch } from '../row-batch.js';
import { BY_CREATION, foldRows, lifecycleColumns, parseEach, sortable, type Parsed } from './projecting.js';
import { acceptsOf, equals, flag, iso, lifecycle, listPage, oneOf, type Filters, type Lifecycle, type ReadModel } from './query.js';

type KnownNode = Exclude<Node, { status: 'absent' }>;

const NODE_STATUSES: readonly KnownNode['status'][] = ['reporting', 'silent'];

interface NodeRow extends Lifecycle {
  id: string;
  cluster_id: string;
  node_name: string;
  status: KnownNode['status'];
  unfit: boolean;
  state: KnownNode;
}

const nodeItem = (row: NodeRow) => {
  const { state } = row;
  return {
    id: row.id,
    clusterId: state.clusterId,
    name: state.nodeName,
    agentId: state.agentId,
    status: state.status,
    firstSeenAt: state.firstSeenAt,
    // The log's last word that the node reports: when it was first seen or heard from again; batches in between
    // are telemetry, shown with the node's latest readings.
    lastHeardOfAt: state.lastSeenAt,
    silentSince: state.silentSince ?? null,
    unfit: state.unfit.map(({ kind, gpu, reason, since, fact }) => ({ kind, gpu, reason, since, fact })),
    gpus: state.gpus,
    ...lifecycle(row),
  };
};
export type NodeItem = ReturnType<typeof nodeItem>;

const nodeFilters: Filters = {
  clusterId: equals('cluster_id'),
  status: oneOf('status', NODE_STATUSES),
  unfit: flag('unfit'),
};

export const nodes: ReadModel<'nodes'> = {
  projector: {
    name: 'nodes',
    version: 1,
    eventTypes: nodeEvents.types,
    tables: ['nodes'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.nodes, (t) => {
        sortable(t, 'id').primary();
        t.text('cluster_id').notNullable();
        t.text('node_name').notNullable();
        t.text('status').notNullable();
        t.boolean('unfit').notNullable();
        t.jsonb('state').notNullable();
        lifecycleColumns(t, tables.nodes);
        t.index(['cluster_id'], `${tables.nodes}_cluster_idx`);
      });
    },
    async apply(events, trx, tables) {
      const rows = new RowBatch(trx, tables.nodes, ['id']);
      const idOf = ({ event }: Parsed<NodeEvent>) => event.stream.slice('node-'.length);
      await foldRows(rows, parseEach(nodeEvents, events), idOf, (row, { e }) => {
        const state = nodeDecider.evolve((row?.['state'] as Node | undefined) ?? nodeDecider.initialState, e);
        if (state.status === 'absent') return undefined;
        return { cluster_id: state.clusterId, node_name: state.nodeName, status: state.status, unfit: state.unfit.length > 0, state };
      });
      await rows.flush();
    },
  },
  filters: Object.keys(nodeFilters),
  accepts: acceptsOf(nodeFilters),
  list: (knex, tables, page) => listPage(knex(tables.nodes).select('*'), BY_CREATION, nodeFilters, page, nodeItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.nodes).where({ id }).first()) as NodeRow | undefined;
    return row && nodeItem(row);
  },
};

/** For the fleet view: every node's id, cluster and name, and whether it is silent or unfit. */
export async function nodeSummaries(
  knex: Parameters<ReadModel['list']>[0],
  table: string,
): Promise<{ id: string; clusterId: string; name: string; status: string; unfit: boolean; lastHeardOfAt: string | null }[]> {
  const rows = (await knex(table).select('id', 'cluster_id', 'node_name', 'status', 'unfit', 'state')) as NodeRow[];
  return rows.map((row) => ({
    id: row.id,
    clusterId: row.cluster_id,
    name: row.node_name,
    status: row.status,
    unfit: row.unfit,
    lastHeardOfAt: iso(row.state.lastSeenAt),
  }));
}
