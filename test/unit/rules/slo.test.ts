import { expect } from 'chai';
import { NO_USAGE, type ActionKind, type Change, type Footprint, type PolicyInputs } from '../../../domain/policy.js';
import { slo } from '../../../domain/rules/slo.js';

const replicas = (n: number): Footprint => ({ replicas: n, cpuMillicores: 1000 * n, memoryBytes: 2 ** 32 * n, gpus: 0 });

const change = (action: ActionKind, before?: Footprint, after?: Footprint): Change => ({
  action,
  at: '2026-03-10T12:00:00Z',
  actor: { id: 'alice', kind: 'user' },
  target: { kind: 'deployment', id: 'llm-serving' },
  clusterId: 'gpu-east',
  namespace: 'ml',
  labels: { team: 'ml' },
  ...(before ? { before } : {}),
  ...(after ? { after } : {}),
});

const inputs = (health?: PolicyInputs['health'], own?: PolicyInputs['slo']): PolicyInputs => ({
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: { fleetHourlyUsd: 0, teamHourlyUsd: 0, targetHourlyUsdBefore: 0, targetHourlyUsdAfter: 0, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
  history: [],
  ...(health ? { health } : {}),
  ...(own ? { slo: own } : {}),
});

const targets = { latencyP99Ms: 250, successRate: 0.999 };
const healthy = { latencyP99Ms: 180, successRate: 0.9995 };
const slow = { latencyP99Ms: 340, successRate: 0.9995 };
const scaleDown = change('scale', replicas(4), replicas(2));

describe('slo rule', () => {
  describe('which changes it judges', () => {
    for (const [what, judged] of [
      ['a scale down', scaleDown],
      ['an update', change('update', replicas(2), replicas(2))],
      ['a rollback', change('rollback', replicas(2), replicas(2))],
    ] as const) {
      it(`given a slow workload, when ${what}, then fail`, () => {
        expect(slo(targets, judged, inputs(slow)).outcome).to.equal('fail');
      });
    }
    for (const [what, other] of [
      ['a scale up', change('scale', replicas(2), replicas(4))],
      ['a scale to the same replicas', change('scale', replicas(2), replicas(2))],
      ['a create', change('create', undefined, replicas(2))],
      ['a restart', change('restart')],
      ['a drain', change('drain')],
      ['a delete', change('delete', replicas(2))],
      ['a reschedule', change('reschedule')],
    ] as const) {
      it(`given a slow workload, when ${what}, then not_applicable`, () => {
        expect(slo(targets, other, inputs(slow)).outcome).to.equal('not_applicable');
      });
    }
  });

  it('given latency over the target, when scaled down, then fail naming the observed and target latency', () => {
    expect(slo(targets, scaleDown, inputs(slow))).to.deep.equal({
      outcome: 'fail',
      message: 'outside the SLO: p99 latency 340 ms over the target of 250 ms',
    });
  });

  it('given the success rate under the target, when scaled down, then fail naming both rates', () => {
    expect(slo(targets, scaleDown, inputs({ latencyP99Ms: 100, successRate: 0.992 }))).to.deep.equal({
      outcome: 'fail',
      message: 'outside the SLO: success rate 99.20% under the target of 99.90%',
    });
  });

  it('given both targets missed, when scaled down, then fail naming both', () => {
    const result = slo(targets, scaleDown, inputs({ latencyP99Ms: 300, successRate: 0.99 }));
    expect(result.message).to.equal('outside the SLO: p99 latency 300 ms over the target of 250 ms, success rate 99.00% under the target of 99.90%');
  });

  it('given both targets met, when scaled down, then pass naming the observed values', () => {
    expect(slo(targets, scaleDown, inputs(healthy))).to.deep.equal({
      outcome: 'pass',
      message: 'within the SLO: p99 latency 180 ms within the target of 250 ms, success rate 99.95% meets the target of 99.90%',
    });
  });

  it('given observations exactly at the targets, when scaled down, then pass', () => {
    expect(slo(targets, scaleDown, inputs({ latencyP99Ms: 250, successRate: 0.999 })).outcome).to.equal('pass');
  });

  describe('whose targets', () => {
    it('given a policy without targets, then the workload’s own targets are held', () => {
      const result = slo({}, scaleDown, inputs({ latencyP99Ms: 120 }, { latencyP99Ms: 100 }));
      expect(result.outcome).to.equal('fail');
      expect(result.message).to.include('120 ms over the target of 100 ms');
    });
    it('given a policy with targets, then they are held instead of the workload’s own', () => {
      const result = slo({ latencyP99Ms: 150 }, scaleDown, inputs({ latencyP99Ms: 120, successRate: 0.5 }, { latencyP99Ms: 100, successRate: 0.99 }));
      expect(result).to.deep.equal({ outcome: 'pass', message: 'within the SLO: p99 latency 120 ms within the target of 150 ms' });
    });
    it('given a policy with only a success-rate target, then only the success rate is judged', () => {
      const result = slo({ successRate: 0.99 }, scaleDown, inputs({ latencyP99Ms: 10_000, successRate: 0.98 }));
      expect(result).to.deep.equal({ outcome: 'fail', message: 'outside the SLO: success rate 98.00% under the target of 99.00%' });
    });
    it('given neither the policy nor the workload sets targets, then not_applicable', () => {
      expect(slo({}, scaleDown, inputs(slow)).outcome).to.equal('not_applicable');
      expect(slo({}, scaleDown, inputs(slow, {})).outcome).to.equal('not_applicable');
    });
  });

  describe('a missing signal does not block', () => {
    it('given no health at all, when scaled down, then pass saying there is no observation', () => {
      const result = slo(targets, scaleDown, inputs());
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include('no latency or success-rate observation');
    });
    it('given only an observation the targets do not cover, when scaled down, then pass saying there is no observation', () => {
      const result = slo({ latencyP99Ms: 100 }, scaleDown, inputs({ successRate: 0.1 }));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include('no latency or success-rate observation');
    });
    it('given latency observed but no success rate, when latency is over, then fail on latency alone', () => {
      const result = slo(targets, scaleDown, inputs({ latencyP99Ms: 400 }));
      expect(result).to.deep.equal({ outcome: 'fail', message: 'outside the SLO: p99 latency 400 ms over the target of 250 ms' });
    });
  });
});
