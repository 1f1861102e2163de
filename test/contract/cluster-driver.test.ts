// Runs the ClusterDriver contract against the Kubernetes driver (on the cluster simulator always, on a real cluster when one is named), and the driver's own watch recovery.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { startClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { ClusterError, type DesiredWorkload, type ManagedChange } from '../../reactors/cluster-driver.js';
import { clusterDriverContract, type ClusterDriverHarness } from './cluster-driver.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

describe('ClusterDriver contract: Kubernetes driver on the cluster simulator', () => {
  let simulator: Awaited<ReturnType<typeof startClusterSimulator>>;
  let harness: ClusterDriverHarness;

  before(async () => {
    simulator = await startClusterSimulator({ podReadyAfterMs: 100, controllerIntervalMs: 25 });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(simulator.kubeconfig());
    harness = {
      driver: new KubeClusterDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 100 } }),
      kubeConfig,
      faults: simulator.faults,
      rolloutTimeoutMs: 20_000,
      gpuSku: 'nvidia-a100-80gb',
    };
  });
  after(async () => {
    await simulator?.close();
  });

  clusterDriverContract(() => harness);
});

describe('Kubernetes driver watch, beyond the contract (cluster simulator)', () => {
  let simulator: Awaited<ReturnType<typeof startClusterSimulator>>;
  let kubeConfig: KubeConfig;
  let driver: KubeClusterDriver;
  const deployments = /^\/apis\/apps\/v1\/deployments$/;

  before(async () => {
    // A short watch history, so that a watch resumed after a few changes is told 410 Gone.
    simulator = await startClusterSimulator({ podReadyAfterMs: 50, controllerIntervalMs: 25, watchHistory: 5 });
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(simulator.kubeconfig());
    driver = new KubeClusterDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 50, attempts: 2 } });
  });
  afterEach(() => simulator.faults.clear());
  after(async () => {
    await simulator?.close();
  });

  it('given the watch cannot resume where it was (410 Gone), then it lists again and delivers the current state', async () => {
    const changes: ManagedChange[] = [];
    const watch = await driver.watch((change) => changes.push(change));
    try {
      const workload: DesiredWorkload = {
        deploymentId: randomUUID(),
        revision: 1,
        replicas: 1,
        strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
        spec: { name: 'gone', namespace: 'default', type: 'inference', image: 'img:1', resources: { cpu: '100m', memory: '64Mi' }, labels: {} },
      };
      await driver.apply(workload);
      await until(() => changes.some((c) => c.type === 'ADDED' && c.workload.ref.name === 'gone'));

      // Cut the watches and keep them from coming back while more changes than the history holds go by.
      simulator.faults.failNext(1_000_000, 503, { method: 'GET', path: deployments });
      simulator.faults.dropWatches();
      const apps = kubeConfig.makeApiClient(AppsV1Api);
      for (const replicas of [2, 3, 4, 5, 6, 7, 8]) {
        await apps.patchNamespacedDeploymentScale(
          { name: 'gone', namespace: 'default', body: { spec: { replicas } }, fieldManager: 'kubectl' },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      }
      simulator.faults.clear();
      await until(() => changes.some((c) => c.type === 'MODIFIED' && c.workload.replicas === 8));
    } finally {
      await watch.stop();
      await driver.delete({ kind: 'Deployment', namespace: 'default', name: 'gone' });
    }
  });

  it('given the first list is refused, then watch fails with a ClusterError and leaves nothing running', async () => {
    simulator.faults.failNext(10, 403, { method: 'GET', path: deployments });
    let error: unknown;
    try {
      await driver.watch(() => undefined);
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(ClusterError);
    expect(error).to.include({ status: 403, transient: false });
  });
});

/** Waits for a condition that the simulator makes true within moments; the bound only keeps a broken run finite. */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

describe('ClusterDriver contract: Kubernetes driver on a real cluster', function () {
  let harness: ClusterDriverHarness;

  before(function () {
    const path = process.env['SENTINEL_TEST_KUBECONFIG'];
    if (!path) {
      console.log('      skipped: SENTINEL_TEST_KUBECONFIG is not set (no kube-apiserver can run on this machine)');
      return this.skip();
    }
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(path);
    harness = {
      driver: new KubeClusterDriver(kubeConfig, { logger }),
      kubeConfig,
      rolloutTimeoutMs: 180_000,
      ...(process.env['SENTINEL_TEST_GPU_SKU'] ? { gpuSku: process.env['SENTINEL_TEST_GPU_SKU'] } : {}),
    };
  });

  clusterDriverContract(() => harness);
});
