// Carries out canary rollouts: a canary object next to the stable one, replica counts per weight, pauses and analysis
// intervals on durable timers, analysis through the metric providers, and at the end either the stable object taking
// the canary's spec (completed) or traffic back on the stable side and the deployment back on its stable revision
// (aborted). Each step is decided by the rollout's decider (domain/rollout.ts) and recorded before it is carried out;
// carrying it out is idempotent, so a step handled again after a restart changes nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { v5 as uuidv5 } from 'uuid';
import { z } from 'zod';
import { systemClock, type Clock } from '../commands/clock.js';
import { deployments } from '../commands/aggregates.js';
import type { CommandContext, CommandHandler, Gate } from '../commands/command-handler.js';
import { surgePods } from '../commands/deployment-change.js';
import { rollouts } from '../commands/deployment-commands.js';
import { durationMs, type AnalysisProvider, type AnalysisTemplate } from '../domain/analysis/analysis.js';
import { inferenceAnalysisTemplate } from '../domain/analysis/inference-templates.js';
import { InvalidTransition, NotFound, PolicyViolation } from '../domain/decider.js';
import { deploymentEvents, type Deployment, type DeploymentCommand, type DeploymentEvent, type PlacedDeployment } from '../domain/deployment.js';
import type { RecordedEvent } from '../domain/event-store.js';
import {
  currentRun,
  isInProgress,
  rolloutIdOf,
  rolloutStreamEvents,
  type AnalysisStepSpec,
  type RolloutCommand,
  type StartedRollout,
} from '../domain/rollout.js';
import type { WorkloadSpec } from '../domain/workload.js';
import { measureDue, nextDueAt, type MetricProvider } from './analysis-runner.js';
import type { ClusterDriver, DesiredWorkload, LiveWorkload, ObjectRef } from './cluster-driver.js';
import { reactionTo } from './reaction-context.js';
import type { Reactor } from './reactor-runtime.js';
import { canaryRollout, desiredOf, isComplete } from './reconcile.js';
import type { OwnedTimers, TimerService } from './timers.js';

export const ROLLOUT_REACTOR = 'rollouts';

/** Namespace of the analysis run ids the reactor derives (uuid v5 of the rollout and step). */
const RUN_NAMESPACE = 'a3c1f0d2-6b4e-5f7a-8c9d-0e1f2a3b4c5d';

/** Deployment events that start a canary, or end one that another change took the place of. */
const DEPLOYMENT_TRIGGERS = ['DeploymentUpdated', 'DeploymentScaled', 'DeploymentRollbackRequested', 'DeploymentDeleted', 'DeploymentRolledBack'] as const;

const timerPayload = z.object({ rolloutId: z.string(), kind: z.enum(['pause', 'measure']), step: z.int().optional(), runId: z.string().optional() });
type TimerPayload = z.infer<typeof timerPayload>;

export interface RolloutReactorOptions {
  logger: Logger;
  /** The driver of a connected cluster; throws a transient error while it is not connected yet. */
  driverFor(clusterId: string): Promise<ClusterDriver>;
  /** The metric sources analysis steps read: Prometheus (PROMETHEUS_URL) and Sentinel's telemetry, where configured. */
  providers: Partial<Record<AnalysisProvider, MetricProvider>>;
  /** How long canary (or stable) pods may take to become ready before the rollout is aborted. */
  progressDeadlineSeconds: number;
  /** How often an object is read while waiting for its pods; default 250 ms. */
  pollMs?: number;
  clock?: Clock;
  /** How the automatic rollback after an abort is judged and admitted (`DeploymentCommands.judgedObservation`). */
  judged?: (action: 'rollback', deploymentId: string, context: CommandContext) => Gate<DeploymentCommand, DeploymentEvent, Deployment>;
  /** How the completed rollout gives its surge pods back to the ledger (`DeploymentCommands.settledObservation`). */
  settled?: (deploymentId: string, context: CommandContext) => Gate<DeploymentCommand, DeploymentEvent, Deployment>;
}

/** Why a rollout cannot go on as it stands; it is aborted with this cause. */
class RolloutStuck extends Error {}

export class RolloutReactor implements Reactor {
  readonly name = ROLLOUT_REACTOR;
  readonly eventTypes = [...DEPLOYMENT_TRIGGERS, ...rolloutStreamEvents.types];
  private readonly timers: OwnedTimers<TimerPayload>;
  private readonly clock: Clock;

  constructor(
    private readonly handler: CommandHandler,
    timers: TimerService,
    private readonly options: RolloutReactorOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.timers = timers.register(ROLLOUT_REACTOR, { payload: timerPayload, fire: (timer, cause) => this.fired(timer.payload, cause) });
  }

  /** One lane per deployment: its changes and its rollouts' steps in log order. */
  keyOf(event: RecordedEvent): string {
    if (event.stream.startsWith('rollout-')) return event.stream.slice('rollout-'.length).split('.')[0]!;
    return deploymentEvents.parse(event.type, event.schemaVersion, event.data).data.deploymentId;
  }

  async handle(event: RecordedEvent, signal: AbortSignal): Promise<void> {
    if (event.stream.startsWith('rollout-')) await this.step(event, signal);
    else await this.deploymentChanged(event);
  }

  // ---- deployment changes -----------------------------------------------------------------------------

  private async deploymentChanged(event: RecordedEvent): Promise<void> {
    const { deploymentId } = deploymentEvents.parse(event.type, event.schemaVersion, event.data).data;
    const { state } = await this.handler.loadState(deployments, deploymentId);
    if (state.status === 'absent') return;
    const canary = state.status === 'Deleted' ? undefined : canaryRollout(state);
    const rolloutId = rolloutIdOf(deploymentId, state.currentRevision);
    const replaced = await this.supersede(state, event, canary ? state.currentRevision : undefined);
    // With no canary to follow, the canary object of the rollout replaced goes; a canary that follows reuses it.
    if (replaced && !canary) await this.deleteCanary(state);
    if (canary && event.type === 'DeploymentScaled') {
      // The cluster reactor leaves a canary's objects alone: the count is split here, at the weight the rollout stands at.
      await this.execute({ type: 'RescaleRollout', rolloutId, replicas: state.replicas, at: this.now() }, reactionTo(this.name, event, 'rescale')).catch((error: unknown) => {
        if (!(error instanceof NotFound)) throw error;
      });
      return;
    }
    if (!canary || event.type !== 'DeploymentUpdated') return;
    const strategy = state.revisions[state.currentRevision]!.strategy;
    if (strategy.type !== 'canary') return;
    const at = this.now();
    await this.execute(
      {
        type: 'StartRollout',
        rolloutId,
        deploymentId,
        revision: state.currentRevision,
        stableRevision: canary.stableRevision,
        replicas: state.replicas,
        steps: strategy.steps,
        at,
      },
      reactionTo(this.name, event, 'start'),
    );
    const revision = state.currentRevision;
    await this.record({ type: 'RecordApplying', deploymentId, revision }, reactionTo(this.name, event, 'applying'));
    await this.record({ type: 'RecordApplied', deploymentId, revision }, reactionTo(this.name, event, 'applied'));
  }

  /** Aborts, as superseded, every rollout of the deployment still in progress other than `keep`'s; whether there was one. */
  private async supersede(state: PlacedDeployment, event: RecordedEvent, keep: number | undefined): Promise<boolean> {
    let replaced = false;
    for (const revision of Object.values(state.revisions)) {
      if (revision.revision === keep || revision.strategy.type !== 'canary' || revision.rollbackOf !== undefined) continue;
      const rolloutId = rolloutIdOf(state.id, revision.revision);
      const { state: rollout } = await this.handler.loadState(rollouts, rolloutId);
      if (!isInProgress(rollout)) continue;
      const cause = state.status === 'Deleted' ? 'the deployment was deleted' : `replaced by revision ${state.currentRevision}`;
      await this.execute({ type: 'AbortRollout', rolloutId, cause, superseded: true, at: this.now() }, reactionTo(this.name, event, `supersede-${revision.revision}`));
      replaced = true;
    }
    return replaced;
  }

  // ---- the step machine ---------------------------------------------------------------------------------

  private async step(event: RecordedEvent, signal: AbortSignal): Promise<void> {
    const parsed = rolloutStreamEvents.parse(event.type, event.schemaVersion, event.data);
    const rolloutId = event.stream.slice('rollout-'.length);
    const { state: rollout } = await this.handler.loadState(rollouts, rolloutId);
    if (rollout.status === 'absent') return;
    try {
      switch (parsed.type) {
        case 'RolloutStarted':
        case 'RolloutResumed':
        case 'RolloutPromoted':
          await this.advance(rollout, event);
          return;
        case 'RolloutWeightSet':
          // Only the weight the rollout stands at now: an earlier one handled again would move the counts back.
          if (!isInProgress(rollout) || rollout.step !== parsed.data.step + 1 || rollout.weight !== parsed.data.weight) return;
          await this.setWeight(rollout, signal);
          await this.advance(rollout, event);
          return;
        case 'RolloutPaused':
          if (parsed.data.until !== undefined && rollout.waiting?.kind === 'pause' && rollout.waiting.step === parsed.data.step) {
            const payload: TimerPayload = { rolloutId, kind: 'pause', step: parsed.data.step };
            await this.timers.schedule({ timerId: `rollout-${rolloutId}-pause-${parsed.data.step}`, dueAt: new Date(parsed.data.until), payload }, reactionTo(this.name, event, 'pause-timer'));
          }
          return;
        case 'AnalysisRunStarted':
        case 'AnalysisMeasured':
          await this.scheduleMeasurement(rollout, event);
          return;
        case 'AnalysisRunCompleted':
          if (parsed.data.verdict === 'successful') await this.advance(rollout, event);
          return;
        case 'RolloutAborted':
          if (!parsed.data.superseded) await this.aborted(rollout, signal, event);
          return;
        case 'RolloutCompleted':
          await this.completed(rollout, signal, event);
          return;
        case 'RolloutRescaled':
          if (isInProgress(rollout) && rollout.replicas === parsed.data.replicas) await this.rescale(rollout);
          return;
        case 'RolloutAnalysisStarted':
          return;
      }
    } catch (error) {
      if (!(error instanceof RolloutStuck)) throw error;
      this.options.logger.warn({ rolloutId, cause: error.message }, 'canary rollout cannot go on; aborting it');
      await this.execute({ type: 'AbortRollout', rolloutId, cause: error.message, at: this.now() }, reactionTo(this.name, event, 'stuck')).catch((failure: unknown) => {
        if (!(failure instanceof InvalidTransition)) throw failure;
      });
    }
  }

  /** Begins the next step (or completes the rollout), as the decider says, with what an analysis step needs resolved. */
  private async advance(rollout: StartedRollout, cause: RecordedEvent): Promise<void> {
    if (rollout.status !== 'Progressing' || rollout.waiting) return;
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const next = rollout.steps[rollout.step];
    const runId = uuidv5(`${rollout.rolloutId}\u0000${rollout.step}`, RUN_NAMESPACE);
    const analysis = next?.kind === 'analysis' ? this.analysisOf(next.analysis, deployment) : undefined;
    await this.execute(
      { type: 'AdvanceRollout', rolloutId: rollout.rolloutId, replicas: deployment.replicas, runId, at: this.now(), ...(analysis ? { analysis } : {}) },
      reactionTo(this.name, cause, `advance-${rollout.step}`),
    );
  }

  /** The template an analysis step runs, and its arguments: the canary's and the stable side's pods, by name. */
  private analysisOf(step: AnalysisStepSpec, deployment: PlacedDeployment): { template: AnalysisTemplate; args: Record<string, string> } {
    const spec = specOf(deployment);
    const builtIn: Record<string, string> = {
      namespace: spec.namespace,
      // Pods are named <object>-<template hash>-<suffix>; PromQL matches the whole name.
      canaryPods: `${spec.name}-canary-[a-z0-9]+-[a-z0-9]+`,
      stablePods: `${spec.name}-[a-z0-9]+-[a-z0-9]+`,
      clusterId: deployment.clusterId,
      canaryNodes: '.+',
    };
    const template =
      step.template === 'inference'
        ? inferenceAnalysisTemplate({
            slo: { ...(spec.slo?.latencyP99Ms !== undefined ? { latencyP99Ms: spec.slo.latencyP99Ms } : {}), ...(spec.slo?.successRate !== undefined ? { successRate: spec.slo.successRate } : {}) },
            ...(step.interval ? { interval: step.interval } : {}),
            ...(step.count !== undefined ? { count: step.count } : {}),
            ...(step.rateWindow ? { rateWindow: step.rateWindow } : {}),
            ...(step.inconclusiveLimit !== undefined ? { inconclusiveLimit: step.inconclusiveLimit } : {}),
            // GPU memory headroom is read from telemetry: only for a GPU workload, and only where telemetry is wired.
            gpuMemoryHeadroom: spec.resources.gpu !== undefined && this.options.providers.telemetry !== undefined,
          })
        : step.template;
    const missing = [...new Set(template.metrics.map((m) => m.provider))].filter((p) => !this.options.providers[p]);
    if (missing.length > 0) {
      throw new RolloutStuck(`the analysis step needs the ${missing.join(' and ')} metric provider, which is not configured${missing.includes('prometheus') ? ' (set PROMETHEUS_URL)' : ''}`);
    }
    return { template, args: { ...builtIn, ...step.args } };
  }

  /** The next measurement of the run the rollout waits on, on a durable timer: the first after `initialDelay`. */
  private async scheduleMeasurement(rollout: StartedRollout, cause: RecordedEvent): Promise<void> {
    const entry = currentRun(rollout);
    if (!entry || entry.run.status !== 'running') return;
    const measured = entry.measurements.length;
    const step = rollout.steps[entry.step];
    const delay = measured === 0 && step?.kind === 'analysis' && step.analysis.initialDelay ? durationMs(step.analysis.initialDelay) : 0;
    const due = measured === 0 ? new Date(Date.parse(entry.run.startedAt) + delay) : nextDueAt(entry.run);
    if (!due) return;
    const payload: TimerPayload = { rolloutId: rollout.rolloutId, kind: 'measure', runId: entry.runId };
    await this.timers.schedule({ timerId: `rollout-${rollout.rolloutId}-${entry.runId}-${measured}`, dueAt: due, payload }, reactionTo(this.name, cause, `measure-timer-${measured}`));
  }

  /** A pause ran out, or a measurement is due. */
  private async fired(payload: TimerPayload, cause: RecordedEvent): Promise<void> {
    const { rolloutId } = payload;
    if (payload.kind === 'pause') {
      await this.execute({ type: 'ResumeRollout', rolloutId, step: payload.step ?? -1, at: this.now() }, reactionTo(this.name, cause, 'resume'));
      return;
    }
    const { state: rollout } = await this.handler.loadState(rollouts, rolloutId);
    const entry = currentRun(rollout);
    if (!entry || entry.runId !== payload.runId || entry.run.status !== 'running') return;
    const at = new Date(this.now());
    const readings = await measureDue(entry.run, this.options.providers, at);
    if (readings.length === 0) return;
    await this.execute({ type: 'RecordMeasurements', rolloutId, runId: entry.runId, readings, at: at.toISOString() }, reactionTo(this.name, cause, 'measure'));
  }

  // ---- on the cluster -----------------------------------------------------------------------------------

  /** The counts of the weight the rollout stands at: the stable side down first, so the total never grows. */
  private async setWeight(rollout: StartedRollout, signal: AbortSignal): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const stableRef = driver.refFor(desired);
    const stable = await driver.read(stableRef);
    if (stable && stable.replicas !== rollout.stableReplicas) await driver.scale(stableRef, rollout.stableReplicas);
    const canary: DesiredWorkload = { ...desired, role: 'canary', replicas: rollout.canaryReplicas };
    await driver.apply(canary);
    await this.ready(driver, driver.refFor(canary), rollout.canaryReplicas, 'canary', signal);
  }

  /** Both sides at the counts of a new replica count; a canary not created yet (weight 0) has none to take. */
  private async rescale(rollout: StartedRollout): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    // Both sides move the same way: a scale down frees what the ledger no longer holds, a scale up was admitted first.
    for (const [ref, replicas] of [
      [driver.refFor(desired), rollout.stableReplicas],
      [driver.refFor({ ...desired, role: 'canary' }), rollout.canaryReplicas],
    ] as const) {
      const live = await driver.read(ref);
      if (live && live.replicas !== replicas) await driver.scale(ref, replicas);
    }
  }

  /**
   * Every step passed: the stable object takes the canary's spec at the count it has, then pods move over from the
   * canary a surge's worth at a time (the stable side up first, then the canary down, so the total stays within
   * the replicas and the surge the deployment was admitted with, and never below the replicas), and the canary goes.
   */
  private async completed(rollout: StartedRollout, signal: AbortSignal, cause: RecordedEvent): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const stableRef = driver.refFor(desired);
    const canaryRef = driver.refFor({ ...desired, role: 'canary' });
    const replicas = deployment.replicas;
    const canaryLive = await driver.read(canaryRef);
    let canaryCount = Math.min(canaryLive?.replicas ?? 0, replicas);
    let stableCount = Math.max(replicas - canaryCount, 0);
    await driver.apply({ ...desired, replicas: stableCount });
    await this.ready(driver, stableRef, stableCount, 'stable', signal);
    const batch = Math.max(1, surgePods(deployment));
    while (canaryCount > 0) {
      const moved = Math.min(batch, canaryCount);
      stableCount += moved;
      await driver.scale(stableRef, stableCount);
      await this.ready(driver, stableRef, stableCount, 'stable', signal);
      canaryCount -= moved;
      await driver.scale(canaryRef, canaryCount);
    }
    if (stableCount !== replicas) {
      await driver.scale(stableRef, replicas);
      await this.ready(driver, stableRef, replicas, 'stable', signal);
    }
    await driver.delete(canaryRef);
    const live = await driver.read(stableRef);
    const { deploymentId, revision } = rollout;
    await this.record(
      { type: 'RecordAvailable', deploymentId, revision, readyReplicas: live?.rollout.readyReplicas ?? replicas },
      reactionTo(this.name, cause, 'available'),
      'settled',
    );
  }

  /**
   * Traffic back on the stable side: the canary goes first (its pods serve what failed), then the stable object is
   * back at full replicas. Then the failure is recorded with the measurements that failed, and the deployment goes
   * back to its stable revision through the automatic rollback, judged by policy like any other.
   */
  private async aborted(rollout: StartedRollout, signal: AbortSignal, cause: RecordedEvent): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const stableRef = driver.refFor(desired);
    await driver.delete(driver.refFor({ ...desired, role: 'canary' }));
    const stable = await driver.read(stableRef);
    if (stable && stable.replicas !== deployment.replicas) await driver.scale(stableRef, deployment.replicas);
    await this.ready(driver, stableRef, deployment.replicas, 'stable', signal).catch((error: unknown) => {
      // The stable side not coming back in time is the cluster's to report; the rollback goes ahead regardless.
      if (!(error instanceof RolloutStuck)) throw error;
      this.options.logger.warn({ rolloutId: rollout.rolloutId, cause: error.message }, 'the stable side is not fully ready after the abort');
    });
    const { deploymentId, revision, stableRevision } = rollout;
    const reason = rollout.cause ?? 'aborted';
    await this.record(
      { type: 'RecordRolloutFailed', deploymentId, revision, cause: `canary aborted: ${reason}`, failedMeasurements: rollout.failedMeasurements ?? [] },
      reactionTo(this.name, cause, 'failed'),
    );
    try {
      await this.record(
        { type: 'RecordRolledBack', deploymentId, revision, toRevision: stableRevision, cause: `canary aborted: ${reason}` },
        reactionTo(this.name, cause, 'rolled-back'),
        'rollback',
      );
    } catch (error) {
      if (!(error instanceof PolicyViolation || error instanceof InvalidTransition)) throw error;
      this.options.logger.error({ deploymentId, revision, toRevision: stableRevision, err: error.message }, 'going back to the stable revision was refused; the deployment stays Failed');
    }
  }

  /** Deletes the canary object of the deployment, whatever revision it runs. */
  private async deleteCanary(state: PlacedDeployment): Promise<void> {
    const driver = await this.options.driverFor(state.clusterId);
    await driver.delete(driver.refFor({ ...desiredOf(state, this.options.progressDeadlineSeconds), role: 'canary' }));
  }

  /** Waits until the object runs `replicas` ready pods of its current spec; a deadline passed is a stuck rollout. */
  private async ready(driver: ClusterDriver, ref: ObjectRef, replicas: number, side: string, signal: AbortSignal): Promise<LiveWorkload | undefined> {
    const deadline = Date.now() + this.options.progressDeadlineSeconds * 1000;
    for (;;) {
      const live = await driver.read(ref);
      if (live && isComplete(live, replicas)) return live;
      if (Date.now() >= deadline) {
        const ready = live?.rollout.readyReplicas ?? 0;
        throw new RolloutStuck(`the ${side} side has ${ready} of ${replicas} pods ready after ${this.options.progressDeadlineSeconds}s`);
      }
      // Not tied to the signal: many lanes wait at once, and each tie would add a listener to the one signal.
      await sleep(this.options.pollMs ?? 250);
      signal.throwIfAborted();
    }
  }

  // ---- helpers ------------------------------------------------------------------------------------------

  private async deployment(deploymentId: string): Promise<PlacedDeployment | undefined> {
    const { state } = await this.handler.loadState(deployments, deploymentId);
    return state.status === 'absent' || state.status === 'Deleted' ? undefined : state;
  }

  private async execute(command: RolloutCommand, context: CommandContext): Promise<void> {
    await this.handler.execute(rollouts, command.rolloutId, command, context);
  }

  private async record(command: DeploymentCommand, context: CommandContext, as?: 'rollback' | 'settled'): Promise<void> {
    const gate =
      as === 'settled' ? this.options.settled?.(command.deploymentId, context) : as === 'rollback' ? this.options.judged?.('rollback', command.deploymentId, context) : undefined;
    await this.handler.execute(deployments, command.deploymentId, command, context, gate);
  }

  private now(): string {
    return this.clock.now().toISOString();
  }
}

function specOf(deployment: PlacedDeployment): WorkloadSpec {
  return deployment.revisions[deployment.currentRevision]!.spec as unknown as WorkloadSpec;
}
