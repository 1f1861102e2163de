// Plan execution end to end: plans submitted over the HTTP API, carried out by the plan reactor through the cluster
// reactor on the simulated cluster, and the outcome read back from the API, the event log and the cluster itself.
import { randomBytes } from 'node:crypto';
import { AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, PolicyV1Api, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { pino } from 'pino';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import type { ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { systemClock } from '../../commands/clock.js';
import { NodeDrainCommands } from '../../commands/cluster-commands.js';
import { CommandHandler } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { ClusterReactor } from '../../reactors/cluster-reactor.js';
import { PlanReactor } from '../../reactors/plan-reactor.js';
import { startWithSimulator, type TestApi } from '../support/sentinel-api.js';
import { eventually as waitFor } from '../support/eventually.js';

const RUN = randomBytes(3).toString('hex');
const IMAGE = 'registry.example/plans/server:1';
const NEVER_READY_IMAGE = 'registry.example/plans/never-ready:2';
const GPU_SKU = 'nvidia-a100-80gb';
/** A few rollouts' worth: pods are ready in 200 ms and a stuck rollout fails on its 2 s progress deadline. */
const PATIENCE_MS = 15_000;
const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

interface PlanView {
  id: string;
  status: string;
  shadow: boolean;
  cause: string | null;
  violations: { path?: string; message: string }[] | null;
  actions: { index: number; kind: string; status: string; detail: string | null; error: string | null }[];
}

interface DeploymentView {
  id: string;
  status: string;
  replicas: number;
  readyReplicas: number | null;
  currentRevision: number;
}

const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = PATIENCE_MS) =>
  waitFor(what, probe, done, timeoutMs);

const types = (events: RecordedEvent[]) => events.map((event) => event.type);

describe('plan execution: HTTP API → plan reactor → cluster reactor → simulated cluster', function () {
  this.timeout(60_000);
  let api: TestApi;
  let sim: ClusterSimulator;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let disruption: PolicyV1Api;
  let kubeConfig: KubeConfig;
  let counter = 0;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    ({ api, sim, kubeConfig } = await startWithSimulator({ SENTINEL_EVICTION_TIMEOUT_SECONDS: '2' }));
    apps = kubeConfig.makeApiClient(AppsV1Api);
    core = kubeConfig.makeApiClient(CoreV1Api);
    disruption = kubeConfig.makeApiClient(PolicyV1Api);
  });

  afterEach(async () => {
    sim?.faults.clear();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  after(async () => api?.stop());

  // ---- helpers over the API --------------------------------------------------------------------------------

  const created = async (path: string, body: unknown, as: 'admin' | 'operator' = 'admin'): Promise<string> => {
    const reply = await api.request<{ id: string }>('post', path, { as, body });
    expect(reply.status, `${path}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
    return reply.body.id;
  };

  const deployment = async (id: string) => (await api.request<DeploymentView>('get', `/deployments/${id}`, { as: 'viewer' })).body;

  const available = (id: string, replicas: number) =>
    eventually(`deployment ${id} Available with ${replicas} ready replicas`, () => deployment(id), (view) =>
      view.status === 'Available' && view.replicas === replicas && view.readyReplicas === replicas,
    );

  /** A workload in a namespace of its own, deployed on the simulated cluster and available. */
  const fleet = async (options: { replicas?: number; gpu?: boolean } = {}) => {
    counter += 1;
    const namespace = `plans-${RUN}-${counter}`;
    const name = `server-${counter}`;
    const workloadId = await created('/workloads', {
      name,
      namespace,
      type: 'inference',
      image: IMAGE,
      resources: { cpu: '100m', memory: '128Mi', ...(options.gpu ? { gpu: { count: 1, sku: GPU_SKU } } : {}) },
      labels: { team: 'plans' },
    });
    const replicas = options.replicas ?? 1;
    const deploymentId = await created('/deployments', { workloadId, clusterId: SIMULATED_CLUSTER_ID, replicas });
    await available(deploymentId, replicas);
    return { namespace, name, workloadId, deploymentId };
  };

  const submit = (actions: unknown[], extra: Record<string, unknown> = {}) =>
    created('/action-plans', { reason: `plan-execution test ${counter}`, actions, ttlSeconds: 600, ...extra }, 'operator');

  const plan = async (id: string) => (await api.request<PlanView>('get', `/action-plans/${id}`, { as: 'viewer' })).body;

  const planSettled = (id: string, status: string) =>
    eventually(`plan ${id} ${status}`, () => plan(id), (view) => view.status === status && view.actions.every((a) => a.status !== 'Executing'));

  const planEvents = (id: string) => api.stream(`plan-${id}`);
  const deploymentEvents = (id: string) => api.stream(`deployment-${id}`);

  const podsOf = async (namespace: string): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace })).items;

  const uncordonLater = (node: string) =>
    cleanups.push(() =>
      core.patchNode({ name: node, body: { spec: { unschedulable: false } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );

  // ---- the tests -------------------------------------------------------------------------------------------

  it('scales a deployment 1 → 3: Approved → Executing → Completed, and the cluster runs 3 replicas', async () => {
    const { namespace, name, deploymentId } = await fleet();
    const planId = await submit([{ kind: 'scale', deploymentId, replicas: 3 }]);

    const done = await planSettled(planId, 'Completed');
    expect(done.actions).to.have.length(1);
    expect(done.actions[0]).to.include({ kind: 'scale', status: 'Succeeded', error: null });
    expect(done.actions[0]!.detail).to.match(/available at revision 1 with 3 replicas/);

    expect(types(await planEvents(planId))).to.deep.equal([
      'ActionPlanSubmitted',
      'ActionPlanValidationStarted',
      'PolicyEvaluated',
      'ActionPlanApproved',
      'ActionPlanExecutionStarted',
      'PlanActionStarted',
      'PlanActionSucceeded',
      'ActionPlanCompleted',
    ]);
    const onCluster = await apps.readNamespacedDeployment({ name, namespace });
    expect(onCluster.spec?.replicas).to.equal(3);
    expect(onCluster.status?.readyReplicas).to.equal(3);
    const view = await available(deploymentId, 3);
    expect(view.currentRevision).to.equal(1);

    // The change went through the deployment's own commands, in the plan's name.
    const scaled = (await deploymentEvents(deploymentId)).find((event) => event.type === 'DeploymentScaled');
    expect(scaled?.data).to.deep.include({ replicas: 3, previousReplicas: 1 });
    expect(scaled?.metadata.source).to.equal(`plan:${planId}`);
    expect(scaled?.metadata.actor).to.deep.equal({ id: api.principalIds.operator, kind: 'user' });
  });

  it('reschedules a deployment onto the nodes a selector names: its pods move there and the plan completes', async () => {
    const { namespace, name, deploymentId } = await fleet({ replicas: 2 });
    const planId = await submit([{ kind: 'reschedule', deploymentId, nodeSelector: { 'kubernetes.io/hostname': 'sim-cpu-2' } }]);

    const done = await planSettled(planId, 'Completed');
    expect(done.actions[0]).to.include({ kind: 'reschedule', status: 'Succeeded' });
    const onCluster = await apps.readNamespacedDeployment({ name, namespace });
    expect(onCluster.spec?.template.spec?.nodeSelector).to.deep.include({ 'kubernetes.io/hostname': 'sim-cpu-2' });
    const pods = await eventually('pods on sim-cpu-2 only', () => podsOf(namespace), (all) => all.length === 2 && all.every((pod) => pod.spec?.nodeName === 'sim-cpu-2'));
    expect(pods).to.have.length(2);
    const rescheduled = (await deploymentEvents(deploymentId)).find((event) => event.type === 'DeploymentRescheduled');
    expect(rescheduled?.data).to.deep.include({ nodeSelector: { 'kubernetes.io/hostname': 'sim-cpu-2' }, previousNodeSelector: {} });
  });

  it('carries out two actions in order: a restart, then a scale once the restart has rolled out', async () => {
    const { namespace, name, deploymentId } = await fleet();
    const before = new Set((await podsOf(namespace)).map((pod) => pod.metadata!.name));
    const planId = await submit([
      { kind: 'restart', deploymentId },
      { kind: 'scale', deploymentId, replicas: 2 },
    ]);

    const done = await planSettled(planId, 'Completed');
    expect(done.actions.map((a) => [a.kind, a.status])).to.deep.equal([
      ['restart', 'Succeeded'],
      ['scale', 'Succeeded'],
    ]);
    const steps = (await planEvents(planId))
      .filter((event) => event.type.startsWith('PlanAction'))
      .map((event) => `${event.type}/${event.data['index'] as number}`);
    expect(steps).to.deep.equal(['PlanActionStarted/0', 'PlanActionSucceeded/0', 'PlanActionStarted/1', 'PlanActionSucceeded/1']);

    // The scale was asked for only after the restart had become available.
    const history = types(await deploymentEvents(deploymentId));
    const changes = history.filter((type) => ['DeploymentRestartRequested', 'DeploymentScaled', 'DeploymentAvailable'].includes(type));
    expect(changes, history.join(' → ')).to.deep.equal(['DeploymentAvailable', 'DeploymentRestartRequested', 'DeploymentAvailable', 'DeploymentScaled', 'DeploymentAvailable']);

    await available(deploymentId, 2);
    const onCluster = await apps.readNamespacedDeployment({ name, namespace });
    expect(onCluster.spec?.replicas).to.equal(2);
    const pods = await eventually('only restarted pods left', () => podsOf(namespace), (items) =>
      items.length === 2 && items.every((pod) => !before.has(pod.metadata!.name)),
    );
    expect(pods).to.have.length(2);
  });

  it('rolls the plan back when its update never becomes ready: RollingBack → RolledBack, the deployment back on the old image', async () => {
    const { namespace, name, workloadId, deploymentId } = await fleet();
    sim.faults.neverReady(/never-ready/);
    const patched = await api.request('patch', `/workloads/${workloadId}`, { body: { image: NEVER_READY_IMAGE } });
    expect(patched.status, JSON.stringify(patched.body)).to.equal(202);
    const planId = await submit([{ kind: 'update', deploymentId, workloadRevision: 2 }]);

    const seen = new Set<string>();
    const done = await eventually(
      `plan ${planId} RolledBack`,
      async () => {
        const view = await plan(planId);
        seen.add(view.status);
        return view;
      },
      (view) => view.status === 'RolledBack',
    );
    expect(done.actions[0]).to.include({ kind: 'update', status: 'Failed' });
    expect(done.actions[0]!.error).to.match(/ProgressDeadlineExceeded/);
    expect(done.cause).to.match(/ProgressDeadlineExceeded/);
    expect(seen.has('Completed') || seen.has('Failed')).to.equal(false);

    const steps = types(await planEvents(planId)).slice(4);
    expect(steps).to.deep.equal([
      'ActionPlanExecutionStarted',
      'PlanActionStarted',
      'ActionPlanRollbackStarted',
      'PlanActionFailed',
      'ActionPlanRolledBack',
    ]);

    const events = await deploymentEvents(deploymentId);
    const rolledBack = events.find((event) => event.type === 'DeploymentRolledBack');
    expect(rolledBack?.data).to.deep.include({ revision: 2, toRevision: 1, newRevision: 3 });
    expect(rolledBack?.data['cause']).to.match(/ProgressDeadlineExceeded/);
    const view = await eventually('deployment Available after the rollback', () => deployment(deploymentId), (d) =>
      d.status === 'Available' && d.currentRevision === 3,
    );
    expect(view.readyReplicas).to.equal(1);
    const onCluster = await eventually('the old image back on the cluster', () => apps.readNamespacedDeployment({ name, namespace }), (d) =>
      d.spec?.template.spec?.containers[0]?.image === IMAGE && d.status?.readyReplicas === 1 && d.status.updatedReplicas === 1,
    );
    expect(onCluster.spec?.template.spec?.containers[0]?.image).to.equal(IMAGE);
  });

  describe('drain', () => {
    /** A one-replica GPU deployment (only these tests place pods on GPU nodes), its pod, and a disruption budget over it. */
    const guarded = async (limit: { minAvailable: number } | { maxUnavailable: number }) => {
      const placed = await fleet({ gpu: true });
      const [pod] = await podsOf(placed.namespace);
      const node = pod!.spec!.nodeName!;
      uncordonLater(node);
      await disruption.createNamespacedPodDisruptionBudget({
        namespace: placed.namespace,
        body: { metadata: { name: 'server-pdb' }, spec: { selector: { matchLabels: { 'sentinel.io/deployment-id': placed.deploymentId } }, ...limit } },
      });
      // Until the disruption controller has counted the healthy pod, no eviction is allowed at all.
      await eventually(
        'the budget counted',
        () => disruption.readNamespacedPodDisruptionBudget({ name: 'server-pdb', namespace: placed.namespace }),
        (budget) => (budget.status?.currentHealthy ?? 0) >= 1,
      );
      return { ...placed, node, pod: `${placed.namespace}/${pod!.metadata!.name}` };
    };

    it('given a budget that allows the disruption, then the node is cordoned, the pod evicted and the plan Completed', async () => {
      const { node, pod, namespace, deploymentId } = await guarded({ maxUnavailable: 1 });
      const planId = await submit([{ kind: 'drain', clusterId: SIMULATED_CLUSTER_ID, node }]);

      const done = await planSettled(planId, 'Completed');
      expect(done.actions[0]).to.include({ kind: 'drain', status: 'Succeeded' });
      expect(done.actions[0]!.detail).to.match(new RegExp(`node ${node} drained: \\d+ pod\\(s\\) evicted`));
      expect((await core.readNode({ name: node })).spec?.unschedulable).to.equal(true);
      // The deployment's pod came back elsewhere: the cordoned node takes no new pods.
      const name = pod.split('/')[1]!;
      const pods = await eventually('the pod replaced on another node', () => podsOf(namespace), (items) =>
        items.length === 1 && items[0]!.metadata!.name !== name && items[0]!.status?.phase === 'Running',
      );
      expect(pods[0]!.spec?.nodeName).not.to.equal(node);
      await available(deploymentId, 1);
    });

    it('given the API server failing the cordon for longer than the driver retries, then the plan tries again and completes', async () => {
      const { node } = await guarded({ maxUnavailable: 1 });
      // The driver gives up after 5 attempts; 6 failures outlast its first go but not the plan's next.
      sim.faults.failNext(6, 503, { method: 'PATCH', path: new RegExp(`^/api/v1/nodes/${node}$`) });
      const planId = await submit([{ kind: 'drain', clusterId: SIMULATED_CLUSTER_ID, node }]);

      const done = await planSettled(planId, 'Completed');
      expect(done.actions[0]).to.include({ kind: 'drain', status: 'Succeeded' });
      expect((await core.readNode({ name: node })).spec?.unschedulable).to.equal(true);
      expect(types(await planEvents(planId)).filter((type) => type === 'PlanActionStarted')).to.have.length(1);
    });

    it('given a budget that allows no disruption, then the drain action fails naming the stuck pod', async () => {
      const { node, pod } = await guarded({ minAvailable: 1 });
      const planId = await submit([{ kind: 'drain', clusterId: SIMULATED_CLUSTER_ID, node }]);

      const done = await planSettled(planId, 'Failed');
      expect(done.actions[0]).to.include({ kind: 'drain', status: 'Failed' });
      expect(done.actions[0]!.error).to.include(`node ${node} is cordoned but`);
      expect(done.actions[0]!.error).to.include(pod);
      expect(done.actions[0]!.error).to.match(/disruption budget/i);
      expect(done.cause).to.include(pod);
      expect((await core.readNode({ name: node })).spec?.unschedulable).to.equal(true);
      expect(types(await planEvents(planId)).slice(-3)).to.deep.equal(['PlanActionStarted', 'PlanActionFailed', 'ActionPlanFailed']);
    });
  });

  describe('plans that are not carried out', () => {
    it('records a shadow plan, approved or not, and never executes it', async () => {
      const { namespace, name, deploymentId } = await fleet();
      const shadowId = await submit([{ kind: 'scale', deploymentId, replicas: 4 }], { shadow: true });
      // A real plan submitted after it is a barrier: once it has been carried out, the reactor has passed the shadow one.
      const realId = await submit([{ kind: 'scale', deploymentId, replicas: 2 }]);
      await planSettled(realId, 'Completed');

      const shadow = await plan(shadowId);
      expect(shadow).to.include({ status: 'Approved', shadow: true });
      expect(shadow.actions[0]).to.include({ status: 'Pending' });
      expect(types(await planEvents(shadowId))).to.deep.equal([
        'ActionPlanSubmitted',
        'ActionPlanValidationStarted',
        'PolicyEvaluated',
        'ActionPlanApproved',
      ]);
      const scaled = (await deploymentEvents(deploymentId)).filter((event) => event.type === 'DeploymentScaled');
      expect(scaled.map((event) => event.data['replicas'])).to.deep.equal([2]);
      expect((await apps.readNamespacedDeployment({ name, namespace })).spec?.replicas).to.equal(2);
    });

    it('rejects a plan that breaks a quota and never executes it', async () => {
      const { namespace, name, deploymentId } = await fleet();
      const policyId = await created('/policies', {
        name: `replicas in ${namespace}`,
        type: 'quota',
        mode: 'enforce',
        selector: { namespaces: [namespace] },
        parameters: { limits: { replicas: 2 } },
      });
      cleanups.push(() => api.request('delete', `/policies/${policyId}`));

      const refused = await api.request<{ recordedIn?: { id: string }; errors?: unknown[] }>('post', '/action-plans', {
        as: 'operator',
        body: { reason: 'more than the quota', actions: [{ kind: 'scale', deploymentId, replicas: 4 }], ttlSeconds: 600 },
      });
      expect(refused.status, JSON.stringify(refused.body)).to.equal(422);
      const planId = refused.body.recordedIn?.id;
      expect(planId, 'the refusal names the plan it recorded').to.be.a('string');

      const rejected = await eventually(`plan ${planId} Rejected`, () => plan(planId!), (view) => view.status === 'Rejected');
      expect(rejected.violations).to.have.length.greaterThan(0);
      expect(rejected.actions[0]).to.include({ status: 'Pending' });
      // A later plan is the barrier again: the reactor has long passed the rejected one when it is done.
      const laterId = await submit([{ kind: 'restart', deploymentId }]);
      await planSettled(laterId, 'Completed');
      expect(types(await planEvents(planId!))).to.deep.equal([
        'ActionPlanSubmitted',
        'ActionPlanValidationStarted',
        'PolicyEvaluated',
        'ActionPlanRejected',
      ]);
      expect(types(await deploymentEvents(deploymentId))).not.to.include('DeploymentScaled');
      expect((await apps.readNamespacedDeployment({ name, namespace })).spec?.replicas).to.equal(1);
    });
  });

  // Stops the process's reactors for good, so it comes last (mocha runs a block's own tests before its nested blocks).
  describe('after a restart', () => {
    /** Mid-action when the reactors stopped: a scale that will complete, and an update whose rollout fails meanwhile. */
    let scaling: { deploymentId: string; planId: string; name: string; namespace: string };
    let updating: { deploymentId: string; planId: string };
    let feed: { stop(): Promise<void>; errors: unknown[] };
    let handler: CommandHandler;
    let policy: PolicyEngine;
    let driver: KubeClusterDriver;

    /** A plan reactor of a new reactor process, on the same event store. */
    const planReactor = () =>
      new PlanReactor(
        {
          handler,
          deployments: new DeploymentCommands(handler, systemClock, policy),
          drains: new NodeDrainCommands(handler, systemClock, policy),
          clock: systemClock,
          driverFor: () => Promise.resolve(driver),
        },
        { logger, actionTimeoutMs: PATIENCE_MS, evictionTimeoutMs: 2_000, settlePollMs: 100 },
      );

    /**
     * Waits until the plan has started its action and the deployment took the change (and, when named, recorded
     * what followed it): the plan now waits on it.
     */
    const midAction = (planId: string, deploymentId: string, change: string, followedBy?: string) =>
      eventually(
        `plan ${planId} waiting on ${change}${followedBy ? ` and ${followedBy}` : ''}`,
        async () => [types(await planEvents(planId)), types(await deploymentEvents(deploymentId))] as const,
        ([planned, changed]) =>
          planned.at(-1) === 'PlanActionStarted' && changed.includes(change) && (!followedBy || changed.slice(changed.indexOf(change)).includes(followedBy)),
      );

    before(async () => {
      // The reactor process goes away while each plan waits on its deployment: a scale of a paused deployment (which
      // takes a scale, as Kubernetes does) that the cluster has not taken yet (its scale requests fail until the new
      // process runs; once taken, a plan settles at once), and an update whose pods never become ready, which the
      // cluster gives up on only at its progress deadline.
      const first = await fleet();
      sim.faults.failNext(10_000, 503, { method: 'PATCH', path: new RegExp(`/deployments/${first.name}/scale$`) });
      const second = await fleet();
      const patched = await api.request('patch', `/workloads/${second.workloadId}`, { body: { image: NEVER_READY_IMAGE } });
      expect(patched.status, JSON.stringify(patched.body)).to.equal(202);
      sim.faults.neverReady(/never-ready/);
      expect((await api.request('post', `/deployments/${first.deploymentId}/pause`)).status).to.equal(202);
      scaling = { ...first, planId: await submit([{ kind: 'scale', deploymentId: first.deploymentId, replicas: 2 }]) };
      updating = { ...second, planId: await submit([{ kind: 'update', deploymentId: second.deploymentId, workloadRevision: 2 }]) };
      await midAction(scaling.planId, scaling.deploymentId, 'DeploymentScaled');
      // Applied, so that the cluster reactor of the next process follows the rollout it finds on the cluster.
      await midAction(updating.planId, updating.deploymentId, 'DeploymentUpdated', 'DeploymentApplied');

      // The reactor process goes away; the API, the projectors and the cluster simulator stay up.
      await api.sentinel.reactors!.runtime.stop();
      const after = await api.head();

      // A new reactor process: its cluster reactor is fed the log as the reactor runtime would feed it.
      handler = new CommandHandler(api.eventStore);
      policy = new PolicyEngine(api.eventStore, { prices: DEFAULT_PRICES, health: noHealth });
      driver = new KubeClusterDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 100, requestTimeoutMs: 5_000 } });
      const cluster = new ClusterReactor(SIMULATED_CLUSTER_ID, driver, handler, { logger, progressDeadlineSeconds: 2 });
      await cluster.start();
      const subscription = api.eventStore.subscribe({ after, filter: { types: [...cluster.eventTypes] } });
      const errors: unknown[] = [];
      const feeding = (async () => {
        for await (const event of subscription) await cluster.handle(event).catch((error: unknown) => errors.push(error));
      })();
      feed = {
        errors,
        async stop() {
          await subscription.close();
          await feeding;
          await cluster.stop();
        },
      };
    });

    after(async () => feed?.stop());

    it('resumes both plans: the scale completes once, the update that was rolled back meanwhile ends RolledBack', async () => {
      sim.faults.clear();
      sim.faults.neverReady(/never-ready/);
      expect((await api.request('post', `/deployments/${scaling.deploymentId}/resume`)).status).to.equal(202);
      // While no plan reactor runs, both rollouts play out: the update fails on its deadline and is rolled back.
      await available(scaling.deploymentId, 2);
      await eventually('the update rolled back and Available again', () => deployment(updating.deploymentId), (view) =>
        view.status === 'Available' && view.currentRevision === 3,
      );
      expect(types(await planEvents(scaling.planId)).at(-1)).to.equal('PlanActionStarted');
      expect(types(await planEvents(updating.planId)).at(-1)).to.equal('PlanActionStarted');

      const plans = planReactor();
      const abort = new AbortController();
      cleanups.push(async () => (abort.abort(), await plans.stop()));
      await plans.start(abort.signal);

      const scaled = await planSettled(scaling.planId, 'Completed');
      expect(scaled.actions[0]).to.include({ status: 'Succeeded' });
      expect(scaled.actions[0]!.detail).to.match(/with 2 replicas/);
      const rolledBack = await planSettled(updating.planId, 'RolledBack');
      expect(rolledBack.actions[0]).to.include({ status: 'Failed' });
      expect(rolledBack.actions[0]!.error).to.match(/ProgressDeadlineExceeded/);

      // Carried out once: no action started again, no change asked for twice.
      for (const { planId, deploymentId } of [scaling, updating]) {
        const planned = types(await planEvents(planId));
        expect(planned.filter((type) => type === 'PlanActionStarted'), planId).to.have.length(1);
        const changes = types(await deploymentEvents(deploymentId)).filter((type) => type === 'DeploymentScaled' || type === 'DeploymentUpdated');
        expect(changes, deploymentId).to.have.length(1);
      }
      expect((await apps.readNamespacedDeployment({ name: scaling.name, namespace: scaling.namespace })).spec?.replicas).to.equal(2);
      expect(feed.errors).to.deep.equal([]);
    });

    it('lets go of its plans at once when stopped with its signal still live (a lost lease), and the next instance finishes them', async () => {
      const { deploymentId } = await fleet();
      expect((await api.request('post', `/deployments/${deploymentId}/pause`)).status).to.equal(202);
      const planId = await submit([{ kind: 'scale', deploymentId, replicas: 3 }]);

      const first = planReactor();
      await first.start(new AbortController().signal);
      await midAction(planId, deploymentId, 'DeploymentScaled');
      expect(first.inFlight()).to.equal(1);
      await first.stop();
      expect(first.inFlight()).to.equal(0);
      expect(types(await planEvents(planId)).at(-1)).to.equal('PlanActionStarted');

      expect((await api.request('post', `/deployments/${deploymentId}/resume`)).status).to.equal(202);
      const second = planReactor();
      const abort = new AbortController();
      cleanups.push(async () => (abort.abort(), await second.stop()));
      await second.start(abort.signal);
      const done = await planSettled(planId, 'Completed');
      expect(done.actions[0]!.detail).to.match(/with 3 replicas/);
      expect(types(await planEvents(planId)).filter((type) => type === 'PlanActionStarted')).to.have.length(1);
      expect(feed.errors).to.deep.equal([]);
    });
  });
});
