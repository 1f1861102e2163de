import { expect } from 'chai';
import { NO_FOOTPRINT, NO_USAGE, type Change, type Footprint, type ParametersOf, type PolicyInputs, type Usage } from '../../../domain/policy.js';
import { quota } from '../../../domain/rules/quota.js';

const GiB = 2 ** 30;
const A100 = 'nvidia-a100-80gb';
const H100 = 'nvidia-h100-80gb';

/** Two replicas of 2 cores, 8 GiB and 1 A100 each. */
const two: Footprint = { replicas: 2, cpuMillicores: 4000, memoryBytes: 16 * GiB, gpus: 2, gpuSku: A100 };
/** The same workload at four replicas. */
const four: Footprint = { replicas: 4, cpuMillicores: 8000, memoryBytes: 32 * GiB, gpus: 4, gpuSku: A100 };

const change = (overrides: Partial<Change> = {}): Change => ({
  action: 'scale',
  at: '2026-03-10T12:00:00Z',
  actor: { id: 'alice', kind: 'user' },
  target: { kind: 'deployment', id: 'llm-serving' },
  clusterId: 'gpu-east',
  namespace: 'ml',
  labels: { team: 'research' },
  before: two,
  after: four,
  ...overrides,
});

/** The same usage of everything else in the namespace, the team and the cluster, unless one is given. */
const inputs = (usage: Partial<Usage> = {}, scoped: Partial<PolicyInputs['usage']> = {}): PolicyInputs => {
  const everywhere = { ...NO_USAGE, ...usage };
  return {
    usage: { namespace: everywhere, team: everywhere, cluster: everywhere, ...scoped },
    cost: { fleetHourlyUsd: 0, teamHourlyUsd: 0, targetHourlyUsdBefore: 0, targetHourlyUsdAfter: 0, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
    history: [],
  };
};

type Parameters = ParametersOf<'quota'>;
const per = (scope: Parameters['per'], limits: Parameters['limits']): Parameters => ({ per: scope, limits });

describe('quota rule', () => {
  describe('each dimension', () => {
    it('given 6 replicas in use and a limit of 10, when scaled from 2 to 4, then pass with the total', () => {
      const result = quota(per('namespace', { replicas: 10 }), change(), inputs({ replicas: 6 }));
      expect(result).to.deep.equal({ outcome: 'pass', message: 'namespace ml would stay within its quota: 10 replicas of 10 replicas' });
    });
    it('given 7 replicas in use and a limit of 10, when scaled from 2 to 4, then fail naming the numbers', () => {
      const result = quota(per('namespace', { replicas: 10 }), change(), inputs({ replicas: 7 }));
      expect(result).to.deep.equal({ outcome: 'fail', message: 'namespace ml would exceed its quota: 11 replicas over the limit of 10 replicas' });
    });

    it('given cpu exactly at the limit after the change, then pass', () => {
      const result = quota(per('namespace', { cpu: '10' }), change(), inputs({ cpuMillicores: 2000 }));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include('cpu 10 cores of 10 cores');
    });
    it('given cpu over the limit after the change, then fail in cores', () => {
      const result = quota(per('namespace', { cpu: '9500m' }), change(), inputs({ cpuMillicores: 2000 }));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.include('cpu 10 cores over the limit of 9.5 cores');
    });

    it('given memory exactly at the limit after the change, then pass', () => {
      const result = quota(per('namespace', { memory: '64Gi' }), change(), inputs({ memoryBytes: 32 * GiB }));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include('memory 64 GiB of 64 GiB');
    });
    it('given memory over the limit after the change, then fail in GiB', () => {
      const result = quota(per('namespace', { memory: '48Gi' }), change(), inputs({ memoryBytes: 16.5 * GiB }));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.include('memory 48.5 GiB over the limit of 48 GiB');
    });

    it('given gpus exactly at the limit after the change, then pass', () => {
      expect(quota(per('namespace', { gpus: 8 }), change(), inputs({ gpus: 4 })).outcome).to.equal('pass');
    });
    it('given gpus over the limit after the change, then fail', () => {
      const result = quota(per('namespace', { gpus: 8 }), change(), inputs({ gpus: 5 }));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.include('9 GPUs over the limit of 8 GPUs');
    });

    it('given several limits exceeded, then one message reports every one of them', () => {
      const limits = { replicas: 5, cpu: '8', memory: '32Gi', gpus: 4 };
      const result = quota(per('namespace', limits), change(), inputs({ replicas: 2, cpuMillicores: 1000, memoryBytes: GiB, gpus: 1 }));
      expect(result).to.deep.equal({
        outcome: 'fail',
        message:
          'namespace ml would exceed its quota: 6 replicas over the limit of 5 replicas, cpu 9 cores over the limit of 8 cores, ' +
          'memory 33 GiB over the limit of 32 GiB, 5 GPUs over the limit of 4 GPUs',
      });
    });

    it('given one limit exceeded and another within, then fail reporting only the exceeded one', () => {
      const result = quota(per('namespace', { replicas: 100, gpus: 4 }), change(), inputs({ gpus: 1 }));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.include('5 GPUs over the limit of 4 GPUs').and.not.include('replicas');
    });
  });

  describe('gpusBySku', () => {
    it('given A100s at their limit after the change, then pass naming the SKU', () => {
      const result = quota(per('namespace', { gpusBySku: { [A100]: 6 } }), change(), inputs({ gpus: 2, gpusBySku: { [A100]: 2 } }));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include(`6 ${A100} GPUs of 6 ${A100} GPUs`);
    });
    it('given A100s over their limit after the change, then fail naming the SKU', () => {
      const result = quota(per('namespace', { gpusBySku: { [A100]: 6 } }), change(), inputs({ gpus: 3, gpusBySku: { [A100]: 3 } }));
      expect(result).to.deep.equal({
        outcome: 'fail',
        message: `namespace ml would exceed its quota: 7 ${A100} GPUs over the limit of 6 ${A100} GPUs`,
      });
    });
    it('given a limit on another SKU only, when A100s grow, then pass however many H100s are in use', () => {
      const result = quota(per('namespace', { gpusBySku: { [H100]: 1 } }), change(), inputs({ gpus: 9, gpusBySku: { [H100]: 9 } }));
      expect(result.outcome).to.equal('pass');
    });
    it('given H100s full, when the target moves from A100s to as many H100s, then fail: the H100s grow', () => {
      const after = { ...two, gpuSku: H100 };
      const result = quota(per('namespace', { gpusBySku: { [H100]: 8 } }), change({ action: 'update', after }), inputs({ gpusBySku: { [H100]: 7 } }));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.include(`9 ${H100} GPUs over the limit of 8 ${H100} GPUs`);
    });
    it('given A100s over their limit, when the target keeps its A100s and changes nothing else, then pass', () => {
      const result = quota(per('namespace', { gpusBySku: { [A100]: 2 } }), change({ action: 'update', after: two }), inputs({ gpusBySku: { [A100]: 5 } }));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include('does not raise it');
    });
    it('given a target without GPUs, then pass', () => {
      const cpuOnly = { ...NO_FOOTPRINT, replicas: 2, cpuMillicores: 2000 };
      const result = quota(per('namespace', { gpusBySku: { [A100]: 0 } }), change({ before: undefined, after: cpuOnly }), inputs());
      expect(result.outcome).to.equal('pass');
    });
  });

  describe('changes that do not add to an exceeded dimension', () => {
    it('given a namespace over its gpu limit, when scaled down, then pass and say it is already over', () => {
      const result = quota(per('namespace', { gpus: 4 }), change({ before: four, after: two }), inputs({ gpus: 6 }));
      expect(result).to.deep.equal({
        outcome: 'pass',
        message: 'namespace ml is over its quota, but this change does not raise it: 8 GPUs over the limit of 4 GPUs',
      });
    });
    it('given a namespace over its memory limit, when an update adds cpu but keeps memory, then pass', () => {
      const after = { ...two, cpuMillicores: 6000 };
      const result = quota(per('namespace', { cpu: '100', memory: '16Gi' }), change({ action: 'update', after }), inputs({ memoryBytes: 4 * GiB }));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.equal(
        'namespace ml would stay within its quota: cpu 6 cores of 100 cores; already over, but not raised by this change: ' +
          'memory 20 GiB over the limit of 16 GiB',
      );
    });
    it('given a namespace over its cpu limit, when an update adds cpu, then fail', () => {
      const after = { ...two, cpuMillicores: 6000 };
      expect(quota(per('namespace', { cpu: '4' }), change({ action: 'update', after }), inputs()).outcome).to.equal('fail');
    });
    it('given a create, which has no before, when it takes the namespace over, then fail', () => {
      const result = quota(per('namespace', { replicas: 3 }), change({ action: 'create', before: undefined, after: two }), inputs({ replicas: 2 }));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.include('4 replicas over the limit of 3 replicas');
    });
  });

  describe('per', () => {
    const scoped = {
      namespace: { ...NO_USAGE, gpus: 1 },
      team: { ...NO_USAGE, gpus: 3 },
      cluster: { ...NO_USAGE, gpus: 6 },
    };
    it('given per namespace, then usage of the namespace is counted and the namespace named', () => {
      const result = quota(per('namespace', { gpus: 5 }), change(), inputs({}, scoped));
      expect(result).to.deep.equal({ outcome: 'pass', message: 'namespace ml would stay within its quota: 5 GPUs of 5 GPUs' });
    });
    it('given per team, then usage of the team is counted and the team named', () => {
      const result = quota(per('team', { gpus: 5 }), change(), inputs({}, scoped));
      expect(result).to.deep.equal({ outcome: 'fail', message: 'team research would exceed its quota: 7 GPUs over the limit of 5 GPUs' });
    });
    it('given per cluster, then usage of the cluster is counted and the cluster named', () => {
      const result = quota(per('cluster', { gpus: 10 }), change(), inputs({}, scoped));
      expect(result).to.deep.equal({ outcome: 'pass', message: 'cluster gpu-east would stay within its quota: 10 GPUs of 10 GPUs' });
    });
    it('given per team, when the workload has no team label, then not_applicable', () => {
      const result = quota(per('team', { gpus: 1 }), change({ labels: { app: 'llm' } }), inputs({}, scoped));
      expect(result.outcome).to.equal('not_applicable');
      expect(result.message).to.include('team label');
    });
    it('given per namespace, when the change has no namespace, then not_applicable', () => {
      const result = quota(per('namespace', { gpus: 1 }), change({ namespace: undefined }), inputs({}, scoped));
      expect(result.outcome).to.equal('not_applicable');
      expect(result.message).to.include('namespace');
    });
    it('given per cluster, when the change has neither namespace nor team, then it still applies', () => {
      const result = quota(per('cluster', { gpus: 1 }), change({ namespace: undefined, labels: {} }), inputs({}, scoped));
      expect(result.outcome).to.equal('fail');
    });
  });

  for (const action of ['restart', 'drain'] as const) {
    it(`given a ${action}, which moves no resources, then not_applicable`, () => {
      const result = quota(per('cluster', { gpus: 0 }), change({ action, before: undefined, after: undefined }), inputs({ gpus: 9 }));
      expect(result.outcome).to.equal('not_applicable');
    });
  }
});
