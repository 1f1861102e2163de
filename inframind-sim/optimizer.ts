// The reference optimizer's decisions: scale inference deployments by their GPU utilisation, with hysteresis and a
// cool-down, from what the link sends (events for the fleet's shape, observations for its load). No I/O.
import { v5 as uuidv5 } from 'uuid';
import type { LinkEvent, Observation } from '../adapters/grpc/inframind-proto.js';

export interface OptimizerSettings {
  /** Mean GPU utilisation (percent) above which a deployment gets one more replica. */
  scaleUpAbove: number;
  /** Mean GPU utilisation (percent) below which it gets one fewer. Between the two nothing changes (hysteresis). */
  scaleDownBelow: number;
  /** After a plan for a deployment, none for the same deployment for this long. */
  cooldownMs: number;
  minReplicas: number;
  maxReplicas: number;
}

export interface ScaleProposal {
  planId: string;
  deploymentId: string;
  replicas: number;
  reason: string;
}

interface Tracked {
  namespace: string;
  name: string;
  replicas: number;
}

const GPU_UTIL = 'DCGM_FI_DEV_GPU_UTIL';
/** Plan ids derive from what was decided, in this namespace. */
const SIM_NAMESPACE = '8d2f61c4-5b7e-5a09-93d1-4c6e2a8f0b17';

export class ScaleOptimizer {
  private readonly deployments = new Map<string, Tracked>();
  /** When InfraMind last proposed a plan per deployment, as the log shows (so a restarted optimizer keeps its cool-down). */
  private readonly lastProposed = new Map<string, number>();
  /** Deployments with a plan sent and not yet answered: nothing more is proposed for them. */
  private readonly inFlight = new Map<string, string>();

  constructor(private readonly settings: OptimizerSettings) {
    if (settings.scaleDownBelow >= settings.scaleUpAbove) {
      throw new RangeError(`scale-down threshold ${settings.scaleDownBelow} must lie below the scale-up threshold ${settings.scaleUpAbove}`);
    }
  }

  /** Follows the fleet: inference deployments, their replicas, and InfraMind's own earlier plans. */
  applyEvent(event: LinkEvent): void {
    const data = JSON.parse(event.dataJson) as Record<string, unknown>;
    const deploymentId = typeof data['deploymentId'] === 'string' ? data['deploymentId'] : '';
    switch (event.type) {
      case 'DeploymentCreated': {
        const spec = (data['spec'] ?? {}) as Record<string, unknown>;
        if (spec['type'] === 'inference' && typeof spec['namespace'] === 'string' && typeof spec['name'] === 'string') {
          this.deployments.set(deploymentId, { namespace: spec['namespace'], name: spec['name'], replicas: Number(data['replicas']) });
        }
        return;
      }
      case 'DeploymentScaled': {
        const tracked = this.deployments.get(deploymentId);
        if (tracked) tracked.replicas = Number(data['replicas']);
        return;
      }
      case 'DeploymentDeleted':
        this.deployments.delete(deploymentId);
        return;
      case 'ActionPlanSubmitted':
        if (data['source'] !== 'inframind') return;
        for (const action of (data['actions'] ?? []) as { kind?: string; deploymentId?: string }[]) {
          if (action.kind === 'scale' && action.deploymentId) {
            this.lastProposed.set(action.deploymentId, Math.max(this.lastProposed.get(action.deploymentId) ?? 0, Date.parse(String(data['submittedAt']))));
          }
        }
    }
  }

  /** Scale plans the observation calls for; each deployment is in flight until `answered`. */
  propose(observation: Observation): ScaleProposal[] {
    const now = observation.observedAtUnixMs;
    const proposals: ScaleProposal[] = [];
    for (const [deploymentId, tracked] of this.deployments) {
      if (this.inFlight.has(deploymentId)) continue;
      if (now - (this.lastProposed.get(deploymentId) ?? -Infinity) < this.settings.cooldownMs) continue;
      const utilisation = meanUtilisation(observation, tracked);
      if (utilisation === undefined) continue;
      const replicas = this.target(tracked.replicas, utilisation);
      if (replicas === tracked.replicas) continue;
      const planId = uuidv5(`${deploymentId}\u0000${tracked.replicas}\u0000${replicas}\u0000${now}`, SIM_NAMESPACE);
      this.inFlight.set(deploymentId, planId);
      this.lastProposed.set(deploymentId, now);
      proposals.push({
        planId,
        deploymentId,
        replicas,
        reason: `mean GPU utilisation of ${tracked.namespace}/${tracked.name} is ${utilisation.toFixed(1)}%: ${tracked.replicas} → ${replicas} replicas`,
      });
    }
    return proposals;
  }

  /** The plan was acknowledged (either verdict): the deployment may get another once its cool-down is over. */
  answered(planId: string): void {
    for (const [deploymentId, inFlight] of this.inFlight) if (inFlight === planId) this.inFlight.delete(deploymentId);
  }

  private target(replicas: number, utilisation: number): number {
    const { scaleUpAbove, scaleDownBelow, minReplicas, maxReplicas } = this.settings;
    if (utilisation > scaleUpAbove) return Math.min(maxReplicas, replicas + 1);
    if (utilisation < scaleDownBelow) return Math.max(minReplicas, replicas - 1);
    return replicas;
  }
}

/** The mean GPU utilisation over the GPUs held by the deployment's pods (`<name>-...` in its namespace). */
function meanUtilisation(observation: Observation, deployment: Tracked): number | undefined {
  const values = observation.points
    .filter((point) => point.metric === GPU_UTIL && point.labels['namespace'] === deployment.namespace && point.labels['pod']?.startsWith(`${deployment.name}-`))
    .map((point) => point.value);
  return values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0) / values.length;
}
