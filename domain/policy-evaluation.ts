// Judging a change against the policy set: which policies apply, what each rule says, and the verdict.
// Deterministic: the same policies, change and inputs always give the same verdict, which is what replay relies on.
import { z } from 'zod';
import { defineEvents, type EventOf } from './decider.js';
import type { Change, ParametersOf, Policy, PolicyInputs, PolicyMode, PolicyType, RuleResult, Rule } from './policy.js';
import { RULES } from './rules/index.js';

export interface PolicyResult {
  policyId: string;
  name: string;
  type: PolicyType;
  mode: PolicyMode;
  priority: number;
  outcome: RuleResult['outcome'];
  message: string;
  breakGlass?: boolean;
}

export interface Evaluation {
  verdict: 'allow' | 'deny';
  /** Every policy that applied, in evaluation order. */
  results: PolicyResult[];
}

/** A policy with its selector turned into sets and its validity into numbers, built once per policy-set revision. */
interface CompiledPolicy {
  policy: Policy;
  rule: Rule<PolicyType>;
  validFrom: number;
  validUntil: number;
  clusters?: ReadonlySet<string>;
  namespaces?: ReadonlySet<string>;
  labels?: readonly [string, string][];
  workloadTypes?: ReadonlySet<string>;
  actorKinds?: ReadonlySet<string>;
  actorIds?: ReadonlySet<string>;
  actions?: ReadonlySet<string>;
}

export interface CompiledPolicySet {
  revision: number;
  policies: readonly CompiledPolicy[];
  /**
   * The policies whose action and namespace selectors admit an (action, namespace) pair, in evaluation order,
   * filled in as pairs are first met: most of a large set is aimed elsewhere and is never looked at again.
   */
  candidates: Map<string, readonly CompiledPolicy[]>;
  /**
   * The past actions a decision needs, and so records: those of the last `horizonMs` (the longest rate-limit window
   * or stabilization of any rate-limit policy; 0 when there is none), of the target, and of the actor only when some
   * policy counts per actor. A decision's recorded inputs stay as small as the rules allow, whatever the history.
   */
  history: { horizonMs: number; byActor: boolean };
}

const set = (values: readonly string[] | undefined) => (values ? new Set(values) : undefined);

/** Enabled policies in evaluation order: priority descending, then id, so ties never depend on insertion. */
export function compilePolicies(policies: Iterable<Policy>, revision: number): CompiledPolicySet {
  const compiled = [...policies]
    .filter((policy) => policy.enabled)
    .sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map(
      (policy): CompiledPolicy => ({
        policy,
        rule: RULES[policy.type] as Rule<PolicyType>,
        validFrom: policy.validFrom ? Date.parse(policy.validFrom) : -Infinity,
        validUntil: policy.validUntil ? Date.parse(policy.validUntil) : Infinity,
        clusters: set(policy.selector.clusters),
        namespaces: set(policy.selector.namespaces),
        labels: policy.selector.labels ? Object.entries(policy.selector.labels) : undefined,
        workloadTypes: set(policy.selector.workloadTypes),
        actorKinds: set(policy.selector.actors?.kinds),
        actorIds: set(policy.selector.actors?.ids),
        actions: set(policy.selector.actions),
      }),
    );
  return { revision, policies: compiled, candidates: new Map(), history: historyScope(compiled) };
}

function historyScope(compiled: readonly CompiledPolicy[]): CompiledPolicySet['history'] {
  let horizonMs = 0;
  let byActor = false;
  for (const { policy } of compiled) {
    if (policy.type !== 'rate_limit') continue;
    const { windowSeconds, stabilizationSeconds, per } = policy.parameters as ParametersOf<'rate_limit'>;
    horizonMs = Math.max(horizonMs, windowSeconds * 1000, (stabilizationSeconds ?? 0) * 1000);
    byActor ||= per !== 'target';
  }
  return { horizonMs, byActor };
}

function candidates(set: CompiledPolicySet, change: Change): readonly CompiledPolicy[] {
  const key = `${change.action}\u0000${change.namespace ?? ''}`;
  let found = set.candidates.get(key);
  if (!found) {
    found = set.policies.filter(
      (p) =>
        (!p.actions || p.actions.has(change.action)) &&
        (!p.namespaces || (change.namespace !== undefined && p.namespaces.has(change.namespace))),
    );
    if (set.candidates.size > 10_000) set.candidates.clear();
    set.candidates.set(key, found);
  }
  return found;
}

function applies(p: CompiledPolicy, change: Change, at: number): boolean {
  if (at < p.validFrom || at >= p.validUntil) return false;
  if (p.actions && !p.actions.has(change.action)) return false;
  if (p.clusters && !p.clusters.has(change.clusterId)) return false;
  if (p.namespaces && (change.namespace === undefined || !p.namespaces.has(change.namespace))) return false;
  if (p.workloadTypes && (change.workloadType === undefined || !p.workloadTypes.has(change.workloadType))) return false;
  if (p.actorKinds && !p.actorKinds.has(change.actor.kind)) return false;
  if (p.actorIds && !p.actorIds.has(change.actor.id)) return false;
  if (p.labels) {
    for (const [key, value] of p.labels) if (change.labels[key] !== value) return false;
  }
  return true;
}

/**
 * Runs every applicable policy in order. An enforce policy that fails denies the change, whatever the others
 * say; a dry_run or audit policy that fails is recorded and changes nothing.
 */
export function evaluate(set: CompiledPolicySet, change: Change, inputs: PolicyInputs): Evaluation {
  const at = Date.parse(change.at);
  const results: PolicyResult[] = [];
  let verdict: Evaluation['verdict'] = 'allow';
  for (const compiled of candidates(set, change)) {
    if (!applies(compiled, change, at)) continue;
    const { policy } = compiled;
    const result = compiled.rule(policy.parameters, change, inputs);
    if (result.outcome === 'fail' && policy.mode === 'enforce') verdict = 'deny';
    const recorded: PolicyResult = {
      policyId: policy.id,
      name: policy.name,
      type: policy.type,
      mode: policy.mode,
      priority: policy.priority,
      outcome: result.outcome,
      message: result.message,
    };
    if (result.breakGlass) recorded.breakGlass = true;
    results.push(recorded);
  }
  return { verdict, results };
}

/** The enforce failures of an evaluation: what a refusal reports. */
export function violations(evaluation: Evaluation): PolicyResult[] {
  return evaluation.results.filter((result) => result.outcome === 'fail' && result.mode === 'enforce');
}

// ---- the recorded decision ------------------------------------------------------------------------------

const policyResult = z.object({
  policyId: z.string(),
  name: z.string(),
  type: z.string(),
  mode: z.string(),
  priority: z.number(),
  outcome: z.enum(['pass', 'fail', 'not_applicable']),
  message: z.string(),
  breakGlass: z.boolean().optional(),
});

const judged = z.object({
  /** Which part of the command this is: the action index for plans. */
  index: z.number().int().optional(),
  change: z.looseObject({ action: z.string(), at: z.string(), target: z.object({ kind: z.string(), id: z.string() }) }),
  inputs: z.looseObject({ usage: z.unknown(), cost: z.unknown(), history: z.array(z.unknown()) }),
  verdict: z.enum(['allow', 'deny']),
  results: z.array(policyResult),
});

export const policyEvents = defineEvents({
  /**
   * A policy decision, in the stream of the thing judged and in the same append as the outcome. It holds the
   * policy-set revision and every input the rules read, so it can be replayed and explained later.
   */
  PolicyEvaluated: {
    version: 1,
    schema: z.object({
      command: z.string(),
      verdict: z.enum(['allow', 'deny']),
      policySet: z.object({ stream: z.string(), revision: z.number().int() }),
      evaluations: z.array(judged),
      breakGlass: z.object({ justification: z.string(), actorId: z.string() }).optional(),
    }),
  },
});
export type PolicyEvent = EventOf<typeof policyEvents>;
export type PolicyDecision = PolicyEvent['data'];
