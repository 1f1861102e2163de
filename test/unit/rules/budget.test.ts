import { expect } from 'chai';
import { NO_USAGE, type Change, type Footprint, type PolicyInputs } from '../../../domain/policy.js';
import { budget } from '../../../domain/rules/budget.js';

const footprint: Footprint = { replicas: 2, cpuMillicores: 4000, memoryBytes: 16 * 2 ** 30, gpus: 2, gpuSku: 'nvidia-a100-80gb' };

const change = (overrides: Partial<Change> = {}): Change => ({
  action: 'scale',
  at: '2026-03-10T12:00:00Z',
  actor: { id: 'alice', kind: 'user' },
  target: { kind: 'deployment', id: 'llm-serving' },
  clusterId: 'gpu-east',
  namespace: 'ml',
  labels: { team: 'ml', app: 'llm' },
  before: footprint,
  after: { ...footprint, replicas: 4 },
  ...overrides,
});

const inputs = (cost: Partial<PolicyInputs['cost']> = {}): PolicyInputs => ({
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: {
    fleetHourlyUsd: 0,
    teamHourlyUsd: 10,
    targetHourlyUsdBefore: 5,
    targetHourlyUsdAfter: 10,
    teamMonthToDateUsd: 4000,
    hoursLeftInMonth: 100,
    ...cost,
  },
  history: [],
});

// Projected: 4,000 so far + (10 team + 10 target) × 100 hours = 6,000.
const projectedUsd = 6000;

describe('budget rule', () => {
  it('given a projection under the budget, when a change raises cost, then pass with the projection and the budget', () => {
    const result = budget({ monthlyUsd: 8000 }, change(), inputs());
    expect(result.outcome).to.equal('pass');
    expect(result.message).to.equal('team ml would spend $6,000.00 by the end of the month, within its budget of $8,000.00');
  });

  it('given a projection over the budget, when a change raises cost, then fail naming the team and the numbers', () => {
    const result = budget({ monthlyUsd: 5000 }, change(), inputs());
    expect(result.outcome).to.equal('fail');
    expect(result.message).to.include('team ml').and.include('$6,000.00').and.include('$5,000.00');
    expect(result.message).to.include('$5.00/h to $10.00/h');
  });

  it('given a projection exactly at the budget, then pass', () => {
    expect(budget({ monthlyUsd: projectedUsd }, change(), inputs()).outcome).to.equal('pass');
  });

  it('given a projection one cent over the budget, then fail', () => {
    expect(budget({ monthlyUsd: projectedUsd - 0.01 }, change(), inputs()).outcome).to.equal('fail');
  });

  it('given the month-to-date spend alone over the budget, when a change raises cost, then fail', () => {
    const result = budget({ monthlyUsd: 3000 }, change(), inputs({ hoursLeftInMonth: 0 }));
    expect(result.outcome).to.equal('fail');
    expect(result.message).to.include('$4,000.00');
  });

  it('given a team over its budget, when a change lowers cost, then pass and say it does not raise cost', () => {
    const result = budget({ monthlyUsd: 5000 }, change({ after: { ...footprint, replicas: 1 } }), inputs({ targetHourlyUsdAfter: 2.5 }));
    expect(result.outcome).to.equal('pass');
    expect(result.message).to.include('$5,250.00').and.include('over its budget of $5,000.00').and.include('does not raise cost');
  });

  it('given a team over its budget, when a change keeps cost the same, then pass', () => {
    const result = budget({ monthlyUsd: 5000 }, change({ action: 'update' }), inputs({ targetHourlyUsdBefore: 10 }));
    expect(result.outcome).to.equal('pass');
  });

  it('given a workload without a team label, then not_applicable', () => {
    const result = budget({ monthlyUsd: 5000 }, change({ labels: { app: 'llm' } }), inputs());
    expect(result.outcome).to.equal('not_applicable');
    expect(result.message).to.include('team');
  });

  it('given a restart, which moves no resources, then not_applicable', () => {
    const result = budget({ monthlyUsd: 5000 }, change({ action: 'restart', before: undefined, after: undefined }), inputs());
    expect(result.outcome).to.equal('not_applicable');
  });
});
