import { expect } from 'chai';
import {
  actionPlanBody,
  actionPlanDecider,
  actionPlanEvents,
  actionTarget,
  cancelBody,
  type ActionPlanCommand,
  type ActionPlanEvent,
  type PlanAction,
  type PlanStatus,
} from '../../domain/action-plan.js';
import { InvalidTransition, NotFound, RuleViolation, UnknownEvent } from '../../domain/decider.js';
import { given } from '../support/decider.js';

const planId = '0b4c1d1e-2222-4a4a-8a8a-000000000001';
const deploymentA = '0b4c1d1e-3333-4a4a-8a8a-000000000001';
const deploymentB = '0b4c1d1e-3333-4a4a-8a8a-000000000002';
const clusterId = '0b4c1d1e-1111-4a4a-8a8a-000000000001';
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
const succeeded = (index: number, detail?: string) => ({ type: 'PlanActionSucceeded', data: { planId, index, detail } }) as const;
const actionFailed = (index: number, error: string) => ({ type: 'PlanActionFailed', data: { planId, index, error } }) as const;
const completed = { type: 'ActionPlanCompleted', data: { planId } } as const;
const planFailed = { type: 'ActionPlanFailed', data: { planId, cause: 'action 1 (restart) failed: image pull backoff' } } as const;
const rollbackStarted = { type: 'ActionPlanRollbackStarted', data: { planId, cause: 'action 1 failed' } } as const;
const actionRolledBack = (index: number) => ({ type: 'PlanActionRolledBack', data: { planId, index } }) as const;
const planRolledBack = { type: 'ActionPlanRolledBack', data: { planId } } as const;
const expired = { type: 'ActionPlanExpired', data: { planId, at: afterTtl } } as const;
const cancelled = { type: 'ActionPlanCancelled', data: { planId, actor: alice, reason: 'not now' } } as const;

/** A history that leaves the plan in each status. */
const pending: ActionPlanEvent[] = [submitted];
const validating = [...pending, validationStarted];
const approvedPlan = [...validating, approved];
const executing = [...approvedPlan, executionStarted, started(0)];
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
  RolledBack: [...rollingBack, actionRolledBack(0), planRolledBack],
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
      { type: 'RecordActionRolledBack', planId, index: 0 },
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
    it('walks Failed → RollingBack → RolledBack', () => {
      plan(...failed).when({ type: 'StartPlanRollback', planId, cause: 'action 1 failed' }).then([rollbackStarted]);
      expect(statusOf(rollingBack)).to.equal('RollingBack');
      plan(...rollingBack).when({ type: 'RecordActionRolledBack', planId, index: 0 }).then([actionRolledBack(0)]);
      plan(...rollingBack, actionRolledBack(0)).when({ type: 'CompletePlanRollback', planId }).then([planRolledBack]);
      const done = [...rollingBack, actionRolledBack(0), planRolledBack];
      expect(statusOf(done)).to.equal('RolledBack');
      expect(actionStatuses(done)).to.deep.equal(['RolledBack', 'Failed', 'Skipped']);
      expect(plan(...done).state).to.deep.include({ cause: 'action 1 failed' });
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
      it(`given a plan rolling back, when action ${index} (${status}) is rolled back, then InvalidTransition: only succeeded actions roll back`, () => {
        plan(...rollingBack)
          .when({ type: 'RecordActionRolledBack', planId, index })
          .thenThrows(InvalidTransition, new RegExp(`action ${index} is ${status}`));
      });
    }
    it('given a plan rolling back, when an action outside the plan is rolled back, then RuleViolation on index', () => {
      plan(...rollingBack).when({ type: 'RecordActionRolledBack', planId, index: 3 }).thenThrows(RuleViolation, /no action 3/);
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
    it('given a rolled-back action, when it is rolled back again, then nothing', () => {
      plan(...rollingBack, actionRolledBack(0)).when({ type: 'RecordActionRolledBack', planId, index: 0 }).then([]);
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
      { type: 'RecordActionRolledBack', planId, index: 0 },
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
      RollingBack: { accepts: ['RecordActionRolledBack', 'CompletePlanRollback'], repeats: ['StartPlanRollback'] },
      RolledBack: { accepts: [], repeats: ['RecordActionRolledBack'] },
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

    it('fills source and shadow', () => {
      expect(actionPlanBody.parse({ reason: 'r', actions: [scale] })).to.deep.equal({ source: 'user', reason: 'r', actions: [scale], shadow: false });
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

  describe('events', () => {
    const samples: ActionPlanEvent[] = [
      submitted,
      validationStarted,
      approved,
      rejected,
      executionStarted,
      expired,
      started(0),
      { type: 'PlanActionSucceeded', data: { planId, index: 0, detail: 'scaled to 3' } },
      actionFailed(1, 'image pull backoff'),
      completed,
      planFailed,
      rollbackStarted,
      actionRolledBack(0),
      planRolledBack,
      cancelled,
    ];
    it('has a sample of every event type', () => {
      expect(samples.map((event) => event.type)).to.have.members([...actionPlanEvents.types]);
    });
    for (const event of samples) {
      it(`parses ${event.type} at version 1`, () => {
        expect(actionPlanEvents.version(event.type)).to.equal(1);
        expect(actionPlanEvents.parse(event.type, 1, JSON.parse(JSON.stringify(event.data)))).to.deep.equal(event);
      });
    }
    it('refuses an unknown schema version, an unknown type and data that does not match', () => {
      expect(() => actionPlanEvents.parse('ActionPlanSubmitted', 2, submitted.data)).to.throw(UnknownEvent);
      expect(() => actionPlanEvents.parse('ActionPlanExploded', 1, {})).to.throw(UnknownEvent);
      expect(() => actionPlanEvents.parse('PlanActionStarted', 1, { planId, index: -1 })).to.throw(UnknownEvent);
    });
  });
});
