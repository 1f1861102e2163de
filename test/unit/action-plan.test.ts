import { expect } from 'chai';
import {
  actionPlanBody,
  actionPlanDecider,
  actionPlanEvents,
  actionTarget,
  cancelBody,
  movedDeploymentId,
  type ActionPlanCommand,
  type ActionPlanEvent,
  type PlanAction,
  type PlanStatus,
  type UndoStep,
} from '../../domain/action-plan.js';
import { InvalidTransition, NotFound, RuleViolation, UnknownEvent } from '../../domain/decider.js';
import { given } from '../support/decider.js';

const planId = '0b4c1d1e-2222-4a4a-8a8a-000000000001';
const deploymentA = '0b4c1d1e-3333-4a4a-8a8a-000000000001';
const deploymentB = '0b4c1d1e-3333-4a4a-8a8a-000000000002';
const clusterId = '0b4c1d1e-1111-4a4a-8a8a-000000000001';
const otherCluster = '0b4c1d1e-1111-4a4a-8a8a-000000000002';
const alice = { id: 'alice', kind: 'user' } as const;
const submittedAt = '2026-01-31T12:00:00Z';
const expiresAt = '2026-01-31T13:00:00Z';
const beforeTtl = '2026-01-31T12:30:00Z';
const afterTtl = '2026-01-31T13:00:01Z';

const actions: PlanAction[] = [
  { kind: 'scale', deploymentId: deploymentA, replicas: 3 },
  { kind: 'restart', deploymentId: deploymentB },
  { kind: 'drain', clusterId, node: 'gpu-node-1.us-east-1' },
];

const submit: ActionPlanCommand = {
  type: 'SubmitActionPlan',
  planId,
  source: 'inframind',
  actor: alice,
  reason: 'free idle GPUs',
  actions,
  submittedAt,
  expiresAt,
  shadow: false,
};
const submitted: ActionPlanEvent = {
  type: 'ActionPlanSubmitted',
  data: { planId, source: 'inframind', actor: alice, reason: 'free idle GPUs', actions, submittedAt, expiresAt, shadow: false },
};
const shadowSubmitted: ActionPlanEvent = {
  type: 'ActionPlanSubmitted',
  data: { planId, source: 'inframind', actor: alice, reason: 'what if', actions, submittedAt, expiresAt, shadow: true },
};
const validationStarted = { type: 'ActionPlanValidationStarted', data: { planId } } as const;
const approved = { type: 'ActionPlanApproved', data: { planId } } as const;
const violations = [{ path: 'actions.0.replicas', message: 'over the GPU quota of team ml' }, { message: 'change freeze until Monday' }];
const rejected: ActionPlanEvent = { type: 'ActionPlanRejected', data: { planId, violations } };
const executionStarted = { type: 'ActionPlanExecutionStarted', data: { planId, at: beforeTtl } } as const;
const started = (index: number) => ({ type: 'PlanActionStarted', data: { planId, index } }) as const;
/** Deployment A as the scale to 3 found it. */
const beforeA = { clusterId, replicas: 1, revision: 1 };
const startedScale: ActionPlanEvent = { type: 'PlanActionStarted', data: { planId, index: 0, before: beforeA } };
const succeeded = (index: number, detail?: string) => ({ type: 'PlanActionSucceeded', data: { planId, index, detail } }) as const;
const actionFailed = (index: number, error: string) => ({ type: 'PlanActionFailed', data: { planId, index, error } }) as const;
const completed = { type: 'ActionPlanCompleted', data: { planId } } as const;
const planFailed = { type: 'ActionPlanFailed', data: { planId, cause: 'action 1 (restart) failed: image pull backoff' } } as const;
const rollbackStarted = { type: 'ActionPlanRollbackStarted', data: { planId, cause: 'action 1 failed' } } as const;
const actionRolledBack = (index: number) => ({ type: 'PlanActionRolledBack', data: { planId, index } }) as const;
const undoStarted = (index: number, undo: UndoStep) => ({ type: 'PlanActionUndoStarted', data: { planId, index, undo } }) as const;
const undone = (index: number, detail: string) => ({ type: 'PlanActionUndone', data: { planId, index, detail } }) as const;
const notUndone = (index: number, reason: string) => ({ type: 'PlanActionNotUndone', data: { planId, index, reason } }) as const;
const planRolledBack: ActionPlanEvent = { type: 'ActionPlanRolledBack', data: { planId, notUndone: [] } };
const scaleBackA: UndoStep = { kind: 'scale', deploymentId: deploymentA, replicas: 1, from: 3 };
const expired = { type: 'ActionPlanExpired', data: { planId, at: afterTtl } } as const;
const cancelled = { type: 'ActionPlanCancelled', data: { planId, actor: alice, reason: 'not now' } } as const;

/** A history that leaves the plan in each status. */
const pending: ActionPlanEvent[] = [submitted];
const validating = [...pending, validationStarted];
const approvedPlan = [...validating, approved];
const executing = [...approvedPlan, executionStarted, startedScale];
const failed = [...executing, succeeded(0), started(1), actionFailed(1, 'image pull backoff'), planFailed];
const rollingBack = [...failed, rollbackStarted];
const histories: Record<PlanStatus, ActionPlanEvent[]> = {
  Pending: pending,
  Validating: validating,
  Approved: approvedPlan,
  Rejected: [...validating, rejected],
  Executing: executing,
  Completed: [...executing, succeeded(0), succeeded(1), succeeded(2), completed],
  Failed: failed,
  RollingBack: rollingBack,
  RolledBack: [...rollingBack, undoStarted(0, scaleBackA), undone(0, 'scaled back'), planRolledBack],
  Expired: [...approvedPlan, expired],
  Cancelled: [...pending, cancelled],
};

const plan = (...past: ActionPlanEvent[]) => given(actionPlanDecider, past);
const statusOf = (past: ActionPlanEvent[]) => plan(...past).state.status;
const actionStatuses = (past: ActionPlanEvent[]) => {
  const { state } = plan(...past);
  return state.status === 'absent' ? [] : state.actions.map((slot) => slot.status);
};
const errorOf = (past: ActionPlanEvent[], command: ActionPlanCommand): unknown => {
  try {
    plan(...past).when(command).events();
  } catch (error) {
    return error;
  }
  return undefined;
};

describe('ActionPlan decider', () => {
  describe('submit', () => {
    it('given nothing, when submitted, then ActionPlanSubmitted and the plan is Pending with every action Pending', () => {
      plan().when(submit).then([submitted]);
      expect(statusOf([submitted])).to.equal('Pending');
      expect(actionStatuses([submitted])).to.deep.equal(['Pending', 'Pending', 'Pending']);
    });
    it('given nothing, when the plan would expire when it is submitted, then RuleViolation on expiresAt', () => {
      const error = errorOf([], { ...submit, expiresAt: submittedAt });
      expect(error).to.be.instanceOf(RuleViolation);
      expect((error as RuleViolation).errors.map((e) => e.path)).to.deep.equal(['expiresAt']);
    });
    it('compares times as instants, so an offset that is later in the day but earlier in time is refused', () => {
      plan().when({ ...submit, expiresAt: '2026-01-31T13:30:00+02:00' }).thenThrows(RuleViolation, /expire before/);
    });
    it('given nothing, when submitted without actions, then RuleViolation on actions', () => {
      plan().when({ ...submit, actions: [] }).thenThrows(RuleViolation, /at least one action/);
    });
    it('given a submitted plan, when submitted again, then InvalidTransition', () => {
      plan(submitted).when(submit).thenThrows(InvalidTransition, /already submitted/);
    });
    for (const command of [
      { type: 'StartPlanValidation', planId },
      { type: 'ApprovePlan', planId },
      { type: 'RejectPlan', planId, violations },
      { type: 'StartPlanExecution', planId, at: beforeTtl },
      { type: 'ExpirePlan', planId, at: afterTtl },
      { type: 'RecordActionStarted', planId, index: 0 },
      { type: 'RecordActionSucceeded', planId, index: 0 },
      { type: 'RecordActionFailed', planId, index: 0, error: 'x' },
      { type: 'StartPlanRollback', planId, cause: 'x' },
      { type: 'StartActionUndo', planId, index: 0 },
      { type: 'RecordActionUndone', planId, index: 0, detail: 'x' },
      { type: 'RecordActionNotUndone', planId, index: 0, reason: 'x' },
      { type: 'CompletePlanRollback', planId },
      { type: 'CancelPlan', planId, actor: alice },
    ] satisfies ActionPlanCommand[]) {
      it(`given nothing, when ${command.type}, then NotFound`, () => {
        plan().when(command).thenThrows(NotFound, /action plan .* does not exist/);
      });
    }
  });

  describe('the happy path', () => {
    it('walks submit → validate → approve → execute → each action succeeds → Completed', () => {
      plan(...pending).when({ type: 'StartPlanValidation', planId }).then([validationStarted]);
      plan(...validating).when({ type: 'ApprovePlan', planId }).then([approved]);
      plan(...approvedPlan).when({ type: 'StartPlanExecution', planId, at: beforeTtl }).then([executionStarted]);
      const running = [...approvedPlan, executionStarted];
      plan(...running).when({ type: 'RecordActionStarted', planId, index: 0 }).then([started(0)]);
      plan(...running, started(0)).when({ type: 'RecordActionSucceeded', planId, index: 0, detail: 'scaled to 3' }).then([succeeded(0, 'scaled to 3')]);
      const two = [...running, started(0), succeeded(0, 'scaled to 3')];
      plan(...two).when({ type: 'RecordActionSucceeded', planId, index: 1 }).then([succeeded(1)]);
      plan(...two, succeeded(1))
        .when({ type: 'RecordActionSucceeded', planId, index: 2 })
        .then([succeeded(2), completed]);
      const done = [...two, succeeded(1), succeeded(2), completed];
      expect(statusOf(done)).to.equal('Completed');
      expect(actionStatuses(done)).to.deep.equal(['Succeeded', 'Succeeded', 'Succeeded']);
      const { state } = plan(...done);
      expect(state.status !== 'absent' && state.actions[0]!.detail).to.equal('scaled to 3');
    });
    it('completes in the decision of the last success, whatever the order the actions finish in', () => {
      plan(...approvedPlan, executionStarted, succeeded(2), succeeded(0))
        .when({ type: 'RecordActionSucceeded', planId, index: 1 })
        .then([succeeded(1), completed]);
    });
  });

  describe('validation', () => {
    it('given a validating plan, when rejected, then ActionPlanRejected and the violations are kept', () => {
      plan(...validating).when({ type: 'RejectPlan', planId, violations }).then([rejected]);
      const { state } = plan(...validating, rejected);
      expect(state).to.deep.include({ status: 'Rejected', violations });
    });
    it('given a validating plan, when rejected without violations, then RuleViolation', () => {
      plan(...validating).when({ type: 'RejectPlan', planId, violations: [] }).thenThrows(RuleViolation, /names what the plan breaks/);
    });
    it('given a pending plan, when approved before validation, then InvalidTransition', () => {
      plan(...pending).when({ type: 'ApprovePlan', planId }).thenThrows(InvalidTransition, /is Pending: cannot approve/);
    });
  });

  describe('failure', () => {
    it('given an executing plan, when an action fails, then PlanActionFailed and ActionPlanFailed', () => {
      plan(...executing, succeeded(0), started(1))
        .when({ type: 'RecordActionFailed', planId, index: 1, error: 'image pull backoff' })
        .then([actionFailed(1, 'image pull backoff'), planFailed]);
    });
    it('given a failure in the middle, then the later actions are Skipped and the cause is kept', () => {
      expect(statusOf(failed)).to.equal('Failed');
      expect(actionStatuses(failed)).to.deep.equal(['Succeeded', 'Failed', 'Skipped']);
      const { state } = plan(...failed);
      expect(state).to.deep.include({ cause: planFailed.data.cause });
      expect(state.status !== 'absent' && state.actions[1]!.error).to.equal('image pull backoff');
    });
  });

  describe('rollback', () => {
    it('walks Failed → RollingBack → (the succeeded action undone) → RolledBack', () => {
      plan(...failed).when({ type: 'StartPlanRollback', planId, cause: 'action 1 failed' }).then([rollbackStarted]);
      expect(statusOf(rollingBack)).to.equal('RollingBack');
      plan(...rollingBack).when({ type: 'StartActionUndo', planId, index: 0 }).then([undoStarted(0, scaleBackA)]);
      const undoing = [...rollingBack, undoStarted(0, scaleBackA)];
      expect(actionStatuses(undoing)).to.deep.equal(['Undoing', 'Failed', 'Skipped']);
      plan(...undoing).when({ type: 'RecordActionUndone', planId, index: 0, detail: 'scaled back' }).then([undone(0, 'scaled back')]);
      plan(...undoing, undone(0, 'scaled back')).when({ type: 'CompletePlanRollback', planId }).then([planRolledBack]);
      const done = [...undoing, undone(0, 'scaled back'), planRolledBack];
      expect(statusOf(done)).to.equal('RolledBack');
      expect(actionStatuses(done)).to.deep.equal(['Undone', 'Failed', 'Skipped']);
      expect(plan(...done).state).to.deep.include({ cause: 'action 1 failed' });
    });
    it('given a plan rolling back with an action not yet undone, when the rollback completes, then InvalidTransition naming it', () => {
      plan(...rollingBack).when({ type: 'CompletePlanRollback', planId }).thenThrows(InvalidTransition, /action 0 is Succeeded: undo it first/);
      plan(...rollingBack, undoStarted(0, scaleBackA))
        .when({ type: 'CompletePlanRollback', planId })
        .thenThrows(InvalidTransition, /action 0 is Undoing: undo it first/);
    });
    it('given a plan rolling back because its running action was undone, when that action fails, then only PlanActionFailed (the plan is already rolling back)', () => {
      const undoing = [...executing, { type: 'ActionPlanRollbackStarted', data: { planId, cause: 'rollout failed' } } as const];
      plan(...undoing).when({ type: 'RecordActionFailed', planId, index: 0, error: 'rolled back' }).then([actionFailed(0, 'rolled back')]);
      plan(...undoing, actionFailed(0, 'rolled back')).when({ type: 'CompletePlanRollback', planId }).then([planRolledBack]);
      expect(actionStatuses([...undoing, actionFailed(0, 'rolled back'), planRolledBack])).to.deep.equal(['Failed', 'Skipped', 'Skipped']);
    });
    it('given an executing plan, when a rollback starts, then ActionPlanRollbackStarted and the actions not yet started are Skipped', () => {
      plan(...executing).when({ type: 'StartPlanRollback', planId, cause: 'SLO breach' }).then([
        { type: 'ActionPlanRollbackStarted', data: { planId, cause: 'SLO breach' } },
      ]);
      const past = [...executing, { type: 'ActionPlanRollbackStarted', data: { planId, cause: 'SLO breach' } } as const];
      expect(actionStatuses(past)).to.deep.equal(['Executing', 'Skipped', 'Skipped']);
    });
    for (const [index, status] of [
      [1, 'Failed'],
      [2, 'Skipped'],
    ] as const) {
      it(`given a plan rolling back, when action ${index} (${status}) is undone, then InvalidTransition: only succeeded actions are undone`, () => {
        plan(...rollingBack)
          .when({ type: 'StartActionUndo', planId, index })
          .thenThrows(InvalidTransition, new RegExp(`action ${index} is ${status}: only actions carried out are undone`));
      });
    }
    it('given a plan rolling back, when an action outside the plan is rolled back, then RuleViolation on index', () => {
      plan(...rollingBack).when({ type: 'StartActionUndo', planId, index: 3 }).thenThrows(RuleViolation, /no action 3/);
    });
  });

  describe('expiry', () => {
    for (const status of ['Pending', 'Validating', 'Approved'] as const) {
      it(`given a ${status} plan past its TTL, when expired, then ActionPlanExpired`, () => {
        plan(...histories[status]).when({ type: 'ExpirePlan', planId, at: afterTtl }).then([expired]);
      });
    }
    it('given a plan exactly at its TTL, when expired, then ActionPlanExpired', () => {
      plan(...pending).when({ type: 'ExpirePlan', planId, at: expiresAt }).then([{ type: 'ActionPlanExpired', data: { planId, at: expiresAt } }]);
    });
    it('given a plan before its TTL, when expired, then RuleViolation on at', () => {
      const error = errorOf(approvedPlan, { type: 'ExpirePlan', planId, at: beforeTtl });
      expect(error).to.be.instanceOf(RuleViolation);
      expect((error as RuleViolation).message).to.match(/does not expire until/);
      expect((error as RuleViolation).errors.map((e) => e.path)).to.deep.equal(['at']);
    });
    it('given an approved plan past its TTL, when execution starts, then ActionPlanExpired instead', () => {
      plan(...approvedPlan).when({ type: 'StartPlanExecution', planId, at: afterTtl }).then([expired]);
      plan(...approvedPlan).when({ type: 'StartPlanExecution', planId, at: expiresAt }).then([
        { type: 'ActionPlanExpired', data: { planId, at: expiresAt } },
      ]);
      expect(statusOf([...approvedPlan, expired])).to.equal('Expired');
    });
    it('given an executing plan past its TTL, when expired, then InvalidTransition: what is under way is not undone by the TTL', () => {
      plan(...executing).when({ type: 'ExpirePlan', planId, at: afterTtl }).thenThrows(InvalidTransition, /is Executing: cannot expire/);
    });
    it('given an executing plan past its TTL, when its next action is recorded failed before it starts, then the plan fails and the rest are Skipped', () => {
      const error = `plan expired at ${expiresAt}`;
      const cause = `action 1 (restart) failed: ${error}`;
      plan(...executing, succeeded(0))
        .when({ type: 'RecordActionFailed', planId, index: 1, error })
        .then([actionFailed(1, error), { type: 'ActionPlanFailed', data: { planId, cause } }]);
      const ended = [...executing, succeeded(0), actionFailed(1, error), { type: 'ActionPlanFailed', data: { planId, cause } } as const];
      expect(statusOf(ended)).to.equal('Failed');
      expect(actionStatuses(ended)).to.deep.equal(['Succeeded', 'Failed', 'Skipped']);
    });
    it('given a plan, when the time on the command is not a date-time, then RuleViolation on at', () => {
      plan(...approvedPlan).when({ type: 'StartPlanExecution', planId, at: 'soon' }).thenThrows(RuleViolation, /at is not a date-time/);
    });
  });

  describe('cancel', () => {
    for (const status of ['Pending', 'Validating', 'Approved'] as const) {
      it(`given a ${status} plan, when cancelled, then ActionPlanCancelled`, () => {
        plan(...histories[status]).when({ type: 'CancelPlan', planId, actor: alice, reason: 'not now' }).then([cancelled]);
      });
    }
    it('given a cancelled plan, then the state is Cancelled with the reason as its cause', () => {
      expect(plan(...pending, cancelled).state).to.deep.include({ status: 'Cancelled', cause: 'not now' });
    });
    it('given a plan without a reason, when cancelled, then the event carries no reason', () => {
      plan(...pending).when({ type: 'CancelPlan', planId, actor: alice }).then([
        { type: 'ActionPlanCancelled', data: { planId, actor: alice, reason: undefined } },
      ]);
    });
    for (const status of ['Executing', 'Completed', 'Failed', 'RollingBack', 'RolledBack', 'Rejected', 'Expired', 'Cancelled'] as const) {
      it(`given a ${status} plan, when cancelled, then InvalidTransition`, () => {
        plan(...histories[status]).when({ type: 'CancelPlan', planId, actor: alice }).thenThrows(InvalidTransition, new RegExp(`is ${status}: cannot cancel`));
      });
    }
  });

  describe('shadow plans', () => {
    const shadowApproved = [shadowSubmitted, validationStarted, approved];
    it('given a shadow plan, it is validated and approved like any other', () => {
      plan(shadowSubmitted).when({ type: 'StartPlanValidation', planId }).then([validationStarted]);
      plan(shadowSubmitted, validationStarted).when({ type: 'ApprovePlan', planId }).then([approved]);
      expect(plan(...shadowApproved).state).to.deep.include({ status: 'Approved', shadow: true });
    });
    it('given an approved shadow plan, when execution starts, then RuleViolation: it is never executed', () => {
      plan(...shadowApproved)
        .when({ type: 'StartPlanExecution', planId, at: beforeTtl })
        .thenThrows(RuleViolation, /shadow plans are evaluated and recorded, never executed/);
    });
    it('given an approved shadow plan, it ends by expiring', () => {
      plan(...shadowApproved).when({ type: 'ExpirePlan', planId, at: afterTtl }).then([expired]);
    });
  });

  describe('recording outcomes', () => {
    it('given a started action, when it is started again, then nothing', () => {
      plan(...executing).when({ type: 'RecordActionStarted', planId, index: 0 }).then([]);
    });
    it('given a succeeded action, when it succeeds again, then nothing', () => {
      plan(...executing, succeeded(0)).when({ type: 'RecordActionSucceeded', planId, index: 0 }).then([]);
    });
    it('given a succeeded action, when its start arrives late, then nothing', () => {
      plan(...executing, succeeded(0)).when({ type: 'RecordActionStarted', planId, index: 0 }).then([]);
    });
    it('given a completed plan, when the last success is recorded again, then nothing', () => {
      plan(...histories.Completed).when({ type: 'RecordActionSucceeded', planId, index: 2 }).then([]);
    });
    it('given a failed plan, when the same failure is recorded again, then nothing', () => {
      plan(...failed).when({ type: 'RecordActionFailed', planId, index: 1, error: 'image pull backoff' }).then([]);
    });
    it('given an undone action, when its undo is started or recorded again, then nothing', () => {
      const past = [...rollingBack, undoStarted(0, scaleBackA), undone(0, 'scaled back')];
      plan(...past).when({ type: 'StartActionUndo', planId, index: 0 }).then([]);
      plan(...past).when({ type: 'RecordActionUndone', planId, index: 0, detail: 'scaled back' }).then([]);
      plan(...past).when({ type: 'RecordActionNotUndone', planId, index: 0, reason: 'late' }).then([]);
    });
    it('given an action whose undo is under way, when its undo is started again, then nothing', () => {
      plan(...rollingBack, undoStarted(0, scaleBackA)).when({ type: 'StartActionUndo', planId, index: 0 }).then([]);
    });
    it('given a succeeded action, when it is reported failed, then InvalidTransition', () => {
      plan(...executing, succeeded(0))
        .when({ type: 'RecordActionFailed', planId, index: 0, error: 'late' })
        .thenThrows(InvalidTransition, /action 0 is Succeeded/);
    });
    it('given a failed action, when it is reported succeeded, then InvalidTransition', () => {
      plan(...failed).when({ type: 'RecordActionSucceeded', planId, index: 1 }).thenThrows(InvalidTransition, /is Failed/);
    });
    it('given an action that was never started, when it succeeds, then PlanActionSucceeded', () => {
      plan(...executing).when({ type: 'RecordActionSucceeded', planId, index: 1 }).then([succeeded(1)]);
    });
    for (const index of [3, -1, 1.5]) {
      it(`given an executing plan, when action ${index} is recorded, then RuleViolation on index`, () => {
        const error = errorOf(executing, { type: 'RecordActionStarted', planId, index });
        expect(error).to.be.instanceOf(RuleViolation);
        expect((error as RuleViolation).errors).to.deep.equal([{ path: 'index', message: 'an action index from 0 to 2' }]);
      });
    }
    it('given an approved plan, when an action is recorded before execution, then InvalidTransition', () => {
      plan(...approvedPlan).when({ type: 'RecordActionStarted', planId, index: 0 }).thenThrows(InvalidTransition, /is Approved/);
    });
  });

  describe('the status table', () => {
    // One command of each type, aimed at action 2 (not yet run while executing) and action 0 (the one that
    // succeeded before the failure) so each cell is a real transition, a repeat, or a refusal.
    const commands: ActionPlanCommand[] = [
      submit,
      { type: 'StartPlanValidation', planId },
      { type: 'ApprovePlan', planId },
      { type: 'RejectPlan', planId, violations },
      { type: 'StartPlanExecution', planId, at: beforeTtl },
      { type: 'ExpirePlan', planId, at: afterTtl },
      { type: 'RecordActionStarted', planId, index: 2 },
      { type: 'RecordActionSucceeded', planId, index: 2 },
      { type: 'RecordActionFailed', planId, index: 2, error: 'x' },
      { type: 'StartPlanRollback', planId, cause: 'x' },
      { type: 'StartActionUndo', planId, index: 0 },
      { type: 'RecordActionUndone', planId, index: 0, detail: 'x' },
      { type: 'RecordActionNotUndone', planId, index: 0, reason: 'x' },
      { type: 'CompletePlanRollback', planId },
      { type: 'CancelPlan', planId, actor: alice },
    ];
    type CommandType = ActionPlanCommand['type'];
    /** What each status accepts (new events) and what it answers with nothing (already so); the rest is InvalidTransition. */
    const table: Record<PlanStatus, { accepts: CommandType[]; repeats?: CommandType[] }> = {
      Pending: { accepts: ['StartPlanValidation', 'ExpirePlan', 'CancelPlan'] },
      Validating: { accepts: ['ApprovePlan', 'RejectPlan', 'ExpirePlan', 'CancelPlan'], repeats: ['StartPlanValidation'] },
      Approved: { accepts: ['StartPlanExecution', 'ExpirePlan', 'CancelPlan'], repeats: ['ApprovePlan'] },
      Rejected: { accepts: [] },
      Executing: {
        accepts: ['RecordActionStarted', 'RecordActionSucceeded', 'RecordActionFailed', 'StartPlanRollback'],
        repeats: ['StartPlanExecution'],
      },
      Completed: { accepts: [], repeats: ['RecordActionStarted', 'RecordActionSucceeded'] },
      Failed: { accepts: ['StartPlanRollback'] },
      // Action 0 succeeded: it is undone before the rollback can complete.
      RollingBack: { accepts: ['StartActionUndo'], repeats: ['StartPlanRollback'] },
      RolledBack: { accepts: [], repeats: ['StartActionUndo', 'RecordActionUndone', 'RecordActionNotUndone'] },
      Expired: { accepts: [] },
      Cancelled: { accepts: [] },
    };

    for (const [status, { accepts, repeats = [] }] of Object.entries(table) as [PlanStatus, (typeof table)[PlanStatus]][]) {
      it(`the ${status} history leaves the plan ${status}`, () => {
        expect(statusOf(histories[status])).to.equal(status);
      });
      for (const command of commands) {
        const outcome = accepts.includes(command.type) ? 'events' : repeats.includes(command.type) ? 'nothing' : 'InvalidTransition';
        it(`given a ${status} plan, when ${command.type}, then ${outcome}`, () => {
          const when = plan(...histories[status]).when(command);
          if (outcome === 'InvalidTransition') when.thenThrows(InvalidTransition, new RegExp(`is ${status}: cannot`));
          else if (outcome === 'nothing') when.then([]);
          else expect(when.events()).to.have.length.greaterThan(0);
        });
      }
    }
  });

  describe('bodies', () => {
    const scale = { kind: 'scale', deploymentId: deploymentA, replicas: 2 };
    const issues = (body: unknown) => {
      const result = actionPlanBody.safeParse(body);
      expect(result.success, 'the body should be refused').to.equal(false);
      return result.error!.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    };

    it('fills source, shadow and onFailure', () => {
      expect(actionPlanBody.parse({ reason: 'r', actions: [scale] })).to.deep.equal({ source: 'user', reason: 'r', actions: [scale], shadow: false, onFailure: 'stop' });
    });
    it('accepts onFailure "undo", and refuses anything but stop and undo', () => {
      expect(actionPlanBody.parse({ reason: 'r', actions: [scale], onFailure: 'undo' })).to.deep.include({ onFailure: 'undo' });
      expect(issues({ reason: 'r', actions: [scale], onFailure: 'rollback' })).to.deep.equal(['onFailure: one of stop, undo']);
    });
    it('accepts an InfraMind shadow plan with a TTL', () => {
      const body = actionPlanBody.parse({ source: 'inframind', reason: 'r', actions: [scale], ttlSeconds: 600, shadow: true });
      expect(body).to.deep.include({ source: 'inframind', ttlSeconds: 600, shadow: true });
    });
    for (const action of [
      { kind: 'scale', deploymentId: deploymentA, replicas: 0 },
      { kind: 'scale', deploymentId: deploymentA, replicas: 1000 },
      { kind: 'reschedule', deploymentId: deploymentA, clusterId },
      { kind: 'reschedule', deploymentId: deploymentA, nodeSelector: { 'nvidia.com/gpu.product': 'A100-SXM4-80GB' } },
      { kind: 'reschedule', deploymentId: deploymentA, clusterId, nodeSelector: { pool: 'gpu' } },
      { kind: 'rollback', deploymentId: deploymentA },
      { kind: 'rollback', deploymentId: deploymentA, toRevision: 4 },
      { kind: 'restart', deploymentId: deploymentA },
      { kind: 'drain', clusterId, node: 'ip-10-0-1-17.ec2.internal' },
      { kind: 'update', deploymentId: deploymentA },
      { kind: 'update', deploymentId: deploymentA, workloadRevision: 2 },
    ]) {
      it(`accepts ${JSON.stringify(action)}`, () => {
        expect(actionPlanBody.parse({ reason: 'r', actions: [action] }).actions).to.deep.equal([action]);
      });
    }
    for (const [action, expected] of [
      [{ kind: 'scale', deploymentId: deploymentA, replicas: 1001 }, 'actions.0.replicas: at most 1000 replicas'],
      [{ kind: 'scale', deploymentId: deploymentA, replicas: 1.5 }, 'actions.0.replicas: a whole number of replicas from 0 to 1000'],
      [{ kind: 'scale', deploymentId: 'web', replicas: 1 }, 'actions.0.deploymentId: a UUID'],
      [{ kind: 'reschedule', deploymentId: deploymentA }, 'actions.0: where to move the deployment: a clusterId, a nodeSelector, or both'],
      [{ kind: 'reschedule', deploymentId: deploymentA, nodeSelector: {} }, 'actions.0.nodeSelector: at least one label'],
      [{ kind: 'rollback', deploymentId: deploymentA, toRevision: 0 }, 'actions.0.toRevision: a revision number: 1 or more'],
      [{ kind: 'drain', clusterId, node: 'Node_1' }, 'actions.0.node: a node name'],
      [{ kind: 'drain', clusterId, node: 'a'.repeat(254) }, 'actions.0.node: at most 253 characters'],
      [{ kind: 'drain', deploymentId: deploymentA, node: 'n1' }, 'actions.0.clusterId: a UUID'],
      [{ kind: 'update', deploymentId: deploymentA, workloadRevision: -1 }, 'actions.0.workloadRevision: a revision number: 1 or more'],
      [{ kind: 'explode', deploymentId: deploymentA }, 'actions.0.kind: one of scale, reschedule, rollback, restart, drain, update'],
      [{ kind: 'restart', deploymentId: deploymentA, force: true }, 'actions.0: Unrecognized key: "force"'],
    ] as const) {
      it(`refuses a "${action.kind}" action with "${expected}"`, () => {
        const found = issues({ reason: 'r', actions: [action] });
        expect(found.some((issue) => issue.startsWith(expected))).to.equal(true, found.join('; '));
      });
    }
    it('refuses unknown fields', () => {
      expect(issues({ reason: 'r', actions: [scale], priority: 1 })).to.deep.equal([': Unrecognized key: "priority"']);
    });
    it('refuses both expiresAt and ttlSeconds', () => {
      expect(issues({ reason: 'r', actions: [scale], expiresAt: '2026-02-01T00:00:00Z', ttlSeconds: 60 })).to.deep.equal([
        'ttlSeconds: either expiresAt or ttlSeconds, not both',
      ]);
    });
    it('refuses an empty list of actions, and more than 100', () => {
      expect(issues({ reason: 'r', actions: [] })).to.deep.equal(['actions: at least one action']);
      expect(issues({ reason: 'r', actions: Array.from({ length: 101 }, () => scale) })).to.deep.equal(['actions: at most 100 actions']);
    });
    it('refuses a missing reason, a bad source, a TTL out of range and a bad expiry', () => {
      expect(issues({ source: 'robot', actions: [scale], ttlSeconds: 604_801 })).to.have.members([
        'source: one of user, inframind',
        'reason: Invalid input: expected string, received undefined',
        'ttlSeconds: at most 604800 seconds (7 days)',
      ]);
      expect(issues({ reason: 'r', actions: [scale], ttlSeconds: 0 })).to.deep.equal(['ttlSeconds: at least 1 second']);
      expect(issues({ reason: 'r', actions: [scale], expiresAt: 'tomorrow' })).to.deep.equal([
        'expiresAt: an ISO 8601 date-time such as 2026-01-31T12:00:00Z',
      ]);
    });
    it('cancel takes an optional reason and nothing else', () => {
      expect(cancelBody.parse({})).to.deep.equal({});
      expect(cancelBody.parse({ reason: 'not now' })).to.deep.equal({ reason: 'not now' });
      expect(cancelBody.safeParse({ reason: '' }).success).to.equal(false);
      expect(cancelBody.safeParse({ why: 'x' }).success).to.equal(false);
    });
  });

  describe('actionTarget', () => {
    it('names the deployment an action changes, or the cluster a drain changes', () => {
      expect(actions.map(actionTarget)).to.deep.equal([
        { kind: 'deployment', id: deploymentA },
        { kind: 'deployment', id: deploymentB },
        { kind: 'cluster', id: clusterId },
      ]);
      expect(actionTarget({ kind: 'reschedule', deploymentId: deploymentA, clusterId })).to.deep.equal({ kind: 'deployment', id: deploymentA });
    });
  });

  describe('undo', () => {
    // Three actions: scale A 2 → 4, update B from revision 1 to 2, update C (whose rollout the cluster rolls back).
    const deploymentC = '0b4c1d1e-3333-4a4a-8a8a-000000000003';
    const three: PlanAction[] = [
      { kind: 'scale', deploymentId: deploymentA, replicas: 4 },
      { kind: 'update', deploymentId: deploymentB, workloadRevision: 2 },
      { kind: 'update', deploymentId: deploymentC, workloadRevision: 2 },
    ];
    const submittedThree = (onFailure?: 'stop' | 'undo'): ActionPlanEvent => ({
      type: 'ActionPlanSubmitted',
      data: { ...submitted.data, actions: three, ...(onFailure ? { onFailure } : {}) },
    });
    const startedWith = (index: number, replicas: number, revision: number): ActionPlanEvent => ({
      type: 'PlanActionStarted',
      data: { planId, index, before: { clusterId, replicas, revision } },
    });
    const succeededWith = (index: number, replicas: number, revision: number): ActionPlanEvent => ({
      type: 'PlanActionSucceeded',
      data: { planId, index, detail: `available at revision ${revision}`, after: { replicas, revision } },
    });
    const carriedOut = (onFailure?: 'stop' | 'undo') => [
      submittedThree(onFailure),
      validationStarted,
      approved,
      executionStarted,
      startedWith(0, 2, 1),
      succeededWith(0, 4, 1),
      startedWith(1, 1, 1),
      succeededWith(1, 1, 2),
      startedWith(2, 1, 3),
    ];
    const rolledBackCause = { type: 'ActionPlanRollbackStarted', data: { planId, cause: 'action 2: deployment rolled back' } } as const;
    const undoB: UndoStep = { kind: 'rollback', deploymentId: deploymentB, toRevision: 1, from: 2 };
    const undoA: UndoStep = { kind: 'scale', deploymentId: deploymentA, replicas: 2, from: 4 };
    const rollingBackThree = [...carriedOut(), rolledBackCause, actionFailed(2, 'rolled back')];

    it('given a plan whose third rollout was rolled back, when its actions are undone, then last first: B back to its revision, then A to its replicas', () => {
      plan(...rollingBackThree).when({ type: 'StartActionUndo', planId, index: 1 }).then([undoStarted(1, undoB)]);
      const bUndone = [...rollingBackThree, undoStarted(1, undoB), undone(1, 'rolled back to revision 1')];
      plan(...bUndone).when({ type: 'StartActionUndo', planId, index: 0 }).then([undoStarted(0, undoA)]);
      const allUndone = [...bUndone, undoStarted(0, undoA), undone(0, 'scaled back to 2')];
      plan(...allUndone).when({ type: 'CompletePlanRollback', planId }).then([planRolledBack]);
      expect(actionStatuses([...allUndone, planRolledBack])).to.deep.equal(['Undone', 'Undone', 'Failed']);
      const { state } = plan(...allUndone);
      expect(state.status !== 'absent' && state.actions[1]).to.deep.include({
        undo: undoB,
        undoDetail: 'rolled back to revision 1',
        before: { clusterId, replicas: 1, revision: 1 },
        after: { replicas: 1, revision: 2 },
      });
    });
    it('given a plan rolling back, when an earlier action is undone before a later one, then InvalidTransition: last first', () => {
      plan(...rollingBackThree)
        .when({ type: 'StartActionUndo', planId, index: 0 })
        .thenThrows(InvalidTransition, /action 1 was carried out after it: undo that first/);
    });
    it('given an undo under way, when another undo starts, then InvalidTransition: one at a time', () => {
      // Action 1 was left (not undone) by the time; action 0 waits for nothing else, but an undo under way blocks it.
      const past = [...rollingBackThree, undoStarted(1, undoB)];
      plan(...past).when({ type: 'StartActionUndo', planId, index: 0 }).thenThrows(InvalidTransition, /the undo of action 1 is under way/);
    });
    it('given an undo that policy refused, when the rollback completes, then the plan names the action it left as it was', () => {
      const reason = 'its undo (rolled back from revision 2 to revision 1) was refused: change freeze';
      const past = [...rollingBackThree, undoStarted(1, undoB)];
      plan(...past).when({ type: 'RecordActionNotUndone', planId, index: 1, reason }).then([notUndone(1, reason)]);
      const left = [...past, notUndone(1, reason), undoStarted(0, undoA), undone(0, 'scaled back to 2')];
      plan(...left).when({ type: 'CompletePlanRollback', planId }).then([
        { type: 'ActionPlanRolledBack', data: { planId, notUndone: [{ index: 1, kind: 'update', reason }] } },
      ]);
      expect(actionStatuses(left)).to.deep.equal(['Undone', 'NotUndone', 'Failed']);
    });
    it('given a succeeded action not undoing, when it is recorded undone or not undone, then InvalidTransition: its undo never started', () => {
      plan(...rollingBackThree).when({ type: 'RecordActionUndone', planId, index: 1, detail: 'x' }).thenThrows(InvalidTransition, /action 1 is Succeeded/);
      plan(...rollingBackThree).when({ type: 'RecordActionNotUndone', planId, index: 1, reason: 'x' }).thenThrows(InvalidTransition, /action 1 is Succeeded/);
    });
    it('given an executing plan, when an undo starts, then InvalidTransition: only a plan rolling back undoes', () => {
      plan(...carriedOut()).when({ type: 'StartActionUndo', planId, index: 1 }).thenThrows(InvalidTransition, /is Executing: cannot start an undo/);
    });

    describe('onFailure', () => {
      it('given a plan that stops on failure (the default), when its third action fails, then the plan is Failed and nothing is undone', () => {
        plan(...carriedOut())
          .when({ type: 'RecordActionFailed', planId, index: 2, error: 'quota' })
          .then([actionFailed(2, 'quota'), { type: 'ActionPlanFailed', data: { planId, cause: 'action 2 (update) failed: quota' } }]);
      });
      it('given a plan marked to undo, when its third action fails, then the plan rolls back instead', () => {
        plan(...carriedOut('undo'))
          .when({ type: 'RecordActionFailed', planId, index: 2, error: 'quota' })
          .then([actionFailed(2, 'quota'), { type: 'ActionPlanRollbackStarted', data: { planId, cause: 'action 2 (update) failed: quota' } }]);
        expect(plan(submittedThree('undo')).state).to.deep.include({ onFailure: 'undo' });
        expect(plan(submittedThree()).state).to.deep.include({ onFailure: 'stop' });
      });
      it('given a submission with onFailure, then the event records it; without, the event leaves it out', () => {
        plan().when({ ...submit, onFailure: 'undo' }).then([{ ...submitted, data: { ...submitted.data, onFailure: 'undo' } }]);
        plan().when(submit).then([submitted]);
      });
    });

    describe('what undoes each kind of action', () => {
      const recorded = (action: PlanAction, before?: object, after?: object): ActionPlanEvent[] => [
        { type: 'ActionPlanSubmitted', data: { ...submitted.data, actions: [action, { kind: 'restart', deploymentId: deploymentB }] } },
        validationStarted,
        approved,
        executionStarted,
        { type: 'PlanActionStarted', data: { planId, index: 0, ...(before ? { before: { clusterId, ...before } } : {}) } } as ActionPlanEvent,
        { type: 'PlanActionSucceeded', data: { planId, index: 0, ...(after ? { after } : {}) } } as ActionPlanEvent,
        actionFailed(1, 'x'),
        planFailed,
        rollbackStarted,
      ];
      const undoing = (past: ActionPlanEvent[]) => plan(...past).when({ type: 'StartActionUndo', planId, index: 0 }).events();

      it('a scale goes back to the replicas before it; one that changed nothing is undone at once', () => {
        expect(undoing(recorded({ kind: 'scale', deploymentId: deploymentA, replicas: 5 }, { replicas: 2, revision: 1 }))).to.deep.equal([
          undoStarted(0, { kind: 'scale', deploymentId: deploymentA, replicas: 2, from: 5 }),
        ]);
        expect(undoing(recorded({ kind: 'scale', deploymentId: deploymentA, replicas: 2 }, { replicas: 2, revision: 1 }))).to.deep.equal([
          undone(0, `nothing to undo: deployment ${deploymentA} already had 2 replicas`),
        ]);
      });
      it('an update or a rollback goes back to the revision before it, by a rollback', () => {
        for (const action of [
          { kind: 'update', deploymentId: deploymentA },
          { kind: 'rollback', deploymentId: deploymentA, toRevision: 1 },
        ] as const) {
          expect(undoing(recorded(action, { replicas: 2, revision: 3 }, { replicas: 2, revision: 4 }))).to.deep.equal([
            undoStarted(0, { kind: 'rollback', deploymentId: deploymentA, toRevision: 3, from: 4 }),
          ]);
        }
      });
      it('a reschedule within its cluster goes back to the node selector before it', () => {
        const action = { kind: 'reschedule', deploymentId: deploymentA, nodeSelector: { pool: 'b' } } as const;
        expect(undoing(recorded(action, { replicas: 2, revision: 1, nodeSelector: { pool: 'a' } }))).to.deep.equal([
          undoStarted(0, { kind: 'reschedule', deploymentId: deploymentA, nodeSelector: { pool: 'a' }, from: { pool: 'b' } }),
        ]);
        expect(undoing(recorded(action, { replicas: 2, revision: 1 }))).to.deep.equal([
          undoStarted(0, { kind: 'reschedule', deploymentId: deploymentA, nodeSelector: {}, from: { pool: 'b' } }),
        ]);
      });
      for (const [action, reason] of [
        [{ kind: 'restart', deploymentId: deploymentA }, /a restart cannot be undone/],
        [{ kind: 'drain', clusterId, node: 'gpu-node-1' }, /a drain is not undone: .* node gpu-node-1 stays cordoned/],
        [{ kind: 'reschedule', deploymentId: deploymentA, clusterId: otherCluster }, /the deployment the move of .* created on cluster .* was not recorded/],
      ] as const) {
        it(`a ${action.kind} is named as not undone: ${reason.source}`, () => {
          const [event] = undoing(recorded(action, action.kind === 'drain' ? undefined : { replicas: 2, revision: 1 }));
          expect(event?.type).to.equal('PlanActionNotUndone');
          expect(event?.type === 'PlanActionNotUndone' && event.data.reason).to.match(reason);
        });
      }
      it('a move to another cluster goes back by the reverse move of the deployment it created, as the move left it', () => {
        const moved = '0b4c1d1e-3333-4a4a-8a8a-000000000009';
        const action = { kind: 'reschedule', deploymentId: deploymentA, clusterId: otherCluster } as const;
        const after = { replicas: 2, revision: 2, deploymentId: moved, clusterId: otherCluster };
        expect(undoing(recorded(action, { replicas: 2, revision: 3 }, after))).to.deep.equal([
          undoStarted(0, { kind: 'move', deploymentId: moved, from: otherCluster, toClusterId: clusterId, replicas: 2, revision: 2 }),
        ]);
        // With a node selector too: the reverse move puts back the one the deployment had on its own cluster.
        expect(undoing(recorded({ ...action, nodeSelector: { pool: 'b' } }, { replicas: 2, revision: 3, nodeSelector: { pool: 'a' } }, after))).to.deep.equal([
          undoStarted(0, { kind: 'move', deploymentId: moved, from: otherCluster, toClusterId: clusterId, replicas: 2, revision: 2, nodeSelector: { pool: 'a' } }),
        ]);
        // Naming the cluster it is on already is a reschedule within it, undone as one.
        expect(undoing(recorded({ ...action, clusterId }, { replicas: 2, revision: 1 }))).to.deep.equal([
          undone(0, `nothing to undo: deployment ${deploymentA} stayed where it was`),
        ]);
      });
      it('the deployments a move creates have ids derived from the plan and the action: the same on every look, one per direction', () => {
        expect(movedDeploymentId(planId, 0)).to.equal(movedDeploymentId(planId, 0, 'there'));
        const ids = [movedDeploymentId(planId, 0), movedDeploymentId(planId, 0, 'back'), movedDeploymentId(planId, 1), movedDeploymentId(deploymentA, 0)];
        expect(new Set(ids).size).to.equal(4);
        for (const id of ids) expect(id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      });
      it('an action recorded without what it found (before undo existed) is named as not undone', () => {
        const [event] = undoing(recorded({ kind: 'scale', deploymentId: deploymentA, replicas: 5 }));
        expect(event).to.deep.equal(notUndone(0, `what deployment ${deploymentA} ran before the action was not recorded`));
        const [update] = undoing(recorded({ kind: 'update', deploymentId: deploymentA }, { replicas: 1, revision: 1 }));
        expect(update?.type === 'PlanActionNotUndone' && update.data.reason).to.match(/revision the action made .* was not recorded/);
      });
    });
  });

  describe('events', () => {
    const samples: ActionPlanEvent[] = [
      { ...submitted, data: { ...submitted.data, onFailure: 'undo' } },
      validationStarted,
      approved,
      rejected,
      executionStarted,
      expired,
      startedScale,
      { type: 'PlanActionSucceeded', data: { planId, index: 0, detail: 'moved', after: { replicas: 3, revision: 1, deploymentId: deploymentB, clusterId: otherCluster } } },
      actionFailed(1, 'image pull backoff'),
      completed,
      planFailed,
      rollbackStarted,
      undoStarted(0, { kind: 'move', deploymentId: deploymentB, from: otherCluster, toClusterId: clusterId, replicas: 3, revision: 1, nodeSelector: { pool: 'a' } }),
      undone(0, 'scaled back'),
      notUndone(0, 'change freeze'),
      actionRolledBack(0),
      { type: 'ActionPlanRolledBack', data: { planId, notUndone: [{ index: 1, kind: 'restart', reason: 'a restart cannot be undone' }] } },
      cancelled,
    ];
    it('has a sample of every event type', () => {
      expect(samples.map((event) => event.type)).to.have.members([...actionPlanEvents.types]);
    });
    for (const event of samples) {
      it(`parses ${event.type} at its current version`, () => {
        const version = actionPlanEvents.version(event.type);
        expect(actionPlanEvents.parse(event.type, version, JSON.parse(JSON.stringify(event.data)))).to.deep.equal(event);
      });
    }
    it('reads the version 1 events of the types that gained a field: as they were, and a v1 rollback names nothing left', () => {
      expect(actionPlanEvents.parse('ActionPlanSubmitted', 1, submitted.data)).to.deep.equal(submitted);
      expect(plan(actionPlanEvents.parse('ActionPlanSubmitted', 1, submitted.data)).state).to.deep.include({ onFailure: 'stop' });
      expect(actionPlanEvents.parse('PlanActionStarted', 1, { planId, index: 0 })).to.deep.equal(started(0));
      expect(actionPlanEvents.parse('PlanActionSucceeded', 1, { planId, index: 0, detail: 'd' })).to.deep.equal(succeeded(0, 'd'));
      // v2 of a success and of an undo: as they were (no move named, and no move to undo, before moves were carried out).
      const afterV2 = { planId, index: 0, detail: 'd', after: { replicas: 3, revision: 2 } };
      expect(actionPlanEvents.parse('PlanActionSucceeded', 2, afterV2)).to.deep.equal({ type: 'PlanActionSucceeded', data: afterV2 });
      expect(actionPlanEvents.parse('PlanActionUndoStarted', 1, { planId, index: 0, undo: scaleBackA })).to.deep.equal(undoStarted(0, scaleBackA));
      expect(actionPlanEvents.parse('ActionPlanRolledBack', 1, { planId })).to.deep.equal(planRolledBack);
    });
    it('reads a PlanActionRolledBack recorded by hand as the action undone', () => {
      expect(actionStatuses([...rollingBack, actionRolledBack(0)])).to.deep.equal(['Undone', 'Failed', 'Skipped']);
    });
    it('refuses an unknown schema version, an unknown type and data that does not match', () => {
      expect(() => actionPlanEvents.parse('ActionPlanSubmitted', 3, submitted.data)).to.throw(UnknownEvent);
      expect(() => actionPlanEvents.parse('ActionPlanExploded', 1, {})).to.throw(UnknownEvent);
      expect(() => actionPlanEvents.parse('PlanActionStarted', 1, { planId, index: -1 })).to.throw(UnknownEvent);
      expect(() => actionPlanEvents.parse('PlanActionUndoStarted', 1, { planId, index: 0, undo: { kind: 'restart' } })).to.throw(UnknownEvent);
    });
  });
});
