// The deployments read model: every deployment with its status, its revisions and the timeline of what happened to
// it. The status and the other columns that show the domain's state are what the domain's own `evolve` makes of each
// event, so the rules of the deployment's lifecycle are written once, in domain/deployment.ts; the columns beside
// them record what the events say (the rollout the cluster reported, each revision's origin, the timeline's details).
import type { Knex } from 'knex';
import {
  deploymentEvents,
  evolve,
  initialState,
  revisionAt,
  type DeploymentEvent,
  type DeploymentRevision,
  type DeploymentStatus,
  type DriftPolicy,
  type PlacedDeployment,
  type Strategy,
} from '../../domain/deployment.js';
import { id as uuidText } from '../../domain/schemas.js';
import type { TableNames } from '../projector.js';
import { insertRows, RowBatch, type Row } from '../row-batch.js';
import { BY_CREATION, foldRows, lifecycleColumns, parseEach, sortable } from './projecting.js';
import { acceptsOf, equals, instantFilter, iso, lifecycle, listPage, oneOf, type Filters, type Lifecycle, type ReadModel } from './query.js';

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
  strategy: Strategy;
  drift_policy: DriftPolicy;
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
        lifecycleColumns(t, tables.deployments);
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
      const parsed = parseEach(deploymentEvents, events);
      const deployments = new RowBatch(trx, tables.deployments, ['id']);
      const revisions = new RowBatch(trx, tables.deployment_revisions, ['deployment_id', 'revision']);
      await revisions.load(parsed.flatMap(({ e }) => (e.type === 'DeploymentAvailable' ? [[e.data.deploymentId, e.data.revision]] : [])));
      const timeline: Row[] = [];

      await foldRows(deployments, parsed, ({ e }) => e.data.deploymentId, (row, { event, e }, id) => {
        const state = evolve(row ? standingOf(row as unknown as DeploymentRow) : initialState, e);
        // An event for a deployment this projection never saw created changes nothing, and so has no place in a timeline.
        if (state.status === 'absent') return undefined;
        // Folded from an empty history (see `standingOf`), the state holds only what this event recorded.
        for (const revision of Object.values(state.revisions)) revisions.insert(revisionRow(id, revision, e, event.recordedAt));
        for (const revision of state.availableRevisions) {
          // The first time a revision becomes available is the one that counts.
          if (revisions.get([id, revision])?.['became_available'] === false) {
            revisions.update([id, revision], { became_available: true, available_at: event.recordedAt });
          }
        }
        timeline.push({
          deployment_id: id,
          stream_revision: event.revision,
          position: event.position,
          type: e.type,
          status: state.status,
          revision: 'revision' in e.data ? e.data.revision : state.currentRevision,
          at: event.recordedAt,
          detail: detailOf(e),
        });
        // Assigned rather than spread (see `foldRows`).
        return Object.assign(stateColumns(state), rolloutColumns(e, event.recordedAt));
      });
      await deployments.flush();
      await revisions.flush();
      await insertRows(trx, tables.deployment_events, timeline);
    },
  },
  filters: Object.keys(deploymentFilters),
  accepts: acceptsOf(deploymentFilters),
  list: (knex, tables, page) => listPage(knex(tables.deployments).select('*'), BY_CREATION, deploymentFilters, page, deploymentItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.deployments).where({ id }).first()) as DeploymentRow | undefined;
    if (!row) return undefined;
    const revisions = (await knex(tables.deployment_revisions).where({ deployment_id: id }).orderBy('revision')) as DeploymentRevisionRow[];
    return { ...deploymentItem(row), revisions: revisions.map(revisionItem) };
  },
};

// ---- from the domain's state to the row, and back ------------------------------------------------------------

/**
 * The deployment as the domain folds it, from its row. The row holds all of the state that its columns show; what it
 * leaves out (the revision history, which revisions became available, the node selector) `evolve` only ever adds to
 * or sets, and never reads to decide anything else. So each event is folded from an empty history, and the
 * revisions the state holds after it are those that event recorded or made available.
 */
function standingOf(row: DeploymentRow): PlacedDeployment {
  return {
    status: row.status,
    id: row.id,
    workloadId: row.workload_id,
    clusterId: row.cluster_id,
    replicas: row.replicas,
    strategy: row.strategy,
    driftPolicy: row.drift_policy,
    paused: row.paused,
    currentRevision: row.current_revision,
    revisions: {},
    availableRevisions: [],
    ...(row.restarted_at !== null ? { restartedAt: row.restarted_at } : {}),
    ...(row.last_cause !== null ? { lastCause: row.last_cause } : {}),
  };
}

/** The columns that show the domain's state; the workload revision only when the event recorded the current revision. */
function stateColumns(state: PlacedDeployment): Row {
  const columns: Row = {
    workload_id: state.workloadId,
    cluster_id: state.clusterId,
    status: state.status,
    paused: state.paused,
    replicas: state.replicas,
    strategy: state.strategy,
    drift_policy: state.driftPolicy,
    current_revision: state.currentRevision,
    last_cause: state.lastCause ?? null,
    restarted_at: state.restartedAt ?? null,
  };
  const current = revisionAt(state, state.currentRevision);
  if (current) columns['workload_revision'] = current.workloadRevision;
  return columns;
}

function revisionRow(deploymentId: string, revision: DeploymentRevision, e: DeploymentEvent, at: Date): Row {
  return {
    deployment_id: deploymentId,
    revision: revision.revision,
    workload_revision: revision.workloadRevision,
    strategy: revision.strategy,
    spec: revision.spec,
    rollback_of: revision.rollbackOf ?? null,
    origin: e.type,
    reason: e.type === 'DeploymentRollbackRequested' ? (e.data.reason ?? null) : e.type === 'DeploymentRolledBack' ? e.data.cause : null,
    recorded_at: at,
    became_available: false,
    available_at: null,
  };
}

// ---- what the events say beside the state ------------------------------------------------------------------

/** What the cluster reactor last reported of the rollout, as its events say it. */
function rolloutColumns(e: DeploymentEvent, at: Date): Row {
  const rollout = (revision: number, cause: string | null = null) => ({ rollout_event: e.type, rollout_revision: revision, rollout_cause: cause, rollout_at: at });
  switch (e.type) {
    case 'DeploymentCreated':
      return { ready_replicas: null, updated_replicas: null, rollout_event: null, rollout_revision: null, rollout_cause: null, rollout_at: null };
    case 'DeploymentApplying':
    case 'DeploymentApplied':
      return rollout(e.data.revision);
    case 'DeploymentRolloutProgressed':
      return { ready_replicas: e.data.readyReplicas, updated_replicas: e.data.updatedReplicas, ...rollout(e.data.revision) };
    case 'DeploymentAvailable':
      return { ready_replicas: e.data.readyReplicas, ...rollout(e.data.revision) };
    case 'DeploymentDegraded':
    case 'DeploymentRolloutFailed':
    case 'DeploymentRolledBack':
      return rollout(e.data.revision, e.data.cause);
    default:
      return {};
  }
}

const withReason = (reason: string | undefined) => (reason !== undefined ? { reason } : {});

/** What the timeline shows of an event, beside the status it left the deployment in. */
function detailOf(e: DeploymentEvent): Record<string, unknown> {
  switch (e.type) {
    case 'DeploymentCreated':
      return { replicas: e.data.replicas, workloadRevision: e.data.workloadRevision };
    case 'DeploymentScaled':
      return { replicas: e.data.replicas, previousReplicas: e.data.previousReplicas };
    case 'DeploymentUpdated':
      return { workloadRevision: e.data.workloadRevision };
    case 'DeploymentDriftPolicyChanged':
      return { driftPolicy: e.data.driftPolicy, previousDriftPolicy: e.data.previousDriftPolicy };
    case 'DeploymentRollbackRequested':
      return { toRevision: e.data.toRevision, ...withReason(e.data.reason) };
    case 'DeploymentRescheduled':
      return { nodeSelector: e.data.nodeSelector, previousNodeSelector: e.data.previousNodeSelector, ...withReason(e.data.reason) };
    case 'DeploymentRestartRequested':
      return { restartedAt: e.data.restartedAt, ...withReason(e.data.reason) };
    case 'DeploymentPaused':
    case 'DeploymentResumed':
    case 'DeploymentDeleted':
      return withReason(e.data.reason);
    case 'DeploymentApplying':
    case 'DeploymentApplied':
      return {};
    case 'DeploymentRolloutProgressed':
      return { readyReplicas: e.data.readyReplicas, updatedReplicas: e.data.updatedReplicas };
    case 'DeploymentAvailable':
      return { readyReplicas: e.data.readyReplicas };
    case 'DeploymentDegraded':
    case 'DeploymentRolloutFailed':
      return { cause: e.data.cause };
    case 'DeploymentRolledBack':
      return { toRevision: e.data.toRevision, newRevision: e.data.newRevision, cause: e.data.cause };
    case 'DriftDetected':
      return { differences: e.data.differences, resolution: e.data.resolution };
  }
}

// ---- queries -------------------------------------------------------------------------------------------------

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
