// The cluster simulator driven through the real @kubernetes/client-node, as Sentinel's driver drives a cluster.
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubernetesObject,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { clients, FAST, type Clients } from '../support/simulator-clients.js';

const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

/** Reads until `done` holds, for at most `timeoutMs`; the last value read is in the failure. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (done(last)) return last;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
}

interface Status {
  kind: string;
  apiVersion: string;
  status: string;
  reason: string;
  code: number;
  message: string;
  details?: { causes?: { reason?: string; message?: string; field?: string }[] };
}

/** The ApiException a call fails with, and the Status body the server sent. */
async function failure(call: Promise<unknown>): Promise<{ code: number; status: Status }> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body = error.body as unknown;
    return { code: error.code, status: (typeof body === 'string' ? JSON.parse(body) : body) as Status };
  }
  throw new Error('expected the call to fail');
}

function deployment(name: string, namespace: string, options: { replicas?: number; image?: string; gpus?: number; sku?: string; progressDeadlineSeconds?: number } = {}): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      replicas: options.replicas ?? 2,
      selector: { matchLabels: { app: name } },
      ...(options.progressDeadlineSeconds !== undefined ? { progressDeadlineSeconds: options.progressDeadlineSeconds } : {}),
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'main',
              image: options.image ?? 'registry.local/serve:1.0',
              env: [{ name: 'MODE', value: 'serve' }],
              resources: {
                requests: { cpu: '500m', memory: '1Gi' },
                limits: { cpu: '500m', memory: '1Gi', ...(options.gpus ? { 'nvidia.com/gpu': String(options.gpus) } : {}) },
              },
            },
          ],
          ...(options.sku ? { nodeSelector: { 'nvidia.com/gpu.product': options.sku } } : {}),
        },
      },
    },
  };
}

async function applyDeployment(c: Clients, body: V1Deployment): Promise<V1Deployment> {
  const { name, namespace } = body.metadata as { name: string; namespace: string };
  return c.apps.patchNamespacedDeployment({ name, namespace, body, fieldManager: 'sentinel', force: true }, apply);
}

async function readyDeployment(c: Clients, name: string, namespace: string, replicas: number): Promise<V1Deployment> {
  return eventually(
    () => c.apps.readNamespacedDeployment({ name, namespace }),
    (d) =>
      d.status?.availableReplicas === replicas &&
      d.status.updatedReplicas === replicas &&
      d.status.replicas === replicas &&
      d.status.conditions?.some((x) => x.type === 'Progressing' && x.reason === 'NewReplicaSetAvailable') === true,
    `deployment ${namespace}/${name} to have ${replicas} available replicas`,
  );
}

async function podsOf(c: Clients, namespace: string, labelSelector: string): Promise<V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace, labelSelector })).items;
}

const isReady = (p: V1Pod) => p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') === true;

describe('cluster simulator through @kubernetes/client-node', function () {
  this.timeout(30_000);
  let sim: ClusterSimulator;
  let c: Clients;

  before(async () => {
    sim = await startClusterSimulator(FAST);
    c = clients(sim);
  });
  after(async () => sim?.close());
  afterEach(() => sim.faults.clear());

  describe('serving', () => {
    it('serves TLS for 127.0.0.1 with the CA in its kubeconfig, and refuses requests without the token (401 Status)', async () => {
      expect(sim.url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(sim.caPem).to.contain('BEGIN CERTIFICATE');
      const namespaces = await c.core.listNamespace();
      expect(namespaces.items.map((n) => n.metadata?.name)).to.include('default');

      const wrong = new KubeConfig();
      wrong.loadFromString(sim.kubeconfig().replace(sim.token, 'not-the-token'));
      const refused = await failure(wrong.makeApiClient(CoreV1Api).listNode());
      expect(refused.code).to.equal(401);

      const raw = await new Promise<{ status: number; body: Status }>((resolve, reject) => {
        const req = httpsRequest(`${sim.url}/api/v1/nodes`, { ca: sim.caPem }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Status }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      expect(raw.status).to.equal(401);
      expect(raw.body).to.include({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 });
    });

    it('serves discovery, so KubernetesObjectApi can create, read and list any kind', async () => {
      const objects = KubernetesObjectApi.makeApiClient(c.kc);
      const spec: KubernetesObject = deployment('generic', 'discovery', { replicas: 1 }) as KubernetesObject;
      await objects.create(spec);
      const read = await objects.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'generic', namespace: 'discovery' } });
      expect(read.metadata?.uid).to.be.a('string');
      const list = await objects.list('apps/v1', 'Deployment', 'discovery');
      expect(list.items.map((i) => i.metadata?.name)).to.deep.equal(['generic']);
      const pdbs = await objects.list('policy/v1', 'PodDisruptionBudget', 'discovery');
      expect(pdbs.items).to.deep.equal([]);
    });

    it('lists the default nodes, GPU nodes labelled with their SKU and advertising nvidia.com/gpu', async () => {
      const nodes = await c.core.listNode();
      const byName = new Map(nodes.items.map((n) => [n.metadata!.name!, n]));
      expect([...byName.keys()]).to.deep.equal(['sim-cpu-1', 'sim-cpu-2', 'sim-gpu-1', 'sim-gpu-2']);
      expect(byName.get('sim-gpu-1')!.metadata!.labels!['nvidia.com/gpu.product']).to.equal('nvidia-a100-80gb');
      expect(byName.get('sim-gpu-1')!.status!.allocatable!['nvidia.com/gpu']).to.equal('8');
      expect(byName.get('sim-cpu-1')!.status!.allocatable!['nvidia.com/gpu']).to.equal(undefined);
    });
  });

  describe('objects', () => {
    it('creates a Deployment by server-side apply, brings its pods up and reports it Available', async () => {
      const applied = await applyDeployment(c, deployment('web', 'rollout', { replicas: 3 }));
      expect(applied.metadata?.generation).to.equal(1);
      expect(applied.metadata?.uid).to.be.a('string');
      expect(applied.metadata?.creationTimestamp).to.be.instanceOf(Date);
      expect(Number(applied.metadata?.resourceVersion)).to.be.greaterThan(0);

      const done = await readyDeployment(c, 'web', 'rollout', 3);
      expect(done.status?.observedGeneration).to.equal(1);
      expect(done.status?.readyReplicas).to.equal(3);
      const available = done.status?.conditions?.find((x) => x.type === 'Available');
      expect(available).to.include({ status: 'True', reason: 'MinimumReplicasAvailable' });

      const pods = await podsOf(c, 'rollout', 'app=web');
      expect(pods).to.have.length(3);
      for (const pod of pods) {
        expect(pod.metadata?.labels?.['pod-template-hash']).to.be.a('string');
        expect(pod.metadata?.ownerReferences?.[0]).to.include({ kind: 'Deployment', name: 'web', uid: applied.metadata?.uid, controller: true });
        expect(pod.spec?.nodeName).to.match(/^sim-cpu-/);
        expect(pod.status?.phase).to.equal('Running');
        expect(isReady(pod)).to.equal(true);
      }
    });

    it('does not change resourceVersion or generation when the identical object is applied again', async () => {
      await applyDeployment(c, deployment('steady', 'noop', { replicas: 1 }));
      const settled = await readyDeployment(c, 'steady', 'noop', 1);
      const again = await applyDeployment(c, deployment('steady', 'noop', { replicas: 1 }));
      expect(again.metadata?.resourceVersion).to.equal(settled.metadata?.resourceVersion);
      expect(again.metadata?.generation).to.equal(settled.metadata?.generation);

      const changed = await applyDeployment(c, deployment('steady', 'noop', { replicas: 1, image: 'registry.local/serve:2.0' }));
      expect(Number(changed.metadata?.resourceVersion)).to.be.greaterThan(Number(settled.metadata?.resourceVersion));
      expect(changed.metadata?.generation).to.equal(2);
    });

    it('answers a replace carrying a stale resourceVersion with 409 Conflict, and accepts the current one', async () => {
      const created = await c.apps.createNamespacedDeployment({ namespace: 'conflict', body: deployment('api', 'conflict', { replicas: 1 }) });
      const stale = created.metadata!.resourceVersion!;
      await c.apps.patchNamespacedDeployment({ name: 'api', namespace: 'conflict', body: { metadata: { labels: { touched: 'yes' } } } }, merge);

      const body = { ...created, metadata: { ...created.metadata, resourceVersion: stale } };
      const refused = await failure(c.apps.replaceNamespacedDeployment({ name: 'api', namespace: 'conflict', body }));
      expect(refused.code).to.equal(409);
      expect(refused.status).to.include({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Conflict', code: 409 });
      expect(refused.status.message).to.contain('the object has been modified');

      const current = await c.apps.readNamespacedDeployment({ name: 'api', namespace: 'conflict' });
      current.spec!.replicas = 2;
      const replaced = await c.apps.replaceNamespacedDeployment({ name: 'api', namespace: 'conflict', body: current });
      expect(replaced.spec?.replicas).to.equal(2);
      expect(replaced.metadata?.generation).to.equal(2);
    });

    it('answers create of an existing name with 409 AlreadyExists, a missing one with 404, and an invalid one with 422', async () => {
      await c.apps.createNamespacedDeployment({ namespace: 'errors', body: deployment('one', 'errors', { replicas: 1 }) });
      const exists = await failure(c.apps.createNamespacedDeployment({ namespace: 'errors', body: deployment('one', 'errors', { replicas: 1 }) }));
      expect(exists.code).to.equal(409);
      expect(exists.status.reason).to.equal('AlreadyExists');

      const missing = await failure(c.apps.readNamespacedDeployment({ name: 'nope', namespace: 'errors' }));
      expect(missing.code).to.equal(404);
      expect(missing.status).to.include({ reason: 'NotFound', message: 'deployments.apps "nope" not found' });

      const noContainers = deployment('empty', 'errors');
      noContainers.spec!.template.spec!.containers = [];
      const invalid = await failure(c.apps.createNamespacedDeployment({ namespace: 'errors', body: noContainers }));
      expect(invalid.code).to.equal(422);
      expect(invalid.status.reason).to.equal('Invalid');
      expect(invalid.status.details?.causes?.map((x) => x.field)).to.include('spec.template.spec.containers');

      const noName = deployment('', 'errors');
      const unnamed = await failure(c.apps.createNamespacedDeployment({ namespace: 'errors', body: noName }));
      expect(unnamed.code).to.equal(422);
      expect(unnamed.status.message).to.contain('metadata.name');
    });

    it('patches by merge, strategic merge (containers merged by name) and JSON patch', async () => {
      await c.apps.createNamespacedDeployment({ namespace: 'patching', body: deployment('p', 'patching', { replicas: 1 }) });

      const strategicPatch = { spec: { template: { spec: { containers: [{ name: 'main', env: [{ name: 'EXTRA', value: '1' }] }] } } } };
      const afterStrategic = await c.apps.patchNamespacedDeployment({ name: 'p', namespace: 'patching', body: strategicPatch }, strategic);
      const container = afterStrategic.spec!.template.spec!.containers[0]!;
      expect(container.image).to.equal('registry.local/serve:1.0');
      expect(container.env?.map((e) => e.name)).to.deep.equal(['MODE', 'EXTRA']);

      const mergePatch = { metadata: { labels: { tier: 'gold' } }, spec: { template: { spec: { containers: [{ name: 'main', image: 'registry.local/serve:3.0' }] } } } };
      const afterMerge = await c.apps.patchNamespacedDeployment({ name: 'p', namespace: 'patching', body: mergePatch }, merge);
      expect(afterMerge.metadata?.labels).to.include({ app: 'p', tier: 'gold' });
      // A merge patch replaces lists whole: the env went with the old container entry.
      expect(afterMerge.spec!.template.spec!.containers[0]!.env).to.equal(undefined);
      expect(afterMerge.spec!.template.spec!.containers[0]!.image).to.equal('registry.local/serve:3.0');

      const ops = [
        { op: 'replace', path: '/spec/replicas', value: 4 },
        { op: 'add', path: '/metadata/annotations', value: { note: 'json' } },
      ];
      const afterJson = await c.apps.patchNamespacedDeployment({ name: 'p', namespace: 'patching', body: ops }, jsonPatch);
      expect(afterJson.spec?.replicas).to.equal(4);
      expect(afterJson.metadata?.annotations).to.include({ note: 'json' });

      const failedTest = await failure(
        c.apps.patchNamespacedDeployment({ name: 'p', namespace: 'patching', body: [{ op: 'test', path: '/spec/replicas', value: 1 }] }, jsonPatch),
      );
      expect(failedTest.code).to.equal(422);

      const stale = await failure(
        c.apps.patchNamespacedDeployment({ name: 'p', namespace: 'patching', body: { metadata: { resourceVersion: '1' }, spec: { replicas: 2 } } }, merge),
      );
      expect(stale.code).to.equal(409);
    });

    it('reads and writes replicas through the scale subresource', async () => {
      await applyDeployment(c, deployment('scaled', 'scaling', { replicas: 1 }));
      await readyDeployment(c, 'scaled', 'scaling', 1);
      const scale = await c.apps.readNamespacedDeploymentScale({ name: 'scaled', namespace: 'scaling' });
      expect(scale.kind).to.equal('Scale');
      expect(scale.apiVersion).to.equal('autoscaling/v1');
      expect(scale.spec?.replicas).to.equal(1);
      expect(scale.status?.selector).to.equal('app=scaled');

      const written = await c.apps.replaceNamespacedDeploymentScale({
        name: 'scaled',
        namespace: 'scaling',
        body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'scaled', namespace: 'scaling' }, spec: { replicas: 3 } },
      });
      expect(written.spec?.replicas).to.equal(3);
      const after = await c.apps.readNamespacedDeployment({ name: 'scaled', namespace: 'scaling' });
      expect(after.spec?.replicas).to.equal(3);
      expect(after.metadata?.generation).to.equal(2);
      await readyDeployment(c, 'scaled', 'scaling', 3);

      await c.apps.patchNamespacedDeploymentScale({ name: 'scaled', namespace: 'scaling', body: { spec: { replicas: 2 } } }, merge);
      await readyDeployment(c, 'scaled', 'scaling', 2);
      expect(await podsOf(c, 'scaling', 'app=scaled')).to.have.length(2);

      const stale = await failure(
        c.apps.replaceNamespacedDeploymentScale({
          name: 'scaled',
          namespace: 'scaling',
          body: { metadata: { name: 'scaled', namespace: 'scaling', resourceVersion: scale.metadata!.resourceVersion! }, spec: { replicas: 5 } },
        }),
      );
      expect(stale.code).to.equal(409);
    });

    it('refuses, without force, an apply that changes a field another manager set', async () => {
      await applyDeployment(c, deployment('owned', 'ownership', { replicas: 1 }));
      await c.apps.patchNamespacedDeploymentScale({ name: 'owned', namespace: 'ownership', body: { spec: { replicas: 3 } }, fieldManager: 'hpa' }, merge);
      const body = deployment('owned', 'ownership', { replicas: 1 });
      const refused = await failure(c.apps.patchNamespacedDeployment({ name: 'owned', namespace: 'ownership', body, fieldManager: 'sentinel' }, apply));
      expect(refused.code).to.equal(409);
      expect(refused.status.message).to.contain('conflict with "hpa"').and.contain('.spec.replicas');

      // Leaving replicas out of the applied object leaves them to their new owner.
      delete body.spec!.replicas;
      const without = await c.apps.patchNamespacedDeployment({ name: 'owned', namespace: 'ownership', body, fieldManager: 'sentinel' }, apply);
      expect(without.spec?.replicas).to.equal(3);

      const forced = await applyDeployment(c, deployment('owned', 'ownership', { replicas: 2 }));
      expect(forced.spec?.replicas).to.equal(2);
    });

    it('deletes a Deployment and, in the background, its pods; a second delete is 404', async () => {
      await applyDeployment(c, deployment('doomed', 'deleting', { replicas: 2 }));
      await readyDeployment(c, 'doomed', 'deleting', 2);
      const status = await c.apps.deleteNamespacedDeployment({ name: 'doomed', namespace: 'deleting', propagationPolicy: 'Background' });
      expect(status.status).to.equal('Success');
      await eventually(() => podsOf(c, 'deleting', 'app=doomed'), (pods) => pods.length === 0, 'the pods to go');
      const again = await failure(c.apps.deleteNamespacedDeployment({ name: 'doomed', namespace: 'deleting' }));
      expect(again.code).to.equal(404);

      await applyDeployment(c, deployment('kept', 'deleting', { replicas: 1 }));
      await readyDeployment(c, 'kept', 'deleting', 1);
      await c.apps.deleteNamespacedDeployment({ name: 'kept', namespace: 'deleting', propagationPolicy: 'Orphan' });
      await sleep(100);
      const orphans = await podsOf(c, 'deleting', 'app=kept');
      expect(orphans).to.have.length(1);
      expect(orphans[0]!.metadata?.ownerReferences ?? []).to.deep.equal([]);
    });

    it('keeps PodDisruptionBudgets and HorizontalPodAutoscalers', async () => {
      const pdb = await c.policy.createNamespacedPodDisruptionBudget({
        namespace: 'extras',
        body: { metadata: { name: 'web-pdb' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } },
      });
      expect(pdb.metadata?.generation).to.equal(1);
      const patched = await c.policy.patchNamespacedPodDisruptionBudget({ name: 'web-pdb', namespace: 'extras', body: { spec: { minAvailable: 2 } } }, merge);
      expect(patched.spec?.minAvailable).to.equal(2);
      expect((await c.policy.listNamespacedPodDisruptionBudget({ namespace: 'extras' })).items).to.have.length(1);

      await c.autoscaling.createNamespacedHorizontalPodAutoscaler({
        namespace: 'extras',
        body: {
          metadata: { name: 'web-hpa' },
          spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, minReplicas: 1, maxReplicas: 5 },
        },
      });
      const hpas = await c.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: 'extras' });
      expect(hpas.items[0]?.spec?.scaleTargetRef).to.include({ kind: 'Deployment', name: 'web' });
      await c.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name: 'web-hpa', namespace: 'extras' });
      await c.policy.deleteNamespacedPodDisruptionBudget({ name: 'web-pdb', namespace: 'extras' });
      expect((await c.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: 'extras' })).items).to.deep.equal([]);
    });
  });

  describe('list and watch', () => {
    it('lists with label and field selectors, across namespaces too', async () => {
      await applyDeployment(c, deployment('alpha', 'listing-a', { replicas: 1 }));
      await applyDeployment(c, deployment('beta', 'listing-b', { replicas: 1 }));
      await readyDeployment(c, 'alpha', 'listing-a', 1);
      await readyDeployment(c, 'beta', 'listing-b', 1);

      const all = await c.apps.listDeploymentForAllNamespaces({ labelSelector: 'app in (alpha,beta)' });
      expect(all.kind).to.equal('DeploymentList');
      expect(Number(all.metadata?.resourceVersion)).to.be.greaterThan(0);
      expect(all.items.map((d) => `${d.metadata?.namespace}/${d.metadata?.name}`)).to.deep.equal(['listing-a/alpha', 'listing-b/beta']);
      expect((await c.apps.listDeploymentForAllNamespaces({ labelSelector: 'app,app!=alpha,!missing' })).items.map((d) => d.metadata?.name)).to.include('beta').and.not.include('alpha');

      const pod = (await podsOf(c, 'listing-a', 'app=alpha'))[0]!;
      const onNode = await c.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${pod.spec!.nodeName}` });
      expect(onNode.items.every((p) => p.spec?.nodeName === pod.spec?.nodeName)).to.equal(true);
      expect(onNode.items.map((p) => p.metadata?.name)).to.include(pod.metadata?.name);
    });

    it('watches from a resourceVersion: exactly the changes after it, then live ones, with bookmarks', async () => {
      const list = await c.core.listNamespacedPod({ namespace: 'watching' });
      const from = list.metadata!.resourceVersion!;
      await applyDeployment(c, deployment('watched', 'watching', { replicas: 2 }));
      await readyDeployment(c, 'watched', 'watching', 2);

      const events: { type: string; name?: string; rv?: string; ready: boolean }[] = [];
      const watch = new Watch(c.kc);
      let ended: unknown = 'open';
      const controller = await watch.watch(
        '/api/v1/namespaces/watching/pods',
        { resourceVersion: from, allowWatchBookmarks: true },
        (type: string, object: V1Pod) => events.push({ type, name: object.metadata?.name, rv: object.metadata?.resourceVersion, ready: isReady(object) }),
        (error: unknown) => (ended = error),
      );
      try {
        const readyPods = await eventually(
          async () => new Set(events.filter((e) => e.type !== 'BOOKMARK' && e.ready).map((e) => e.name)),
          (names) => names.size === 2,
          'the watch to replay both pods becoming ready',
        );
        expect(readyPods.size).to.equal(2);
        expect(events[0]!.type).to.equal('ADDED');
        const revisions = events.filter((e) => e.type !== 'BOOKMARK').map((e) => Number(e.rv));
        expect(revisions).to.deep.equal([...revisions].sort((a, b) => a - b));
        expect(revisions[0]).to.be.greaterThan(Number(from));

        await c.apps.patchNamespacedDeploymentScale({ name: 'watched', namespace: 'watching', body: { spec: { replicas: 1 } } }, merge);
        await eventually(async () => events.filter((e) => e.type === 'DELETED').length, (n) => n === 1, 'a live DELETED event');
        await eventually(async () => events.filter((e) => e.type === 'BOOKMARK').length, (n) => n >= 1, 'a bookmark');
        const bookmark = events.find((e) => e.type === 'BOOKMARK')!;
        expect(Number(bookmark.rv)).to.be.greaterThan(0);
        expect(bookmark.name).to.equal(undefined);
        expect(ended).to.equal('open');
      } finally {
        controller.abort();
      }
    });

    it('sends synthetic ADDED events for current objects when a watch names no resourceVersion', async () => {
      await applyDeployment(c, deployment('present', 'watch-initial', { replicas: 1 }));
      const seen: string[] = [];
      const controller = await new Watch(c.kc).watch(
        '/apis/apps/v1/deployments',
        { labelSelector: 'app=present' },
        (type: string, object: V1Deployment) => seen.push(`${type} ${object.metadata?.namespace}/${object.metadata?.name}`),
        () => {},
      );
      try {
        await eventually(async () => seen, (s) => s.length > 0, 'the initial event');
        expect(seen[0]).to.equal('ADDED watch-initial/present');
      } finally {
        controller.abort();
      }
    });

    it('tells a selective watch that an object left its selection with DELETED, and refuses a malformed selector (400)', async () => {
      const ns = 'watch-selector';
      await c.policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: { metadata: { name: 'tagged', labels: { tier: 'gold' } }, spec: { maxUnavailable: 1 } } });
      const seen: string[] = [];
      const controller = await new Watch(c.kc).watch(
        `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`,
        { labelSelector: 'tier=gold' },
        (type: string, object: KubernetesObject) => seen.push(`${type} ${object.metadata?.labels?.tier ?? '-'}`),
        () => {},
      );
      try {
        await eventually(async () => seen, (s) => s.length === 1, 'the initial event');
        await c.policy.patchNamespacedPodDisruptionBudget({ name: 'tagged', namespace: ns, body: { metadata: { labels: { tier: 'silver' } } } }, merge);
        await eventually(async () => seen, (s) => s.includes('DELETED gold'), 'a DELETED event');
        expect(seen[0]).to.equal('ADDED gold');
      } finally {
        controller.abort();
      }
      const malformed = await failure(c.policy.listNamespacedPodDisruptionBudget({ namespace: ns, labelSelector: 'tier in gold' }));
      expect(malformed.code).to.equal(400);
    });

    it('pages a list with limit and continue', async () => {
      const ns = 'paging';
      for (const name of ['a', 'b', 'c']) {
        await c.policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: { metadata: { name }, spec: { maxUnavailable: 1 } } });
      }
      const first = await c.policy.listNamespacedPodDisruptionBudget({ namespace: ns, limit: 2 });
      expect(first.items.map((i) => i.metadata?.name)).to.deep.equal(['a', 'b']);
      expect(first.metadata?._continue).to.be.a('string');
      const rest = await c.policy.listNamespacedPodDisruptionBudget({ namespace: ns, limit: 2, _continue: first.metadata!._continue! });
      expect(rest.items.map((i) => i.metadata?.name)).to.deep.equal(['c']);
      expect(rest.metadata?._continue).to.equal(undefined);
    });

    it('ends a client Watch when the watches are dropped (its done callback fires)', async () => {
      let done: unknown = 'not yet';
      const controller = await new Watch(c.kc).watch('/api/v1/nodes', {}, () => {}, (error: unknown) => (done = error ?? null));
      await sleep(50);
      sim.faults.dropWatches();
      await eventually(async () => done, (d) => d !== 'not yet', 'the done callback');
      controller.abort();
    });
  });

  describe('watch history', () => {
    let small: ClusterSimulator;
    let sc: Clients;
    before(async () => {
      small = await startClusterSimulator({ ...FAST, watchHistory: 5 });
      sc = clients(small);
    });
    after(async () => small?.close());

    it('answers a watch from a resourceVersion older than the kept history with an ERROR 410 Expired, then ends', async () => {
      const start = await sc.core.listNamespacedPod({ namespace: 'history' });
      for (let i = 0; i < 8; i++) {
        await sc.policy.createNamespacedPodDisruptionBudget({ namespace: 'history', body: { metadata: { name: `b${i}` }, spec: { maxUnavailable: 1 } } });
      }
      const events: { type: string; object: Status }[] = [];
      let done: unknown = 'open';
      await new Watch(sc.kc).watch(
        '/api/v1/namespaces/history/pods',
        { resourceVersion: start.metadata!.resourceVersion! },
        (type: string, object: Status) => events.push({ type, object }),
        (error: unknown) => (done = error ?? null),
      );
      await eventually(async () => done, (d) => d !== 'open', 'the watch to end');
      expect(events).to.have.length(1);
      expect(events[0]!.type).to.equal('ERROR');
      expect(events[0]!.object).to.include({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });

      // A recent resourceVersion still resumes: only what came after it arrives.
      const recent = Number((await sc.core.listNamespacedPod({ namespace: 'history' })).metadata!.resourceVersion!);
      const later: { type: string; name?: string; rv: number }[] = [];
      const controller = await new Watch(sc.kc).watch(
        '/apis/policy/v1/namespaces/history/poddisruptionbudgets',
        { resourceVersion: String(recent) },
        (type: string, object: KubernetesObject) => later.push({ type, name: object.metadata?.name, rv: Number(object.metadata?.resourceVersion) }),
        () => {},
      );
      try {
        await sc.policy.deleteNamespacedPodDisruptionBudget({ name: 'b0', namespace: 'history' });
        await eventually(async () => later, (l) => l.some((e) => e.type === 'DELETED'), 'the deletion');
        expect(later.filter((e) => e.type === 'DELETED').map((e) => e.name)).to.deep.equal(['b0']);
        expect(later.every((e) => e.rv > recent)).to.equal(true);
      } finally {
        controller.abort();
      }
    });
  });

  describe('disruption', () => {
    it('refuses an eviction a PodDisruptionBudget forbids (429), then allows it once more replicas are Ready', async () => {
      const ns = 'evicting';
      await applyDeployment(c, deployment('guarded', ns, { replicas: 1 }));
      await readyDeployment(c, 'guarded', ns, 1);
      await c.policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: { metadata: { name: 'guard' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'guarded' } } } } });
      const [pod] = await podsOf(c, ns, 'app=guarded');
      const evict = (name: string) =>
        c.core.createNamespacedPodEviction({ name, namespace: ns, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: ns } } });

      const refused = await failure(evict(pod!.metadata!.name!));
      expect(refused.code).to.equal(429);
      expect(refused.status).to.include({ kind: 'Status', reason: 'TooManyRequests', code: 429 });
      expect(refused.status.message).to.contain('disruption budget');

      await c.apps.patchNamespacedDeploymentScale({ name: 'guarded', namespace: ns, body: { spec: { replicas: 2 } } }, merge);
      await readyDeployment(c, 'guarded', ns, 2);
      await eventually(
        () => c.policy.readNamespacedPodDisruptionBudget({ name: 'guard', namespace: ns }),
        (p) => p.status?.disruptionsAllowed === 1,
        'the budget to allow one disruption',
      );
      await evict(pod!.metadata!.name!);
      const missing = await failure(c.core.readNamespacedPod({ name: pod!.metadata!.name!, namespace: ns }));
      expect(missing.code).to.equal(404);
      const replaced = await readyDeployment(c, 'guarded', ns, 2);
      expect(replaced.status?.readyReplicas).to.equal(2);

      const absent = await failure(evict('no-such-pod'));
      expect(absent.code).to.equal(404);
    });
  });

  describe('controllers', () => {
    it('rolls every pod when the pod template changes, keeping old pods until new ones are Ready', async () => {
      const ns = 'restart';
      await applyDeployment(c, deployment('roll', ns, { replicas: 3 }));
      await readyDeployment(c, 'roll', ns, 3);
      const before = new Set((await podsOf(c, ns, 'app=roll')).map((p) => p.metadata!.name!));

      const readyCounts: number[] = [];
      const watchDone: unknown[] = [];
      const controller = await new Watch(c.kc).watch(
        `/apis/apps/v1/namespaces/${ns}/deployments`,
        {},
        (_type: string, d: V1Deployment) => readyCounts.push(d.status?.availableReplicas ?? 0),
        (error: unknown) => watchDone.push(error),
      );
      const restarted = deployment('roll', ns, { replicas: 3 });
      restarted.spec!.template.metadata!.annotations = { 'sentinel.io/restarted-at': '2026-01-01T00:00:00Z' };
      await applyDeployment(c, restarted);
      const after = await eventually(
        async () => podsOf(c, ns, 'app=roll'),
        (pods) => pods.length === 3 && pods.every(isReady) && pods.every((p) => !before.has(p.metadata!.name!)),
        'every pod to be replaced',
      );
      controller.abort();
      expect(new Set(after.map((p) => p.metadata?.labels?.['pod-template-hash'])).size).to.equal(1);
      // maxUnavailable 0: availability never dipped below the desired count during the rollout.
      expect(Math.min(...readyCounts.slice(1))).to.be.at.least(3);
      const done = await readyDeployment(c, 'roll', ns, 3);
      expect(done.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('2');
    });

    it('holds the rollout of a paused Deployment until it is resumed', async () => {
      const ns = 'paused';
      await applyDeployment(c, deployment('held', ns, { replicas: 2 }));
      await readyDeployment(c, 'held', ns, 2);
      await c.apps.patchNamespacedDeployment({ name: 'held', namespace: ns, body: { spec: { paused: true } } }, merge);
      await applyDeployment(c, deployment('held', ns, { replicas: 2, image: 'registry.local/serve:2.0' }));
      const paused = await eventually(
        () => c.apps.readNamespacedDeployment({ name: 'held', namespace: ns }),
        (d) => d.status?.conditions?.some((x) => x.type === 'Progressing' && x.reason === 'DeploymentPaused') === true,
        'the paused condition',
      );
      expect(paused.status?.observedGeneration).to.equal(paused.metadata?.generation);
      const images = (await podsOf(c, ns, 'app=held')).map((p) => p.spec?.containers[0]?.image);
      expect(images).to.deep.equal(['registry.local/serve:1.0', 'registry.local/serve:1.0']);

      await c.apps.patchNamespacedDeployment({ name: 'held', namespace: ns, body: { spec: { paused: false } } }, merge);
      await eventually(
        () => podsOf(c, ns, 'app=held'),
        (pods) => pods.length === 2 && pods.every((p) => p.spec?.containers[0]?.image === 'registry.local/serve:2.0' && isReady(p)),
        'the rollout to finish',
      );
    });

    it('keeps new pods off a cordoned node', async () => {
      const small = await startClusterSimulator({ ...FAST, nodes: [{ name: 'n1' }, { name: 'n2' }] });
      try {
        const sc = clients(small);
        await sc.core.patchNode({ name: 'n1', body: { spec: { unschedulable: true } } }, strategic);
        const node = await eventually(
          () => sc.core.readNode({ name: 'n1' }),
          (n) => n.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/unschedulable') === true,
          'the unschedulable taint',
        );
        expect(node.spec?.unschedulable).to.equal(true);
        await applyDeployment(sc, deployment('spread', 'cordon', { replicas: 4 }));
        await readyDeployment(sc, 'spread', 'cordon', 4);
        const pods = await podsOf(sc, 'cordon', 'app=spread');
        expect(pods.map((p) => p.spec?.nodeName)).to.deep.equal(['n2', 'n2', 'n2', 'n2']);
      } finally {
        await small.close();
      }
    });

    it('places GPU pods on GPU nodes only, and reports FailedCreate when the GPUs run out', async () => {
      const ns = 'gpus';
      await applyDeployment(c, deployment('trainer', ns, { replicas: 2, gpus: 4, sku: 'nvidia-a100-80gb' }));
      await readyDeployment(c, 'trainer', ns, 2);
      const pods = await podsOf(c, ns, 'app=trainer');
      expect(pods.map((p) => p.spec?.nodeName).sort()).to.deep.equal(['sim-gpu-1', 'sim-gpu-2']);

      // 16 GPUs in all, 8 taken: three more pods of 4 do not fit.
      await applyDeployment(c, deployment('greedy', ns, { replicas: 3, gpus: 4, sku: 'nvidia-a100-80gb' }));
      const stuck = await eventually(
        () => c.apps.readNamespacedDeployment({ name: 'greedy', namespace: ns }),
        (d) => d.status?.conditions?.some((x) => x.type === 'ReplicaFailure') === true,
        'ReplicaFailure on the deployment',
      );
      const replicaFailure = stuck.status!.conditions!.find((x) => x.type === 'ReplicaFailure')!;
      expect(replicaFailure).to.include({ status: 'True', reason: 'FailedCreate' });
      expect(replicaFailure.message).to.contain('Insufficient nvidia.com/gpu');

      const wrongSku = deployment('h100', ns, { replicas: 1, gpus: 1, sku: 'nvidia-h100-80gb' });
      await applyDeployment(c, wrongSku);
      const [pending] = await eventually(
        () => podsOf(c, ns, 'app=h100'),
        (ps) => ps[0]?.status?.conditions?.some((x) => x.type === 'PodScheduled' && x.status === 'False') === true,
        'the pod to be unschedulable',
      );
      expect(pending!.spec?.nodeName).to.equal(undefined);
      expect(pending!.status?.phase).to.equal('Pending');

      // Freeing GPUs lets the stuck pods in, and the failure clears.
      await c.apps.deleteNamespacedDeployment({ name: 'trainer', namespace: ns });
      const recovered = await readyDeployment(c, 'greedy', ns, 3);
      expect(recovered.status?.conditions?.some((x) => x.type === 'ReplicaFailure')).to.equal(false);
    });

    it('refuses pods beyond a namespace quota, reported as ReplicaFailure FailedCreate', async () => {
      const ns = 'quota';
      sim.setQuota(ns, { pods: 2 });
      await applyDeployment(c, deployment('capped', ns, { replicas: 3 }));
      const capped = await eventually(
        () => c.apps.readNamespacedDeployment({ name: 'capped', namespace: ns }),
        (d) => d.status?.conditions?.some((x) => x.type === 'ReplicaFailure') === true && d.status.readyReplicas === 2,
        'FailedCreate from the quota',
      );
      const condition = capped.status!.conditions!.find((x) => x.type === 'ReplicaFailure')!;
      expect(condition.reason).to.equal('FailedCreate');
      expect(condition.message).to.contain('exceeded quota');
      expect(await podsOf(c, ns, 'app=capped')).to.have.length(2);
      expect(capped.status?.conditions?.find((x) => x.type === 'Available')?.status).to.equal('False');
    });

    it('reports ProgressDeadlineExceeded for pods that never become Ready', async () => {
      const ns = 'deadline';
      sim.faults.neverReady(/broken-image/);
      await applyDeployment(c, deployment('stuck', ns, { replicas: 1, image: 'registry.local/broken-image:1', progressDeadlineSeconds: 1 }));
      const stuck = await eventually(
        () => c.apps.readNamespacedDeployment({ name: 'stuck', namespace: ns }),
        (d) => d.status?.conditions?.some((x) => x.type === 'Progressing' && x.status === 'False') === true,
        'ProgressDeadlineExceeded',
      );
      expect(stuck.status!.conditions!.find((x) => x.type === 'Progressing')).to.include({ status: 'False', reason: 'ProgressDeadlineExceeded' });
      const [pod] = await podsOf(c, ns, 'app=stuck');
      expect(pod!.status?.phase).to.equal('Running');
      expect(isReady(pod!)).to.equal(false);
    });

    it('brings StatefulSet pods up one at a time as <name>-0..n-1', async () => {
      const ns = 'stateful';
      const seen: string[] = [];
      const controller = await new Watch(c.kc).watch(`/api/v1/namespaces/${ns}/pods`, {}, (type: string, p: V1Pod) => {
        if (type === 'ADDED') seen.push(p.metadata!.name!);
      }, () => {});
      await c.apps.createNamespacedStatefulSet({
        namespace: ns,
        body: {
          metadata: { name: 'db' },
          spec: {
            replicas: 3,
            serviceName: 'db',
            selector: { matchLabels: { app: 'db' } },
            template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'main', image: 'registry.local/db:1' }] } },
          },
        },
      });
      const set = await eventually(
        () => c.apps.readNamespacedStatefulSet({ name: 'db', namespace: ns }),
        (s) => s.status?.readyReplicas === 3 && s.status.updatedReplicas === 3 && s.status.currentReplicas === 3,
        'three ready replicas',
      );
      controller.abort();
      expect(seen).to.deep.equal(['db-0', 'db-1', 'db-2']);
      expect(set.status?.currentRevision).to.equal(set.status?.updateRevision);
    });

    it('runs a Job to Complete', async () => {
      const ns = 'jobs';
      await c.batch.createNamespacedJob({
        namespace: ns,
        body: {
          metadata: { name: 'train' },
          spec: { parallelism: 2, completions: 2, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.local/train:1' }] } } },
        },
      });
      const running = await eventually(() => c.batch.readNamespacedJob({ name: 'train', namespace: ns }), (j) => j.status?.active === 2, 'two active pods');
      expect(running.spec?.selector?.matchLabels?.['batch.kubernetes.io/controller-uid']).to.equal(running.metadata?.uid);
      const done = await eventually(
        () => c.batch.readNamespacedJob({ name: 'train', namespace: ns }),
        (j) => j.status?.conditions?.some((x) => x.type === 'Complete' && x.status === 'True') === true,
        'the job to complete',
      );
      expect(done.status?.succeeded).to.equal(2);
      expect(done.status?.active).to.equal(undefined);
    });
  });

  describe('faults', () => {
    it('fails the next two matching requests with 500 and then serves again', async () => {
      sim.faults.failNext(2, 500, { method: 'GET', path: /\/nodes$/ });
      await c.core.listNamespace();
      const first = await failure(c.core.listNode());
      const second = await failure(c.core.listNode());
      expect([first.code, second.code]).to.deep.equal([500, 500]);
      expect(first.status).to.include({ kind: 'Status', status: 'Failure', reason: 'InternalError', code: 500 });
      expect((await c.core.listNode()).items).to.have.length(4);
    });

    it('adds latency to every request until cleared', async () => {
      sim.faults.latency(150);
      const started = Date.now();
      await c.core.listNode();
      expect(Date.now() - started).to.be.at.least(140);
      sim.faults.latency(0);
    });
  });
});
