// A deployment command as policy sees it: the change in resources it makes, and who makes it where.
import type { PlacedDeployment } from '../domain/deployment.js';
import { footprintOf, NO_FOOTPRINT, type ActionKind, type Change, type Footprint } from '../domain/policy.js';
import type { WorkloadSpec } from '../domain/workload.js';
import type { CommandContext } from './command-handler.js';

export function specOf(deployment: PlacedDeployment): Partial<WorkloadSpec> {
  return (deployment.revisions[deployment.currentRevision]?.spec ?? {}) as Partial<WorkloadSpec>;
}

export function footprint(deployment: PlacedDeployment): Footprint {
  const spec = specOf(deployment);
  if (deployment.status === 'Deleted' || !spec.resources) return NO_FOOTPRINT;
  return footprintOf(spec.resources, deployment.replicas);
}

/** The change a deployment command makes, as policy sees it. A restart moves no resources. */
export function deploymentChange(
  action: ActionKind,
  before: PlacedDeployment | undefined,
  after: PlacedDeployment,
  context: CommandContext,
  now: Date,
): Change {
  const spec = specOf(after);
  const moves = action !== 'restart';
  return {
    action,
    at: now.toISOString(),
    actor: context.actor,
    target: { kind: 'deployment', id: after.id },
    clusterId: after.clusterId,
    ...(spec.namespace ? { namespace: spec.namespace } : {}),
    ...(spec.type ? { workloadType: spec.type } : {}),
    labels: spec.labels ?? {},
    ...(moves ? { before: before ? footprint(before) : NO_FOOTPRINT, after: footprint(after) } : {}),
    ...(context.emergency ? { emergency: context.emergency } : {}),
  };
}
