import { expect } from 'chai';
import { NO_USAGE, type ActionKind, type Change, type Footprint, type PolicyInputs } from '../../../domain/policy.js';
import { sla } from '../../../domain/rules/sla.js';

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

const inputs = (health?: PolicyInputs['health']): PolicyInputs => ({
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: { fleetHourlyUsd: 0, teamHourlyUsd: 0, targetHourlyUsdBefore: 0, targetHourlyUsdAfter: 0, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
  history: [],
  ...(health ? { health } : {}),
});

const threeNines = { minUptime: 0.999, windowDays: 30 };
const restart = change('restart');

describe('sla rule', () => {
  describe('disruptive changes', () => {
    for (const [what, disruptive] of [
      ['a restart', restart],
      ['a drain', change('drain')],
      ['a rollback', change('rollback', replicas(3), replicas(3))],
      ['a scale down', change('scale', replicas(4), replicas(2))],
    ] as const) {
      it(`given the error budget spent, when ${what}, then fail`, () => {
        expect(sla(threeNines, disruptive, inputs({ uptime: { '30': 0.998 } })).outcome).to.equal('fail');
      });
    }
  });

  describe('changes that are not disruptive', () => {
    for (const [what, calm] of [
      ['a scale up', change('scale', replicas(2), replicas(4))],
      ['a scale to the same replicas', change('scale', replicas(2), replicas(2))],
      ['an update', change('update', replicas(2), replicas(2))],
      ['a create', change('create', undefined, replicas(2))],
      ['a delete', change('delete', replicas(2), undefined)],
      ['a reschedule', change('reschedule')],
    ] as const) {
      it(`given the error budget spent, when ${what}, then not_applicable`, () => {
        expect(sla(threeNines, calm, inputs({ uptime: { '30': 0.9 } })).outcome).to.equal('not_applicable');
      });
    }
  });

  it('given uptime under the minimum, when a restart, then fail saying how much of the budget is spent', () => {
    expect(sla(threeNines, restart, inputs({ uptime: { '30': 0.998 } }))).to.deep.equal({
      outcome: 'fail',
      message: 'error budget for 30 days spent (200% of it): uptime 99.80% against a minimum of 99.90%',
    });
  });

  it('given uptime exactly at the minimum, when a restart, then fail: the budget is spent', () => {
    const result = sla(threeNines, restart, inputs({ uptime: { '30': 0.999 } }));
    expect(result.outcome).to.equal('fail');
    expect(result.message).to.include('(100% of it)');
  });

  it('given uptime above the minimum, when a restart, then pass with the budget left', () => {
    expect(sla(threeNines, restart, inputs({ uptime: { '30': 0.9995 } }))).to.deep.equal({
      outcome: 'pass',
      message: '50% of the error budget for 30 days left: uptime 99.95% against a minimum of 99.90%',
    });
  });

  it('given perfect uptime, when a restart, then pass with all the budget left', () => {
    const result = sla(threeNines, restart, inputs({ uptime: { '30': 1 } }));
    expect(result.outcome).to.equal('pass');
    expect(result.message).to.include('100% of the error budget');
  });

  it('given uptime for the policy window only, then that window is the one judged', () => {
    const result = sla({ minUptime: 0.99, windowDays: 7 }, restart, inputs({ uptime: { '7': 0.995, '30': 0.9 } }));
    expect(result.outcome).to.equal('pass');
    expect(result.message).to.include('7 days').and.include('99.50%').and.include('99.00%');
  });

  it('given a one-day window, then the message says "1 day"', () => {
    const result = sla({ minUptime: 0.99, windowDays: 1 }, restart, inputs({ uptime: { '1': 0.98 } }));
    expect(result.message).to.include('for 1 day spent');
  });

  describe('a missing signal does not block', () => {
    it('given no health at all, when a restart, then pass saying there is no uptime data', () => {
      const result = sla(threeNines, restart, inputs());
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include('no uptime data for the last 30 days');
    });
    it('given health without uptime, when a restart, then pass', () => {
      expect(sla(threeNines, restart, inputs({ latencyP99Ms: 100 })).outcome).to.equal('pass');
    });
    it('given uptime for other windows only, when a restart, then pass saying there is no uptime data', () => {
      const result = sla(threeNines, restart, inputs({ uptime: { '7': 0.5 } }));
      expect(result.outcome).to.equal('pass');
      expect(result.message).to.include('no uptime data');
    });
  });
});
