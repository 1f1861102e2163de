// The clusters read model: every registered cluster, whether it takes placements, and whether Sentinel reaches it.
import { clusterEvents, reconnectsAfter, type ClusterStatus, type ConnectionState, type Credentials } from '../../domain/cluster.js';
import { RowBatch } from '../row-batch.js';
import { BY_CREATION, created, lifecycleColumns, parseEach, sortable, touched } from './projecting.js';
import { acceptsOf, equals, lifecycle, listPage, oneOf, type Filters, type Lifecycle, type ReadModel } from './query.js';

/** Credentials as the read side shows them: the source, and a kubeconfig file's path; never a secret reference. */
function visibleCredentials(credentials: Credentials): { source: Credentials['source']; path?: string } {
  return credentials.source === 'kubeconfig-file' ? { source: credentials.source, path: credentials.path } : { source: credentials.source };
}

const CLUSTER_STATUSES: readonly ClusterStatus[] = ['active', 'cordoned', 'deregistered'];

interface ClusterRow extends Lifecycle {
  id: string;
  name: string;
  api_server: string;
  region: string;
  labels: Record<string, string>;
  gpu_skus: string[];
  credentials: { source: string; path?: string };
  status: ClusterStatus;
  connection: ConnectionState;
  connection_since: Date | null;
  connection_cause: string | null;
  cordon_reason: string | null;
}

const clusterItem = (row: ClusterRow) => ({
  id: row.id,
  name: row.name,
  apiServer: row.api_server,
  region: row.region,
  labels: row.labels,
  gpuSkus: row.gpu_skus,
  credentials: row.credentials,
  status: row.status,
  cordonReason: row.cordon_reason,
  // Whether Sentinel reaches it: `since` the state was recorded, `cause` of the failure while unreachable.
  connection: { state: row.connection, since: row.connection_since, cause: row.connection_cause },
  ...lifecycle(row),
});

const clusterFilters: Filters = { status: oneOf('status', CLUSTER_STATUSES), region: equals('region') };

export const clusters: ReadModel<'clusters'> = {
  projector: {
    name: 'clusters',
    version: 2,
    eventTypes: clusterEvents.types,
    tables: ['clusters'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.clusters, (t) => {
        sortable(t, 'id').primary();
        t.text('name').notNullable();
        t.text('api_server').notNullable();
        t.text('region').notNullable();
        t.jsonb('labels').notNullable();
        t.jsonb('gpu_skus').notNullable();
        t.jsonb('credentials').notNullable();
        t.text('status').notNullable();
        t.text('cordon_reason');
        t.text('connection').notNullable();
        t.timestamp('connection_since', { useTz: true });
        t.text('connection_cause');
        lifecycleColumns(t, tables.clusters);
      });
    },
    async apply(events, trx, tables) {
      const parsed = parseEach(clusterEvents, events);
      const rows = new RowBatch(trx, tables.clusters, ['id']);
      await rows.load(parsed.map(({ e }) => [e.data.clusterId]));
      for (const { event, e } of parsed) {
        const id = e.data.clusterId;
        switch (e.type) {
          case 'ClusterRegistered': {
            const { spec } = e.data;
            rows.insert({
              id,
              name: spec.name,
              api_server: spec.apiServer,
              region: spec.region,
              labels: spec.labels,
              gpu_skus: spec.gpuSkus,
              credentials: visibleCredentials(spec.credentials),
              status: 'active',
              cordon_reason: null,
              connection: 'unknown',
              connection_since: event.recordedAt,
              connection_cause: null,
              ...created(event),
            });
            break;
          }
          case 'ClusterUpdated': {
            const { name, apiServer, region, labels, gpuSkus, credentials } = e.data.changes;
            rows.update([id], {
              ...(name !== undefined ? { name } : {}),
              ...(apiServer !== undefined ? { api_server: apiServer } : {}),
              ...(region !== undefined ? { region } : {}),
              ...(labels !== undefined ? { labels } : {}),
              ...(gpuSkus !== undefined ? { gpu_skus: gpuSkus } : {}),
              ...(credentials !== undefined ? { credentials: visibleCredentials(credentials) } : {}),
              ...(reconnectsAfter(e.data.changes) ? { connection: 'unknown', connection_since: event.recordedAt, connection_cause: null } : {}),
              ...touched(event),
            });
            break;
          }
          case 'ClusterCordoned':
            rows.update([id], { status: 'cordoned', cordon_reason: e.data.reason ?? null, ...touched(event) });
            break;
          case 'ClusterUncordoned':
            rows.update([id], { status: 'active', cordon_reason: null, ...touched(event) });
            break;
          case 'ClusterDeregistered':
            rows.update([id], { status: 'deregistered', ...touched(event) });
            break;
          case 'ClusterConnected':
            rows.update([id], { connection: 'connected', connection_since: event.recordedAt, connection_cause: null, ...touched(event) });
            break;
          case 'ClusterUnreachable':
            rows.update([id], { connection: 'unreachable', connection_since: event.recordedAt, connection_cause: e.data.cause, ...touched(event) });
            break;
        }
      }
      await rows.flush();
    },
  },
  filters: Object.keys(clusterFilters),
  accepts: acceptsOf(clusterFilters),
  list: (knex, tables, page) => listPage(knex(tables.clusters).select('*'), BY_CREATION, clusterFilters, page, clusterItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.clusters).where({ id }).first()) as ClusterRow | undefined;
    return row && clusterItem(row);
  },
};
