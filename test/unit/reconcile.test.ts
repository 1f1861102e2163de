// The cluster reactor's reconcile rules as pure functions: what a deployment asks the cluster to run, when a rollout
// has failed in the cluster's own words, and where the cluster's object drifted from the recorded revision.
import { expect } from 'chai';
import type { DesiredWorkload, LiveWorkload, RolloutStatus } from '../../reactors/cluster-driver.js';
import { driftBetween, rolloutFailure } from '../../reactors/cluster-reactor.js';
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
