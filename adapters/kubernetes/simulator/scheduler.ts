// The scheduler: binds each pending pod to a node that is schedulable, matches its node selector and affinity, and has
// the GPUs it asks for; a pod that fits nowhere is marked Unschedulable with the scheduler's own wording.
import type { EventRecorder } from './events.js';
import { timestamp } from './naming.js';
import { GPU_RESOURCE, isTerminal, podGpus } from './pods.js';
import type { Registry } from './registry.js';
import { NODES, PODS } from './resources.js';
import { fromLabelSelector, matches } from './selectors.js';
import type { Condition, KubeObject, NodeSpec, Pod } from './types.js';

export const SCHEDULER = 'default-scheduler';

function nodeGpus(node: KubeObject): number {
  const allocatable = (node.status?.allocatable ?? {}) as Record<string, string>;
  return Number.parseInt(allocatable[GPU_RESOURCE] ?? '0', 10) || 0;
}

function affinityMatches(pod: Pod, labels: Record<string, string> | undefined): boolean {
  const terms = pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (!terms || terms.length === 0) return true;
  // Terms are ORed, the expressions inside one term ANDed, as in the API.
  return terms.some((term) => matches(fromLabelSelector({ matchExpressions: term.matchExpressions ?? [] }), labels));
}

function withCondition(conditions: Condition[] | undefined, next: Condition): Condition[] {
  const rest = (conditions ?? []).filter((c) => c.type !== next.type);
  const previous = (conditions ?? []).find((c) => c.type === next.type);
  const same = previous && previous.status === next.status && previous.reason === next.reason && previous.message === next.message;
  return [...rest, same ? previous : next];
}

export class Scheduler {
  /** When each pod was bound, in ms, so the kubelet knows when its readiness probe first passes. */
  readonly boundAt = new Map<string, number>();

  constructor(
    private readonly registry: Registry,
    private readonly events: EventRecorder,
  ) {}

  run(now: number): void {
    const nodes = this.registry.list(NODES);
    const pods = (this.registry.list(PODS) as Pod[]).filter((p) => !isTerminal(p));
    const gpusUsed = new Map<string, number>();
    const podCount = new Map<string, number>();
    for (const pod of pods) {
      const node = pod.spec.nodeName;
      if (!node) continue;
      gpusUsed.set(node, (gpusUsed.get(node) ?? 0) + podGpus(pod));
      podCount.set(node, (podCount.get(node) ?? 0) + 1);
    }
    for (const pod of pods) {
      if (pod.spec.nodeName) continue;
      const wanted = podGpus(pod);
      const reasons = new Map<string, number>();
      const fits: KubeObject[] = [];
      for (const node of nodes) {
        const labels = node.metadata.labels;
        let reason: string | undefined;
        if ((node.spec as NodeSpec | undefined)?.unschedulable) reason = 'node(s) were unschedulable';
        else if (!matches(fromLabelSelector({ matchLabels: pod.spec.nodeSelector ?? {} }), labels) || !affinityMatches(pod, labels)) {
          reason = "node(s) didn't match Pod's node affinity/selector";
        } else if (wanted > nodeGpus(node) - (gpusUsed.get(node.metadata.name!) ?? 0)) reason = `Insufficient ${GPU_RESOURCE}`;
        if (reason) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        else fits.push(node);
      }
      if (fits.length === 0) {
        const detail = [...reasons]
          .map(([reason, count]) => `${count} ${reason}`)
          .sort()
          .join(', ');
        this.markUnschedulable(pod, `0/${nodes.length} nodes are available: ${detail}.`, now);
        continue;
      }
      // A pod without GPUs keeps off GPU nodes while others fit, then pods spread to the node with the fewest,
      // with the name as the last word so runs are repeatable.
      const gpuPenalty = (node: KubeObject) => (wanted === 0 && nodeGpus(node) > 0 ? 1 : 0);
      fits.sort(
        (a, b) =>
          gpuPenalty(a) - gpuPenalty(b) ||
          (podCount.get(a.metadata.name!) ?? 0) - (podCount.get(b.metadata.name!) ?? 0) ||
          (a.metadata.name! < b.metadata.name! ? -1 : 1),
      );
      const chosen = fits[0]!.metadata.name!;
      this.bind(pod, chosen, now);
      gpusUsed.set(chosen, (gpusUsed.get(chosen) ?? 0) + wanted);
      podCount.set(chosen, (podCount.get(chosen) ?? 0) + 1);
    }
  }

  private bind(pod: Pod, node: string, now: number): void {
    const next = structuredClone(pod);
    next.spec.nodeName = node;
    next.status = {
      ...next.status,
      conditions: withCondition(next.status?.conditions, { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: timestamp(now) }),
    };
    const bound = this.registry.update(PODS, pod.metadata.namespace, pod.metadata.name!, next, { manager: SCHEDULER, internal: true });
    this.boundAt.set(pod.metadata.uid!, now);
    const message = `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${node}`;
    this.events.record({ component: SCHEDULER }, bound.object, { type: 'Normal', reason: 'Scheduled', message }, now);
  }

  private markUnschedulable(pod: Pod, message: string, now: number): void {
    const next = structuredClone(pod);
    next.status = {
      ...next.status,
      phase: 'Pending',
      conditions: withCondition(next.status?.conditions, {
        type: 'PodScheduled',
        status: 'False',
        lastProbeTime: null,
        lastTransitionTime: timestamp(now),
        reason: 'Unschedulable',
        message,
      }),
    };
    const result = this.registry.update(PODS, pod.metadata.namespace, pod.metadata.name!, next, { manager: SCHEDULER, internal: true });
    // The scheduler retries every pass; it reports when its verdict changes rather than on every retry.
    if (result.changed) this.events.record({ component: SCHEDULER }, result.object, { type: 'Warning', reason: 'FailedScheduling', message }, now);
  }
}
