// What a deployment holds on its cluster, as the admission ledger counts it: a paused deployment may still run
// the last revision that became available, whatever it was told since.
import { expect } from 'chai';
import { deploymentChange, heldFootprint, rolloutFootprint, surgePods } from '../../commands/deployment-change.js';
import { fold } from '../../domain/decider.js';
import { deploymentDecider, type DeploymentEvent, type PlacedDeployment } from '../../domain/deployment.js';

const deploymentId = 'd0d0d0d0-2222-4b4b-8b8b-000000000001';
const sku = 'nvidia-a100-80gb';
const rolling = { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' } as const;
const specWith = (gpus: number) => ({ namespace: 'serving', resources: { cpu: '2', memory: '1Gi', gpu: { count: gpus, sku } } });

const created: DeploymentEvent = {
  type: 'DeploymentCreated',
  data: { deploymentId, workloadId: 'w', clusterId: 'c', replicas: 2, strategy: rolling, driftPolicy: 'revert', revision: 1, workloadRevision: 1, spec: specWith(2) },
};
const available = (revision: number): DeploymentEvent => ({ type: 'DeploymentAvailable', data: { deploymentId, revision, readyReplicas: 2 } });
const updatedTo = (gpus: number): DeploymentEvent => ({
  type: 'DeploymentUpdated',
  data: { deploymentId, revision: 2, workloadRevision: 2, spec: specWith(gpus), strategy: rolling },
});
const paused: DeploymentEvent = { type: 'DeploymentPaused', data: { deploymentId } };
const resumed: DeploymentEvent = { type: 'DeploymentResumed', data: { deploymentId } };
const scaledTo = (replicas: number): DeploymentEvent => ({ type: 'DeploymentScaled', data: { deploymentId, replicas, previousReplicas: 2 } });

const state = (...events: DeploymentEvent[]) => fold(deploymentDecider, events) as PlacedDeployment;
const context = { actor: { id: 'alice', kind: 'user' as const }, correlationId: 'c', causationId: 'c' };

describe('what a deployment holds', () => {
  it('given a running deployment, then it holds what it was told', () => {
    expect(heldFootprint(state(created, available(1), updatedTo(1)))).to.include({ replicas: 2, gpus: 2 });
  });

  it('given a paused deployment told to use 1 GPU per pod while its pods run 2, then it still holds 2 per pod', () => {
    expect(heldFootprint(state(created, available(1), paused, updatedTo(1)))).to.include({ replicas: 2, gpus: 4, gpuSku: sku });
  });

  it('given a paused deployment told to use more, then it holds the more: it may roll out once resumed', () => {
    expect(heldFootprint(state(created, available(1), paused, updatedTo(3)))).to.include({ gpus: 6 });
  });

  it('given a paused deployment scaled down, then it holds the fewer replicas: Kubernetes scales paused deployments', () => {
    expect(heldFootprint(state(created, available(1), paused, updatedTo(1), scaledTo(1)))).to.include({ replicas: 1, gpus: 2 });
  });

  it('given the resume of a deployment told to use less while paused, then the change policy judges is from what runs to what it was told, with the surge of its rollout', () => {
    const before = state(created, available(1), paused, updatedTo(1));
    const change = deploymentChange('resume', before, state(created, available(1), paused, updatedTo(1), resumed), context, new Date(0));
    expect(change.before).to.include({ gpus: 4 });
    // 2 replicas of 1 GPU, and one more pod while the rolling update (maxSurge 25%, rounded up) replaces them.
    expect(change.after).to.include({ replicas: 3, gpus: 3 });
  });
});

describe('what a rollout holds', () => {
  const withStrategy = (maxSurge: number | string, replicas = 4): DeploymentEvent => ({
    type: 'DeploymentCreated',
    data: { deploymentId, workloadId: 'w', clusterId: 'c', replicas, strategy: { type: 'rolling', maxSurge, maxUnavailable: 1 }, driftPolicy: 'revert', revision: 1, workloadRevision: 1, spec: specWith(1) },
  });

  it('given maxSurge as a share, then the surge is rounded up as Kubernetes does', () => {
    expect(surgePods(state(withStrategy('25%', 4)))).to.equal(1);
    expect(surgePods(state(withStrategy('25%', 5)))).to.equal(2);
    expect(surgePods(state(withStrategy('0%', 5)))).to.equal(0);
    expect(surgePods(state(withStrategy(3, 5)))).to.equal(3);
  });

  it('given an update, a restart, a rollback or a reschedule, then the change holds the surge pods as well', () => {
    const deployment = state(withStrategy(2, 4), available(1));
    for (const action of ['update', 'restart', 'rollback', 'reschedule'] as const) {
      expect(deploymentChange(action, deployment, deployment, context, new Date(0)).after, action).to.include({ replicas: 6, gpus: 6 });
    }
  });

  it('given a scale, then no surge: pods are only added or taken away', () => {
    const deployment = state(withStrategy(2, 4), available(1));
    expect(rolloutFootprint('scale', deployment)).to.include({ replicas: 4, gpus: 4 });
  });

  it('given maxSurge 0, then a rollout holds no more than the deployment', () => {
    const deployment = state(withStrategy(0, 4), available(1));
    expect(rolloutFootprint('update', deployment)).to.include({ replicas: 4, gpus: 4 });
  });
});
