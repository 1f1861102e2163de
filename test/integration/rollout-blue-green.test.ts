// Blue/green rollouts end to end: the rollout reactor on the cluster simulator, the pre-promotion analysis through a
// real Prometheus scraping the simulator's per-pod vLLM metrics. Promoted by hand and automatically, the old side
// scaled down after the delay, and a preview that fails its analysis aborted with the active Service untouched.
import { randomUUID } from 'node:crypto';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import { deployments } from '../../commands/aggregates.js';
import type { CommandContext } from '../../commands/command-handler.js';
import type { CanaryStep } from '../../domain/deployment.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import type { StartedRollout } from '../../domain/rollout.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { readRollout } from '../../projections/http/rollout-routes.js';
import { PROMETHEUS_SKIP_REASON } from '../support/prometheus.js';
import { GOOD_IMAGE, LATENCY_SLO_MS, quickAnalysis, SLOW_IMAGE, STABLE_IMAGE, startRolloutHarness, type RolloutHarness } from '../support/rollout-harness.js';

const RUN = randomUUID().slice(0, 6);
const operator: CommandContext = { actor: { id: 'ops', kind: 'user' }, correlationId: 'c-ops', causationId: 'c-ops' };
const DEPLOYMENT_ID = 'sentinel.io/deployment-id';
const ROLLOUT_OF = 'sentinel.io/rollout-of';
const ROLE = 'sentinel.io/rollout-role';
/** The quick analysis of the canary tests, as a blue/green pre-promotion analysis. */
const PRE_PROMOTION = (quickAnalysis() as Extract<CanaryStep, { analysis: unknown }>).analysis;

describe('blue/green rollouts on the cluster simulator, analysed through a real Prometheus', function () {
  this.timeout(90_000);
  let h: RolloutHarness;
  let apps: AppsV1Api;
  let core: CoreV1Api;

  before(async function () {
    if (PROMETHEUS_SKIP_REASON) {
      console.log(`SKIP: ${PROMETHEUS_SKIP_REASON}`);
      this.skip();
    }
    h = await startRolloutHarness();
    apps = h.kubeConfig.makeApiClient(AppsV1Api);
    core = h.kubeConfig.makeApiClient(CoreV1Api);
  });
  after(async () => {
    await h?.stop();
  });

  /** A deployment of the stable image (its first revision just deploys), then its revision 2 of `image` as blue/green. */
  async function blueGreen(namespace: string, image: string, strategy: Record<string, unknown>): Promise<string> {
    const id = await h.deploy(namespace, [{ weight: 100 }]);
    const spec: WorkloadSpec = {
      name: 'llm',
      namespace,
      type: 'inference',
      image,
      env: {},
      resources: { cpu: '100m', memory: '128Mi' },
      labels: {},
      slo: { latencyP99Ms: LATENCY_SLO_MS },
    };
    const parsed = { type: 'blue_green' as const, autoPromote: false, scaleDownDelaySeconds: 30, ...strategy };
    await h.handler.execute(
      deployments,
      id,
      {
        type: 'UpdateDeployment',
        deploymentId: id,
        workload: { status: 'active', specRevision: 2, spec: spec as unknown as Record<string, unknown> },
        workloadRevision: 2,
        strategy: parsed,
      },
      { actor: { id: 'test-operator', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() },
    );
    return id;
  }

  async function objects(namespace: string): Promise<Record<string, { replicas: number; image: string | undefined }>> {
    const list = await apps.listNamespacedDeployment({ namespace });
    return Object.fromEntries(list.items.map((d) => [d.metadata!.name!, { replicas: d.spec?.replicas ?? 0, image: d.spec?.template.spec?.containers[0]?.image }]));
  }

  async function services(namespace: string): Promise<Record<string, Record<string, string>>> {
    const list = await core.listNamespacedService({ namespace });
    return Object.fromEntries(list.items.map((s) => [s.metadata!.name!, { ...s.spec?.selector }]));
  }

  const rolloutTypes = (events: RecordedEvent[]) => events.map((e) => e.type).filter((t) => t.startsWith('Rollout'));

  describe('promoted by hand, automatically, and aborted by its analysis, side by side', () => {
    const manualNs = `bg-${RUN}-manual`;
    const autoNs = `bg-${RUN}-auto`;
    const slowNs = `bg-${RUN}-slow`;
    let manual: string;
    let auto: string;
    let slow: string;

    before(async () => {
      [manual, auto, slow] = await Promise.all([
        blueGreen(manualNs, GOOD_IMAGE, { scaleDownDelaySeconds: 2 }),
        blueGreen(autoNs, GOOD_IMAGE, { autoPromote: true, autoPromotionSeconds: 1, prePromotionAnalysis: PRE_PROMOTION, scaleDownDelaySeconds: 1 }),
        blueGreen(slowNs, SLOW_IMAGE, { autoPromote: true, prePromotionAnalysis: PRE_PROMOTION }),
      ]);
    });

    it('by hand: the preview runs next to the old side, the active Service moves on promotion, the old side goes after the delay', async () => {
      await h.until('the preview waiting for promotion', () => h.rollout(manual, 2), (r) => r.status === 'Paused');
      // The preview at full replicas next to the old side, which still has all the traffic.
      expect(await objects(manualNs)).to.deep.equal({ llm: { replicas: 2, image: STABLE_IMAGE }, 'llm-preview': { replicas: 2, image: GOOD_IMAGE } });
      expect(await services(manualNs)).to.deep.equal({
        llm: { [DEPLOYMENT_ID]: manual },
        'llm-preview': { [ROLLOUT_OF]: manual, [ROLE]: 'preview' },
      });
      // The preview's pods are not the deployment's by its id: what selects those (the active Service) finds the old side alone.
      const previewPods = await core.listNamespacedPod({ namespace: manualNs, labelSelector: `${ROLE}=preview` });
      expect(previewPods.items).to.have.length(2);
      expect(previewPods.items.every((pod) => pod.metadata!.labels![DEPLOYMENT_ID] === undefined)).to.equal(true);
      expect(await readRollout(h.store, manual)).to.deep.include({ status: 'Paused', waitingFor: 'promotion (POST /deployments/:id/promote)' });
      const paused = (await h.rollout(manual, 2)) as StartedRollout;
      expect(paused.strategy).to.equal('blue_green');
      expect(paused.steps).to.deep.equal([{ kind: 'preview' }, { kind: 'pause' }, { kind: 'switch' }, { kind: 'pause', seconds: 2 }, { kind: 'scaleDown' }]);

      await h.commands.promote(manual, false, operator);
      await h.until('the active Service on the preview', () => services(manualNs), (s) => s['llm']?.[ROLE] === 'preview');
      const switched = await h.rollout(manual, 2);
      expect(switched).to.deep.include({ weight: 100 });

      const done = await h.until('Available on revision 2', () => h.deployment(manual), (d) => d.status === 'Available' && d.currentRevision === 2);
      expect(done.availableRevisions).to.include(2);
      const events = await h.rolloutEvents(manual, 2);
      expect(rolloutTypes(events)).to.deep.equal([
        'RolloutStarted',
        'RolloutPreviewStarted',
        'RolloutPaused',
        'RolloutPromoted',
        'RolloutSwitched',
        'RolloutPaused',
        'RolloutResumed',
        'RolloutScaledDown',
        'RolloutCompleted',
      ]);
      // The scale-down waited for its delay after the switch.
      const at = (type: string) => Date.parse(String(events.filter((e) => e.type === type).at(-1)!.data['at']));
      expect(at('RolloutScaledDown') - at('RolloutSwitched')).to.be.at.least(2_000);
      // The old side went to no pods before the deployment's own object took the new spec.
      const scaling = await core.listNamespacedEvent({ namespace: manualNs, fieldSelector: 'involvedObject.name=llm,reason=ScalingReplicaSet' });
      expect(scaling.items.map((e) => e.message)).to.satisfy((messages: string[]) => messages.some((m) => /^Scaled down replica set llm-[a-z0-9]+ from 2 to 0$/.test(m)));
      // In the end the deployment's own object runs the new spec behind the active Service, and the preview is gone.
      await h.until('the preview gone', () => objects(manualNs), (o) => !('llm-preview' in o));
      expect(await objects(manualNs)).to.deep.equal({ llm: { replicas: 2, image: GOOD_IMAGE } });
      expect(await services(manualNs)).to.deep.equal({ llm: { [DEPLOYMENT_ID]: manual } });
      expect(await readRollout(h.store, manual)).to.deep.include({ status: 'Completed', waitingFor: null });
    });

    it('automatically: promoted once the pre-promotion analysis passed and autoPromotionSeconds went by', async () => {
      await h.until(
        'the automatic blue/green Available on revision 2',
        async () => ({ deployment: await h.deployment(auto), rollout: await h.rollout(auto, 2) }),
        ({ deployment: d }) => d.status === 'Available' && d.currentRevision === 2,
        60_000,
      );
      const rollout = (await h.rollout(auto, 2)) as StartedRollout;
      expect(rollout.status).to.equal('Completed');
      expect(rollout.runs).to.have.length(1);
      expect(rollout.runs[0]!.verdict).to.equal('successful');
      expect(rollout.runs[0]!.measurements.filter((m) => m.outcome === 'successful').length).to.be.greaterThan(0);
      expect(rolloutTypes(await h.rolloutEvents(auto, 2))).to.deep.equal([
        'RolloutStarted',
        'RolloutPreviewStarted',
        'RolloutAnalysisStarted',
        'RolloutPaused',
        'RolloutResumed',
        'RolloutSwitched',
        'RolloutPaused',
        'RolloutResumed',
        'RolloutScaledDown',
        'RolloutCompleted',
      ]);
      await h.until('the preview gone', () => objects(autoNs), (o) => !('llm-preview' in o));
      expect(await objects(autoNs)).to.deep.equal({ llm: { replicas: 2, image: GOOD_IMAGE } });
      expect(await services(autoNs)).to.deep.equal({ llm: { [DEPLOYMENT_ID]: auto } });
    });

    it('a preview that fails its pre-promotion analysis is aborted: active Service untouched, preview gone, back on the stable spec', async () => {
      await h.until('the slow preview analysed', () => h.rollout(slow, 2), (r) => r.status !== 'absent' && r.runs.length > 0);
      const activeBefore = await core.readNamespacedService({ name: 'llm', namespace: slowNs });
      await h.until(
        'the slow blue/green rolled back',
        async () => ({ deployment: await h.deployment(slow), rollout: await h.rollout(slow, 2) }),
        ({ deployment: d }) => d.status === 'Available' && d.currentRevision === 3,
        60_000,
      );
      const rollout = (await h.rollout(slow, 2)) as StartedRollout;
      expect(rollout.status).to.equal('Aborted');
      expect(rollout.runs[0]!.verdict).to.equal('failed');
      expect(rolloutTypes(await h.rolloutEvents(slow, 2))).to.deep.equal(['RolloutStarted', 'RolloutPreviewStarted', 'RolloutAnalysisStarted', 'RolloutAborted']);

      // The active Service was never written after the preview started: the same selector, the same resourceVersion.
      const activeAfter = await core.readNamespacedService({ name: 'llm', namespace: slowNs });
      expect(activeAfter.spec!.selector).to.deep.equal({ [DEPLOYMENT_ID]: slow });
      expect(activeAfter.metadata!.resourceVersion).to.equal(activeBefore.metadata!.resourceVersion);
      expect(await services(slowNs)).to.not.have.property('llm-preview');
      await h.until('the preview gone', () => objects(slowNs), (o) => !('llm-preview' in o));
      expect((await objects(slowNs))['llm']).to.deep.equal({ replicas: 2, image: STABLE_IMAGE });

      const events = await h.deploymentEvents(slow);
      const failed = events.find((e) => e.type === 'DeploymentRolloutFailed')!;
      expect(failed.data['cause']).to.match(/^blue\/green aborted: analysis run .* failed: /);
      const measurements = failed.data['failedMeasurements'] as { metric: string; value: unknown }[];
      expect(measurements.map((m) => m.metric)).to.include('latency-p99');
      expect(events.find((e) => e.type === 'DeploymentRolledBack')!.data).to.deep.include({ revision: 2, toRevision: 1, newRevision: 3 });
    });
  });

  it('aborted by hand while previewing: the preview and its Service go, the old side keeps the traffic', async () => {
    const ns = `bg-${RUN}-abort`;
    const id = await blueGreen(ns, GOOD_IMAGE, {});
    await h.until('the preview waiting for promotion', () => h.rollout(id, 2), (r) => r.status === 'Paused');
    await h.commands.abort(id, 'wrong model weights', operator);
    await h.until('rolled back to the stable spec', () => h.deployment(id), (d) => d.status === 'Available' && d.currentRevision === 3);
    const failed = (await h.deploymentEvents(id)).find((e) => e.type === 'DeploymentRolloutFailed')!;
    expect(failed.data['cause']).to.equal('blue/green aborted: aborted by ops: wrong model weights');
    await h.until('the preview gone', () => objects(ns), (o) => !('llm-preview' in o));
    expect(await objects(ns)).to.deep.equal({ llm: { replicas: 2, image: STABLE_IMAGE } });
    expect(await services(ns)).to.deep.equal({ llm: { [DEPLOYMENT_ID]: id } });
  });
});
