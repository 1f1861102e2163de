// A deployment command as policy sees it: the change in resources it makes, and who makes it where.
import type { PlacedDeployment } from '../domain/deployment.js';
import { footprintOf, NO_FOOTPRINT, type ActionKind, type Change, type Footprint } from '../domain/policy.js';
import type { WorkloadSpec } from '../domain/workload.js';
import type { CommandContext } from './command-handler.js';

export function specOf(deployment: PlacedDeployment): Partial<WorkloadSpec> {
  return (deployment.revisions[deployment.currentRevision]?.spec ?? {}) as Partial<WorkloadSpec>;
}

export function footprint(deployment: PlacedDeployment): Footprint {
  return footprintAt(deployment, deployment.currentRevision);
}

function footprintAt(deployment: PlacedDeployment, revision: number): Footprint {
  const spec = (deployment.revisions[revision]?.spec ?? {}) as Partial<WorkloadSpec>;
  if (deployment.status === 'Deleted' || !spec.resources) return NO_FOOTPRINT;
  return footprintOf(spec.resources, deployment.replicas);
}

/**
 * What the deployment can hold on its cluster. A paused deployment is scaled at once but rolls out no new revision
 * until it is resumed, so its pods may still run the last revision that became available: it holds the larger of
 * that and what it was told, and the resume is judged on what it then rolls out.
 */
export function heldFootprint(deployment: PlacedDeployment): Footprint {
  const told = footprint(deployment);
  const running = deployment.availableRevisions.at(-1);
  if (!deployment.paused || running === undefined || running === deployment.currentRevision) return told;
  return larger(told, footprintAt(deployment, running));
}

/** The actions that replace pods by a rolling update, which adds up to maxSurge pods above the replicas meanwhile. */
const ROLLING: ReadonlySet<ActionKind> = new Set(['update', 'rollback', 'restart', 'reschedule', 'resume']);

/** Pods a rolling update of `replicas` may add above them, as Kubernetes rounds maxSurge (up, for a percentage). */
export function surgePods(deployment: PlacedDeployment): number {
  const strategy = deployment.revisions[deployment.currentRevision]?.strategy ?? deployment.strategy;
  // Blue/green runs both sides at once: the preview reaches the full count next to the old side before the switch.
  if (strategy.type === 'blue_green') return deployment.replicas;
  // A canary's objects roll (the stable one taking the canary's spec at its end) with Kubernetes' defaults.
  const maxSurge = strategy.type === 'rolling' ? strategy.maxSurge : '25%';
  if (typeof maxSurge === 'number') return maxSurge;
  return Math.ceil((Number(maxSurge.slice(0, -1)) / 100) * deployment.replicas);
}

/**
 * What the deployment holds while `action` rolls it out: what it holds, plus the surge pods of a rolling update. A
 * scale adds or removes pods without a surge; a create starts from none.
 */
export function rolloutFootprint(action: ActionKind, deployment: PlacedDeployment): Footprint {
  const held = heldFootprint(deployment);
  const surge = ROLLING.has(action) && deployment.status !== 'Deleted' ? surgePods(deployment) : 0;
  if (surge === 0 || held.replicas === 0) return held;
  const per = (total: number) => (total / held.replicas) * (held.replicas + surge);
  return {
    ...held,
    replicas: held.replicas + surge,
    cpuMillicores: per(held.cpuMillicores),
    memoryBytes: per(held.memoryBytes),
    gpus: per(held.gpus),
  };
}

function larger(a: Footprint, b: Footprint): Footprint {
  const gpuSku = b.gpus > a.gpus ? b.gpuSku : (a.gpuSku ?? b.gpuSku);
  return {
    replicas: Math.max(a.replicas, b.replicas),
    cpuMillicores: Math.max(a.cpuMillicores, b.cpuMillicores),
    memoryBytes: Math.max(a.memoryBytes, b.memoryBytes),
    gpus: Math.max(a.gpus, b.gpus),
    ...(gpuSku !== undefined ? { gpuSku } : {}),
  };
}

/**
 * The change a deployment command makes, as policy sees it: from what the deployment holds to what it holds while
 * the change rolls out (a rolling update's surge pods included, which count against quotas and cost like any other).
 */
export function deploymentChange(
  action: ActionKind,
  before: PlacedDeployment | undefined,
  after: PlacedDeployment,
  context: CommandContext,
  now: Date,
): Change {
  const spec = specOf(after);
  return {
    action,
    at: now.toISOString(),
    actor: context.actor,
    target: { kind: 'deployment', id: after.id },
    clusterId: after.clusterId,
    ...(spec.namespace ? { namespace: spec.namespace } : {}),
    ...(spec.type ? { workloadType: spec.type } : {}),
    labels: spec.labels ?? {},
    before: before ? heldFootprint(before) : NO_FOOTPRINT,
    after: rolloutFootprint(action, after),
    ...(context.emergency ? { emergency: context.emergency } : {}),
  };
}
