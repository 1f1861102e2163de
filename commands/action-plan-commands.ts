// Action plan commands from people and InfraMind: submit and cancel. Validation and execution are driven
// by the policy engine and the reactors through the same decider.
import type { Principal } from '../domain/access.js';
import type { ActionPlanBody } from '../domain/action-plan.js';
import { RuleViolation } from '../domain/decider.js';
import { actionPlans } from './aggregates.js';
import type { Clock } from './clock.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';

export interface ActionPlanOptions {
  /** Time to live of a plan whose body names neither expiresAt nor ttlSeconds. */
  defaultTtlSeconds: number;
}

export class ActionPlanCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly clock: Clock,
    private readonly options: ActionPlanOptions,
  ) {}

  submit(planId: string, body: ActionPlanBody, submitter: Principal, context: CommandContext): Promise<WriteResult> {
    // Only a service account may speak for InfraMind; a person's plan is always the person's.
    if (body.source === 'inframind' && submitter.kind !== 'service') {
      throw new RuleViolation('only a service account may submit plans on behalf of InfraMind', [
        { path: 'source', message: 'users submit with source "user"' },
      ]);
    }
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
      },
      context,
    );
  }

  cancel(planId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(actionPlans, planId, { type: 'CancelPlan', planId, actor: context.actor, reason }, context);
  }
}
