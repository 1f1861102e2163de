// Where a rollout sends traffic: the Services a blue/green rollout or a routed canary keeps next to the deployment's
// objects, which pods each selects, and a canary's weight as HTTPRoute backend weights. Names and selectors only: the
// calls go through the cluster driver's `TrafficDriver`.
import type { TrafficRouting } from '../domain/deployment.js';
import {
  CANARY_SUFFIX,
  DEPLOYMENT_ID_LABEL,
  PREVIEW_SUFFIX,
  ROLLOUT_OF_LABEL,
  ROLLOUT_ROLE_LABEL,
  type BackendWeight,
  type DesiredService,
  type DesiredWorkload,
  type NamedRef,
  type RolloutRole,
} from './cluster-driver.js';

/** The pods of one side of a rollout: the deployment's own object's (stable), or a side object's. */
export type Side = 'stable' | RolloutRole;

/** The labels that select one side's pods (the stable side's carry the deployment id, a side object's the rollout's). */
export function selectorOf(deploymentId: string, side: Side): Record<string, string> {
  return side === 'stable' ? { [DEPLOYMENT_ID_LABEL]: deploymentId } : { [ROLLOUT_OF_LABEL]: deploymentId, [ROLLOUT_ROLE_LABEL]: side };
}

type Named = Pick<DesiredWorkload, 'deploymentId' | 'spec'>;

/** The Service named for the deployment, `<name>`: the stable one of a routed canary, blue/green's active one. */
export function mainServiceRef(desired: Named): NamedRef {
  return { namespace: desired.spec.namespace, name: desired.spec.name };
}

/** The Service of a side object, named as the object is: `<name>-canary` or `<name>-preview`. */
export function sideServiceRef(desired: Named, role: RolloutRole): NamedRef {
  return { namespace: desired.spec.namespace, name: `${desired.spec.name}${role === 'canary' ? CANARY_SUFFIX : PREVIEW_SUFFIX}` };
}

/** `<name>`, sending traffic to `side`: the stable side, or (blue/green switched) the preview. */
export function mainService(desired: Named, side: 'stable' | 'preview'): DesiredService {
  return { ...mainServiceRef(desired), deploymentId: desired.deploymentId, selector: selectorOf(desired.deploymentId, side) };
}

/** A side object's own Service, selecting its pods only. */
export function sideService(desired: Named, role: RolloutRole): DesiredService {
  return { ...sideServiceRef(desired, role), deploymentId: desired.deploymentId, selector: selectorOf(desired.deploymentId, role) };
}

/** The HTTPRoute a canary's strategy names, in the workload's namespace unless it names another. */
export function routeRef(desired: Named, routing: TrafficRouting): NamedRef {
  return { namespace: routing.httpRoute.namespace ?? desired.spec.namespace, name: routing.httpRoute.name };
}

/** A canary weight as backend weights out of 100: the stable Service the rest, the canary Service its share. */
export function canaryBackends(desired: Named, weight: number): BackendWeight[] {
  const namespace = desired.spec.namespace;
  return [
    { service: mainServiceRef(desired).name, namespace, weight: 100 - weight },
    { service: sideServiceRef(desired, 'canary').name, namespace, weight },
  ];
}
