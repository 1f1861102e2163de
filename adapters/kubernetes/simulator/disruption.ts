// PodDisruptionBudgets: how many pods a budget wants healthy, whether an eviction may proceed, and the status the disruption controller reports.
import { ApiError } from './api-error.js';
import { controllerUid, isReady, isTerminal } from './pods.js';
import type { Registry } from './registry.js';
import { DEPLOYMENTS, PDBS, PODS, STATEFULSETS } from './resources.js';
import { selectorMatches } from './selectors.js';
import type { IntOrString, KubeObject, Pod, PodDisruptionBudgetSpec } from './types.js';

export interface BudgetState {
  expectedPods: number;
  currentHealthy: number;
  desiredHealthy: number;
  disruptionsAllowed: number;
}

/** An int or a percentage of `total`, rounded up, as the disruption controller scales both fields. */
function scaled(value: IntOrString, total: number): number {
  if (typeof value === 'number') return value;
  const percent = Number.parseInt(value.replace('%', ''), 10);
  return Math.ceil((percent * total) / 100);
}

export function selectedPods(registry: Registry, pdb: KubeObject): Pod[] {
  const spec = (pdb.spec ?? {}) as PodDisruptionBudgetSpec;
  // In policy/v1 a null selector selects no pod and an empty one selects every pod in the namespace.
  if (!spec.selector) return [];
  return (registry.list(PODS, pdb.metadata.namespace) as Pod[]).filter(
    (p) => !isTerminal(p) && selectorMatches(spec.selector, p.metadata.labels),
  );
}

/**
 * The budget's arithmetic. Expected pods are the replicas the pods' controllers want (so a pod that is missing counts
 * as unhealthy), plus any pod without a controller.
 */
export function evaluateBudget(registry: Registry, pdb: KubeObject): BudgetState {
  const spec = (pdb.spec ?? {}) as PodDisruptionBudgetSpec;
  const pods = selectedPods(registry, pdb);
  const namespace = pdb.metadata.namespace;
  const controllers = new Map<string, number>();
  let uncontrolled = 0;
  for (const pod of pods) {
    const uid = controllerUid(pod);
    if (!uid) {
      uncontrolled++;
      continue;
    }
    if (controllers.has(uid)) continue;
    const owner = [...registry.list(DEPLOYMENTS, namespace), ...registry.list(STATEFULSETS, namespace)].find((o) => o.metadata.uid === uid);
    const replicas = owner ? Number((owner.spec as { replicas?: number }).replicas ?? 1) : pods.filter((p) => controllerUid(p) === uid).length;
    controllers.set(uid, replicas);
  }
  const expectedPods = [...controllers.values()].reduce((a, b) => a + b, 0) + uncontrolled;
  const currentHealthy = pods.filter(isReady).length;
  let desiredHealthy: number;
  if (spec.maxUnavailable !== undefined) desiredHealthy = Math.max(0, expectedPods - scaled(spec.maxUnavailable, expectedPods));
  else if (spec.minAvailable !== undefined) desiredHealthy = scaled(spec.minAvailable, expectedPods);
  else desiredHealthy = expectedPods;
  return { expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed: Math.max(0, currentHealthy - desiredHealthy) };
}

/**
 * The Eviction API's check: 429 TooManyRequests when evicting would break the only budget that selects the pod.
 * An unready pod may go while the budget is met (the default unhealthyPodEvictionPolicy, IfHealthyBudget).
 */
export function checkEviction(registry: Registry, pod: Pod): void {
  if (isTerminal(pod)) return;
  const budgets = registry
    .list(PDBS, pod.metadata.namespace)
    .filter((pdb) => {
      const spec = (pdb.spec ?? {}) as PodDisruptionBudgetSpec;
      return spec.selector !== undefined && selectorMatches(spec.selector, pod.metadata.labels);
    });
  if (budgets.length === 0) return;
  if (budgets.length > 1) {
    throw new ApiError(500, 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.');
  }
  const pdb = budgets[0]!;
  const state = evaluateBudget(registry, pdb);
  const allowed = isReady(pod) ? state.disruptionsAllowed > 0 : state.currentHealthy >= state.desiredHealthy;
  if (allowed) return;
  throw new ApiError(429, "Cannot evict pod as it would violate the pod's disruption budget.", 'TooManyRequests', {
    causes: [
      {
        reason: 'DisruptionBudget',
        message: `The disruption budget ${pdb.metadata.name} needs ${state.desiredHealthy} healthy pods and has ${state.currentHealthy} currently`,
      },
    ],
  });
}
