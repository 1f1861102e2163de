// The policy engine on the write side: the current policy set, the admission ledger, the inputs a decision
// reads, and the `PolicyEvaluated` event that records it.
import { fold, PolicyViolation, type DomainEvent } from '../domain/decider.js';
import { jsonCopy } from '../domain/json-copy.js';
import type { EventStore, RecordedEvent } from '../domain/event-store.js';
import { accrue, hoursLeftInMonth, totalHourlyUsd, usageWhere, type Admission, type Ledger } from '../domain/ledger.js';
import { compilePolicies, evaluate, rateLimitReadingsFor, violations, type CompiledPolicySet, type Evaluation, type PolicyDecision, type PolicyResult } from '../domain/policy-evaluation.js';
import { POLICY_SET_STREAM, policySetDecider, policySetEvents, type PolicySet, type PolicySetEvent } from '../domain/policy-set.js';
import type { Change, Footprint, PolicyInputs } from '../domain/policy.js';
import { hourlyCost, type PriceTable } from '../domain/pricing.js';
import { AdmissionLedger, type AdmissionTurn, type Folded } from './admission-ledger.js';
import type { CommandContext, Gate, GateVerdict } from './command-handler.js';

export { LEDGER_STREAM } from '../domain/ledger.js';
export { POLICY_SET_STREAM } from '../domain/policy-set.js';


/** Observed health of a deployment, from telemetry once it exists; a configurable source until then. */
export interface HealthSource {
  health(deploymentId: string): Promise<PolicyInputs['health']>;
}

/** Where each judgement is counted (Prometheus in the app). */
export interface DecisionMetrics {
  /** One judgement: its verdict, and each policy's result in it (by the policy's type and mode, never its id). */
  decided(command: string, verdict: 'allow' | 'deny', results: readonly Pick<PolicyResult, 'type' | 'mode' | 'outcome'>[]): void;
}

export interface PolicyEngineOptions {
  prices: PriceTable;
  health: HealthSource;
  metrics?: DecisionMetrics;
  /** How long the policy set read for one admission is taken as current for the next; `POLICY_SET_REUSE_MS` unless given. */
  policySetReuseMs?: number;
}

/** A change to judge, with what the handler knows beyond the change itself. */
export interface Judged {
  change: Change;
  slo?: PolicyInputs['slo'];
  index?: number;
}

export interface Judgement {
  verdict: 'allow' | 'deny';
  decision: PolicyDecision;
  evaluations: Evaluation[];
}


/**
 * How long the policy set an admission was judged with is taken as current for the next one, in milliseconds. Within
 * it, a change stored since is still never missed where it matters: a refusal reads the policy set again before it
 * is given, and an admission judged against an older policy set conflicts on the ledger (see `turnWithPolicySet`).
 */
export const POLICY_SET_REUSE_MS = 100;

export class PolicyEngine {
  private policySetCache: Folded<PolicySet> & { compiled: CompiledPolicySet } = {
    state: policySetDecider.initialState,
    revision: -1,
    compiled: compilePolicies([], -1),
  };
  /** When (`performance.now()`) the read that the cached policy set is the result of, or is as new as, began. */
  private policySetReadAt = -Infinity;
  private readonly admissions: AdmissionLedger;

  constructor(
    private readonly store: EventStore,
    private readonly options: PolicyEngineOptions,
  ) {
    this.admissions = new AdmissionLedger(store);
  }

  /** The current policy set, read forward from where this process last saw it. */
  async policySet(): Promise<Folded<PolicySet> & { compiled: CompiledPolicySet }> {
    const started = performance.now();
    const cached = this.policySetCache;
    const newer = await this.store.readStream(POLICY_SET_STREAM, { from: cached.revision + 1 });
    // A read that began earlier may end later: the copy is as new as the newest read that found it current.
    if (newer.length === 0 || newer.at(-1)!.revision <= this.policySetCache.revision) {
      if (cached === this.policySetCache) this.policySetReadAt = Math.max(this.policySetReadAt, started);
      return this.policySetCache;
    }
    const state = fold(policySetDecider, newer.map(parsePolicySetEvent), cached.state);
    const revision = newer.at(-1)!.revision;
    this.policySetCache = { state, revision, compiled: compilePolicies(Object.values(state.policies), revision) };
    this.policySetReadAt = started;
    return this.policySetCache;
  }

  /** The policy set as it stood at `revision` (-1: before any policy existed). */
  async policySetAt(revision: number): Promise<CompiledPolicySet> {
    const events = revision < 0 ? [] : await this.store.readStream(POLICY_SET_STREAM, { to: revision });
    const state = fold(policySetDecider, events.map(parsePolicySetEvent));
    return compilePolicies(Object.values(state.policies), revision);
  }

  /** The admission ledger as stored, read forward from this process's copy. */
  ledger(): Promise<Folded<Ledger>> {
    return this.admissions.current();
  }

  /**
   * The turn to judge a change and admit it, with the ledger to this process: a judgement made with it reads
   * the ledger with every admission before it counted. Give it up with `admit` or `release`.
   */
  async admissionTurn(): Promise<AdmissionTurn> {
    return (await this.turnWithPolicySet()).turn;
  }

  /**
   * The admission turn, with the policy set it is judged against, and whether that was read for this turn.
   *
   * Reading the policy set for every admission was a round trip per command to learn, nearly always, that nothing
   * changed. It is read again only when a change could be missed otherwise:
   * - every change of the policy set is stored with a `PolicySetChanged` on the ledger (`policyChangeGate`), so an
   *   admission judged against the set as it was before expects the ledger where it was, conflicts, and runs again;
   *   that run's turn reads the ledger from the store (this process's own change marks it to be read, too), and the
   *   policy set is read after it, so the policy set is at least as new as the ledger judged with it;
   * - a refusal reads it again before it is given (`gate`): a change is never refused by a policy already gone;
   * - and it is never reused for longer than `POLICY_SET_REUSE_MS`, which bounds how long a writer that bypasses
   *   the gate goes unseen.
   */
  private async turnWithPolicySet(): Promise<{ turn: AdmissionTurn; policySetRead: boolean }> {
    // A read that is due is made before the turn is taken, so that no round trip is made while others wait for it.
    const due = performance.now() - this.policySetReadAt >= (this.options.policySetReuseMs ?? POLICY_SET_REUSE_MS);
    if (due) await this.policySet();
    const turn = await this.admissions.turn();
    if (!turn.readFromStore) return { turn, policySetRead: due };
    try {
      await this.policySet();
    } catch (error) {
      turn.release();
      throw error;
    }
    return { turn, policySetRead: true };
  }

  /**
   * What a rule may read about a change, from the ledger, the price table and the health source. Of the admitted
   * changes, only what the set's rate limits read (a count per window, the last scale): a decision records that.
   */
  async inputsFor(judged: Judged, ledger: Ledger, compiled: CompiledPolicySet): Promise<PolicyInputs> {
    const { change } = judged;
    const targetId = change.target.id;
    const team = change.labels['team'];
    const others = Object.entries(ledger.placements).filter(([id]) => id !== targetId);
    // Exact in micro-dollars, so the same ledger gives the same figure whatever order it lists placements in.
    const sum = (filter: (team: string | undefined) => boolean) =>
      totalHourlyUsd(others.flatMap(([, placed]) => (filter(placed.team) ? [placed] : [])));
    const spend = accrue(ledger, change.at);
    return {
      usage: {
        namespace: usageWhere(ledger, targetId, (p) => p.namespace === change.namespace && p.clusterId === change.clusterId),
        team: usageWhere(ledger, targetId, (p) => team !== undefined && p.team === team),
        cluster: usageWhere(ledger, targetId, (p) => p.clusterId === change.clusterId),
      },
      cost: {
        fleetHourlyUsd: sum(() => true),
        teamHourlyUsd: team === undefined ? 0 : sum((t) => t === team),
        targetHourlyUsdBefore: hourlyCost(change.before, change.clusterId, this.options.prices),
        targetHourlyUsdAfter: hourlyCost(change.after ?? change.before, change.clusterId, this.options.prices),
        teamMonthToDateUsd: team === undefined ? 0 : (spend[team]?.usd ?? 0),
        hoursLeftInMonth: hoursLeftInMonth(change.at),
      },
      rateLimits: rateLimitReadingsFor(compiled, change, ledger.history),
      ...(change.target.kind === 'deployment' ? optional('health', await this.options.health.health(targetId)) : {}),
      ...optional('slo', judged.slo),
    };
  }

  /**
   * Judges each change against the current policy set and the ledger (the one a turn read, when the change is to
   * be admitted); the decision records everything it read.
   */
  async judge(
    command: string,
    judged: Judged[],
    context: CommandContext & { emergency?: { justification: string } },
    turn?: AdmissionTurn,
  ): Promise<Judgement> {
    // With a turn, the policy set the turn is judged against (see `turnWithPolicySet`).
    const [{ compiled, revision }, ledger] = turn ? [this.policySetCache, turn.ledger] : await Promise.all([this.policySet(), this.admissions.view()]);
    const evaluations: Evaluation[] = [];
    const recorded: PolicyDecision['evaluations'] = [];
    for (const item of judged) {
      const inputs = await this.inputsFor(item, ledger, compiled);
      const evaluation = evaluate(compiled, item.change, inputs);
      evaluations.push(evaluation);
      recorded.push({
        ...(item.index !== undefined ? { index: item.index } : {}),
        change: item.change as unknown as PolicyDecision['evaluations'][number]['change'],
        inputs: inputs as unknown as PolicyDecision['evaluations'][number]['inputs'],
        verdict: evaluation.verdict,
        results: evaluation.results,
      });
    }
    const verdict = evaluations.some((e) => e.verdict === 'deny') ? 'deny' : 'allow';
    this.options.metrics?.decided(command, verdict, evaluations.flatMap((evaluation) => evaluation.results));
    // As the store will give it back.
    const decision = jsonCopy({
      command,
      verdict,
      policySet: { stream: POLICY_SET_STREAM, revision },
      evaluations: recorded,
      ...(context.emergency ? { breakGlass: { justification: context.emergency.justification, actorId: context.actor.id } } : {}),
    }) as PolicyDecision;
    return { verdict, decision, evaluations };
  }

  /**
   * The policy gate of a command that changes what runs: judges the change with the ledger to itself, then either
   * records the refusal alone, or records the decision with the command's events and admits the change to the
   * ledger in the same atomic append.
   */
  async gate(request: {
    command: string;
    judged: Judged;
    events: readonly DomainEvent[];
    context: CommandContext & { emergency?: { justification: string } };
    /** What the refusal names: "scale of deployment …". */
    subject: string;
    admission: Admission;
  }): Promise<GateVerdict> {
    // The ledger is this command's from the judgement until the change is admitted or refused.
    const { turn, policySetRead } = await this.turnWithPolicySet();
    let judgement: Judgement;
    try {
      judgement = await this.judge(request.command, [request.judged], request.context, turn);
      if (judgement.verdict === 'deny' && !policySetRead) {
        // Refused against a policy set read for an earlier admission: judged again if the set changed since.
        const judgedWith = this.policySetCache.revision;
        if ((await this.policySet()).revision !== judgedWith) judgement = await this.judge(request.command, [request.judged], request.context, turn);
      }
    } catch (error) {
      turn.release();
      throw error;
    }
    const decision = { type: 'PolicyEvaluated', data: judgement.decision };
    if (judgement.verdict === 'deny') {
      turn.release();
      return { events: [decision], refusal: PolicyEngine.refusal(judgement, request.subject) };
    }
    return {
      events: [decision, ...request.events],
      release: turn.release,
      admit: (append) => turn.admit(request.admission, request.context, append),
    };
  }

  /**
   * The gate of a command that changes the policy set: its events are stored with a `PolicySetChanged` on the
   * ledger, so that no admission judged against the policy set before the change is stored after it.
   */
  policyChangeGate<Command, Event extends DomainEvent, State>(context: CommandContext): Gate<Command, Event, State> {
    return async ({ revision, events }) => ({
      events,
      admit: (append) => this.admissions.storePolicyChange(append, revision + events.length, context),
    });
  }

  /** $/hour of a footprint on a cluster, by the configured price table. */
  price(footprint: Footprint, clusterId: string): number {
    return hourlyCost(footprint, clusterId, this.options.prices);
  }

  /** The refusal a denied judgement answers with. */
  static refusal(judgement: Judgement, subject: string): PolicyViolation {
    // A plan's action is named by its index; a single change by the policy that refused it.
    const failed = judgement.evaluations.flatMap((evaluation, i) => {
      const action = judgement.decision.evaluations[i]?.index;
      return violations(evaluation).map((result) => ({
        path: action === undefined ? `policies.${result.name}` : `actions.${action}`,
        message: `${result.name} (${result.type}): ${result.message}`,
      }));
    });
    return new PolicyViolation(`policy refused ${subject}: ${failed.map((f) => f.message).join('; ')}`, failed);
  }
}

function parsePolicySetEvent(event: RecordedEvent): PolicySetEvent {
  return policySetEvents.parse(event.type, event.schemaVersion, event.data);
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
