// A canary whose strategy names a Gateway API HTTPRoute: the weight of each step is set as backend weights on the route
// (stable Service / canary Service) on top of the replica counts, read back from the simulator's stored route; at the
// end everything is on the stable Service again. A route that does not exist stops the rollout, naming it.
import { randomUUID } from 'node:crypto';
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { expect } from 'chai';
import { HTTP_ROUTE_API, weightsOf } from '../../adapters/kubernetes/http-route-router.js';
import { deployments } from '../../commands/aggregates.js';
import type { CommandContext } from '../../commands/command-handler.js';
import type { CanaryStep } from '../../domain/deployment.js';
import type { StartedRollout } from '../../domain/rollout.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { PROMETHEUS_SKIP_REASON } from '../support/prometheus.js';
import { GOOD_IMAGE, LATENCY_SLO_MS, STABLE_IMAGE, startRolloutHarness, type RolloutHarness } from '../support/rollout-harness.js';

const RUN = randomUUID().slice(0, 6);
const operator: CommandContext = { actor: { id: 'ops', kind: 'user' }, correlationId: 'c-ops', causationId: 'c-ops' };

describe('a canary routed through a Gateway API HTTPRoute, on the cluster simulator', function () {
  this.timeout(60_000);
  let h: RolloutHarness;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;

  before(async function () {
    // The harness runs a Prometheus for analysis; these rollouts have no analysis step, but share its harness.
    if (PROMETHEUS_SKIP_REASON) {
      console.log(`SKIP: ${PROMETHEUS_SKIP_REASON}`);
      this.skip();
    }
    h = await startRolloutHarness();
    apps = h.kubeConfig.makeApiClient(AppsV1Api);
    core = h.kubeConfig.makeApiClient(CoreV1Api);
    custom = h.kubeConfig.makeApiClient(CustomObjectsApi);
  });
  after(async () => {
    await h?.stop();
  });

  async function createRoute(namespace: string): Promise<void> {
    await custom.createNamespacedCustomObject({
      ...HTTP_ROUTE_API,
      namespace,
      body: {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'llm-route', namespace },
        spec: { parentRefs: [{ name: 'inference-gateway' }], rules: [{ backendRefs: [{ name: 'llm', port: 80 }] }] },
      },
    });
  }

  /** The route's weights in its one rule: the stable Service's and the canary Service's. */
  async function weights(namespace: string): Promise<{ stable: number | undefined; canary: number | undefined }> {
    const route = (await custom.getNamespacedCustomObject({ ...HTTP_ROUTE_API, namespace, name: 'llm-route' })) as Record<string, unknown>;
    return { stable: weightsOf(route, { service: 'llm', namespace })[0], canary: weightsOf(route, { service: 'llm-canary', namespace })[0] };
  }

  async function replicas(namespace: string): Promise<Record<string, number>> {
    const list = await apps.listNamespacedDeployment({ namespace });
    return Object.fromEntries(list.items.map((d) => [d.metadata!.name!, d.spec?.replicas ?? 0]));
  }

  /** A deployment of 4 of the stable image, then its revision 2 of the good image as a canary routed through `llm-route`. */
  async function routedCanary(namespace: string, steps: CanaryStep[]): Promise<string> {
    const id = await h.deploy(namespace, [{ weight: 100 }], { replicas: 4 });
    const spec: WorkloadSpec = {
      name: 'llm',
      namespace,
      type: 'inference',
      image: GOOD_IMAGE,
      env: {},
      resources: { cpu: '100m', memory: '128Mi' },
      labels: {},
      slo: { latencyP99Ms: LATENCY_SLO_MS },
    };
    await h.handler.execute(
      deployments,
      id,
      {
        type: 'UpdateDeployment',
        deploymentId: id,
        workload: { status: 'active', specRevision: 2, spec: spec as unknown as Record<string, unknown> },
        workloadRevision: 2,
        strategy: { type: 'canary', steps, trafficRouting: { httpRoute: { name: 'llm-route' } } },
      },
      { actor: { id: 'test-operator', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() },
    );
    return id;
  }

  it('sets each step weight on the route between the stable and the canary Service, replicas still split, all back on stable at the end', async () => {
    const ns = `route-${RUN}-good`;
    await createRoute(ns);
    const id = await routedCanary(ns, [{ weight: 25 }, { pause: {} }, { weight: 50 }, { pause: {} }, { weight: 100 }]);
    const seen: { weights: Awaited<ReturnType<typeof weights>>; replicas: Record<string, number> }[] = [];
    for (const weight of [25, 50]) {
      await h.until(`paused at weight ${weight}`, () => h.rollout(id, 2), (r) => r.status === 'Paused' && (r as StartedRollout).weight === weight);
      seen.push({ weights: await weights(ns), replicas: await replicas(ns) });
      await h.commands.promote(id, false, operator);
    }
    expect(seen).to.deep.equal([
      { weights: { stable: 75, canary: 25 }, replicas: { llm: 3, 'llm-canary': 1 } },
      { weights: { stable: 50, canary: 50 }, replicas: { llm: 2, 'llm-canary': 2 } },
    ]);

    await h.until('Available on revision 2', () => h.deployment(id), (d) => d.status === 'Available' && d.currentRevision === 2);
    await h.until('the canary object gone', () => replicas(ns), (r) => !('llm-canary' in r));
    expect(await weights(ns)).to.deep.equal({ stable: 100, canary: 0 });
    // The route still names the canary Service (at weight 0), so it stays, selecting pods that are gone.
    const after = await core.listNamespacedService({ namespace: ns });
    expect(Object.fromEntries(after.items.map((s) => [s.metadata!.name!, s.spec!.selector]))).to.deep.equal({
      llm: { 'sentinel.io/deployment-id': id },
      'llm-canary': { 'sentinel.io/rollout-of': id, 'sentinel.io/rollout-role': 'canary' },
    });
    const images = await apps.readNamespacedDeployment({ name: 'llm', namespace: ns });
    expect(images.spec!.template.spec!.containers[0]!.image).to.equal(GOOD_IMAGE);
  });

  it('given a route that does not exist, the rollout is aborted naming it, and the deployment is back on its stable spec', async () => {
    const ns = `route-${RUN}-missing`;
    const id = await routedCanary(ns, [{ weight: 50 }, { pause: {} }, { weight: 100 }]);
    await h.until('rolled back', () => h.deployment(id), (d) => d.status === 'Available' && d.currentRevision === 3);
    const rollout = (await h.rollout(id, 2)) as StartedRollout;
    expect(rollout.status).to.equal('Aborted');
    expect(rollout.cause).to.match(new RegExp(`^the weights could not be set on HTTPRoute ${ns}/llm-route: `));
    await h.until('the canary object gone', () => replicas(ns), (r) => !('llm-canary' in r));
    const live = await apps.readNamespacedDeployment({ name: 'llm', namespace: ns });
    expect({ replicas: live.spec!.replicas, image: live.spec!.template.spec!.containers[0]!.image }).to.deep.equal({ replicas: 4, image: STABLE_IMAGE });
  });
});
