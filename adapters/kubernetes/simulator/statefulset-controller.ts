// The StatefulSet controller: pods `<name>-0..n-1` made, replaced and removed one at a time in ordinal order
// (OrderedReady), or all at once (Parallel), with revision-labelled pods for rolling updates.
import { removeCondition, setCondition, withoutZeros } from './conditions.js';
import type { EventRecorder } from './events.js';
import { templateHash, timestamp } from './naming.js';
import { isReady, isTerminal } from './pods.js';
import type { Registry } from './registry.js';
import { STATEFULSETS } from './resources.js';
import type { Condition, KubeObject, Pod, StatefulSetSpec } from './types.js';
import { CONTROLLER_MANAGER, createPod, deletePod, ownedPods, unschedulableMessage } from './workload-pods.js';

export const REVISION_LABEL = 'controller-revision-hash';
const SOURCE = { component: 'statefulset-controller' };

function ordinalOf(setName: string, pod: Pod): number | undefined {
  const suffix = pod.metadata.name!.slice(setName.length + 1);
  return pod.metadata.name!.startsWith(`${setName}-`) && /^\d+$/.test(suffix) ? Number(suffix) : undefined;
}

export class StatefulSetController {
  constructor(
    private readonly registry: Registry,
    private readonly events: EventRecorder,
  ) {}

  run(now: number): void {
    for (const set of this.registry.list(STATEFULSETS)) this.sync(set, now);
  }

  private sync(set: KubeObject, now: number): void {
    const spec = (set.spec ?? {}) as StatefulSetSpec;
    const name = set.metadata.name!;
    const replicas = spec.replicas ?? 1;
    const updateRevision = `${name}-${templateHash(spec.template)}`;
    const currentRevision = String(set.status?.currentRevision ?? updateRevision);
    const parallel = spec.podManagementPolicy === 'Parallel';
    const partition = spec.updateStrategy?.rollingUpdate?.partition ?? 0;

    const failure = this.reconcilePods(set, spec, replicas, updateRevision, parallel, partition, now);
    const pods = ownedPods(this.registry, set).filter((p) => !isTerminal(p));
    const ready = pods.filter(isReady).length;
    const updated = pods.filter((p) => p.metadata.labels?.[REVISION_LABEL] === updateRevision).length;
    const rolledOut = updated === replicas && pods.length === replicas && ready === replicas;
    const newCurrent = rolledOut ? updateRevision : currentRevision;
    const current = pods.filter((p) => p.metadata.labels?.[REVISION_LABEL] === newCurrent).length;

    const problem = failure ?? unschedulableMessage(pods);
    const at = timestamp(now);
    const conditions = problem
      ? setCondition((set.status?.conditions ?? []) as Condition[], { type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: problem }, at, false)
      : removeCondition((set.status?.conditions ?? []) as Condition[], 'ReplicaFailure');

    const next: KubeObject = { ...set };
    next.status = {
      ...withoutZeros(
        {
          observedGeneration: set.metadata.generation,
          replicas: pods.length,
          readyReplicas: ready,
          currentReplicas: current,
          updatedReplicas: updated,
          availableReplicas: ready,
          collisionCount: 0,
        },
        ['replicas', 'availableReplicas', 'collisionCount'],
      ),
      currentRevision: newCurrent,
      updateRevision,
      ...(conditions.length > 0 ? { conditions } : {}),
    };
    this.registry.update(STATEFULSETS, set.metadata.namespace, name, next, { manager: CONTROLLER_MANAGER, internal: true });
  }

  /** Deletes a pod, with the controller's SuccessfulDelete event. */
  private remove(set: KubeObject, pod: Pod, now: number): void {
    deletePod(this.registry, pod);
    const message = `delete Pod ${pod.metadata.name} in StatefulSet ${set.metadata.name} successful`;
    this.events.record(SOURCE, set, { type: 'Normal', reason: 'SuccessfulDelete', message }, now);
  }

  private reconcilePods(
    set: KubeObject,
    spec: StatefulSetSpec,
    replicas: number,
    updateRevision: string,
    parallel: boolean,
    partition: number,
    now: number,
  ): string | undefined {
    const name = set.metadata.name!;
    const byOrdinal = new Map<number, Pod>();
    for (const pod of ownedPods(this.registry, set)) {
      const ordinal = ordinalOf(name, pod);
      if (ordinal !== undefined) byOrdinal.set(ordinal, pod);
    }
    // A finished pod of a StatefulSet is replaced, as the controller does with a failed one.
    for (const [ordinal, pod] of byOrdinal) {
      if (isTerminal(pod)) {
        this.remove(set, pod, now);
        byOrdinal.delete(ordinal);
      }
    }

    for (let i = 0; i < replicas; i++) {
      const pod = byOrdinal.get(i);
      if (!pod) {
        const podName = `${name}-${i}`;
        const { failure } = createPod(this.registry, {
          owner: set,
          ownerDef: STATEFULSETS,
          template: spec.template ?? {},
          name: podName,
          labels: { [REVISION_LABEL]: updateRevision, 'statefulset.kubernetes.io/pod-name': podName, 'apps.kubernetes.io/pod-index': String(i) },
          spec: { hostname: podName, ...(spec.serviceName ? { subdomain: spec.serviceName } : {}) },
        });
        const message = `create Pod ${podName} in StatefulSet ${name} ${failure ? `failed error: ${failure}` : 'successful'}`;
        this.events.record(SOURCE, set, { type: failure ? 'Warning' : 'Normal', reason: failure ? 'FailedCreate' : 'SuccessfulCreate', message }, now);
        if (failure) return failure;
        if (!parallel) return undefined;
      } else if (!isReady(pod) && !parallel) {
        return undefined;
      }
    }

    const extra = [...byOrdinal.keys()].filter((i) => i >= replicas).sort((a, b) => b - a);
    if (extra.length > 0) {
      for (const ordinal of parallel ? extra : extra.slice(0, 1)) this.remove(set, byOrdinal.get(ordinal)!, now);
      return undefined;
    }

    if (spec.updateStrategy?.type === 'OnDelete') return undefined;
    const allReady = [...byOrdinal.values()].every(isReady);
    if (!allReady) return undefined;
    // Rolling update: the highest ordinal still on an old revision goes first, one at a time, down to the partition.
    const stale = [...byOrdinal.entries()]
      .filter(([i, p]) => i >= partition && p.metadata.labels?.[REVISION_LABEL] !== updateRevision)
      .sort(([a], [b]) => b - a);
    if (stale.length > 0) this.remove(set, stale[0]![1], now);
    return undefined;
  }
}
