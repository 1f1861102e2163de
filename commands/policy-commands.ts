// Policy commands (admin): create, update, enable or disable, delete a policy in the global set; and the
// read-only uses of the engine: what-if evaluation, replay of a recorded decision, and the impact of a draft policy.
import { NotFound, RuleViolation } from '../domain/decider.js';
import type { EventStore, RecordedEvent } from '../domain/event-store.js';
import { policyEvents, type Evaluation, type PolicyDecision } from '../domain/policy-evaluation.js';
import { GLOBAL_POLICY_SET } from '../domain/policy-set.js';
import type { Change, PolicyBody, PolicyInputs, PolicyPatchBody } from '../domain/policy.js';
import { policySets } from './aggregates.js';
import type { Clock } from './clock.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';
import { compareWithRecord, decisionWindow, rerun, type DecisionIndex } from './decision-replay.js';
import type { FleetFacts } from './fleet-facts.js';
import type { PolicyEngine } from './policy-engine.js';
import { DEFAULT_IMPACT_LIMIT, draftFrom, policyImpact, type Impact } from './policy-impact.js';
import { simulate, type ProposedChange } from './simulated-changes.js';

export interface WhatIf {
  verdict: 'allow' | 'deny' | 'refused';
  /** Why the change could not be carried out at all, whatever policy says. */
  refused?: string;
  policySetRevision: number;
  change?: Change;
  inputs?: PolicyInputs;
  results: Evaluation['results'];
}

export interface Replay {
  eventId: string;
  stream: string;
  policySetRevision: number;
  recorded: { verdict: string; evaluations: { verdict: string; results: unknown[] }[] };
  replayed: { verdict: string; evaluations: Evaluation[] };
  matches: boolean;
}

export class PolicyCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly store: EventStore,
    private readonly engine: PolicyEngine,
    private readonly facts: FleetFacts,
    private readonly clock: Clock,
    /**
     * Where decisions lie in the log, so that an impact run starts near its window and a replay reads one page; from
     * the start of the log without it.
     */
    private readonly decisionIndex?: DecisionIndex,
  ) {}

  // Each change of the policy set is fenced against admissions judged before it (`PolicyEngine.policyChangeGate`).
  async create(policyId: string, policy: PolicyBody, context: CommandContext): Promise<WriteResult> {
    const result = await this.handler.execute(policySets, GLOBAL_POLICY_SET, { type: 'CreatePolicy', policyId, policy }, context, this.engine.policyChangeGate(context));
    return { ...result, id: policyId };
  }

  async update(policyId: string, patch: PolicyPatchBody, context: CommandContext): Promise<WriteResult> {
    const result = await this.handler.execute(policySets, GLOBAL_POLICY_SET, { type: 'UpdatePolicy', policyId, patch }, context, this.engine.policyChangeGate(context));
    return { ...result, id: policyId };
  }

  async delete(policyId: string, context: CommandContext): Promise<WriteResult> {
    const result = await this.handler.execute(policySets, GLOBAL_POLICY_SET, { type: 'DeletePolicy', policyId }, context, this.engine.policyChangeGate(context));
    return { ...result, id: policyId };
  }

  /** The verdict a change would get now; appends nothing. */
  async whatIf(proposal: ProposedChange, context: CommandContext): Promise<WhatIf> {
    const simulated = await simulate(proposal, this.facts, context, this.clock.now());
    if ('refused' in simulated) {
      const { revision } = await this.engine.policySet();
      return { verdict: 'refused', refused: simulated.refused, policySetRevision: revision, results: [] };
    }
    const judgement = await this.engine.judge('WhatIf', [simulated.judged], context);
    const [recorded] = judgement.decision.evaluations;
    return {
      verdict: judgement.verdict,
      policySetRevision: judgement.decision.policySet.revision,
      change: simulated.judged.change,
      inputs: recorded!.inputs as unknown as PolicyInputs,
      results: judgement.evaluations[0]!.results,
    };
  }

  /**
   * Re-runs a recorded decision with the policy set at its recorded revision and its recorded inputs: the rate
   * limits' readings, or for a decision of schema version 1 the admitted changes it recorded, read again the same way.
   */
  async replay(eventId: string): Promise<Replay> {
    const found = await this.findDecision(eventId);
    if (!found) throw new NotFound('policy decision', eventId);
    const { decision, stream } = found;
    const replayed = rerun(await this.engine.policySetAt(decision.policySet.revision), decision);
    return {
      eventId,
      stream,
      policySetRevision: decision.policySet.revision,
      recorded: { verdict: decision.verdict, evaluations: decision.evaluations.map(({ verdict, results }) => ({ verdict, results })) },
      replayed,
      matches: compareWithRecord(decision, replayed).matches,
    };
  }

  /**
   * What a draft policy, or a change to an existing one (`{id, patch}`), would have decided of the decisions recorded
   * in the window `from`–`to`: at most `limit` of them, each judged with its recorded inputs and the draft in its
   * recorded policy set. Appends nothing; a request that is not valid is a `RuleViolation` naming the field.
   */
  async impact(request: { policy?: unknown; from?: unknown; to?: unknown }, limit = DEFAULT_IMPACT_LIMIT): Promise<Impact> {
    const { state } = await this.engine.policySet();
    // Both parts are checked before either is refused, so that one answer names every field at fault.
    const window = checked(() => decisionWindow(request));
    const draft = checked(() => draftFrom(request.policy, state));
    const errors = [window, draft].flatMap((part) => (part instanceof RuleViolation ? part.errors : []));
    if (window instanceof RuleViolation || draft instanceof RuleViolation) {
      throw new RuleViolation(`the impact request is not valid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
    }
    return policyImpact(this.store, draft, window, { limit, ...(this.decisionIndex ? { index: this.decisionIndex } : {}) });
  }

  /**
   * A decision is found where the index places it, with one read of the log. One the index does not hold yet (it
   * lags the log, or no projector has run here) is found by reading the log's decisions from the start.
   */
  private async findDecision(eventId: string): Promise<{ decision: PolicyDecision; stream: string } | undefined> {
    const place = await this.decisionIndex?.locate(eventId);
    if (place) {
      const { events: [event] } = await this.store.readAll({ after: place.after, filter: { types: ['PolicyEvaluated'] }, limit: 1 });
      if (event?.id === eventId) return decisionIn(event);
    }
    let after: string | undefined;
    for (;;) {
      const page = await this.store.readAll({ after, filter: { types: ['PolicyEvaluated'] }, limit: 1000 });
      const event = page.events.find((e) => e.id === eventId);
      if (event) return decisionIn(event);
      if (page.events.length === 0 || !page.checkpoint || page.checkpoint === after) return undefined;
      after = page.checkpoint;
    }
  }
}

function decisionIn(event: RecordedEvent): { decision: PolicyDecision; stream: string } {
  return { decision: policyEvents.parse(event.type, event.schemaVersion, event.data).data, stream: event.stream };
}

/** The value, or the `RuleViolation` that refused it. */
function checked<T>(parse: () => T): T | RuleViolation {
  try {
    return parse();
  } catch (error) {
    if (error instanceof RuleViolation) return error;
    throw error;
  }
}
