// Judging a change against the policy set: which policies apply, what each rule says, and the verdict.
// Deterministic: the same policies, change and inputs always give the same verdict, which is what replay relies on.
import { z } from 'zod';
import { defineEvents, type EventOf } from './decider.js';
import {
  rateLimitReadings,
  type Change,
  type ParametersOf,
  type PastAction,
  type Policy,
  type PolicyInputs,
  type PolicyMode,
  type PolicyType,
  type RateLimitReadings,
  type Rule,
  type RuleResult,
} from './policy.js';
import { RULES } from './rules/index.js';
import { readRateLimits } from './rules/rate-limit.js';

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

/**
 * A policy made ready to judge, built once per policy-set revision: its selector turned into sets, its validity
 * into numbers, and the fields every result repeats copied beside the rule, so that judging a change reads one
 * object per policy.
 */
interface CompiledPolicy {
  policy: Policy;
  id: string;
  name: string;
  type: PolicyType;
  mode: PolicyMode;
  priority: number;
  /** A failure of this policy denies the change. */
  enforce: boolean;
  parameters: Policy['parameters'];
  rule: Rule<PolicyType>;
  validFrom: number;
  validUntil: number;
  clusters: ReadonlySet<string> | undefined;
  namespaces: ReadonlySet<string> | undefined;
  /** Workload labels the selector requires, names and values side by side. */
  labelNames: readonly string[] | undefined;
  labelValues: readonly string[] | undefined;
  workloadTypes: ReadonlySet<string> | undefined;
  actorKinds: ReadonlySet<string> | undefined;
  actorIds: ReadonlySet<string> | undefined;
  actions: ReadonlySet<string> | undefined;
}

export interface CompiledPolicySet {
  revision: number;
  policies: readonly CompiledPolicy[];
  /**
   * The policies whose action and namespace selectors admit an (action, namespace) pair, in evaluation order,
   * filled in as pairs are first met: most of a large set is aimed elsewhere and is never looked at again.
   */
  candidates: Map<string, readonly CompiledPolicy[]>;
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
        id: policy.id,
        name: policy.name,
        type: policy.type,
        mode: policy.mode,
        priority: policy.priority,
        enforce: policy.mode === 'enforce',
        parameters: policy.parameters,
        rule: RULES[policy.type] as Rule<PolicyType>,
        validFrom: policy.validFrom ? Date.parse(policy.validFrom) : -Infinity,
        validUntil: policy.validUntil ? Date.parse(policy.validUntil) : Infinity,
        clusters: set(policy.selector.clusters),
        namespaces: set(policy.selector.namespaces),
        labelNames: policy.selector.labels ? Object.keys(policy.selector.labels) : undefined,
        labelValues: policy.selector.labels ? Object.values(policy.selector.labels) : undefined,
        workloadTypes: set(policy.selector.workloadTypes),
        actorKinds: set(policy.selector.actors?.kinds),
        actorIds: set(policy.selector.actors?.ids),
        actions: set(policy.selector.actions),
      }),
    );
  return { revision, policies: compiled, candidates: new Map() };
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
  if (p.labelNames && p.labelValues) {
    for (let i = 0; i < p.labelNames.length; i += 1) if (change.labels[p.labelNames[i]!] !== p.labelValues[i]) return false;
  }
  return true;
}

/**
 * What the rate limits that judge `change` read of the admitted changes before it (`history`, in any order): what
 * a decision records in place of the changes themselves.
 */
export function rateLimitReadingsFor(set: CompiledPolicySet, change: Change, history: readonly PastAction[]): RateLimitReadings {
  const at = Date.parse(change.at);
  const limits: ParametersOf<'rate_limit'>[] = [];
  for (const compiled of candidates(set, change)) {
    if (compiled.type === 'rate_limit' && applies(compiled, change, at)) limits.push(compiled.parameters as ParametersOf<'rate_limit'>);
  }
  return readRateLimits(limits, change, history);
}

/**
 * Runs every applicable policy in order. An enforce policy that fails denies the change, whatever the others
 * say; a dry_run or audit policy that fails is recorded and changes nothing. Inputs without rate-limit readings
 * (a decision of schema version 1) have them read from the history they carry.
 */
export function evaluate(set: CompiledPolicySet, change: Change, inputs: PolicyInputs): Evaluation {
  const at = Date.parse(change.at);
  let given = inputs;
  const results: PolicyResult[] = [];
  let verdict: Evaluation['verdict'] = 'allow';
  for (const compiled of candidates(set, change)) {
    if (!applies(compiled, change, at)) continue;
    if (compiled.type === 'rate_limit' && !given.rateLimits) given = { ...inputs, rateLimits: rateLimitReadingsFor(set, change, inputs.history ?? []) };
    const result = compiled.rule(compiled.parameters, change, given);
    if (result.outcome === 'fail' && compiled.enforce) verdict = 'deny';
    const recorded = resultOf(compiled, result);
    results.push(result.breakGlass ? { ...recorded, breakGlass: true } : recorded);
  }
  return { verdict, results };
}

/** What a decision records of one policy's result; `breakGlass` is added only where a freeze was broken. */
function resultOf(compiled: CompiledPolicy, result: RuleResult): PolicyResult {
  return {
    policyId: compiled.id,
    name: compiled.name,
    type: compiled.type,
    mode: compiled.mode,
    priority: compiled.priority,
    outcome: result.outcome,
    message: result.message,
  };
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

/** An admitted change as decisions of schema version 1 recorded it among their inputs. */
const pastAction = z.looseObject({
  at: z.string(),
  action: z.string(),
  targetId: z.string(),
  actorId: z.string(),
  direction: z.enum(['up', 'down']).optional(),
});

const judged = z.object({
  /** Which part of the command this is: the action index for plans. */
  index: z.number().int().optional(),
  change: z.looseObject({ action: z.string(), at: z.string(), target: z.object({ kind: z.string(), id: z.string() }) }),
  inputs: z
    .looseObject({ usage: z.unknown(), cost: z.unknown(), rateLimits: rateLimitReadings.optional(), history: z.array(pastAction).optional() })
    .refine((inputs) => inputs.rateLimits !== undefined || inputs.history !== undefined, 'rateLimits (or, upcast from version 1, history)'),
  verdict: z.enum(['allow', 'deny']),
  results: z.array(policyResult),
});

export const policyEvents = defineEvents({
  /**
   * A policy decision, in the stream of the thing judged and in the same append as the outcome. It holds the
   * policy-set revision and every input the rules read, so it can be replayed and explained later: of the
   * admitted changes, only what the rate limits read of them (`inputs.rateLimits`), so that its size does not
   * grow with the history.
   */
  PolicyEvaluated: {
    version: 2,
    schema: z.object({
      command: z.string(),
      verdict: z.enum(['allow', 'deny']),
      policySet: z.object({ stream: z.string(), revision: z.number().int() }),
      evaluations: z.array(judged),
      breakGlass: z.object({ justification: z.string(), actorId: z.string() }).optional(),
    }),
    upcast: {
      // Version 1 recorded the admitted changes themselves (`inputs.history`) where version 2 records readings.
      // They stay as recorded: evaluation reads them as the engine would have, so an old decision replays as made.
      1: (data) => data,
    },
  },
});
export type PolicyEvent = EventOf<typeof policyEvents>;
export type PolicyDecision = PolicyEvent['data'];
