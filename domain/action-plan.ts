// The ActionPlan aggregate: a batch of changes asked for by a person or by InfraMind, checked, then carried out or rolled back.
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

export const actionPlanEvents = defineEvents({
  ActionPlanSubmitted: {
    version: 1,
    schema: z.object({
      planId: z.string(),
      source: planSource,
      actor,
      reason: z.string(),
      actions: z.array(planAction).min(1),
      submittedAt: timestamp,
      expiresAt: timestamp,
      shadow: z.boolean(),
    }),
  },
  ActionPlanValidationStarted: { version: 1, schema: z.object({ planId: z.string() }) },
  ActionPlanApproved: { version: 1, schema: z.object({ planId: z.string() }) },
  ActionPlanRejected: { version: 1, schema: z.object({ planId: z.string(), violations: z.array(violation) }) },
  ActionPlanExecutionStarted: { version: 1, schema: z.object({ planId: z.string(), at: timestamp }) },
  ActionPlanExpired: { version: 1, schema: z.object({ planId: z.string(), at: timestamp }) },
  PlanActionStarted: { version: 1, schema: z.object({ planId: z.string(), index }) },
  PlanActionSucceeded: { version: 1, schema: z.object({ planId: z.string(), index, detail: z.string().optional() }) },
  PlanActionFailed: { version: 1, schema: z.object({ planId: z.string(), index, error: z.string() }) },
  ActionPlanCompleted: { version: 1, schema: z.object({ planId: z.string() }) },
  ActionPlanFailed: { version: 1, schema: z.object({ planId: z.string(), cause: z.string() }) },
  ActionPlanRollbackStarted: { version: 1, schema: z.object({ planId: z.string(), cause: z.string() }) },
  PlanActionRolledBack: { version: 1, schema: z.object({ planId: z.string(), index }) },
  ActionPlanRolledBack: { version: 1, schema: z.object({ planId: z.string() }) },
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

export type ActionStatus = 'Pending' | 'Executing' | 'Succeeded' | 'Failed' | 'Skipped' | 'RolledBack';

export interface PlanActionState {
  action: PlanAction;
  status: ActionStatus;
  detail?: string;
  error?: string;
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
    }
  | { type: 'StartPlanValidation'; planId: string }
  | { type: 'ApprovePlan'; planId: string }
  | { type: 'RejectPlan'; planId: string; violations: Violation[] }
  | { type: 'StartPlanExecution'; planId: string; at: string }
  | { type: 'ExpirePlan'; planId: string; at: string }
  | { type: 'RecordActionStarted'; planId: string; index: number }
  | { type: 'RecordActionSucceeded'; planId: string; index: number; detail?: string }
  | { type: 'RecordActionFailed'; planId: string; index: number; error: string }
  | { type: 'StartPlanRollback'; planId: string; cause: string }
  | { type: 'RecordActionRolledBack'; planId: string; index: number }
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
    const { planId, actions, ...rest } = event.data;
    return { status: 'Pending', id: planId, ...rest, actions: actions.map((action) => ({ action, status: 'Pending' })) };
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
    case 'PlanActionStarted':
      return withAction(state, event.data.index, { status: 'Executing' });
    case 'PlanActionSucceeded':
      return withAction(state, event.data.index, { status: 'Succeeded', detail: event.data.detail });
    case 'PlanActionFailed':
      return withAction(state, event.data.index, { status: 'Failed', error: event.data.error });
    case 'ActionPlanCompleted':
      return { ...state, status: 'Completed' };
    case 'ActionPlanFailed':
      return { ...state, status: 'Failed', cause: event.data.cause, actions: skipPending(state.actions) };
    case 'ActionPlanRollbackStarted':
      return { ...state, status: 'RollingBack', cause: event.data.cause, actions: skipPending(state.actions) };
    case 'PlanActionRolledBack':
      return withAction(state, event.data.index, { status: 'RolledBack' });
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
    case 'RecordActionRolledBack':
      return recordOutcome(command, state);
    default:
      return transition(command, state);
  }
}

export const actionPlanDecider: Decider<ActionPlanCommand, ActionPlanEvent, ActionPlan> = { initialState, evolve, decide };

// ---- deciding, step by step ---------------------------------------------------------------------------

type OutcomeCommand = Extract<ActionPlanCommand, { type: `RecordAction${string}` }>;
type LifecycleCommand = Exclude<ActionPlanCommand, OutcomeCommand | { type: 'SubmitActionPlan' }>;

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
  RecordActionRolledBack: 'record an action rollback',
  CompletePlanRollback: 'complete a rollback',
  CancelPlan: 'cancel',
};

function submit(command: Extract<ActionPlanCommand, { type: 'SubmitActionPlan' }>, state: ActionPlan): ActionPlanEvent[] {
  const { planId, source, actor, reason, actions, submittedAt, expiresAt, shadow } = command;
  if (state.status !== 'absent') throw new InvalidTransition('action plan', planId, state.status, 'submit', 'it was already submitted');
  if (actions.length === 0) throw new RuleViolation('an action plan needs at least one action', [{ path: 'actions', message: 'at least one action' }]);
  if (instant(expiresAt, 'expiresAt') <= instant(submittedAt, 'submittedAt')) {
    throw new RuleViolation(`action plan ${planId} would expire before it was submitted`, [
      { path: 'expiresAt', message: `a date-time after the submission at ${submittedAt}` },
    ]);
  }
  return [{ type: 'ActionPlanSubmitted', data: { planId, source, actor, reason, actions, submittedAt, expiresAt, shadow } }];
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
    case 'CompletePlanRollback':
      only('RollingBack');
      return [{ type: 'ActionPlanRolledBack', data: { planId } }];
    case 'CancelPlan':
      only('Pending', 'Validating', 'Approved');
      return [{ type: 'ActionPlanCancelled', data: { planId, actor: command.actor, reason: command.reason } }];
  }
}

/**
 * For each outcome: the plan status it may be recorded in, the action statuses it moves on from, and the action
 * statuses in which it has already been recorded (a repeat, from an at-least-once reactor, changes nothing).
 */
const outcomes: Record<OutcomeCommand['type'], { during: PlanStatus[]; from: ActionStatus[]; recorded: ActionStatus[] }> = {
  RecordActionStarted: { during: ['Executing'], from: ['Pending'], recorded: ['Executing', 'Succeeded', 'Failed', 'RolledBack'] },
  RecordActionSucceeded: { during: ['Executing'], from: ['Pending', 'Executing'], recorded: ['Succeeded', 'RolledBack'] },
  // During a rollback: the action whose failure started it (its change was already undone on the cluster).
  RecordActionFailed: { during: ['Executing', 'RollingBack'], from: ['Pending', 'Executing'], recorded: ['Failed'] },
  RecordActionRolledBack: { during: ['RollingBack'], from: ['Succeeded'], recorded: ['RolledBack'] },
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
      return [{ type: 'PlanActionStarted', data: { planId, index } }];
    case 'RecordActionSucceeded': {
      const events: ActionPlanEvent[] = [{ type: 'PlanActionSucceeded', data: { planId, index, detail: command.detail } }];
      const rest = plan.actions.filter((_, i) => i !== index);
      if (rest.every((other) => other.status === 'Succeeded' || other.status === 'Skipped')) {
        events.push({ type: 'ActionPlanCompleted', data: { planId } });
      }
      return events;
    }
    case 'RecordActionFailed':
      if (plan.status === 'RollingBack') return [{ type: 'PlanActionFailed', data: { planId, index, error: command.error } }];
      return [
        { type: 'PlanActionFailed', data: { planId, index, error: command.error } },
        { type: 'ActionPlanFailed', data: { planId, cause: `action ${index} (${slot.action.kind}) failed: ${command.error}` } },
      ];
    case 'RecordActionRolledBack':
      return [{ type: 'PlanActionRolledBack', data: { planId, index } }];
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
