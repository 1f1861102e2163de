// The step machine of one revision's canary or blue/green rollout (stream `rollout-<deploymentId>.<revision>`): every
// weight set, preview, switch, scale-down, pause, analysis run and measurement, promotion, abort and completion is an
// event, so a rollout replays and explains itself. A canary's weight is approximated by replica counts: the canary gets
// ceil(weight% of the replicas), the stable side the rest, so the two together never hold more pods than the
// deployment was admitted with. A blue/green rollout is the same machine over fixed steps: the preview, its
// pre-promotion analysis, the wait for promotion, the switch of the active Service, the scale-down delay, the scale-down.
import { z } from 'zod';
import {
  analysisEvents,
  assessRun,
  evolveAnalysisRun,
  initialAnalysisRun,
  recordMeasurement,
  startAnalysisRun,
  type AnalysisEvent,
  type AnalysisRun,
  type AnalysisTemplate,
  type MeasuredValue,
  type Reading,
} from './analysis/analysis.js';
import { defineEvents, InvalidTransition, NotFound, RuleViolation, type Decider, type EventOf } from './decider.js';
import { blueGreenStrategy, canaryStep, failedMeasurement, type BlueGreenStrategy, type CanaryStep, type FailedMeasurement } from './deployment.js';
import { timestamp } from './schemas.js';

/**
 * Promote or abort with no canary rollout in progress: well formed, but in conflict with the deployment as it stands
 * (HTTP 409). An `InvalidTransition`, so that whatever handles those handles it.
 */
export class NoRolloutInProgress extends InvalidTransition {
  override name = 'NoRolloutInProgress';
}

/** The id of the rollout of `revision` of a deployment: its stream is `rollout-<id>`. */
export function rolloutIdOf(deploymentId: string, revision: number): string {
  return `${deploymentId}.${revision}`;
}

// ---- steps --------------------------------------------------------------------------------------------

export type AnalysisStepSpec = Extract<CanaryStep, { analysis: unknown }>['analysis'];

/**
 * One step as the machine carries it out; the older `{weight, pauseSeconds}` form is a weight and then a pause.
 * `preview`, `switch` and `scaleDown` are blue/green's: the preview starts, the active Service switches to it, the old
 * side is scaled down.
 */
export type RolloutStepSpec =
  | { kind: 'weight'; weight: number }
  | { kind: 'pause'; seconds?: number }
  | { kind: 'analysis'; analysis: AnalysisStepSpec }
  | { kind: 'preview' }
  | { kind: 'switch' }
  | { kind: 'scaleDown' };

export type RolloutStrategy = 'canary' | 'blue_green';

/**
 * A blue/green rollout's steps: the preview, its pre-promotion analysis if any, then a pause (until promoted, or
 * `autoPromotionSeconds` with `autoPromote`; none when that is 0), the switch, the scale-down delay, the scale-down.
 */
export function blueGreenSteps(strategy: BlueGreenStrategy): RolloutStepSpec[] {
  const promotion: RolloutStepSpec[] = !strategy.autoPromote
    ? [{ kind: 'pause' }]
    : (strategy.autoPromotionSeconds ?? 0) > 0
      ? [{ kind: 'pause', seconds: strategy.autoPromotionSeconds! }]
      : [];
  return [
    { kind: 'preview' },
    ...(strategy.prePromotionAnalysis ? [{ kind: 'analysis' as const, analysis: strategy.prePromotionAnalysis }] : []),
    ...promotion,
    { kind: 'switch' },
    ...(strategy.scaleDownDelaySeconds > 0 ? [{ kind: 'pause' as const, seconds: strategy.scaleDownDelaySeconds }] : []),
    { kind: 'scaleDown' },
  ];
}

export function stepsOf(steps: readonly CanaryStep[]): RolloutStepSpec[] {
  return steps.flatMap((step): RolloutStepSpec[] => {
    if ('weight' in step) {
      const pause: RolloutStepSpec[] = step.pauseSeconds === undefined ? [] : [{ kind: 'pause', seconds: step.pauseSeconds }];
      return [{ kind: 'weight', weight: step.weight }, ...pause];
    }
    if ('pause' in step) return [step.pause.seconds === undefined ? { kind: 'pause' } : { kind: 'pause', seconds: step.pause.seconds }];
    return [{ kind: 'analysis', analysis: step.analysis }];
  });
}

/** Canary and stable replica counts at `weight`%: the canary rounds up, and the total stays `replicas`. */
export function splitReplicas(replicas: number, weight: number): { canaryReplicas: number; stableReplicas: number } {
  const canaryReplicas = Math.min(replicas, Math.ceil((weight * replicas) / 100));
  return { canaryReplicas, stableReplicas: replicas - canaryReplicas };
}

// ---- events -------------------------------------------------------------------------------------------

const rolloutId = z.string().min(1);
const step = z.int().min(0);
const count = z.int().min(0);

export const rolloutEvents = defineEvents({
  /** The new revision starts next to the stable one: a canary with its `steps`, or blue/green as `blueGreen` says. */
  RolloutStarted: {
    version: 1,
    schema: z.object({
      rolloutId,
      deploymentId: z.string(),
      revision: z.int().min(1),
      stableRevision: z.int().min(1),
      replicas: count,
      /** A canary's steps; none for blue/green, whose steps follow from `blueGreen`. */
      steps: z.array(canaryStep),
      blueGreen: blueGreenStrategy.optional(),
      startedAt: timestamp,
    }),
  },
  /** Blue/green: the preview object and its Service start, with `previewReplicas` pods; no traffic reaches it yet. */
  RolloutPreviewStarted: { version: 1, schema: z.object({ rolloutId, step, previewReplicas: count, at: timestamp }) },
  /** Blue/green: the active Service selects the preview, at the deployment's full `replicas`. */
  RolloutSwitched: { version: 1, schema: z.object({ rolloutId, step, replicas: count, at: timestamp }) },
  /** Blue/green: the old side is scaled down, the scale-down delay over. */
  RolloutScaledDown: { version: 1, schema: z.object({ rolloutId, step, at: timestamp }) },
  RolloutWeightSet: {
    version: 1,
    schema: z.object({ rolloutId, step, weight: z.int().min(0).max(100), canaryReplicas: count, stableReplicas: count, at: timestamp }),
  },
  /** Paused at a pause step (`until` its end, or with no `until` until promoted), or after an inconclusive analysis. */
  RolloutPaused: {
    version: 1,
    schema: z.object({ rolloutId, step, until: timestamp.optional(), reason: z.enum(['step', 'inconclusive']), at: timestamp }),
  },
  /** The deployment was scaled while the rollout ran: the same weight over the new count. */
  RolloutRescaled: { version: 1, schema: z.object({ rolloutId, replicas: count, canaryReplicas: count, stableReplicas: count, at: timestamp }) },
  /** A pause with a duration ran out. */
  RolloutResumed: { version: 1, schema: z.object({ rolloutId, step, at: timestamp }) },
  /** An analysis step began a run; its `AnalysisRunStarted` follows in the same stream. */
  RolloutAnalysisStarted: { version: 1, schema: z.object({ rolloutId, step, runId: z.string(), at: timestamp }) },
  /** Someone promoted it: the step it waited on is over, or (`full`) every step left is skipped. */
  RolloutPromoted: { version: 1, schema: z.object({ rolloutId, step, full: z.boolean(), at: timestamp }) },
  /**
   * Stopped: traffic goes back to the stable side. `superseded` when another change to the deployment took its place
   * (that change decides what runs; nothing is rolled back for it).
   */
  RolloutAborted: {
    version: 1,
    schema: z.object({
      rolloutId,
      step,
      cause: z.string(),
      failedMeasurements: z.array(failedMeasurement),
      superseded: z.boolean(),
      at: timestamp,
    }),
  },
  /** Every step passed: the stable side takes the new revision's spec at full replicas, and the side object goes. */
  RolloutCompleted: { version: 1, schema: z.object({ rolloutId, revision: z.int().min(1), at: timestamp }) },
});
export type RolloutStepEvent = EventOf<typeof rolloutEvents>;
/** A rollout's stream holds its analysis runs' events too. */
export type RolloutEvent = RolloutStepEvent | AnalysisEvent;

/** Both catalogues as one, for the rollout's stream. */
export const rolloutStreamEvents = {
  types: [...rolloutEvents.types, ...analysisEvents.types] as readonly RolloutEvent['type'][],
  version: (type: RolloutEvent['type']) =>
    (rolloutEvents.types as readonly string[]).includes(type) ? rolloutEvents.version(type as RolloutStepEvent['type']) : analysisEvents.version(type as AnalysisEvent['type']),
  parse(type: string, schemaVersion: number, data: unknown): RolloutEvent {
    return (analysisEvents.types as readonly string[]).includes(type) ? analysisEvents.parse(type, schemaVersion, data) : rolloutEvents.parse(type, schemaVersion, data);
  },
};

// ---- state --------------------------------------------------------------------------------------------

export type RolloutStatus = 'Progressing' | 'Paused' | 'Completed' | 'Aborted';

/** One measurement as recorded, for the status view and for an abort's cause. */
export interface RecordedMeasurementView {
  metric: string;
  outcome: string;
  value: MeasuredValue;
  baseline?: MeasuredValue;
  message: string;
  measuredAt: string;
}

export interface RolloutRun {
  runId: string;
  step: number;
  run: AnalysisRun;
  measurements: RecordedMeasurementView[];
  verdict?: string;
  reason?: string;
}

/** What the rollout waits on before its next step, if anything. */
export type Waiting = { kind: 'pause'; step: number; until?: string; reason: 'step' | 'inconclusive' } | { kind: 'analysis'; step: number; runId: string };

export interface StartedRollout {
  status: RolloutStatus;
  strategy: RolloutStrategy;
  /** A blue/green rollout's strategy. */
  blueGreen?: BlueGreenStrategy;
  rolloutId: string;
  deploymentId: string;
  revision: number;
  stableRevision: number;
  replicas: number;
  steps: RolloutStepSpec[];
  /** The next step to begin; `steps.length` once every step has begun. */
  step: number;
  waiting?: Waiting;
  /** The share of traffic on the new revision: a canary's weight; for blue/green 0, and 100 once switched. */
  weight: number;
  /** The new revision's pods: the canary's, or blue/green's preview. */
  canaryReplicas: number;
  stableReplicas: number;
  runs: RolloutRun[];
  startedAt: string;
  endedAt?: string;
  cause?: string;
  failedMeasurements?: FailedMeasurement[];
  superseded?: boolean;
}

export type Rollout = { status: 'absent' } | StartedRollout;

export const initialState: Rollout = { status: 'absent' };

export function evolve(state: Rollout, event: RolloutEvent): Rollout {
  if (event.type === 'RolloutStarted') {
    const { rolloutId, deploymentId, revision, stableRevision, replicas, steps, blueGreen, startedAt } = event.data;
    return {
      status: 'Progressing',
      strategy: blueGreen ? 'blue_green' : 'canary',
      ...(blueGreen ? { blueGreen } : {}),
      rolloutId,
      deploymentId,
      revision,
      stableRevision,
      replicas,
      steps: blueGreen ? blueGreenSteps(blueGreen) : stepsOf(steps),
      step: 0,
      weight: 0,
      canaryReplicas: 0,
      stableReplicas: replicas,
      runs: [],
      startedAt,
    };
  }
  if (state.status === 'absent') return state;
  switch (event.type) {
    case 'RolloutWeightSet': {
      const { step, weight, canaryReplicas, stableReplicas } = event.data;
      return { ...state, step: step + 1, weight, canaryReplicas, stableReplicas, replicas: canaryReplicas + stableReplicas };
    }
    case 'RolloutPaused': {
      const { step, until, reason } = event.data;
      const waiting: Waiting = { kind: 'pause', step, reason, ...(until === undefined ? {} : { until }) };
      return { ...state, status: 'Paused', step: reason === 'step' ? step + 1 : state.step, waiting };
    }
    case 'RolloutRescaled': {
      const { replicas, canaryReplicas, stableReplicas } = event.data;
      return { ...state, replicas, canaryReplicas, stableReplicas };
    }
    case 'RolloutPreviewStarted':
      return { ...state, step: event.data.step + 1, canaryReplicas: event.data.previewReplicas };
    case 'RolloutSwitched':
      return { ...state, step: event.data.step + 1, weight: 100, replicas: event.data.replicas, canaryReplicas: event.data.replicas };
    case 'RolloutScaledDown':
      return { ...state, step: event.data.step + 1, stableReplicas: 0 };
    case 'RolloutResumed':
      return withoutWaiting({ ...state, status: 'Progressing' });
    case 'RolloutAnalysisStarted': {
      const { step, runId } = event.data;
      return { ...state, step: step + 1, waiting: { kind: 'analysis', step, runId }, runs: [...state.runs, { runId, step, run: initialAnalysisRun, measurements: [] }] };
    }
    case 'RolloutPromoted': {
      const promoted = withoutWaiting({ ...state, status: 'Progressing' });
      if (state.strategy === 'blue_green') {
        // Blue/green's promotion is its switch: whatever it waited on before it (preview, analysis, pause) is over.
        // Once switched, a promotion ends the scale-down delay (`full`: also when it has not begun yet).
        const switchAt = stepIndex(state, 'switch');
        if (state.step <= switchAt) return { ...promoted, step: switchAt };
        return event.data.full ? { ...promoted, step: Math.max(state.step, stepIndex(state, 'scaleDown')) } : promoted;
      }
      return event.data.full ? { ...promoted, step: state.steps.length } : promoted;
    }
    case 'RolloutAborted': {
      const { cause, failedMeasurements, superseded, at } = event.data;
      return { ...withoutWaiting(state), status: 'Aborted', cause, failedMeasurements, superseded, endedAt: at };
    }
    case 'RolloutCompleted':
      return { ...withoutWaiting(state), status: 'Completed', weight: 100, canaryReplicas: 0, stableReplicas: state.replicas, endedAt: event.data.at };
    case 'AnalysisRunStarted':
    case 'AnalysisMeasured':
    case 'AnalysisRunCompleted':
      return evolveRun(state, event);
  }
}

function evolveRun(state: StartedRollout, event: AnalysisEvent): StartedRollout {
  const runs = state.runs.map((entry) => {
    if (entry.runId !== event.data.runId) return entry;
    const run = evolveAnalysisRun(entry.run, event);
    if (event.type === 'AnalysisMeasured') {
      const { metric, outcome, value, baseline, message, measuredAt } = event.data;
      return { ...entry, run, measurements: [...entry.measurements, { metric, outcome, value, ...(baseline === undefined ? {} : { baseline }), message, measuredAt }] };
    }
    if (event.type === 'AnalysisRunCompleted') return { ...entry, run, verdict: event.data.verdict, reason: event.data.reason };
    return { ...entry, run };
  });
  // A successful run lets the rollout go on; a failed one ends in the abort recorded with it, an inconclusive one in a pause.
  const ended = event.type === 'AnalysisRunCompleted' && state.waiting?.kind === 'analysis' && state.waiting.runId === event.data.runId;
  return ended ? withoutWaiting({ ...state, runs }) : { ...state, runs };
}

function withoutWaiting(state: StartedRollout): StartedRollout {
  const { waiting: _waiting, ...rest } = state;
  return rest;
}

// ---- commands -----------------------------------------------------------------------------------------

export type RolloutCommand =
  | {
      type: 'StartRollout';
      rolloutId: string;
      deploymentId: string;
      revision: number;
      stableRevision: number;
      replicas: number;
      /** A canary's steps; for blue/green, `blueGreen` instead. */
      steps: CanaryStep[];
      blueGreen?: BlueGreenStrategy;
      at: string;
    }
  /**
   * Begins the next step, or completes the rollout once every step has begun. `replicas`: the deployment's count now
   * (a scale during the rollout applies from the next weight on). `runId` names the run an analysis step starts, and
   * `template` is what it runs (the reactor resolves `"inference"` against the workload), with its `args`.
   */
  | {
      type: 'AdvanceRollout';
      rolloutId: string;
      replicas: number;
      at: string;
      runId: string;
      analysis?: { template: AnalysisTemplate; args: Record<string, string> };
      /** The step the sender saw as the next one: when another has begun since, the command is stale and records nothing. */
      step?: number;
    }
  | { type: 'ResumeRollout'; rolloutId: string; step: number; at: string }
  /** The deployment's new replica count, split at the weight the rollout stands at. */
  | { type: 'RescaleRollout'; rolloutId: string; replicas: number; at: string }
  | { type: 'RecordMeasurements'; rolloutId: string; runId: string; readings: { metric: string; reading: Reading }[]; at: string }
  | { type: 'PromoteRollout'; rolloutId: string; full: boolean; at: string }
  | { type: 'AbortRollout'; rolloutId: string; cause: string; superseded?: boolean; at: string };

const IN_PROGRESS: ReadonlySet<RolloutStatus> = new Set(['Progressing', 'Paused']);

export function isInProgress(state: Rollout): boolean {
  return state.status !== 'absent' && IN_PROGRESS.has(state.status);
}

export function decide(command: RolloutCommand, state: Rollout): RolloutEvent[] {
  const { rolloutId } = command;
  if (command.type === 'StartRollout') {
    if (state.status !== 'absent') return [];
    const { deploymentId, revision, stableRevision, replicas, steps, blueGreen, at } = command;
    if (!blueGreen && steps.length === 0) throw new RuleViolation(`rollout ${rolloutId}: a canary needs at least one step`, [{ path: 'steps', message: 'at least one step' }]);
    const started = blueGreen ? { steps: [], blueGreen } : { steps };
    return [{ type: 'RolloutStarted', data: { rolloutId, deploymentId, revision, stableRevision, replicas, ...started, startedAt: at } }];
  }
  if (state.status === 'absent') throw new NotFound('rollout', rolloutId);
  switch (command.type) {
    case 'AdvanceRollout':
      return advance(command, state);
    case 'ResumeRollout': {
      const waiting = state.waiting;
      if (state.status !== 'Paused' || waiting?.kind !== 'pause' || waiting.step !== command.step || waiting.until === undefined) return [];
      if (Date.parse(command.at) < Date.parse(waiting.until)) return [];
      return [{ type: 'RolloutResumed', data: { rolloutId, step: command.step, at: command.at } }];
    }
    case 'RecordMeasurements':
      return measured(command, state);
    case 'RescaleRollout': {
      if (!isInProgress(state) || command.replicas === state.replicas) return [];
      const split = state.blueGreen ? blueGreenSplit(state, state.blueGreen, command.replicas) : splitReplicas(command.replicas, state.weight);
      return [{ type: 'RolloutRescaled', data: { rolloutId, replicas: command.replicas, ...split, at: command.at } }];
    }
    case 'PromoteRollout': {
      if (!isInProgress(state)) throw new NoRolloutInProgress('rollout', rolloutId, state.status, 'promote', 'no rollout is in progress');
      if (state.strategy === 'blue_green' && !isSwitched(state)) {
        return [{ type: 'RolloutPromoted', data: { rolloutId, step: state.waiting?.step ?? state.step, full: command.full, at: command.at } }];
      }
      if (!command.full && !state.waiting) {
        throw new InvalidTransition('rollout', rolloutId, state.status, 'promote', 'it waits on no pause or analysis now: promote with {"full": true} to skip every step left');
      }
      const at = state.waiting?.step ?? state.step;
      return [{ type: 'RolloutPromoted', data: { rolloutId, step: at, full: command.full, at: command.at } }];
    }
    case 'AbortRollout': {
      if (!isInProgress(state)) {
        if (command.superseded) return [];
        throw new NoRolloutInProgress('rollout', rolloutId, state.status, 'abort', 'no rollout is in progress');
      }
      if (state.strategy === 'blue_green' && state.step > stepIndex(state, 'scaleDown')) {
        if (command.superseded) return [];
        throw new InvalidTransition('rollout', rolloutId, state.status, 'abort', 'the old side is scaled down already: the rollout is completing, and there is nothing left to switch back to');
      }
      const step = Math.max(0, state.waiting?.step ?? state.step - 1);
      return [{ type: 'RolloutAborted', data: { rolloutId, step, cause: command.cause, failedMeasurements: [], superseded: command.superseded ?? false, at: command.at } }];
    }
  }
}

function advance(command: Extract<RolloutCommand, { type: 'AdvanceRollout' }>, state: StartedRollout): RolloutEvent[] {
  const { rolloutId, at } = command;
  if (state.status !== 'Progressing' || state.waiting) return [];
  if (command.step !== undefined && command.step !== state.step) return [];
  const spec = state.steps[state.step];
  if (!spec) return [{ type: 'RolloutCompleted', data: { rolloutId, revision: state.revision, at } }];
  const step = state.step;
  switch (spec.kind) {
    case 'weight':
      return [{ type: 'RolloutWeightSet', data: { rolloutId, step, weight: spec.weight, ...splitReplicas(command.replicas, spec.weight), at } }];
    case 'pause': {
      const until = spec.seconds === undefined ? {} : { until: new Date(Date.parse(at) + spec.seconds * 1000).toISOString() };
      return [{ type: 'RolloutPaused', data: { rolloutId, step, ...until, reason: 'step', at } }];
    }
    case 'preview':
      return [{ type: 'RolloutPreviewStarted', data: { rolloutId, step, previewReplicas: state.blueGreen?.previewReplicas ?? command.replicas, at } }];
    case 'switch':
      return [{ type: 'RolloutSwitched', data: { rolloutId, step, replicas: command.replicas, at } }];
    case 'scaleDown':
      return [{ type: 'RolloutScaledDown', data: { rolloutId, step, at } }];
    case 'analysis': {
      if (!command.analysis) throw new RuleViolation(`rollout ${rolloutId}: step ${step} is an analysis, and no template was given to run`, [{ path: 'analysis', message: 'required' }]);
      const started = startAnalysisRun({ runId: command.runId, template: command.analysis.template, args: command.analysis.args, at: new Date(at) });
      return [{ type: 'RolloutAnalysisStarted', data: { rolloutId, step, runId: command.runId, at } }, started];
    }
  }
}

/**
 * Readings of the run the rollout waits on: their `AnalysisMeasured` events, and when they decide the run, its verdict
 * with what follows: a failed run aborts the rollout (with the measurements that failed), an inconclusive one pauses
 * it until someone promotes or aborts it. Readings of a run the rollout no longer waits on record nothing.
 */
function measured(command: Extract<RolloutCommand, { type: 'RecordMeasurements' }>, state: StartedRollout): RolloutEvent[] {
  const { rolloutId, runId, at } = command;
  const entry = state.runs.find((r) => r.runId === runId);
  if (!entry) throw new RuleViolation(`rollout ${rolloutId} has no analysis run ${runId}`, [{ path: 'runId', message: 'not a run of this rollout' }]);
  if (!isInProgress(state) || state.waiting?.kind !== 'analysis' || state.waiting.runId !== runId) return [];
  const events: AnalysisEvent[] = [];
  let run = entry.run;
  for (const { metric, reading } of command.readings) {
    if (run.status !== 'running') break;
    for (const event of recordMeasurement(run, { metric, reading, at: new Date(at) })) {
      events.push(event);
      run = evolveAnalysisRun(run, event);
    }
  }
  const completed = events.find((e): e is Extract<AnalysisEvent, { type: 'AnalysisRunCompleted' }> => e.type === 'AnalysisRunCompleted');
  if (!completed) return events;
  const step = entry.step;
  if (completed.data.verdict === 'failed') {
    const failedMeasurements = [...entry.measurements, ...events.flatMap((e) => (e.type === 'AnalysisMeasured' ? [e.data] : []))]
      .filter((m) => m.outcome === 'failed' || m.outcome === 'error')
      .map((m) => ({ runId, metric: m.metric, outcome: m.outcome, value: m.value, message: m.message, measuredAt: m.measuredAt }));
    const cause = `analysis run ${runId} failed: ${completed.data.reason}`;
    return [...events, { type: 'RolloutAborted', data: { rolloutId, step, cause, failedMeasurements, superseded: false, at } }];
  }
  if (completed.data.verdict === 'inconclusive') return [...events, { type: 'RolloutPaused', data: { rolloutId, step, reason: 'inconclusive', at } }];
  return events;
}

/** Where the step of `kind` is among the rollout's steps; past the end when it has none. */
function stepIndex(state: StartedRollout, kind: RolloutStepSpec['kind']): number {
  const at = state.steps.findIndex((step) => step.kind === kind);
  return at === -1 ? state.steps.length : at;
}

/** Whether a blue/green rollout's active Service selects the preview. */
export function isSwitched(state: StartedRollout): boolean {
  return state.strategy === 'blue_green' && state.step > stepIndex(state, 'switch');
}

/** Blue/green's counts over a new replica count: the preview follows it unless its own count is set, until switched. */
function blueGreenSplit(state: StartedRollout, strategy: BlueGreenStrategy, replicas: number): { canaryReplicas: number; stableReplicas: number } {
  const previewStarted = state.steps.slice(0, state.step).some((step) => step.kind === 'preview');
  const canaryReplicas = isSwitched(state) ? replicas : previewStarted ? (strategy.previewReplicas ?? replicas) : 0;
  return { canaryReplicas, stableReplicas: state.stableReplicas === 0 ? 0 : replicas };
}

export const rolloutDecider: Decider<RolloutCommand, RolloutEvent, Rollout> = { initialState, evolve, decide };

/** The run the rollout waits on, if any, as the analysis state machine sees it. */
export function currentRun(state: Rollout): RolloutRun | undefined {
  if (state.status === 'absent' || state.waiting?.kind !== 'analysis') return undefined;
  const { runId } = state.waiting;
  return state.runs.find((r) => r.runId === runId);
}

/** Each run's verdict so far, for the status view. */
export function runVerdict(entry: RolloutRun): string {
  if (entry.verdict) return entry.verdict;
  return entry.run.status === 'absent' ? 'pending' : assessRun(entry.run).verdict;
}
