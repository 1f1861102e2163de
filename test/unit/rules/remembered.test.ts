import { expect } from 'chai';
import fc from 'fast-check';
import type { Change, Footprint, ParametersOf, PolicyInputs, Usage } from '../../../domain/policy.js';
import { cores, count, gib, ms, percent, share, usd } from '../../../domain/rules/format.js';
import { instant } from '../../../domain/rules/instant.js';
import { quota } from '../../../domain/rules/quota.js';

// What rules remember between calls (a quota's prepared limits, printed numbers, parsed times) must never show:
// a rule judging with warm memories says exactly what it says with none.

const SKUS = ['nvidia-a100-80gb', 'nvidia-h100-80gb', 'nvidia-l4'] as const;

const footprint: fc.Arbitrary<Footprint> = fc
  .record({
    replicas: fc.integer({ min: 0, max: 64 }),
    cpuMillicores: fc.integer({ min: 0, max: 256_000 }),
    memoryBytes: fc.integer({ min: 0, max: 2 ** 42 }),
    gpus: fc.integer({ min: 0, max: 64 }),
    gpuSku: fc.option(fc.constantFrom(...SKUS), { nil: undefined }),
  })
  .map(({ gpuSku, ...rest }) => (gpuSku === undefined ? rest : { ...rest, gpuSku }));

const usage: fc.Arbitrary<Usage> = fc.record({
  replicas: fc.integer({ min: 0, max: 4000 }),
  cpuMillicores: fc.integer({ min: 0, max: 4_000_000 }),
  memoryBytes: fc.integer({ min: 0, max: 2 ** 45 }),
  gpus: fc.integer({ min: 0, max: 800 }),
  gpusBySku: fc.dictionary(fc.constantFrom(...SKUS), fc.integer({ min: 0, max: 400 })),
});

const quotaParameters: fc.Arbitrary<ParametersOf<'quota'>> = fc.record({
  per: fc.constantFrom('namespace', 'team', 'cluster'),
  limits: fc.record(
    {
      replicas: fc.integer({ min: 0, max: 4000 }),
      cpu: fc.constantFrom('500m', '64', '1000', '2500.5'),
      memory: fc.constantFrom('512Mi', '64Gi', '8Ti'),
      gpus: fc.integer({ min: 0, max: 800 }),
      gpusBySku: fc.dictionary(fc.constantFrom(...SKUS), fc.integer({ min: 0, max: 400 })),
    },
    { requiredKeys: [] },
  ),
});

const change: fc.Arbitrary<Change> = fc
  .record({ before: fc.option(footprint, { nil: undefined }), after: footprint, namespace: fc.option(fc.constantFrom('ml', 'vision'), { nil: undefined }) })
  .map(({ before, after, namespace }) => ({
    action: 'scale',
    at: '2026-03-10T12:00:00Z',
    actor: { id: 'alice', kind: 'user' },
    target: { kind: 'deployment', id: 'llm-serving' },
    clusterId: 'gpu-east',
    ...(namespace === undefined ? {} : { namespace }),
    labels: { team: 'ml' },
    ...(before === undefined ? {} : { before }),
    after,
  }));

const inputs: fc.Arbitrary<PolicyInputs> = fc.record({ namespace: usage, team: usage, cluster: usage }).map((used) => ({
  usage: used,
  cost: { fleetHourlyUsd: 0, teamHourlyUsd: 0, targetHourlyUsdBefore: 0, targetHourlyUsdAfter: 0, teamMonthToDateUsd: 0, hoursLeftInMonth: 0 },
  history: [],
}));

describe('what rules remember between calls', () => {
  it('given quotas judged many times with the same parameters, when each is judged by a fresh copy instead, then the results are the same', () => {
    fc.assert(
      fc.property(
        fc.array(quotaParameters, { minLength: 1, maxLength: 5 }),
        fc.array(fc.tuple(fc.nat(), change, inputs), { minLength: 1, maxLength: 20 }),
        (policies, judged) => {
          for (const [pick, judgedChange, given] of judged) {
            const parameters = policies[pick % policies.length]!;
            expect(quota(parameters, judgedChange, given)).to.deep.equal(quota(structuredClone(parameters), judgedChange, given));
          }
        },
      ),
    );
  });

  it('given a number printed once, when thousands of others have been printed since, then it prints the same again', () => {
    const printers = { usd, gib, cores, count, percent, share, ms };
    const figures = [0, 1, 1000, 1024.5, 0.9995, 12_345_678.9, 2 ** 40, -3.5];
    const first = Object.entries(printers).map(([name, print]) => [name, figures.map((n) => print(n))] as const);
    for (let n = 0; n < 10_001; n += 1) for (const print of Object.values(printers)) print(n + 0.25);
    for (const [name, printed] of first) expect(figures.map((n) => printers[name as keyof typeof printers](n)), name).to.deep.equal(printed);
    expect(usd(1234.5)).to.equal('$1,234.50');
    expect(gib(12.5 * 2 ** 30)).to.equal('12.5 GiB');
  });

  it('given ISO times and text that is none, when read by instant, then each reads as Date.parse reads it, however often', () => {
    const texts = ['2026-03-10T12:00:00Z', '2026-03-10T12:00:00.000Z', '2026-12-24T00:00:00+01:00', 'not a time', ''];
    for (let round = 0; round < 3; round += 1) {
      for (const text of texts) expect(Object.is(instant(text), Date.parse(text)), text).to.equal(true);
    }
    expect(Number.isNaN(instant('not a time'))).to.equal(true);
  });
});
