// Carries out canary and blue/green rollouts. A canary: a canary object next to the stable one, replica counts per
// weight (and HTTPRoute backend weights when the strategy names a route). Blue/green: a preview object and Service next
// to the stable side, the active Service switched to the preview on promotion, the old side scaled down after a delay.
// Pauses and analysis intervals run on durable timers, analysis through the metric providers, and at the end either the
// stable object takes the new spec (completed) or traffic is back on the stable side and the deployment back on its
// stable revision (aborted). Each step is decided by the rollout's decider (domain/rollout.ts) and recorded before it
// is carried out; carrying it out is idempotent, so a step handled again after a restart changes nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
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
import {
  deploymentEvents,
  type Deployment,
  type DeploymentCommand,
  type DeploymentEvent,
  type PlacedDeployment,
  type TrafficRouting,
} from '../domain/deployment.js';
import type { RecordedEvent } from '../domain/event-store.js';
import {
  currentRun,
  isInProgress,
  isSwitched,
  rolloutIdOf,
  rolloutStreamEvents,
  type AnalysisStepSpec,
  type RolloutCommand,
  type RolloutStrategy,
  type StartedRollout,
} from '../domain/rollout.js';
import type { WorkloadSpec } from '../domain/workload.js';
import { measureDue, nextDueAt, type MetricProvider } from './analysis-runner.js';
import { ClusterError, type BackendWeight, type ClusterDriver, type DesiredWorkload, type LiveWorkload, type NamedRef, type ObjectRef, type TrafficDriver } from './cluster-driver.js';
import { reactionTo } from './reaction-context.js';
import type { Reactor } from './reactor-runtime.js';
import { desiredOf, isComplete, progressiveRollout } from './reconcile.js';
import type { OwnedTimers, TimerService } from './timers.js';
import { canaryBackends, mainService, mainServiceRef, routeRef, sideService, sideServiceRef } from './traffic-routing.js';

export const ROLLOUT_REACTOR = 'rollouts';

/** Namespace of the analysis run ids the reactor derives (uuid v5 of the rollout and step). */
const RUN_NAMESPACE = 'a3c1f0d2-6b4e-5f7a-8c9d-0e1f2a3b4c5d';

/** Deployment events that start a rollout, or end one that another change took the place of. */
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
  /** Where `sentinel_rollouts_total` and `sentinel_rollout_duration_seconds` are registered, when given. */
  registry?: Registry;
}

const STRATEGIES: readonly RolloutStrategy[] = ['canary', 'blue_green'];
const OUTCOMES = ['promoted', 'aborted'] as const;
type Outcome = (typeof OUTCOMES)[number];

/** How rollouts end, by strategy and outcome: each ended rollout counted once, by the reactor that carried out its end. */
class RolloutMetrics {
  private readonly ended: Counter<'strategy' | 'outcome'>;
  private readonly duration: Histogram<'strategy' | 'outcome'>;

  constructor(registry: Registry) {
    this.ended = new Counter({
      name: 'sentinel_rollouts_total',
      help: 'Rollouts that ended, by strategy (canary, blue_green) and outcome (promoted: every step passed; aborted: by hand, by analysis, or replaced)',
      labelNames: ['strategy', 'outcome'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'sentinel_rollout_duration_seconds',
      help: "From a rollout's start to its end (promoted or aborted), by strategy and outcome",
      labelNames: ['strategy', 'outcome'],
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600],
      registers: [registry],
    });
    // Every series from the start, so that a rate over them reads 0 rather than nothing before the first rollout ends.
    for (const strategy of STRATEGIES) {
      for (const outcome of OUTCOMES) {
        this.ended.inc({ strategy, outcome }, 0);
        this.duration.zero({ strategy, outcome });
      }
    }
  }

  record(rollout: StartedRollout, outcome: Outcome): void {
    const labels = { strategy: rollout.strategy, outcome };
    this.ended.inc(labels);
    const seconds = (Date.parse(rollout.endedAt ?? rollout.startedAt) - Date.parse(rollout.startedAt)) / 1000;
    this.duration.observe(labels, Math.max(0, seconds));
  }
}

/** Why a rollout cannot go on as it stands; it is aborted with this cause. */
class RolloutStuck extends Error {}

export class RolloutReactor implements Reactor {
  readonly name = ROLLOUT_REACTOR;
  readonly eventTypes = [...DEPLOYMENT_TRIGGERS, ...rolloutStreamEvents.types];
  private readonly timers: OwnedTimers<TimerPayload>;
  private readonly clock: Clock;
  private readonly metrics: RolloutMetrics | undefined;

  constructor(
    private readonly handler: CommandHandler,
    timers: TimerService,
    private readonly options: RolloutReactorOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.metrics = options.registry ? new RolloutMetrics(options.registry) : undefined;
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
    const progressive = state.status === 'Deleted' ? undefined : progressiveRollout(state);
    const rolloutId = rolloutIdOf(deploymentId, state.currentRevision);
    const replaced = await this.supersede(state, event, progressive ? state.currentRevision : undefined);
    // The side objects of the rollout replaced go, unless a rollout of the same kind follows and reuses them.
    if (replaced) await this.clearSides(state, progressive?.strategy);
    if (progressive && event.type === 'DeploymentScaled') {
      // The cluster reactor leaves a rollout's objects alone: the count is split here, as the rollout stands.
      await this.execute({ type: 'RescaleRollout', rolloutId, replicas: state.replicas, at: this.now() }, reactionTo(this.name, event, 'rescale')).catch((error: unknown) => {
        if (!(error instanceof NotFound)) throw error;
      });
      return;
    }
    if (!progressive || event.type !== 'DeploymentUpdated') return;
    const strategy = state.revisions[state.currentRevision]!.strategy;
    if (strategy.type === 'rolling') return;
    const at = this.now();
    await this.execute(
      {
        type: 'StartRollout',
        rolloutId,
        deploymentId,
        revision: state.currentRevision,
        stableRevision: progressive.stableRevision,
        replicas: state.replicas,
        ...(strategy.type === 'canary' ? { steps: strategy.steps } : { steps: [], blueGreen: strategy }),
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
      if (revision.revision === keep || revision.strategy.type === 'rolling' || revision.rollbackOf !== undefined) continue;
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
        case 'RolloutPreviewStarted':
          // A promotion that came first makes the switch bring the preview up instead.
          if (!isInProgress(rollout) || rollout.step !== parsed.data.step + 1) return;
          await this.startPreview(rollout, signal);
          await this.advance(rollout, event);
          return;
        case 'RolloutSwitched':
          if (!isInProgress(rollout) || !isSwitched(rollout)) return;
          await this.switchToPreview(rollout, signal);
          await this.advance(rollout, event);
          return;
        case 'RolloutScaledDown':
          if (!isInProgress(rollout)) return;
          await this.scaleDownOldSide(rollout);
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
          if (!parsed.data.superseded) {
            if (rollout.strategy === 'blue_green') await this.abortedBlueGreen(rollout, signal, event);
            else await this.aborted(rollout, signal, event);
          }
          this.metrics?.record(rollout, 'aborted');
          return;
        case 'RolloutCompleted':
          if (rollout.strategy === 'blue_green') await this.completedBlueGreen(rollout, signal, event);
          else await this.completed(rollout, signal, event);
          this.metrics?.record(rollout, 'promoted');
          return;
        case 'RolloutRescaled':
          if (isInProgress(rollout) && rollout.replicas === parsed.data.replicas) await this.rescale(rollout);
          return;
        case 'RolloutAnalysisStarted':
          return;
      }
    } catch (error) {
      if (!(error instanceof RolloutStuck)) throw error;
      this.options.logger.warn({ rolloutId, cause: error.message }, 'the rollout cannot go on; aborting it');
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
      { type: 'AdvanceRollout', rolloutId: rollout.rolloutId, replicas: deployment.replicas, runId, step: rollout.step, at: this.now(), ...(analysis ? { analysis } : {}) },
      reactionTo(this.name, cause, `advance-${rollout.step}`),
    );
  }

  /**
   * The template an analysis step runs, and its arguments: the new revision's pods (the canary's, or blue/green's
   * preview's) and the stable side's, by name.
   */
  private analysisOf(step: AnalysisStepSpec, deployment: PlacedDeployment): { template: AnalysisTemplate; args: Record<string, string> } {
    const spec = specOf(deployment);
    const side = deployment.revisions[deployment.currentRevision]!.strategy.type === 'blue_green' ? 'preview' : 'canary';
    const builtIn: Record<string, string> = {
      namespace: spec.namespace,
      // Pods are named <object>-<template hash>-<suffix>; PromQL matches the whole name.
      canaryPods: `${spec.name}-${side}-[a-z0-9]+-[a-z0-9]+`,
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

  /**
   * The counts of the weight the rollout stands at: the stable side down first, so the total never grows. With a
   * route, the weight moves on it once the canary's pods are ready, between the stable and the canary Services.
   */
  private async setWeight(rollout: StartedRollout, signal: AbortSignal): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const routing = routingOf(deployment);
    if (routing) {
      const traffic = trafficOf(driver);
      await traffic.applyService(mainService(desired, 'stable'));
      await traffic.applyService(sideService(desired, 'canary'));
    }
    const stableRef = driver.refFor(desired);
    const stable = await driver.read(stableRef);
    if (stable && stable.replicas !== rollout.stableReplicas) await driver.scale(stableRef, rollout.stableReplicas);
    const canary: DesiredWorkload = { ...desired, role: 'canary', replicas: rollout.canaryReplicas };
    await driver.apply(canary);
    await this.ready(driver, driver.refFor(canary), rollout.canaryReplicas, 'canary', signal);
    if (routing) await this.route(driver, routeRef(desired, routing), canaryBackends(desired, rollout.weight));
  }

  /** Sets a route's weights; a route that cannot be written (gone, refused) stops the rollout, naming it. */
  private async route(driver: ClusterDriver, route: NamedRef, backends: BackendWeight[]): Promise<void> {
    try {
      await trafficOf(driver).setRouteWeights(route, backends);
    } catch (error) {
      if (!(error instanceof ClusterError) || error.transient) throw error;
      throw new RolloutStuck(`the weights could not be set on HTTPRoute ${route.namespace}/${route.name}: ${error.message}`);
    }
  }

  /** Both sides at the counts of a new replica count; a canary not created yet (weight 0) has none to take. */
  private async rescale(rollout: StartedRollout): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const side = rollout.strategy === 'blue_green' ? 'preview' : 'canary';
    // Both sides move the same way: a scale down frees what the ledger no longer holds, a scale up was admitted first.
    for (const [ref, replicas] of [
      [driver.refFor(desired), rollout.stableReplicas],
      [driver.refFor({ ...desired, role: side }), rollout.canaryReplicas],
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
    // Both sides run the new spec now: a route sends everything to the stable Service before the canary shrinks.
    const routing = routingOf(deployment);
    if (routing) await this.route(driver, routeRef(desired, routing), canaryBackends(desired, 0));
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
    // A route keeps naming the canary Service (at weight 0), so the Service stays, selecting no pods until the next canary.
    await driver.delete(canaryRef);
    await this.settle(driver, stableRef, rollout, cause);
  }

  /** The rollout is over on the cluster: the deployment is Available on its revision, and the ledger holds what runs. */
  private async settle(driver: ClusterDriver, stableRef: ObjectRef, rollout: StartedRollout, cause: RecordedEvent): Promise<void> {
    const live = await driver.read(stableRef);
    const { deploymentId, revision } = rollout;
    await this.record(
      { type: 'RecordAvailable', deploymentId, revision, readyReplicas: live?.rollout.readyReplicas ?? rollout.replicas },
      reactionTo(this.name, cause, 'available'),
      'settled',
    );
  }

  /**
   * Traffic back on the stable side: the canary goes first (its pods serve what failed; with a route, its weight goes
   * to 0 before that), then the stable object is back at full replicas. Then the failure is recorded with the
   * measurements that failed, and the deployment goes back to its stable revision through the automatic rollback,
   * judged by policy like any other.
   */
  private async aborted(rollout: StartedRollout, signal: AbortSignal, cause: RecordedEvent): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const stableRef = driver.refFor(desired);
    const routing = routingOf(deployment);
    // Traffic off the canary first: on the route at once, then its pods.
    if (routing) await this.route(driver, routeRef(desired, routing), canaryBackends(desired, 0)).catch((error: unknown) => this.unrouted(rollout, error));
    await driver.delete(driver.refFor({ ...desired, role: 'canary' }));
    await this.stableBack(driver, stableRef, deployment.replicas, rollout, signal);
    await this.failed(rollout, 'canary', cause);
  }

  /** A route the abort could not put back on the stable side: said, and the abort goes on (the canary's pods go regardless). */
  private unrouted(rollout: StartedRollout, error: unknown): void {
    if (!(error instanceof RolloutStuck)) throw error;
    this.options.logger.error({ rolloutId: rollout.rolloutId, cause: error.message }, 'the route still names the canary Service, which now selects no pods');
  }

  /** The stable side back at full replicas after an abort; one that is not ready in time is said, and the abort goes on. */
  private async stableBack(driver: ClusterDriver, stableRef: ObjectRef, replicas: number, rollout: StartedRollout, signal: AbortSignal): Promise<void> {
    const stable = await driver.read(stableRef);
    if (stable && stable.replicas !== replicas) await driver.scale(stableRef, replicas);
    await this.ready(driver, stableRef, replicas, 'stable', signal).catch((error: unknown) => {
      // The stable side not coming back in time is the cluster's to report; the rollback goes ahead regardless.
      if (!(error instanceof RolloutStuck)) throw error;
      this.options.logger.warn({ rolloutId: rollout.rolloutId, cause: error.message }, 'the stable side is not fully ready after the abort');
    });
  }

  /**
   * The failure recorded with the measurements that failed, and the deployment back to its stable revision through
   * the automatic rollback, judged by policy like any other.
   */
  private async failed(rollout: StartedRollout, kind: 'canary' | 'blue/green', cause: RecordedEvent): Promise<void> {
    const { deploymentId, revision, stableRevision } = rollout;
    const reason = rollout.cause ?? 'aborted';
    await this.record(
      { type: 'RecordRolloutFailed', deploymentId, revision, cause: `${kind} aborted: ${reason}`, failedMeasurements: rollout.failedMeasurements ?? [] },
      reactionTo(this.name, cause, 'failed'),
    );
    try {
      await this.record(
        { type: 'RecordRolledBack', deploymentId, revision, toRevision: stableRevision, cause: `${kind} aborted: ${reason}` },
        reactionTo(this.name, cause, 'rolled-back'),
        'rollback',
      );
    } catch (error) {
      if (!(error instanceof PolicyViolation || error instanceof InvalidTransition)) throw error;
      this.options.logger.error({ deploymentId, revision, toRevision: stableRevision, err: error.message }, 'going back to the stable revision was refused; the deployment stays Failed');
    }
  }

  // ---- blue/green ---------------------------------------------------------------------------------------

  /**
   * The preview starts: the active Service `<name>` on the stable side (made at the first blue/green), the preview
   * Service, and the preview object at its count, ready before the rollout goes on.
   */
  private async startPreview(rollout: StartedRollout, signal: AbortSignal): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const traffic = trafficOf(driver);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    await traffic.applyService(mainService(desired, 'stable'));
    await traffic.applyService(sideService(desired, 'preview'));
    const preview: DesiredWorkload = { ...desired, role: 'preview', replicas: rollout.canaryReplicas };
    await driver.apply(preview);
    await this.ready(driver, driver.refFor(preview), rollout.canaryReplicas, 'preview', signal);
  }

  /** The preview at full replicas and ready, then the active Service selects it: one selector patch moves all traffic. */
  private async switchToPreview(rollout: StartedRollout, signal: AbortSignal): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const traffic = trafficOf(driver);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const preview: DesiredWorkload = { ...desired, role: 'preview', replicas: rollout.canaryReplicas };
    await traffic.applyService(sideService(desired, 'preview'));
    await driver.apply(preview);
    await this.ready(driver, driver.refFor(preview), rollout.canaryReplicas, 'preview', signal);
    await traffic.applyService(mainService(desired, 'preview'));
  }

  /** The scale-down delay is over: the old side, which no Service sends traffic to any more, goes to no pods. */
  private async scaleDownOldSide(rollout: StartedRollout): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const stableRef = driver.refFor(desiredOf(deployment, this.options.progressDeadlineSeconds));
    const stable = await driver.read(stableRef);
    if (stable && stable.replicas !== 0) await driver.scale(stableRef, 0);
  }

  /**
   * Promoted, and the old side down: the deployment's own object takes the new spec at full replicas next to the
   * preview (both run the new revision, so which one serves does not matter), the active Service selects it again,
   * and the preview and its Service go. The deployment's objects are then as a rolling update would have left them.
   */
  private async completedBlueGreen(rollout: StartedRollout, signal: AbortSignal, cause: RecordedEvent): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const traffic = trafficOf(driver);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const stableRef = driver.refFor(desired);
    const stable = await driver.read(stableRef);
    // Down before it takes the new spec, so that the old pods are not rolled over one by one next to a full preview.
    if (stable && stable.revision !== rollout.revision && stable.replicas !== 0) await driver.scale(stableRef, 0);
    await driver.apply(desired);
    await this.ready(driver, stableRef, deployment.replicas, 'stable', signal);
    await traffic.applyService(mainService(desired, 'stable'));
    await traffic.deleteService(sideServiceRef(desired, 'preview'));
    await driver.delete(driver.refFor({ ...desired, role: 'preview' }));
    await this.settle(driver, stableRef, rollout, cause);
  }

  /**
   * Aborted: the active Service stays on (or goes back to) the old side at full replicas, the preview and its Service
   * go, and the failure and the rollback are recorded as for a canary.
   */
  private async abortedBlueGreen(rollout: StartedRollout, signal: AbortSignal, cause: RecordedEvent): Promise<void> {
    const deployment = await this.deployment(rollout.deploymentId);
    if (!deployment || deployment.currentRevision !== rollout.revision) return;
    const driver = await this.options.driverFor(deployment.clusterId);
    const desired = desiredOf(deployment, this.options.progressDeadlineSeconds);
    const stableRef = driver.refFor(desired);
    await this.stableBack(driver, stableRef, deployment.replicas, rollout, signal);
    const traffic = driver.traffic;
    if (traffic) {
      if (await traffic.readService(mainServiceRef(desired))) await traffic.applyService(mainService(desired, 'stable'));
      await traffic.deleteService(sideServiceRef(desired, 'preview'));
    }
    await driver.delete(driver.refFor({ ...desired, role: 'preview' }));
    await this.failed(rollout, 'blue/green', cause);
  }

  /**
   * The side objects of a rollout another change replaced, unless a rollout of the same kind follows and reuses them:
   * a canary's object, or a preview with its Service (the active Service back on the stable side first, where the
   * change that follows rolls out).
   */
  private async clearSides(state: PlacedDeployment, following: RolloutStrategy | undefined): Promise<void> {
    const driver = await this.options.driverFor(state.clusterId);
    const desired = desiredOf(state, this.options.progressDeadlineSeconds);
    if (following !== 'canary') await driver.delete(driver.refFor({ ...desired, role: 'canary' }));
    if (following === 'blue_green') return;
    const traffic = driver.traffic;
    if (traffic && state.status !== 'Deleted') {
      const active = await traffic.readService(mainServiceRef(desired));
      if (active?.deploymentId === state.id) await traffic.applyService(mainService(desired, 'stable'));
      await traffic.deleteService(sideServiceRef(desired, 'preview'));
    }
    await driver.delete(driver.refFor({ ...desired, role: 'preview' }));
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

/** The driver's Services and routes; a driver without them cannot carry out the rollout. */
function trafficOf(driver: ClusterDriver): TrafficDriver {
  if (!driver.traffic) throw new RolloutStuck('the cluster driver manages no Services or routes, which blue/green and a routed canary need');
  return driver.traffic;
}

/** The route a canary revision's strategy names, if any. */
function routingOf(deployment: PlacedDeployment): TrafficRouting | undefined {
  const strategy = deployment.revisions[deployment.currentRevision]!.strategy;
  return strategy.type === 'canary' ? strategy.trafficRouting : undefined;
}

function specOf(deployment: PlacedDeployment): WorkloadSpec {
  return deployment.revisions[deployment.currentRevision]!.spec as unknown as WorkloadSpec;
}
