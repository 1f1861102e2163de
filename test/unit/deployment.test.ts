import { expect } from 'chai';
import { fold, InvalidTransition, NotFound, RuleViolation, UnknownEvent, type FieldError } from '../../domain/decider.js';
import {
  deleteBody,
  deploymentBody,
  deploymentDecider,
  deploymentEvents,
  deploymentPatchBody,
  automaticRollbackTarget,
  lastAvailableRevision,
  pauseBody,
  restartBody,
  resumeBody,
  revisionAt,
  rollbackBody,
  scaleBody,
  type ClusterFacts,
  type Deployment,
  type DeploymentCommand,
  type DriftDifference,
  type DeploymentEvent,
  type Strategy,
  type WorkloadFacts,
} from '../../domain/deployment.js';
import { given } from '../support/decider.js';

const deploymentId = 'd0d0d0d0-2222-4b4b-8b8b-000000000001';
const workloadId = '0a0a0a0a-3333-4c4c-8c8c-000000000002';
const clusterId = '0b4c1d1e-1111-4a4a-8a8a-000000000001';
const sku = 'nvidia-a100-80gb';

const rolling: Strategy = { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' };
const canary: Strategy = { type: 'canary', steps: [{ weight: 10, pauseSeconds: 60 }, { weight: 50 }, { weight: 100 }] };
/** The workload's spec at each of its revisions. */
const specs: Record<number, Record<string, unknown>> = {
  1: { image: 'registry.local/llm:1.0' },
  2: { image: 'registry.local/llm:1.1' },
  3: { image: 'registry.local/llm:2.0' },
};
const specAt = (n: number): Record<string, unknown> => specs[n]!;

const workload: WorkloadFacts = { id: workloadId, status: 'active', specRevision: 1, spec: specAt(1), gpu: { count: 1, sku } };
const cluster: ClusterFacts = { id: clusterId, status: 'active', gpuSkus: [sku] };

type Command<T extends DeploymentCommand['type']> = Extract<DeploymentCommand, { type: T }>;

const create = (overrides: Partial<Command<'CreateDeployment'>> = {}): Command<'CreateDeployment'> => ({
  type: 'CreateDeployment',
  deploymentId,
  workload,
  cluster,
  replicas: 2,
  strategy: rolling,
  driftPolicy: 'revert',
  ...overrides,
});
/** A patch with the workload at `latest` spec revisions; the handler passes the target revision's spec. */
const update = (latest: number, patch: Partial<Command<'UpdateDeployment'>> = {}): Command<'UpdateDeployment'> => ({
  type: 'UpdateDeployment',
  deploymentId,
  workload: { status: 'active', specRevision: latest, spec: specAt(patch.workloadRevision ?? latest) },
  ...patch,
});

// ---- events -------------------------------------------------------------------------------------------

const created: DeploymentEvent = {
  type: 'DeploymentCreated',
  data: { deploymentId, workloadId, clusterId, replicas: 2, strategy: rolling, driftPolicy: 'revert', revision: 1, workloadRevision: 1, spec: specAt(1) },
};
const updated = (revision: number, workloadRevision: number, strategy: Strategy = rolling): DeploymentEvent => ({
  type: 'DeploymentUpdated',
  data: { deploymentId, revision, workloadRevision, spec: specAt(workloadRevision), strategy },
});
const applying = (revision: number): DeploymentEvent => ({ type: 'DeploymentApplying', data: { deploymentId, revision } });
const applied = (revision: number): DeploymentEvent => ({ type: 'DeploymentApplied', data: { deploymentId, revision } });
const progressed = (revision: number, readyReplicas = 1, updatedReplicas = 1): DeploymentEvent => ({
  type: 'DeploymentRolloutProgressed',
  data: { deploymentId, revision, readyReplicas, updatedReplicas },
});
const available = (revision: number, readyReplicas = 2): DeploymentEvent => ({ type: 'DeploymentAvailable', data: { deploymentId, revision, readyReplicas } });
const degraded = (revision: number, cause = '1 of 2 replicas not ready'): DeploymentEvent => ({ type: 'DeploymentDegraded', data: { deploymentId, revision, cause } });
const failed = (revision: number, cause = 'ProgressDeadlineExceeded'): DeploymentEvent => ({ type: 'DeploymentRolloutFailed', data: { deploymentId, revision, cause } });
const paused: DeploymentEvent = { type: 'DeploymentPaused', data: { deploymentId, reason: 'investigating' } };
const deleted: DeploymentEvent = { type: 'DeploymentDeleted', data: { deploymentId, reason: undefined } };

/** Revision 1 rolled out and became available. */
const live = [created, applying(1), applied(1), available(1)];
/** Revision 2 (workload revision 2) became available too; revision 3 (workload revision 3) is rolling out. */
const rollingOut = [...live, updated(2, 2), applying(2), applied(2), available(2), updated(3, 3), applying(3)];

// ---- helpers ------------------------------------------------------------------------------------------

/** The field errors of the RuleViolation the decision throws. */
function violation(decision: () => unknown): FieldError[] {
  try {
    decision();
  } catch (error) {
    if (error instanceof RuleViolation) return error.errors;
    throw error;
  }
  return expect.fail('expected a RuleViolation');
}

function placed(state: Deployment) {
  if (state.status === 'absent') return expect.fail('expected a deployment');
  return state;
}

/** Runs commands one after another, as the handler would, and lists the status after each. */
function walk(past: DeploymentEvent[], commands: DeploymentCommand[]): string[] {
  let state = fold(deploymentDecider, past);
  const statuses: string[] = [state.status];
  for (const command of commands) {
    for (const event of deploymentDecider.decide(command, state)) state = deploymentDecider.evolve(state, event);
    statuses.push(state.status);
  }
  return statuses;
}

const record = {
  applying: (revision: number): DeploymentCommand => ({ type: 'RecordApplying', deploymentId, revision }),
  applied: (revision: number): DeploymentCommand => ({ type: 'RecordApplied', deploymentId, revision }),
  progress: (revision: number, readyReplicas = 1, updatedReplicas = 1): DeploymentCommand => ({
    type: 'RecordRolloutProgress',
    deploymentId,
    revision,
    readyReplicas,
    updatedReplicas,
  }),
  available: (revision: number, readyReplicas = 2): DeploymentCommand => ({ type: 'RecordAvailable', deploymentId, revision, readyReplicas }),
  degraded: (revision: number, cause = '1 of 2 replicas not ready'): DeploymentCommand => ({ type: 'RecordDegraded', deploymentId, revision, cause }),
  failed: (revision: number, cause = 'ProgressDeadlineExceeded'): DeploymentCommand => ({ type: 'RecordRolloutFailed', deploymentId, revision, cause }),
  rolledBack: (revision: number, toRevision: number, cause = 'ProgressDeadlineExceeded'): DeploymentCommand => ({
    type: 'RecordRolledBack',
    deploymentId,
    revision,
    toRevision,
    cause,
  }),
};

/** One of every command other than create. */
const everyOtherCommand: DeploymentCommand[] = [
  { type: 'ScaleDeployment', deploymentId, replicas: 3, cluster: { status: 'active' } },
  update(2),
  { type: 'RollbackDeployment', deploymentId, toRevision: 1 },
  { type: 'RestartDeployment', deploymentId, at: '2026-01-31T12:00:00Z' },
  { type: 'PauseDeployment', deploymentId },
  { type: 'ResumeDeployment', deploymentId },
  { type: 'DeleteDeployment', deploymentId },
  record.applying(1),
  record.applied(1),
  record.progress(1),
  record.available(1),
  record.degraded(1),
  record.failed(1),
  record.rolledBack(1, 1),
];

describe('Deployment decider', () => {
  describe('create', () => {
    it('given nothing, when created, then DeploymentCreated with revision 1 of the workload spec', () => {
      given(deploymentDecider).when(create()).then([created]);
    });
    it('given DeploymentCreated, then a Pending deployment with one revision and none available', () => {
      expect(given(deploymentDecider, [created]).state).to.deep.equal({
        status: 'Pending',
        id: deploymentId,
        workloadId,
        clusterId,
        replicas: 2,
        strategy: rolling,
        driftPolicy: 'revert',
        paused: false,
        currentRevision: 1,
        revisions: { 1: { revision: 1, workloadRevision: 1, spec: specAt(1), strategy: rolling } },
        availableRevisions: [],
      });
    });
    it('given an existing deployment, when created again, then InvalidTransition', () => {
      given(deploymentDecider, [created]).when(create()).thenThrows(InvalidTransition, /already exists/);
    });
    it('given a deleted deployment, when created again, then InvalidTransition', () => {
      given(deploymentDecider, [created, deleted]).when(create()).thenThrows(InvalidTransition, /Deleted/);
    });
    it('given nothing, when the workload does not exist, then RuleViolation on workloadId', () => {
      const errors = violation(given(deploymentDecider).when(create({ workload: undefined })).events);
      expect(errors).to.deep.equal([{ path: 'workloadId', message: 'no such workload' }]);
    });
    it('given nothing, when the workload is retired, then RuleViolation on workloadId', () => {
      const errors = violation(given(deploymentDecider).when(create({ workload: { ...workload, status: 'retired' } })).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['workloadId']);
      expect(errors[0]!.message).to.match(/retired/);
    });
    it('given nothing, when the cluster does not exist, then RuleViolation on clusterId', () => {
      const errors = violation(given(deploymentDecider).when(create({ cluster: undefined })).events);
      expect(errors).to.deep.equal([{ path: 'clusterId', message: 'no such cluster' }]);
    });
    it('given nothing, when the cluster is deregistered, then RuleViolation on clusterId', () => {
      const errors = violation(given(deploymentDecider).when(create({ cluster: { ...cluster, status: 'deregistered' } })).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['clusterId']);
      expect(errors[0]!.message).to.match(/deregistered/);
    });
    it('given nothing, when the cluster is cordoned, then RuleViolation: no new placements', () => {
      given(deploymentDecider)
        .when(create({ cluster: { ...cluster, status: 'cordoned' } }))
        .thenThrows(RuleViolation, /cordoned: no new placements/);
      const errors = violation(given(deploymentDecider).when(create({ cluster: { ...cluster, status: 'cordoned' } })).events);
      expect(errors).to.deep.equal([{ path: 'clusterId', message: 'cordoned: no new placements' }]);
    });
    it('given nothing, when the workload asks for a GPU SKU the cluster lacks, then RuleViolation on clusterId naming both', () => {
      const errors = violation(given(deploymentDecider).when(create({ cluster: { ...cluster, gpuSkus: ['nvidia-l4'] } })).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['clusterId']);
      expect(errors[0]!.message).to.include(sku).and.to.include('nvidia-l4');
    });
    it('given nothing, when a CPU-only workload goes to a cluster without GPUs, then DeploymentCreated', () => {
      const cpuOnly: WorkloadFacts = { id: workloadId, status: 'active', specRevision: 1, spec: specAt(1) };
      given(deploymentDecider)
        .when(create({ workload: cpuOnly, cluster: { ...cluster, gpuSkus: [] } }))
        .then([created]);
    });
    it('given nothing, when both the workload and the cluster are wrong, then every field error at once', () => {
      const errors = violation(given(deploymentDecider).when(create({ workload: undefined, cluster: { ...cluster, status: 'cordoned' } })).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['workloadId', 'clusterId']);
    });
  });

  describe('scale', () => {
    const scale = (replicas: number, status: ClusterFacts['status'] = 'active'): DeploymentCommand => ({
      type: 'ScaleDeployment',
      deploymentId,
      replicas,
      cluster: { status },
    });

    it('given an available deployment, when scaled up, then DeploymentScaled and Pending', () => {
      const scaled: DeploymentEvent = { type: 'DeploymentScaled', data: { deploymentId, replicas: 5, previousReplicas: 2 } };
      given(deploymentDecider, live).when(scale(5)).then([scaled]);
      expect(given(deploymentDecider, [...live, scaled]).state).to.deep.include({ status: 'Pending', replicas: 5, currentRevision: 1 });
    });
    it('given a deployment, when scaled to the replicas it has, then nothing', () => {
      given(deploymentDecider, live).when(scale(2)).then([]);
    });
    it('given a cordoned cluster, when scaled up, then RuleViolation on replicas', () => {
      const errors = violation(given(deploymentDecider, live).when(scale(3, 'cordoned')).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['replicas']);
      expect(errors[0]!.message).to.match(/cordoned/);
    });
    it('given a deregistered cluster, when scaled up, then RuleViolation', () => {
      given(deploymentDecider, live).when(scale(3, 'deregistered')).thenThrows(RuleViolation, /deregistered/);
    });
    it('given a cordoned cluster, when scaled down, then DeploymentScaled', () => {
      given(deploymentDecider, live)
        .when(scale(0, 'cordoned'))
        .then([{ type: 'DeploymentScaled', data: { deploymentId, replicas: 0, previousReplicas: 2 } }]);
    });
  });

  describe('update', () => {
    it('given revision 1, when the workload has a revision 2 and the patch is empty, then DeploymentUpdated to revision 2', () => {
      given(deploymentDecider, live).when(update(2)).then([updated(2, 2)]);
      const state = placed(given(deploymentDecider, [...live, updated(2, 2)]).state);
      expect(state).to.deep.include({ status: 'Pending', currentRevision: 2 });
      expect(state.revisions[2]).to.deep.equal({ revision: 2, workloadRevision: 2, spec: specAt(2), strategy: rolling });
    });
    it('given revision 1, when a named older workload revision is asked for, then DeploymentUpdated to that one', () => {
      given(deploymentDecider, [...live, updated(2, 3)])
        .when(update(3, { workloadRevision: 2 }))
        .then([updated(3, 2)]);
    });
    it('given a deployment on the latest workload revision, when the patch is empty, then nothing', () => {
      given(deploymentDecider, live).when(update(1)).then([]);
    });
    it('given a deployment, when the same strategy and drift policy are sent, then nothing', () => {
      given(deploymentDecider, live).when(update(2, { workloadRevision: 1, strategy: rolling, driftPolicy: 'revert' })).then([]);
    });
    it('given a deployment, when only the strategy changes, then a new revision of the same workload revision', () => {
      given(deploymentDecider, live).when(update(1, { strategy: canary })).then([updated(2, 1, canary)]);
      expect(given(deploymentDecider, [...live, updated(2, 1, canary)]).state).to.deep.include({ strategy: canary, currentRevision: 2 });
    });
    it('given a deployment, when only the drift policy changes, then DeploymentDriftPolicyChanged and the status stays', () => {
      const changed: DeploymentEvent = { type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: 'adopt', previousDriftPolicy: 'revert' } };
      given(deploymentDecider, live).when(update(1, { driftPolicy: 'adopt' })).then([changed]);
      expect(given(deploymentDecider, [...live, changed]).state).to.deep.include({ status: 'Available', driftPolicy: 'adopt', currentRevision: 1 });
    });
    it('given a deployment, when the workload revision and the drift policy change, then both events', () => {
      given(deploymentDecider, live)
        .when(update(2, { driftPolicy: 'adopt' }))
        .then([updated(2, 2), { type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: 'adopt', previousDriftPolicy: 'revert' } }]);
    });
    it('given a retired workload, when updated, then RuleViolation on workloadId', () => {
      const command: DeploymentCommand = { ...update(2), workload: { status: 'retired', specRevision: 2, spec: specAt(2) } };
      const errors = violation(given(deploymentDecider, live).when(command).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['workloadId']);
    });
    it('given a workload with 2 revisions, when revision 3 is asked for, then RuleViolation on workloadRevision', () => {
      const command: DeploymentCommand = { ...update(2), workloadRevision: 3 };
      const errors = violation(given(deploymentDecider, live).when(command).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['workloadRevision']);
    });
  });

  describe('rollback', () => {
    const rollback = (toRevision?: number): DeploymentCommand => ({ type: 'RollbackDeployment', deploymentId, toRevision, reason: 'latency regression' });
    const rollbackRequested = (revision: number, toRevision: number, workloadRevision: number, strategy: Strategy = rolling): DeploymentEvent => ({
      type: 'DeploymentRollbackRequested',
      data: { deploymentId, revision, toRevision, workloadRevision, spec: specAt(workloadRevision), strategy, reason: 'latency regression' },
    });

    it('given revisions 1 and 2 available and 3 rolling out, when rolled back without a target, then a revision 4 copying 2', () => {
      given(deploymentDecider, rollingOut).when(rollback()).then([rollbackRequested(4, 2, 2)]);
    });
    it('given revisions 1 and 2 available and 2 current, when rolled back without a target, then a revision 3 copying 1', () => {
      given(deploymentDecider, [...live, updated(2, 2), applying(2), applied(2), available(2)])
        .when(rollback())
        .then([rollbackRequested(3, 1, 1)]);
    });
    it('given revision 3 current, when rolled back to revision 1, then a revision 4 copying 1', () => {
      given(deploymentDecider, rollingOut).when(rollback(1)).then([rollbackRequested(4, 1, 1)]);
    });
    it('given a rollback requested, then Pending on the new revision, which records what it rolls back to', () => {
      const state = placed(given(deploymentDecider, [...rollingOut, rollbackRequested(4, 1, 1)]).state);
      expect(state).to.deep.include({ status: 'Pending', currentRevision: 4 });
      expect(revisionAt(state, 4)).to.deep.equal({ revision: 4, workloadRevision: 1, spec: specAt(1), strategy: rolling, rollbackOf: 1 });
    });
    it('given several updates and a rollback, then every revision is kept and the rollback names its source', () => {
      const history = [
        ...live,
        updated(2, 1, canary),
        applying(2),
        applied(2),
        available(2),
        updated(3, 2, canary),
        applying(3),
        failed(3),
        updated(4, 3),
        degraded(4),
        rollbackRequested(5, 2, 1, canary),
      ];
      const state = placed(given(deploymentDecider, history).state);
      expect(Object.keys(state.revisions).map(Number)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(revisionAt(state, 1)).to.deep.equal({ revision: 1, workloadRevision: 1, spec: specAt(1), strategy: rolling });
      expect(revisionAt(state, 3)).to.deep.equal({ revision: 3, workloadRevision: 2, spec: specAt(2), strategy: canary });
      expect(revisionAt(state, 4)).to.deep.equal({ revision: 4, workloadRevision: 3, spec: specAt(3), strategy: rolling });
      expect(revisionAt(state, 5)).to.deep.equal({ revision: 5, workloadRevision: 1, spec: specAt(1), strategy: canary, rollbackOf: 2 });
      expect(state).to.deep.include({ currentRevision: 5, strategy: canary, availableRevisions: [1, 2], lastCause: '1 of 2 replicas not ready' });
    });
    it('given no revision ever became available, when rolled back without a target, then RuleViolation on toRevision', () => {
      const errors = violation(given(deploymentDecider, [created, updated(2, 2)]).when(rollback()).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['toRevision']);
    });
    it('given only the current revision became available, when rolled back without a target, then RuleViolation', () => {
      given(deploymentDecider, live).when(rollback()).thenThrows(RuleViolation, /no earlier revision/);
    });
    it('given three revisions, when rolled back to revision 9, then RuleViolation on toRevision', () => {
      const errors = violation(given(deploymentDecider, rollingOut).when(rollback(9)).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['toRevision']);
      expect(errors[0]!.message).to.match(/no such revision/);
    });
    it('given revision 3 current, when rolled back to revision 3, then RuleViolation on toRevision', () => {
      const errors = violation(given(deploymentDecider, rollingOut).when(rollback(3)).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['toRevision']);
      expect(errors[0]!.message).to.match(/current/);
    });
  });

  describe('restart, pause, resume, delete', () => {
    it('given an available deployment, when restarted, then DeploymentRestartRequested at the command time and Pending', () => {
      const restarted: DeploymentEvent = {
        type: 'DeploymentRestartRequested',
        data: { deploymentId, restartedAt: '2026-01-31T12:00:00Z', reason: 'stuck CUDA context' },
      };
      given(deploymentDecider, live)
        .when({ type: 'RestartDeployment', deploymentId, at: '2026-01-31T12:00:00Z', reason: 'stuck CUDA context' })
        .then([restarted]);
      expect(given(deploymentDecider, [...live, restarted]).state).to.deep.include({
        status: 'Pending',
        restartedAt: '2026-01-31T12:00:00Z',
        currentRevision: 1,
      });
    });
    it('given a running deployment, when paused, then DeploymentPaused and the status stays', () => {
      given(deploymentDecider, live).when({ type: 'PauseDeployment', deploymentId, reason: 'investigating' }).then([paused]);
      expect(given(deploymentDecider, [...live, paused]).state).to.deep.include({ status: 'Available', paused: true });
    });
    it('given a paused deployment, when paused again, then nothing', () => {
      given(deploymentDecider, [...live, paused]).when({ type: 'PauseDeployment', deploymentId }).then([]);
    });
    it('given a paused deployment, when resumed, then DeploymentResumed', () => {
      const resumed: DeploymentEvent = { type: 'DeploymentResumed', data: { deploymentId, reason: undefined } };
      given(deploymentDecider, [...live, paused]).when({ type: 'ResumeDeployment', deploymentId }).then([resumed]);
      expect(given(deploymentDecider, [...live, paused, resumed]).state).to.deep.include({ paused: false });
    });
    it('given a running deployment, when resumed, then nothing', () => {
      given(deploymentDecider, live).when({ type: 'ResumeDeployment', deploymentId }).then([]);
    });
    it('given a deployment, when deleted, then DeploymentDeleted and Deleted', () => {
      given(deploymentDecider, live).when({ type: 'DeleteDeployment', deploymentId }).then([deleted]);
      expect(given(deploymentDecider, [...live, deleted]).state).to.deep.include({ status: 'Deleted' });
    });
  });

  describe('absent and deleted deployments', () => {
    for (const command of everyOtherCommand) {
      it(`given nothing, when ${command.type}, then NotFound`, () => {
        given(deploymentDecider).when(command).thenThrows(NotFound, /deployment .* does not exist/);
      });
      it(`given a deleted deployment, when ${command.type}, then InvalidTransition`, () => {
        given(deploymentDecider, [...live, deleted]).when(command).thenThrows(InvalidTransition, /is Deleted: cannot/);
      });
    }
  });

  describe('rollout outcomes', () => {
    it('walks Pending → Applying → Progressing → Progressing → Available', () => {
      expect(walk([created], [record.applying(1), record.applied(1), record.progress(1, 1, 2), record.available(1)])).to.deep.equal([
        'Pending',
        'Applying',
        'Progressing',
        'Progressing',
        'Available',
      ]);
    });
    it('given Pending, when applying, then DeploymentApplying', () => {
      given(deploymentDecider, [created]).when(record.applying(1)).then([applying(1)]);
    });
    it('given Applying, when applied, then DeploymentApplied', () => {
      given(deploymentDecider, [created, applying(1)]).when(record.applied(1)).then([applied(1)]);
    });
    it('given Progressing, when progress is seen, then DeploymentRolloutProgressed', () => {
      given(deploymentDecider, [created, applying(1), applied(1)]).when(record.progress(1, 1, 2)).then([progressed(1, 1, 2)]);
    });
    it('given Available, when progress is seen again, then Progressing', () => {
      expect(given(deploymentDecider, [...live, progressed(1)]).state).to.deep.include({ status: 'Progressing' });
    });
    it('given Progressing, when available, then DeploymentAvailable and the revision counts as available', () => {
      given(deploymentDecider, [created, applying(1), applied(1)]).when(record.available(1)).then([available(1)]);
      expect(given(deploymentDecider, live).state).to.deep.include({ status: 'Available', availableRevisions: [1] });
    });
    it('given a revision that became available twice, then it is listed once', () => {
      expect(given(deploymentDecider, [...live, degraded(1), available(1)]).state).to.deep.include({ availableRevisions: [1] });
    });
    it('given Available, when degraded, then DeploymentDegraded with its cause', () => {
      given(deploymentDecider, live).when(record.degraded(1)).then([degraded(1)]);
      expect(given(deploymentDecider, [...live, degraded(1)]).state).to.deep.include({ status: 'Degraded', lastCause: '1 of 2 replicas not ready' });
    });
    it('given Degraded, when it recovers, then Available', () => {
      expect(walk([...live, degraded(1)], [record.available(1)])).to.deep.equal(['Degraded', 'Available']);
    });
    it('given Progressing, when the rollout fails, then DeploymentRolloutFailed and Failed with its cause', () => {
      given(deploymentDecider, [created, applying(1), applied(1)]).when(record.failed(1)).then([failed(1)]);
      expect(given(deploymentDecider, [created, applying(1), applied(1), failed(1)]).state).to.deep.include({
        status: 'Failed',
        lastCause: 'ProgressDeadlineExceeded',
      });
    });
    it('given revision 3 rolling out, when the cluster rolled it back to 2, then DeploymentRolledBack with a revision 4 copying 2', () => {
      const rolledBack: DeploymentEvent = {
        type: 'DeploymentRolledBack',
        data: { deploymentId, revision: 3, toRevision: 2, newRevision: 4, workloadRevision: 2, spec: specAt(2), strategy: rolling, cause: 'ProgressDeadlineExceeded' },
      };
      given(deploymentDecider, rollingOut).when(record.rolledBack(3, 2)).then([rolledBack]);
      const state = placed(given(deploymentDecider, [...rollingOut, rolledBack]).state);
      expect(state).to.deep.include({ status: 'RolledBack', currentRevision: 4, lastCause: 'ProgressDeadlineExceeded' });
      expect(revisionAt(state, 4)).to.deep.equal({ revision: 4, workloadRevision: 2, spec: specAt(2), strategy: rolling, rollbackOf: 2, automaticRollback: true });
      expect(walk([...rollingOut, rolledBack], [record.applied(4), record.available(4)])).to.deep.equal(['RolledBack', 'Progressing', 'Available']);
    });
    it('given revision 3 rolling out, when rolled back to a revision that does not exist, then RuleViolation on toRevision', () => {
      const errors = violation(given(deploymentDecider, rollingOut).when(record.rolledBack(3, 7)).events);
      expect(errors.map((e) => e.path)).to.deep.equal(['toRevision']);
    });
    it('given revision 3 rolling out, when rolled back to itself, then RuleViolation on toRevision', () => {
      given(deploymentDecider, rollingOut).when(record.rolledBack(3, 3)).thenThrows(RuleViolation, /current/);
    });
    describe('failures that are not rolled back', () => {
      const scaled = (replicas: number, previousReplicas: number): DeploymentEvent => ({ type: 'DeploymentScaled', data: { deploymentId, replicas, previousReplicas } });
      const unschedulable = 'FailedCreate: 4 of 20 pods cannot be scheduled: 0/4 nodes are available: 2 Insufficient nvidia.com/gpu.';
      /** Revisions 1 and 2 became available; revision 2 was then scaled to 20 replicas and is rolling out again. */
      const scalingUp = [...live, updated(2, 2), applying(2), applied(2), available(2), scaled(20, 2), applying(2), applied(2)];
      const rolledBack = (revision: number, toRevision: number, newRevision: number, cause = unschedulable): DeploymentEvent => ({
        type: 'DeploymentRolledBack',
        data: { deploymentId, revision, toRevision, newRevision, workloadRevision: toRevision, spec: specAt(toRevision), strategy: rolling, cause },
      });
      /** Revision 3 (workload revision 3) never became available; its automatic rollback, revision 4 copying 2, is rolling out. */
      const rollingBack = [...rollingOut, applied(3), failed(3, unschedulable), rolledBack(3, 2, 4), applying(4), applied(4)];

      it('given a scale of a revision that became available, when its rollout fails, then DeploymentDegraded with the cause and no rollback', () => {
        given(deploymentDecider, scalingUp).when(record.failed(2, unschedulable)).then([degraded(2, unschedulable)]);
        const state = given(deploymentDecider, [...scalingUp, degraded(2, unschedulable)]).state;
        expect(state).to.deep.include({ status: 'Degraded', currentRevision: 2, replicas: 20, lastCause: unschedulable });
        expect(automaticRollbackTarget(state)).to.equal(undefined);
        given(deploymentDecider, [...scalingUp, degraded(2, unschedulable)])
          .when(record.rolledBack(2, 1, unschedulable))
          .thenThrows(InvalidTransition, /became available before/);
      });
      it('given a scale recorded Degraded, when it fails again for the same cause, then nothing', () => {
        given(deploymentDecider, [...scalingUp, degraded(2, unschedulable)]).when(record.failed(2, unschedulable)).then([]);
      });
      it('given a scale recorded Degraded, when the cluster finds room, then Available again at the same revision', () => {
        expect(walk([...scalingUp, degraded(2, unschedulable)], [record.available(2, 20)])).to.deep.equal(['Degraded', 'Available']);
      });
      it('given a scale recorded Degraded, when scaled back down, then the rollout starts again and ends Available', () => {
        const scaleDown: DeploymentCommand = { type: 'ScaleDeployment', deploymentId, replicas: 2, cluster: { status: 'active' } };
        given(deploymentDecider, [...scalingUp, degraded(2, unschedulable)]).when(scaleDown).then([scaled(2, 20)]);
        const past = [...scalingUp, degraded(2, unschedulable), scaled(2, 20)];
        expect(walk(past, [record.applying(2), record.applied(2), record.available(2)])).to.deep.equal(['Pending', 'Applying', 'Progressing', 'Available']);
        expect(placed(given(deploymentDecider, past).state).currentRevision).to.equal(2);
      });
      it('given a new revision that never became available, when its rollout fails, then Failed and rolled back to the last available one', () => {
        const past = [...rollingOut, applied(3)];
        given(deploymentDecider, past).when(record.failed(3, unschedulable)).then([failed(3, unschedulable)]);
        const state = given(deploymentDecider, [...past, failed(3, unschedulable)]).state;
        expect(state).to.deep.include({ status: 'Failed' });
        expect(automaticRollbackTarget(state)?.revision).to.equal(2);
        given(deploymentDecider, [...past, failed(3, unschedulable)]).when(record.rolledBack(3, 2, unschedulable)).then([rolledBack(3, 2, 4)]);
      });
      it('given an automatic rollback rolling out, when it fails too, then Failed with the cause and no further rollback', () => {
        given(deploymentDecider, rollingBack).when(record.failed(4, unschedulable)).then([failed(4, unschedulable)]);
        const state = given(deploymentDecider, [...rollingBack, failed(4, unschedulable)]).state;
        expect(state).to.deep.include({ status: 'Failed', currentRevision: 4, lastCause: unschedulable });
        expect(automaticRollbackTarget(state)).to.equal(undefined);
        given(deploymentDecider, [...rollingBack, failed(4, unschedulable)])
          .when(record.rolledBack(4, 3, unschedulable))
          .thenThrows(InvalidTransition, /itself an automatic rollback/);
      });
      it('given a failed automatic rollback, when the same failure is seen again, then nothing: it stays Failed', () => {
        given(deploymentDecider, [...rollingBack, failed(4, unschedulable)]).when(record.failed(4, unschedulable)).then([]);
      });
      it('given a rollback someone asked for, when it fails, then it is still rolled back by itself', () => {
        const requested: DeploymentEvent = {
          type: 'DeploymentRollbackRequested',
          data: { deploymentId, revision: 4, toRevision: 1, workloadRevision: 1, spec: specAt(1), strategy: rolling, reason: undefined },
        };
        const state = given(deploymentDecider, [...rollingOut, applied(3), available(3), requested, applying(4), applied(4), failed(4)]).state;
        expect(automaticRollbackTarget(state)?.revision).to.equal(3);
      });
    });
    it('given a paused deployment, then outcomes are still recorded', () => {
      given(deploymentDecider, [created, paused]).when(record.applying(1)).then([applying(1)]);
    });

    describe('what is already so records nothing', () => {
      it('given Applying, when applying again, then nothing', () => {
        given(deploymentDecider, [created, applying(1)]).when(record.applying(1)).then([]);
      });
      it('given Progressing, when applied again, then nothing', () => {
        given(deploymentDecider, [created, applying(1), applied(1)]).when(record.applied(1)).then([]);
      });
      it('given Available, when available again, then nothing', () => {
        given(deploymentDecider, live).when(record.available(1)).then([]);
      });
      it('given Degraded, when degraded for the same cause, then nothing; for another cause, then DeploymentDegraded', () => {
        given(deploymentDecider, [...live, degraded(1)]).when(record.degraded(1)).then([]);
        given(deploymentDecider, [...live, degraded(1)]).when(record.degraded(1, 'OOMKilled')).then([degraded(1, 'OOMKilled')]);
      });
      it('given Failed, when failed for the same cause, then nothing', () => {
        given(deploymentDecider, [created, applying(1), failed(1)]).when(record.failed(1)).then([]);
      });
    });

    describe('stale facts', () => {
      for (const command of [
        record.applying(2),
        record.applied(2),
        record.progress(2),
        record.available(2),
        record.degraded(2),
        record.failed(2),
        record.rolledBack(2, 1),
      ]) {
        it(`given revision 3 current, when ${command.type} about revision 2, then nothing`, () => {
          given(deploymentDecider, rollingOut).when(command).then([]);
        });
      }
      it('given revision 3 current, when a fact names revision 9, then RuleViolation on revision', () => {
        const errors = violation(given(deploymentDecider, rollingOut).when(record.available(9)).events);
        expect(errors.map((e) => e.path)).to.deep.equal(['revision']);
      });
    });
  });

  describe('reschedule', () => {
    const selector = { 'kubernetes.io/hostname': 'gpu-7' };
    const reschedule = (nodeSelector = selector): DeploymentCommand => ({ type: 'RescheduleDeployment', deploymentId, nodeSelector, reason: 'hot node' });
    const rescheduled: DeploymentEvent = { type: 'DeploymentRescheduled', data: { deploymentId, nodeSelector: selector, previousNodeSelector: {}, reason: 'hot node' } };
    it('given an available deployment, when rescheduled onto other nodes, then DeploymentRescheduled and it is Pending with the new selector', () => {
      given(deploymentDecider, live).when(reschedule()).then([rescheduled]);
      const state = given(deploymentDecider, [...live, rescheduled]).state;
      expect(state.status !== 'absent' && [state.status, state.nodeSelector, state.currentRevision]).to.deep.equal(['Pending', selector, 1]);
    });
    it('given a deployment already on those nodes, when rescheduled there again, then nothing', () => {
      given(deploymentDecider, [...live, rescheduled]).when(reschedule()).then([]);
    });
  });

  describe('drift', () => {
    const replicasDrift = [{ field: 'replicas', expected: 2, actual: 5 }];
    const drift = (differences: DriftDifference[] = replicasDrift): DeploymentCommand => ({ type: 'RecordDrift', deploymentId, revision: 1, differences, observedVersion: '42' });
    it('given an available deployment that reverts drift, when the cluster differs, then DriftDetected with resolution revert and nothing adopted', () => {
      const outcome = given(deploymentDecider, live).when(drift());
      outcome.then([{ type: 'DriftDetected', data: { deploymentId, revision: 1, differences: replicasDrift, resolution: 'revert', observedVersion: '42' } }]);
    });
    it('given a deployment that adopts drift, when its replicas were changed by hand, then the live count becomes its own', () => {
      const adopting: DeploymentEvent = { type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: 'adopt', previousDriftPolicy: 'revert' } };
      const detected: DeploymentEvent = { type: 'DriftDetected', data: { deploymentId, revision: 1, differences: replicasDrift, resolution: 'adopt', observedVersion: '42' } };
      given(deploymentDecider, [...live, adopting]).when(drift()).then([detected]);
      const state = given(deploymentDecider, [...live, adopting, detected]).state;
      expect(state.status !== 'absent' && state.replicas).to.equal(5);
    });
    it('given an adopted drift of the image, then the deployment remembers what it adopted and on which revision, so a restarted reactor knows it', () => {
      const adopting: DeploymentEvent = { type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: 'adopt', previousDriftPolicy: 'revert' } };
      const image = [{ field: 'image', expected: 'registry.local/llama:1.0', actual: 'registry.local/llama:rogue' }];
      const detected: DeploymentEvent = { type: 'DriftDetected', data: { deploymentId, revision: 1, differences: image, resolution: 'adopt', observedVersion: '43' } };
      const state = given(deploymentDecider, [...live, adopting, detected]).state;
      expect(state.status !== 'absent' && state.adoptedDrift).to.deep.equal({ revision: 1, differences: image });
      const reverted: DeploymentEvent = { type: 'DriftDetected', data: { deploymentId, revision: 1, differences: image, resolution: 'revert', observedVersion: '44' } };
      expect(given(deploymentDecider, [...live, reverted]).state).to.not.have.property('adoptedDrift');
    });
    it('given an adopted image and count, when the image is adopted again on the same revision, then the count stays adopted and the image takes its new value', () => {
      const adopting: DeploymentEvent = { type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: 'adopt', previousDriftPolicy: 'revert' } };
      const first = [
        { field: 'replicas', expected: 2, actual: 3 },
        { field: 'image', expected: 'registry.local/llama:1.0', actual: 'registry.local/llama:rogue' },
      ];
      const second = [{ field: 'image', expected: 'registry.local/llama:rogue', actual: 'registry.local/llama:rogue-2' }];
      const detected = (differences: DriftDifference[], observedVersion: string): DeploymentEvent => ({
        type: 'DriftDetected',
        data: { deploymentId, revision: 1, differences, resolution: 'adopt', observedVersion },
      });
      const state = given(deploymentDecider, [...live, adopting, detected(first, '43'), detected(second, '44')]).state;
      expect(state.status !== 'absent' && state.adoptedDrift).to.deep.equal({ revision: 1, differences: [first[0], second[0]] });
    });
    it('given a deployment that adopts drift, when its object was deleted by hand, then DriftDetected with resolution revert: a deletion is never adopted', () => {
      const adopting: DeploymentEvent = { type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: 'adopt', previousDriftPolicy: 'revert' } };
      const absent = [{ field: 'object', expected: 'present', actual: 'absent' }];
      given(deploymentDecider, [...live, adopting])
        .when(drift(absent))
        .then([{ type: 'DriftDetected', data: { deploymentId, revision: 1, differences: absent, resolution: 'revert', observedVersion: '42' } }]);
    });
    it('given a change on its way to the cluster or a rollout under way, when the cluster differs, then nothing: that is no drift', () => {
      given(deploymentDecider, [created]).when(drift()).then([]);
      given(deploymentDecider, [created, applying(1)]).when(drift()).then([]);
      given(deploymentDecider, [created, applying(1), applied(1)]).when(drift()).then([]);
    });
    it('given a newer revision, when drift of an older one is reported, then nothing', () => {
      given(deploymentDecider, rollingOut).when(drift()).then([]);
    });
  });

  describe('helpers', () => {
    it('revisionAt gives a revision, or undefined for none and for an absent deployment', () => {
      const state = given(deploymentDecider, rollingOut).state;
      expect(revisionAt(state, 2)).to.deep.equal({ revision: 2, workloadRevision: 2, spec: specAt(2), strategy: rolling });
      expect(revisionAt(state, 4)).to.equal(undefined);
      expect(revisionAt(deploymentDecider.initialState, 1)).to.equal(undefined);
    });
    it('lastAvailableRevision gives the newest available revision, leaving out the one asked', () => {
      const state = given(deploymentDecider, [...live, updated(2, 2), available(2)]).state;
      expect(lastAvailableRevision(state)?.revision).to.equal(2);
      expect(lastAvailableRevision(state, 2)?.revision).to.equal(1);
      expect(lastAvailableRevision(given(deploymentDecider, [created]).state)).to.equal(undefined);
      expect(lastAvailableRevision(deploymentDecider.initialState)).to.equal(undefined);
    });
  });

  describe('bodies', () => {
    const paths = (result: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) => {
      expect(result.success).to.equal(false);
      return result.error!.issues.map((issue) => issue.path.join('.'));
    };
    const messages = (result: { error?: { issues: { message: string }[] } }) => result.error!.issues.map((issue) => issue.message).join('\n');

    it('fills the defaults: a rolling strategy of 25% / 25% and the revert drift policy', () => {
      expect(deploymentBody.parse({ workloadId, clusterId, replicas: 2 })).to.deep.equal({
        workloadId,
        clusterId,
        replicas: 2,
        strategy: { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' },
        driftPolicy: 'revert',
      });
    });
    it('fills the defaults of each strategy', () => {
      const strategyOf = (strategy: unknown) => deploymentBody.parse({ workloadId, clusterId, replicas: 1, strategy }).strategy;
      expect(strategyOf({ type: 'rolling', maxSurge: 1 })).to.deep.equal({ type: 'rolling', maxSurge: 1, maxUnavailable: '25%' });
      expect(strategyOf({ type: 'blue_green' })).to.deep.equal({ type: 'blue_green', autoPromote: false, scaleDownDelaySeconds: 30 });
      expect(strategyOf({ type: 'canary', steps: [{ weight: 20, pauseSeconds: 300 }, { weight: 100 }] })).to.deep.equal({
        type: 'canary',
        steps: [{ weight: 20, pauseSeconds: 300 }, { weight: 100 }],
      });
    });
    it('rejects unknown fields, at the top and inside the strategy', () => {
      const result = deploymentBody.safeParse({ workloadId, clusterId, replicas: 1, strategy: { type: 'rolling', surge: 1 }, namespace: 'x' });
      expect(paths(result)).to.include.members(['', 'strategy']);
    });
    it('rejects bad ids, replicas out of range and an unknown drift policy, saying what is accepted', () => {
      const result = deploymentBody.safeParse({ workloadId: 'w1', clusterId, replicas: 1001, driftPolicy: 'ignore' });
      expect(paths(result)).to.have.members(['workloadId', 'replicas', 'driftPolicy']);
      expect(messages(result)).to.include('a UUID').and.include('at most 1000').and.include('one of revert, adopt');
      expect(paths(deploymentBody.safeParse({ workloadId, clusterId, replicas: 1.5 }))).to.deep.equal(['replicas']);
      expect(paths(deploymentBody.safeParse({ workloadId, clusterId, replicas: -1 }))).to.deep.equal(['replicas']);
    });
    it('rejects an unknown strategy type, naming the ones there are', () => {
      const result = deploymentBody.safeParse({ workloadId, clusterId, replicas: 1, strategy: { type: 'recreate' } });
      expect(messages(result)).to.include('one of rolling, canary, blue_green');
    });
    it('rejects canary weights that do not strictly increase', () => {
      const result = deploymentBody.safeParse({ workloadId, clusterId, replicas: 1, strategy: { type: 'canary', steps: [{ weight: 50 }, { weight: 50 }] } });
      expect(paths(result)).to.deep.equal(['strategy.steps']);
      expect(messages(result)).to.include('strictly increasing');
    });
    it('rejects a canary with no steps, more than 20, or a weight outside 1..100', () => {
      const canaryWith = (steps: unknown) => deploymentBody.safeParse({ workloadId, clusterId, replicas: 1, strategy: { type: 'canary', steps } });
      expect(paths(canaryWith([]))).to.deep.equal(['strategy.steps']);
      expect(paths(canaryWith(Array.from({ length: 21 }, (_, i) => ({ weight: i + 1 }))))).to.deep.equal(['strategy.steps']);
      expect(paths(canaryWith([{ weight: 0 }, { weight: 101 }]))).to.include.members(['strategy.steps.0.weight', 'strategy.steps.1.weight']);
    });
    it('rejects a rolling strategy with both maxima zero, and accepts one of them zero', () => {
      const rollingWith = (maxSurge: unknown, maxUnavailable: unknown) =>
        deploymentBody.safeParse({ workloadId, clusterId, replicas: 1, strategy: { type: 'rolling', maxSurge, maxUnavailable } });
      expect(paths(rollingWith(0, '0%'))).to.deep.equal(['strategy.maxUnavailable']);
      expect(messages(rollingWith(0, 0))).to.include('cannot both be zero');
      expect(rollingWith(0, 1).success).to.equal(true);
      expect(rollingWith('0%', '10%').success).to.equal(true);
    });
    it('rejects a maximum that is neither a pod count nor a percentage', () => {
      const result = deploymentBody.safeParse({ workloadId, clusterId, replicas: 1, strategy: { type: 'rolling', maxSurge: -1, maxUnavailable: '250%' } });
      expect(paths(result)).to.have.members(['strategy.maxSurge', 'strategy.maxUnavailable']);
      expect(messages(result)).to.include('a percentage such as "25%"');
    });
    it('accepts an empty patch, meaning the latest workload revision, and rejects unknown fields and revision 0', () => {
      expect(deploymentPatchBody.parse({})).to.deep.equal({});
      expect(deploymentPatchBody.parse({ workloadRevision: 2, driftPolicy: 'adopt' })).to.deep.equal({ workloadRevision: 2, driftPolicy: 'adopt' });
      expect(paths(deploymentPatchBody.safeParse({ replicas: 3 }))).to.deep.equal(['']);
      expect(paths(deploymentPatchBody.safeParse({ workloadRevision: 0 }))).to.deep.equal(['workloadRevision']);
    });
    it('checks the scale, rollback and reason bodies', () => {
      expect(scaleBody.parse({ replicas: 0 })).to.deep.equal({ replicas: 0 });
      expect(paths(scaleBody.safeParse({}))).to.deep.equal(['replicas']);
      expect(rollbackBody.parse({})).to.deep.equal({});
      expect(rollbackBody.parse({ toRevision: 3, reason: 'bad canary' })).to.deep.equal({ toRevision: 3, reason: 'bad canary' });
      expect(paths(rollbackBody.safeParse({ toRevision: 0 }))).to.deep.equal(['toRevision']);
      for (const body of [restartBody, pauseBody, resumeBody, deleteBody]) {
        expect(body.parse({ reason: 'maintenance' })).to.deep.equal({ reason: 'maintenance' });
        expect(paths(body.safeParse({ reason: '' }))).to.deep.equal(['reason']);
        expect(paths(body.safeParse({ force: true }))).to.deep.equal(['']);
      }
    });
  });

  describe('events', () => {
    const samples: DeploymentEvent[] = [
      { ...created, data: { ...created.data } },
      { type: 'DeploymentScaled', data: { deploymentId, replicas: 3, previousReplicas: 2 } },
      updated(2, 2, canary),
      { type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: 'adopt', previousDriftPolicy: 'revert' } },
      {
        type: 'DeploymentRollbackRequested',
        data: { deploymentId, revision: 3, toRevision: 1, workloadRevision: 1, spec: specAt(1), strategy: rolling, reason: 'regression' },
      },
      { type: 'DeploymentRestartRequested', data: { deploymentId, restartedAt: '2026-01-31T12:00:00Z', reason: 'stuck' } },
      paused,
      { type: 'DeploymentResumed', data: { deploymentId, reason: 'done' } },
      { type: 'DeploymentDeleted', data: { deploymentId, reason: 'decommissioned' } },
      applying(1),
      applied(1),
      progressed(1, 1, 2),
      available(1),
      degraded(1),
      failed(1),
      {
        type: 'DeploymentRolledBack',
        data: { deploymentId, revision: 3, toRevision: 2, newRevision: 4, workloadRevision: 2, spec: specAt(2), strategy: rolling, cause: 'crash loop' },
      },
      { type: 'DeploymentRescheduled', data: { deploymentId, nodeSelector: { zone: 'b' }, previousNodeSelector: {}, reason: 'hot node' } },
      {
        type: 'DriftDetected',
        data: { deploymentId, revision: 1, differences: [{ field: 'image', expected: 'a:1', actual: 'a:2' }], resolution: 'revert', observedVersion: '7' },
      },
    ];

    it('has a sample of every event type', () => {
      expect(samples.map((event) => event.type)).to.have.members([...deploymentEvents.types]);
    });
    for (const sample of samples) {
      it(`parses ${sample.type} at version 1`, () => {
        expect(deploymentEvents.version(sample.type)).to.equal(1);
        expect(deploymentEvents.parse(sample.type, 1, sample.data)).to.deep.equal(sample);
      });
    }
    it('refuses an unknown schema version, an unknown type and data that does not match', () => {
      expect(() => deploymentEvents.parse('DeploymentScaled', 2, { deploymentId, replicas: 1, previousReplicas: 0 })).to.throw(UnknownEvent);
      expect(() => deploymentEvents.parse('DeploymentExploded', 1, {})).to.throw(UnknownEvent);
      expect(() => deploymentEvents.parse('DeploymentCreated', 1, { ...created.data, revision: 2 })).to.throw(UnknownEvent);
    });
  });
});
