// What became of an InfraMind plan, told when the event that ended it goes down: the result, and its effect on
// each target (replicas asked for and ready, the health seen after, the cost per hour before and after).
import { z } from 'zod';
import type { Effect, Outcome, OutcomeResult } from '../../adapters/grpc/inframind-proto.js';
import { actionPlans, deployments } from '../../commands/aggregates.js';
import type { CommandHandler } from '../../commands/command-handler.js';
import { actionTarget, type PlanAction } from '../../domain/action-plan.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { policyEvents } from '../../domain/policy-evaluation.js';

/** Plan events that end a plan, and the outcome each is reported as. */
const OUTCOMES: Record<string, OutcomeResult> = {
  ActionPlanCompleted: 'EXECUTED',
  ActionPlanRolledBack: 'ROLLED_BACK',
  ActionPlanExpired: 'EXPIRED',
  ActionPlanFailed: 'FAILED',
  ActionPlanCancelled: 'CANCELLED',
};

const READINESS = new Set(['DeploymentAvailable', 'DeploymentRolloutProgressed']);
const POLICY_EVALUATED = new Set(['PolicyEvaluated']);
/** The part of a judgement's inputs the outcome reports; the policy engine records it for every judged action. */
const judgedCost = z.object({ targetHourlyUsdBefore: z.number(), targetHourlyUsdAfter: z.number() });

/** The outcome `event` reports, when it ends a plan InfraMind submitted. */
export async function planOutcome(event: RecordedEvent, handler: CommandHandler): Promise<Outcome | undefined> {
  const result = OUTCOMES[event.type];
  const planId = typeof event.data['planId'] === 'string' ? event.data['planId'] : undefined;
  if (!result || !planId) return undefined;
  const { state } = await handler.loadState(actionPlans, planId);
  if (state.status === 'absent' || state.source !== 'inframind') return undefined;
  const cause = typeof event.data['cause'] === 'string' ? event.data['cause'] : typeof event.data['reason'] === 'string' ? event.data['reason'] : '';
  const costs = await judgedCosts(handler, planId);
  const effects = await Promise.all(state.actions.map((slot, index) => effectOf(handler, slot.action, index, costs.get(index))));
  return { position: event.position, planId, result, cause, effects };
}

async function effectOf(handler: CommandHandler, action: PlanAction, index: number, cost: z.infer<typeof judgedCost> | undefined): Promise<Effect> {
  const { kind, id } = actionTarget(action);
  const effect: Effect = {
    action: index,
    targetKind: kind,
    targetId: id,
    replicasDesired: 0,
    replicasReady: 0,
    health: '',
    costBeforeMicroUsdPerHour: microUsd(cost?.targetHourlyUsdBefore),
    costAfterMicroUsdPerHour: microUsd(cost?.targetHourlyUsdAfter),
  };
  if (kind !== 'deployment') return effect;
  const { state, revision } = await handler.loadState(deployments, id);
  if (state.status === 'absent') return effect;
  const ready = await handler.latestOf(deployments, id, READINESS, revision);
  const readyReplicas = ready ? deployments.events.parse(ready.type, ready.schemaVersion, ready.data) : undefined;
  return {
    ...effect,
    replicasDesired: state.replicas,
    replicasReady: readyReplicas && 'readyReplicas' in readyReplicas.data ? readyReplicas.data.readyReplicas : 0,
    health: state.status,
  };
}

/** The cost before and after of each action, by index, as the plan's judgement recorded them. */
async function judgedCosts(handler: CommandHandler, planId: string): Promise<Map<number, z.infer<typeof judgedCost>>> {
  const recorded = await handler.latestOf(actionPlans, planId, POLICY_EVALUATED);
  const costs = new Map<number, z.infer<typeof judgedCost>>();
  if (!recorded) return costs;
  const decision = policyEvents.parse(recorded.type, recorded.schemaVersion, recorded.data);
  for (const evaluation of decision.data.evaluations) {
    const cost = judgedCost.safeParse(evaluation.inputs.cost);
    if (evaluation.index !== undefined && cost.success) costs.set(evaluation.index, cost.data);
  }
  return costs;
}

/** Dollars (as the judgement prices them) to exact micro-dollars. */
function microUsd(usd: number | undefined): number {
  return usd === undefined ? 0 : Math.round(usd * 1_000_000);
}
