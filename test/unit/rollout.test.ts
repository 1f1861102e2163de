// The canary step machine: given a rollout's events, when a command, then the events it decides.
import { expect } from 'chai';
import { InvalidTransition, NotFound, RuleViolation } from '../../domain/decider.js';
import { deploymentDecider, strategy, type DeploymentEvent } from '../../domain/deployment.js';
import { analysisTemplate, type AnalysisEvent, type AnalysisTemplate } from '../../domain/analysis/analysis.js';
import {
  rolloutDecider,
  rolloutStreamEvents,
  splitReplicas,
  stepsOf,
  type RolloutCommand,
  type RolloutEvent,
} from '../../domain/rollout.js';
import { given } from '../support/decider.js';

const deploymentId = 'd0d0d0d0-2222-4b4b-8b8b-000000000001';
const rolloutId = `${deploymentId}.2`;
const runId = 'a0a0a0a0-1111-4b4b-8b8b-000000000009';
const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:10.000Z';

const template: AnalysisTemplate = analysisTemplate.parse({
  name: 'latency',
  metrics: [{ name: 'p99', provider: 'prometheus', query: 'q', interval: '1s', count: 2, successCondition: 'result <= 1.5' }],
});

function started(steps: unknown[], replicas = 4): RolloutEvent {
  const parsed = strategy.parse({ type: 'canary', steps });
  if (parsed.type !== 'canary') throw new Error('not a canary');
  return { type: 'RolloutStarted', data: { rolloutId, deploymentId, revision: 2, stableRevision: 1, replicas, steps: parsed.steps, startedAt: T0 } };
}

const advance = (replicas = 4, at = T0, analysis?: { template: AnalysisTemplate; args: Record<string, string> }): RolloutCommand => ({
  type: 'AdvanceRollout',
  rolloutId,
  replicas,
  runId,
  at,
  ...(analysis ? { analysis } : {}),
});

/** Every event the decider records along the way, folded in order: the history of a rollout driven by commands. */
function drive(past: RolloutEvent[], ...commands: RolloutCommand[]): RolloutEvent[] {
  const events = [...past];
  for (const command of commands) events.push(...given(rolloutDecider, events).when(command).events());
  return events;
}

describe('canary rollout decider', () => {
  describe('steps', () => {
    it('given the older {weight, pauseSeconds} form, then a weight and a pause', () => {
      const parsed = strategy.parse({ type: 'canary', steps: [{ weight: 10, pauseSeconds: 60 }, { pause: {} }, { analysis: {} }, { weight: 100 }] });
      if (parsed.type !== 'canary') throw new Error('not a canary');
      expect(stepsOf(parsed.steps)).to.deep.equal([
        { kind: 'weight', weight: 10 },
        { kind: 'pause', seconds: 60 },
        { kind: 'pause' },
        { kind: 'analysis', analysis: { template: 'inference' } },
        { kind: 'weight', weight: 100 },
      ]);
    });

    it('given a step that is none of the forms, or weights that fall, then refused naming the forms', () => {
      const bad = strategy.safeParse({ type: 'canary', steps: [{ wait: 10 }] });
      expect(bad.success).to.equal(false);
      expect(JSON.stringify(bad.error?.issues)).to.contain('{\\"pause\\": {\\"seconds\\": 60}}');
      const falling = strategy.safeParse({ type: 'canary', steps: [{ weight: 50 }, { pause: { seconds: 5 } }, { weight: 20 }] });
      expect(JSON.stringify(falling.error?.issues)).to.contain('strictly increasing');
      expect(strategy.safeParse({ type: 'canary', steps: [{ analysis: { interval: 'soon' } }] }).success).to.equal(false);
    });

    it('splits replicas with the canary rounded up and the total unchanged', () => {
      expect(splitReplicas(4, 10)).to.deep.equal({ canaryReplicas: 1, stableReplicas: 3 });
      expect(splitReplicas(4, 50)).to.deep.equal({ canaryReplicas: 2, stableReplicas: 2 });
      expect(splitReplicas(3, 100)).to.deep.equal({ canaryReplicas: 3, stableReplicas: 0 });
      expect(splitReplicas(0, 30)).to.deep.equal({ canaryReplicas: 0, stableReplicas: 0 });
    });
  });

  describe('starting and advancing', () => {
    it('given nothing, when started, then RolloutStarted; started again, nothing', () => {
      const start: RolloutCommand = { type: 'StartRollout', rolloutId, deploymentId, revision: 2, stableRevision: 1, replicas: 4, steps: [{ weight: 25 }], at: T0 };
      given(rolloutDecider).when(start).then([{ ...started([{ weight: 25 }]) }]);
      given(rolloutDecider, [started([{ weight: 25 }])]).when(start).then([]);
    });

    it('given a weight step, when advanced, then the weight with the replicas of the deployment now', () => {
      given(rolloutDecider, [started([{ weight: 25 }, { weight: 60 }])])
        .when(advance(5))
        .then([{ type: 'RolloutWeightSet', data: { rolloutId, step: 0, weight: 25, canaryReplicas: 2, stableReplicas: 3, at: T0 } }]);
    });

    it('given a timed pause, then paused until its end; resumed only once it is due', () => {
      const past = drive([started([{ weight: 25, pauseSeconds: 10 }])], advance());
      given(rolloutDecider, past)
        .when(advance())
        .then([{ type: 'RolloutPaused', data: { rolloutId, step: 1, until: T1, reason: 'step', at: T0 } }]);
      const paused = drive(past, advance());
      given(rolloutDecider, paused).when(advance()).then([]);
      given(rolloutDecider, paused).when({ type: 'ResumeRollout', rolloutId, step: 1, at: '2026-01-01T00:00:09.000Z' }).then([]);
      given(rolloutDecider, paused).when({ type: 'ResumeRollout', rolloutId, step: 1, at: T1 }).then([{ type: 'RolloutResumed', data: { rolloutId, step: 1, at: T1 } }]);
    });

    it('given a weight, when the deployment is rescaled, then the same weight over the new count; the same count, nothing', () => {
      const past = drive([started([{ weight: 50 }, { pause: {} }])], advance(4), advance(4));
      given(rolloutDecider, past)
        .when({ type: 'RescaleRollout', rolloutId, replicas: 6, at: T1 })
        .then([{ type: 'RolloutRescaled', data: { rolloutId, replicas: 6, canaryReplicas: 3, stableReplicas: 3, at: T1 } }]);
      given(rolloutDecider, past).when({ type: 'RescaleRollout', rolloutId, replicas: 4, at: T1 }).then([]);
      const rescaled = drive(past, { type: 'RescaleRollout', rolloutId, replicas: 6, at: T1 }, { type: 'PromoteRollout', rolloutId, full: false, at: T1 });
      expect(given(rolloutDecider, rescaled).state).to.deep.include({ replicas: 6, canaryReplicas: 3, stableReplicas: 3, weight: 50 });
    });

    it('given every step begun, when advanced, then completed', () => {
      const past = drive([started([{ weight: 100 }])], advance());
      given(rolloutDecider, past).when(advance()).then([{ type: 'RolloutCompleted', data: { rolloutId, revision: 2, at: T0 } }]);
      const done = drive(past, advance());
      expect(given(rolloutDecider, done).state).to.deep.include({ status: 'Completed', weight: 100, canaryReplicas: 0, stableReplicas: 4 });
    });
  });

  describe('promote and abort', () => {
    it('given a pause until promoted, when promoted, then it goes on; the timer cannot resume it', () => {
      const paused = drive([started([{ weight: 25 }, { pause: {} }, { weight: 50 }])], advance(), advance());
      expect(given(rolloutDecider, paused).state).to.deep.include({ status: 'Paused', waiting: { kind: 'pause', step: 1, reason: 'step' } });
      given(rolloutDecider, paused).when({ type: 'ResumeRollout', rolloutId, step: 1, at: T1 }).then([]);
      given(rolloutDecider, paused)
        .when({ type: 'PromoteRollout', rolloutId, full: false, at: T1 })
        .then([{ type: 'RolloutPromoted', data: { rolloutId, step: 1, full: false, at: T1 } }]);
      const next = drive(paused, { type: 'PromoteRollout', rolloutId, full: false, at: T1 });
      expect(given(rolloutDecider, next).when(advance()).events()[0]).to.deep.include({ type: 'RolloutWeightSet' });
    });

    it('given steps left, when promoted fully, then the next advance completes', () => {
      const paused = drive([started([{ weight: 25 }, { pause: {} }, { weight: 50 }])], advance(), advance());
      const promoted = drive(paused, { type: 'PromoteRollout', rolloutId, full: true, at: T1 });
      given(rolloutDecider, promoted).when(advance()).then([{ type: 'RolloutCompleted', data: { rolloutId, revision: 2, at: T0 } }]);
    });

    it('given nothing it waits on, when promoted without full, then refused with what to do', () => {
      given(rolloutDecider, [started([{ weight: 25 }])])
        .when({ type: 'PromoteRollout', rolloutId, full: false, at: T1 })
        .thenThrows(InvalidTransition, /full/);
    });

    it('given a rollout in progress, when aborted, then RolloutAborted; aborted again, refused (409)', () => {
      const past = drive([started([{ weight: 25 }, { pause: {} }])], advance(), advance());
      const abort: RolloutCommand = { type: 'AbortRollout', rolloutId, cause: 'aborted by ops', at: T1 };
      given(rolloutDecider, past)
        .when(abort)
        .then([{ type: 'RolloutAborted', data: { rolloutId, step: 1, cause: 'aborted by ops', failedMeasurements: [], superseded: false, at: T1 } }]);
      const aborted = drive(past, abort);
      given(rolloutDecider, aborted).when(abort).thenThrows(InvalidTransition, /no rollout is in progress/);
      given(rolloutDecider, aborted).when({ ...abort, superseded: true }).then([]);
      given(rolloutDecider, aborted).when({ type: 'PromoteRollout', rolloutId, full: true, at: T1 }).thenThrows(InvalidTransition);
    });

    it('given no rollout, then NotFound', () => {
      given(rolloutDecider).when({ type: 'PromoteRollout', rolloutId, full: true, at: T1 }).thenThrows(NotFound);
    });
  });

  describe('analysis', () => {
    const analysing = () => drive([started([{ weight: 50 }, { analysis: {} }, { weight: 100 }])], advance(), advance(4, T0, { template, args: {} }));
    const measure = (value: number | undefined, at: string): RolloutCommand => ({ type: 'RecordMeasurements', rolloutId, runId, readings: [{ metric: 'p99', reading: { value } }], at });

    it('given an analysis step without a template resolved, then refused', () => {
      const past = drive([started([{ weight: 50 }, { analysis: {} }])], advance());
      given(rolloutDecider, past).when(advance()).thenThrows(RuleViolation, /no template/);
    });

    it('given an analysis step, when advanced, then the run starts and the rollout waits on it', () => {
      const events = analysing();
      expect(events.slice(-2).map((e) => e.type)).to.deep.equal(['RolloutAnalysisStarted', 'AnalysisRunStarted']);
      expect(given(rolloutDecider, events).state).to.deep.include({ waiting: { kind: 'analysis', step: 1, runId } });
      given(rolloutDecider, events).when(advance()).then([]);
    });

    it('given passing measurements, then the run succeeds and the rollout goes on', () => {
      const events = drive(analysing(), measure(0.9, '2026-01-01T00:00:01.000Z'), measure(1.0, '2026-01-01T00:00:02.000Z'));
      expect(events.at(-1)).to.deep.include({ type: 'AnalysisRunCompleted' });
      expect((events.at(-1) as AnalysisEvent).data).to.deep.include({ verdict: 'successful' });
      const state = given(rolloutDecider, events).state;
      expect(state).to.not.have.property('waiting');
      expect(given(rolloutDecider, events).when(advance()).events()[0]).to.deep.include({ type: 'RolloutWeightSet' });
    });

    it('given a failing measurement, then the run fails and the rollout aborts with the measurement that failed', () => {
      const events = given(rolloutDecider, analysing()).when(measure(4.9, '2026-01-01T00:00:01.000Z')).events();
      expect(events.map((e) => e.type)).to.deep.equal(['AnalysisMeasured', 'AnalysisRunCompleted', 'RolloutAborted']);
      const aborted = events[2] as Extract<RolloutEvent, { type: 'RolloutAborted' }>;
      expect(aborted.data.cause).to.match(/failed: p99: 1 failed measurements/);
      expect(aborted.data.failedMeasurements).to.deep.equal([
        { runId, metric: 'p99', outcome: 'failed', value: 4.9, message: 'success condition `result <= 1.5` does not hold', measuredAt: '2026-01-01T00:00:01.000Z' },
      ]);
    });

    it('given a missing or NaN reading, then inconclusive, never a pass: the rollout pauses for a person', () => {
      for (const value of [undefined, Number.NaN]) {
        const events = given(rolloutDecider, analysing()).when(measure(value, '2026-01-01T00:00:01.000Z')).events();
        expect(events.map((e) => e.type)).to.deep.equal(['AnalysisMeasured', 'AnalysisRunCompleted', 'RolloutPaused']);
        expect((events[0] as AnalysisEvent).data).to.deep.include({ outcome: 'inconclusive' });
        expect(events[2]).to.deep.equal({ type: 'RolloutPaused', data: { rolloutId, step: 1, reason: 'inconclusive', at: '2026-01-01T00:00:01.000Z' } });
      }
    });

    it('given a run the rollout no longer waits on, then its readings record nothing', () => {
      const promoted = drive(analysing(), { type: 'PromoteRollout', rolloutId, full: false, at: T1 });
      given(rolloutDecider, promoted).when(measure(4.9, T1)).then([]);
    });

    it('reads its own events and its runs events back through one catalogue', () => {
      for (const event of analysing()) {
        const parsed = rolloutStreamEvents.parse(event.type, rolloutStreamEvents.version(event.type), JSON.parse(JSON.stringify(event.data)));
        expect(parsed.type).to.equal(event.type);
      }
    });
  });

  describe('the deployment', () => {
    const created: DeploymentEvent = {
      type: 'DeploymentCreated',
      data: {
        deploymentId,
        workloadId: deploymentId,
        clusterId: deploymentId,
        replicas: 2,
        strategy: { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' },
        driftPolicy: 'revert',
        revision: 1,
        workloadRevision: 1,
        spec: {},
      },
    };
    it('given a deployment, when updated to blue/green, then a new revision with that strategy', () => {
      const blueGreen = strategy.parse({ type: 'blue_green', autoPromote: true, autoPromotionSeconds: 60 });
      given(deploymentDecider, [created])
        .when({ type: 'UpdateDeployment', deploymentId, workload: { status: 'active', specRevision: 1, spec: {} }, strategy: blueGreen })
        .then([{ type: 'DeploymentUpdated', data: { deploymentId, revision: 2, workloadRevision: 1, spec: {}, strategy: blueGreen } }]);
    });
    it('given a blue/green with a preview of no pods (which events recorded before may hold), then refused naming the field', () => {
      given(deploymentDecider, [created])
        .when({
          type: 'UpdateDeployment',
          deploymentId,
          workload: { status: 'active', specRevision: 1, spec: {} },
          strategy: { type: 'blue_green', previewReplicas: 0, autoPromote: false, scaleDownDelaySeconds: 30 },
        })
        .thenThrows(RuleViolation, /a blue\/green preview needs at least one pod/);
    });
  });
});
