// Re-running recorded policy decisions in bulk: every `PolicyEvaluated` of a window of the log, each with the inputs
// it recorded and the policy set at the revision it recorded, read page by page so that memory stays bounded.
import { z } from 'zod';
import { fold, RuleViolation, type FieldError } from '../domain/decider.js';
import { comparePositions, type EventStore, type Position, type ReadAllResult, type RecordedEvent } from '../domain/event-store.js';
import {
  compilePolicies,
  evaluate,
  policyEvents,
  type CompiledPolicySet,
  type Evaluation,
  type PolicyDecision,
  type PolicyResult,
} from '../domain/policy-evaluation.js';
import { POLICY_SET_STREAM, policySetDecider, policySetEvents, type PolicySet, type PolicySetEvent } from '../domain/policy-set.js';
import type { Change, PolicyInputs, PolicyType, Rule } from '../domain/policy.js';
import { PageSize } from '../domain/read-pages.js';
import { timestamp } from '../domain/schemas.js';

// ---- the window --------------------------------------------------------------------------------------------

/** One end of a window: a time, compared with when each decision was recorded, or a position in the log. */
export type WindowBound = { at: Date } | { position: Position };

export interface DecisionWindow {
  /** Inclusive. */
  from: WindowBound;
  /** Exclusive. */
  to: WindowBound;
}

/** Positions as the API hands them out (the `position` of a write). */
const POSITION = /^[0-9a-f]{16}-[0-9a-f]{16}$/;

const bound = z.union([timestamp, z.string().regex(POSITION)], {
  error: 'an ISO 8601 date-time such as 2026-01-31T12:00:00Z, or a log position such as 0000000000000302-0000000000000004',
});

/**
 * The window `from`–`to` names, each end an ISO date-time or a log position. Refused with a `RuleViolation` naming
 * the field (prefixed by `path`) when an end is missing or malformed, or when the window is empty.
 */
export function decisionWindow(given: { from?: unknown; to?: unknown }, path = ''): DecisionWindow {
  const errors: FieldError[] = [];
  const parse = (field: 'from' | 'to'): WindowBound | undefined => {
    const value = given[field];
    if (value === undefined) {
      errors.push({ path: `${path}${field}`, message: 'required: a window is needed, so that the decisions looked at are bounded' });
      return undefined;
    }
    const parsed = bound.safeParse(value);
    if (!parsed.success) {
      errors.push({ path: `${path}${field}`, message: parsed.error.issues[0]!.message });
      return undefined;
    }
    return POSITION.test(parsed.data) ? { position: parsed.data } : { at: new Date(parsed.data) };
  };
  const from = parse('from');
  const to = parse('to');
  if (from && to && !before(from, to)) errors.push({ path: `${path}to`, message: 'later than from: a window runs from from (inclusive) to to (exclusive)' });
  if (errors.length > 0 || !from || !to) throw new RuleViolation(`the window is not valid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
  return { from, to };
}

/** Whether `a` lies before `b`; a time and a position cannot be compared, and are let through. */
function before(a: WindowBound, b: WindowBound): boolean {
  if ('at' in a && 'at' in b) return a.at.getTime() < b.at.getTime();
  if ('position' in a && 'position' in b) return comparePositions(a.position, b.position) < 0;
  return true;
}

export function describeBound(bound: WindowBound): string {
  return 'at' in bound ? bound.at.toISOString() : bound.position;
}

// ---- reading the decisions of a window ---------------------------------------------------------------------

/**
 * Where decisions lie in the log, from an index of them (the policy decisions read model): a read of a window
 * starts near it instead of at the start of the log. The index may lag the log; what it answers is still a lower bound.
 */
export interface DecisionIndex {
  /** The position of the last decision the index holds that was recorded before `bound` (a time), or lies before it (a position). */
  lastBefore(bound: WindowBound): Promise<Position | undefined>;
  /**
   * Where a read of `PolicyEvaluated` events meets the first decision recorded with this event id first: after
   * `after` (from the start of the log when absent). Undefined when the index does not hold it (yet).
   */
  locate(eventId: string): Promise<{ after: Position | undefined } | undefined>;
}

/**
 * How far the time an event was recorded and its place in the log may disagree: an event's time is taken while its
 * transaction runs, and transactions commit in another order than they start. Appends are short; a minute is
 * far more than any takes. A window in time is read from this much before its start, and until an event this
 * much past its end is met, so that no decision recorded inside it is missed.
 */
export const RECORDING_SKEW_MS = 60_000;

const MAX_PAGE = 1000;
/** Every so many events of a page are measured to size the next: decisions of a window are much alike in size. */
const MEASURE_EVERY = 16;

export interface RecordedDecision {
  event: RecordedEvent;
  decision: PolicyDecision;
}

/**
 * Every decision recorded in the window, in log order, read a page at a time. The next page is asked for before
 * this one is handed out, so that the store reads it while the caller judges these: two pages in memory at most.
 */
export async function* decisionsIn(store: EventStore, window: DecisionWindow, index?: DecisionIndex): AsyncGenerator<RecordedDecision> {
  const pages = new PageSize(MAX_PAGE);
  const read = (after: Position | undefined) => store.readAll({ after, filter: { types: ['PolicyEvaluated'] }, limit: pages.limit });
  let after = await startOf(window.from, index);
  let next: Promise<ReadAllResult> | undefined = read(after);
  try {
    for (;;) {
      const page = await next!;
      next = undefined;
      const done = !page.checkpoint || page.checkpoint === after;
      pages.measured(page.events.filter((_, i) => i % MEASURE_EVERY === 0));
      after = page.checkpoint;
      if (!done) next = read(after);
      for (const event of page.events) {
        if (pastEnd(event, window.to)) return;
        if (within(event, window)) yield { event, decision: parseDecision(event) };
      }
      if (done) return;
    }
  } finally {
    // A page read ahead and not needed (the window ended, or the caller stopped) is let finish, so that the caller
    // may close the store once this ends. Nothing waits for what it found, or for why it failed.
    await next?.catch(() => undefined);
  }
}

async function startOf(from: WindowBound, index: DecisionIndex | undefined): Promise<Position | undefined> {
  if (!index) return undefined;
  if ('position' in from) return index.lastBefore(from);
  const at = from.at.getTime() - RECORDING_SKEW_MS;
  // Nothing was recorded before 1970: a window from then on is read from the start, without asking.
  return at > 0 ? index.lastBefore({ at: new Date(at) }) : undefined;
}

function pastEnd(event: RecordedEvent, to: WindowBound): boolean {
  return 'at' in to ? event.recordedAt.getTime() >= to.at.getTime() + RECORDING_SKEW_MS : comparePositions(event.position, to.position) >= 0;
}

function within(event: RecordedEvent, { from, to }: DecisionWindow): boolean {
  const afterFrom = 'at' in from ? event.recordedAt.getTime() >= from.at.getTime() : comparePositions(event.position, from.position) >= 0;
  const beforeTo = 'at' in to ? event.recordedAt.getTime() < to.at.getTime() : comparePositions(event.position, to.position) < 0;
  return afterFrom && beforeTo;
}

function parseDecision(event: RecordedEvent): PolicyDecision {
  try {
    return policyEvents.parse(event.type, event.schemaVersion, event.data).data;
  } catch (error) {
    throw new Error(`decision ${event.id} in ${event.stream} cannot be read: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

// ---- the policy set at a revision --------------------------------------------------------------------------

/**
 * The policy set at each revision it has had. A revision never changes once written, so the stream is read once,
 * as far as the decisions need, and folded forward: decisions come in log order, so their revisions mostly rise.
 */
export class PolicySetHistory {
  private readonly events: PolicySetEvent[] = [];
  private folded: { state: PolicySet; revision: number } = { state: policySetDecider.initialState, revision: -1 };

  constructor(private readonly store: EventStore) {}

  /** The set at `revision` (-1: before any policy existed). */
  async at(revision: number): Promise<PolicySet> {
    if (revision >= this.events.length) await this.readUpTo(revision);
    if (revision < this.folded.revision) this.folded = { state: policySetDecider.initialState, revision: -1 };
    const state = fold(policySetDecider, this.events.slice(this.folded.revision + 1, revision + 1), this.folded.state);
    this.folded = { state, revision };
    return state;
  }

  private async readUpTo(revision: number): Promise<void> {
    const read = await this.store.readStream(POLICY_SET_STREAM, { from: this.events.length, to: revision });
    for (const event of read) this.events.push(policySetEvents.parse(event.type, event.schemaVersion, event.data));
    if (revision >= this.events.length) {
      throw new Error(`a decision names revision ${revision} of ${POLICY_SET_STREAM}, which holds revisions up to ${this.events.length - 1} only`);
    }
  }
}

// ---- judging a decision again ------------------------------------------------------------------------------

/** Rule implementations to judge by in place of the engine's, by policy type: what a replay after an engine change runs. */
export type RuleOverrides = { [T in PolicyType]?: Rule<T> };

/** The set with the overridden rules in place of the engine's. */
export function withRules(set: CompiledPolicySet, rules: RuleOverrides): CompiledPolicySet {
  const policies = set.policies.map((compiled) => {
    const rule = rules[compiled.policy.type] as Rule<PolicyType> | undefined;
    return rule ? { ...compiled, rule } : compiled;
  });
  return { revision: set.revision, policies, candidates: new Map() };
}

export interface Rerun {
  verdict: 'allow' | 'deny';
  evaluations: Evaluation[];
}

/** The decision's changes judged again by `set`, each with the inputs the decision recorded. */
export function rerun(set: CompiledPolicySet, decision: PolicyDecision): Rerun {
  const evaluations = decision.evaluations.map((judged) => evaluate(set, judged.change as unknown as Change, judged.inputs as unknown as PolicyInputs));
  return { verdict: evaluations.some((e) => e.verdict === 'deny') ? 'deny' : 'allow', evaluations };
}

/** The first result that differs between a recorded decision and its re-run. */
export interface ResultDifference {
  /** Which evaluation of the decision: a plan's action index, else its place in the decision. */
  evaluation: number;
  /** Null where the recorded evaluation has no result at this place, or the re-run none. */
  recorded: PolicyResult | null;
  replayed: PolicyResult | null;
}

export interface Comparison {
  /** Every verdict and every result agree. */
  matches: boolean;
  /**
   * Where the re-run first departs from the record, in evaluation order. An evaluation whose verdict alone differs
   * is named with both results null; a decision whose overall verdict alone differs has none.
   */
  difference: ResultDifference | null;
}

export function compareWithRecord(decision: PolicyDecision, rerun: Rerun): Comparison {
  for (const [i, judged] of decision.evaluations.entries()) {
    const replayed = rerun.evaluations[i]!;
    const evaluation = judged.index ?? i;
    const length = Math.max(judged.results.length, replayed.results.length);
    for (let r = 0; r < length; r++) {
      const was = (judged.results[r] as PolicyResult | undefined) ?? null;
      const now = replayed.results[r] ?? null;
      if (!was || !now || !sameResult(was, now)) return { matches: false, difference: { evaluation, recorded: was, replayed: now } };
    }
    if (judged.verdict !== replayed.verdict) return { matches: false, difference: { evaluation, recorded: null, replayed: null } };
  }
  return { matches: decision.verdict === rerun.verdict, difference: null };
}

// Field by field: a result read back from the store need not keep its keys in the order evaluation wrote them.
function sameResult(a: PolicyResult, b: PolicyResult): boolean {
  return (
    a.policyId === b.policyId &&
    a.name === b.name &&
    a.type === b.type &&
    a.mode === b.mode &&
    a.priority === b.priority &&
    a.outcome === b.outcome &&
    a.message === b.message &&
    (a.breakGlass ?? false) === (b.breakGlass ?? false)
  );
}

// ---- the bulk replay ---------------------------------------------------------------------------------------

export interface DecisionReplay {
  eventId: string;
  stream: string;
  position: Position;
  /** When the decision was recorded. */
  at: string;
  policySetRevision: number;
  recordedVerdict: 'allow' | 'deny';
  replayedVerdict: 'allow' | 'deny';
  matches: boolean;
  /** Where the replay first departs from the record (see `Comparison`); null when it matches. */
  difference: ResultDifference | null;
}

export interface BulkReplayOptions {
  /** Only the decisions that evaluated this policy, by id, or by name (regardless of case) as the decision recorded it. */
  policy?: string;
  index?: DecisionIndex;
  /** Judge by these rules instead of the engine's. */
  rules?: RuleOverrides;
}

/** Every decision of the window re-run with its recorded inputs and policy-set revision, in log order. */
export async function* replayDecisions(store: EventStore, window: DecisionWindow, options: BulkReplayOptions = {}): AsyncGenerator<DecisionReplay> {
  const history = new PolicySetHistory(store);
  // Compiled once per revision: a revision is immutable, and a window's decisions share a handful of them.
  const compiled = new Map<number, CompiledPolicySet>();
  const setAt = async (revision: number): Promise<CompiledPolicySet> => {
    let set = compiled.get(revision);
    if (!set) {
      set = compilePolicies(Object.values((await history.at(revision)).policies), revision);
      if (options.rules) set = withRules(set, options.rules);
      compiled.set(revision, set);
    }
    return set;
  };
  const evaluated = options.policy === undefined ? () => true : evaluatedPolicy(options.policy);

  for await (const { event, decision } of decisionsIn(store, window, options.index)) {
    if (!evaluated(decision)) continue;
    const replayed = rerun(await setAt(decision.policySet.revision), decision);
    const { matches, difference } = compareWithRecord(decision, replayed);
    yield {
      eventId: event.id,
      stream: event.stream,
      position: event.position,
      at: event.recordedAt.toISOString(),
      policySetRevision: decision.policySet.revision,
      recordedVerdict: decision.verdict,
      replayedVerdict: replayed.verdict,
      matches,
      difference,
    };
  }
}

/** Whether a decision recorded a result of the policy with this id, or this name regardless of case. */
function evaluatedPolicy(policy: string): (decision: PolicyDecision) => boolean {
  const name = policy.toLowerCase();
  return (decision) => decision.evaluations.some((judged) => judged.results.some((result) => result.policyId === policy || result.name.toLowerCase() === name));
}
