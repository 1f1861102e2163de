// The read models the query API serves: clusters, workloads, deployments, action plans, policies, policy
// decisions and nodes, each a projector (events → tables) with the queries that read its tables.
import type { Knex } from 'knex';
import { actionPlanEvents, actionTarget, type ActionStatus, type PlanStatus } from '../domain/action-plan.js';
import { clusterEvents, type ClusterStatus, type ConnectionState, type Credentials } from '../domain/cluster.js';
import { deploymentEvents, type DeploymentStatus } from '../domain/deployment.js';
import { policyEvents } from '../domain/policy-evaluation.js';
import { POLICY_SET_STREAM, policySetEvents } from '../domain/policy-set.js';
import { POLICY_MODES, POLICY_TYPES } from '../domain/policy.js';
import { id as uuidText } from '../domain/schemas.js';
import { workloadEvents, type WorkloadStatus } from '../domain/workload.js';
import { fleetCostProjector } from './fleet-cost.js';
import { deploymentUptime } from './read-models/deployment-uptime.js';
import { nodes } from './read-models/nodes.js';
import { insertRows, RowBatch, type Row } from './row-batch.js';
import type { Projector, TableNames } from './projector.js';
import {
  acceptsOf,
  contains,
  created,
  equals,
  filter,
  filterText,
  flag,
  instantFilter,
  iso,
  json,
  lifecycle,
  lifecycleColumns,
  listPage,
  oneOf,
  parse,
  sortable,
  touched,
  type Filters,
  type Lifecycle,
  type ReadModel,
} from './read-models/query.js';

export { decodeCursor, encodeCursor, instant, InvalidQuery, MAX_PAGE_SIZE, ORDERS, type Order, type Page, type PageOf, type ReadModel } from './read-models/query.js';

const ORDER = ['created_position', 'id'] as const;

// ---- clusters -----------------------------------------------------------------------------------------------

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
        lifecycleColumns(t);
        t.unique(['created_position', 'id'], { indexName: `${tables.clusters}_order_idx` });
      });
    },
    async apply(events, trx, tables) {
      const parsed = events.map((event) => ({ event, e: parse(clusterEvents, event) }));
      const rows = new RowBatch(trx, tables.clusters, ['id'], new Set(['labels', 'gpu_skus', 'credentials']));
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
              // New credentials or a new address are tried afresh.
              ...(apiServer !== undefined || credentials !== undefined ? { connection: 'unknown', connection_since: event.recordedAt, connection_cause: null } : {}),
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
  list: (knex, tables, page) => listPage(knex(tables.clusters).select('*'), ORDER, clusterFilters, page, clusterItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.clusters).where({ id }).first()) as ClusterRow | undefined;
    return row && clusterItem(row);
  },
};

// ---- workloads ----------------------------------------------------------------------------------------------

const WORKLOAD_STATUSES: readonly WorkloadStatus[] = ['active', 'retired'];

interface WorkloadRow extends Lifecycle {
  id: string;
  name: string;
  namespace: string;
  type: string;
  status: WorkloadStatus;
  labels: Record<string, string>;
  spec_revision: number;
  spec: Record<string, unknown>;
  retired_reason: string | null;
}

interface WorkloadRevisionRow {
  spec_revision: number;
  spec: Record<string, unknown>;
  changes: Record<string, unknown> | null;
  recorded_at: Date;
}

const workloadItem = (row: WorkloadRow) => ({
  id: row.id,
  name: row.name,
  namespace: row.namespace,
  type: row.type,
  status: row.status,
  labels: row.labels,
  specRevision: row.spec_revision,
  spec: row.spec,
  retiredReason: row.retired_reason,
  ...lifecycle(row),
});

const workloadFilters: Filters = {
  namespace: equals('namespace'),
  type: oneOf('type', ['inference', 'training', 'batch']),
  status: oneOf('status', WORKLOAD_STATUSES),
  team: filter(filterText, (query, value) => void query.whereRaw("labels ->> 'team' = ?", [value])),
};

export const workloads: ReadModel<'workloads' | 'workload_revisions'> = {
  projector: {
    name: 'workloads',
    version: 1,
    eventTypes: workloadEvents.types,
    tables: ['workloads', 'workload_revisions'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.workloads, (t) => {
        sortable(t, 'id').primary();
        t.text('name').notNullable();
        t.text('namespace').notNullable();
        t.text('type').notNullable();
        t.text('status').notNullable();
        t.jsonb('labels').notNullable();
        t.integer('spec_revision').notNullable();
        t.jsonb('spec').notNullable();
        t.text('retired_reason');
        lifecycleColumns(t);
        t.unique(['created_position', 'id'], { indexName: `${tables.workloads}_order_idx` });
        t.index(['namespace'], `${tables.workloads}_namespace_idx`);
      });
      await trx.schema.createTable(tables.workload_revisions, (t) => {
        t.text('workload_id').notNullable();
        t.integer('spec_revision').notNullable();
        t.jsonb('spec').notNullable();
        t.jsonb('changes');
        t.timestamp('recorded_at', { useTz: true }).notNullable();
        t.primary(['workload_id', 'spec_revision']);
      });
    },
    async apply(events, trx, tables) {
      const parsed = events.map((event) => ({ event, e: parse(workloadEvents, event) }));
      const workloads = new RowBatch(trx, tables.workloads, ['id'], new Set(['labels', 'spec']));
      await workloads.load(parsed.map(({ e }) => [e.data.workloadId]));
      const revisions: Row[] = [];
      for (const { event, e } of parsed) {
        const id = e.data.workloadId;
        switch (e.type) {
          case 'WorkloadRegistered': {
            const { spec, specRevision } = e.data;
            workloads.insert({
              id,
              name: spec.name,
              namespace: spec.namespace,
              type: spec.type,
              status: 'active',
              labels: spec.labels,
              spec_revision: specRevision,
              spec,
              retired_reason: null,
              ...created(event),
            });
            revisions.push({ workload_id: id, spec_revision: specRevision, spec: json(spec), changes: null, recorded_at: event.recordedAt });
            break;
          }
          case 'WorkloadSpecUpdated': {
            const { spec, specRevision, changes } = e.data;
            workloads.update([id], { spec_revision: specRevision, spec, labels: spec.labels, ...touched(event) });
            revisions.push({ workload_id: id, spec_revision: specRevision, spec: json(spec), changes: json(changes), recorded_at: event.recordedAt });
            break;
          }
          case 'WorkloadRetired':
            workloads.update([id], { status: 'retired', retired_reason: e.data.reason ?? null, ...touched(event) });
            break;
        }
      }
      await workloads.flush();
      await insertRows(trx, tables.workload_revisions, revisions);
    },
  },
  filters: Object.keys(workloadFilters),
  accepts: acceptsOf(workloadFilters),
  list: (knex, tables, page) => listPage(knex(tables.workloads).select('*'), ORDER, workloadFilters, page, workloadItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.workloads).where({ id }).first()) as WorkloadRow | undefined;
    if (!row) return undefined;
    const revisions = (await knex(tables.workload_revisions).where({ workload_id: id }).orderBy('spec_revision')) as WorkloadRevisionRow[];
    return {
      ...workloadItem(row),
      revisions: revisions.map((revision) => ({
        specRevision: revision.spec_revision,
        spec: revision.spec,
        changes: revision.changes,
        recordedAt: iso(revision.recorded_at),
      })),
    };
  },
};

// ---- deployments --------------------------------------------------------------------------------------------

export const DEPLOYMENT_STATUSES: readonly DeploymentStatus[] = [
  'Pending',
  'Applying',
  'Progressing',
  'Available',
  'Degraded',
  'Failed',
  'RolledBack',
  'Deleted',
];

interface DeploymentRow extends Lifecycle {
  id: string;
  workload_id: string;
  cluster_id: string;
  status: DeploymentStatus;
  paused: boolean;
  replicas: number;
  ready_replicas: number | null;
  updated_replicas: number | null;
  strategy: Record<string, unknown>;
  drift_policy: string;
  current_revision: number;
  workload_revision: number;
  rollout_event: string | null;
  rollout_revision: number | null;
  rollout_cause: string | null;
  rollout_at: Date | null;
  last_cause: string | null;
  restarted_at: string | null;
}

interface DeploymentRevisionRow {
  revision: number;
  workload_revision: number;
  strategy: Record<string, unknown>;
  spec: Record<string, unknown>;
  rollback_of: number | null;
  origin: string;
  reason: string | null;
  recorded_at: Date;
  became_available: boolean;
  available_at: Date | null;
}

interface DeploymentEventRow {
  stream_revision: number;
  position: string;
  type: string;
  status: DeploymentStatus;
  revision: number;
  at: Date;
  detail: Record<string, unknown>;
}

const deploymentItem = (row: DeploymentRow) => ({
  id: row.id,
  workloadId: row.workload_id,
  clusterId: row.cluster_id,
  status: row.status,
  paused: row.paused,
  replicas: row.replicas,
  readyReplicas: row.ready_replicas,
  updatedReplicas: row.updated_replicas,
  strategy: row.strategy,
  driftPolicy: row.drift_policy,
  currentRevision: row.current_revision,
  workloadRevision: row.workload_revision,
  rollout: row.rollout_event
    ? { event: row.rollout_event, revision: row.rollout_revision, cause: row.rollout_cause, at: iso(row.rollout_at) }
    : null,
  lastCause: row.last_cause,
  restartedAt: row.restarted_at,
  ...lifecycle(row),
});

const revisionItem = (row: DeploymentRevisionRow) => ({
  revision: row.revision,
  workloadRevision: row.workload_revision,
  strategy: row.strategy,
  rollbackOf: row.rollback_of,
  origin: row.origin,
  reason: row.reason,
  recordedAt: iso(row.recorded_at),
  becameAvailable: row.became_available,
  availableAt: iso(row.available_at),
});

const deploymentFilters: Filters = {
  status: oneOf('status', DEPLOYMENT_STATUSES),
  clusterId: equals('cluster_id', uuidText),
  workloadId: equals('workload_id', uuidText),
  // By creation time: when the deployment was created, not when it last changed.
  from: instantFilter('created_at', '>='),
  to: instantFilter('created_at', '<'),
};

type DeploymentTables = 'deployments' | 'deployment_revisions' | 'deployment_events';

export const deployments: ReadModel<DeploymentTables> = {
  projector: {
    name: 'deployments',
    version: 1,
    eventTypes: deploymentEvents.types,
    tables: ['deployments', 'deployment_revisions', 'deployment_events'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.deployments, (t) => {
        sortable(t, 'id').primary();
        t.text('workload_id').notNullable();
        t.text('cluster_id').notNullable();
        t.text('status').notNullable();
        t.boolean('paused').notNullable();
        t.integer('replicas').notNullable();
        t.integer('ready_replicas');
        t.integer('updated_replicas');
        t.jsonb('strategy').notNullable();
        t.text('drift_policy').notNullable();
        t.integer('current_revision').notNullable();
        t.integer('workload_revision').notNullable();
        t.text('rollout_event');
        t.integer('rollout_revision');
        t.text('rollout_cause');
        t.timestamp('rollout_at', { useTz: true });
        t.text('last_cause');
        t.text('restarted_at');
        lifecycleColumns(t);
        t.unique(['created_position', 'id'], { indexName: `${tables.deployments}_order_idx` });
        t.index(['cluster_id'], `${tables.deployments}_cluster_idx`);
        t.index(['workload_id'], `${tables.deployments}_workload_idx`);
      });
      await trx.schema.createTable(tables.deployment_revisions, (t) => {
        t.text('deployment_id').notNullable();
        t.integer('revision').notNullable();
        t.integer('workload_revision').notNullable();
        t.jsonb('strategy').notNullable();
        t.jsonb('spec').notNullable();
        t.integer('rollback_of');
        t.text('origin').notNullable();
        t.text('reason');
        t.timestamp('recorded_at', { useTz: true }).notNullable();
        t.boolean('became_available').notNullable();
        t.timestamp('available_at', { useTz: true });
        t.primary(['deployment_id', 'revision']);
      });
      await trx.schema.createTable(tables.deployment_events, (t) => {
        t.text('deployment_id').notNullable();
        t.integer('stream_revision').notNullable();
        t.text('position').notNullable();
        t.text('type').notNullable();
        t.text('status').notNullable();
        t.integer('revision').notNullable();
        t.timestamp('at', { useTz: true }).notNullable();
        t.jsonb('detail').notNullable();
        t.primary(['deployment_id', 'stream_revision']);
      });
    },
    async apply(events, trx, tables) {
      const parsed = events.map((event) => ({ event, e: parse(deploymentEvents, event) }));
      const deployments = new RowBatch(trx, tables.deployments, ['id'], new Set(['strategy']));
      const revisions = new RowBatch(trx, tables.deployment_revisions, ['deployment_id', 'revision'], new Set(['strategy', 'spec']));
      await deployments.load(parsed.map(({ e }) => [e.data.deploymentId]));
      await revisions.load(parsed.flatMap(({ e }) => (e.type === 'DeploymentAvailable' ? [[e.data.deploymentId, e.data.revision]] : [])));
      const timeline: Row[] = [];

      for (const { event, e } of parsed) {
        const id = e.data.deploymentId;
        const update = (changes: Row) => deployments.update([id], { ...changes, ...touched(event) });
        const addRevision = (revision: {
          revision: number;
          workloadRevision: number;
          strategy: unknown;
          spec: unknown;
          rollbackOf?: number;
          reason?: string;
        }) =>
          revisions.insert({
            deployment_id: id,
            revision: revision.revision,
            workload_revision: revision.workloadRevision,
            strategy: revision.strategy,
            spec: revision.spec,
            rollback_of: revision.rollbackOf ?? null,
            origin: e.type,
            reason: revision.reason ?? null,
            recorded_at: event.recordedAt,
            became_available: false,
            available_at: null,
          });
        const rollout = (revision: number, cause?: string) => ({
          rollout_event: e.type,
          rollout_revision: revision,
          rollout_cause: cause ?? null,
          rollout_at: event.recordedAt,
        });

        let row: Row | undefined;
        let detail: Record<string, unknown> = {};
        switch (e.type) {
          case 'DeploymentCreated': {
            const { workloadId, clusterId, replicas, strategy, driftPolicy, revision, workloadRevision, spec } = e.data;
            row = {
              id,
              workload_id: workloadId,
              cluster_id: clusterId,
              status: 'Pending',
              paused: false,
              replicas,
              ready_replicas: null,
              updated_replicas: null,
              strategy,
              drift_policy: driftPolicy,
              current_revision: revision,
              workload_revision: workloadRevision,
              rollout_event: null,
              rollout_revision: null,
              rollout_cause: null,
              rollout_at: null,
              last_cause: null,
              restarted_at: null,
              ...created(event),
            };
            deployments.insert(row);
            addRevision({ revision, workloadRevision, strategy, spec });
            detail = { replicas, workloadRevision };
            break;
          }
          case 'DeploymentScaled':
            row = update({ status: 'Pending', replicas: e.data.replicas });
            detail = { replicas: e.data.replicas, previousReplicas: e.data.previousReplicas };
            break;
          case 'DeploymentUpdated': {
            const { revision, workloadRevision, strategy, spec } = e.data;
            row = update({ status: 'Pending', current_revision: revision, workload_revision: workloadRevision, strategy });
            if (row) addRevision({ revision, workloadRevision, strategy, spec });
            detail = { workloadRevision };
            break;
          }
          case 'DeploymentDriftPolicyChanged':
            row = update({ drift_policy: e.data.driftPolicy });
            detail = { driftPolicy: e.data.driftPolicy, previousDriftPolicy: e.data.previousDriftPolicy };
            break;
          case 'DeploymentRollbackRequested': {
            const { revision, toRevision, workloadRevision, strategy, spec, reason } = e.data;
            row = update({ status: 'Pending', current_revision: revision, workload_revision: workloadRevision, strategy });
            if (row) addRevision({ revision, workloadRevision, strategy, spec, rollbackOf: toRevision, reason });
            detail = { toRevision, ...(reason !== undefined ? { reason } : {}) };
            break;
          }
          case 'DeploymentRescheduled':
            row = update({ status: 'Pending' });
            detail = { nodeSelector: e.data.nodeSelector, previousNodeSelector: e.data.previousNodeSelector, ...(e.data.reason !== undefined ? { reason: e.data.reason } : {}) };
            break;
          case 'DeploymentRestartRequested':
            row = update({ status: 'Pending', restarted_at: e.data.restartedAt });
            detail = { restartedAt: e.data.restartedAt, ...(e.data.reason !== undefined ? { reason: e.data.reason } : {}) };
            break;
          case 'DeploymentPaused':
          case 'DeploymentResumed':
          case 'DeploymentDeleted':
            row = update(e.type === 'DeploymentDeleted' ? { status: 'Deleted' } : { paused: e.type === 'DeploymentPaused' });
            detail = e.data.reason !== undefined ? { reason: e.data.reason } : {};
            break;
          case 'DeploymentApplying':
            row = update({ status: 'Applying', ...rollout(e.data.revision) });
            break;
          case 'DeploymentApplied':
            row = update({ status: 'Progressing', ...rollout(e.data.revision) });
            break;
          case 'DeploymentRolloutProgressed': {
            const { revision, readyReplicas, updatedReplicas } = e.data;
            row = update({ status: 'Progressing', ready_replicas: readyReplicas, updated_replicas: updatedReplicas, ...rollout(revision) });
            detail = { readyReplicas, updatedReplicas };
            break;
          }
          case 'DeploymentAvailable': {
            const { revision, readyReplicas } = e.data;
            row = update({ status: 'Available', ready_replicas: readyReplicas, ...rollout(revision) });
            // The first time a revision becomes available is the one that counts.
            if (revisions.get([id, revision])?.['became_available'] === false) {
              revisions.update([id, revision], { became_available: true, available_at: event.recordedAt });
            }
            detail = { readyReplicas };
            break;
          }
          case 'DeploymentDegraded':
          case 'DeploymentRolloutFailed': {
            const { revision, cause } = e.data;
            const status = e.type === 'DeploymentDegraded' ? 'Degraded' : 'Failed';
            row = update({ status, last_cause: cause, ...rollout(revision, cause) });
            detail = { cause };
            break;
          }
          case 'DeploymentRolledBack': {
            const { revision, toRevision, newRevision, workloadRevision, strategy, spec, cause } = e.data;
            row = update({
              status: 'RolledBack',
              current_revision: newRevision,
              workload_revision: workloadRevision,
              strategy,
              last_cause: cause,
              ...rollout(revision, cause),
            });
            if (row) addRevision({ revision: newRevision, workloadRevision, strategy, spec, rollbackOf: toRevision, reason: cause });
            detail = { toRevision, newRevision, cause };
            break;
          }
          case 'DriftDetected': {
            const { differences, resolution } = e.data;
            const replicas = differences.find((difference) => difference.field === 'replicas');
            row = update(resolution === 'adopt' && typeof replicas?.actual === 'number' ? { replicas: replicas.actual } : {});
            detail = { differences, resolution };
            break;
          }
        }
        // An event for a deployment this projection never saw created changes nothing, and so has no place in a timeline.
        if (!row) continue;
        timeline.push({
          deployment_id: id,
          stream_revision: event.revision,
          position: event.position,
          type: e.type,
          status: row['status'],
          revision: 'revision' in e.data ? e.data.revision : row['current_revision'],
          at: event.recordedAt,
          detail: json(detail),
        });
      }
      await deployments.flush();
      await revisions.flush();
      await insertRows(trx, tables.deployment_events, timeline);
    },
  },
  filters: Object.keys(deploymentFilters),
  accepts: acceptsOf(deploymentFilters),
  list: (knex, tables, page) => listPage(knex(tables.deployments).select('*'), ORDER, deploymentFilters, page, deploymentItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.deployments).where({ id }).first()) as DeploymentRow | undefined;
    if (!row) return undefined;
    const revisions = (await knex(tables.deployment_revisions).where({ deployment_id: id }).orderBy('revision')) as DeploymentRevisionRow[];
    return { ...deploymentItem(row), revisions: revisions.map(revisionItem) };
  },
};

/**
 * `GET /deployments/:id/history`: every revision (with the workload spec it ran) and the timeline of what
 * happened to the deployment, each entry with the status it left the deployment in.
 */
export async function deploymentHistory(knex: Knex, tables: TableNames<DeploymentTables>, id: string) {
  const row = (await knex(tables.deployments).where({ id }).first('id', 'status', 'current_revision')) as
    | Pick<DeploymentRow, 'id' | 'status' | 'current_revision'>
    | undefined;
  if (!row) return undefined;
  const [revisions, timeline] = await Promise.all([
    knex(tables.deployment_revisions).where({ deployment_id: id }).orderBy('revision') as Promise<DeploymentRevisionRow[]>,
    knex(tables.deployment_events).where({ deployment_id: id }).orderBy('stream_revision') as Promise<DeploymentEventRow[]>,
  ]);
  return {
    id: row.id,
    status: row.status,
    currentRevision: row.current_revision,
    revisions: revisions.map((revision) => ({ ...revisionItem(revision), spec: revision.spec })),
    timeline: timeline.map((entry) => ({
      type: entry.type,
      status: entry.status,
      revision: entry.revision,
      at: iso(entry.at),
      streamRevision: entry.stream_revision,
      position: entry.position,
      detail: entry.detail,
    })),
  };
}

// ---- action plans -------------------------------------------------------------------------------------------

export const PLAN_STATUSES: readonly PlanStatus[] = [
  'Pending',
  'Validating',
  'Approved',
  'Rejected',
  'Executing',
  'Completed',
  'Failed',
  'RollingBack',
  'RolledBack',
  'Expired',
  'Cancelled',
];

interface PlanRow extends Lifecycle {
  id: string;
  source: string;
  actor: { id: string; kind: string };
  reason: string;
  status: PlanStatus;
  shadow: boolean;
  submitted_at: string;
  expires_at: string;
  violations: { path?: string; message: string }[] | null;
  cause: string | null;
  cancelled_by: { id: string; kind: string } | null;
}

interface PlanActionRow {
  plan_id: string;
  index: number;
  kind: string;
  action: Record<string, unknown>;
  target: { kind: string; id: string };
  status: ActionStatus;
  detail: string | null;
  error: string | null;
}

interface PlanActionEventRow {
  plan_id: string;
  index: number;
  stream_revision: number;
  status: ActionStatus;
  at: Date;
  detail: string | null;
  error: string | null;
}

const planItem = (row: PlanRow, actions: PlanActionRow[]) => ({
  id: row.id,
  source: row.source,
  actor: row.actor,
  reason: row.reason,
  status: row.status,
  shadow: row.shadow,
  submittedAt: row.submitted_at,
  expiresAt: row.expires_at,
  violations: row.violations,
  cause: row.cause,
  cancelledBy: row.cancelled_by,
  actions: actions.map((action) => ({
    index: action.index,
    kind: action.kind,
    target: action.target,
    action: action.action,
    status: action.status,
    detail: action.detail,
    error: action.error,
  })),
  ...lifecycle(row),
});

const planFilters: Filters = {
  status: oneOf('status', PLAN_STATUSES),
  source: oneOf('source', ['user', 'inframind', 'sentinel']),
  // By creation time: when the plan was submitted.
  from: instantFilter('created_at', '>='),
  to: instantFilter('created_at', '<'),
};

type PlanTables = 'action_plans' | 'plan_actions' | 'plan_action_events';

export const actionPlans: ReadModel<PlanTables> = {
  projector: {
    name: 'action-plans',
    version: 1,
    eventTypes: actionPlanEvents.types,
    tables: ['action_plans', 'plan_actions', 'plan_action_events'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.action_plans, (t) => {
        sortable(t, 'id').primary();
        t.text('source').notNullable();
        t.jsonb('actor').notNullable();
        t.text('reason').notNullable();
        t.text('status').notNullable();
        t.boolean('shadow').notNullable();
        t.text('submitted_at').notNullable();
        t.text('expires_at').notNullable();
        t.jsonb('violations');
        t.text('cause');
        t.jsonb('cancelled_by');
        lifecycleColumns(t);
        t.unique(['created_position', 'id'], { indexName: `${tables.action_plans}_order_idx` });
      });
      await trx.schema.createTable(tables.plan_actions, (t) => {
        t.text('plan_id').notNullable();
        t.integer('index').notNullable();
        t.text('kind').notNullable();
        t.jsonb('action').notNullable();
        t.jsonb('target').notNullable();
        t.text('status').notNullable();
        t.text('detail');
        t.text('error');
        t.primary(['plan_id', 'index']);
      });
      await trx.schema.createTable(tables.plan_action_events, (t) => {
        t.text('plan_id').notNullable();
        t.integer('index').notNullable();
        t.integer('stream_revision').notNullable();
        t.text('status').notNullable();
        t.timestamp('at', { useTz: true }).notNullable();
        t.text('detail');
        t.text('error');
        t.primary(['plan_id', 'index', 'stream_revision']);
      });
    },
    async apply(events, trx, tables) {
      const parsed = events.map((event) => ({ event, e: parse(actionPlanEvents, event) }));
      const plans = new RowBatch(trx, tables.action_plans, ['id'], new Set(['actor', 'violations', 'cancelled_by']));
      const planActions = new RowBatch(trx, tables.plan_actions, ['plan_id', 'index'], new Set(['action', 'target']));
      const ids = parsed.map(({ e }) => e.data.planId);
      await plans.load(ids.map((id) => [id]));
      await planActions.loadWhere('plan_id', ids);
      const steps: Row[] = [];
      for (const { event, e } of parsed) {
        const id = e.data.planId;
        const plan = (changes: Row) => plans.update([id], { ...changes, ...touched(event) });
        const step = (index: number, status: ActionStatus, outcome: { detail?: string; error?: string } = {}) => ({
          plan_id: id,
          index,
          stream_revision: event.revision,
          status,
          at: event.recordedAt,
          detail: outcome.detail ?? null,
          error: outcome.error ?? null,
        });
        const action = (index: number, status: ActionStatus, outcome: { detail?: string; error?: string } = {}) => {
          const moved = planActions.update([id, index], {
            status,
            ...('detail' in outcome ? { detail: outcome.detail ?? null } : {}),
            ...(outcome.error ? { error: outcome.error } : {}),
          });
          if (moved) steps.push(step(index, status, outcome));
          plan({});
        };
        /** Actions that never started will not start once the plan has failed or is rolling back. */
        const skipPending = () => {
          const pending = planActions.filter((row) => row['plan_id'] === id && row['status'] === 'Pending');
          const indexes = pending.map((row) => Number(row['index'])).sort((a, b) => a - b);
          for (const index of indexes) {
            planActions.update([id, index], { status: 'Skipped' });
            steps.push(step(index, 'Skipped'));
          }
        };

        switch (e.type) {
          case 'ActionPlanSubmitted': {
            const { source, actor, reason, actions, submittedAt, expiresAt, shadow } = e.data;
            plans.insert({
              id,
              source,
              actor,
              reason,
              status: 'Pending',
              shadow,
              submitted_at: submittedAt,
              expires_at: expiresAt,
              violations: null,
              cause: null,
              cancelled_by: null,
              ...created(event),
            });
            actions.forEach((planned, index) =>
              planActions.insert({
                plan_id: id,
                index,
                kind: planned.kind,
                action: planned,
                target: actionTarget(planned),
                status: 'Pending',
                detail: null,
                error: null,
              }),
            );
            steps.push(...actions.map((_, index) => step(index, 'Pending')));
            break;
          }
          case 'ActionPlanValidationStarted':
            plan({ status: 'Validating' });
            break;
          case 'ActionPlanApproved':
            plan({ status: 'Approved' });
            break;
          case 'ActionPlanRejected':
            plan({ status: 'Rejected', violations: e.data.violations ?? null });
            break;
          case 'ActionPlanExecutionStarted':
            plan({ status: 'Executing' });
            break;
          case 'ActionPlanExpired':
            plan({ status: 'Expired' });
            break;
          case 'ActionPlanCompleted':
            plan({ status: 'Completed' });
            break;
          case 'ActionPlanFailed':
            plan({ status: 'Failed', cause: e.data.cause });
            skipPending();
            break;
          case 'ActionPlanRollbackStarted':
            plan({ status: 'RollingBack', cause: e.data.cause });
            skipPending();
            break;
          case 'ActionPlanRolledBack':
            plan({ status: 'RolledBack' });
            break;
          case 'ActionPlanCancelled':
            plan({ status: 'Cancelled', cause: e.data.reason ?? null, cancelled_by: e.data.actor ?? null });
            break;
          case 'PlanActionStarted':
            action(e.data.index, 'Executing');
            break;
          case 'PlanActionSucceeded':
            action(e.data.index, 'Succeeded', e.data.detail !== undefined ? { detail: e.data.detail } : {});
            break;
          case 'PlanActionFailed':
            action(e.data.index, 'Failed', { error: e.data.error });
            break;
          case 'PlanActionRolledBack':
            action(e.data.index, 'RolledBack');
            break;
        }
      }
      await plans.flush();
      await planActions.flush();
      await insertRows(trx, tables.plan_action_events, steps);
    },
  },
  filters: Object.keys(planFilters),
  accepts: acceptsOf(planFilters),
  async list(knex, tables, page) {
    const result = await listPage(knex(tables.action_plans).select('*'), ORDER, planFilters, page, (row: PlanRow) => row);
    const rows = result.items as PlanRow[];
    const actions =
      rows.length === 0
        ? []
        : ((await knex(tables.plan_actions)
            .whereIn(
              'plan_id',
              rows.map((row) => row.id),
            )
            .orderBy(['plan_id', 'index'])) as PlanActionRow[]);
    return { items: rows.map((row) => planItem(row, actions.filter((action) => action.plan_id === row.id))), nextCursor: result.nextCursor };
  },
  async get(knex, tables, id) {
    const row = (await knex(tables.action_plans).where({ id }).first()) as PlanRow | undefined;
    if (!row) return undefined;
    const [actions, steps] = await Promise.all([
      knex(tables.plan_actions).where({ plan_id: id }).orderBy('index') as Promise<PlanActionRow[]>,
      knex(tables.plan_action_events).where({ plan_id: id }).orderBy(['stream_revision', 'index']) as Promise<PlanActionEventRow[]>,
    ]);
    const item = planItem(row, actions);
    return {
      ...item,
      actions: item.actions.map((action) => ({
        ...action,
        timeline: steps
          .filter((entry) => entry.index === action.index)
          .map((entry) => ({ status: entry.status, at: iso(entry.at), detail: entry.detail, error: entry.error })),
      })),
    };
  },
};

// ---- policies -----------------------------------------------------------------------------------------------


interface PolicyRow extends Lifecycle {
  id: string;
  name: string;
  description: string | null;
  type: string;
  mode: string;
  priority: number;
  selector: Record<string, unknown>;
  parameters: Record<string, unknown>;
  valid_from: string | null;
  valid_until: string | null;
  enabled: boolean;
  deleted: boolean;
}

const policyItem = (row: PolicyRow) => ({
  id: row.id,
  name: row.name,
  description: row.description,
  type: row.type,
  mode: row.mode,
  priority: row.priority,
  selector: row.selector,
  parameters: row.parameters,
  validFrom: row.valid_from,
  validUntil: row.valid_until,
  enabled: row.enabled,
  /** The revision of the policy-set stream at this policy's last change. */
  setRevision: row.revision,
  createdAt: iso(row.created_at),
  updatedAt: iso(row.updated_at),
});

const policyFilters: Filters = { type: oneOf('type', POLICY_TYPES), mode: oneOf('mode', POLICY_MODES), enabled: flag('enabled') };

export const policies: ReadModel<'policies'> = {
  projector: {
    name: 'policies',
    version: 1,
    eventTypes: policySetEvents.types,
    tables: ['policies'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.policies, (t) => {
        sortable(t, 'id').primary();
        t.text('name').notNullable();
        t.text('description');
        t.text('type').notNullable();
        t.text('mode').notNullable();
        t.integer('priority').notNullable();
        t.jsonb('selector').notNullable();
        t.jsonb('parameters').notNullable();
        t.text('valid_from');
        t.text('valid_until');
        t.boolean('enabled').notNullable();
        // Deleted policies stay, hidden, so that the set's history keeps naming each id once.
        t.boolean('deleted').notNullable();
        lifecycleColumns(t);
        t.unique(['created_position', 'id'], { indexName: `${tables.policies}_order_idx` });
      });
    },
    async apply(events, trx, tables) {
      // Only the global set exists for now; another scope's policies would need a scope column.
      const parsed = events.filter((event) => event.stream === POLICY_SET_STREAM).map((event) => ({ event, e: parse(policySetEvents, event) }));
      const rows = new RowBatch(trx, tables.policies, ['id'], new Set(['selector', 'parameters']));
      await rows.load(parsed.map(({ e }) => [e.data.policyId]));
      for (const { event, e } of parsed) {
        const id = e.data.policyId;
        const update = (changes: Row) => rows.update([id], { ...changes, ...touched(event) });
        switch (e.type) {
          case 'PolicyCreated': {
            const { policy } = e.data;
            rows.insert({
              id,
              name: policy.name,
              description: policy.description ?? null,
              type: policy.type,
              mode: policy.mode,
              priority: policy.priority,
              selector: policy.selector,
              parameters: policy.parameters,
              valid_from: policy.validFrom ?? null,
              valid_until: policy.validUntil ?? null,
              enabled: policy.enabled,
              deleted: false,
              ...created(event),
            });
            break;
          }
          case 'PolicyUpdated': {
            const { name, description, mode, priority, selector, parameters, validFrom, validUntil } = e.data.changes;
            update({
              ...(name !== undefined ? { name } : {}),
              ...(description !== undefined ? { description } : {}),
              ...(mode !== undefined ? { mode } : {}),
              ...(priority !== undefined ? { priority } : {}),
              ...(selector !== undefined ? { selector } : {}),
              ...(parameters !== undefined ? { parameters } : {}),
              // null clears a bound; a missing key leaves it.
              ...(validFrom !== undefined ? { valid_from: validFrom } : {}),
              ...(validUntil !== undefined ? { valid_until: validUntil } : {}),
            });
            break;
          }
          case 'PolicyEnabled':
          case 'PolicyDisabled':
            update({ enabled: e.type === 'PolicyEnabled' });
            break;
          case 'PolicyDeleted':
            update({ deleted: true });
            break;
        }
      }
      await rows.flush();
    },
  },
  filters: Object.keys(policyFilters),
  accepts: acceptsOf(policyFilters),
  list: (knex, tables, page) => listPage(knex(tables.policies).select('*').where({ deleted: false }), ORDER, policyFilters, page, policyItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.policies).where({ id, deleted: false }).first()) as PolicyRow | undefined;
    return row && policyItem(row);
  },
};

// ---- policy decisions ---------------------------------------------------------------------------------------

interface DecisionRow {
  event_id: string;
  stream: string;
  position: string;
  recorded_at: Date;
  command: string;
  verdict: 'allow' | 'deny';
  policy_set_revision: number;
  actor_id: string | null;
  actor_kind: string | null;
  correlation_id: string | null;
  targets: { kind: string; id: string }[];
  actions: string[];
  policy_ids: string[];
  evaluations: unknown[];
  break_glass: { justification: string; actorId: string } | null;
}

const decisionItem = (row: DecisionRow) => ({
  eventId: row.event_id,
  stream: row.stream,
  position: row.position,
  recordedAt: iso(row.recorded_at),
  command: row.command,
  verdict: row.verdict,
  policySetRevision: row.policy_set_revision,
  actor: row.actor_id === null ? null : { id: row.actor_id, kind: row.actor_kind },
  correlationId: row.correlation_id,
  targets: row.targets,
  actions: row.actions,
  policyIds: row.policy_ids,
  evaluations: row.evaluations,
  breakGlass: row.break_glass,
});

const decisionFilters: Filters = {
  target: contains('targets', (id) => ({ id }), uuidText),
  policy: contains('policy_ids', (id) => id, uuidText),
  verdict: oneOf('verdict', ['allow', 'deny']),
  actor: equals('actor_id', filterText.describe('an actor id, or a username or service-account name')),
  stream: equals('stream'),
  command: equals('command'),
  from: instantFilter('recorded_at', '>='),
  to: instantFilter('recorded_at', '<'),
};

const distinct = <T>(values: T[], key: (value: T) => string): T[] => [...new Map(values.map((value) => [key(value), value])).values()];

export const policyDecisions: ReadModel<'policy_decisions'> = {
  projector: {
    name: 'policy-decisions',
    version: 1,
    eventTypes: policyEvents.types,
    tables: ['policy_decisions'],
    async createTables(trx, tables) {
      const table = tables.policy_decisions;
      await trx.schema.createTable(table, (t) => {
        sortable(t, 'position').primary();
        // Event ids are unique within a stream, not across streams: looked up, never a key.
        t.text('event_id').notNullable().index(`${table}_event_idx`);
        t.text('stream').notNullable();
        t.timestamp('recorded_at', { useTz: true }).notNullable();
        t.text('command').notNullable();
        t.text('verdict').notNullable();
        t.integer('policy_set_revision').notNullable();
        t.text('actor_id');
        t.text('actor_kind');
        t.text('correlation_id');
        t.jsonb('targets').notNullable();
        t.jsonb('actions').notNullable();
        t.jsonb('policy_ids').notNullable();
        t.jsonb('evaluations').notNullable();
        t.jsonb('break_glass');
        t.index(['stream', 'position'], `${table}_stream_idx`);
        t.index(['actor_id', 'position'], `${table}_actor_idx`);
        t.index(['recorded_at'], `${table}_recorded_at_idx`);
      });
      for (const column of ['targets', 'policy_ids']) {
        await trx.raw('create index ?? on ?? using gin (?? jsonb_path_ops)', [`${table}_${column}_idx`, table, column]);
      }
    },
    async apply(events, trx, tables) {
      const rows = events.map((event) => {
        const { data } = parse(policyEvents, event);
        const actor = event.metadata.actor;
        const evaluations = data.evaluations.map(({ index, change, verdict, results }) => ({
          ...(index !== undefined ? { index } : {}),
          action: change.action,
          target: { kind: change.target.kind, id: change.target.id },
          verdict,
          results,
        }));
        return {
          event_id: event.id,
          stream: event.stream,
          position: event.position,
          recorded_at: event.recordedAt,
          command: data.command,
          verdict: data.verdict,
          policy_set_revision: data.policySet.revision,
          actor_id: typeof actor?.id === 'string' ? actor.id : null,
          actor_kind: typeof actor?.kind === 'string' ? actor.kind : null,
          correlation_id: typeof event.metadata.correlationId === 'string' ? event.metadata.correlationId : null,
          targets: json(distinct(evaluations.map((evaluation) => evaluation.target), (target) => `${target.kind}/${target.id}`)),
          actions: json([...new Set(evaluations.map((evaluation) => evaluation.action))]),
          policy_ids: json([...new Set(evaluations.flatMap((evaluation) => evaluation.results.map((result) => result.policyId)))]),
          evaluations: json(evaluations),
          break_glass: json(data.breakGlass),
        };
      });
      // Well below PostgreSQL's parameter limit at 15 columns a row.
      for (let i = 0; i < rows.length; i += 1000) await trx(tables.policy_decisions).insert(rows.slice(i, i + 1000));
    },
  },
  filters: Object.keys(decisionFilters),
  accepts: acceptsOf(decisionFilters),
  list: (knex, tables, page) =>
    listPage(knex(tables.policy_decisions).select('*'), ['position'], decisionFilters, page, decisionItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.policy_decisions).where({ event_id: id }).orderBy('position').first()) as DecisionRow | undefined;
    return row && decisionItem(row);
  },
};

// ---- all of them ----------------------------------------------------------------------------------------------

export const READ_MODELS = { clusters, workloads, deployments, actionPlans, policies, policyDecisions, nodes, deploymentUptime } satisfies Record<string, ReadModel>;

/** Every read model's projector, for the projection runtime. */
export const READ_MODEL_PROJECTORS: readonly Projector[] = [
  ...Object.values(READ_MODELS).map((model) => model.projector as Projector),
  fleetCostProjector as Projector,
];
