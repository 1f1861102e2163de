// Questions every part of the simulator asks about a pod: is it Ready, finished, whose is it, how many GPUs does it hold.
import type { Condition, ContainerSpec, KubeObject, Pod } from './types.js';

export const GPU_RESOURCE = 'nvidia.com/gpu';
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';

function quantityInt(value: string | number | undefined): number {
  if (value === undefined) return 0;
  const n = typeof value === 'number' ? value : Number.parseInt(value, 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** GPUs a pod asks for: an extended resource, so the limit is the request and there is no overcommit. */
export function podGpus(pod: Pod): number {
  const containers: ContainerSpec[] = pod.spec.containers ?? [];
  return containers.reduce((sum, c) => {
    const limit = c.resources?.limits?.[GPU_RESOURCE];
    return sum + quantityInt(limit ?? c.resources?.requests?.[GPU_RESOURCE]);
  }, 0);
}

export function condition(object: KubeObject, type: string): Condition | undefined {
  const conditions = (object.status?.conditions ?? []) as Condition[];
  return conditions.find((c) => c.type === type);
}

export function isReady(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && condition(pod, 'Ready')?.status === 'True';
}

export function isTerminal(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

/** The uid of the pod's controller (the workload that made it), if any. */
export function controllerUid(object: KubeObject): string | undefined {
  return object.metadata.ownerReferences?.find((o) => o.controller)?.uid;
}

export function images(pod: Pod): string[] {
  return (pod.spec.containers ?? []).map((c) => c.image ?? '');
}
