import { expect } from 'chai';
import { NO_USAGE, type Change, type Footprint, type PolicyInputs } from '../../../domain/policy.js';
import { costCeiling } from '../../../domain/rules/cost-ceiling.js';

const footprint: Footprint = { replicas: 2, cpuMillicores: 4000, memoryBytes: 16 * 2 ** 30, gpus: 2, gpuSku: 'nvidia-a100-80gb' };

const change = (overrides: Partial<Change> = {}): Change => ({
  action: 'scale',
  at: '2026-03-10T12:00:00Z',
  actor: { id: 'alice', kind: 'user' },
  target: { kind: 'deployment', id: 'llm-serving' },
  clusterId: 'gpu-east',
  namespace: 'ml',
  labels: { team: 'ml' },
  before: footprint,
  after: { ...footprint, replicas: 4 },
  ...overrides,
});

/** Fleet cost without the target, and the target's cost before and after. */
const costs = (fleetHourlyUsd: number, targetHourlyUsdBefore: number, targetHourlyUsdAfter: number): PolicyInputs => ({
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: { fleetHourlyUsd, teamHourlyUsd: 0, targetHourlyUsdBefore, targetHourlyUsdAfter, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
  history: [],
});

const ceiling = { maxHourlyUsd: 400 };

describe('cost_ceiling rule', () => {
  it('given a fleet well under the ceiling, when a change raises cost, then pass with the fleet cost', () => {
    const result = costCeiling(ceiling, change(), costs(200, 50, 100));
    expect(result.outcome).to.equal('pass');
    expect(result.message).to.include('$300.00/h').and.include('$400.00/h');
  });

  it('given a change that takes the fleet over the ceiling, when it raises cost, then fail naming both numbers', () => {
    const result = costCeiling(ceiling, change(), costs(312.5, 50, 100));
    expect(result).to.deep.equal({
      outcome: 'fail',
      message: 'fleet would cost $412.50/h, over the ceiling of $400.00/h (this change raises it from $50.00/h to $100.00/h)',
    });
  });

  it('given a change that lands exactly on the ceiling, then pass', () => {
    expect(costCeiling(ceiling, change(), costs(300, 50, 100)).outcome).to.equal('pass');
  });

  it('given sums that land on the ceiling only up to floating-point rounding, then pass', () => {
    expect(costCeiling({ maxHourlyUsd: 0.3 }, change(), costs(0.1, 0, 0.2)).outcome).to.equal('pass');
  });

  it('given a change one cent over the ceiling, then fail', () => {
    expect(costCeiling(ceiling, change(), costs(300.01, 50, 100)).outcome).to.equal('fail');
  });

  it('given a new deployment that takes the fleet over the ceiling, then fail', () => {
    const result = costCeiling(ceiling, change({ action: 'create', before: undefined }), costs(390, 0, 20));
    expect(result.outcome).to.equal('fail');
    expect(result.message).to.include('$410.00/h');
  });

  it('given a fleet already over the ceiling, when a change lowers cost, then pass and say it does not raise cost', () => {
    const result = costCeiling(ceiling, change({ after: { ...footprint, replicas: 1 } }), costs(450, 100, 50));
    expect(result.outcome).to.equal('pass');
    expect(result.message).to.include('$500.00/h').and.include('over the ceiling').and.include('does not raise cost');
    expect(result.message).to.include('$100.00/h to $50.00/h');
  });

  it('given a fleet already over the ceiling, when a change keeps cost the same, then pass', () => {
    const result = costCeiling(ceiling, change({ action: 'update' }), costs(450, 100, 100));
    expect(result.outcome).to.equal('pass');
    expect(result.message).to.include('does not raise cost');
  });

  for (const action of ['restart', 'drain'] as const) {
    it(`given a ${action}, which moves no resources, then not_applicable`, () => {
      const result = costCeiling(ceiling, change({ action, before: undefined, after: undefined }), costs(450, 100, 100));
      expect(result.outcome).to.equal('not_applicable');
      expect(result.message).to.include(action);
    });
  }

  it('given large amounts, then money is printed with thousands separators and two decimals', () => {
    const result = costCeiling({ maxHourlyUsd: 1000 }, change(), costs(1200, 10, 34.5));
    expect(result.message).to.include('$1,234.50/h').and.include('$1,000.00/h');
  });
});
