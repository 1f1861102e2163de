// The real Kubernetes client, pointed at a cluster simulator: one API client per group the tests use.
import { AppsV1Api, AutoscalingV2Api, BatchV1Api, CoreV1Api, KubeConfig, PolicyV1Api } from '@kubernetes/client-node';
import type { ClusterSimulator, SimulatorOptions } from '../../adapters/kubernetes/simulator/index.js';

/** A simulator quick enough for tests: pods ready in 80 ms, controllers every 20 ms, bookmarks every 150 ms. */
export const FAST: SimulatorOptions = { podReadyAfterMs: 80, controllerIntervalMs: 20, bookmarkIntervalMs: 150 };

export interface Clients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  policy: PolicyV1Api;
  autoscaling: AutoscalingV2Api;
}

export function clients(sim: ClusterSimulator): Clients {
  const kc = new KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    batch: kc.makeApiClient(BatchV1Api),
    policy: kc.makeApiClient(PolicyV1Api),
    autoscaling: kc.makeApiClient(AutoscalingV2Api),
  };
}
