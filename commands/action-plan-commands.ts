// Action plan commands from people and InfraMind: submit (validated against policy in the same append) and
// cancel. Execution is driven by the reactors through the same decider.
import type { Principal } from '../domain/access.js';
import {
  actionPlanDecider,
  type ActionPlan,
  type ActionPlanBody,
  type ActionPlanCommand,
  type ActionPlanEvent,
  type Violation,
} from '../domain/action-plan.js';
import { GLOBAL_AUTONOMY, pausedRefusal } from '../domain/autonomy.js';
import { fold, PolicyViolation, RuleViolation } from '../domain/decider.js';
import { actionPlans, autonomies } from './aggregates.js';
import type { Clock } from './clock.js';
import type { CommandContext, CommandHandler, Gate, WriteResult } from './command-handler.js';
import type { FleetFacts } from './fleet-facts.js';
import { PolicyEngine, type Judged } from './policy-engine.js';
import { simulate } from './simulated-changes.js';

/** A plan as submitted; without `onFailure` it stops at a failure (the HTTP body's default). */
type PlanBody = Omit<ActionPlanBody, 'onFailure'> & Partial<Pick<ActionPlanBody, 'onFailure'>>;

export interface ActionPlanOptions {
  /** Time to live of a plan whose body names neither expiresAt nor ttlSeconds. */
  defaultTtlSeconds: number;
}

export class ActionPlanCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly clock: Clock,
    private readonly policy: PolicyEngine,
    private readonly facts: FleetFacts,
    private readonly options: ActionPlanOptions,
  ) {}

  /**
   * Records the plan and validates it in the same append: every action is worked out against the current
   * state of its target and judged by policy. A rejected plan is recorded and answered with 422, unless it
   * is a shadow plan, whose verdict is only recorded.
   */
  /**
   * `guardrails`: what the InfraMind link's own checks (stale basis, rate limit, a plan in flight on the same
   * target) found against the plan, recorded as its rejection like a policy refusal.
   */
  submit(planId: string, body: PlanBody, submitter: Principal, context: CommandContext, guardrails: Violation[] = []): Promise<WriteResult> {
    // Only a service account may speak for InfraMind; a person's plan is always the person's.
    if (body.source === 'inframind' && submitter.kind !== 'service') {
      throw new RuleViolation('only a service account may submit plans on behalf of InfraMind', [
        { path: 'source', message: 'users submit with source "user"' },
      ]);
    }
    // Sentinel's own plans come only from its remediation, through `proposeFromSentinel`.
    if (body.source === 'sentinel') {
      throw new RuleViolation('plans with source "sentinel" are proposed by Sentinel itself, never submitted', [
        { path: 'source', message: 'one of user, inframind' },
      ]);
    }
    return this.record(planId, body, context, guardrails);
  }

  /** A plan Sentinel proposes itself (a remediation), judged by policy like any other; never reachable over HTTP. */
  proposeFromSentinel(
    planId: string,
    proposal: Pick<ActionPlanBody, 'reason' | 'actions' | 'shadow'>,
    context: CommandContext,
  ): Promise<WriteResult> {
    return this.record(planId, { ...proposal, source: 'sentinel' }, context);
  }

  private record(planId: string, body: PlanBody, context: CommandContext, guardrails: Violation[] = []): Promise<WriteResult> {
    const now = this.clock.now();
    const expiresAt = body.expiresAt ?? new Date(now.getTime() + (body.ttlSeconds ?? this.options.defaultTtlSeconds) * 1000).toISOString();
    return this.handler.execute(
      actionPlans,
      planId,
      {
        type: 'SubmitActionPlan',
        planId,
        source: body.source,
        actor: context.actor,
        reason: body.reason,
        actions: body.actions,
        submittedAt: now.toISOString(),
        expiresAt,
        shadow: body.shadow,
        ...(body.onFailure !== undefined ? { onFailure: body.onFailure } : {}),
      },
      context,
      this.validated(planId, context, now, guardrails),
    );
  }

  cancel(planId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(actionPlans, planId, { type: 'CancelPlan', planId, actor: context.actor, reason }, context);
  }

  /** While an admin has paused autonomy, InfraMind's plans are refused, and the refusal recorded as the plan's rejection. */
  private async autonomyRefusal(source: ActionPlanBody['source']): Promise<Violation[]> {
    if (source !== 'inframind') return [];
    const { state } = await this.handler.loadState(autonomies, GLOBAL_AUTONOMY);
    return state.paused ? [pausedRefusal(state)] : [];
  }

  private validated(planId: string, context: CommandContext, now: Date, guardrails: Violation[]): Gate<ActionPlanCommand, ActionPlanEvent, ActionPlan> {
    return async ({ command, state, events }) => {
      if (command.type !== 'SubmitActionPlan') return { events };
      const refused: Violation[] = [...guardrails, ...(await this.autonomyRefusal(command.source))];
      const judged: Judged[] = [];
      for (const [index, action] of command.actions.entries()) {
        const simulated = await simulate(action, this.facts, context, now);
        if ('refused' in simulated) refused.push({ path: `actions.${index}`, message: simulated.refused });
        else judged.push({ ...simulated.judged, index });
      }
      const judgement = await this.policy.judge(command.type, judged, context);
      const violations = [
        ...refused,
        ...(judgement.verdict === 'deny' ? PolicyEngine.refusal(judgement, `plan ${planId}`).errors : []),
      ];

      let plan = fold(actionPlanDecider, events, state);
      const next = (step: ActionPlanCommand): ActionPlanEvent[] => {
        const decided = actionPlanDecider.decide(step, plan);
        plan = fold(actionPlanDecider, decided, plan);
        return decided;
      };
      const validation = [
        ...next({ type: 'StartPlanValidation', planId }),
        ...next(violations.length === 0 ? { type: 'ApprovePlan', planId } : { type: 'RejectPlan', planId, violations }),
      ];
      const [submitted] = events;
      return {
        events: [submitted!, validation[0]!, { type: 'PolicyEvaluated', data: judgement.decision }, ...validation.slice(1)],
        ...(violations.length > 0 && !command.shadow
          ? {
              refusal: new PolicyViolation(
                `plan ${planId} was rejected: ${violations.map((v) => v.message).join('; ')}`,
                violations.map((v) => ({ path: v.path ?? '', message: v.message })),
              ),
            }
          : {}),
      };
    };
  }
}
