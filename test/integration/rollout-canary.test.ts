// Canary rollouts end to end: the rollout reactor on the cluster simulator, judged by the built-in inference analysis
// through a real Prometheus that scrapes the simulator's per-pod vLLM metrics; a good canary promotes through every
// step, a slow one is aborted at its first usable measurement, and a restart mid-pause resumes on the recorded due time.
import { expect } from 'chai';
import { AppsV1Api } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { InvalidTransition } from '../../domain/decider.js';
import type { CommandContext } from '../../commands/command-handler.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { readRollout } from '../../projections/http/rollout-routes.js';
import type { StartedRollout } from '../../domain/rollout.js';
import { PROMETHEUS_SKIP_REASON } from '../support/prometheus.js';
import { GOOD_IMAGE, quickAnalysis, SLOW_IMAGE, startRolloutHarness, type RolloutHarness } from '../support/rollout-harness.js';

const RUN = randomBytes(3).toString('hex');
const operator: CommandContext = { actor: { id: 'ops', kind: 'user' }, correlationId: 'c-ops', causationId: 'c-ops' };

describe('canary rollouts on the cluster simulator, analysed through a real Prometheus', function () {
  this.timeout(60_000);
  let h: RolloutHarness;
  let apps: AppsV1Api;

  before(async function () {
    if (PROMETHEUS_SKIP_REASON) {
      console.log(`SKIP: ${PROMETHEUS_SKIP_REASON}`);
      this.skip();
    }
    h = await startRolloutHarness();
    apps = h.kubeConfig.makeApiClient(AppsV1Api);
  });
  after(async () => {
    await h?.stop();
  });

  async function objects(namespace: string): Promise<Record<string, { replicas: number; image: string | undefined }>> {
    const list = await apps.listNamespacedDeployment({ namespace });
    return Object.fromEntries(
      list.items.map((d) => [d.metadata!.name!, { replicas: d.spec?.replicas ?? 0, image: d.spec?.template.spec?.containers[0]?.image }]),
    );
  }

  const types = (events: RecordedEvent[]) => events.map((e) => e.type);

  describe('a good canary and a slow one, side by side', () => {
    let good: string;
    let slow: string;
    const goodNs = `ro-${RUN}-good`;
    const slowNs = `ro-${RUN}-slow`;

    before(async () => {
      const steps = [{ weight: 50 }, quickAnalysis(), { pause: { seconds: 1 } }, { weight: 100 }];
      [good, slow] = await Promise.all([h.deploy(goodNs, steps), h.deploy(slowNs, steps)]);
      await Promise.all([h.update(good, GOOD_IMAGE), h.update(slow, SLOW_IMAGE)]);
    });

    it('promotes the good canary through every step: the stable object takes its spec at full replicas, the canary object goes', async () => {
      const deployment = await h.until('the good canary Available on revision 2', () => h.deployment(good), (d) => d.status === 'Available' && d.currentRevision === 2);
      expect(deployment.availableRevisions).to.include(2);
      const rollout = (await h.rollout(good, 2)) as StartedRollout;
      expect(rollout.status).to.equal('Completed');
      const steps = types(await h.rolloutEvents(good, 2)).filter((t) => t.startsWith('Rollout'));
      expect(steps).to.deep.equal(['RolloutStarted', 'RolloutWeightSet', 'RolloutAnalysisStarted', 'RolloutPaused', 'RolloutResumed', 'RolloutWeightSet', 'RolloutCompleted']);
      expect(rollout.runs).to.have.length(1);
      expect(rollout.runs[0]!.verdict).to.equal('successful');
      // Every measurement read Prometheus; none passed on missing data.
      for (const m of rollout.runs[0]!.measurements) expect(m.outcome === 'successful' || (m.outcome === 'inconclusive' && m.value === null) || m.outcome === 'inconclusive').to.equal(true);
      expect(rollout.runs[0]!.measurements.filter((m) => m.outcome === 'successful').length).to.be.greaterThan(0);
      await h.until('the canary object gone', () => objects(goodNs), (o) => !('llm-canary' in o));
      expect((await objects(goodNs))['llm']).to.deep.equal({ replicas: 2, image: GOOD_IMAGE });
    });

    it('aborts the slow canary at its first usable measurement: canary gone, stable at full replicas, failure with the measurements, back on the stable spec', async () => {
      // The rollout rides along, so that a timeout prints where it stood (its steps, runs and measurements).
      await h.until(
        'the slow canary rolled back',
        async () => ({ deployment: await h.deployment(slow), rollout: await h.rollout(slow, 2) }),
        ({ deployment: d }) => d.status === 'Available' && d.currentRevision === 3,
      );
      const rollout = (await h.rollout(slow, 2)) as StartedRollout;
      expect(rollout.status).to.equal('Aborted');
      const [run] = rollout.runs;
      expect(run!.verdict).to.equal('failed');
      // Readings before the canary had two scrapes in its window are inconclusive; the first usable one fails it.
      const usable = run!.measurements.filter((m) => m.outcome !== 'inconclusive');
      expect(usable.length).to.be.greaterThan(0);
      expect(usable.every((m) => m.outcome === 'failed')).to.equal(true);
      expect(new Set(usable.map((m) => m.measuredAt)).size).to.equal(1);
      expect(usable.map((m) => m.metric)).to.include('latency-p99');

      const events = await h.deploymentEvents(slow);
      const failed = events.find((e) => e.type === 'DeploymentRolloutFailed')!;
      expect(failed.data['cause']).to.match(/^canary aborted: analysis run .* failed: /);
      const measurements = failed.data['failedMeasurements'] as { metric: string; outcome: string; value: unknown }[];
      expect(measurements.map((m) => m.metric)).to.include('latency-p99');
      expect(measurements.find((m) => m.metric === 'latency-p99')!.value).to.be.a('number').greaterThan(1.5);
      const rolledBack = events.find((e) => e.type === 'DeploymentRolledBack')!;
      expect(rolledBack.data).to.deep.include({ revision: 2, toRevision: 1, newRevision: 3 });

      const live = await objects(slowNs);
      expect(live).to.not.have.property('llm-canary');
      expect(live['llm']).to.deep.equal({ replicas: 2, image: 'registry.local/llm:1.0' });
    });

    it('never rolled either canary revision over the stable object as a plain rolling update', async () => {
      for (const id of [good, slow]) {
        const rollout = (await h.rollout(id, 2)) as StartedRollout;
        // The stable object held the old image until the rollout's end: the canary weight existed as its own object.
        const weights = (await h.rolloutEvents(id, 2)).filter((e) => e.type === 'RolloutWeightSet').map((e) => e.data);
        expect(weights[0]).to.deep.include({ weight: 50, canaryReplicas: 1, stableReplicas: 1 });
        expect(rollout.stableRevision).to.equal(1);
      }
    });
  });

  it('resumes a pause cut by a restart on its recorded due time, not a new one', async () => {
    const ns = `ro-${RUN}-pause`;
    const id = await h.deploy(ns, [{ weight: 50 }, { pause: { seconds: 2 } }, { weight: 100 }]);
    await h.update(id, GOOD_IMAGE);
    const paused = await h.until('paused', () => h.rollout(id, 2), (r) => r.status === 'Paused');
    const until = (paused as StartedRollout).waiting?.kind === 'pause' ? (paused as StartedRollout & { waiting: { until: string } }).waiting.until : undefined;
    expect(until).to.be.a('string');
    const pauseTimer = `rollout-${id}.2-pause-1`;
    await h.until('the pause timer recorded', () => h.handler.store.readStream(`timer-${pauseTimer}`), (read) => read.length >= 1);

    await h.restart();

    await h.until('Available on revision 2 after the restart', () => h.deployment(id), (d) => d.status === 'Available' && d.currentRevision === 2);
    const timer = await h.handler.store.readStream(`timer-${pauseTimer}`);
    expect(types(timer)).to.deep.equal(['TimerScheduled', 'TimerFired']);
    expect(Date.parse(String(timer[0]!.data['dueAt']))).to.equal(Date.parse(until!));
    expect(Date.parse(String(timer[1]!.data['firedAt']))).to.be.at.least(Date.parse(until!));
    const resumed = (await h.rolloutEvents(id, 2)).filter((e) => e.type === 'RolloutResumed');
    expect(resumed).to.have.length(1);
    expect(resumed[0]!.metadata.causationId).to.equal(timer[1]!.id);
  });

  describe('promote, abort and the status view', () => {
    it('promotes a pause that waits for a person, and shows each step as it stands', async () => {
      const ns = `ro-${RUN}-promote`;
      const id = await h.deploy(ns, [{ weight: 50 }, { pause: {} }, { weight: 100 }]);
      await h.update(id, GOOD_IMAGE);
      await h.until('paused until promoted', () => h.rollout(id, 2), (r) => r.status === 'Paused');
      // The weight is two objects' counts: the stable one keeps its spec (the cluster reactor did not roll the new
      // revision over it), the canary runs the new one.
      expect(await objects(ns)).to.deep.equal({ llm: { replicas: 1, image: 'registry.local/llm:1.0' }, 'llm-canary': { replicas: 1, image: GOOD_IMAGE } });
      expect((await h.deployment(id)).status).to.equal('Progressing');
      const paused = await readRollout(h.store, id);
      expect(paused).to.deep.include({ status: 'Paused', revision: 2, stableRevision: 1, waitingFor: 'promotion (POST /deployments/:id/promote)' });
      expect(paused.weight).to.deep.equal({ canary: 50, stable: 50 });
      expect(paused.replicas).to.deep.equal({ canary: 1, stable: 1 });
      expect(paused.steps.map((s) => s.state)).to.deep.equal(['done', 'current', 'pending']);

      // A scale during the rollout is split at the weight it stands at, on both objects.
      await h.scale(id, 4);
      await h.until('both sides rescaled', () => objects(ns), (o) => o['llm']?.replicas === 2 && o['llm-canary']?.replicas === 2);
      expect((await objects(ns))['llm']!.image).to.equal('registry.local/llm:1.0');

      await h.commands.promote(id, false, operator);
      await h.until('Available on revision 2', () => h.deployment(id), (d) => d.status === 'Available' && d.currentRevision === 2);
      expect((await objects(ns))['llm']).to.deep.equal({ replicas: 4, image: GOOD_IMAGE });
      const done = await readRollout(h.store, id);
      expect(done).to.deep.include({ status: 'Completed', waitingFor: null });
      expect(done.steps.map((s) => s.state)).to.deep.equal(['done', 'done', 'done']);
      // Nothing is in progress now: a clear refusal (409), not a silent success.
      let refused: unknown;
      await h.commands.promote(id, true, operator).catch((error: unknown) => (refused = error));
      expect(refused).to.be.instanceOf(InvalidTransition);
      expect((refused as Error).message).to.match(/no rollout is in progress/);
    });

    it('aborts by hand: traffic back on stable, the deployment back on its stable revision', async () => {
      const ns = `ro-${RUN}-abort`;
      const id = await h.deploy(ns, [{ weight: 50 }, { pause: {} }, { weight: 100 }]);
      await h.update(id, GOOD_IMAGE);
      await h.until('paused until promoted', () => h.rollout(id, 2), (r) => r.status === 'Paused');
      await h.commands.abort(id, 'saw errors in the logs', operator);
      await h.until('rolled back to the stable spec', () => h.deployment(id), (d) => d.status === 'Available' && d.currentRevision === 3);
      const failed = (await h.deploymentEvents(id)).find((e) => e.type === 'DeploymentRolloutFailed')!;
      expect(failed.data['cause']).to.equal('canary aborted: aborted by ops: saw errors in the logs');
      const live = await objects(ns);
      expect(live).to.not.have.property('llm-canary');
      expect(live['llm']).to.deep.equal({ replicas: 2, image: 'registry.local/llm:1.0' });
      const view = await readRollout(h.store, id);
      expect(view).to.deep.include({ status: 'Aborted', deploymentRevision: 3, cause: 'aborted by ops: saw errors in the logs' });
    });

    it('refuses promote and abort of a deployment with no canary rollout in progress', async () => {
      const id = await h.deploy(`ro-${RUN}-none`, [{ weight: 50 }]);
      let refused: unknown;
      await h.commands.abort(id, undefined, operator).catch((error: unknown) => (refused = error));
      expect(refused).to.be.instanceOf(InvalidTransition);
      expect((refused as Error).message).to.match(/no rollout of revision 1 is in progress/);
    });
  });
});
