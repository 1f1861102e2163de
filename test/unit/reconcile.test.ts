// The cluster reactor's reconcile rules as pure functions: what a deployment asks the cluster to run, when a rollout
// has failed in the cluster's own words, where the cluster's object drifted from the recorded revision, and what an
// object the watch showed means for its deployment.
import { expect } from 'chai';
import { fold } from '../../domain/decider.js';
import { deploymentDecider, type DeploymentEvent, type PlacedDeployment } from '../../domain/deployment.js';
import { desiredTemplate, type DesiredWorkload, type LiveWorkload, type ManagedChange, type RolloutStatus } from '../../reactors/cluster-driver.js';
import {
  adoptedAlready,
  adoptedDrift,
  countChangedByHand,
  desiredOf,
  driftBetween,
  driftOnCluster,
  driftResolution,
  healthChange,
  isComplete,
  judgeObservation,
  rolloutFailure,
} from '../../reactors/reconcile.js';
import { rolloutFailedAt } from '../../reactors/plan-reactor.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import type { WorkloadSpec } from '../../domain/workload.js';

const spec: WorkloadSpec = {
  name: 'llama',
  namespace: 'ml',
  type: 'inference',
  image: 'registry.local/llama:1.0',
  resources: { cpu: '2', memory: '8Gi', gpu: { count: 1, sku: 'nvidia-a100-80gb' } },
  env: { MODEL: 'llama-3' },
  labels: {},
} as unknown as WorkloadSpec;

const desired: DesiredWorkload = {
  deploymentId: 'd-1',
  revision: 2,
  spec,
  replicas: 3,
  strategy: { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' },
};

const rollout = (overrides: Partial<RolloutStatus> = {}): RolloutStatus => ({
  observedGeneration: 4,
  replicas: 3,
  updatedReplicas: 3,
  readyReplicas: 3,
  availableReplicas: 3,
  conditions: [],
  ...overrides,
});

const live = (template: Partial<LiveWorkload['template']> = {}, replicas: number | undefined = 3): LiveWorkload => ({
  ref: { kind: 'Deployment', namespace: 'ml', name: 'llama' },
  deploymentId: 'd-1',
  revision: 2,
  resourceVersion: '17',
  generation: 4,
  ...(replicas === undefined ? {} : { replicas }),
  template: {
    image: 'registry.local/llama:1.0',
    env: { MODEL: 'llama-3' },
    cpu: '2000m',
    memory: '8192Mi',
    gpus: 1,
    nodeSelector: { 'nvidia.com/gpu.product': 'nvidia-a100-80gb' },
    ...template,
  },
  rollout: rollout(),
});

describe('reconcile rules', () => {
  describe('rolloutFailure', () => {
    it('given a rollout still progressing, then no failure', () => {
      expect(rolloutFailure(rollout({ conditions: [{ type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated' }] }))).to.equal(undefined);
    });

    it('given Progressing False with ProgressDeadlineExceeded, then the failure in the cluster’s words', () => {
      const failed = rollout({ conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "llama-7f" has timed out progressing.' }] });
      expect(rolloutFailure(failed)).to.equal('ProgressDeadlineExceeded: ReplicaSet "llama-7f" has timed out progressing.');
    });

    it('given ReplicaFailure True, then its reason and message', () => {
      const failed = rollout({ conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'pods "llama-x" is forbidden: exceeded quota' }] });
      expect(rolloutFailure(failed)).to.equal('FailedCreate: pods "llama-x" is forbidden: exceeded quota');
    });

    it('given Progressing False for another reason, then no failure yet', () => {
      expect(rolloutFailure(rollout({ conditions: [{ type: 'Progressing', status: 'False', reason: 'Paused' }] }))).to.equal(undefined);
    });
  });

  describe('driftBetween', () => {
    it('given the object as recorded, with quantities written another way, then no drift', () => {
      expect(driftBetween(desired, live())).to.deep.equal([]);
    });

    it('given an image and replicas changed by hand, then each field with what was expected and what is there', () => {
      expect(driftBetween(desired, live({ image: 'registry.local/llama:hotfix' }, 5))).to.deep.equal([
        { field: 'replicas', expected: 3, actual: 5 },
        { field: 'image', expected: 'registry.local/llama:1.0', actual: 'registry.local/llama:hotfix' },
      ]);
    });

    it('given more memory than recorded, then memory drifted, compared by value', () => {
      expect(driftBetween(desired, live({ memory: '16Gi' }))).to.deep.equal([{ field: 'memory', expected: '8Gi', actual: '16Gi' }]);
    });

    it('given a node selector without the GPU SKU, then the selector drifted', () => {
      expect(driftBetween(desired, live({ nodeSelector: {} }))).to.deep.equal([
        { field: 'nodeSelector', expected: { 'nvidia.com/gpu.product': 'nvidia-a100-80gb' }, actual: {} },
      ]);
    });

    it('given a Job (no replica count), then replicas are not compared', () => {
      expect(driftBetween(desired, live({}, undefined))).to.deep.equal([]);
    });
  });
});

// ---- a deployment, given its events, and the object the cluster has for it ------------------------------

const deploymentId = 'd-1';
const PROGRESS_DEADLINE_SECONDS = 600;
const snapshot = (workload: WorkloadSpec) => workload as unknown as Record<string, unknown>;
const created = (driftPolicy: 'revert' | 'adopt' = 'revert'): DeploymentEvent => ({
  type: 'DeploymentCreated',
  data: { deploymentId, workloadId: 'w-1', clusterId: 'c-1', replicas: 3, strategy: desired.strategy, driftPolicy, revision: 1, workloadRevision: 1, spec: snapshot(spec) },
});
const applying = (revision: number): DeploymentEvent => ({ type: 'DeploymentApplying', data: { deploymentId, revision } });
const applied = (revision: number): DeploymentEvent => ({ type: 'DeploymentApplied', data: { deploymentId, revision } });
const available = (revision: number): DeploymentEvent => ({ type: 'DeploymentAvailable', data: { deploymentId, revision, readyReplicas: 3 } });
const rolledOut = (revision: number): DeploymentEvent[] => [applying(revision), applied(revision), available(revision)];
const updatedTo2: DeploymentEvent = {
  type: 'DeploymentUpdated',
  data: { deploymentId, revision: 2, workloadRevision: 2, spec: snapshot({ ...spec, image: 'registry.local/llama:2.0' }), strategy: desired.strategy },
};
const paused: DeploymentEvent = { type: 'DeploymentPaused', data: { deploymentId } };
const failed = (revision: number): DeploymentEvent => ({ type: 'DeploymentRolloutFailed', data: { deploymentId, revision, cause: 'FailedCreate: exceeded quota' } });
const degraded = (revision: number): DeploymentEvent => ({ type: 'DeploymentDegraded', data: { deploymentId, revision, cause: 'MinimumReplicasUnavailable: 1 of 3 ready' } });

function deployment(...events: DeploymentEvent[]): PlacedDeployment {
  const state = fold(deploymentDecider, events);
  if (state.status === 'absent') throw new Error('the events hold no DeploymentCreated');
  return state;
}

interface ObjectChanges {
  revision?: number;
  replicas?: number;
  template?: Partial<LiveWorkload['template']>;
  rollout?: Partial<RolloutStatus>;
}

/** The cluster's object for the deployment, at its current revision unless told another, rolled out in full unless told otherwise. */
function objectFor(state: PlacedDeployment, changes: ObjectChanges = {}): LiveWorkload {
  const revision = changes.revision ?? state.currentRevision;
  const wanted = desiredOf({ ...state, currentRevision: revision }, PROGRESS_DEADLINE_SECONDS);
  const replicas = changes.replicas ?? wanted.replicas;
  return {
    ref: { kind: 'Deployment', namespace: 'ml', name: 'llama' },
    deploymentId,
    revision,
    resourceVersion: '40',
    generation: 7,
    replicas,
    template: { ...desiredTemplate(wanted), ...changes.template },
    rollout: {
      observedGeneration: 7,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }],
      ...changes.rollout,
    },
  };
}

const unavailable = { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' } as const;

/** What the reactor makes of the watch showing `live` for the deployment in `state`. */
function judged(state: PlacedDeployment, type: ManagedChange['type'], live: LiveWorkload) {
  return judgeObservation(state, desiredOf(state, PROGRESS_DEADLINE_SECONDS), { type, workload: live });
}

describe('what the deployment asks the cluster to run', () => {
  it('given an update, a restart and a reschedule, then the current revision with the restart stamp, the node selector and the deadline', () => {
    const state = deployment(
      created(),
      ...rolledOut(1),
      updatedTo2,
      { type: 'DeploymentRestartRequested', data: { deploymentId, restartedAt: '2026-12-06T10:00:00Z' } },
      { type: 'DeploymentRescheduled', data: { deploymentId, nodeSelector: { zone: 'b' }, previousNodeSelector: {} } },
    );
    const wanted = desiredOf(state, 120);
    expect(wanted).to.include({ deploymentId, revision: 2, replicas: 3, restartedAt: '2026-12-06T10:00:00Z', progressDeadlineSeconds: 120 });
    expect(wanted.spec.image).to.equal('registry.local/llama:2.0');
    expect(wanted.nodeSelector).to.deep.equal({ zone: 'b' });
  });

  it('given an image, env and memory adopted from the cluster, then the desired spec carries them, and the object that showed them has no drift', () => {
    const adopted: DeploymentEvent = {
      type: 'DriftDetected',
      data: {
        deploymentId,
        revision: 1,
        resolution: 'adopt',
        observedVersion: '9',
        differences: [
          { field: 'replicas', expected: 3, actual: 4 },
          { field: 'image', expected: spec.image, actual: 'registry.local/llama:hotfix' },
          { field: 'env', expected: { MODEL: 'llama-3' }, actual: { MODEL: 'llama-3', DEBUG: '1' } },
          { field: 'memory', expected: '8Gi', actual: '12Gi' },
        ],
      },
    };
    const state = deployment(created('adopt'), ...rolledOut(1), adopted);
    const wanted = desiredOf(state, 120);
    expect(wanted.replicas).to.equal(4);
    expect(wanted.spec).to.deep.include({ image: 'registry.local/llama:hotfix', env: { MODEL: 'llama-3', DEBUG: '1' } });
    expect(wanted.spec.resources).to.deep.include({ cpu: '2', memory: '12Gi' });
    const edited = live({ image: 'registry.local/llama:hotfix', env: { MODEL: 'llama-3', DEBUG: '1' }, memory: '12Gi' }, 4);
    expect(driftBetween(wanted, { ...edited, revision: 1 })).to.deep.equal([]);
  });

  it('given an image adopted on revision 1, when revision 2 is made, then revision 2 runs its own image', () => {
    const adopted: DeploymentEvent = {
      type: 'DriftDetected',
      data: { deploymentId, revision: 1, resolution: 'adopt', observedVersion: '9', differences: [{ field: 'image', expected: spec.image, actual: 'registry.local/llama:hotfix' }] },
    };
    const state = deployment(created('adopt'), ...rolledOut(1), adopted, updatedTo2);
    expect(desiredOf(state, 120).spec.image).to.equal('registry.local/llama:2.0');
  });

  it('given a reschedule back to no selector, then no node selector of its own', () => {
    const state = deployment(created(), { type: 'DeploymentRescheduled', data: { deploymentId, nodeSelector: {}, previousNodeSelector: { zone: 'b' } } });
    expect(desiredOf(state, 120)).to.not.have.property('nodeSelector');
  });
});

describe('judging what the watch showed', () => {
  describe('a settled deployment', () => {
    it('given an Available deployment, when the object is as recorded, then nothing to do', () => {
      const state = deployment(created(), ...rolledOut(1));
      expect(judged(state, 'MODIFIED', objectFor(state))).to.deep.equal({ kind: 'ignore' });
    });

    it('given an Available deployment, when its image was changed by hand, then drift in that field', () => {
      const state = deployment(created(), ...rolledOut(1));
      expect(judged(state, 'MODIFIED', objectFor(state, { template: { image: 'registry.local/llama:hotfix' } }))).to.deep.equal({
        kind: 'drift',
        differences: [{ field: 'image', expected: 'registry.local/llama:1.0', actual: 'registry.local/llama:hotfix' }],
      });
    });

    it('given an Available deployment, when its object is DELETED, then the whole object drifted', () => {
      const state = deployment(created(), ...rolledOut(1));
      expect(judged(state, 'DELETED', objectFor(state))).to.deep.equal({ kind: 'drift', differences: [{ field: 'object', expected: 'present', actual: 'absent' }] });
    });

    it('given an Available deployment, when pods are lost, then Degraded in the cluster’s words', () => {
      const state = deployment(created(), ...rolledOut(1));
      const live = objectFor(state, { rollout: { readyReplicas: 1, availableReplicas: 1, conditions: [unavailable] } });
      expect(judged(state, 'MODIFIED', live)).to.deep.equal({
        kind: 'health',
        change: { to: 'Degraded', cause: 'MinimumReplicasUnavailable: Deployment does not have minimum availability.' },
      });
    });

    it('given a Degraded deployment, when every replica is ready again, then Available', () => {
      const state = deployment(created(), ...rolledOut(1), degraded(1));
      expect(judged(state, 'MODIFIED', objectFor(state))).to.deep.equal({ kind: 'health', change: { to: 'Available', readyReplicas: 3 } });
    });

    it('given a Degraded deployment, when still short of replicas, then nothing to do', () => {
      const state = deployment(created(), ...rolledOut(1), degraded(1));
      expect(judged(state, 'MODIFIED', objectFor(state, { rollout: { readyReplicas: 2 } }))).to.deep.equal({ kind: 'ignore' });
    });

    it('given an Available Job, when it shows unavailable, then no health to follow: a Job runs to completion', () => {
      const state = deployment(created(), ...rolledOut(1));
      const job = { ...objectFor(state, { rollout: { conditions: [unavailable] } }), ref: { kind: 'Job' as const, namespace: 'ml', name: 'llama' } };
      expect(judged(state, 'MODIFIED', job)).to.deep.equal({ kind: 'ignore' });
    });
  });

  describe('a count changed by hand', () => {
    it('given a paused Available deployment, when scaled by hand, then the count is answered at once, as drift: it is settled', () => {
      const state = deployment(created(), ...rolledOut(1), paused);
      expect(judged(state, 'MODIFIED', objectFor(state, { replicas: 5 }))).to.deep.equal({
        kind: 'scaledByHand',
        difference: { field: 'replicas', expected: 3, actual: 5 },
        asDrift: true,
      });
    });

    it('given a paused deployment with an update waiting, when the revision it runs is scaled by hand, then the count is put back, not as drift', () => {
      const state = deployment(created(), ...rolledOut(1), paused, updatedTo2);
      expect(state.status).to.equal('Pending');
      expect(judged(state, 'MODIFIED', objectFor(state, { revision: 1, replicas: 5 }))).to.deep.equal({
        kind: 'scaledByHand',
        difference: { field: 'replicas', expected: 3, actual: 5 },
        asDrift: false,
      });
    });

    it('given a paused deployment, when its image was changed by hand, then nothing until the resume applies what waited', () => {
      const state = deployment(created(), ...rolledOut(1), paused);
      expect(judged(state, 'MODIFIED', objectFor(state, { template: { image: 'registry.local/llama:hotfix' } }))).to.deep.equal({ kind: 'ignore' });
    });

    it('given a paused deployment, when its object is DELETED, then nothing until the resume', () => {
      const state = deployment(created(), ...rolledOut(1), paused);
      expect(judged(state, 'DELETED', objectFor(state))).to.deep.equal({ kind: 'ignore' });
    });

    it('given a failed deployment, when scaled by hand, then the count is put back, not as drift: it holds no settled count', () => {
      const state = deployment(created(), applying(1), applied(1), failed(1));
      expect(judged(state, 'MODIFIED', objectFor(state, { replicas: 6 }))).to.deep.equal({
        kind: 'scaledByHand',
        difference: { field: 'replicas', expected: 3, actual: 6 },
        asDrift: false,
      });
    });

    it('given a failed deployment, when the object shows the count it was told, then nothing to do', () => {
      const state = deployment(created(), applying(1), applied(1), failed(1));
      expect(judged(state, 'MODIFIED', objectFor(state))).to.deep.equal({ kind: 'ignore' });
    });

    it('given a Job (no replica count), then no count changed by hand', () => {
      const state = deployment(created(), ...rolledOut(1));
      const { replicas: _replicas, ...job } = objectFor(state);
      expect(countChangedByHand(desiredOf(state, PROGRESS_DEADLINE_SECONDS), job)).to.equal(undefined);
    });
  });

  describe('a rollout being followed', () => {
    const rollingOut2 = () => deployment(created(), ...rolledOut(1), updatedTo2, applying(2), applied(2));

    it('given a rollout of revision 2, when the controller has not seen the new generation, then nothing: the failure shown is about the spec before', () => {
      const state = rollingOut2();
      const lagging = objectFor(state, {
        rollout: { observedGeneration: 6, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] },
      });
      expect(judged(state, 'MODIFIED', lagging)).to.deep.equal({ kind: 'ignore' });
    });

    it('given a rollout of revision 2, when one replica of three is updated and ready, then progress', () => {
      const state = rollingOut2();
      const live = objectFor(state, { rollout: { replicas: 4, updatedReplicas: 1, readyReplicas: 3 } });
      expect(judged(state, 'MODIFIED', live)).to.deep.equal({ kind: 'followRollout', step: { outcome: 'progressing', readyReplicas: 3, updatedReplicas: 1 } });
    });

    it('given a rollout of revision 2, when every replica runs it and is ready and the old ones are gone, then available', () => {
      const state = rollingOut2();
      expect(judged(state, 'MODIFIED', objectFor(state))).to.deep.equal({ kind: 'followRollout', step: { outcome: 'available', readyReplicas: 3 } });
    });

    it('given a rollout of revision 2, when an object of revision 1 shows (an older event), then nothing', () => {
      const state = rollingOut2();
      expect(judged(state, 'MODIFIED', objectFor(state, { revision: 1, rollout: { conditions: [unavailable] } }))).to.deep.equal({ kind: 'ignore' });
    });

    it('given a rollout of revision 2 after revision 1 became available, when ProgressDeadlineExceeded, then failed and rolled back to revision 1', () => {
      const state = rollingOut2();
      const stuck = objectFor(state, {
        rollout: {
          replicas: 4,
          updatedReplicas: 1,
          readyReplicas: 3,
          conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "llama-7f" has timed out progressing.' }],
        },
      });
      expect(judged(state, 'MODIFIED', stuck)).to.deep.equal({
        kind: 'followRollout',
        step: { outcome: 'failed', cause: 'ProgressDeadlineExceeded: ReplicaSet "llama-7f" has timed out progressing.', readyReplicas: 3, updatedReplicas: 1, rollbackTo: 1 },
      });
    });

    it('given the first rollout, when FailedCreate, then failed with nothing to roll back to', () => {
      const state = deployment(created(), applying(1), applied(1));
      const refused = objectFor(state, {
        rollout: { replicas: 0, updatedReplicas: 0, readyReplicas: 0, conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'exceeded quota' }] },
      });
      expect(judged(state, 'MODIFIED', refused)).to.deep.equal({
        kind: 'followRollout',
        step: { outcome: 'failed', cause: 'FailedCreate: exceeded quota', readyReplicas: 0, updatedReplicas: 0, rollbackTo: undefined },
      });
    });

    it('given a rollout being followed, when its object is DELETED, then nothing: the resync applies it again', () => {
      const state = rollingOut2();
      expect(judged(state, 'DELETED', objectFor(state))).to.deep.equal({ kind: 'ignore' });
    });
  });

  describe('nothing to judge', () => {
    for (const [status, events] of [
      ['Pending', [created()]],
      ['Applying', [created(), applying(1)]],
      ['Deleted', [created(), ...rolledOut(1), { type: 'DeploymentDeleted', data: { deploymentId } }]],
    ] as const) {
      it(`given a ${status} deployment, when its object was changed by hand or DELETED, then nothing`, () => {
        const state = deployment(...events);
        expect(state.status).to.equal(status);
        expect(judged(state, 'MODIFIED', objectFor(state, { replicas: 9, template: { image: 'registry.local/llama:hotfix' } }))).to.deep.equal({ kind: 'ignore' });
        expect(judged(state, 'DELETED', objectFor(state))).to.deep.equal({ kind: 'ignore' });
      });
    }
  });
});

describe('answering what was judged, on the object as it is now', () => {
  const settled = () => deployment(created(), ...rolledOut(1));

  it('given the object gone, then it drifted as a whole; given it at a newer revision, then no drift: its rollout judges it', () => {
    const wanted = desiredOf(settled(), PROGRESS_DEADLINE_SECONDS);
    const newer = objectFor(deployment(created(), ...rolledOut(1), updatedTo2), { replicas: 9 });
    expect(driftOnCluster(wanted, undefined)).to.deep.equal([{ field: 'object', expected: 'present', actual: 'absent' }]);
    expect(driftOnCluster(wanted, newer)).to.deep.equal([]);
  });

  it('given drift under revert, then put back', () => {
    expect(driftResolution('revert', [{ field: 'replicas', expected: 3, actual: 5 }], true)).to.deep.equal({ resolution: 'revert' });
  });

  it('given a count changed by hand under adopt, then adopted, judged and admitted as a scale', () => {
    expect(driftResolution('adopt', [{ field: 'replicas', expected: 3, actual: 5 }], true)).to.deep.equal({ resolution: 'adopt', judgedAsScale: true });
  });

  it('given an image changed by hand under adopt, then adopted with nothing to admit', () => {
    expect(driftResolution('adopt', [{ field: 'image', expected: 'a', actual: 'b' }], true)).to.deep.equal({ resolution: 'adopt', judgedAsScale: false });
  });

  it('given a count and an image changed together and adopted, when the object is seen again with the count now the deployment\'s own, then it is the same drift', () => {
    const adopted = adoptedDrift([
      { field: 'replicas', expected: 3, actual: 5 },
      { field: 'image', expected: 'a', actual: 'b' },
    ]);
    expect(adoptedAlready(adopted, [{ field: 'image', expected: 'a', actual: 'b' }])).to.equal(true);
    expect(adoptedAlready(adopted, [{ field: 'replicas', expected: 3, actual: 5 }, { field: 'image', expected: 'a', actual: 'b' }])).to.equal(true);
  });

  it('given an adopted drift, when the object shows a new count or another image, then it is a new drift', () => {
    const adopted = adoptedDrift([{ field: 'replicas', expected: 3, actual: 5 }, { field: 'image', expected: 'a', actual: 'b' }]);
    expect(adoptedAlready(adopted, [{ field: 'replicas', expected: 5, actual: 7 }, { field: 'image', expected: 'a', actual: 'b' }])).to.equal(false);
    expect(adoptedAlready(adopted, [{ field: 'image', expected: 'a', actual: 'c' }])).to.equal(false);
    expect(adoptedAlready(undefined, [{ field: 'image', expected: 'a', actual: 'b' }])).to.equal(false);
  });

  it('given the object deleted by hand under adopt, then put back all the same: adopting it would run nothing', () => {
    expect(driftResolution('adopt', [{ field: 'object', expected: 'present', actual: 'absent' }], false)).to.deep.equal({ resolution: 'revert' });
  });

  it('given a Degraded deployment whose object is of another revision, then no change of health', () => {
    const state = deployment(created(), ...rolledOut(1), degraded(1));
    expect(healthChange(state, objectFor(deployment(created(), ...rolledOut(1), updatedTo2)))).to.equal(undefined);
  });

  it('given old replicas still running beside the new ones, then not complete', () => {
    const state = settled();
    expect(isComplete(objectFor(state, { rollout: { replicas: 5 } }), 3)).to.equal(false);
    expect(isComplete(objectFor(state), 3)).to.equal(true);
  });
});

describe('a plan action reading its deployment’s stream', () => {
  const recorded = (type: string, data: Record<string, unknown>, revision: number): RecordedEvent => ({
    id: `e-${revision}`,
    stream: 'deployment-d-1',
    type,
    schemaVersion: 1,
    revision,
    position: `0000000000000001-${String(revision).padStart(16, '0')}`,
    recordedAt: new Date('2026-12-06T10:00:00Z'),
    data,
    metadata: {},
  });

  it('given policy decisions among the deployment’s events, when the rollout of the revision failed, then that failure, the decisions skipped', () => {
    const events = [
      recorded('PolicyEvaluated', { command: 'ScaleDeployment', verdict: 'allow', policySet: { stream: 'policyset-global', revision: 0 }, evaluations: [] }, 7),
      recorded('DeploymentRolloutFailed', { deploymentId: 'd-1', revision: 2, cause: 'an older revision' }, 8),
      recorded('PolicyEvaluated', { command: 'ScaleDeployment', verdict: 'deny', policySet: { stream: 'policyset-global', revision: 0 }, evaluations: [] }, 9),
      recorded('DeploymentRolloutFailed', { deploymentId: 'd-1', revision: 3, cause: 'ProgressDeadlineExceeded: no progress' }, 10),
    ];
    expect(rolloutFailedAt(events, 3)?.parsed.data.cause).to.equal('ProgressDeadlineExceeded: no progress');
    expect(rolloutFailedAt(events, 4)).to.equal(undefined);
  });
});
