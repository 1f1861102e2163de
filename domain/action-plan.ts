// The ActionPlan aggregate: a batch of changes asked for by a person or by InfraMind, checked, then carried out or rolled back.
import { isDeepStrictEqual } from 'node:util';
import { v5 as uuidv5 } from 'uuid';
import { z } from 'zod';
import { defineEvents, InvalidTransition, NotFound, RuleViolation, type Decider, type EventOf } from './decider.js';
import { id, labels, reason, timestamp } from './schemas.js';

// ---- actions ------------------------------------------------------------------------------------------

/** A Kubernetes node name: a DNS-1123 subdomain. */
const nodeName = z
  .string()
  .max(253, 'at most 253 characters')
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'a node name: lower-case letters, digits, "-" and ".", each dot-separated part starting and ending with a letter or digit',
  );

const revisionNumber = z.int({ error: 'a revision number: a whole number, 1 or more' }).min(1, 'a revision number: 1 or more');

/** One change a plan asks for. Every action names the one thing it changes (see `actionTarget`). */
export const planAction = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({
      kind: z.literal('scale'),
      deploymentId: id,
      replicas: z.int({ error: 'a whole number of replicas from 0 to 1000' }).min(0, 'at least 0 replicas').max(1000, 'at most 1000 replicas'),
    }),
    z
      .strictObject({
        kind: z.literal('reschedule'),
        deploymentId: id,
        clusterId: id.optional(),
        nodeSelector: labels.refine((selector) => Object.keys(selector).length > 0, 'at least one label').optional(),
      })
      .refine(
        (action) => action.clusterId !== undefined || action.nodeSelector !== undefined,
        'where to move the deployment: a clusterId, a nodeSelector, or both',
      ),
    z.strictObject({ kind: z.literal('rollback'), deploymentId: id, toRevision: revisionNumber.optional() }),
    z.strictObject({ kind: z.literal('restart'), deploymentId: id }),
    z.strictObject({ kind: z.literal('drain'), clusterId: id, node: nodeName }),
    z.strictObject({ kind: z.literal('update'), deploymentId: id, workloadRevision: revisionNumber.optional() }),
  ],
  { error: 'one of scale, reschedule, rollback, restart, drain, update' },
);
export type PlanAction = z.infer<typeof planAction>;

/** The aggregate an action changes: a deployment, or for a drain the cluster that holds the node. */
export function actionTarget(action: PlanAction): { kind: 'deployment' | 'cluster'; id: string } {
  return action.kind === 'drain' ? { kind: 'cluster', id: action.clusterId } : { kind: 'deployment', id: action.deploymentId };
}

// ---- bodies -------------------------------------------------------------------------------------------

/** Who a plan speaks for. `sentinel`: Sentinel's own remediation, never accepted from a request. */
export const planSource = z.enum(['user', 'inframind', 'sentinel'], { error: 'one of user, inframind' });
export type PlanSource = z.infer<typeof planSource>;

/**
 * What a plan does when one of its actions fails: `stop` leaves what it already carried out (the plan is Failed);
 * `undo` undoes it, last first (the plan rolls back). A plan rolls back whatever this says when an action's rollout
 * failed and the cluster took it back: the rest of the plan is undone with it.
 */
export const onFailure = z.enum(['stop', 'undo'], { error: 'one of stop, undo' });
export type OnFailure = z.infer<typeof onFailure>;

/** The longest a plan may wait for execution: seven days. */
const MAX_TTL_SECONDS = 604_800;

/** `POST /action-plans`. With neither `expiresAt` nor `ttlSeconds` the handler applies its default TTL. */
export const actionPlanBody = z
  .strictObject({
    source: planSource.default('user'),
    reason,
    actions: z.array(planAction, { error: 'a list of actions' }).min(1, 'at least one action').max(100, 'at most 100 actions'),
    expiresAt: timestamp.optional(),
    ttlSeconds: z
      .int({ error: `a whole number of seconds from 1 to ${MAX_TTL_SECONDS}` })
      .min(1, 'at least 1 second')
      .max(MAX_TTL_SECONDS, `at most ${MAX_TTL_SECONDS} seconds (7 days)`)
      .optional(),
    shadow: z.boolean({ error: 'true or false' }).default(false),
    onFailure: onFailure.default('stop'),
  })
  .refine((body) => body.expiresAt === undefined || body.ttlSeconds === undefined, {
    message: 'either expiresAt or ttlSeconds, not both',
    path: ['ttlSeconds'],
  });
export type ActionPlanBody = z.infer<typeof actionPlanBody>;

/** `POST /action-plans/:id/cancel` may say why. */
export const cancelBody = z.strictObject({ reason: reason.optional() });
export type CancelBody = z.infer<typeof cancelBody>;

// ---- events -------------------------------------------------------------------------------------------

const actor = z.object({ id: z.string().min(1), kind: z.enum(['user', 'service', 'system']) });
export type Actor = z.infer<typeof actor>;

const violation = z.object({ path: z.string().optional(), message: z.string() });
export type Violation = z.infer<typeof violation>;

const index = z.int().min(0);

/**
 * A deployment as an action found it before changing it: what an undo puts back. Recorded as the action starts, so an
 * action taken up again after a restart (its change already made) still knows what came before it.
 */
export const deploymentBefore = z.object({
  clusterId: z.string(),
  replicas: z.int().min(0),
  revision: z.int().min(1),
  nodeSelector: z.record(z.string(), z.string()).optional(),
});
export type DeploymentBefore = z.infer<typeof deploymentBefore>;

/**
 * What a deployment ran once the action settled: an undo goes ahead only while it still runs that. After a move to
 * another cluster, `deploymentId` and `clusterId` name the deployment that runs it now (the one moved is deleted).
 */
export const deploymentAfter = z.object({
  replicas: z.int().min(0),
  revision: z.int().min(1),
  deploymentId: z.string().optional(),
  clusterId: z.string().optional(),
});
export type DeploymentAfter = z.infer<typeof deploymentAfter>;

/** Namespace of the ids of deployments a plan creates (uuid v5). */
const PLAN_DEPLOYMENT_NAMESPACE = '3d0f6b52-9e41-5c7a-8b2d-7a4e1c9f0b63';

/**
 * The id of the deployment that action `index` of plan `planId` creates on the cluster it moves a deployment to
 * (`there`), or back on the cluster it came from when the move is undone (`back`): derived, so that a move taken up
 * again after a restart finds the deployment it created instead of making another.
 */
export function movedDeploymentId(planId: string, index: number, direction: 'there' | 'back' = 'there'): string {
  return uuidv5(`${planId}\u0000${index}\u0000${direction === 'there' ? 'move' : 'move-back'}`, PLAN_DEPLOYMENT_NAMESPACE);
}

/** The change that undoes an action, carried out through the deployment's own commands (and judged by policy). */
export const undoStep = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('scale'), deploymentId: z.string(), replicas: z.int().min(0), from: z.int().min(0) }),
  z.object({ kind: z.literal('rollback'), deploymentId: z.string(), toRevision: z.int().min(1), from: z.int().min(1) }),
  z.object({
    kind: z.literal('reschedule'),
    deploymentId: z.string(),
    nodeSelector: z.record(z.string(), z.string()),
    from: z.record(z.string(), z.string()),
  }),
  /**
   * A move to another cluster, undone by the reverse move: the deployment the move created (`deploymentId`, on
   * `from`), as the move left it (`replicas`, `revision`), is created again on `toClusterId` and then deleted.
   */
  z.object({
    kind: z.literal('move'),
    deploymentId: z.string(),
    from: z.string(),
    toClusterId: z.string(),
    replicas: z.int().min(0),
    revision: z.int().min(1),
    /** The node selector the deployment had on `toClusterId` before the move, if it had one. */
    nodeSelector: z.record(z.string(), z.string()).optional(),
  }),
]);
export type UndoStep = z.infer<typeof undoStep>;

/** An action a rolled-back plan left as it was, and why. */
const notUndoneEntry = z.object({ index, kind: z.string(), reason: z.string() });
export type NotUndone = z.infer<typeof notUndoneEntry>;

/** Identity upcasts: the versions that added an optional field read their predecessors as they are. */
const asIs = (data: unknown) => data;

export const actionPlanEvents = defineEvents({
  /** v2: `onFailure` (absent: stop). */
  ActionPlanSubmitted: {
    version: 2,
    schema: z.object({
      planId: z.string(),
      source: planSource,
      actor,
      reason: z.string(),
      actions: z.array(planAction).min(1),
      submittedAt: timestamp,
      expiresAt: timestamp,
      shadow: z.boolean(),
      onFailure: onFailure.optional(),
    }),
    upcast: { 1: asIs },
  },
  ActionPlanValidationStarted: { version: 1, schema: z.object({ planId: z.string() }) },
  ActionPlanApproved: { version: 1, schema: z.object({ planId: z.string() }) },
  ActionPlanRejected: { version: 1, schema: z.object({ planId: z.string(), violations: z.array(violation) }) },
  ActionPlanExecutionStarted: { version: 1, schema: z.object({ planId: z.string(), at: timestamp }) },
  ActionPlanExpired: { version: 1, schema: z.object({ planId: z.string(), at: timestamp }) },
  /** v2: `before`, the deployment as the action found it (none for a drain, nor in v1). */
  PlanActionStarted: { version: 2, schema: z.object({ planId: z.string(), index, before: deploymentBefore.optional() }), upcast: { 1: asIs } },
  /**
   * v2: `after`, what the deployment ran once the action settled (none for a drain, nor in v1). v3: `after.deploymentId`
   * and `after.clusterId`, the deployment a move created on the other cluster (none in v2: nothing was moved then).
   */
  PlanActionSucceeded: {
    version: 3,
    schema: z.object({ planId: z.string(), index, detail: z.string().optional(), after: deploymentAfter.optional() }),
    upcast: { 1: asIs, 2: asIs },
  },
  PlanActionFailed: { version: 1, schema: z.object({ planId: z.string(), index, error: z.string() }) },
  ActionPlanCompleted: { version: 1, schema: z.object({ planId: z.string() }) },
  ActionPlanFailed: { version: 1, schema: z.object({ planId: z.string(), cause: z.string() }) },
  ActionPlanRollbackStarted: { version: 1, schema: z.object({ planId: z.string(), cause: z.string() }) },
  /** The undo of a succeeded action begins: `undo` is the change that puts back what it changed. v2: `undo.kind` may be `move`. */
  PlanActionUndoStarted: { version: 2, schema: z.object({ planId: z.string(), index, undo: undoStep }), upcast: { 1: asIs } },
  PlanActionUndone: { version: 1, schema: z.object({ planId: z.string(), index, detail: z.string() }) },
  /** The action stays as it was carried out: it cannot be undone, policy refused its undo, or the undo failed. */
  PlanActionNotUndone: { version: 1, schema: z.object({ planId: z.string(), index, reason: z.string() }) },
  /** Recorded before plans undid their actions by themselves, by hand; read as `PlanActionUndone`. */
  PlanActionRolledBack: { version: 1, schema: z.object({ planId: z.string(), index }) },
  /** v2: `notUndone`, the actions it left as they were carried out (v1 plans undid nothing by themselves: none named). */
  ActionPlanRolledBack: {
    version: 2,
    schema: z.object({ planId: z.string(), notUndone: z.array(notUndoneEntry) }),
    upcast: { 1: (data) => ({ ...(data as object), notUndone: [] }) },
  },
  ActionPlanCancelled: { version: 1, schema: z.object({ planId: z.string(), actor, reason: z.string().optional() }) },
});
export type ActionPlanEvent = EventOf<typeof actionPlanEvents>;

// ---- state and commands -------------------------------------------------------------------------------

export type PlanStatus =
  | 'Pending'
  | 'Validating'
  | 'Approved'
  | 'Rejected'
  | 'Executing'
  | 'Completed'
  | 'Failed'
  | 'RollingBack'
  | 'RolledBack'
  | 'Expired'
  | 'Cancelled';

/** `Undoing`, `Undone`, `NotUndone`: a succeeded action of a plan that rolls back, on its way back or left as it was. */
export type ActionStatus = 'Pending' | 'Executing' | 'Succeeded' | 'Failed' | 'Skipped' | 'Undoing' | 'Undone' | 'NotUndone';

export interface PlanActionState {
  action: PlanAction;
  status: ActionStatus;
  detail?: string;
  error?: string;
  before?: DeploymentBefore;
  after?: DeploymentAfter;
  /** The change that undoes it, once its undo began. */
  undo?: UndoStep;
  /** What its undo did (Undone), or why it was left as it was (NotUndone). */
  undoDetail?: string;
}

export type ActionPlan =
  | { status: 'absent' }
  | {
      status: PlanStatus;
      id: string;
      source: PlanSource;
      actor: Actor;
      reason: string;
      submittedAt: string;
      expiresAt: string;
      shadow: boolean;
      onFailure: OnFailure;
      actions: PlanActionState[];
      violations?: Violation[];
      cause?: string;
    };

type SubmittedPlan = Exclude<ActionPlan, { status: 'absent' }>;

export type ActionPlanCommand =
  | {
      type: 'SubmitActionPlan';
      planId: string;
      source: PlanSource;
      actor: Actor;
      reason: string;
      actions: PlanAction[];
      submittedAt: string;
      expiresAt: string;
      shadow: boolean;
      /** Absent: stop. */
      onFailure?: OnFailure;
    }
  | { type: 'StartPlanValidation'; planId: string }
  | { type: 'ApprovePlan'; planId: string }
  | { type: 'RejectPlan'; planId: string; violations: Violation[] }
  | { type: 'StartPlanExecution'; planId: string; at: string }
  | { type: 'ExpirePlan'; planId: string; at: string }
  | { type: 'RecordActionStarted'; planId: string; index: number; before?: DeploymentBefore }
  | { type: 'RecordActionSucceeded'; planId: string; index: number; detail?: string; after?: DeploymentAfter }
  | { type: 'RecordActionFailed'; planId: string; index: number; error: string }
  | { type: 'StartPlanRollback'; planId: string; cause: string }
  /** Begins undoing the last action still carried out: the decider works out the change, or why there is none. */
  | { type: 'StartActionUndo'; planId: string; index: number }
  | { type: 'RecordActionUndone'; planId: string; index: number; detail: string }
  | { type: 'RecordActionNotUndone'; planId: string; index: number; reason: string }
  | { type: 'CompletePlanRollback'; planId: string }
  | { type: 'CancelPlan'; planId: string; actor: Actor; reason?: string };

/** Statuses a plan never leaves. `Failed` is not among them: a failed plan may still be rolled back. */
export const terminalStatuses: readonly PlanStatus[] = ['Rejected', 'Completed', 'RolledBack', 'Expired', 'Cancelled'];

export function isTerminal(status: ActionPlan['status']): boolean {
  return (terminalStatuses as readonly string[]).includes(status);
}

export const initialState: ActionPlan = { status: 'absent' };

export function evolve(state: ActionPlan, event: ActionPlanEvent): ActionPlan {
  if (event.type === 'ActionPlanSubmitted') {
    const { planId, actions, onFailure = 'stop', ...rest } = event.data;
    return { status: 'Pending', id: planId, ...rest, onFailure, actions: actions.map((action) => ({ action, status: 'Pending' })) };
  }
  if (state.status === 'absent') return state;
  switch (event.type) {
    case 'ActionPlanValidationStarted':
      return { ...state, status: 'Validating' };
    case 'ActionPlanApproved':
      return { ...state, status: 'Approved' };
    case 'ActionPlanRejected':
      return { ...state, status: 'Rejected', violations: event.data.violations };
    case 'ActionPlanExecutionStarted':
      return { ...state, status: 'Executing' };
    case 'ActionPlanExpired':
      return { ...state, status: 'Expired' };
    case 'PlanActionStarted': {
      const { index, before } = event.data;
      return withAction(state, index, { status: 'Executing', ...(before ? { before } : {}) });
    }
    case 'PlanActionSucceeded': {
      const { index, detail, after } = event.data;
      return withAction(state, index, { status: 'Succeeded', detail, ...(after ? { after } : {}) });
    }
    case 'PlanActionFailed':
      return withAction(state, event.data.index, { status: 'Failed', error: event.data.error });
    case 'ActionPlanCompleted':
      return { ...state, status: 'Completed' };
    case 'ActionPlanFailed':
      return { ...state, status: 'Failed', cause: event.data.cause, actions: skipPending(state.actions) };
    case 'ActionPlanRollbackStarted':
      return { ...state, status: 'RollingBack', cause: event.data.cause, actions: skipPending(state.actions) };
    case 'PlanActionUndoStarted':
      return withAction(state, event.data.index, { status: 'Undoing', undo: event.data.undo });
    case 'PlanActionUndone':
      return withAction(state, event.data.index, { status: 'Undone', undoDetail: event.data.detail });
    case 'PlanActionRolledBack':
      return withAction(state, event.data.index, { status: 'Undone', undoDetail: 'undone' });
    case 'PlanActionNotUndone':
      return withAction(state, event.data.index, { status: 'NotUndone', undoDetail: event.data.reason });
    case 'ActionPlanRolledBack':
      return { ...state, status: 'RolledBack' };
    case 'ActionPlanCancelled':
      return { ...state, status: 'Cancelled', cause: event.data.reason };
  }
}

export function decide(command: ActionPlanCommand, state: ActionPlan): ActionPlanEvent[] {
  if (command.type === 'SubmitActionPlan') return submit(command, state);
  if (state.status === 'absent') throw new NotFound('action plan', command.planId);
  switch (command.type) {
    case 'RecordActionStarted':
    case 'RecordActionSucceeded':
    case 'RecordActionFailed':
    case 'RecordActionUndone':
    case 'RecordActionNotUndone':
      return recordOutcome(command, state);
    case 'StartActionUndo':
      return startUndo(command, state);
    default:
      return transition(command, state);
  }
}

export const actionPlanDecider: Decider<ActionPlanCommand, ActionPlanEvent, ActionPlan> = { initialState, evolve, decide };

// ---- deciding, step by step ---------------------------------------------------------------------------

type OutcomeCommand = Extract<ActionPlanCommand, { type: `RecordAction${string}` }>;
type LifecycleCommand = Exclude<ActionPlanCommand, OutcomeCommand | { type: 'SubmitActionPlan' | 'StartActionUndo' }>;

const verbs: Record<ActionPlanCommand['type'], string> = {
  SubmitActionPlan: 'submit',
  StartPlanValidation: 'start validation',
  ApprovePlan: 'approve',
  RejectPlan: 'reject',
  StartPlanExecution: 'start execution',
  ExpirePlan: 'expire',
  RecordActionStarted: 'record an action start',
  RecordActionSucceeded: 'record an action success',
  RecordActionFailed: 'record an action failure',
  StartPlanRollback: 'start a rollback',
  StartActionUndo: 'start an undo',
  RecordActionUndone: 'record an action undone',
  RecordActionNotUndone: 'record an action not undone',
  CompletePlanRollback: 'complete a rollback',
  CancelPlan: 'cancel',
};

function submit(command: Extract<ActionPlanCommand, { type: 'SubmitActionPlan' }>, state: ActionPlan): ActionPlanEvent[] {
  const { planId, source, actor, reason, actions, submittedAt, expiresAt, shadow, onFailure } = command;
  if (state.status !== 'absent') throw new InvalidTransition('action plan', planId, state.status, 'submit', 'it was already submitted');
  if (actions.length === 0) throw new RuleViolation('an action plan needs at least one action', [{ path: 'actions', message: 'at least one action' }]);
  if (instant(expiresAt, 'expiresAt') <= instant(submittedAt, 'submittedAt')) {
    throw new RuleViolation(`action plan ${planId} would expire before it was submitted`, [
      { path: 'expiresAt', message: `a date-time after the submission at ${submittedAt}` },
    ]);
  }
  return [
    {
      type: 'ActionPlanSubmitted',
      data: { planId, source, actor, reason, actions, submittedAt, expiresAt, shadow, ...(onFailure !== undefined ? { onFailure } : {}) },
    },
  ];
}

function transition(command: LifecycleCommand, plan: SubmittedPlan): ActionPlanEvent[] {
  const { planId } = command;
  const refuse = (why?: string) => new InvalidTransition('action plan', planId, plan.status, verbs[command.type], why);
  const only = (...allowed: PlanStatus[]) => {
    if (!allowed.includes(plan.status)) throw refuse();
  };
  if (isTerminal(plan.status)) throw refuse();
  if (plan.status === 'Failed' && command.type !== 'StartPlanRollback') throw refuse('a failed plan can only be rolled back');

  switch (command.type) {
    case 'StartPlanValidation':
      if (plan.status === 'Validating') return [];
      only('Pending');
      return [{ type: 'ActionPlanValidationStarted', data: { planId } }];
    case 'ApprovePlan':
      if (plan.status === 'Approved') return [];
      only('Validating');
      return [{ type: 'ActionPlanApproved', data: { planId } }];
    case 'RejectPlan':
      only('Validating');
      if (command.violations.length === 0) {
        throw new RuleViolation('a rejection names what the plan breaks', [{ path: 'violations', message: 'at least one violation' }]);
      }
      return [{ type: 'ActionPlanRejected', data: { planId, violations: command.violations } }];
    case 'StartPlanExecution':
      if (plan.status === 'Executing') return [];
      only('Approved');
      if (plan.shadow) {
        throw new RuleViolation('shadow plans are evaluated and recorded, never executed', [
          { path: 'shadow', message: 'a plan submitted with shadow: false' },
        ]);
      }
      // A plan approved in time but picked up late is not carried out on stale grounds.
      if (instant(command.at, 'at') >= instant(plan.expiresAt, 'expiresAt')) return [{ type: 'ActionPlanExpired', data: { planId, at: command.at } }];
      return [{ type: 'ActionPlanExecutionStarted', data: { planId, at: command.at } }];
    case 'ExpirePlan':
      only('Pending', 'Validating', 'Approved');
      if (instant(command.at, 'at') < instant(plan.expiresAt, 'expiresAt')) {
        throw new RuleViolation(`action plan ${planId} does not expire until ${plan.expiresAt}`, [
          { path: 'at', message: `a date-time at or after ${plan.expiresAt}` },
        ]);
      }
      return [{ type: 'ActionPlanExpired', data: { planId, at: command.at } }];
    case 'StartPlanRollback':
      if (plan.status === 'RollingBack') return [];
      only('Executing', 'Failed');
      return [{ type: 'ActionPlanRollbackStarted', data: { planId, cause: command.cause } }];
    case 'CompletePlanRollback': {
      only('RollingBack');
      // Every action it carried out is undone or named as left, last first, before the plan counts as rolled back.
      const open = plan.actions.findIndex((slot) => slot.status === 'Succeeded' || slot.status === 'Undoing');
      if (open >= 0) throw refuse(`action ${open} is ${plan.actions[open]!.status}: undo it first`);
      const notUndone = plan.actions.flatMap((slot, index) =>
        slot.status === 'NotUndone' ? [{ index, kind: slot.action.kind, reason: slot.undoDetail ?? 'not undone' }] : [],
      );
      return [{ type: 'ActionPlanRolledBack', data: { planId, notUndone } }];
    }
    case 'CancelPlan':
      only('Pending', 'Validating', 'Approved');
      return [{ type: 'ActionPlanCancelled', data: { planId, actor: command.actor, reason: command.reason } }];
  }
}

/**
 * For each outcome: the plan status it may be recorded in, the action statuses it moves on from, and the action
 * statuses in which it has already been recorded (a repeat, from an at-least-once reactor, changes nothing).
 */
const UNDO_STATUSES: ActionStatus[] = ['Undoing', 'Undone', 'NotUndone'];
const outcomes: Record<OutcomeCommand['type'], { during: PlanStatus[]; from: ActionStatus[]; recorded: ActionStatus[] }> = {
  RecordActionStarted: { during: ['Executing'], from: ['Pending'], recorded: ['Executing', 'Succeeded', 'Failed', ...UNDO_STATUSES] },
  RecordActionSucceeded: { during: ['Executing'], from: ['Pending', 'Executing'], recorded: ['Succeeded', ...UNDO_STATUSES] },
  // During a rollback: the action whose failure started it (its change was already undone on the cluster).
  RecordActionFailed: { during: ['Executing', 'RollingBack'], from: ['Pending', 'Executing'], recorded: ['Failed'] },
  RecordActionUndone: { during: ['RollingBack'], from: ['Undoing'], recorded: ['Undone', 'NotUndone'] },
  RecordActionNotUndone: { during: ['RollingBack'], from: ['Undoing'], recorded: ['Undone', 'NotUndone'] },
};

function recordOutcome(command: OutcomeCommand, plan: SubmittedPlan): ActionPlanEvent[] {
  const { planId, index } = command;
  const rule = outcomes[command.type];
  const slot = Number.isInteger(index) ? plan.actions[index] : undefined;
  if (slot && rule.recorded.includes(slot.status)) return [];
  if (!rule.during.includes(plan.status)) throw new InvalidTransition('action plan', planId, plan.status, verbs[command.type]);
  if (!slot) {
    throw new RuleViolation(`action plan ${planId} has no action ${index}`, [
      { path: 'index', message: `an action index from 0 to ${plan.actions.length - 1}` },
    ]);
  }
  if (!rule.from.includes(slot.status)) {
    throw new InvalidTransition('action plan', planId, plan.status, verbs[command.type], `action ${index} is ${slot.status}`);
  }

  switch (command.type) {
    case 'RecordActionStarted':
      return [{ type: 'PlanActionStarted', data: { planId, index, ...(command.before ? { before: command.before } : {}) } }];
    case 'RecordActionSucceeded': {
      const { detail, after } = command;
      const events: ActionPlanEvent[] = [{ type: 'PlanActionSucceeded', data: { planId, index, detail, ...(after ? { after } : {}) } }];
      const rest = plan.actions.filter((_, i) => i !== index);
      if (rest.every((other) => other.status === 'Succeeded' || other.status === 'Skipped')) {
        events.push({ type: 'ActionPlanCompleted', data: { planId } });
      }
      return events;
    }
    case 'RecordActionFailed': {
      const failed: ActionPlanEvent = { type: 'PlanActionFailed', data: { planId, index, error: command.error } };
      if (plan.status === 'RollingBack') return [failed];
      const cause = `action ${index} (${slot.action.kind}) failed: ${command.error}`;
      if (plan.onFailure === 'undo') return [failed, { type: 'ActionPlanRollbackStarted', data: { planId, cause } }];
      return [failed, { type: 'ActionPlanFailed', data: { planId, cause } }];
    }
    case 'RecordActionUndone':
      return [{ type: 'PlanActionUndone', data: { planId, index, detail: command.detail } }];
    case 'RecordActionNotUndone':
      return [{ type: 'PlanActionNotUndone', data: { planId, index, reason: command.reason } }];
  }
}

/**
 * Undoes are taken last first, one at a time: the action named must be the last one still carried out, and no other
 * undo under way. What the undo is comes from what the action recorded (see `undoOf`): a change to carry out, or
 * nothing to do, or the reason it cannot be undone, recorded at once.
 */
function startUndo(command: Extract<ActionPlanCommand, { type: 'StartActionUndo' }>, plan: SubmittedPlan): ActionPlanEvent[] {
  const { planId, index } = command;
  const slot = Number.isInteger(index) ? plan.actions[index] : undefined;
  if (slot && UNDO_STATUSES.includes(slot.status)) return [];
  const refuse = (why?: string) => new InvalidTransition('action plan', planId, plan.status, verbs[command.type], why);
  if (plan.status !== 'RollingBack') throw refuse();
  if (!slot) {
    throw new RuleViolation(`action plan ${planId} has no action ${index}`, [
      { path: 'index', message: `an action index from 0 to ${plan.actions.length - 1}` },
    ]);
  }
  if (slot.status !== 'Succeeded') throw refuse(`action ${index} is ${slot.status}: only actions carried out are undone`);
  const undoing = plan.actions.findIndex((other) => other.status === 'Undoing');
  if (undoing >= 0) throw refuse(`the undo of action ${undoing} is under way`);
  const later = plan.actions.findLastIndex((other) => other.status === 'Succeeded');
  if (later !== index) throw refuse(`action ${later} was carried out after it: undo that first`);

  const undo = undoOf(slot);
  if ('step' in undo) return [{ type: 'PlanActionUndoStarted', data: { planId, index, undo: undo.step } }];
  if ('nothing' in undo) return [{ type: 'PlanActionUndone', data: { planId, index, detail: undo.nothing } }];
  return [{ type: 'PlanActionNotUndone', data: { planId, index, reason: undo.cannot } }];
}

/**
 * What undoes an action that was carried out: a scale goes back to the replicas before it, an update or a rollback
 * back to the revision before it (by a rollback to that revision), a reschedule within the cluster back to the node
 * selector before it, a move to another cluster by the reverse move (the deployment it created is moved back to the
 * cluster it came from, as a new deployment: the one moved was deleted, and a deleted deployment stays deleted). A restart cannot be undone: the pods it replaced are gone. A drain is not undone: the pods it
 * evicted run elsewhere now and would not go back, and uncordoning the node would put work back on a node that is
 * typically drained because it is failing; whether it takes work again is for a person to decide. An action recorded
 * without what it found (before plans kept it) is not undone: what to go back to is unknown.
 */
export function undoOf(slot: PlanActionState): { step: UndoStep } | { nothing: string } | { cannot: string } {
  const { action, before, after } = slot;
  if (action.kind === 'restart') return { cannot: 'a restart cannot be undone: the pods it replaced are gone' };
  if (action.kind === 'drain') {
    return {
      cannot: `a drain is not undone: the evicted pods run elsewhere now, and node ${action.node} stays cordoned until someone uncordons it`,
    };
  }
  const { deploymentId } = action;
  if (!before) return { cannot: `what deployment ${deploymentId} ran before the action was not recorded` };
  switch (action.kind) {
    case 'scale':
      if (before.replicas === action.replicas) return { nothing: `nothing to undo: deployment ${deploymentId} already had ${action.replicas} replicas` };
      return { step: { kind: 'scale', deploymentId, replicas: before.replicas, from: action.replicas } };
    case 'update':
    case 'rollback':
      if (!after) return { cannot: `the revision the action made of deployment ${deploymentId} was not recorded` };
      if (after.revision === before.revision) return { nothing: `nothing to undo: deployment ${deploymentId} stayed at revision ${before.revision}` };
      return { step: { kind: 'rollback', deploymentId, toRevision: before.revision, from: after.revision } };
    case 'reschedule': {
      if (action.clusterId !== undefined && action.clusterId !== before.clusterId) {
        if (!after?.deploymentId) return { cannot: `the deployment the move of ${deploymentId} created on cluster ${action.clusterId} was not recorded` };
        const { replicas, revision } = after;
        const back = { kind: 'move' as const, deploymentId: after.deploymentId, from: action.clusterId, toClusterId: before.clusterId, replicas, revision };
        return { step: before.nodeSelector ? { ...back, nodeSelector: before.nodeSelector } : back };
      }
      const previous = before.nodeSelector ?? {};
      if (!action.nodeSelector || isDeepStrictEqual(previous, action.nodeSelector)) {
        return { nothing: `nothing to undo: deployment ${deploymentId} stayed where it was` };
      }
      return { step: { kind: 'reschedule', deploymentId, nodeSelector: previous, from: action.nodeSelector } };
    }
  }
}

// ---- helpers ------------------------------------------------------------------------------------------

function withAction(plan: SubmittedPlan, index: number, change: Partial<PlanActionState>): SubmittedPlan {
  return { ...plan, actions: plan.actions.map((slot, i) => (i === index ? { ...slot, ...change } : slot)) };
}

/** Actions that never started will not start once the plan has failed or is being rolled back. */
function skipPending(actions: PlanActionState[]): PlanActionState[] {
  return actions.map((slot) => (slot.status === 'Pending' ? { ...slot, status: 'Skipped' } : slot));
}

/** Commands carry time as ISO strings; compare them as instants, not as text, so offsets compare correctly. */
function instant(value: string, path: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new RuleViolation(`${path} is not a date-time`, [{ path, message: 'an ISO 8601 date-time such as 2026-01-31T12:00:00Z' }]);
  return ms;
}
