// What the workload controllers share: making a pod from a template, choosing which pods to remove first, and the
// reason a workload cannot get its pods.
import { ApiError } from './api-error.js';
import { condition, controllerUid, isReady, isTerminal } from './pods.js';
import type { Registry } from './registry.js';
import { apiVersionOf, PODS, type ResourceDef } from './resources.js';
import type { KubeObject, Pod, PodTemplate } from './types.js';

export const CONTROLLER_MANAGER = 'kube-controller-manager';

export interface PodRequest {
  owner: KubeObject;
  ownerDef: ResourceDef;
  template: PodTemplate;
  name?: string;
  generateName?: string;
  labels?: Record<string, string>;
  spec?: Record<string, unknown>;
}

/** The pods a workload controls, finished ones included. */
export function ownedPods(registry: Registry, owner: KubeObject): Pod[] {
  return (registry.list(PODS, owner.metadata.namespace) as Pod[]).filter((p) => controllerUid(p) === owner.metadata.uid);
}

/** What came of creating a pod: the pod, or the refusal's message (a quota), which becomes FailedCreate. */
export type Created = { pod: Pod; failure?: undefined } | { pod?: undefined; failure: string };

/** Creates a pod for a workload. */
export function createPod(registry: Registry, request: PodRequest): Created {
  const { owner, ownerDef, template } = request;
  const body: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(request.name ? { name: request.name } : { generateName: request.generateName! }),
      namespace: owner.metadata.namespace!,
      labels: { ...template.metadata?.labels, ...request.labels },
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [
        { apiVersion: apiVersionOf(ownerDef), kind: ownerDef.kind, name: owner.metadata.name!, uid: owner.metadata.uid!, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: { ...structuredClone(template.spec ?? {}), ...request.spec },
  };
  try {
    return { pod: registry.create(PODS, owner.metadata.namespace, body, { manager: CONTROLLER_MANAGER }).object as Pod };
  } catch (error) {
    if (error instanceof ApiError) return { failure: error.message };
    throw error;
  }
}

export function deletePod(registry: Registry, pod: Pod): void {
  if (registry.find(PODS, pod.metadata.namespace, pod.metadata.name!)) registry.delete(PODS, pod.metadata.namespace, pod.metadata.name!);
}

/** Pods in the order a controller removes them: unscheduled, then not ready, then ready; most recently written first within each. */
export function removalOrder(pods: Pod[]): Pod[] {
  const rank = (p: Pod) => (!p.spec.nodeName ? 0 : !isReady(p) ? 1 : 2);
  return [...pods].sort((a, b) => rank(a) - rank(b) || Number(b.metadata.resourceVersion) - Number(a.metadata.resourceVersion));
}

/**
 * Why the workload's pods cannot all run, if they cannot: how many the scheduler cannot place, and its message for
 * the first (e.g. "0/4 nodes are available: 2 Insufficient nvidia.com/gpu, ..."). Reported as FailedCreate: a
 * simplification, since on a real cluster the pods stay Pending, only their FailedScheduling events say why, and the
 * Deployment reports ProgressDeadlineExceeded once its progress deadline has passed.
 */
export function unschedulableMessage(pods: Pod[]): string | undefined {
  const live = pods.filter((pod) => !isTerminal(pod));
  const unschedulable = live.filter((pod) => {
    const scheduled = condition(pod, 'PodScheduled');
    return !pod.spec.nodeName && scheduled?.status === 'False' && scheduled.reason === 'Unschedulable';
  });
  const first = unschedulable[0];
  if (!first) return undefined;
  const message = condition(first, 'PodScheduled')?.message ?? 'no node fits';
  return `${unschedulable.length} of ${live.length} pods cannot be scheduled: ${message}`;
}
