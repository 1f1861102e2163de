// Moving a deployment to another cluster with a plan: two simulated clusters, the built-in one (A) and a second one
// registered over the API (B). The move creates the workload on B at the revision A runs, waits until it is available,
// then deletes it from A; a target that never becomes available is deleted again and A is left as it was.
import { randomBytes } from 'node:crypto';
import { AppsV1Api, KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { movedDeploymentId } from '../../domain/action-plan.js';
import { eventually as waitFor } from '../support/eventually.js';
import { startWithSimulator, type TestApi } from '../support/sentinel-api.js';
import { FAST } from '../support/simulator-clients.js';

const RUN = randomBytes(3).toString('hex');
const IMAGE = 'registry.example/move/server:1';
const NEW_IMAGE = 'registry.example/move/server:2';
/** An image no cluster makes ready: its rollout fails on the progress deadline and the cluster rolls it back. */
const BROKEN_IMAGE = 'registry.example/move/server:broken';
/** An image cluster B never makes ready (cluster A runs it fine). */
const SICK_ON_B = 'registry.example/move/server:sick-on-b';
/** A few rollouts' worth: pods are ready in 200 ms and a stuck rollout fails on its 2 s progress deadline. */
const PATIENCE_MS = 15_000;

interface PlanView {
  id: string;
  status: string;
  cause: string | null;
  actions: { index: number; kind: string; status: string; detail: string | null; error: string | null }[];
}

interface DeploymentView {
  id: string;
  status: string;
  clusterId: string;
  replicas: number;
  readyReplicas: number | null;
  currentRevision: number;
}

const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean) => waitFor(what, probe, done, PATIENCE_MS);

describe('plans that move a deployment to another cluster: create on the target, wait until available, delete on the source', function () {
  this.timeout(60_000);
  let api: TestApi;
  let simA: ClusterSimulator;
  let simB: ClusterSimulator;
  let appsA: AppsV1Api;
  let appsB: AppsV1Api;
  let clusterB: string;
  let counter = 0;

  const appsOf = (sim: ClusterSimulator) => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(sim.kubeconfig());
    return kubeConfig.makeApiClient(AppsV1Api);
  };

  before(async () => {
    ({ api, sim: simA } = await startWithSimulator());
    simA.faults.neverReady(/:broken$/);
    appsA = appsOf(simA);
    simB = await startClusterSimulator(FAST);
    simB.faults.neverReady(/:sick-on-b$/);
    appsB = appsOf(simB);
    clusterB = await created('/clusters', {
      name: `second-${RUN}`,
      apiServer: simB.url,
      credentials: { source: 'kubeconfig-base64', data: Buffer.from(simB.kubeconfig()).toString('base64') },
      region: 'local-b',
      labels: {},
      gpuSkus: ['nvidia-a100-80gb'],
    });
  });

  after(async () => {
    simA?.faults.clear();
    await api?.stop();
    await simB?.close();
  });

  async function created(path: string, body: unknown, as: 'admin' | 'operator' = 'admin'): Promise<string> {
    const reply = await api.request<{ id: string }>('post', path, { as, body });
    expect(reply.status, `${path}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
    return reply.body.id;
  }

  const deployment = async (id: string) => (await api.request<DeploymentView>('get', `/deployments/${id}`, { as: 'viewer' })).body;
  const plan = async (id: string) => (await api.request<PlanView>('get', `/action-plans/${id}`, { as: 'viewer' })).body;
  const available = (id: string, replicas: number) =>
    eventually(`deployment ${id} Available with ${replicas} ready`, () => deployment(id), (view) => view.status === 'Available' && view.readyReplicas === replicas);
  const settled = (planId: string) =>
    eventually(`plan ${planId} settled`, () => plan(planId), (view) => ['Completed', 'Failed', 'RolledBack'].includes(view.status));
  /** The Kubernetes Deployment's replicas, or undefined once the object is gone. */
  const objectOn = async (apps: AppsV1Api, name: string, namespace: string): Promise<number | undefined> => {
    try {
      return (await apps.readNamespacedDeployment({ name, namespace })).spec?.replicas ?? 0;
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    }
  };
  const imageOn = async (apps: AppsV1Api, name: string, namespace: string) =>
    (await apps.readNamespacedDeployment({ name, namespace })).spec?.template.spec?.containers[0]?.image;

  /** A workload in a namespace of its own, deployed on A and available; with `nextImage`, its spec revision 2 runs that. */
  const onA = async (image: string, replicas: number, nextImage?: string) => {
    counter += 1;
    const namespace = `move-${RUN}-${counter}`;
    const name = `server-${counter}`;
    const workloadId = await created('/workloads', { name, namespace, type: 'inference', image, resources: { cpu: '100m', memory: '128Mi' } });
    const deploymentId = await created('/deployments', { workloadId, clusterId: SIMULATED_CLUSTER_ID, replicas });
    await available(deploymentId, replicas);
    if (nextImage) {
      const patched = await api.request('patch', `/workloads/${workloadId}`, { body: { image: nextImage } });
      expect(patched.status, JSON.stringify(patched.body)).to.equal(202);
    }
    return { namespace, name, workloadId, deploymentId };
  };

  const moveToB = (deploymentId: string, reason: string) =>
    created('/action-plans', { reason, ttlSeconds: 600, actions: [{ kind: 'reschedule', deploymentId, clusterId: clusterB }] }, 'operator');

  // The three cases run side by side, each on a workload of its own, so that the file takes the time of the slowest.
  let moved: Awaited<ReturnType<typeof onA>> & { planId: string };
  let sick: Awaited<ReturnType<typeof onA>> & { planId: string };
  let taken: Awaited<ReturnType<typeof onA>> & { planId: string; onB: string };
  let undone: Awaited<ReturnType<typeof onA>> & { planId: string };
  before(async () => {
    const start = async <T extends object>(fleet: Promise<Awaited<ReturnType<typeof onA>> & T>, reason: string) => {
      const placed = await fleet;
      return { ...placed, planId: await moveToB(placed.deploymentId, reason) };
    };
    const alsoOnB = async () => {
      const placed = await onA(IMAGE, 1);
      const onB = await created('/deployments', { workloadId: placed.workloadId, clusterId: clusterB, replicas: 1 });
      return { ...placed, onB };
    };
    /** A move to B, then a broken update of another deployment on A: its rollout is rolled back, and the plan with it. */
    const moveThenBreak = async () => {
      const [placed, other] = await Promise.all([onA(IMAGE, 2), onA(IMAGE, 1, BROKEN_IMAGE)]);
      const actions = [
        { kind: 'reschedule', deploymentId: placed.deploymentId, clusterId: clusterB },
        { kind: 'update', deploymentId: other.deploymentId, workloadRevision: 2 },
      ];
      return { ...placed, planId: await created('/action-plans', { reason: 'move, then a broken update', ttlSeconds: 600, actions }, 'operator') };
    };
    [moved, sick, taken, undone] = await Promise.all([
      start(onA(IMAGE, 2, NEW_IMAGE), 'move to B'),
      start(onA(SICK_ON_B, 2), 'move to a cluster that cannot run it'),
      start(alsoOnB(), 'move to a cluster that runs it already'),
      moveThenBreak(),
    ]);
  });

  it('given a deployment available on A at an older workload revision, then B runs that revision available with the same replicas, A\'s is Deleted and its objects are gone', async () => {
    const { planId, deploymentId, name, namespace } = moved;
    const done = await settled(planId);
    expect(done.status, JSON.stringify(done)).to.equal('Completed');
    const targetId = movedDeploymentId(planId, 0);
    expect(done.actions[0]!.detail).to.match(new RegExp(`moved from cluster ${SIMULATED_CLUSTER_ID} to cluster ${clusterB} as deployment ${targetId}`));

    // The new deployment on B, recorded as the action's outcome.
    const succeeded = (await api.stream(`plan-${planId}`)).find((event) => event.type === 'PlanActionSucceeded');
    expect(succeeded?.schemaVersion).to.equal(3);
    expect(succeeded?.data['after']).to.deep.include({ deploymentId: targetId, clusterId: clusterB, replicas: 2 });
    const target = await available(targetId, 2);
    expect(target).to.include({ clusterId: clusterB, replicas: 2 });
    expect(await objectOn(appsB, name, namespace)).to.equal(2);
    // A ran the workload's first spec revision, and so does B, though the workload's latest is the second.
    expect(await imageOn(appsB, name, namespace)).to.equal(IMAGE);
    const targetEvents = await api.stream(`deployment-${targetId}`);
    expect(targetEvents.find((event) => event.type === 'DeploymentCreated')?.metadata.source).to.equal(`plan:${planId}`);
    expect(targetEvents.filter((event) => event.type === 'PolicyEvaluated').map((event) => [event.data['command'], event.data['verdict']])).to.deep.include([
      'CreateDeployment',
      'allow',
    ]);

    // The source: deleted through its command (judged by policy), and its objects gone from A.
    expect((await deployment(deploymentId)).status).to.equal('Deleted');
    const sourceEvents = await api.stream(`deployment-${deploymentId}`);
    expect(sourceEvents.filter((event) => event.type === 'PolicyEvaluated').at(-1)?.data).to.deep.include({ command: 'DeleteDeployment', verdict: 'allow' });
    await eventually(`${namespace}/${name} gone from A`, () => objectOn(appsA, name, namespace), (replicas) => replicas === undefined);
  });

  it('given a target that never becomes available, then the target is deleted again, nothing is left on B, A runs as before, and the action fails saying so', async () => {
    const { planId, deploymentId, name, namespace } = sick;
    const done = await settled(planId);
    expect(done.status, JSON.stringify(done)).to.equal('RolledBack');
    const targetId = movedDeploymentId(planId, 0);
    expect(done.actions[0]).to.include({ status: 'Failed' });
    expect(done.actions[0]!.error).to.match(new RegExp(`move of deployment ${deploymentId} .* failed: .*deployment ${targetId} on cluster ${clusterB} was deleted again and ${deploymentId} stays on cluster ${SIMULATED_CLUSTER_ID}`));

    expect((await deployment(targetId)).status).to.equal('Deleted');
    await eventually(`${namespace}/${name} gone from B`, () => objectOn(appsB, name, namespace), (replicas) => replicas === undefined);
    const source = await deployment(deploymentId);
    expect(source).to.include({ status: 'Available', clusterId: SIMULATED_CLUSTER_ID, replicas: 2, currentRevision: 1 });
    expect(await objectOn(appsA, name, namespace)).to.equal(2);
  });

  it('given a target cluster that runs the workload already, then the action fails naming that deployment and nothing changes', async () => {
    const { planId, deploymentId, onB } = taken;
    const done = await settled(planId);
    expect(done.status, JSON.stringify(done)).to.equal('Failed');
    expect(done.actions[0]!.error).to.match(new RegExp(`was refused: .*already exists as ${onB}`));
    const target = await api.request('get', `/deployments/${movedDeploymentId(planId, 0)}`, { as: 'viewer' });
    expect(target.status, 'no deployment was created on B').to.equal(404);
    expect(await deployment(deploymentId)).to.include({ status: 'Available', clusterId: SIMULATED_CLUSTER_ID });
  });

  it('given a move and then an action whose rollout was rolled back, then the move is undone by the reverse move: back on A as a new deployment, nothing left on B', async () => {
    const { planId, deploymentId, name, namespace } = undone;
    const done = await eventually(`plan ${planId} RolledBack`, () => plan(planId), (view) => view.status === 'RolledBack');
    expect(done.actions.map((action) => [action.kind, action.status])).to.deep.equal([
      ['reschedule', 'Undone'],
      ['update', 'Failed'],
    ]);
    const there = movedDeploymentId(planId, 0);
    const back = movedDeploymentId(planId, 0, 'back');
    const undoView = (await api.request<{ actions: { undoDetail: string | null }[] }>('get', `/action-plans/${planId}`, { as: 'viewer' })).body.actions[0]!;
    expect(undoView.undoDetail).to.match(
      new RegExp(`^moved back from cluster ${clusterB} to cluster ${SIMULATED_CLUSTER_ID}: deployment ${there} moved from cluster ${clusterB} to cluster ${SIMULATED_CLUSTER_ID} as deployment ${back}`),
    );

    // A runs the workload again as a new deployment (the one moved stays deleted); B's is deleted and its objects gone.
    expect(await available(back, 2)).to.include({ clusterId: SIMULATED_CLUSTER_ID, replicas: 2 });
    expect((await deployment(deploymentId)).status).to.equal('Deleted');
    expect((await deployment(there)).status).to.equal('Deleted');
    await eventually(`${namespace}/${name} gone from B`, () => objectOn(appsB, name, namespace), (replicas) => replicas === undefined);
    expect(await objectOn(appsA, name, namespace)).to.equal(2);
    // The reverse move went through the deployments' commands and policy too, in the plan's name.
    const backEvents = await api.stream(`deployment-${back}`);
    expect(backEvents.find((event) => event.type === 'DeploymentCreated')?.metadata.source).to.equal(`plan:${planId}`);
    const thereEvents = await api.stream(`deployment-${there}`);
    expect(thereEvents.filter((event) => event.type === 'PolicyEvaluated').at(-1)?.data).to.deep.include({ command: 'DeleteDeployment', verdict: 'allow' });
  });
});
