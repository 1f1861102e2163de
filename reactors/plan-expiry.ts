// Plans expire on time: a durable timer at each plan's `expiresAt` expires the plan if its execution has not started
// by then. Without it a plan approved but never taken up (a shadow plan, or one whose plan reactor was away) stayed
// Approved past its expiry. A plan whose execution started is the plan reactor's to stop: no action starts after the
// expiry, and one under way is followed to its end (the decider refuses to expire an executing plan).
import { z } from 'zod';
import { actionPlans } from '../commands/aggregates.js';
import type { CommandHandler } from '../commands/command-handler.js';
import { actionPlanEvents, type PlanStatus } from '../domain/action-plan.js';
import { InvalidTransition } from '../domain/decider.js';
import type { RecordedEvent } from '../domain/event-store.js';
import { reactionTo } from './reaction-context.js';
import type { Reactor } from './reactor-runtime.js';
import type { OwnedTimers, TimerService } from './timers.js';

export const PLAN_EXPIRY = 'plan-expiry';

/** What `ExpirePlan` applies to. */
const EXPIRABLE: ReadonlySet<PlanStatus> = new Set(['Pending', 'Validating', 'Approved']);

const expiryPayload = z.object({ planId: z.string() });

/** The timer that expires a plan: one per plan, so scheduling it again (a replay) records nothing. */
export function expiryTimerId(planId: string): string {
  return `plan-${planId}-expiry`;
}

export class PlanExpiry implements Reactor {
  readonly name = PLAN_EXPIRY;
  readonly eventTypes = ['ActionPlanSubmitted'];
  private readonly timers: OwnedTimers<z.infer<typeof expiryPayload>>;

  constructor(
    private readonly handler: CommandHandler,
    timers: TimerService,
  ) {
    this.timers = timers.register(PLAN_EXPIRY, { payload: expiryPayload, fire: (timer, cause) => this.expire(timer.payload.planId, timer.firedAt, cause) });
  }

  /**
   * Schedules the plan's expiry, unless it can no longer expire: a reactor new to a log catches up on every plan ever
   * submitted, and schedules only for those still waiting.
   */
  async handle(event: RecordedEvent): Promise<void> {
    const submitted = actionPlanEvents.parse(event.type, event.schemaVersion, event.data);
    if (submitted.type !== 'ActionPlanSubmitted') return;
    const { planId, expiresAt } = submitted.data;
    if (!(await this.expirable(planId))) return;
    await this.timers.schedule({ timerId: expiryTimerId(planId), dueAt: new Date(expiresAt), payload: { planId } }, reactionTo(this.name, event, 'expiry-timer'));
  }

  /** At the firing's time, which is at or after the expiry, so that the plan's decider accepts it on every delivery. */
  private async expire(planId: string, firedAt: string, cause: RecordedEvent): Promise<void> {
    if (!(await this.expirable(planId))) return;
    try {
      await this.handler.execute(actionPlans, planId, { type: 'ExpirePlan', planId, at: firedAt }, reactionTo(this.name, cause, 'expire'));
    } catch (error) {
      // Its execution started, or it was cancelled, since it was read: nothing is left to expire.
      if (!(error instanceof InvalidTransition)) throw error;
    }
  }

  private async expirable(planId: string): Promise<boolean> {
    const { state } = await this.handler.loadState(actionPlans, planId);
    return state.status !== 'absent' && EXPIRABLE.has(state.status);
  }
}
