// Carries out approved action plans, one action at a time: each change goes through the same deployment commands
// (and policy) as a person's request, a drain is judged when it starts, and the plan follows the deployment until it
// is available, failed or rolled back. No action starts once the plan has expired. It also times each plan, from its
// submission to its end, for the plan duration metric.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { RetryAborted, retrying } from '../adapters/retry.js';
import { actionPlans, deployments } from '../commands/aggregates.js';
import type { Clock } from '../commands/clock.js';
import type { NodeDrainCommands } from '../commands/cluster-commands.js';
import { streamOf, type CommandContext, type CommandHandler, type WriteResult } from '../commands/command-handler.js';
import type { DeploymentCommands } from '../commands/deployment-commands.js';
import {
  actionPlanDecider,
  actionPlanEvents,
  isTerminal,
  movedDeploymentId,
  type ActionPlan,
  type ActionPlanCommand,
  type DeploymentAfter,
  type DeploymentBefore,
  type PlanAction,
  type PlanStatus,
  type UndoStep,
} from '../domain/action-plan.js';
import type { Deployment, DeploymentEvent, PlacedDeployment } from '../domain/deployment.js';
import { comparePositions, type RecordedEvent } from '../domain/event-store.js';
import type { ClusterDriver } from './cluster-driver.js';
import { deploymentEventOf, isClusterReaction } from './cluster-reactor.js';
import { policyEvents } from '../domain/policy-evaluation.js';
import { declaredTransient } from './failures.js';
import { reactionTo } from './reaction-context.js';
import { everyEventOf, type Reactor } from './reactor-runtime.js';

/** Deployment events that can settle an action waiting on that deployment (a pause fails one it holds). */
const SETTLING = ['DeploymentAvailable', 'DeploymentRolloutFailed', 'DeploymentRolledBack', 'DeploymentDeleted', 'DeploymentPaused'] as const;

/** Events that can end a plan: each leaves it in an end status (below). */
const ENDING = ['ActionPlanCompleted', 'ActionPlanFailed', 'ActionPlanRolledBack', 'ActionPlanRejected', 'ActionPlanExpired', 'ActionPlanCancelled'] as const;

/**
 * How a plan ended: its status once it ended, in snake case. Failed counts as an end, though a person may still roll
 * the plan back: nothing more happens to it until someone does, and that later rollback is not counted again.
 */
export const PLAN_OUTCOMES = ['completed', 'failed', 'rolled_back', 'rejected', 'expired', 'cancelled'] as const;
export type PlanOutcome = (typeof PLAN_OUTCOMES)[number];

/** What the plan reactor measures; implemented over prom-client in adapters/prometheus. */
export interface PlanMetrics {
  /** A plan ended: `seconds` from its submission to its end, both as recorded in the log. */
  ended(outcome: PlanOutcome, seconds: number): void;
}

/** Plans whose end this process observed lately: a redelivery after the reactor started again observes nothing. */
const REMEMBERED_ENDS = 1024;

export interface PlanReactorOptions {
  logger: Logger;
  /** Times each plan that ends; a shadow plan, never carried out, is not timed. */
  metrics?: PlanMetrics;
  /** How long one action may take to settle (its deployment available, failed or rolled back). */
  actionTimeoutMs: number;
  /** How long a drain waits on a pod whose eviction a disruption budget keeps refusing. */
  evictionTimeoutMs: number;
  /** How often a waiting action looks at its deployment even when no event woke it. */
  settlePollMs?: number;
  /** Backoff between attempts at a plan whose step failed in a way that may heal: doubling from base to max. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface PlanReactorDeps {
  handler: CommandHandler;
  deployments: DeploymentCommands;
  /** The start of a drain, judged by policy and admitted to the ledger before the node is cordoned. */
  drains: NodeDrainCommands;
  clock: Clock;
  /** The driver for a registered cluster (for drains). */
  driverFor(clusterId: string): Promise<ClusterDriver>;
}

/** How long a failed rollout is given to be undone by the cluster reactor before the action counts as failed. */
const UNDO_GRACE_MS = 5000;

/**
 * Actions a paused deployment holds until it is resumed. Kubernetes pauses rollouts, not scaling, and so does
 * Sentinel: a scale is carried out on a paused deployment, a new revision, a restart or a reschedule is not.
 */
const HELD_WHILE_PAUSED: ReadonlySet<PlanAction['kind']> = new Set(['update', 'rollback', 'restart', 'reschedule']);

/** Events that make a new revision of a deployment, which becomes its current one. */
const REVISION_MADE: ReadonlySet<string> = new Set(['DeploymentCreated', 'DeploymentUpdated', 'DeploymentRollbackRequested', 'DeploymentRolledBack']);

type Outcome = { ok: true; detail: string; after?: DeploymentAfter } | { ok: false; error: string; rolledBack?: boolean };
type SubmittedPlan = Exclude<ActionPlan, { status: 'absent' }>;

export class PlanReactor implements Reactor {
  readonly name = 'plans';
  readonly eventTypes = ['ActionPlanApproved', ...SETTLING, ...ENDING];
  /** Plans being carried out in this process: one drive per plan. */
  private readonly drives = new Map<string, Promise<void>>();
  /** Actions waiting on a deployment, woken when it settles. */
  private readonly waiting = new Map<string, Set<() => void>>();
  private signal: AbortSignal | undefined;
  /** Ends this instance's drives on `stop()`, also when the runtime's signal stays live (a lost lease). */
  private lifetime = new AbortController();
  /** Streams of the plans whose end was observed here, oldest first, at most `REMEMBERED_ENDS`. */
  private readonly ended = new Set<string>();

  constructor(
    private readonly deps: PlanReactorDeps,
    private readonly options: PlanReactorOptions,
  ) {}

  /** Resumes every plan approved earlier that has not finished: a previous instance may have stopped mid-way. */
  async start(signal: AbortSignal): Promise<void> {
    this.lifetime = new AbortController();
    this.signal = AbortSignal.any([signal, this.lifetime.signal]);
    const store = this.deps.handler.store;
    for await (const event of everyEventOf(store, ['ActionPlanApproved'])) this.drive(planIdOf(event), event);
  }

  async stop(): Promise<void> {
    // The runtime stops a reactor whose lease is gone without aborting its signal; another instance may take the
    // plans over, so this one lets go of them now rather than when each action settles.
    this.lifetime.abort();
    for (const wakers of this.waiting.values()) for (const wake of wakers) wake();
    await Promise.allSettled([...this.drives.values()]);
  }

  async handle(event: RecordedEvent, signal: AbortSignal): Promise<void> {
    this.signal ??= signal;
    if (event.type === 'ActionPlanApproved') this.drive(planIdOf(event), event);
    else if ((ENDING as readonly string[]).includes(event.type)) await this.observeEnd(event);
    else for (const wake of this.waiting.get(deploymentEventOf(event).data.deploymentId) ?? []) wake();
  }

  /** Plans this process is carrying out now. */
  inFlight(): number {
    return this.drives.size;
  }

  /**
   * Times the plan when `end` is the event that ended it: its first end, of a plan that is not a shadow. The times are
   * those the log recorded, so the plan's own events say how long it took, whoever carried it out and whenever.
   */
  private async observeEnd(end: RecordedEvent): Promise<void> {
    const metrics = this.options.metrics;
    if (!metrics || this.ended.has(end.stream)) return;
    const recorded = await this.deps.handler.store.readStream(end.stream, { to: end.revision });
    const found = endOf(recorded);
    if (!found || found.end.id !== end.id) return;
    if (this.ended.size >= REMEMBERED_ENDS) this.ended.delete(this.ended.values().next().value!);
    this.ended.add(end.stream);
    metrics.ended(found.outcome, Math.max(0, (found.end.recordedAt.getTime() - found.submitted.recordedAt.getTime()) / 1000));
  }

  private drive(planId: string, approved: RecordedEvent): void {
    if (this.drives.has(planId)) return;
    const drive = this.carryOutWithRetries(planId, approved)
      .catch((error: unknown) => this.options.logger.error({ err: error, planId }, 'plan execution stopped; it resumes when the plan reactor starts again'))
      .finally(() => this.drives.delete(planId));
    this.drives.set(planId, drive);
  }

  /**
   * A step that threw may heal (a cluster or store that is briefly away, a stream that kept moving): the plan is
   * taken up again from what it recorded, with backoff, until it is finished or this instance stops. Failures that
   * will not heal never get here: they are recorded on the plan as the action's failure.
   */
  private async carryOutWithRetries(planId: string, approved: RecordedEvent): Promise<void> {
    try {
      await retrying(() => this.carryOut(planId, approved), {
        backoff: { baseMs: this.options.retryBaseMs ?? 200, maxMs: this.options.retryMaxMs ?? 30_000 },
        ...(this.signal ? { signal: this.signal } : {}),
        onRetry: ({ error, attempt, delayMs }) => this.options.logger.warn({ err: error, planId, attempt, retryInMs: delayMs }, 'plan step failed; trying again'),
      });
    } catch (error) {
      // Stopped while waiting to try again: the plan is taken up when the plan reactor starts again.
      if (!(error instanceof RetryAborted)) throw error;
    }
  }

  /** Moves the plan on, step by step, until it is finished; each step is recorded before the next is taken. */
  private async carryOut(planId: string, approved: RecordedEvent): Promise<void> {
    const send = (command: ActionPlanCommand, step: string) =>
      this.deps.handler.execute(actionPlans, planId, command, reactionTo(this.name, approved, step));
    for (;;) {
      if (this.signal?.aborted) return;
      const { state: plan } = await this.deps.handler.loadState(actionPlans, planId);
      if (plan.status === 'absent' || plan.shadow || isTerminal(plan.status) || plan.status === 'Failed') return;
      switch (plan.status) {
        case 'Pending':
        case 'Validating':
          return;
        case 'Approved':
          await send({ type: 'StartPlanExecution', planId, at: this.deps.clock.now().toISOString() }, 'start');
          continue;
        case 'RollingBack': {
          // The action whose change was undone on the cluster is recorded as failed; then what the plan carried out is
          // undone, last first, one action at a time, each step recorded before the next; then the rollback is complete.
          const index = plan.actions.findIndex((slot) => slot.status === 'Executing');
          if (index >= 0) {
            await send({ type: 'RecordActionFailed', planId, index, error: plan.cause ?? 'rolled back' }, `rolled-back/${index}`);
            continue;
          }
          const undoing = plan.actions.findIndex((slot) => slot.status === 'Undoing');
          if (undoing >= 0) {
            const outcome = await this.undo(plan, undoing, approved);
            if (this.signal?.aborted) return;
            if (outcome.ok) await send({ type: 'RecordActionUndone', planId, index: undoing, detail: outcome.detail }, `undone/${undoing}`);
            else await send({ type: 'RecordActionNotUndone', planId, index: undoing, reason: outcome.error }, `not-undone/${undoing}`);
            continue;
          }
          const last = plan.actions.findLastIndex((slot) => slot.status === 'Succeeded');
          if (last >= 0) {
            await send({ type: 'StartActionUndo', planId, index: last }, `undo/${last}`);
            continue;
          }
          await send({ type: 'CompletePlanRollback', planId }, 'rollback-complete');
          return;
        }
        case 'Executing': {
          const index = plan.actions.findIndex((slot) => slot.status === 'Pending' || slot.status === 'Executing');
          if (index < 0) return;
          // Execution began in time, but the plan's grounds go stale all the same: past its expiry no further action
          // starts (one already under way, taken up again after a restart, is followed to its end).
          if (plan.actions[index]!.status === 'Pending' && this.deps.clock.now().getTime() >= Date.parse(plan.expiresAt)) {
            await send({ type: 'RecordActionFailed', planId, index, error: `plan expired at ${plan.expiresAt}` }, `expired/${index}`);
            continue;
          }
          // What the deployment runs before the change, for an undo: recorded with the start, before the change is made.
          const before = plan.actions[index]!.status === 'Pending' ? await this.before(plan.actions[index]!.action) : undefined;
          await send({ type: 'RecordActionStarted', planId, index, ...(before ? { before } : {}) }, `started/${index}`);
          const outcome = await this.perform(plan, index, approved);
          if (this.signal?.aborted) return;
          if (outcome.ok) {
            const { detail, after } = outcome;
            await send({ type: 'RecordActionSucceeded', planId, index, detail, ...(after ? { after } : {}) }, `succeeded/${index}`);
          }
          else if (outcome.rolledBack) await send({ type: 'StartPlanRollback', planId, cause: `action ${index}: ${outcome.error}` }, `rollback/${index}`);
          else await send({ type: 'RecordActionFailed', planId, index, error: outcome.error }, `failed/${index}`);
          continue;
        }
      }
    }
  }

  /** The deployment an action changes, as it is before the change: what undoing the action goes back to. */
  private async before(action: PlanAction): Promise<DeploymentBefore | undefined> {
    if (action.kind === 'drain') return undefined;
    const { state } = await this.deps.handler.loadState(deployments, action.deploymentId);
    if (state.status === 'absent') return undefined;
    const { clusterId, replicas, currentRevision: revision, nodeSelector } = state;
    return { clusterId, replicas, revision, ...(nodeSelector ? { nodeSelector } : {}) };
  }

  /**
   * Carries out the undo the plan recorded for action `index`, through the deployment's commands and so through policy,
   * in the plan's name, and follows it until the deployment runs it. Only a deployment still as the action left it is
   * changed back: one changed since by someone else is left as it is. Taken up again after a restart, an undo already
   * made is found (the deployment runs what it asked for) and followed to its end; its command appends nothing again.
   */
  private async undo(plan: SubmittedPlan, index: number, approved: RecordedEvent): Promise<Outcome> {
    const step = plan.actions[index]!.undo!;
    const context: CommandContext = { ...reactionTo(this.name, approved, `undo-change/${index}`), actor: plan.actor, source: `plan:${plan.id}` };
    if (step.kind === 'move') {
      const moves = (name: string): CommandContext => ({ ...reactionTo(this.name, approved, `undo-change/${index}/move-${name}`), actor: plan.actor, source: `plan:${plan.id}` });
      try {
        const outcome = await this.moveBack(plan, index, step, moves);
        if (outcome.ok) return { ok: true, detail: `${undoneBy(step)}: ${outcome.detail}` };
        return { ok: false, error: `its undo (${undoneBy(step)}) failed: ${outcome.error}` };
      } catch (error) {
        if (error instanceof Error && !declaredTransient(error)) return { ok: false, error: `its undo (${undoneBy(step)}) was refused: ${error.message}` };
        throw error;
      }
    }
    const action = undoAction(step);
    try {
      const { state } = await this.deps.handler.loadState(deployments, step.deploymentId);
      if (state.status === 'absent' || state.status === 'Deleted') return { ok: false, error: `deployment ${step.deploymentId} is gone: nothing to undo on it` };
      const since = changedSince(step, state);
      if (since) return { ok: false, error: `deployment ${step.deploymentId} was changed since the plan changed it (${since}): left as it is` };
      if (step.kind !== 'scale' && state.paused) return { ok: false, error: pausedCause(step.deploymentId) };
      const written = await this.change(action, `undo of action ${index} of plan ${plan.id}: ${plan.cause ?? 'the plan rolled back'}`, context);
      const outcome = await this.settled(action, written);
      if (outcome.ok) return { ok: true, detail: `${undoneBy(step)}: ${outcome.detail}` };
      return { ok: false, error: `its undo (${undoneBy(step)}) failed: ${outcome.error}` };
    } catch (error) {
      // Refused by policy or by the deployment's rules: recorded on the deployment, named on the plan.
      if (error instanceof Error && !declaredTransient(error)) return { ok: false, error: `its undo (${undoneBy(step)}) was refused: ${error.message}` };
      throw error;
    }
  }

  /** `plan` as it was before this action was recorded as started: its slot is Executing when a restart took it up again. */
  private async perform(plan: SubmittedPlan, index: number, approved: RecordedEvent): Promise<Outcome> {
    const { action, status } = plan.actions[index]!;
    const context: CommandContext = { ...reactionTo(this.name, approved, `action/${index}`), actor: plan.actor, source: `plan:${plan.id}` };
    try {
      if (action.kind === 'drain') return await this.drain(action, plan.reason, context);
      if (action.kind === 'reschedule' && action.clusterId !== undefined) {
        const { state } = await this.deps.handler.loadState(deployments, action.deploymentId);
        if (state.status !== 'absent' && state.clusterId !== action.clusterId) {
          const paused = await this.heldByPause(action, status === 'Executing');
          if (paused) return { ok: false, error: paused };
          const revision = plan.actions[index]!.before?.revision ?? state.currentRevision;
          return await this.move({
            source: state,
            toClusterId: action.clusterId,
            revision,
            ...(action.nodeSelector ? { nodeSelector: action.nodeSelector } : {}),
            targetId: movedDeploymentId(plan.id, index),
            reason: plan.reason,
            context: (step) => ({ ...reactionTo(this.name, approved, `action/${index}/move-${step}`), actor: plan.actor, source: `plan:${plan.id}` }),
          });
        }
      }
      if (action.kind === 'reschedule' && action.nodeSelector === undefined) {
        return { ok: true, detail: `deployment ${action.deploymentId} is already on cluster ${action.clusterId}` };
      }
      const paused = await this.heldByPause(action, status === 'Executing');
      if (paused) return { ok: false, error: paused };
      const written = await this.change(action, plan.reason, context);
      return await this.settled(action, written);
    } catch (error) {
      // Refused by policy or by the deployment's rules, or a cluster error that will not heal: the action failed.
      if (error instanceof Error && !declaredTransient(error)) return { ok: false, error: error.message };
      throw error;
    }
  }

  /**
   * Moves a deployment to another cluster: the same workload at the revision the source runs (`revision`), with its
   * replicas, strategy and drift policy, is created there as a new deployment (`targetId`, derived from the plan and
   * the action), followed until it is available, and then the source is deleted. Each step goes through the
   * deployment commands, so policy judges the create on the target (quota, cost) and the delete on the source. A
   * target that does not become available is deleted again and the source is left as it was: the move is taken back,
   * as a cluster takes back a rollout that failed. Taken up again after a restart, each step already made is found
   * (its command, sent with the same derived ids, appends nothing again) and the move goes on from there.
   */
  private async move(request: MoveRequest): Promise<Outcome> {
    const { source, toClusterId, targetId, reason, context } = request;
    const { deployments: commands, handler } = this.deps;
    const moving = `the move of deployment ${source.id} from cluster ${source.clusterId} to cluster ${toClusterId}`;
    const { state: found } = await handler.loadState(deployments, targetId);
    if (source.status === 'Deleted' && found.status === 'absent') return { ok: false, error: `deployment ${source.id} was deleted: there is nothing to move` };
    const runs = source.revisions[request.revision] ?? source.revisions[source.currentRevision]!;

    // The target: created at the spec revision the source runs.
    const body = { workloadId: source.workloadId, clusterId: toClusterId, replicas: source.replicas, strategy: runs.strategy, driftPolicy: source.driftPolicy };
    let written: WriteResult;
    try {
      written = await commands.create(targetId, body, context('create'), runs.workloadRevision);
    } catch (error) {
      // Refused by policy on the target (quota, cost), or the target already runs the workload: nothing was moved.
      if (error instanceof Error && !declaredTransient(error)) return { ok: false, error: `${moving} was refused: ${error.message}` };
      throw error;
    }
    const { state: target } = await handler.loadState(deployments, targetId);
    if (target.status === 'absent') return { ok: false, error: `${moving} was refused: deployment ${targetId} was not created` };
    if (target.status === 'Deleted') return { ok: false, rolledBack: true, error: `${moving} failed: deployment ${targetId} on cluster ${toClusterId} was deleted` };
    let settled: Outcome;
    try {
      if (request.nodeSelector) {
        const rescheduled = await commands.reschedule(targetId, request.nodeSelector, reason, context('reschedule'));
        if (rescheduled.revision > written.revision) written = rescheduled;
      }
      settled = await this.settled({ kind: 'update', deploymentId: targetId }, written, 0);
    } catch (error) {
      // The reschedule of the target refused (by policy, say): the target is taken back like one that failed.
      if (!(error instanceof Error) || declaredTransient(error)) throw error;
      settled = { ok: false, error: error.message };
    }
    if (this.signal?.aborted) return { ok: false, error: 'stopped' };
    if (!settled.ok) {
      const left = await this.deleteDeployment(targetId, `${moving} failed: ${settled.error}`, context('take-back'));
      const after = left ?? `deployment ${targetId} on cluster ${toClusterId} was deleted again and ${source.id} stays on cluster ${source.clusterId}`;
      return { ok: false, rolledBack: left === undefined, error: `${moving} failed: ${settled.error}; ${after}` };
    }
    const after = settled.after!;

    const left = await this.deleteDeployment(source.id, `${moving}: ${reason}`, context('delete'));
    if (left) return { ok: false, error: `${moving} left deployment ${targetId} available on cluster ${toClusterId}, but ${left}` };
    return {
      ok: true,
      detail: `deployment ${source.id} moved from cluster ${source.clusterId} to cluster ${toClusterId} as deployment ${targetId}, available at revision ${after.revision} with ${after.replicas} replicas; deployment ${source.id} deleted`,
      after: { ...after, deploymentId: targetId, clusterId: toClusterId },
    };
  }

  /**
   * Undoes a move by the reverse move: the deployment the move created goes back to the cluster it came from, as a new
   * deployment (the one moved is deleted for good), at the revision and replicas the move left, and is then deleted.
   * Only while it still runs what the move left; taken up again after a restart, the reverse move goes on from there.
   */
  private async moveBack(plan: SubmittedPlan, index: number, step: Extract<UndoStep, { kind: 'move' }>, context: (step: string) => CommandContext): Promise<Outcome> {
    const { handler } = this.deps;
    const targetId = movedDeploymentId(plan.id, index, 'back');
    const [{ state }, { state: back }] = await Promise.all([handler.loadState(deployments, step.deploymentId), handler.loadState(deployments, targetId)]);
    if (state.status === 'absent' || (state.status === 'Deleted' && back.status === 'absent')) {
      return { ok: false, error: `deployment ${step.deploymentId} is gone: nothing to undo on it` };
    }
    if (back.status === 'absent') {
      const since = changedSince(step, state);
      if (since) return { ok: false, error: `deployment ${step.deploymentId} was changed since the plan changed it (${since}): left as it is` };
      if (state.paused) return { ok: false, error: pausedCause(step.deploymentId) };
    }
    return this.move({
      source: state,
      toClusterId: step.toClusterId,
      revision: step.revision,
      ...(step.nodeSelector ? { nodeSelector: step.nodeSelector } : {}),
      targetId,
      reason: `undo of action ${index} of plan ${plan.id}: ${plan.cause ?? 'the plan rolled back'}`,
      context,
    });
  }

  /**
   * Deletes a deployment through its command (and policy), unless it is gone already; undefined once it is, or else why
   * it is still there (a refusal, or a failure that will not heal).
   */
  private async deleteDeployment(deploymentId: string, reason: string, context: CommandContext): Promise<string | undefined> {
    const { state } = await this.deps.handler.loadState(deployments, deploymentId);
    if (state.status === 'absent' || state.status === 'Deleted') return undefined;
    try {
      await this.deps.deployments.delete(deploymentId, reason, context);
      return undefined;
    } catch (error) {
      if (error instanceof Error && !declaredTransient(error)) return `deployment ${deploymentId} could not be deleted and is left as it is: ${error.message}`;
      throw error;
    }
  }

  private change(action: Exclude<PlanAction, { kind: 'drain' }>, reason: string, context: CommandContext): Promise<WriteResult> {
    const { deployments: commands } = this.deps;
    switch (action.kind) {
      case 'reschedule':
        return commands.reschedule(action.deploymentId, action.nodeSelector ?? {}, reason, context);
      case 'scale':
        return commands.scale(action.deploymentId, action.replicas, context);
      case 'rollback':
        return commands.rollback(action.deploymentId, action.toRevision, reason, context);
      case 'restart':
        return commands.restart(action.deploymentId, reason, context);
      case 'update':
        return commands.update(action.deploymentId, action.workloadRevision === undefined ? {} : { workloadRevision: action.workloadRevision }, context);
    }
  }

  /**
   * Why the action cannot be carried out now because its deployment is paused, or undefined when it can. An action
   * taken up again after a restart may have made its change before the pause: a rollout already under way on the
   * cluster is followed to its end (`settled` tells a change that still waits).
   */
  private async heldByPause(action: Exclude<PlanAction, { kind: 'drain' }>, resumed: boolean): Promise<string | undefined> {
    if (!HELD_WHILE_PAUSED.has(action.kind)) return undefined;
    const { state } = await this.deps.handler.loadState(deployments, action.deploymentId);
    if (state.status === 'absent' || !state.paused) return undefined;
    if (resumed && (state.status === 'Applying' || state.status === 'Progressing')) return undefined;
    return pausedCause(action.deploymentId);
  }

  /**
   * Waits until the deployment runs the change (available at the revision it made), or the rollout failed, in
   * which case the cluster reactor undoes it when it can (a rollback, or a scale back) and the action counts as
   * rolled back. A change that a paused deployment holds fails the action at once: it would wait for the resume.
   */
  private async settled(action: Exclude<PlanAction, { kind: 'drain' }>, written: WriteResult, undoGraceMs = UNDO_GRACE_MS): Promise<Outcome> {
    const { deploymentId } = action;
    const { handler } = this.deps;
    const stream = streamOf(deployments, deploymentId);
    const deadline = Date.now() + this.options.actionTimeoutMs;
    // A change refused by policy left only its judgement; answered again from it after a restart, the command
    // reports that event, which is no change at all.
    if (written.appended === 0 && written.revision >= 0) {
      const [own] = await handler.store.readStream(stream, { from: written.revision, limit: 1 });
      if (own?.type === 'PolicyEvaluated' && policyEvents.parse(own.type, own.schemaVersion, own.data).data.verdict === 'deny') {
        return { ok: false, error: `the change to deployment ${deploymentId} was refused by policy (decision ${own.id})` };
      }
    }
    // The revision the change made (or found): later revisions are the cluster's undoing or someone else's change.
    let target: number | undefined;
    let failedSeenAt: number | undefined;
    for (;;) {
      // Listening before reading: a settling event handled while the reads below are under way wakes the wait after
      // them, instead of leaving it to the poll.
      const listening = this.listen(deploymentId);
      try {
        const outcome = await this.settledNow(action, written, { target, failedSeenAt, deadline, undoGraceMs });
        if ('ok' in outcome) return outcome;
        ({ target, failedSeenAt } = outcome);
        await listening.settledOrAfter(Math.min(deadline - Date.now(), this.options.settlePollMs ?? 1000));
      } finally {
        listening.stop();
      }
      if (this.signal?.aborted) return { ok: false, error: 'stopped' };
    }
  }

  /**
   * Whether the change has settled, judged on the deployment's stream as it is now; if not, what the next look
   * needs to know (the revision the change made, when a failure was first seen).
   */
  private async settledNow(
    action: Exclude<PlanAction, { kind: 'drain' }>,
    written: WriteResult,
    seen: { target: number | undefined; failedSeenAt: number | undefined; deadline: number; undoGraceMs: number },
  ): Promise<Outcome | { target: number; failedSeenAt: number | undefined }> {
    const { deploymentId } = action;
    const { handler } = this.deps;
    const stream = streamOf(deployments, deploymentId);
    let { target, failedSeenAt } = seen;
    const { state } = await handler.loadState(deployments, deploymentId);
    if (state.status === 'absent') return { ok: false, error: `deployment ${deploymentId} does not exist` };
    target ??= (await this.revisionWhenWritten(deploymentId, written)) ?? state.currentRevision;
    // Only what came after the change can settle it.
    const since = await handler.store.readStream(stream, { from: written.revision + 1 });
    const failed = rolloutFailedAt(since, target);
    if (failed) {
      const { cause } = failed.parsed.data;
      const undone = since.some((event) => comparePositions(event.position, failed.event.position) > 0 && isClusterReaction(event));
      if (undone) return { ok: false, rolledBack: true, error: `deployment ${deploymentId} rolled back: ${cause}` };
      // No earlier state to go back to: after a short grace for the cluster reactor, the action failed.
      failedSeenAt ??= Date.now();
      if (Date.now() - failedSeenAt >= seen.undoGraceMs) return { ok: false, error: `deployment ${deploymentId} failed: ${cause}` };
    } else if (state.status === 'Deleted') {
      return { ok: false, error: `deployment ${deploymentId} was deleted` };
    } else if (state.status === 'Available') {
      return state.currentRevision === target
        ? { ok: true, detail: `deployment ${deploymentId} available at revision ${target} with ${state.replicas} replicas`, after: { replicas: state.replicas, revision: target } }
        : { ok: false, error: `deployment ${deploymentId} was changed again (revision ${state.currentRevision}) before revision ${target} settled` };
    } else if (state.paused && state.status === 'Pending' && HELD_WHILE_PAUSED.has(action.kind)) {
      // Paused before the cluster reactor took the change up (or by the time a restart took the plan up again).
      return { ok: false, error: pausedCause(deploymentId) };
    }
    if (seen.deadline - Date.now() <= 0) return { ok: false, error: `deployment ${deploymentId} did not settle within ${Math.round(this.options.actionTimeoutMs / 1000)} s` };
    return { target, failedSeenAt };
  }

  /**
   * The deployment's current revision when the change was written, read back from there to the last event that
   * made a revision. Read later, the deployment may already have moved on: a rollout that failed fast, or one that
   * failed while no plan reactor ran, has been rolled back to a newer revision.
   */
  private async revisionWhenWritten(deploymentId: string, written: WriteResult): Promise<number | undefined> {
    if (written.revision < 0) return undefined;
    const made = await this.deps.handler.latestOf(deployments, deploymentId, REVISION_MADE, written.revision);
    if (!made) return undefined;
    const event = deploymentEventOf(made);
    switch (event.type) {
      case 'DeploymentCreated':
        return 1;
      case 'DeploymentUpdated':
      case 'DeploymentRollbackRequested':
        return event.data.revision;
      case 'DeploymentRolledBack':
        return event.data.newRevision;
      default:
        return undefined;
    }
  }

  /**
   * Judged first: a drain that policy refuses (a change freeze, a rate limit) fails with the policy's words and
   * leaves the node as it was. The driver cordons and evicts in one call, all pods side by side: there are no
   * batches to stop between, so once the drain is let through it runs to its end.
   */
  private async drain(action: Extract<PlanAction, { kind: 'drain' }>, reason: string, context: CommandContext): Promise<Outcome> {
    // A cluster not connected yet is a wait, not a refusal: nothing is judged or admitted before the drain can run.
    const driver = await this.deps.driverFor(action.clusterId);
    await this.deps.drains.start(action.clusterId, action.node, reason, context);
    const report = await driver.drain(action.node, { evictionTimeoutMs: this.options.evictionTimeoutMs });
    if (report.stuck.length > 0) {
      const stuck = report.stuck.map((pod) => `${pod.pod} (${pod.reason})`).join(', ');
      return { ok: false, error: `node ${action.node} is cordoned but ${report.stuck.length} pod(s) could not be evicted: ${stuck}` };
    }
    return { ok: true, detail: `node ${action.node} drained: ${report.evicted.length} pod(s) evicted` };
  }

  /**
   * Listens for the deployment to settle something from now on: `settledOrAfter` resolves once a settling event has
   * been handled since `listen` (at once if one already was), or after `ms`. `stop` ends the listening.
   */
  private listen(deploymentId: string): { settledOrAfter(ms: number): Promise<void>; stop(): void } {
    const wakers = this.waiting.get(deploymentId) ?? new Set<() => void>();
    this.waiting.set(deploymentId, wakers);
    let woken!: () => void;
    const settled = new Promise<void>((resolve) => (woken = resolve));
    wakers.add(woken);
    return {
      async settledOrAfter(ms) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms))))]);
        clearTimeout(timer);
      },
      stop: () => {
        wakers.delete(woken);
        if (wakers.size === 0 && this.waiting.get(deploymentId) === wakers) this.waiting.delete(deploymentId);
      },
    };
  }
}

/** A move of `source` to another cluster, as `targetId` there; `context` names each of its commands. */
interface MoveRequest {
  source: PlacedDeployment;
  toClusterId: string;
  /** The deployment revision whose workload spec revision the target runs. */
  revision: number;
  nodeSelector?: Record<string, string>;
  targetId: string;
  reason: string;
  context: (step: string) => CommandContext;
}

/** The undo as the plan action that carries it out (a move is carried out by `moveBack`). */
function undoAction(step: Exclude<UndoStep, { kind: 'move' }>): Exclude<PlanAction, { kind: 'drain' }> {
  switch (step.kind) {
    case 'scale':
      return { kind: 'scale', deploymentId: step.deploymentId, replicas: step.replicas };
    case 'rollback':
      return { kind: 'rollback', deploymentId: step.deploymentId, toRevision: step.toRevision };
    case 'reschedule':
      return { kind: 'reschedule', deploymentId: step.deploymentId, nodeSelector: step.nodeSelector };
  }
}

function undoneBy(step: UndoStep): string {
  switch (step.kind) {
    case 'scale':
      return `scaled back from ${step.from} to ${step.replicas} replicas`;
    case 'rollback':
      return `rolled back from revision ${step.from} to revision ${step.toRevision}`;
    case 'reschedule':
      return `rescheduled back to ${Object.keys(step.nodeSelector).length === 0 ? 'any node' : JSON.stringify(step.nodeSelector)}`;
    case 'move':
      return `moved back from cluster ${step.from} to cluster ${step.toClusterId}`;
  }
}

/**
 * How the deployment differs from what the action left, if it does: neither what the action made nor what its undo
 * makes (an undo already made before a restart took the plan up again is what it asked for, not a change by others).
 */
function changedSince(step: UndoStep, state: Exclude<Deployment, { status: 'absent' }>): string | undefined {
  switch (step.kind) {
    case 'scale':
      return state.replicas === step.from || state.replicas === step.replicas ? undefined : `${state.replicas} replicas, not ${step.from}`;
    case 'rollback': {
      const current = state.currentRevision;
      const undoneAlready = current > step.from && state.revisions[current]?.rollbackOf === step.toRevision && !state.revisions[current]?.automaticRollback;
      return current === step.from || undoneAlready ? undefined : `revision ${current}, not ${step.from}`;
    }
    case 'reschedule': {
      const selector = state.nodeSelector ?? {};
      return isDeepStrictEqual(selector, step.from) || isDeepStrictEqual(selector, step.nodeSelector) ? undefined : `node selector ${JSON.stringify(selector)}`;
    }
    case 'move':
      return state.replicas === step.replicas && state.currentRevision === step.revision
        ? undefined
        : `${state.replicas} replicas at revision ${state.currentRevision}, not ${step.replicas} at revision ${step.revision}`;
  }
}

function pausedCause(deploymentId: string): string {
  return `deployment ${deploymentId} is paused: resume it first`;
}

/** Statuses in which a plan has ended: the terminal ones, and Failed, which waits for a person. */
function hasEnded(status: ActionPlan['status']): status is PlanStatus {
  return isTerminal(status) || status === 'Failed';
}

/**
 * Where a plan's stream says it ended: its submission, the first event after which its status (as the decider folds
 * it) is an end status, and that status as an outcome. Undefined for a plan that has not ended, or a shadow plan.
 */
function endOf(recorded: RecordedEvent[]): { submitted: RecordedEvent; end: RecordedEvent; outcome: PlanOutcome } | undefined {
  const submitted = recorded.find((event) => event.type === 'ActionPlanSubmitted');
  let plan: ActionPlan = actionPlanDecider.initialState;
  for (const event of recorded) {
    // The plan's stream also holds its policy decisions, which do not change its state.
    if (!(actionPlanEvents.types as readonly string[]).includes(event.type)) continue;
    plan = actionPlanDecider.evolve(plan, actionPlanEvents.parse(event.type, event.schemaVersion, event.data));
    if (plan.status === 'absent' || plan.shadow) return undefined;
    if (hasEnded(plan.status)) return submitted && { submitted, end: event, outcome: outcomeOf(plan.status) };
  }
  return undefined;
}

function outcomeOf(status: PlanStatus): PlanOutcome {
  return status.replace(/(?<=[a-z])(?=[A-Z])/g, '_').toLowerCase() as PlanOutcome;
}

/** The plan an `ActionPlanApproved` event approved, read through the plan's event definitions. */
function planIdOf(event: RecordedEvent): string {
  return actionPlanEvents.parse(event.type, event.schemaVersion, event.data).data.planId;
}

/**
 * The first `DeploymentRolloutFailed` for `revision` among a deployment stream's events, parsed. The stream also
 * holds records that are not deployment events (`PolicyEvaluated`): only the failures are read.
 */
export function rolloutFailedAt(
  events: readonly RecordedEvent[],
  revision: number,
): { event: RecordedEvent; parsed: Extract<DeploymentEvent, { type: 'DeploymentRolloutFailed' }> } | undefined {
  for (const event of events) {
    if (event.type !== 'DeploymentRolloutFailed') continue;
    const parsed = deploymentEventOf(event);
    if (parsed.type === 'DeploymentRolloutFailed' && parsed.data.revision === revision) return { event, parsed };
  }
  return undefined;
}
