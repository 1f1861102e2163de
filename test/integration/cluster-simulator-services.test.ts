// The simulator's core/v1 Services and Gateway API HTTPRoutes, driven through the real @kubernetes/client-node, and the
// Kubernetes driver's Service and route calls against them.
import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions, Watch, type V1Service } from '@kubernetes/client-node';
import { expect } from 'chai';
import { pino } from 'pino';
import { HTTP_ROUTE_API, weightsOf } from '../../adapters/kubernetes/http-route-router.js';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { ClusterError } from '../../reactors/cluster-driver.js';
import { clients, FAST, type Clients } from '../support/simulator-clients.js';

const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface Status {
  code: number;
  reason: string;
  details?: { causes?: { field?: string; message?: string }[] };
}

async function failure(call: Promise<unknown>): Promise<Status> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body = error.body as unknown;
    return (typeof body === 'string' ? JSON.parse(body) : body) as Status;
  }
  throw new Error('expected the call to fail');
}

function service(name: string, namespace: string, selector: Record<string, string>, extra: Partial<NonNullable<V1Service['spec']>> = {}): V1Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { selector, ports: [{ port: 80, targetPort: 8000 }], ...extra } };
}

function route(name: string, namespace: string): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: {
      parentRefs: [{ name: 'gateway' }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/v1' } }], backendRefs: [{ name: 'llm', port: 80 }] },
        { backendRefs: [{ name: 'docs', port: 80 }] },
      ],
    },
  };
}

describe('cluster simulator: Services and HTTPRoutes', function () {
  this.timeout(30_000);
  let sim: ClusterSimulator;
  let c: Clients;
  let custom: CustomObjectsApi;

  before(async () => {
    sim = await startClusterSimulator(FAST);
    c = clients(sim);
    custom = c.kc.makeApiClient(CustomObjectsApi);
  });
  after(async () => sim?.close());

  describe('Services', () => {
    it('creates a Service with the API server defaults: ClusterIP, an address, TCP, targetPort from port', async () => {
      const created = await c.core.createNamespacedService({ namespace: 'svc-a', body: service('llm', 'svc-a', { app: 'llm' }, { ports: [{ port: 80 }] }) });
      expect(created.spec).to.deep.include({ type: 'ClusterIP', sessionAffinity: 'None', selector: { app: 'llm' } });
      expect(created.spec!.clusterIP).to.match(/^10\.\d+\.\d+\.\d+$/);
      expect(created.spec!.clusterIPs).to.deep.equal([created.spec!.clusterIP]);
      expect(created.spec!.ports).to.deep.equal([{ port: 80, protocol: 'TCP', targetPort: 80 }]);
      const read = await c.core.readNamespacedService({ name: 'llm', namespace: 'svc-a' });
      expect(read.metadata!.uid).to.equal(created.metadata!.uid);
      const listed = await c.core.listNamespacedService({ namespace: 'svc-a' });
      expect(listed.items.map((s) => s.metadata!.name)).to.deep.equal(['llm']);
    });

    it('patches the selector (merge and server-side apply) and keeps the cluster IP; a replace naming another is refused', async () => {
      const created = await c.core.createNamespacedService({ namespace: 'svc-b', body: service('llm', 'svc-b', { side: 'blue' }) });
      const patched = await c.core.patchNamespacedService({ name: 'llm', namespace: 'svc-b', body: { spec: { selector: { side: 'green' } } } }, merge);
      expect(patched.spec!.selector).to.deep.equal({ side: 'green' });
      expect(patched.spec!.clusterIP).to.equal(created.spec!.clusterIP);
      const applied = await c.core.patchNamespacedService(
        { name: 'llm', namespace: 'svc-b', body: service('llm', 'svc-b', { side: 'blue', tier: 'web' }), fieldManager: 'test', force: true },
        apply,
      );
      expect(applied.spec!.selector).to.deep.equal({ side: 'blue', tier: 'web' });
      expect(applied.spec!.clusterIP).to.equal(created.spec!.clusterIP);

      const current = await c.core.readNamespacedService({ name: 'llm', namespace: 'svc-b' });
      const replaced = await c.core.replaceNamespacedService({ name: 'llm', namespace: 'svc-b', body: { ...current, spec: { ...current.spec, selector: { side: 'green' } } } });
      expect(replaced.spec!.selector).to.deep.equal({ side: 'green' });
      const refused = await failure(
        c.core.replaceNamespacedService({ name: 'llm', namespace: 'svc-b', body: { ...replaced, spec: { ...replaced.spec, clusterIP: '10.0.0.9', clusterIPs: ['10.0.0.9'] } } }),
      );
      expect(refused.code).to.equal(422);
      expect(refused.details!.causes).to.deep.include({ field: 'spec.clusterIP', message: `Invalid value: "10.0.0.9": field is immutable`, reason: 'FieldValueInvalid' });
    });

    it('validates the selector, ports and type as the API server does (422 naming each field)', async () => {
      const bad = service('bad', 'svc-c', { 'sentinel.io/rollout-role': 'not a value!' }, {
        type: 'Sideways',
        ports: [
          { name: 'http', port: 0 },
          { name: 'http', port: 8080 },
          { port: 9090 },
        ],
      });
      const refused = await failure(c.core.createNamespacedService({ namespace: 'svc-c', body: bad }));
      expect(refused.code).to.equal(422);
      const fields = refused.details!.causes!.map((cause) => cause.field);
      // The target port defaults to the port, so a port of 0 is a target port of 0 too.
      expect(fields).to.have.members(['spec.type', 'spec.selector', 'spec.ports[0].port', 'spec.ports[0].targetPort', 'spec.ports[1].name', 'spec.ports[2].name']);
      const selector = refused.details!.causes!.find((cause) => cause.field === 'spec.selector')!;
      expect(selector.message).to.match(/^Invalid value: "not a value!": a valid label must be an empty string/);
      const portless = await failure(c.core.createNamespacedService({ namespace: 'svc-c', body: service('portless', 'svc-c', { app: 'x' }, { ports: [] }) }));
      expect(portless.details!.causes).to.deep.include({ field: 'spec.ports', message: 'Required value', reason: 'FieldValueRequired' });
      // A headless Service needs no port.
      await c.core.createNamespacedService({ namespace: 'svc-c', body: service('headless', 'svc-c', { app: 'x' }, { clusterIP: 'None', ports: [] }) });
    });

    it('watches Services: a selector change is a MODIFIED event, a delete DELETED; a second delete is 404', async () => {
      await c.core.createNamespacedService({ namespace: 'svc-d', body: service('llm', 'svc-d', { side: 'blue' }) });
      const seen: { type: string; selector: unknown }[] = [];
      const watching = await new Watch(c.kc).watch('/api/v1/namespaces/svc-d/services', {}, (type: string, object: V1Service) => seen.push({ type, selector: object.spec?.selector }), () => undefined);
      try {
        await c.core.patchNamespacedService({ name: 'llm', namespace: 'svc-d', body: { spec: { selector: { side: 'green' } } } }, merge);
        await c.core.deleteNamespacedService({ name: 'llm', namespace: 'svc-d' });
        const deadline = Date.now() + 5_000;
        while (seen.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      } finally {
        watching.abort();
      }
      expect(seen).to.deep.equal([
        { type: 'ADDED', selector: { side: 'blue' } },
        { type: 'MODIFIED', selector: { side: 'green' } },
        { type: 'DELETED', selector: { side: 'green' } },
      ]);
      expect((await failure(c.core.deleteNamespacedService({ name: 'llm', namespace: 'svc-d' }))).code).to.equal(404);
    });
  });

  describe('HTTPRoutes', () => {
    it('stores an HTTPRoute as a custom object, and refuses a weight out of range', async () => {
      await custom.createNamespacedCustomObject({ ...HTTP_ROUTE_API, namespace: 'rt-a', body: route('llm', 'rt-a') });
      const read = (await custom.getNamespacedCustomObject({ ...HTTP_ROUTE_API, namespace: 'rt-a', name: 'llm' })) as Record<string, unknown>;
      expect((read['metadata'] as { generation: number }).generation).to.equal(1);
      const broken = route('broken', 'rt-a') as { spec: { rules: { backendRefs: Record<string, unknown>[] }[] } };
      broken.spec.rules[0]!.backendRefs[0]!['weight'] = -1;
      const refused = await failure(custom.createNamespacedCustomObject({ ...HTTP_ROUTE_API, namespace: 'rt-a', body: broken }));
      expect(refused.code).to.equal(422);
      expect(refused.details!.causes!.map((cause) => cause.field)).to.deep.equal(['spec.rules[0].backendRefs[0].weight']);
    });
  });

  describe('the Kubernetes driver', () => {
    let driver: KubeClusterDriver;
    before(() => {
      driver = new KubeClusterDriver(c.kc, { logger: pino({ level: 'silent' }), retry: { baseDelayMs: 10, maxDelayMs: 50, requestTimeoutMs: 5_000 } });
    });
    after(() => driver.close());

    it('applies a Service, patches its selector by applying again, reads it, and deletes it (twice without error)', async () => {
      const ref = { namespace: 'drv-a', name: 'llm' };
      const deploymentId = 'd-1';
      const first = await driver.applyService({ ...ref, deploymentId, selector: { 'sentinel.io/deployment-id': deploymentId } });
      expect(first).to.deep.include({ ...ref, deploymentId, selector: { 'sentinel.io/deployment-id': deploymentId } });
      const again = await driver.applyService({ ...ref, deploymentId, selector: { 'sentinel.io/deployment-id': deploymentId } });
      expect(again.resourceVersion).to.equal(first.resourceVersion);
      const switched = await driver.applyService({ ...ref, deploymentId, selector: { 'sentinel.io/rollout-of': deploymentId, 'sentinel.io/rollout-role': 'preview' } });
      expect(switched.selector).to.deep.equal({ 'sentinel.io/rollout-of': deploymentId, 'sentinel.io/rollout-role': 'preview' });
      const stored = await c.core.readNamespacedService(ref);
      expect(stored.spec!.ports).to.deep.equal([{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8000 }]);
      expect(await driver.readService(ref)).to.deep.include({ selector: switched.selector });
      await driver.deleteService(ref);
      await driver.deleteService(ref);
      expect(await driver.readService(ref)).to.equal(undefined);
    });

    it("sets backend weights on an HTTPRoute: the canary Service next to the stable one, other rules untouched", async () => {
      await custom.createNamespacedCustomObject({ ...HTTP_ROUTE_API, namespace: 'drv-b', body: route('llm', 'drv-b') });
      const ref = { namespace: 'drv-b', name: 'llm' };
      await driver.setRouteWeights(ref, [
        { service: 'llm', namespace: 'drv-b', weight: 80 },
        { service: 'llm-canary', namespace: 'drv-b', weight: 20 },
      ]);
      let read = (await custom.getNamespacedCustomObject({ ...HTTP_ROUTE_API, ...ref })) as Record<string, unknown>;
      expect(weightsOf(read, { service: 'llm', namespace: 'drv-b' })).to.deep.equal([80, undefined]);
      expect(weightsOf(read, { service: 'llm-canary', namespace: 'drv-b' })).to.deep.equal([20, undefined]);
      const rules = (read['spec'] as { rules: { backendRefs: unknown[] }[] }).rules;
      expect(rules[0]!.backendRefs).to.deep.equal([
        { name: 'llm', port: 80, weight: 80 },
        { name: 'llm-canary', port: 80, weight: 20 },
      ]);
      expect(rules[1]!.backendRefs).to.deep.equal([{ name: 'docs', port: 80 }]);
      const version = (read['metadata'] as { resourceVersion: string }).resourceVersion;
      // The same weights again write nothing.
      await driver.setRouteWeights(ref, [
        { service: 'llm', namespace: 'drv-b', weight: 80 },
        { service: 'llm-canary', namespace: 'drv-b', weight: 20 },
      ]);
      read = (await custom.getNamespacedCustomObject({ ...HTTP_ROUTE_API, ...ref })) as Record<string, unknown>;
      expect((read['metadata'] as { resourceVersion: string }).resourceVersion).to.equal(version);
    });

    it('fails, naming the route, when the HTTPRoute does not exist', async () => {
      let error: unknown;
      await driver.setRouteWeights({ namespace: 'drv-c', name: 'missing' }, [{ service: 'llm', namespace: 'drv-c', weight: 100 }]).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(ClusterError);
      expect((error as ClusterError).status).to.equal(404);
      expect((error as ClusterError).message).to.include('HTTPRoute drv-c/missing');
    });
  });
});
