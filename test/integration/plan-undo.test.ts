// Plans that undo: a plan whose third action's rollout fails and is rolled back undoes the two actions it carried out,
// last first, through the deployments' own commands and policy, on the simulated cluster; an undo policy refuses is named.
import { randomBytes } from 'node:crypto';
import { AppsV1Api, KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { eventually as waitFor } from '../support/eventually.js';
import { startWithSimulator, type TestApi } from '../support/sentinel-api.js';

const RUN = randomBytes(3).toString('hex');
const IMAGE = 'registry.example/undo/server:1';
const NEW_IMAGE = 'registry.example/undo/server:2';
const BROKEN_IMAGE = 'registry.example/undo/server:broken';
/** A few rollouts' worth: pods are ready in 200 ms and a stuck rollout fails on its 2 s progress deadline. */
const PATIENCE_MS = 15_000;

interface PlanView {
  id: string;
  status: string;
  onFailure: string;
  cause: string | null;
  notUndone: { index: number; kind: string; reason: string }[];
  actions: { index: number; kind: string; status: string; undo: { kind: string } | null; undoDetail: string | null; timeline: { status: string }[] }[];
}

interface DeploymentView {
  id: string;
  status: string;
  replicas: number;
  readyReplicas: number | null;
  currentRevision: number;
}

const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean) => waitFor(what, probe, done, PATIENCE_MS);

describe('plans that undo: a failed third action rolls the plan back and undoes the first two, last first', function () {
  this.timeout(60_000);
  let api: TestApi;
  let sim: ClusterSimulator;
  let apps: AppsV1Api;
  let counter = 0;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    let kubeConfig: KubeConfig;
    ({ api, sim, kubeConfig } = await startWithSimulator());
    apps = kubeConfig.makeApiClient(AppsV1Api);
    // Pods of a `:broken` image never become ready: their rollout fails on its deadline and the cluster rolls it back.
    sim.faults.neverReady(/:broken$/);
  });

  after(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    sim?.faults.clear();
    await api?.stop();
  });

  const created = async (path: string, body: unknown, as: 'admin' | 'operator' = 'admin'): Promise<string> => {
    const reply = await api.request<{ id: string }>('post', path, { as, body });
    expect(reply.status, `${path}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
    return reply.body.id;
  };

  const deployment = async (id: string) => (await api.request<DeploymentView>('get', `/deployments/${id}`, { as: 'viewer' })).body;
  const plan = async (id: string) => (await api.request<PlanView>('get', `/action-plans/${id}`, { as: 'viewer' })).body;
  const planEvents = (id: string) => api.stream(`plan-${id}`);

  /** A workload in a namespace of its own, deployed and available; with `nextImage`, its spec revision 2 runs that image. */
  const fleet = async (replicas: number, nextImage?: string) => {
    counter += 1;
    const namespace = `undo-${RUN}-${counter}`;
    const name = `server-${counter}`;
    const workloadId = await created('/workloads', {
      name,
      namespace,
      type: 'inference',
      image: IMAGE,
      resources: { cpu: '100m', memory: '128Mi' },
    });
    const deploymentId = await created('/deployments', { workloadId, clusterId: SIMULATED_CLUSTER_ID, replicas });
    await eventually(`deployment ${deploymentId} Available`, () => deployment(deploymentId), (view) => view.status === 'Available' && view.readyReplicas === replicas);
    if (nextImage) {
      const patched = await api.request('patch', `/workloads/${workloadId}`, { body: { image: nextImage } });
      expect(patched.status, JSON.stringify(patched.body)).to.equal(202);
    }
    return { namespace, name, deploymentId };
  };

  /** Scale A 2 → `replicas`, update B to a new image, then update C to a broken one; `beforePlan` runs before it is submitted. */
  const threeActions = async (replicas: number, beforePlan: (b: { namespace: string }) => Promise<unknown> = async () => undefined) => {
    const [a, b, c] = await Promise.all([fleet(2), fleet(1, NEW_IMAGE), fleet(1, BROKEN_IMAGE)]);
    await beforePlan(b);
    const planId = await created(
      '/action-plans',
      {
        reason: `plan-undo test ${counter}`,
        ttlSeconds: 600,
        actions: [
          { kind: 'scale', deploymentId: a.deploymentId, replicas },
          { kind: 'update', deploymentId: b.deploymentId, workloadRevision: 2 },
          { kind: 'update', deploymentId: c.deploymentId, workloadRevision: 2 },
        ],
      },
      'operator',
    );
    return { a, b, c, planId };
  };

  const rolledBack = (planId: string) =>
    eventually(`plan ${planId} RolledBack`, () => plan(planId), (view) => view.status === 'RolledBack' && view.actions.every((a) => a.status !== 'Undoing'));

  /** The undo steps on the plan's stream, in the order they were recorded. */
  const undoSteps = (events: RecordedEvent[]) =>
    events.filter((event) => event.type.startsWith('PlanActionUndo') || event.type === 'PlanActionUndone' || event.type === 'PlanActionNotUndone').map((event) => `${event.type}/${event.data['index'] as number}`);

  const imageOf = async (name: string, namespace: string) => (await apps.readNamespacedDeployment({ name, namespace })).spec?.template.spec?.containers[0]?.image;

  /** A policy that refuses every rollback in the namespace, for the next hour. */
  const freezeRollbacks = async ({ namespace }: { namespace: string }) => {
    const freezeId = await created('/policies', {
      name: `no rollbacks in ${namespace}`,
      type: 'change_freeze',
      mode: 'enforce',
      selector: { namespaces: [namespace], actions: ['rollback'] },
      parameters: { windows: [{ start: new Date(Date.now() - 60_000).toISOString(), end: new Date(Date.now() + 3_600_000).toISOString() }] },
    });
    cleanups.push(() => api.request('delete', `/policies/${freezeId}`));
  };

  // Both plans run side by side (each on deployments of its own), so that the file takes the time of one.
  let undone: Awaited<ReturnType<typeof threeActions>>;
  let refused: Awaited<ReturnType<typeof threeActions>>;
  before(async () => {
    [undone, refused] = await Promise.all([threeActions(4), threeActions(3, freezeRollbacks)]);
  });

  it('given scale A 2 → 4, update B and a broken update of C, then B goes back to its revision, then A to 2 replicas, and the plan is RolledBack', async () => {
    const { a, b, c, planId } = undone;

    const done = await rolledBack(planId);
    expect(done.actions.map((action) => [action.kind, action.status])).to.deep.equal([
      ['scale', 'Undone'],
      ['update', 'Undone'],
      ['update', 'Failed'],
    ]);
    expect(done.notUndone).to.deep.equal([]);
    expect(done.actions[0]!.undoDetail).to.match(/^scaled back from 4 to 2 replicas: .* with 2 replicas/);
    expect(done.actions[1]!.undoDetail).to.match(/^rolled back from revision 2 to revision 1: /);
    expect(done.actions[0]!.timeline.map((step) => step.status)).to.deep.equal(['Pending', 'Executing', 'Succeeded', 'Undoing', 'Undone']);

    // Undone in reverse order, each step recorded on the plan's stream before the next began.
    const events = await planEvents(planId);
    expect(events.map((event) => event.type).slice(-8)).to.deep.equal([
      'PlanActionStarted',
      'ActionPlanRollbackStarted',
      'PlanActionFailed',
      'PlanActionUndoStarted',
      'PlanActionUndone',
      'PlanActionUndoStarted',
      'PlanActionUndone',
      'ActionPlanRolledBack',
    ]);
    expect(undoSteps(events)).to.deep.equal(['PlanActionUndoStarted/1', 'PlanActionUndone/1', 'PlanActionUndoStarted/0', 'PlanActionUndone/0']);

    // On the cluster: A runs 2 replicas again, B its first image, C its first image (the cluster rolled it back).
    await eventually('A back at 2 replicas', () => deployment(a.deploymentId), (view) => view.status === 'Available' && view.replicas === 2 && view.readyReplicas === 2);
    expect((await apps.readNamespacedDeployment({ name: a.name, namespace: a.namespace })).spec?.replicas).to.equal(2);
    const bView = await eventually('B Available again', () => deployment(b.deploymentId), (view) => view.status === 'Available' && view.currentRevision === 3);
    expect(bView.currentRevision).to.equal(3);
    expect(await imageOf(b.name, b.namespace)).to.equal(IMAGE);
    expect(await imageOf(c.name, c.namespace)).to.equal(IMAGE);

    // Each undo went through the deployment's commands and policy, in the plan's name.
    const bEvents = await api.stream(`deployment-${b.deploymentId}`);
    const undoB = bEvents.find((event) => event.type === 'DeploymentRollbackRequested');
    expect(undoB?.data).to.deep.include({ revision: 3, toRevision: 1 });
    expect(undoB?.metadata.source).to.equal(`plan:${planId}`);
    const judged = bEvents.filter((event) => event.type === 'PolicyEvaluated').at(-1);
    expect(judged?.data).to.deep.include({ command: 'RollbackDeployment', verdict: 'allow' });
    const scaledBack = (await api.stream(`deployment-${a.deploymentId}`)).filter((event) => event.type === 'DeploymentScaled').map((event) => event.data);
    expect(scaledBack.map((data) => [data['previousReplicas'], data['replicas']])).to.deep.equal([
      [2, 4],
      [4, 2],
    ]);
  });

  it('given a change freeze on rollbacks in B\'s namespace, then the undo of B is refused and named, A is still undone, and the plan is RolledBack', async () => {
    const { a, b, planId } = refused;

    const done = await rolledBack(planId);
    expect(done.actions.map((action) => [action.kind, action.status])).to.deep.equal([
      ['scale', 'Undone'],
      ['update', 'NotUndone'],
      ['update', 'Failed'],
    ]);
    expect(done.notUndone).to.have.length(1);
    expect(done.notUndone[0]).to.deep.include({ index: 1, kind: 'update' });
    expect(done.notUndone[0]!.reason).to.match(/^its undo \(rolled back from revision 2 to revision 1\) was refused: .*frozen/);
    const recorded = (await planEvents(planId)).at(-1)!;
    expect(recorded.type).to.equal('ActionPlanRolledBack');
    expect(recorded.data['notUndone']).to.deep.equal(done.notUndone);
    expect(undoSteps(await planEvents(planId))).to.deep.equal(['PlanActionUndoStarted/1', 'PlanActionNotUndone/1', 'PlanActionUndoStarted/0', 'PlanActionUndone/0']);

    // The refusal is recorded on B, which keeps its new image; A went back to 2 replicas.
    const judged = (await api.stream(`deployment-${b.deploymentId}`)).filter((event) => event.type === 'PolicyEvaluated').at(-1);
    expect(judged?.data).to.deep.include({ command: 'RollbackDeployment', verdict: 'deny' });
    expect(await imageOf(b.name, b.namespace)).to.equal(NEW_IMAGE);
    await eventually('A back at 2 replicas', () => deployment(a.deploymentId), (view) => view.status === 'Available' && view.replicas === 2 && view.readyReplicas === 2);
  });
});
