// The Deployment controller: pods per pod-template hash (owned by the Deployment directly, without ReplicaSet objects),
// rolling updates within maxSurge / maxUnavailable, and status conditions moved as Kubernetes moves them.
import { findCondition, removeCondition, setCondition, withoutZeros } from './conditions.js';
import type { EventRecorder } from './events.js';
import { templateHash, timestamp } from './naming.js';
import { isReady, isTerminal } from './pods.js';
import type { Registry } from './registry.js';
import { DEPLOYMENTS } from './resources.js';
import type { Condition, DeploymentSpec, IntOrString, KubeObject, Pod } from './types.js';
import { CONTROLLER_MANAGER, createPod, deletePod, ownedPods, removalOrder, unschedulableMessage } from './workload-pods.js';

export const POD_TEMPLATE_HASH = 'pod-template-hash';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
const SOURCE = { component: 'deployment-controller' };

/** An int or a percentage of `total`; surge rounds up and unavailability down, as the controller does. */
export function resolveIntOrPercent(value: IntOrString | undefined, total: number, roundUp: boolean): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  const scaled = (Number.parseInt(value.replace('%', ''), 10) * total) / 100;
  return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
}

export function surgeAndUnavailable(spec: DeploymentSpec, desired: number): { maxSurge: number; maxUnavailable: number } {
  if (spec.strategy?.type === 'Recreate') return { maxSurge: 0, maxUnavailable: desired };
  const rolling = spec.strategy?.rollingUpdate ?? {};
  const maxSurge = resolveIntOrPercent(rolling.maxSurge ?? '25%', desired, true);
  let maxUnavailable = resolveIntOrPercent(rolling.maxUnavailable ?? '25%', desired, false);
  // Both zero would never move; the API refuses it, and a percentage rounding to zero falls back to one.
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable: Math.min(maxUnavailable, desired) };
}

interface Tracking {
  hash: string;
  /** Revision number of each template hash the Deployment has had. */
  revisions: Map<string, number>;
  /** When the rollout last made progress (ms), for the progress deadline. */
  progressAt: number;
  paused: boolean;
  /** The size each replica set (pod-template hash) was last scaled to, as its spec.replicas would say. */
  sizes: Map<string, number>;
}

interface Counts {
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
}

function countsOf(status: Record<string, unknown> | undefined): Counts {
  const n = (key: string) => Number(status?.[key] ?? 0);
  return { replicas: n('replicas'), updatedReplicas: n('updatedReplicas'), readyReplicas: n('readyReplicas'), availableReplicas: n('availableReplicas') };
}

export class DeploymentController {
  private readonly tracking = new Map<string, Tracking>();

  constructor(
    private readonly registry: Registry,
    private readonly events: EventRecorder,
  ) {}

  run(now: number): void {
    const deployments = this.registry.list(DEPLOYMENTS);
    const live = new Set(deployments.map((d) => d.metadata.uid!));
    for (const uid of [...this.tracking.keys()]) if (!live.has(uid)) this.tracking.delete(uid);
    for (const deployment of deployments) this.sync(deployment, now);
  }

  private sync(deployment: KubeObject, now: number): void {
    const spec = (deployment.spec ?? {}) as DeploymentSpec;
    const name = deployment.metadata.name!;
    const desired = spec.replicas ?? 1;
    const hash = templateHash(spec.template);
    const rsName = `${name}-${hash}`;

    let track = this.tracking.get(deployment.metadata.uid!);
    let rolloutEvent: 'NewReplicaSetCreated' | 'FoundNewReplicaSet' | undefined;
    if (!track || track.hash !== hash) {
      const revisions = track?.revisions ?? new Map<string, number>();
      const known = revisions.has(hash);
      revisions.set(hash, Math.max(0, ...revisions.values()) + 1);
      rolloutEvent = known ? 'FoundNewReplicaSet' : 'NewReplicaSetCreated';
      track = { hash, revisions, progressAt: now, paused: Boolean(spec.paused), sizes: track?.sizes ?? new Map<string, number>() };
      this.tracking.set(deployment.metadata.uid!, track);
    }

    let failure: string | undefined;
    if (!spec.paused) failure = this.reconcilePods(deployment, spec, track.sizes, hash, desired, now);

    const pods = ownedPods(this.registry, deployment).filter((p) => !isTerminal(p));
    failure ??= unschedulableMessage(pods);
    const updated = pods.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH] === hash);
    const ready = pods.filter(isReady).length;
    const available = ready;
    const counts: Counts = { replicas: pods.length, updatedReplicas: updated.length, readyReplicas: ready, availableReplicas: available };
    const previous = countsOf(deployment.status);
    const at = timestamp(now);
    const { maxUnavailable } = surgeAndUnavailable(spec, desired);

    let conditions = (deployment.status?.conditions ?? []) as Condition[];
    conditions =
      available >= desired - maxUnavailable
        ? setCondition(conditions, { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }, at, true)
        : setCondition(conditions, { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' }, at, true);
    conditions = this.progressing(conditions, spec, track, rolloutEvent, rsName, desired, counts, previous, now);
    conditions = failure
      ? setCondition(conditions, { type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure }, at, true)
      : removeCondition(conditions, 'ReplicaFailure');

    const status = {
      ...withoutZeros({
        observedGeneration: deployment.metadata.generation,
        replicas: counts.replicas,
        updatedReplicas: counts.updatedReplicas,
        readyReplicas: counts.readyReplicas,
        availableReplicas: counts.availableReplicas,
        unavailableReplicas: Math.max(0, Math.max(desired, pods.length) - available),
      }),
      conditions,
    };
    const annotations = { ...deployment.metadata.annotations, [REVISION_ANNOTATION]: String(track.revisions.get(hash)) };
    const next: KubeObject = { ...deployment, metadata: { ...deployment.metadata, annotations }, status };
    this.registry.update(DEPLOYMENTS, deployment.metadata.namespace, name, next, { manager: CONTROLLER_MANAGER, internal: true });
  }

  /**
   * Sets a replica set's size, with ScalingReplicaSet worded as the controller words it. A pod replaced at the same
   * size is no scaling, so the sizes are remembered rather than read from the pods.
   */
  private scaled(deployment: KubeObject, sizes: Map<string, number>, hash: string, to: number, now: number, current = 0): void {
    const from = sizes.get(hash) ?? current;
    sizes.set(hash, to);
    if (from === to) return;
    const message = `Scaled ${to > from ? 'up' : 'down'} replica set ${deployment.metadata.name}-${hash} from ${from} to ${to}`;
    this.events.record(SOURCE, deployment, { type: 'Normal', reason: 'ScalingReplicaSet', message }, now);
  }

  /** Deletes old pods and reports each old replica set that shrank. */
  private scaleDownOld(deployment: KubeObject, sizes: Map<string, number>, oldPods: Pod[], remove: Pod[], now: number): void {
    const hashOf = (p: Pod) => p.metadata.labels?.[POD_TEMPLATE_HASH] ?? '';
    for (const pod of remove) deletePod(this.registry, pod);
    for (const hash of new Set(remove.map(hashOf))) {
      const before = oldPods.filter((p) => hashOf(p) === hash).length;
      this.scaled(deployment, sizes, hash, before - remove.filter((p) => hashOf(p) === hash).length, now, before);
    }
  }

  /** One step of the rollout; returns why a pod could not be created, if one could not. */
  private reconcilePods(deployment: KubeObject, spec: DeploymentSpec, sizes: Map<string, number>, hash: string, desired: number, now: number): string | undefined {
    const pods = ownedPods(this.registry, deployment).filter((p) => !isTerminal(p));
    const isNew = (p: Pod) => p.metadata.labels?.[POD_TEMPLATE_HASH] === hash;
    let newPods = pods.filter(isNew);
    let oldPods = pods.filter((p) => !isNew(p));
    const { maxSurge, maxUnavailable } = surgeAndUnavailable(spec, desired);
    let failure: string | undefined;

    if (spec.strategy?.type === 'Recreate') {
      // Every old pod goes before any new one starts.
      this.scaleDownOld(deployment, sizes, oldPods, oldPods, now);
      if (oldPods.length > 0) return undefined;
      oldPods = [];
    }

    if (newPods.length < desired) {
      const room = desired + maxSurge - (newPods.length + oldPods.length);
      const toCreate = Math.min(desired - newPods.length, Math.max(0, room));
      for (let i = 0; i < toCreate && !failure; i++) {
        const result = createPod(this.registry, {
          owner: deployment,
          ownerDef: DEPLOYMENTS,
          template: spec.template ?? {},
          generateName: `${deployment.metadata.name}-${hash}-`,
          labels: { [POD_TEMPLATE_HASH]: hash },
        });
        failure = result.failure;
      }
      // The replica set is scaled to its target even when its pods are then refused, as on a cluster.
      if (toCreate > 0) this.scaled(deployment, sizes, hash, newPods.length + toCreate, now, newPods.length);
      // On a cluster the replica set reports this; without ReplicaSet objects the Deployment does.
      if (failure) this.events.record(SOURCE, deployment, { type: 'Warning', reason: 'FailedCreate', message: `Error creating: ${failure}` }, now);
      newPods = ownedPods(this.registry, deployment).filter((p) => !isTerminal(p) && isNew(p));
    } else if (newPods.length > desired) {
      for (const pod of removalOrder(newPods).slice(0, newPods.length - desired)) deletePod(this.registry, pod);
      this.scaled(deployment, sizes, hash, desired, now, newPods.length);
      newPods = removalOrder(newPods).slice(newPods.length - desired);
    }

    if (oldPods.length > 0) {
      // As the controller's reconcileOldReplicaSets: never drop below desired - maxUnavailable available pods,
      // counting new pods that are not available yet against the budget.
      const minAvailable = desired - maxUnavailable;
      const newUnavailable = newPods.filter((p) => !isReady(p)).length;
      let maxScaledDown = newPods.length + oldPods.length - minAvailable - newUnavailable;
      if (maxScaledDown > 0) {
        const unhealthy = removalOrder(oldPods.filter((p) => !isReady(p))).slice(0, maxScaledDown);
        maxScaledDown -= unhealthy.length;
        const remaining = oldPods.filter((p) => !unhealthy.includes(p));
        const availableNow = [...newPods, ...remaining].filter(isReady).length;
        const canRemove = Math.min(maxScaledDown, availableNow - minAvailable);
        const healthy = canRemove > 0 ? removalOrder(remaining.filter(isReady)).slice(0, canRemove) : [];
        this.scaleDownOld(deployment, sizes, oldPods, [...unhealthy, ...healthy], now);
      }
    }
    return failure;
  }

  /** The Progressing condition, following the deployment controller's syncRolloutStatus. */
  private progressing(
    conditions: Condition[],
    spec: DeploymentSpec,
    track: Tracking,
    rolloutEvent: 'NewReplicaSetCreated' | 'FoundNewReplicaSet' | undefined,
    rsName: string,
    desired: number,
    counts: Counts,
    previous: Counts,
    now: number,
  ): Condition[] {
    const at = timestamp(now);
    const current = findCondition(conditions, 'Progressing');
    if (spec.paused) {
      track.paused = true;
      return setCondition(conditions, { type: 'Progressing', status: 'Unknown', reason: 'DeploymentPaused', message: 'Deployment is paused' }, at, true);
    }
    if (track.paused) {
      // Time spent paused does not count against the progress deadline.
      track.paused = false;
      track.progressAt = now;
      conditions = setCondition(conditions, { type: 'Progressing', status: 'Unknown', reason: 'DeploymentResumed', message: 'Deployment is resumed' }, at, true);
    }
    if (rolloutEvent) {
      track.progressAt = now;
      const message = rolloutEvent === 'NewReplicaSetCreated' ? `Created new replica set "${rsName}"` : `Found new replica set "${rsName}"`;
      return this.progressTrue(conditions, rolloutEvent, message, at);
    }
    // The status being written observes the current generation, so completeness is a matter of counts.
    const complete = counts.updatedReplicas === desired && counts.replicas === desired && counts.availableReplicas === desired;
    if (complete) {
      return setCondition(conditions, { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${rsName}" has successfully progressed.` }, at, true);
    }
    const oldNow = counts.replicas - counts.updatedReplicas;
    const oldBefore = previous.replicas - previous.updatedReplicas;
    const progressed =
      counts.updatedReplicas > previous.updatedReplicas ||
      oldNow < oldBefore ||
      counts.readyReplicas > previous.readyReplicas ||
      counts.availableReplicas > previous.availableReplicas;
    if (progressed) {
      track.progressAt = now;
      return this.progressTrue(conditions, 'ReplicaSetUpdated', `ReplicaSet "${rsName}" is progressing.`, at);
    }
    const deadlineSeconds = spec.progressDeadlineSeconds;
    if (deadlineSeconds !== undefined && current && current.reason !== 'NewReplicaSetAvailable') {
      if (current.reason === 'ProgressDeadlineExceeded' || now - track.progressAt > deadlineSeconds * 1000) {
        return setCondition(conditions, { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${rsName}" has timed out progressing.` }, at, true);
      }
    }
    return conditions;
  }

  /** Progress moves lastUpdateTime even when the reason stays the same; the transition time stays while it is True. */
  private progressTrue(conditions: Condition[], reason: string, message: string, at: string): Condition[] {
    const current = findCondition(conditions, 'Progressing');
    const condition: Condition = {
      type: 'Progressing',
      status: 'True',
      lastUpdateTime: at,
      lastTransitionTime: current?.status === 'True' && current.lastTransitionTime ? current.lastTransitionTime : at,
      reason,
      message,
    };
    return [...removeCondition(conditions, 'Progressing'), condition];
  }
}
