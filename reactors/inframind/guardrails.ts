// Guardrails for an autonomous caller: plans based on stale observations, plans beyond InfraMind's rate, and plans
// for a target that already has a plan in flight are refused. Each refusal is recorded as the plan's rejection.
import { actionTarget, planAction, type PlanAction, type Violation } from '../../domain/action-plan.js';
import type { RecordedEvent } from '../../domain/event-store.js';

export interface GuardrailOptions {
  /** A plan based on an observation older than this is stale (INFRAMIND_STALE_AFTER_SECONDS). */
  staleAfterMs: number;
  /** New plans InfraMind may submit in any minute, all its sessions together (INFRAMIND_PLANS_PER_MINUTE). */
  plansPerMinute: number;
  now?: () => number;
}

/** Observations whose time is kept, newest first out of mind: a plan based on an older one is stale anyway. */
const OBSERVATIONS_KEPT = 1_000;
const MINUTE_MS = 60_000;
/** Plan events after which the plan no longer holds its targets. A failed plan is over unless someone rolls it back. */
const ENDED = new Set(['ActionPlanRejected', 'ActionPlanCompleted', 'ActionPlanFailed', 'ActionPlanRolledBack', 'ActionPlanExpired', 'ActionPlanCancelled']);

export class Guardrails {
  private readonly observedAt = new Map<number, number>();
  /** When each new plan of the last minute came. */
  private readonly recent: number[] = [];
  /** Plans not yet ended, by the target each of their actions changes (`deployment:<id>`, `cluster:<id>`). */
  private readonly inFlight = new Map<string, Set<string>>();
  private readonly now: () => number;

  constructor(private readonly options: GuardrailOptions) {
    this.now = options.now ?? Date.now;
  }

  /** An observation went down with this sequence. */
  observed(sequence: number, observedAtMs: number): void {
    this.observedAt.set(sequence, observedAtMs);
    if (this.observedAt.size > OBSERVATIONS_KEPT) this.observedAt.delete(this.observedAt.keys().next().value!);
  }

  /** Follows the plan streams (every source): a plan holds its targets from submission until it ends. */
  follow(event: RecordedEvent): void {
    const planId = typeof event.data['planId'] === 'string' ? event.data['planId'] : undefined;
    if (!planId) return;
    if (event.type === 'ActionPlanSubmitted') {
      const actions = planAction.array().safeParse(event.data['actions']);
      if (actions.success) this.hold(planId, actions.data);
    } else if (ENDED.has(event.type)) {
      for (const [target, plans] of this.inFlight) if (plans.delete(planId) && plans.size === 0) this.inFlight.delete(target);
    }
  }

  /**
   * A plan event on its way to InfraMind: a plan that ended lets go of its targets now, no later than InfraMind
   * hears of it (the plan streams followed for `follow` may come round later), so that a plan proposed on the outcome
   * is not refused as in flight. Only releases: a replay to a resuming InfraMind must not hold old plans again.
   */
  ended(event: RecordedEvent): void {
    if (ENDED.has(event.type)) this.follow(event);
  }

  /** An accepted plan holds its targets at once, ahead of its events coming round on the plan streams. */
  hold(planId: string, actions: readonly PlanAction[]): void {
    for (const target of actions.map(targetKey)) this.inFlight.set(target, (this.inFlight.get(target) ?? new Set()).add(planId));
  }

  /** What the guardrails find against a new plan; counts it against the rate. */
  check(planId: string, basedOnObservation: number, actions: readonly PlanAction[]): Violation[] {
    return [...this.rate(), ...this.staleness(basedOnObservation), ...this.conflicts(planId, actions)];
  }

  private rate(): Violation[] {
    const now = this.now();
    while (this.recent.length > 0 && this.recent[0]! <= now - MINUTE_MS) this.recent.shift();
    this.recent.push(now);
    if (this.recent.length <= this.options.plansPerMinute) return [];
    return [{ path: 'planId', message: `InfraMind submitted more than ${this.options.plansPerMinute} plans in the last minute; submit fewer, larger plans or wait` }];
  }

  /** A plan that names no observation (0) is not judged by its age. */
  private staleness(sequence: number): Violation[] {
    if (sequence === 0) return [];
    const at = this.observedAt.get(sequence);
    const limit = `${this.options.staleAfterMs / 1000} s`;
    if (at === undefined) {
      return [{ path: 'basedOnObservation', message: `observation ${sequence} is unknown here (older than the last ${OBSERVATIONS_KEPT}, or from before a restart): base the plan on an observation of the last ${limit}` }];
    }
    if (this.now() - at <= this.options.staleAfterMs) return [];
    return [{ path: 'basedOnObservation', message: `observation ${sequence} of ${new Date(at).toISOString()} is older than ${limit}: the plan is stale; base it on a newer observation` }];
  }

  /** Refused, not queued: InfraMind sees the verdict at once and proposes again once the other plan has ended. */
  private conflicts(planId: string, actions: readonly PlanAction[]): Violation[] {
    return actions.flatMap((action, index) => {
      const others = [...(this.inFlight.get(targetKey(action)) ?? [])].filter((other) => other !== planId);
      if (others.length === 0) return [];
      const { kind, id } = actionTarget(action);
      return [{ path: `actions.${index}`, message: `plan ${others[0]} is still in flight on ${kind} ${id}; resubmit under a new plan id once it has ended` }];
    });
  }
}

function targetKey(action: PlanAction): string {
  const { kind, id } = actionTarget(action);
  return `${kind}:${id}`;
}
