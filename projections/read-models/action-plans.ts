// The action plans read model: every plan with its status, its actions' statuses and each action's timeline. The
// statuses are what the domain's own `evolve` makes of each event, from the plan's state as its rows hold it, so the
// lifecycles of a plan and of its actions are written once, in domain/action-plan.ts.
import {
  actionPlanEvents,
  actionTarget,
  evolve,
  initialState,
  type ActionPlan,
  type ActionPlanEvent,
  type ActionStatus,
  type Actor,
  type DeploymentAfter,
  type DeploymentBefore,
  type OnFailure,
  type PlanAction,
  type PlanSource,
  type PlanStatus,
  type UndoStep,
  type Violation,
} from '../../domain/action-plan.js';
import { insertRows, RowBatch, type Row } from '../row-batch.js';
import { BY_CREATION, foldRows, lifecycleColumns, parseEach, sortable } from './projecting.js';
import { acceptsOf, instantFilter, iso, lifecycle, listPage, oneOf, type Filters, type Lifecycle, type ReadModel } from './query.js';

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
  source: PlanSource;
  actor: Actor;
  reason: string;
  status: PlanStatus;
  shadow: boolean;
  on_failure: OnFailure;
  submitted_at: string;
  expires_at: string;
  violations: Violation[] | null;
  cause: string | null;
  cancelled_by: Actor | null;
}

interface PlanActionRow {
  plan_id: string;
  index: number;
  kind: string;
  action: PlanAction;
  target: { kind: string; id: string };
  status: ActionStatus;
  detail: string | null;
  error: string | null;
  before: DeploymentBefore | null;
  after: DeploymentAfter | null;
  undo: UndoStep | null;
  undo_detail: string | null;
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
  onFailure: row.on_failure,
  submittedAt: row.submitted_at,
  expiresAt: row.expires_at,
  violations: row.violations,
  cause: row.cause,
  cancelledBy: row.cancelled_by,
  // What a plan that rolled back (or is rolling back) left as it was carried out, and why.
  notUndone: actions.filter((action) => action.status === 'NotUndone').map((action) => ({ index: action.index, kind: action.kind, reason: action.undo_detail })),
  actions: actions.map((action) => ({
    index: action.index,
    kind: action.kind,
    target: action.target,
    action: action.action,
    status: action.status,
    detail: action.detail,
    error: action.error,
    // The change that undoes it (once its undo began), and what the undo did or why the action was not undone.
    undo: action.undo,
    undoDetail: action.undo_detail,
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
    // 2: what each action found and left (for its undo), its undo, and the plan's onFailure.
    version: 2,
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
        t.text('on_failure').notNullable();
        t.text('submitted_at').notNullable();
        t.text('expires_at').notNullable();
        t.jsonb('violations');
        t.text('cause');
        t.jsonb('cancelled_by');
        lifecycleColumns(t, tables.action_plans);
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
        t.jsonb('before');
        t.jsonb('after');
        t.jsonb('undo');
        t.text('undo_detail');
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
      const parsed = parseEach(actionPlanEvents, events);
      const plans = new RowBatch(trx, tables.action_plans, ['id']);
      const planActions = new RowBatch(trx, tables.plan_actions, ['plan_id', 'index']);
      await planActions.loadWhere('plan_id', parsed.map(({ e }) => e.data.planId));
      const steps: Row[] = [];

      await foldRows(plans, parsed, ({ e }) => e.data.planId, (row, { event, e }, id) => {
        const before = row ? planOf(row as unknown as PlanRow, actionRowsOf(planActions, id)) : initialState;
        const after = evolve(before, e);
        if (after.status === 'absent') return undefined;
        // Each action whose status the event moved gets a step in its timeline, with what the event said of it.
        const { detail = null, error = null } = outcomeOf(e);
        after.actions.forEach((slot, index) => {
          const was = before.status === 'absent' ? undefined : before.actions[index];
          if (was?.status === slot.status) return;
          const columns = {
            status: slot.status,
            detail: slot.detail ?? null,
            error: slot.error ?? null,
            before: slot.before ?? null,
            after: slot.after ?? null,
            undo: slot.undo ?? null,
            undo_detail: slot.undoDetail ?? null,
          };
          if (was) planActions.update([id, index], columns);
          else planActions.insert({ plan_id: id, index, kind: slot.action.kind, action: slot.action, target: actionTarget(slot.action), ...columns });
          steps.push({ plan_id: id, index, stream_revision: event.revision, status: slot.status, at: event.recordedAt, detail, error });
        });
        return {
          ...planColumns(after),
          // Who cancelled a plan is the event's to say: the domain's state does not keep it.
          cancelled_by: e.type === 'ActionPlanCancelled' ? e.data.actor : (row?.['cancelled_by'] ?? null),
        };
      });
      await plans.flush();
      await planActions.flush();
      await insertRows(trx, tables.plan_action_events, steps);
    },
  },
  filters: Object.keys(planFilters),
  accepts: acceptsOf(planFilters),
  async list(knex, tables, page) {
    const result = await listPage(knex(tables.action_plans).select('*'), BY_CREATION, planFilters, page, (row: PlanRow) => row);
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

// ---- from the domain's state to the rows, and back -------------------------------------------------------------

type SubmittedPlan = Exclude<ActionPlan, { status: 'absent' }>;

/** The plan as the domain folds it: its row and its actions' rows hold all of its state. */
function planOf(row: PlanRow, actions: readonly PlanActionRow[]): SubmittedPlan {
  return {
    status: row.status,
    id: row.id,
    source: row.source,
    actor: row.actor,
    reason: row.reason,
    submittedAt: row.submitted_at,
    expiresAt: row.expires_at,
    shadow: row.shadow,
    onFailure: row.on_failure,
    actions: actions.map(({ action, status, detail, error, before, after, undo, undo_detail }) => ({
      action,
      status,
      ...(detail !== null ? { detail } : {}),
      ...(error !== null ? { error } : {}),
      ...(before !== null ? { before } : {}),
      ...(after !== null ? { after } : {}),
      ...(undo !== null ? { undo } : {}),
      ...(undo_detail !== null ? { undoDetail: undo_detail } : {}),
    })),
    ...(row.violations !== null ? { violations: row.violations } : {}),
    ...(row.cause !== null ? { cause: row.cause } : {}),
  };
}

function planColumns(plan: SubmittedPlan): Row {
  return {
    source: plan.source,
    actor: plan.actor,
    reason: plan.reason,
    status: plan.status,
    shadow: plan.shadow,
    on_failure: plan.onFailure,
    submitted_at: plan.submittedAt,
    expires_at: plan.expiresAt,
    violations: plan.violations ?? null,
    cause: plan.cause ?? null,
  };
}

/** The rows of a plan's actions in the batch, in order: their indexes run from 0 with no gap. */
function actionRowsOf(planActions: RowBatch, planId: string): PlanActionRow[] {
  const rows: PlanActionRow[] = [];
  for (let row = planActions.get([planId, 0]); row; row = planActions.get([planId, rows.length])) rows.push(row as unknown as PlanActionRow);
  return rows;
}

/** What an event says of the one action it is about, for that action's timeline. */
function outcomeOf(e: ActionPlanEvent): { detail?: string; error?: string } {
  if (e.type === 'PlanActionSucceeded') return { detail: e.data.detail };
  if (e.type === 'PlanActionFailed') return { error: e.data.error };
  if (e.type === 'PlanActionUndone') return { detail: e.data.detail };
  if (e.type === 'PlanActionNotUndone') return { error: e.data.reason };
  return {};
}
