import { expect } from 'chai';
import fc from 'fast-check';
import { UnknownEvent } from '../../domain/decider.js';
import {
  ACTION_KINDS,
  NO_USAGE,
  policyBody,
  POLICY_MODES,
  POLICY_TYPES,
  type Change,
  type ParametersOf,
  type PastAction,
  type Policy,
  type PolicyInputs,
  type PolicyMode,
  type PolicyType,
  type Selector,
} from '../../domain/policy.js';
import {
  compilePolicies,
  evaluate,
  policyEvents,
  rateLimitReadingsFor,
  violations,
  type CompiledPolicySet,
  type Evaluation,
  type PolicyDecision,
} from '../../domain/policy-evaluation.js';

const gpuEast = '0b4c1d1e-1111-4a4a-8a8a-000000000001';
const gpuWest = '0b4c1d1e-1111-4a4a-8a8a-000000000002';
const NOW = '2026-03-10T12:00:00.000Z';
const ms = (offset: number) => new Date(Date.parse(NOW) + offset).toISOString();

const change = (overrides: Partial<Change> = {}): Change => ({
  action: 'scale',
  at: NOW,
  actor: { id: 'alice', kind: 'user' },
  target: { kind: 'deployment', id: 'llm-serving' },
  clusterId: gpuEast,
  namespace: 'ml',
  workloadType: 'inference',
  labels: { team: 'ml', app: 'llm' },
  before: { replicas: 2, cpuMillicores: 4000, memoryBytes: 8 * 2 ** 30, gpus: 2, gpuSku: 'nvidia-a100-80gb' },
  after: { replicas: 4, cpuMillicores: 8000, memoryBytes: 16 * 2 ** 30, gpus: 4, gpuSku: 'nvidia-a100-80gb' },
  ...overrides,
});

const inputs = (overrides: Partial<PolicyInputs> = {}): PolicyInputs => ({
  usage: { namespace: NO_USAGE, team: NO_USAGE, cluster: NO_USAGE },
  cost: { fleetHourlyUsd: 100, teamHourlyUsd: 10, targetHourlyUsdBefore: 5, targetHourlyUsdAfter: 10, teamMonthToDateUsd: 1000, hoursLeftInMonth: 100 },
  history: [{ at: ms(-60_000), action: 'update', targetId: 'llm-serving', actorId: 'alice' }],
  health: { uptime: { '30': 0.9 }, latencyP99Ms: 500, successRate: 0.9 },
  slo: { latencyP99Ms: 200, successRate: 0.99 },
  ...overrides,
});

/**
 * Parameters of each type that pass, and that fail, the default change scaled from 2 to 4 replicas with the
 * default inputs. sla and slo have nothing to say about a scale-up; they fail a scale-down (see `scaleDown`).
 */
const PARAMETERS: { [T in PolicyType]: { pass: ParametersOf<T>; fail: ParametersOf<T> } } = {
  cost_ceiling: { pass: { maxHourlyUsd: 1000 }, fail: { maxHourlyUsd: 50 } },
  quota: { pass: { per: 'namespace', limits: { replicas: 10 } }, fail: { per: 'namespace', limits: { replicas: 3 } } },
  sla: { pass: { minUptime: 0.5, windowDays: 30 }, fail: { minUptime: 0.99, windowDays: 30 } },
  slo: { pass: { latencyP99Ms: 1000 }, fail: { latencyP99Ms: 100 } },
  rate_limit: { pass: { maxActions: 5, windowSeconds: 3600, per: 'target' }, fail: { maxActions: 1, windowSeconds: 3600, per: 'target' } },
  change_freeze: {
    pass: { windows: [{ start: '2026-12-24T00:00:00Z', end: '2026-12-27T00:00:00Z' }] },
    fail: { windows: [{ start: '2026-03-10T00:00:00Z', end: '2026-03-11T00:00:00Z' }] },
  },
  budget: { pass: { monthlyUsd: 100_000 }, fail: { monthlyUsd: 1000 } },
};
const scaleDown: Partial<Change> = { before: change().after!, after: change().before! };

let nextId = 0;
const newId = () => `0b4c1d1e-2222-4a4a-8a8a-${String(++nextId).padStart(12, '0')}`;

interface PolicyOptions {
  id?: string;
  type?: PolicyType;
  mode?: PolicyMode;
  priority?: number;
  selector?: Selector;
  enabled?: boolean;
  validFrom?: string;
  validUntil?: string;
  /** Which of the type's parameters to use. */
  says?: 'pass' | 'fail';
}

const policy = ({ id = newId(), type = 'cost_ceiling', mode = 'enforce', says = 'pass', ...rest }: PolicyOptions = {}): Policy =>
  ({
    id,
    name: `${type} ${says} ${id.slice(-4)}`,
    mode,
    priority: 100,
    selector: {},
    enabled: true,
    type,
    parameters: PARAMETERS[type][says],
    ...rest,
  }) as Policy;

const judge = (policies: Policy[], judged: Change = change(), given: PolicyInputs = inputs()) =>
  evaluate(compilePolicies(policies, 1), judged, given);
const ids = (evaluation: Evaluation) => evaluation.results.map((result) => result.policyId);

describe('Policy evaluation', () => {
  describe('which policies run', () => {
    it('given one policy of each of the seven types, then each runs and says what its rule says', () => {
      const policies = POLICY_TYPES.map((type) => policy({ type, says: 'fail', mode: 'audit' }));
      const evaluation = judge(policies);
      expect(evaluation.results.map((r) => [r.type, r.outcome])).to.have.deep.members([
        ['cost_ceiling', 'fail'],
        ['quota', 'fail'],
        ['sla', 'not_applicable'],
        ['slo', 'not_applicable'],
        ['rate_limit', 'fail'],
        ['change_freeze', 'fail'],
        ['budget', 'fail'],
      ]);
      const down = judge(policies, change(scaleDown));
      expect(down.results.filter((r) => r.type === 'sla' || r.type === 'slo').map((r) => r.outcome)).to.deep.equal(['fail', 'fail']);
    });

    it('given a disabled policy, then it does not run', () => {
      const on = policy({ says: 'pass' });
      const off = policy({ says: 'fail', enabled: false });
      const evaluation = judge([off, on]);
      expect(ids(evaluation)).to.deep.equal([on.id]);
      expect(evaluation.verdict).to.equal('allow');
      expect(compilePolicies([off, on], 1).policies.map((p) => p.policy.id)).to.deep.equal([on.id]);
    });

    it('given no policies, then allow with no results', () => {
      expect(judge([])).to.deep.equal({ verdict: 'allow', results: [] });
    });

    describe('validity window', () => {
      for (const [window, applies] of [
        [{ validFrom: NOW }, true],
        [{ validFrom: ms(1) }, false],
        [{ validFrom: ms(-1) }, true],
        [{ validUntil: NOW }, false],
        [{ validUntil: ms(1) }, true],
        [{ validUntil: ms(-1) }, false],
        [{ validFrom: NOW, validUntil: ms(1) }, true],
        [{ validFrom: ms(-1000), validUntil: NOW }, false],
        [{ validFrom: '2026-03-10T13:00:00+01:00', validUntil: '2026-03-10T13:00:00.001+01:00' }, true],
      ] as const) {
        it(`given ${JSON.stringify(window)}, then the policy ${applies ? 'applies' : 'does not apply'} at ${NOW}`, () => {
          const evaluation = judge([policy({ says: 'fail', ...window })]);
          expect(evaluation.results).to.have.length(applies ? 1 : 0);
          expect(evaluation.verdict).to.equal(applies ? 'deny' : 'allow');
        });
      }
    });

    describe('selector', () => {
      const cases: [string, Selector, Partial<Change>, boolean][] = [
        ['an empty selector', {}, {}, true],
        ['a cluster that is listed', { clusters: [gpuWest, gpuEast] }, {}, true],
        ['a cluster that is not listed', { clusters: [gpuWest] }, {}, false],
        ['a namespace that is listed', { namespaces: ['vision', 'ml'] }, {}, true],
        ['a namespace that is not listed', { namespaces: ['vision'] }, {}, false],
        ['a change without a namespace, namespaces listed', { namespaces: ['ml'] }, { namespace: undefined }, false],
        ['a change without a namespace, no namespaces listed', { clusters: [gpuEast] }, { namespace: undefined }, true],
        ['every listed label present with its value', { labels: { team: 'ml', app: 'llm' } }, {}, true],
        ['one label of two with another value', { labels: { team: 'ml', app: 'chat' } }, {}, false],
        ['a label the workload lacks', { labels: { tier: 'gold' } }, {}, false],
        ['a label with the same value under another key', { labels: { owner: 'ml' } }, {}, false],
        ['a workload type that is listed', { workloadTypes: ['training', 'inference'] }, {}, true],
        ['a workload type that is not listed', { workloadTypes: ['training'] }, {}, false],
        ['a change without a workload type, types listed', { workloadTypes: ['inference'] }, { workloadType: undefined }, false],
        ['an actor kind that is listed', { actors: { kinds: ['user'] } }, {}, true],
        ['an actor kind that is not listed', { actors: { kinds: ['service', 'system'] } }, {}, false],
        ['an actor id that is listed', { actors: { ids: ['bob', 'alice'] } }, {}, true],
        ['an actor id that is not listed', { actors: { ids: ['bob'] } }, {}, false],
        ['a listed kind but an unlisted id', { actors: { kinds: ['user'], ids: ['bob'] } }, {}, false],
        ['a listed id but an unlisted kind', { actors: { kinds: ['system'], ids: ['alice'] } }, {}, false],
        ['a listed kind and a listed id', { actors: { kinds: ['user'], ids: ['alice'] } }, {}, true],
        ['an action that is listed', { actions: ['create', 'scale'] }, {}, true],
        ['an action that is not listed', { actions: ['delete', 'restart'] }, {}, false],
        ['every dimension matching', { clusters: [gpuEast], namespaces: ['ml'], labels: { team: 'ml' }, workloadTypes: ['inference'], actors: { kinds: ['user'] }, actions: ['scale'] }, {}, true],
        ['every dimension matching but one', { clusters: [gpuEast], namespaces: ['ml'], labels: { team: 'ml' }, workloadTypes: ['batch'], actors: { kinds: ['user'] }, actions: ['scale'] }, {}, false],
      ];
      for (const [what, selector, overrides, applies] of cases) {
        it(`given ${what}, then the policy ${applies ? 'applies' : 'does not apply'}`, () => {
          const p = policy({ selector });
          expect(ids(judge([p], change(overrides)))).to.deep.equal(applies ? [p.id] : []);
        });
      }
    });
  });

  describe('order', () => {
    const byPriority = [
      policy({ id: 'p-b', priority: 300 }),
      policy({ id: 'p-d', priority: 300 }),
      policy({ id: 'p-a', priority: 100 }),
      policy({ id: 'p-c', priority: 100 }),
      policy({ id: 'p-e', priority: 100 }),
      policy({ id: 'p-0', priority: 0 }),
    ];
    const expected = ['p-b', 'p-d', 'p-a', 'p-c', 'p-e', 'p-0'];

    it('given policies in any order, then results are listed by priority descending, then id ascending', () => {
      for (const order of [byPriority, [...byPriority].reverse(), [4, 0, 5, 2, 1, 3].map((i) => byPriority[i]!)]) {
        const evaluation = judge(order);
        expect(ids(evaluation)).to.deep.equal(expected);
        expect(evaluation.results.map((r) => r.priority)).to.deep.equal([300, 300, 100, 100, 100, 0]);
      }
    });

    it('given any order of any policies, then results are sorted by priority descending, then id ascending', () => {
      fc.assert(
        fc.property(
          fc.uniqueArray(fc.record({ id: fc.stringMatching(/^[0-9a-f]{1,4}$/), priority: fc.constantFrom(0, 1, 100, 100, 10_000) }), {
            selector: (p) => p.id,
            maxLength: 20,
          }),
          (specs) => {
            const results = judge(specs.map((spec) => policy(spec))).results;
            for (let i = 1; i < results.length; i++) {
              const [a, b] = [results[i - 1]!, results[i]!];
              expect(a.priority > b.priority || (a.priority === b.priority && a.policyId < b.policyId), `${a.policyId} before ${b.policyId}`).to.equal(true);
            }
            expect(results).to.have.length(specs.length);
          },
        ),
      );
    });
  });

  describe('verdict', () => {
    it('given an enforce policy that fails, then deny, and violations name it', () => {
      const p = policy({ type: 'budget', says: 'fail' });
      const evaluation = judge([p]);
      expect(evaluation.verdict).to.equal('deny');
      expect(evaluation.results).to.deep.equal([
        {
          policyId: p.id,
          name: p.name,
          type: 'budget',
          mode: 'enforce',
          priority: 100,
          outcome: 'fail',
          message: 'team ml would spend $3,000.00 by the end of the month, over its budget of $1,000.00 (this change raises cost from $5.00/h to $10.00/h)',
        },
      ]);
      expect(violations(evaluation)).to.deep.equal(evaluation.results);
    });

    for (const mode of ['dry_run', 'audit'] as const) {
      it(`given a ${mode} policy that fails, then allow, with the failure recorded in ${mode} mode`, () => {
        const evaluation = judge([policy({ type: 'quota', says: 'fail', mode })]);
        expect(evaluation.verdict).to.equal('allow');
        expect(evaluation.results).to.have.length(1);
        expect(evaluation.results[0]).to.include({ type: 'quota', mode, outcome: 'fail' });
        expect(violations(evaluation)).to.deep.equal([]);
      });
    }

    it('given one enforce failure among many passes, whatever its priority, then deny', () => {
      for (const priority of [0, 100, 10_000]) {
        const passes = POLICY_TYPES.flatMap((type) => POLICY_MODES.map((mode) => policy({ type, mode, says: 'pass', priority: 100 })));
        const failing = policy({ type: 'rate_limit', says: 'fail', priority });
        const evaluation = judge([...passes, failing]);
        expect(evaluation.verdict).to.equal('deny');
        expect(evaluation.results.filter((r) => r.outcome === 'fail').map((r) => r.policyId)).to.deep.equal([failing.id]);
        expect(violations(evaluation).map((r) => r.policyId)).to.deep.equal([failing.id]);
      }
    });

    it('given only passes, not_applicables and non-enforce failures, then allow', () => {
      const evaluation = judge([
        policy({ type: 'sla', says: 'fail' }),
        policy({ type: 'slo', says: 'fail' }),
        policy({ type: 'cost_ceiling', says: 'pass' }),
        policy({ type: 'change_freeze', says: 'fail', mode: 'dry_run' }),
        policy({ type: 'budget', says: 'fail', mode: 'audit' }),
      ]);
      expect(evaluation.verdict).to.equal('allow');
      expect(evaluation.results.map((r) => r.outcome)).to.have.members(['not_applicable', 'not_applicable', 'pass', 'fail', 'fail']);
    });

    it('violations returns the enforce failures only, in evaluation order', () => {
      const failA = policy({ id: 'a', type: 'budget', says: 'fail', priority: 50 });
      const failB = policy({ id: 'b', type: 'quota', says: 'fail', priority: 500 });
      const evaluation = judge([
        failA,
        policy({ type: 'cost_ceiling', says: 'pass' }),
        policy({ type: 'sla', says: 'fail' }),
        policy({ type: 'quota', says: 'fail', mode: 'dry_run' }),
        policy({ type: 'budget', says: 'fail', mode: 'audit' }),
        failB,
      ]);
      expect(evaluation.results).to.have.length(6);
      expect(violations(evaluation).map((r) => r.policyId)).to.deep.equal([failB.id, failA.id]);
      expect(violations({ verdict: 'allow', results: [] })).to.deep.equal([]);
    });
  });

  describe('break glass', () => {
    const freeze = policy({ type: 'change_freeze', says: 'fail' });

    it('given a change freeze, when the change declares an emergency, then pass with breakGlass: true', () => {
      const evaluation = judge([freeze, policy({ type: 'cost_ceiling' })], change({ emergency: { justification: 'INC-42: serving is down' } }));
      expect(evaluation.verdict).to.equal('allow');
      const [frozen] = evaluation.results.filter((r) => r.type === 'change_freeze');
      expect(frozen).to.include({ outcome: 'pass', breakGlass: true });
      expect(frozen!.message).to.include('INC-42: serving is down');
      const [other] = evaluation.results.filter((r) => r.type !== 'change_freeze');
      expect(other).not.to.have.property('breakGlass');
    });

    it('given a change freeze, when the change declares no emergency, then deny without breakGlass', () => {
      const evaluation = judge([freeze]);
      expect(evaluation.verdict).to.equal('deny');
      expect(evaluation.results[0]).to.include({ outcome: 'fail' }).and.not.to.have.property('breakGlass');
    });

    it('given an emergency outside any freeze window, then pass without breakGlass', () => {
      const evaluation = judge([policy({ type: 'change_freeze', says: 'pass' })], change({ emergency: { justification: 'just in case' } }));
      expect(evaluation.results[0]).to.include({ outcome: 'pass' }).and.not.to.have.property('breakGlass');
    });

    it('given an emergency, then the other enforce failures still deny', () => {
      const evaluation = judge([freeze, policy({ type: 'budget', says: 'fail' })], change({ emergency: { justification: 'INC-42' } }));
      expect(evaluation.verdict).to.equal('deny');
      expect(violations(evaluation).map((r) => r.type)).to.deep.equal(['budget']);
    });
  });

  describe('determinism and the candidate cache', () => {
    const pool = [
      ...POLICY_TYPES.flatMap((type) =>
        (['pass', 'fail'] as const).flatMap((says) => POLICY_MODES.map((mode, i) => policy({ type, says, mode, priority: [0, 100, 200][i]! }))),
      ),
      policy({ selector: { namespaces: ['ml'] }, says: 'fail' }),
      policy({ selector: { namespaces: ['vision'], actions: ['scale', 'create'] }, type: 'quota', says: 'fail' }),
      policy({ selector: { actions: ['delete'] }, type: 'change_freeze', says: 'fail' }),
      policy({ selector: { actors: { kinds: ['service'] } }, type: 'budget', says: 'fail', priority: 7 }),
      policy({ selector: { labels: { team: 'vision' } }, type: 'rate_limit', says: 'fail', mode: 'dry_run' }),
      policy({ selector: { clusters: [gpuWest], workloadTypes: ['training'] }, type: 'cost_ceiling', says: 'fail' }),
      policy({ validFrom: '2026-03-11T00:00:00Z', type: 'quota', says: 'fail' }),
      policy({ validUntil: '2026-03-10T00:00:00Z', type: 'budget', says: 'fail' }),
      policy({ enabled: false, type: 'sla', says: 'fail' }),
    ];

    const changeArb: fc.Arbitrary<Change> = fc
      .record({
        action: fc.constantFrom(...ACTION_KINDS),
        namespace: fc.constantFrom('ml', 'vision', undefined),
        clusterId: fc.constantFrom(gpuEast, gpuWest),
        workloadType: fc.constantFrom('inference', 'training', 'batch', undefined),
        actor: fc.record({ id: fc.constantFrom('alice', 'bob', 'autoscaler'), kind: fc.constantFrom('user', 'service', 'system') }),
        team: fc.constantFrom('ml', 'vision', undefined),
        day: fc.constantFrom('2026-03-09', '2026-03-10', '2026-03-11', '2026-12-25'),
        direction: fc.constantFrom('up', 'down', 'none'),
        emergency: fc.boolean(),
      })
      .map(({ team, day, direction, emergency, namespace, workloadType, ...rest }) => {
        const base = change();
        return {
          ...rest,
          at: `${day}T12:00:00Z`,
          target: base.target,
          ...(namespace === undefined ? {} : { namespace }),
          ...(workloadType === undefined ? {} : { workloadType }),
          labels: team === undefined ? { app: 'llm' } : { team, app: 'llm' },
          ...(direction === 'up' ? { before: base.before, after: base.after } : direction === 'down' ? scaleDown : {}),
          ...(emergency ? { emergency: { justification: 'INC-1' } } : {}),
        } satisfies Change;
      });

    it('given the same set, change and inputs, when evaluated twice, then the evaluations are deep-equal', () => {
      const set = compilePolicies(pool, 1);
      fc.assert(
        fc.property(changeArb, (judged) => {
          expect(evaluate(set, judged, inputs())).to.deep.equal(evaluate(set, judged, inputs()));
        }),
      );
    });

    it('given a set compiled from its policies in any order, then every change gets the same evaluation', () => {
      fc.assert(
        fc.property(
          fc.shuffledSubarray(pool, { minLength: pool.length, maxLength: pool.length }),
          fc.array(changeArb, { minLength: 1, maxLength: 10 }),
          (shuffled, changes) => {
            const ordered = compilePolicies(pool, 1);
            const reordered = compilePolicies(shuffled, 1);
            for (const judged of changes) expect(evaluate(reordered, judged, inputs())).to.deep.equal(evaluate(ordered, judged, inputs()));
          },
        ),
      );
    });

    it('given a warm candidate cache, when a sequence of different changes is judged, then each gets what a fresh compile gives', () => {
      fc.assert(
        fc.property(fc.array(changeArb, { minLength: 1, maxLength: 40 }), (changes) => {
          const warm = compilePolicies(pool, 1);
          for (const judged of changes) {
            expect(evaluate(warm, judged, inputs())).to.deep.equal(evaluate(compilePolicies(pool, 1), judged, inputs()));
          }
          const pairs = new Set(changes.map((c) => `${c.action}/${c.namespace ?? '-'}`));
          expect(warm.candidates.size).to.equal(pairs.size);
        }),
      );
    });

    it('given a change without a namespace after one with, for the same action, then namespace-bound policies stay out', () => {
      const scoped = policy({ selector: { namespaces: ['ml'] }, says: 'fail' });
      const open = policy({ says: 'pass' });
      const set = compilePolicies([scoped, open], 1);
      expect(ids(evaluate(set, change(), inputs()))).to.have.members([scoped.id, open.id]);
      expect(ids(evaluate(set, change({ namespace: undefined }), inputs()))).to.deep.equal([open.id]);
      expect(ids(evaluate(set, change(), inputs()))).to.have.members([scoped.id, open.id]);
    });

    it('given a set, then the policies that run are exactly those enabled, valid and selected, in order', () => {
      const selects = (p: Policy, c: Change) => {
        const s = p.selector;
        const at = Date.parse(c.at);
        return (
          p.enabled &&
          (!p.validFrom || at >= Date.parse(p.validFrom)) &&
          (!p.validUntil || at < Date.parse(p.validUntil)) &&
          (!s.clusters || s.clusters.includes(c.clusterId)) &&
          (!s.namespaces || (c.namespace !== undefined && s.namespaces.includes(c.namespace))) &&
          (!s.labels || Object.entries(s.labels).every(([k, v]) => c.labels[k] === v)) &&
          (!s.workloadTypes || (c.workloadType !== undefined && s.workloadTypes.includes(c.workloadType))) &&
          (!s.actors?.kinds || s.actors.kinds.includes(c.actor.kind)) &&
          (!s.actors?.ids || s.actors.ids.includes(c.actor.id)) &&
          (!s.actions || s.actions.includes(c.action))
        );
      };
      const set = compilePolicies(pool, 1);
      fc.assert(
        fc.property(changeArb, (judged) => {
          const evaluation = evaluate(set, judged, inputs());
          const expected = pool
            .filter((p) => selects(p, judged))
            .sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1))
            .map((p) => p.id);
          expect(ids(evaluation)).to.deep.equal(expected);
          const denied = evaluation.results.some((r) => r.mode === 'enforce' && r.outcome === 'fail');
          expect(evaluation.verdict).to.equal(denied ? 'deny' : 'allow');
        }),
      );
    });
  });

  describe('the recorded decision', () => {
    const decisionOf = (judged: Change, given: PolicyInputs, evaluation: Evaluation): unknown =>
      JSON.parse(
        JSON.stringify({
          command: 'ScaleDeployment',
          verdict: evaluation.verdict,
          policySet: { stream: 'policyset-global', revision: 7 },
          evaluations: [{ change: judged, inputs: given, verdict: evaluation.verdict, results: evaluation.results }],
          ...(judged.emergency ? { breakGlass: { justification: judged.emergency.justification, actorId: judged.actor.id } } : {}),
        }),
      );

    const policies = [...POLICY_TYPES.map((type) => policy({ type, says: 'fail', mode: 'dry_run' })), policy({ type: 'budget', says: 'fail' })];
    const CURRENT = policyEvents.version('PolicyEvaluated');
    /** Inputs as the engine records them: what the rate limits read of the default history, not the history. */
    const recordedInputs = (set: CompiledPolicySet, judged: Change): PolicyInputs =>
      inputs({ history: undefined, rateLimits: rateLimitReadingsFor(set, judged, inputs().history!) });

    it('accepts a real decision, deny or break-glass allow, as it reads back from JSON', () => {
      for (const judged of [change(), change({ namespace: undefined, emergency: { justification: 'INC-7' } })]) {
        const set = compilePolicies(judged.emergency ? policies.slice(0, -1) : policies, 1);
        const given = recordedInputs(set, judged);
        const data = decisionOf(judged, given, evaluate(set, judged, given));
        const parsed = policyEvents.parse('PolicyEvaluated', CURRENT, data);
        expect(parsed).to.deep.equal({ type: 'PolicyEvaluated', data });
        expect(parsed.data.verdict).to.equal(judged.emergency ? 'allow' : 'deny');
        expect(parsed.data.evaluations[0]!.inputs).to.have.property('rateLimits').and.not.to.have.property('history');
      }
    });

    it('given a version 1 decision, which recorded the admitted changes, when read, then it is as recorded and replays to its results', () => {
      const set = compilePolicies(policies, 1);
      const data = decisionOf(change(), inputs(), evaluate(set, change(), inputs())) as PolicyDecision;
      const parsed = policyEvents.parse('PolicyEvaluated', 1, data);
      expect(parsed.data).to.deep.equal(data);
      const [judged] = parsed.data.evaluations;
      const replayed = evaluate(set, judged!.change as unknown as Change, judged!.inputs as unknown as PolicyInputs);
      expect(replayed.results).to.deep.equal(judged!.results);
      expect(replayed.results.find((result) => result.type === 'rate_limit')!.message).to.match(/^1 change to deployment llm-serving in the last 3600 s/);
    });

    it('refuses a decision with a bad verdict, at the top or in an evaluation, a bad outcome, or inputs without readings', () => {
      const set = compilePolicies(policies, 1);
      const data = decisionOf(change(), recordedInputs(set, change()), evaluate(set, change(), recordedInputs(set, change()))) as PolicyDecision;
      const readings = (rateLimits: unknown) => ({ ...data, evaluations: [{ ...data.evaluations[0]!, inputs: { usage: {}, cost: {}, rateLimits } }] });
      const bad: unknown[] = [
        { ...data, verdict: 'maybe' },
        { ...data, evaluations: [{ ...data.evaluations[0]!, verdict: 'perhaps' }] },
        { ...data, evaluations: [{ ...data.evaluations[0]!, results: [{ ...data.evaluations[0]!.results[0]!, outcome: 'sort_of' }] }] },
        { ...data, policySet: { stream: 'policyset-global', revision: 1.5 } },
        { ...data, evaluations: [{ ...data.evaluations[0]!, inputs: { usage: {}, cost: {} } }] },
        readings({ windows: [{ per: 'team', windowSeconds: 60, count: 1 }] }),
        readings({ windows: [{ per: 'target', windowSeconds: 60, count: -1 }] }),
        readings({ windows: [], lastScale: { at: 'yesterday', direction: 'up' } }),
      ];
      for (const decision of bad) expect(() => policyEvents.parse('PolicyEvaluated', CURRENT, decision)).to.throw(UnknownEvent, /does not match its schema/);
      expect(() => policyEvents.parse('PolicyEvaluated', 1, bad[4])).to.throw(UnknownEvent, /does not match its schema/);
      expect(() => policyEvents.parse('PolicyEvaluated', CURRENT + 1, data)).to.throw(UnknownEvent);
    });
  });

  describe('selectors as a request states them', () => {
    it('refuses an empty list, which would select nothing, naming the field', () => {
      const result = policyBody.safeParse({
        name: 'empty',
        type: 'quota',
        mode: 'enforce',
        selector: { namespaces: [], actors: { kinds: [] } },
        parameters: { limits: { replicas: 1 } },
      });
      expect(result.success).to.equal(false);
      expect(result.error!.issues.map((issue) => issue.path.join('.'))).to.include.members(['selector.namespaces', 'selector.actors.kinds']);
    });
  });
});

describe('what a decision reads of the admitted changes', () => {
  const rateLimit = (parameters: ParametersOf<'rate_limit'>, overrides: PolicyOptions = {}): Policy =>
    ({ ...policy({ type: 'rate_limit', ...overrides }), parameters }) as Policy;
  const scaledUp = (offset: number, overrides: Partial<PastAction> = {}): PastAction => ({
    at: ms(offset),
    action: 'scale',
    targetId: 'llm-serving',
    actorId: 'alice',
    direction: 'up',
    ...overrides,
  });

  it('given no rate limit that applies, then nothing is read, however long the history', () => {
    const elsewhere = rateLimit({ maxActions: 5, windowSeconds: 600, per: 'target' }, { selector: { namespaces: ['vision'] } });
    const off = rateLimit({ maxActions: 5, windowSeconds: 600, per: 'target' }, { enabled: false });
    const set = compilePolicies([policy(), policy({ type: 'quota' }), elsewhere, off], 1);
    expect(rateLimitReadingsFor(set, change(), [scaledUp(-1000), scaledUp(-2000)])).to.deep.equal({ windows: [] });
  });

  it('given the rate limits that apply, then one count per scope and window, and the last scale for anti-flap', () => {
    const set = compilePolicies(
      [
        rateLimit({ maxActions: 5, windowSeconds: 600, per: 'target' }),
        rateLimit({ maxActions: 2, windowSeconds: 600, per: 'target', stabilizationSeconds: 900 }),
        rateLimit({ maxActions: 9, windowSeconds: 60, per: 'actor' }),
      ],
      1,
    );
    const history = [scaledUp(-30_000), scaledUp(-300_000, { direction: 'down' }), scaledUp(-700_000), scaledUp(-20_000, { targetId: 'other' })];
    const readings = rateLimitReadingsFor(set, change(scaleDown), history);
    expect(readings.windows.map(({ per, windowSeconds, count }) => ({ per, windowSeconds, count }))).to.have.deep.members([
      { per: 'target', windowSeconds: 600, count: 2 },
      { per: 'actor', windowSeconds: 60, count: 2 },
    ]);
    expect(readings.lastScale).to.deep.equal({ at: ms(-30_000), direction: 'up' });
  });

  it('given any history, then a decision judged from its readings matches one judged from the history itself (a version 1 decision)', () => {
    const set = compilePolicies(
      [
        rateLimit({ maxActions: 2, windowSeconds: 600, per: 'target', stabilizationSeconds: 300 }),
        rateLimit({ maxActions: 3, windowSeconds: 3600, per: 'actor' }, { mode: 'dry_run' }),
        rateLimit({ maxActions: 1, windowSeconds: 60, per: 'target_and_actor', stabilizationSeconds: 30 }, { mode: 'audit' }),
        policy({ type: 'quota' }),
      ],
      1,
    );
    const entry = fc.record({
      offset: fc.integer({ min: -4000, max: 100 }).map((seconds) => seconds * 1000),
      targetId: fc.constantFrom('llm-serving', 'other'),
      actorId: fc.constantFrom('alice', 'bob'),
      direction: fc.constantFrom('up' as const, 'down' as const, undefined),
    });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 30 }), fc.constantFrom(change(), change(scaleDown), change({ action: 'restart' })), (entries, judged) => {
        const history = entries.map(({ offset, direction, ...ids }) =>
          direction ? scaledUp(offset, { ...ids, direction }) : { at: ms(offset), action: 'update' as const, ...ids },
        );
        const fromHistory = evaluate(set, judged, inputs({ history }));
        const fromReadings = evaluate(set, judged, inputs({ history: undefined, rateLimits: rateLimitReadingsFor(set, judged, history) }));
        expect(fromReadings).to.deep.equal(fromHistory);
      }),
    );
  });
});
