// The blue/green step machine and the strategy fields it reads: given a rollout's events, when a command, then the
// events it decides.
import { expect } from 'chai';
import { analysisTemplate } from '../../domain/analysis/analysis.js';
import { InvalidTransition } from '../../domain/decider.js';
import { strategy, type BlueGreenStrategy } from '../../domain/deployment.js';
import { blueGreenSteps, isSwitched, rolloutDecider, type RolloutCommand, type RolloutEvent, type StartedRollout } from '../../domain/rollout.js';
import { given } from '../support/decider.js';

const deploymentId = 'b1b1b1b1-2222-4b4b-8b8b-000000000001';
const rolloutId = `${deploymentId}.2`;
const runId = 'a0a0a0a0-1111-4b4b-8b8b-00000000000b';
const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:01:00.000Z';

function blueGreen(fields: Record<string, unknown> = {}): BlueGreenStrategy {
  const parsed = strategy.parse({ type: 'blue_green', ...fields });
  if (parsed.type !== 'blue_green') throw new Error('not blue/green');
  return parsed;
}

function started(fields: Record<string, unknown> = {}, replicas = 4): RolloutEvent {
  return { type: 'RolloutStarted', data: { rolloutId, deploymentId, revision: 2, stableRevision: 1, replicas, steps: [], blueGreen: blueGreen(fields), startedAt: T0 } };
}

const advance = (step?: number, replicas = 4, at = T0): RolloutCommand => ({ type: 'AdvanceRollout', rolloutId, replicas, runId, at, ...(step === undefined ? {} : { step }) });
const promote = (full = false): RolloutCommand => ({ type: 'PromoteRollout', rolloutId, full, at: T0 });

function drive(past: RolloutEvent[], ...commands: RolloutCommand[]): RolloutEvent[] {
  const events = [...past];
  for (const command of commands) events.push(...given(rolloutDecider, events).when(command).events());
  return events;
}

const stateOf = (events: RolloutEvent[]) => given(rolloutDecider, events).state as StartedRollout;
const types = (events: RolloutEvent[]) => events.map((e) => e.type);

describe('blue/green rollout decider', () => {
  describe('the strategy', () => {
    it('given autoPromotionSeconds without autoPromote, then refused naming the field and what it needs', () => {
      const result = strategy.safeParse({ type: 'blue_green', autoPromotionSeconds: 30 });
      expect(result.success).to.equal(false);
      expect(result.error!.issues.map((i) => ({ path: i.path.join('.'), message: i.message }))).to.deep.equal([
        { path: 'autoPromotionSeconds', message: 'autoPromotionSeconds applies only with "autoPromote": true' },
      ]);
    });
    it('given a pre-promotion analysis with a bad interval, or an unknown field, then refused naming them', () => {
      const result = strategy.safeParse({ type: 'blue_green', prePromotionAnalysis: { interval: 'soon' }, previewService: 'x' });
      const paths = result.error!.issues.map((i) => i.path.join('.'));
      expect(paths).to.include('prePromotionAnalysis.interval');
      expect(result.error!.issues.some((i) => i.code === 'unrecognized_keys')).to.equal(true);
    });
    it('given a canary with a route, then the route is kept; a route name that is no Kubernetes name is refused', () => {
      const routed = strategy.parse({ type: 'canary', steps: [{ weight: 50 }], trafficRouting: { httpRoute: { name: 'llm-route' } } });
      expect(routed).to.deep.include({ trafficRouting: { httpRoute: { name: 'llm-route' } } });
      const bad = strategy.safeParse({ type: 'canary', steps: [{ weight: 50 }], trafficRouting: { httpRoute: { name: 'LLM Route' } } });
      expect(bad.error!.issues.map((i) => i.path.join('.'))).to.deep.equal(['trafficRouting.httpRoute.name']);
    });
  });

  describe('steps', () => {
    it('given promotion by hand, then preview, a pause until promoted, switch, the scale-down delay, scale-down', () => {
      expect(blueGreenSteps(blueGreen())).to.deep.equal([{ kind: 'preview' }, { kind: 'pause' }, { kind: 'switch' }, { kind: 'pause', seconds: 30 }, { kind: 'scaleDown' }]);
    });
    it('given automatic promotion after an analysis, with no delays, then no pauses at all', () => {
      const steps = blueGreenSteps(blueGreen({ autoPromote: true, prePromotionAnalysis: { interval: '1s' }, scaleDownDelaySeconds: 0 }));
      expect(steps).to.deep.equal([{ kind: 'preview' }, { kind: 'analysis', analysis: { template: 'inference', interval: '1s' } }, { kind: 'switch' }, { kind: 'scaleDown' }]);
    });
    it('given autoPromotionSeconds, then a timed pause before the switch', () => {
      expect(blueGreenSteps(blueGreen({ autoPromote: true, autoPromotionSeconds: 60 }))[1]).to.deep.equal({ kind: 'pause', seconds: 60 });
    });
  });

  describe('carried out', () => {
    it('given promotion by hand: preview, pause, promote, switch, delay, scale-down, completed', () => {
      let events = drive([started()], advance());
      expect(events.at(-1)).to.deep.equal({ type: 'RolloutPreviewStarted', data: { rolloutId, step: 0, previewReplicas: 4, at: T0 } });
      events = drive(events, advance());
      expect(events.at(-1)).to.deep.equal({ type: 'RolloutPaused', data: { rolloutId, step: 1, reason: 'step', at: T0 } });
      // Waiting for a person: advancing changes nothing.
      expect(given(rolloutDecider, events).when(advance()).events()).to.deep.equal([]);
      events = drive(events, promote(), advance());
      expect(types(events).slice(-2)).to.deep.equal(['RolloutPromoted', 'RolloutSwitched']);
      expect(stateOf(events)).to.deep.include({ weight: 100, canaryReplicas: 4, stableReplicas: 4 });
      expect(isSwitched(stateOf(events))).to.equal(true);
      events = drive(events, advance());
      expect(events.at(-1)).to.deep.equal({ type: 'RolloutPaused', data: { rolloutId, step: 3, until: '2026-01-01T00:00:30.000Z', reason: 'step', at: T0 } });
      events = drive(events, { type: 'ResumeRollout', rolloutId, step: 3, at: T1 }, advance(), advance());
      expect(types(events).slice(-3)).to.deep.equal(['RolloutResumed', 'RolloutScaledDown', 'RolloutCompleted']);
      expect(stateOf(events)).to.deep.include({ status: 'Completed', strategy: 'blue_green', stableReplicas: 4, canaryReplicas: 0 });
    });

    it('given a preview count, then the preview starts with it and switches at the full count', () => {
      const events = drive([started({ previewReplicas: 1 })], advance(), promote(), advance());
      expect(events[1]).to.deep.include({ type: 'RolloutPreviewStarted' });
      expect((events[1]!.data as { previewReplicas: number }).previewReplicas).to.equal(1);
      expect(events.at(-1)).to.deep.equal({ type: 'RolloutSwitched', data: { rolloutId, step: 2, replicas: 4, at: T0 } });
    });

    it('given a pre-promotion analysis running, when promoted, then the analysis is over and the switch is next', () => {
      const template = analysisTemplate.parse({ name: 't', metrics: [{ name: 'm', provider: 'prometheus', query: 'q', interval: '1s', count: 1, successCondition: 'result < 1' }] });
      const past = drive([started({ prePromotionAnalysis: { template } })], advance());
      const analysis = { template, args: {} };
      const waiting = drive(past, { ...(advance() as Extract<RolloutCommand, { type: 'AdvanceRollout' }>), analysis });
      expect(stateOf(waiting).waiting).to.deep.include({ kind: 'analysis', step: 1 });
      const events = drive(waiting, promote(), advance());
      expect(events.at(-1)!.type).to.equal('RolloutSwitched');
    });

    it('given an advance for a step that has begun since, then it records nothing', () => {
      const events = drive([started()], advance(0));
      given(rolloutDecider, events).when(advance(0)).then([]);
    });

    it('given a scale during the preview, then the preview follows the count; once scaled down the old side stays down', () => {
      const previewing = drive([started()], advance());
      given(rolloutDecider, previewing)
        .when({ type: 'RescaleRollout', rolloutId, replicas: 6, at: T0 })
        .then([{ type: 'RolloutRescaled', data: { rolloutId, replicas: 6, canaryReplicas: 6, stableReplicas: 6, at: T0 } }]);
      const down = drive(drive(previewing, advance(), promote(), advance(), promote(true)), advance());
      expect(down.at(-1)!.type).to.equal('RolloutScaledDown');
      expect(stateOf(down).stableReplicas).to.equal(0);
    });
  });

  describe('abort', () => {
    it('given a preview, when aborted, then RolloutAborted', () => {
      const events = drive([started()], advance(), advance());
      const [aborted] = given(rolloutDecider, events).when({ type: 'AbortRollout', rolloutId, cause: 'by hand', at: T1 }).events();
      expect(aborted).to.deep.equal({ type: 'RolloutAborted', data: { rolloutId, step: 1, cause: 'by hand', failedMeasurements: [], superseded: false, at: T1 } });
    });
    it('given the old side scaled down, when aborted, then refused: there is nothing to switch back to', () => {
      const events = drive([started({ scaleDownDelaySeconds: 0 })], advance(), promote(), advance(), advance());
      expect(events.at(-1)!.type).to.equal('RolloutScaledDown');
      given(rolloutDecider, events).when({ type: 'AbortRollout', rolloutId, cause: 'late', at: T1 }).thenThrows(InvalidTransition, /nothing left to switch back to/);
      given(rolloutDecider, events).when({ type: 'AbortRollout', rolloutId, cause: 'replaced', superseded: true, at: T1 }).then([]);
    });
  });
});
