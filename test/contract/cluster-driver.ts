// The ClusterDriver contract: what every driver must do to a cluster, checked through the cluster's own API.
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import {
  ClusterError,
  GPU_SKU_NODE_LABEL,
  KIND_LABEL,
  RESTARTED_AT_ANNOTATION,
  desiredTemplate,
  type ClusterDriver,
  type DesiredWorkload,
  type LiveWorkload,
  type ManagedChange,
  type ObjectRef,
} from '../../reactors/cluster-driver.js';
import type { WorkloadSpec } from '../../domain/workload.js';

export interface ClusterDriverHarness {
  driver: ClusterDriver;
  /** A second client of the same cluster, for what other actors (kubectl, an HPA, an admin) do out of band. */
  kubeConfig: KubeConfig;
  /** Fault injection, where the cluster under test offers it; the tests that need it are skipped otherwise. */
  faults?: {
    failNext(count: number, status: number, match?: { method?: string; path?: RegExp }): void;
    dropWatches(): void;
    clear(): void;
  };
  /** The longest a small rollout may take on this cluster. */
  rolloutTimeoutMs: number;
  /** A GPU SKU some nodes carry, for the GPU test; skipped when the cluster has none. */
  gpuSku?: string;
}

const RUN = randomBytes(3).toString('hex');
const OTHER_MANAGER = 'kubectl-client-side-apply';

export function clusterDriverContract(harness: () => ClusterDriverHarness): void {
  // A suite of its own, so that its cleanup runs before the caller's `after` shuts the cluster down.
  describe('ClusterDriver', () => contract(harness));
}

function contract(harness: () => ClusterDriverHarness): void {
  let h: ClusterDriverHarness;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let policy: PolicyV1Api;
  let autoscaling: AutoscalingV2Api;
  const namespaces: string[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];

  before(() => {
    h = harness();
    apps = h.kubeConfig.makeApiClient(AppsV1Api);
    core = h.kubeConfig.makeApiClient(CoreV1Api);
    policy = h.kubeConfig.makeApiClient(PolicyV1Api);
    autoscaling = h.kubeConfig.makeApiClient(AutoscalingV2Api);
  });
  afterEach(async () => {
    h?.faults?.clear();
    // Undo in reverse, and run every undo even when one fails, so one test's leftovers never reach the next.
    const failures: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw failures[0];
  });
  after(async () => {
    for (const name of namespaces.splice(0)) await core?.deleteNamespace({ name }).catch(ignoreNotFound);
  });

  /** A fresh namespace for one test, so tests never see each other's objects. */
  async function namespace(slug: string): Promise<string> {
    const name = `cd-${RUN}-${slug}`;
    await core.createNamespace({ body: { metadata: { name } } }).catch((error: unknown) => {
      if (!(error instanceof ApiException && error.code === 409)) throw error;
    });
    namespaces.push(name);
    return name;
  }

  function desired(ns: string, name: string, changes: Partial<Omit<DesiredWorkload, 'spec'>> & { spec?: Partial<WorkloadSpec> } = {}): DesiredWorkload {
    const { spec, ...rest } = changes;
    return {
      deploymentId: randomUUID(),
      revision: 1,
      replicas: 2,
      strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
      ...rest,
      spec: {
        name,
        namespace: ns,
        type: 'inference',
        image: 'registry.example/acme/server:1.0',
        env: { MODEL: 'small', LOG_LEVEL: 'info' },
        resources: { cpu: '100m', memory: '128Mi' },
        labels: { team: 'contract' },
        ...spec,
      },
    };
  }

  /** Applies and registers the object for deletion after the test. */
  async function applied(workload: DesiredWorkload): Promise<LiveWorkload> {
    const live = await h.driver.apply(workload);
    const ref = h.driver.refFor(workload);
    cleanups.push(() => h.driver.delete(ref));
    return live;
  }

  async function eventually<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
    const deadline = Date.now() + h.rolloutTimeoutMs;
    let last: T | undefined;
    while (Date.now() < deadline) {
      last = await probe();
      if (done(last)) return last;
      await sleep(50);
    }
    throw new Error(`${what} did not happen within ${h.rolloutTimeoutMs} ms; last seen: ${JSON.stringify(last)}`);
  }

  function rolledOut(replicas: number) {
    return (live: LiveWorkload | undefined): boolean =>
      live !== undefined &&
      live.rollout.observedGeneration >= live.generation &&
      live.rollout.replicas === replicas &&
      live.rollout.updatedReplicas === replicas &&
      live.rollout.readyReplicas === replicas &&
      live.rollout.availableReplicas === replicas &&
      live.rollout.conditions.some((c) => c.type === 'Available' && c.status === 'True');
  }

  function available(ref: ObjectRef, replicas: number): Promise<LiveWorkload | undefined> {
    return eventually(`${ref.kind} ${ref.namespace}/${ref.name} available with ${replicas} replicas`, () => h.driver.read(ref), rolledOut(replicas));
  }

  async function podsOf(workload: DesiredWorkload): Promise<V1Pod[]> {
    const pods = await core.listNamespacedPod({
      namespace: workload.spec.namespace,
      labelSelector: `sentinel.io/deployment-id=${workload.deploymentId}`,
    });
    return pods.items.filter((pod) => !pod.metadata?.deletionTimestamp);
  }

  async function rejection(promise: Promise<unknown>): Promise<unknown> {
    try {
      await promise;
    } catch (error) {
      return error;
    }
    throw new Error('expected the driver to refuse');
  }

  describe('apply and read', () => {
    it('given a new inference workload, when applied, then it reads back as written and becomes Available', async () => {
      const ns = await namespace('apply');
      const workload = desired(ns, 'server');
      const live = await applied(workload);
      expect(live.ref).to.deep.equal({ kind: 'Deployment', namespace: ns, name: 'server' });
      expect(live).to.deep.include({ deploymentId: workload.deploymentId, revision: 1, replicas: 2 });
      expect(live.template).to.deep.equal(desiredTemplate(workload));
      expect(live.resourceVersion).to.be.a('string').and.not.equal('');

      const ready = await available(live.ref, 2);
      expect(ready!.template).to.deep.equal(desiredTemplate(workload));
    });

    it('given an applied workload, when applied again unchanged, then the resourceVersion does not move', async () => {
      const ns = await namespace('idempotent');
      const workload = desired(ns, 'server', { replicas: 1 });
      await applied(workload);
      const settled = await available(h.driver.refFor(workload), 1);
      const again = await h.driver.apply(workload);
      expect(again.resourceVersion).to.equal(settled!.resourceVersion);
      expect(again.generation).to.equal(settled!.generation);
    });

    it('given revision 1 running, when revision 2 with a new image is applied, then it rolls to it', async () => {
      const ns = await namespace('revision');
      const first = desired(ns, 'server');
      await applied(first);
      await available(h.driver.refFor(first), 2);

      const second: DesiredWorkload = { ...first, revision: 2, spec: { ...first.spec, image: 'registry.example/acme/server:2.0' } };
      const live = await h.driver.apply(second);
      expect(live.revision).to.equal(2);
      expect(live.template.image).to.equal('registry.example/acme/server:2.0');
      const raw = await apps.readNamespacedDeployment({ name: 'server', namespace: ns });
      expect(raw.metadata?.annotations?.['sentinel.io/revision']).to.equal('2');

      await available(live.ref, 2);
      await eventually('every pod on the new image', () => podsOf(second), (pods) =>
        pods.length === 2 && pods.every((pod) => pod.spec?.containers.find((c) => c.name === 'main')?.image === second.spec.image),
      );
    });

    it('given a missing object, when read, then undefined', async () => {
      const ns = await namespace('missing');
      expect(await h.driver.read({ kind: 'Deployment', namespace: ns, name: 'nothing-here' })).to.equal(undefined);
      expect(await h.driver.read({ kind: 'Job', namespace: ns, name: 'nothing-here' })).to.equal(undefined);
    });
  });

  describe('kinds', () => {
    it('given a training workload, then a Job that reads back without replicas', async () => {
      const ns = await namespace('job');
      const workload = desired(ns, 'trainer', { replicas: 2, spec: { type: 'training' } });
      const live = await applied(workload);
      expect(live.ref.kind).to.equal('Job');
      expect(live).not.to.have.property('replicas');
      expect(live.template).to.deep.equal(desiredTemplate(workload));
      const read = await h.driver.read(live.ref);
      expect(read).to.deep.include({ deploymentId: workload.deploymentId, revision: 1 });
      // A Job's pod template is immutable, so it cannot be restarted by stamping it.
      expect(await rejection(h.driver.restart(live.ref, new Date().toISOString()))).to.be.instanceOf(ClusterError).and.include({ transient: false });
    });

    it('given the StatefulSet kind label, then a StatefulSet with the replicas asked for', async () => {
      const ns = await namespace('sts');
      const workload = desired(ns, 'store', { spec: { labels: { [KIND_LABEL]: 'StatefulSet' } } });
      const live = await applied(workload);
      expect(live.ref.kind).to.equal('StatefulSet');
      expect(live.replicas).to.equal(2);
      expect((await h.driver.read(live.ref))?.template).to.deep.equal(desiredTemplate(workload));
    });

    it('given a GPU workload, then the nvidia.com/gpu limit, the SKU node selector, and pods on nodes of that SKU', async function () {
      if (!h.gpuSku) return this.skip();
      const ns = await namespace('gpu');
      const workload = desired(ns, 'llm', {
        replicas: 1,
        spec: { resources: { cpu: '1', memory: '1Gi', gpu: { count: 2, sku: h.gpuSku } } },
      });
      const live = await applied(workload);
      expect(live.template).to.deep.include({ gpus: 2, nodeSelector: { [GPU_SKU_NODE_LABEL]: h.gpuSku } });
      const raw = await apps.readNamespacedDeployment({ name: 'llm', namespace: ns });
      expect(raw.spec?.template.spec?.containers[0]?.resources?.limits).to.deep.include({ 'nvidia.com/gpu': '2' });

      await available(live.ref, 1);
      const [pod] = await podsOf(workload);
      const node = await core.readNode({ name: pod!.spec!.nodeName! });
      expect(node.metadata?.labels?.[GPU_SKU_NODE_LABEL]).to.equal(h.gpuSku);
    });
  });

  describe('scale', () => {
    it('given a Deployment, when scaled, then the replicas change through the scale subresource', async () => {
      const ns = await namespace('scale');
      const workload = desired(ns, 'server', { replicas: 1 });
      const live = await applied(workload);
      expect(await h.driver.scale(live.ref, 3)).to.deep.equal({ scaled: true });
      expect((await h.driver.read(live.ref))?.replicas).to.equal(3);
      await available(live.ref, 3);
    });

    it('given an HPA targeting the Deployment, then scale and apply leave its replicas alone', async () => {
      const ns = await namespace('hpa');
      const workload = desired(ns, 'server', { replicas: 2 });
      const live = await applied(workload);
      await autoscaling.createNamespacedHorizontalPodAutoscaler({
        namespace: ns,
        body: {
          metadata: { name: 'server-hpa' },
          spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'server' }, minReplicas: 2, maxReplicas: 2 },
        },
      });

      const result = await h.driver.scale(live.ref, 5);
      expect(result).to.deep.equal({ scaled: false, detail: 'replicas are owned by HorizontalPodAutoscaler server-hpa' });
      expect((await h.driver.read(live.ref))?.replicas).to.equal(2);

      const reapplied = await h.driver.apply({ ...workload, replicas: 4 });
      expect(reapplied.replicas).to.equal(2);
      expect((await apps.readNamespacedDeployment({ name: 'server', namespace: ns })).spec?.replicas).to.equal(2);
    });
  });

  describe('restart', () => {
    it('given a running Deployment, when restarted, then the template is stamped and every pod is replaced', async () => {
      const ns = await namespace('restart');
      const workload = desired(ns, 'server', { replicas: 2 });
      const live = await applied(workload);
      await available(live.ref, 2);
      const before = new Set((await podsOf(workload)).map((pod) => pod.metadata!.name));

      const at = new Date().toISOString();
      await h.driver.restart(live.ref, at);
      const raw = await apps.readNamespacedDeployment({ name: 'server', namespace: ns });
      expect(raw.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION]).to.equal(at);

      await available(live.ref, 2);
      await eventually('every pod replaced', () => podsOf(workload), (pods) =>
        pods.length === 2 && pods.every((pod) => !before.has(pod.metadata!.name)),
      );
    });
  });

  describe('delete', () => {
    it('given an object, when deleted, then it is gone, and deleting it again succeeds', async () => {
      const ns = await namespace('delete');
      const live = await h.driver.apply(desired(ns, 'server', { replicas: 1 }));
      await h.driver.delete(live.ref);
      await eventually('the Deployment gone', () => h.driver.read(live.ref), (read) => read === undefined);
      await h.driver.delete(live.ref);
    });
  });

  describe('errors', () => {
    it('given two 500s from the API server, then the apply still succeeds', async function () {
      if (!h.faults) return this.skip();
      const ns = await namespace('retry');
      const workload = desired(ns, 'server', { replicas: 1 });
      h.faults.failNext(2, 500, { path: /\/deployments\/server$/ });
      const live = await applied(workload);
      expect(live.deploymentId).to.equal(workload.deploymentId);
    });

    it('given an invalid object name, then a ClusterError that is not transient and names the object', async () => {
      const ns = await namespace('invalid');
      const error = await rejection(h.driver.apply(desired(ns, 'Not_A_Valid_Name')));
      expect(error).to.be.instanceOf(ClusterError);
      expect(error).to.include({ status: 422, transient: false });
      expect((error as Error).message).to.contain(`Deployment ${ns}/Not_A_Valid_Name`);
    });
  });

  describe('nodes', () => {
    /** A one-replica Deployment, rolled out, and the node its pod runs on. */
    async function onePodOnANode(ns: string): Promise<{ workload: DesiredWorkload; pod: string; node: string }> {
      const workload = desired(ns, 'server', { replicas: 1 });
      const live = await applied(workload);
      await available(live.ref, 1);
      const [pod] = await podsOf(workload);
      const node = pod!.spec!.nodeName!;
      cleanups.push(() => h.driver.uncordon(node));
      return { workload, pod: `${ns}/${pod!.metadata!.name}`, node };
    }

    async function budget(ns: string, workload: DesiredWorkload, limit: { minAvailable: number } | { maxUnavailable: number }) {
      await policy.createNamespacedPodDisruptionBudget({
        namespace: ns,
        body: {
          metadata: { name: 'server-pdb' },
          spec: { selector: { matchLabels: { 'sentinel.io/deployment-id': workload.deploymentId } }, ...limit },
        },
      });
      // The disruption controller must have counted the healthy pods before an eviction can be allowed.
      await eventually('the budget counted', () => policy.readNamespacedPodDisruptionBudget({ name: 'server-pdb', namespace: ns }), (pdb) =>
        (pdb.status?.currentHealthy ?? 0) >= 1,
      );
    }

    it('cordons and uncordons a node, idempotently', async () => {
      const { items } = await core.listNode();
      const node = items[0]!.metadata!.name!;
      cleanups.push(() => h.driver.uncordon(node));
      await h.driver.cordon(node);
      await h.driver.cordon(node);
      expect((await core.readNode({ name: node })).spec?.unschedulable).to.equal(true);
      await h.driver.uncordon(node);
      await h.driver.uncordon(node);
      expect((await core.readNode({ name: node })).spec?.unschedulable ?? false).to.equal(false);
    });

    it('given a PDB that allows no disruption, when the node is drained, then the pod is reported stuck with the reason', async () => {
      const ns = await namespace('drain-stuck');
      const { workload, pod, node } = await onePodOnANode(ns);
      await budget(ns, workload, { minAvailable: 1 });

      const report = await h.driver.drain(node, { evictionTimeoutMs: 600 });
      expect(report.node).to.equal(node);
      expect(report.evicted).not.to.include(pod);
      const stuck = report.stuck.find((entry) => entry.pod === pod);
      expect(stuck, `${pod} in ${JSON.stringify(report.stuck)}`).not.to.equal(undefined);
      expect(stuck!.reason).to.match(/disruption budget/i);
      expect((await core.readNode({ name: node })).spec?.unschedulable).to.equal(true);
    });

    it('given a PDB that allows one disruption, when the node is drained, then the pod is evicted', async () => {
      const ns = await namespace('drain-evict');
      const { workload, pod, node } = await onePodOnANode(ns);
      await budget(ns, workload, { maxUnavailable: 1 });

      const report = await h.driver.drain(node, { evictionTimeoutMs: 5000 });
      expect(report.evicted).to.include(pod);
      expect(report.stuck.map((entry) => entry.pod)).not.to.include(pod);
      const name = pod.split('/')[1]!;
      await eventually('the evicted pod gone from the node', () => podsOf(workload), (pods) =>
        pods.every((p) => p.metadata!.name !== name),
      );
    });
  });

  describe('watch', () => {
    it('sees managed objects added, changed out of band, and deleted, and keeps going after watches drop', async function () {
      const ns = await namespace('watch');
      const changes: ManagedChange[] = [];
      const watch = await h.driver.watch((change) => changes.push(change));
      cleanups.push(() => watch.stop());
      const mine = (type: ManagedChange['type'], test: (live: LiveWorkload) => boolean = () => true) => () =>
        Promise.resolve(changes.some((c) => c.type === type && c.workload.ref.namespace === ns && test(c.workload)));

      const workload = desired(ns, 'server', { replicas: 1 });
      const live = await applied(workload);
      await eventually('ADDED', mine('ADDED', (w) => w.deploymentId === workload.deploymentId), Boolean);

      // Another client scales the Deployment under its own field manager.
      const scaleTo = (replicas: number) =>
        apps.patchNamespacedDeploymentScale(
          { name: live.ref.name, namespace: ns, body: { spec: { replicas } }, fieldManager: OTHER_MANAGER },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      await scaleTo(3);
      await eventually('MODIFIED to 3 replicas', mine('MODIFIED', (w) => w.replicas === 3), Boolean);

      if (h.faults) {
        h.faults.dropWatches();
        await scaleTo(2);
        await eventually('MODIFIED to 2 replicas after the watches dropped', mine('MODIFIED', (w) => w.replicas === 2), Boolean);
      }

      await h.driver.delete(live.ref);
      await eventually('DELETED', mine('DELETED'), Boolean);
      await watch.stop();
      const seen = changes.length;
      await scaleTo(1).catch(ignoreNotFound);
      await sleep(100);
      expect(changes.length, 'no change delivered after stop').to.equal(seen);
    });
  });
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof ApiException && error.code === 404)) throw error;
}
