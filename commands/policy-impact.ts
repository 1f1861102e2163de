// What a draft policy, or a change to an existing one, would have decided: every recorded decision of a window judged
// again with the draft in the policy set it recorded, and told apart by how its verdict would change. Appends nothing.
import { z } from 'zod';
import { fold, RuleViolation, type FieldError } from '../domain/decider.js';
import type { EventStore, Position, RecordedEvent } from '../domain/event-store.js';
import { compilePolicies, violations, type CompiledPolicySet, type PolicyDecision, type PolicyResult } from '../domain/policy-evaluation.js';
import { policySetDecider, type PolicySet } from '../domain/policy-set.js';
import { policyBody, policyPatchBody, type ParametersOf, type Policy, type PolicyBody, type PolicyInputs, type PolicyType } from '../domain/policy.js';
import { decisionsIn, describeBound, PolicySetHistory, rerun, type DecisionIndex, type DecisionWindow } from './decision-replay.js';

/** Decisions examined when the caller sets no cap, and the most it may set. */
export const DEFAULT_IMPACT_LIMIT = 100_000;
export const MAX_IMPACT_LIMIT = 1_000_000;
/** Decisions listed per outcome, and event ids per group: the counts go on past them, the lists do not. */
export const LISTED = 1000;

/** The id a new draft judges under: not a UUID, so it can be no policy's of the set. */
export const DRAFT_ID = 'draft';

// ---- the draft ----------------------------------------------------------------------------------------------

export interface Draft {
  policy: Policy;
  /** added: a new policy; replaced: an existing one as the patch would leave it, in place of what it was. */
  change: 'added' | 'replaced';
}

const patchOf = z.strictObject({ id: z.string({ error: 'the id of an existing policy' }).min(1, 'the id of an existing policy'), patch: policyPatchBody });

/**
 * The draft a request names (`policy` of the body): a policy body as `POST /policies` takes it, or `{id, patch}` for a
 * change to an existing policy of `current`, as `PATCH /policies/:id` takes it. A `RuleViolation` naming `policy.…`
 * when it is neither.
 */
export function draftFrom(given: unknown, current: PolicySet): Draft {
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    const message = 'a policy body as POST /policies takes it, or {id, patch} for a change to an existing policy';
    throw refused([{ path: 'policy', message: given === undefined ? `required: ${message}` : message }]);
  }
  return 'patch' in given ? patched(given, current) : added(given);
}

function added(given: unknown): Draft {
  const parsed = (policyBody as unknown as z.ZodType<PolicyBody>).safeParse(given);
  if (!parsed.success) throw refused(fieldErrors(parsed.error, 'policy'));
  return { policy: { ...parsed.data, id: DRAFT_ID }, change: 'added' };
}

/** The patch decided as `PATCH /policies/:id` would decide it, and the policy it would leave. */
function patched(given: unknown, current: PolicySet): Draft {
  const parsed = patchOf.safeParse(given);
  if (!parsed.success) throw refused(fieldErrors(parsed.error, 'policy'));
  const { id, patch } = parsed.data;
  if (!Object.hasOwn(current.policies, id)) {
    throw refused([{ path: 'policy.id', message: `no policy of the set has id ${id}; GET /policies lists them (a new policy is given as a whole body)` }]);
  }
  let events;
  try {
    events = policySetDecider.decide({ type: 'UpdatePolicy', policyId: id, patch }, current);
  } catch (error) {
    if (!(error instanceof RuleViolation)) throw error;
    throw refused(error.errors.map((e) => ({ path: `policy.patch.${e.path}`, message: e.message })));
  }
  return { policy: fold(policySetDecider, events, current).policies[id]!, change: 'replaced' };
}

function fieldErrors(error: z.ZodError, prefix: string): FieldError[] {
  return error.issues.flatMap((issue) => {
    const path = [prefix, ...issue.path.map(String)].join('.');
    return issue.code === 'unrecognized_keys' ? issue.keys.map((key) => ({ path: `${path}.${key}`, message: 'unknown field' })) : [{ path, message: issue.message }];
  });
}

function refused(errors: FieldError[]): RuleViolation {
  return new RuleViolation(`the impact request is not valid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
}

// ---- the answer --------------------------------------------------------------------------------------------

/** A decision whose verdict the draft would change, and the policies whose enforced outcome turned. */
export interface ImpactItem {
  eventId: string;
  stream: string;
  position: Position;
  /** When the decision was recorded. */
  at: string;
  command: string;
  actor: { id: string; kind: string } | null;
  targets: { kind: string; id: string }[];
  rules: Pick<PolicyResult, 'policyId' | 'name' | 'type' | 'message'>[];
}

interface Group {
  count: number;
  /** The decisions of the group, first in log order, at most `LISTED`. */
  eventIds: string[];
}

export interface Outcome {
  count: number;
  /** The first `LISTED`, in log order. */
  decisions: ImpactItem[];
  byTarget: (Group & { target: { kind: string; id: string } })[];
  byActor: (Group & { actor: { id: string; kind: string } | null })[];
  byRule: (Group & { policyId: string; name: string; type: string })[];
}

export interface Impact {
  policy: { id: string; name: string; type: PolicyType; mode: string; change: Draft['change'] };
  window: { from: string; to: string };
  examined: number;
  limit: number;
  /** More decisions lie in the window than `limit`: only the first `limit` were judged. */
  truncated: boolean;
  /** Allowed then, refused with the draft. */
  newlyRefused: Outcome;
  /** Refused then, allowed with the draft. */
  newlyAllowed: Outcome;
  unchanged: { count: number };
  /**
   * Decisions the recorded inputs cannot judge the draft by: a rate limit counts over a window no policy of the set
   * counted then, so the decision holds no count for it.
   */
  notJudged: { count: number; eventIds: string[] };
}

// ---- judging the window ------------------------------------------------------------------------------------

export interface ImpactOptions {
  limit: number;
  index?: DecisionIndex;
}

export async function policyImpact(store: EventStore, draft: Draft, window: DecisionWindow, options: ImpactOptions): Promise<Impact> {
  const history = new PolicySetHistory(store);
  // The draft in each recorded revision, compiled once per revision.
  const compiled = new Map<number, CompiledPolicySet>();
  const withDraft = async (revision: number): Promise<CompiledPolicySet> => {
    let set = compiled.get(revision);
    if (!set) {
      const { [draft.policy.id]: _replaced, ...others } = (await history.at(revision)).policies;
      set = compilePolicies([...Object.values(others), draft.policy], revision);
      compiled.set(revision, set);
    }
    return set;
  };
  const newlyRefused = new OutcomeTally();
  const newlyAllowed = new OutcomeTally();
  const notJudged = { count: 0, eventIds: [] as string[] };
  let unchanged = 0;
  let examined = 0;
  let truncated = false;

  for await (const { event, decision } of decisionsIn(store, window, options.index)) {
    if (examined === options.limit) {
      truncated = true;
      break;
    }
    examined += 1;
    const judged = rerun(await withDraft(decision.policySet.revision), decision);
    if (lacksReading(draft.policy, decision, judged.evaluations)) {
      notJudged.count += 1;
      if (notJudged.eventIds.length < LISTED) notJudged.eventIds.push(event.id);
    } else if (decision.verdict === 'allow' && judged.verdict === 'deny') {
      newlyRefused.add(item(event, decision, turned(judged.evaluations.flatMap(violations), recordedViolations(decision))));
    } else if (decision.verdict === 'deny' && judged.verdict === 'allow') {
      newlyAllowed.add(item(event, decision, turned(recordedViolations(decision), judged.evaluations.flatMap(violations))));
    } else {
      unchanged += 1;
    }
  }

  const { policy } = draft;
  return {
    policy: { id: policy.id, name: policy.name, type: policy.type, mode: policy.mode, change: draft.change },
    window: { from: describeBound(window.from), to: describeBound(window.to) },
    examined,
    limit: options.limit,
    truncated,
    newlyRefused: newlyRefused.outcome(),
    newlyAllowed: newlyAllowed.outcome(),
    unchanged: { count: unchanged },
    notJudged,
  };
}

function recordedViolations(decision: PolicyDecision): PolicyResult[] {
  return decision.evaluations.flatMap((judged) => judged.results as PolicyResult[]).filter((r) => r.outcome === 'fail' && r.mode === 'enforce');
}

/** The enforced failures of `now` that `then` did not have, one per policy: the rules that turned the verdict. */
function turned(now: PolicyResult[], then: PolicyResult[]): ImpactItem['rules'] {
  const before = new Set(then.map((r) => r.policyId));
  const rules = new Map<string, ImpactItem['rules'][number]>();
  for (const { policyId, name, type, message } of now) if (!before.has(policyId) && !rules.has(policyId)) rules.set(policyId, { policyId, name, type, message });
  return [...rules.values()];
}

/**
 * A draft rate limit that judged a change whose decision recorded no count for the draft's scope and window:
 * the rule would refuse for want of a reading, which says nothing about the change.
 */
function lacksReading(draft: Policy, decision: PolicyDecision, evaluations: { results: PolicyResult[] }[]): boolean {
  if (draft.type !== 'rate_limit') return false;
  const { per, windowSeconds } = draft.parameters as ParametersOf<'rate_limit'>;
  return decision.evaluations.some((judged, i) => {
    const inputs = judged.inputs as unknown as PolicyInputs;
    if (inputs.rateLimits === undefined) return false; // a decision of schema version 1 carries the history itself
    const applied = evaluations[i]!.results.some((r) => r.policyId === draft.id);
    return applied && !inputs.rateLimits.windows.some((w) => w.per === per && w.windowSeconds === windowSeconds);
  });
}

function item(event: RecordedEvent, decision: PolicyDecision, rules: ImpactItem['rules']): ImpactItem {
  const actor = event.metadata.actor;
  const targets = new Map<string, { kind: string; id: string }>();
  for (const { change } of decision.evaluations) targets.set(`${change.target.kind}/${change.target.id}`, { kind: change.target.kind, id: change.target.id });
  return {
    eventId: event.id,
    stream: event.stream,
    position: event.position,
    at: event.recordedAt.toISOString(),
    command: decision.command,
    actor: actor ? { id: actor.id, kind: actor.kind } : null,
    targets: [...targets.values()],
    rules,
  };
}

/** The decisions of one outcome, listed up to `LISTED` and counted by target, actor and rule. */
class OutcomeTally {
  private count = 0;
  private readonly decisions: ImpactItem[] = [];
  private readonly byTarget = new Map<string, Group & { target: { kind: string; id: string } }>();
  private readonly byActor = new Map<string, Group & { actor: { id: string; kind: string } | null }>();
  private readonly byRule = new Map<string, Group & { policyId: string; name: string; type: string }>();

  add(item: ImpactItem): void {
    this.count += 1;
    if (this.decisions.length < LISTED) this.decisions.push(item);
    for (const target of item.targets) count(this.byTarget, `${target.kind}/${target.id}`, { target }, item.eventId);
    count(this.byActor, item.actor ? `${item.actor.kind}/${item.actor.id}` : '', { actor: item.actor }, item.eventId);
    for (const { policyId, name, type } of item.rules) count(this.byRule, policyId, { policyId, name, type }, item.eventId);
  }

  outcome(): Outcome {
    return {
      count: this.count,
      decisions: this.decisions,
      byTarget: largestFirst(this.byTarget),
      byActor: largestFirst(this.byActor),
      byRule: largestFirst(this.byRule),
    };
  }
}

function count<T extends object>(groups: Map<string, Group & T>, key: string, what: T, eventId: string): void {
  let group = groups.get(key);
  if (!group) {
    group = { ...what, count: 0, eventIds: [] };
    groups.set(key, group);
  }
  group.count += 1;
  if (group.eventIds.length < LISTED) group.eventIds.push(eventId);
}

/** Largest group first; equal ones in the order they were first met, which is log order. */
function largestFirst<G extends Group>(groups: Map<string, G>): G[] {
  return [...groups.values()].sort((a, b) => b.count - a.count);
}
