// The Deployment aggregate: a workload placed on a cluster, with every revision of what it ran kept forever.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { ClusterStatus } from './cluster.js';
import { changedFields, defineEvents, InvalidTransition, NotFound, RuleViolation, type Decider, type EventOf, type FieldError } from './decider.js';
import { analysisTemplate, durationMs } from './analysis/analysis.js';
import { id, reason } from './schemas.js';

// ---- bodies -------------------------------------------------------------------------------------------

const INT_OR_PERCENT = 'a whole number of pods (0 or more) or a percentage such as "25%"';

/** A pod count or a share of the replicas, as Kubernetes writes maxSurge and maxUnavailable. */
const intOrPercent = z.union([
  z.int({ error: INT_OR_PERCENT }).min(0, INT_OR_PERCENT),
  z.string({ error: INT_OR_PERCENT }).regex(/^(100|[1-9]?\d)%$/, INT_OR_PERCENT),
]);

function isZero(amount: number | string): boolean {
  return amount === 0 || amount === '0%';
}

const rollingStrategy = z
  .strictObject({
    type: z.literal('rolling'),
    maxSurge: intOrPercent.default('25%'),
    maxUnavailable: intOrPercent.default('25%'),
  })
  // With no pod to add and none to take away, a rolling update could never replace anything.
  .refine((rolling) => !(isZero(rolling.maxSurge) && isZero(rolling.maxUnavailable)), {
    error: 'maxSurge and maxUnavailable cannot both be zero: at least one must let the rollout move',
    path: ['maxUnavailable'],
  });

const WEIGHT = 'a whole percentage of traffic from 1 to 100';
const SECONDS = 'a whole number of seconds, 0 or more';
const DURATION_TEXT = 'a duration such as "30s", "5m" or "1m30s"';
const duration = z.string({ error: DURATION_TEXT }).refine((text) => /^(\d+(ms|s|m|h))+$/.test(text) && durationMs(text) > 0, DURATION_TEXT);

/** `{weight}`: send this share of the replicas to the canary. `pauseSeconds`, the older form, pauses after it. */
const weightStep = z.strictObject({
  weight: z.int({ error: WEIGHT }).min(1, 'at least 1').max(100, 'at most 100'),
  pauseSeconds: z.int({ error: SECONDS }).min(0, 'at least 0').optional(),
});

/** `{pause: {seconds}}`: wait that long; `{pause: {}}` waits until promoted. */
const pauseStep = z.strictObject({
  pause: z.strictObject({ seconds: z.int({ error: SECONDS }).min(0, 'at least 0').optional() }, { error: 'an object such as {"seconds": 60}, or {} to wait until promoted' }),
});

/**
 * `{analysis: {...}}`: judge the canary by metrics before going on. `template` is a template written inline, or
 * `"inference"` (the default): the built-in inference template held to the workload's SLO, whose `interval`,
 * `count`, `rateWindow` and `inconclusiveLimit` the step may set. `initialDelay` waits before the first measurement.
 */
const analysisSpec = z.strictObject(
    {
      template: z.union([z.literal('inference'), analysisTemplate], { error: '"inference", or a template {name, metrics: [...]}' }).default('inference'),
      args: z.record(z.string(), z.string({ error: 'a string' })).optional(),
      interval: duration.optional(),
      count: z.int({ error: 'a whole number, 1 or more' }).min(1, 'at least 1').max(1000, 'at most 1000').optional(),
      rateWindow: duration.optional(),
      inconclusiveLimit: z.int({ error: 'a whole number, 0 or more' }).min(0, 'at least 0').optional(),
      initialDelay: duration.optional(),
    },
    { error: 'an object such as {"template": "inference", "interval": "1m"}' },
  );
const analysisStep = z.strictObject({ analysis: analysisSpec });

export type AnalysisSpec = z.infer<typeof analysisSpec>;

export const canaryStep = z.union([weightStep, pauseStep, analysisStep], {
  error: 'a step: {"weight": 20}, {"pause": {"seconds": 60}}, {"pause": {}} or {"analysis": {"template": "inference"}}',
});
export type CanaryStep = z.infer<typeof canaryStep>;

const NAME_TEXT = 'a Kubernetes object name: lower case letters, digits, "-" and ".", starting and ending with a letter or digit';
const objectName = z
  .string({ error: NAME_TEXT })
  .max(253, 'at most 253 characters')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, NAME_TEXT);

/**
 * `trafficRouting: {httpRoute: {name, namespace?}}`: a Gateway API HTTPRoute (in the workload's namespace unless named)
 * whose backend weights carry the canary's weight between the stable Service `<name>` and the canary Service
 * `<name>-canary`, on top of the replica counts.
 */
const trafficRouting = z.strictObject(
  { httpRoute: z.strictObject({ name: objectName, namespace: objectName.optional() }, { error: 'an object such as {"name": "llm-route"}' }) },
  { error: 'an object such as {"httpRoute": {"name": "llm-route"}}' },
);
export type TrafficRouting = z.infer<typeof trafficRouting>;

const canaryStrategy = z.strictObject({
  type: z.literal('canary'),
  trafficRouting: trafficRouting.optional(),
  steps: z
    .array(canaryStep, { error: 'a list of steps such as [{"weight": 10}, {"pause": {"seconds": 60}}, {"weight": 50}]' })
    .min(1, 'at least one step')
    .max(20, 'at most 20 steps')
    .refine((steps) => {
      const weights = steps.flatMap((step) => ('weight' in step ? [step.weight] : []));
      return weights.every((weight, i) => i === 0 || weight > weights[i - 1]!);
    }, 'step weights strictly increasing, such as 10, 50, 100'),
});

/**
 * Blue/green: the new revision runs as a preview (`<name>-preview`, `previewReplicas` pods, all of them by default)
 * behind the preview Service while the active Service `<name>` keeps sending traffic to the old side. It is promoted
 * by hand, or with `autoPromote` once the preview is ready, `prePromotionAnalysis` passed and `autoPromotionSeconds`
 * went by; the active Service then selects the preview, and the old side is scaled down after
 * `scaleDownDelaySeconds`.
 */
export const blueGreenStrategy = z
  .strictObject({
    type: z.literal('blue_green'),
    // At least 0 as events recorded before have it; a new revision with 0 is refused (`refuseUnworkable`).
    previewReplicas: z.int({ error: 'a whole number of replicas, 1 or more' }).min(0, 'at least 1').optional(),
    autoPromote: z.boolean({ error: 'true or false' }).default(false),
    autoPromotionSeconds: z.int({ error: SECONDS }).min(0, 'at least 0').max(86_400, 'at most 86400 (a day)').optional(),
    prePromotionAnalysis: analysisSpec.optional(),
    scaleDownDelaySeconds: z.int({ error: SECONDS }).min(0, 'at least 0').default(30),
  })
  .refine((blueGreen) => blueGreen.autoPromotionSeconds === undefined || blueGreen.autoPromote, {
    error: 'autoPromotionSeconds applies only with "autoPromote": true',
    path: ['autoPromotionSeconds'],
  });
export type BlueGreenStrategy = z.infer<typeof blueGreenStrategy>;

/** How a new revision replaces the old one. */
export const strategy = z.discriminatedUnion('type', [rollingStrategy, canaryStrategy, blueGreenStrategy], {
  error: 'strategy.type: one of rolling, canary, blue_green',
});
export type Strategy = z.infer<typeof strategy>;

/** What to do when the cluster's objects drift from the recorded revision: put them back, or accept them. */
export const driftPolicy = z.enum(['revert', 'adopt'], { error: 'one of revert, adopt' });
export type DriftPolicy = z.infer<typeof driftPolicy>;

const replicas = z
  .int({ error: 'a whole number of replicas from 0 to 1000' })
  .min(0, 'at least 0 replicas')
  .max(1000, 'at most 1000 replicas');

const revisionNumber = z.int({ error: 'a revision number, 1 or more' }).min(1, 'a revision number, 1 or more');

/** `POST /deployments` */
export const deploymentBody = z.strictObject({
  workloadId: id,
  clusterId: id,
  replicas,
  strategy: strategy.prefault({ type: 'rolling' }),
  driftPolicy: driftPolicy.default('revert'),
});
export type DeploymentBody = z.infer<typeof deploymentBody>;

/** `PATCH /deployments/:id`: an empty body moves the deployment to its workload's latest spec revision. */
export const deploymentPatchBody = z.strictObject({
  workloadRevision: revisionNumber.optional(),
  strategy: strategy.optional(),
  driftPolicy: driftPolicy.optional(),
});
export type DeploymentPatchBody = z.infer<typeof deploymentPatchBody>;

/** `POST /deployments/:id/scale` */
export const scaleBody = z.strictObject({ replicas });
export type ScaleBody = z.infer<typeof scaleBody>;

/** `POST /deployments/:id/rollback`: without `toRevision`, the latest earlier revision that became available. */
export const rollbackBody = z.strictObject({ toRevision: revisionNumber.optional(), reason: reason.optional() });
export type RollbackBody = z.infer<typeof rollbackBody>;

const reasonBody = z.strictObject({ reason: reason.optional() });
/** `POST /deployments/:id/restart` */
export const restartBody = reasonBody;
/** `POST /deployments/:id/pause` */
export const pauseBody = reasonBody;
/** `POST /deployments/:id/resume` */
export const resumeBody = reasonBody;
/** `DELETE /deployments/:id` */
export const deleteBody = reasonBody;
/** `POST /deployments/:id/abort`: stops the canary rollout in progress. */
export const abortBody = reasonBody;
/** `POST /deployments/:id/promote`: ends the pause or analysis the canary waits on; `full` skips every step left. */
export const promoteBody = z.strictObject({ full: z.boolean({ error: 'true or false' }).optional() });
export type PromoteBody = z.infer<typeof promoteBody>;
export type ReasonBody = z.infer<typeof reasonBody>;

// ---- events -------------------------------------------------------------------------------------------

/** The workload spec a revision runs, snapshotted so that history never depends on the workload's stream. */
const specSnapshot = z.record(z.string(), z.unknown());
const revision = z.int().min(1);

/** One measurement that failed a canary's analysis, as its `AnalysisMeasured` event recorded it. */
export const failedMeasurement = z.object({
  runId: z.string(),
  metric: z.string(),
  outcome: z.string(),
  value: z.unknown(),
  message: z.string(),
  measuredAt: z.string(),
});
export type FailedMeasurement = z.infer<typeof failedMeasurement>;

export const deploymentEvents = defineEvents({
  DeploymentCreated: {
    version: 1,
    schema: z.object({
      deploymentId: z.string(),
      workloadId: z.string(),
      clusterId: z.string(),
      replicas: z.int().min(0),
      strategy,
      driftPolicy,
      revision: z.literal(1),
      workloadRevision: revision,
      spec: specSnapshot,
    }),
  },
  DeploymentScaled: {
    version: 1,
    schema: z.object({ deploymentId: z.string(), replicas: z.int().min(0), previousReplicas: z.int().min(0) }),
  },
  DeploymentUpdated: {
    version: 1,
    schema: z.object({ deploymentId: z.string(), revision, workloadRevision: revision, spec: specSnapshot, strategy }),
  },
  DeploymentDriftPolicyChanged: {
    version: 1,
    schema: z.object({ deploymentId: z.string(), driftPolicy, previousDriftPolicy: driftPolicy }),
  },
  DeploymentRollbackRequested: {
    version: 1,
    schema: z.object({
      deploymentId: z.string(),
      revision,
      toRevision: revision,
      workloadRevision: revision,
      spec: specSnapshot,
      strategy,
      reason: z.string().optional(),
    }),
  },
  DeploymentRestartRequested: {
    version: 1,
    schema: z.object({ deploymentId: z.string(), restartedAt: z.string(), reason: z.string().optional() }),
  },
  /** Placed on other nodes of its cluster: the node selector its pods must match (besides the GPU SKU's). */
  DeploymentRescheduled: {
    version: 1,
    schema: z.object({
      deploymentId: z.string(),
      nodeSelector: z.record(z.string(), z.string()),
      previousNodeSelector: z.record(z.string(), z.string()),
      reason: z.string().optional(),
    }),
  },
  DeploymentPaused: { version: 1, schema: z.object({ deploymentId: z.string(), reason: z.string().optional() }) },
  DeploymentResumed: { version: 1, schema: z.object({ deploymentId: z.string(), reason: z.string().optional() }) },
  DeploymentDeleted: { version: 1, schema: z.object({ deploymentId: z.string(), reason: z.string().optional() }) },
  DeploymentApplying: { version: 1, schema: z.object({ deploymentId: z.string(), revision }) },
  DeploymentApplied: { version: 1, schema: z.object({ deploymentId: z.string(), revision }) },
  DeploymentRolloutProgressed: {
    version: 1,
    schema: z.object({ deploymentId: z.string(), revision, readyReplicas: z.int().min(0), updatedReplicas: z.int().min(0) }),
  },
  DeploymentAvailable: {
    version: 1,
    schema: z.object({ deploymentId: z.string(), revision, readyReplicas: z.int().min(0) }),
  },
  DeploymentDegraded: { version: 1, schema: z.object({ deploymentId: z.string(), revision, cause: z.string() }) },
  /** `failedMeasurements`: for a canary its analysis aborted, the measurements that failed it. */
  DeploymentRolloutFailed: {
    version: 1,
    schema: z.object({ deploymentId: z.string(), revision, cause: z.string(), failedMeasurements: z.array(failedMeasurement).optional() }),
  },
  /**
   * The cluster rolled `revision` back to `toRevision` by itself. What now runs is recorded as a new revision,
   * `newRevision`, copying `toRevision`, so the event alone says what is current.
   */
  DeploymentRolledBack: {
    version: 1,
    schema: z.object({
      deploymentId: z.string(),
      revision,
      toRevision: revision,
      newRevision: revision,
      workloadRevision: revision,
      spec: specSnapshot,
      strategy,
      cause: z.string(),
    }),
  },
  /**
   * The cluster's object differs from the recorded revision because someone changed it out of band. With
   * `resolution: "revert"` Sentinel puts the recorded revision back; with `"adopt"` it accepts what it found
   * (a replica count becomes the deployment's own).
   */
  DriftDetected: {
    version: 1,
    schema: z.object({
      deploymentId: z.string(),
      revision,
      differences: z.array(z.object({ field: z.string(), expected: z.unknown(), actual: z.unknown() })).min(1),
      resolution: driftPolicy,
      /** The cluster object's resourceVersion when the drift was seen. */
      observedVersion: z.string(),
    }),
  },
});
export type DeploymentEvent = EventOf<typeof deploymentEvents>;

/** One field where the cluster's object differs from what Sentinel recorded. */
export interface DriftDifference {
  field: string;
  expected: unknown;
  actual: unknown;
}

// ---- state --------------------------------------------------------------------------------------------

export type DeploymentStatus = 'Pending' | 'Applying' | 'Progressing' | 'Available' | 'Degraded' | 'Failed' | 'RolledBack' | 'Deleted';

/** One version of what the deployment runs. A rollback is a new revision with `rollbackOf` naming the one it copies. */
export interface DeploymentRevision {
  revision: number;
  workloadRevision: number;
  spec: Record<string, unknown>;
  strategy: Strategy;
  rollbackOf?: number;
  /** Made by Sentinel itself when the revision before it failed; such a revision is never rolled back by itself again. */
  automaticRollback?: true;
}

export interface PlacedDeployment {
  status: DeploymentStatus;
  id: string;
  workloadId: string;
  clusterId: string;
  replicas: number;
  strategy: Strategy;
  driftPolicy: DriftPolicy;
  paused: boolean;
  currentRevision: number;
  revisions: Record<number, DeploymentRevision>;
  /** Revisions that ever became available, in the order they did: the candidates for a rollback. */
  availableRevisions: number[];
  restartedAt?: string;
  /** Node labels its pods must match, from a reschedule; none until one. */
  nodeSelector?: Record<string, string>;
  /** Why it last went wrong; kept after it recovers. */
  lastCause?: string;
  /**
   * The differences adopted on a revision, each field's latest, with that revision: what the deployment took from the
   * cluster as its own (an image changed by hand stays changed, a replay applies it too) until a new revision.
   */
  adoptedDrift?: { revision: number; differences: DriftDifference[] };
}

export type Deployment = { status: 'absent' } | PlacedDeployment;

// ---- commands -----------------------------------------------------------------------------------------

/** What the command handler read from the workload's stream. */
export interface WorkloadFacts {
  id: string;
  status: 'active' | 'retired';
  specRevision: number;
  spec: Record<string, unknown>;
  gpu?: { count: number; sku: string };
}

/** What the command handler read from the cluster's stream. */
export interface ClusterFacts {
  id: string;
  status: ClusterStatus;
  gpuSkus: string[];
}

export type DeploymentCommand =
  // from people, through the API
  | {
      type: 'CreateDeployment';
      deploymentId: string;
      workload: WorkloadFacts | undefined;
      cluster: ClusterFacts | undefined;
      replicas: number;
      strategy: Strategy;
      driftPolicy: DriftPolicy;
    }
  | { type: 'ScaleDeployment'; deploymentId: string; replicas: number; cluster: Pick<ClusterFacts, 'status'> }
  | {
      type: 'UpdateDeployment';
      deploymentId: string;
      /** The workload, with `spec` the spec of the target revision (`workloadRevision`, or else the latest). */
      workload: Pick<WorkloadFacts, 'status' | 'specRevision' | 'spec'>;
      workloadRevision?: number;
      strategy?: Strategy;
      driftPolicy?: DriftPolicy;
    }
  | { type: 'RollbackDeployment'; deploymentId: string; toRevision?: number; reason?: string }
  | { type: 'RestartDeployment'; deploymentId: string; at: string; reason?: string }
  | { type: 'RescheduleDeployment'; deploymentId: string; nodeSelector: Record<string, string>; reason?: string }
  | { type: 'PauseDeployment'; deploymentId: string; reason?: string }
  | { type: 'ResumeDeployment'; deploymentId: string; reason?: string }
  | { type: 'DeleteDeployment'; deploymentId: string; reason?: string }
  // outcomes the Kubernetes reactor observed, each about one revision
  | { type: 'RecordApplying'; deploymentId: string; revision: number }
  | { type: 'RecordApplied'; deploymentId: string; revision: number }
  | { type: 'RecordRolloutProgress'; deploymentId: string; revision: number; readyReplicas: number; updatedReplicas: number }
  | { type: 'RecordAvailable'; deploymentId: string; revision: number; readyReplicas: number }
  | { type: 'RecordDegraded'; deploymentId: string; revision: number; cause: string }
  | { type: 'RecordRolloutFailed'; deploymentId: string; revision: number; cause: string; failedMeasurements?: FailedMeasurement[] }
  | { type: 'RecordRolledBack'; deploymentId: string; revision: number; toRevision: number; cause: string }
  | { type: 'RecordDrift'; deploymentId: string; revision: number; differences: DriftDifference[]; observedVersion: string };

// ---- decider ------------------------------------------------------------------------------------------

export const initialState: Deployment = { status: 'absent' };

export function evolve(state: Deployment, event: DeploymentEvent): Deployment {
  if (event.type === 'DeploymentCreated') {
    const { deploymentId, workloadId, clusterId, replicas, strategy, driftPolicy, workloadRevision, spec } = event.data;
    return {
      status: 'Pending',
      id: deploymentId,
      workloadId,
      clusterId,
      replicas,
      strategy,
      driftPolicy,
      paused: false,
      currentRevision: 1,
      revisions: { 1: { revision: 1, workloadRevision, spec, strategy } },
      availableRevisions: [],
    };
  }
  if (state.status === 'absent') return state;

  switch (event.type) {
    case 'DeploymentScaled':
      return { ...state, status: 'Pending', replicas: event.data.replicas };
    case 'DeploymentUpdated': {
      const { revision, workloadRevision, spec, strategy } = event.data;
      return withRevision(state, { revision, workloadRevision, spec, strategy }, 'Pending');
    }
    case 'DeploymentDriftPolicyChanged':
      return { ...state, driftPolicy: event.data.driftPolicy };
    case 'DeploymentRollbackRequested': {
      const { revision, toRevision, workloadRevision, spec, strategy } = event.data;
      return withRevision(state, { revision, workloadRevision, spec, strategy, rollbackOf: toRevision }, 'Pending');
    }
    case 'DeploymentRestartRequested':
      return { ...state, status: 'Pending', restartedAt: event.data.restartedAt };
    case 'DeploymentRescheduled':
      return { ...state, status: 'Pending', nodeSelector: event.data.nodeSelector };
    case 'DeploymentPaused':
      return { ...state, paused: true };
    case 'DeploymentResumed':
      return { ...state, paused: false };
    case 'DeploymentDeleted':
      return { ...state, status: 'Deleted' };
    case 'DeploymentApplying':
      return { ...state, status: 'Applying' };
    case 'DeploymentApplied':
    case 'DeploymentRolloutProgressed':
      return { ...state, status: 'Progressing' };
    case 'DeploymentAvailable': {
      const { revision } = event.data;
      const availableRevisions = state.availableRevisions.includes(revision) ? state.availableRevisions : [...state.availableRevisions, revision];
      return { ...state, status: 'Available', availableRevisions };
    }
    case 'DeploymentDegraded':
      return { ...state, status: 'Degraded', lastCause: event.data.cause };
    case 'DeploymentRolloutFailed':
      return { ...state, status: 'Failed', lastCause: event.data.cause };
    case 'DeploymentRolledBack': {
      const { newRevision, toRevision, workloadRevision, spec, strategy, cause } = event.data;
      const rolledBack = withRevision(
        state,
        { revision: newRevision, workloadRevision, spec, strategy, rollbackOf: toRevision, automaticRollback: true },
        'RolledBack',
      );
      return { ...rolledBack, lastCause: cause };
    }
    case 'DriftDetected': {
      const { revision, differences, resolution } = event.data;
      if (resolution !== 'adopt') return state;
      const replicas = differences.find((difference) => difference.field === 'replicas');
      // A later adoption on the same revision adds to the earlier one: a field adopted again takes its new value.
      const earlier = state.adoptedDrift?.revision === revision ? state.adoptedDrift.differences : [];
      const kept = earlier.filter((before) => !differences.some((difference) => difference.field === before.field));
      return {
        ...state,
        ...(typeof replicas?.actual === 'number' ? { replicas: replicas.actual } : {}),
        adoptedDrift: { revision, differences: [...kept, ...differences] },
      };
    }
  }
}

export function decide(command: DeploymentCommand, state: Deployment): DeploymentEvent[] {
  const { deploymentId } = command;
  if (command.type === 'CreateDeployment') {
    if (state.status !== 'absent') throw new InvalidTransition('deployment', deploymentId, state.status, 'create', 'it already exists');
    return create(command);
  }
  if (state.status === 'absent') throw new NotFound('deployment', deploymentId);
  if (state.status === 'Deleted') throw new InvalidTransition('deployment', deploymentId, state.status, verb(command));

  switch (command.type) {
    case 'ScaleDeployment': {
      if (command.replicas === state.replicas) return [];
      const { status } = command.cluster;
      if (command.replicas > state.replicas && status !== 'active') {
        throw violation(`cluster ${state.clusterId} is ${status}: it takes no new replicas`, 'replicas', `the cluster is ${status}: scaling down is allowed, scaling up is not`);
      }
      return [{ type: 'DeploymentScaled', data: { deploymentId, replicas: command.replicas, previousReplicas: state.replicas } }];
    }
    case 'UpdateDeployment':
      return update(command, state);
    case 'RollbackDeployment': {
      const target = rollbackTarget(state, command.toRevision);
      const { workloadRevision, spec, strategy } = target;
      const revision = latestRevision(state) + 1;
      return [
        {
          type: 'DeploymentRollbackRequested',
          data: { deploymentId, revision, toRevision: target.revision, workloadRevision, spec, strategy, reason: command.reason },
        },
      ];
    }
    case 'RestartDeployment':
      return [{ type: 'DeploymentRestartRequested', data: { deploymentId, restartedAt: command.at, reason: command.reason } }];
    case 'RescheduleDeployment': {
      const previousNodeSelector = state.nodeSelector ?? {};
      if (isDeepStrictEqual(previousNodeSelector, command.nodeSelector)) return [];
      return [{ type: 'DeploymentRescheduled', data: { deploymentId, nodeSelector: command.nodeSelector, previousNodeSelector, reason: command.reason } }];
    }
    case 'PauseDeployment':
      return state.paused ? [] : [{ type: 'DeploymentPaused', data: { deploymentId, reason: command.reason } }];
    case 'ResumeDeployment':
      return state.paused ? [{ type: 'DeploymentResumed', data: { deploymentId, reason: command.reason } }] : [];
    case 'DeleteDeployment':
      return [{ type: 'DeploymentDeleted', data: { deploymentId, reason: command.reason } }];

    // The reactor reports what it saw; a report about a revision that has since been replaced changes nothing.
    case 'RecordApplying':
      if (isStale(state, command.revision) || state.status === 'Applying') return [];
      return [{ type: 'DeploymentApplying', data: { deploymentId, revision: command.revision } }];
    case 'RecordApplied':
      if (isStale(state, command.revision) || state.status === 'Progressing') return [];
      return [{ type: 'DeploymentApplied', data: { deploymentId, revision: command.revision } }];
    case 'RecordRolloutProgress': {
      if (isStale(state, command.revision)) return [];
      const { revision, readyReplicas, updatedReplicas } = command;
      return [{ type: 'DeploymentRolloutProgressed', data: { deploymentId, revision, readyReplicas, updatedReplicas } }];
    }
    case 'RecordAvailable':
      if (isStale(state, command.revision) || state.status === 'Available') return [];
      return [{ type: 'DeploymentAvailable', data: { deploymentId, revision: command.revision, readyReplicas: command.readyReplicas } }];
    case 'RecordDegraded':
      if (isStale(state, command.revision) || (state.status === 'Degraded' && state.lastCause === command.cause)) return [];
      return [{ type: 'DeploymentDegraded', data: { deploymentId, revision: command.revision, cause: command.cause } }];
    case 'RecordRolloutFailed': {
      if (isStale(state, command.revision)) return [];
      const { revision, cause } = command;
      // A revision that already became available is not what failed: a scale, restart or reschedule of it could not
      // be carried out (pods that fit on no node). It runs what the cluster lets it run, degraded; a rollback would
      // not undo the change, and the deployment recovers once the cluster can place it or the change is undone.
      if (state.availableRevisions.includes(revision)) {
        if (state.status === 'Degraded' && state.lastCause === cause) return [];
        return [{ type: 'DeploymentDegraded', data: { deploymentId, revision, cause } }];
      }
      if (state.status === 'Failed' && state.lastCause === cause) return [];
      const measured = command.failedMeasurements && command.failedMeasurements.length > 0 ? { failedMeasurements: command.failedMeasurements } : {};
      return [{ type: 'DeploymentRolloutFailed', data: { deploymentId, revision, cause, ...measured } }];
    }
    case 'RecordRolledBack': {
      if (isStale(state, command.revision)) return [];
      const refusal = noAutomaticRollback(state);
      if (refusal) throw new InvalidTransition('deployment', deploymentId, state.status, 'roll back by itself', refusal);
      const target = rollbackTarget(state, command.toRevision);
      const { workloadRevision, spec, strategy } = target;
      const { revision, toRevision, cause } = command;
      const newRevision = latestRevision(state) + 1;
      return [
        {
          type: 'DeploymentRolledBack',
          data: { deploymentId, revision, toRevision, newRevision, workloadRevision, spec, strategy, cause },
        },
      ];
    }
    case 'RecordDrift': {
      // While a change is on its way (or a rollout is under way) the cluster is expected to differ: that is no drift.
      if (isStale(state, command.revision) || command.differences.length === 0) return [];
      if (state.status !== 'Available' && state.status !== 'Degraded') return [];
      const { revision, differences, observedVersion } = command;
      // An object deleted by hand is put back whatever the policy: adopting it would leave a deployment that runs nothing.
      const resolution = differences.some((difference) => difference.field === 'object') ? 'revert' : state.driftPolicy;
      return [{ type: 'DriftDetected', data: { deploymentId, revision, differences, resolution, observedVersion } }];
    }
  }
}

export const deploymentDecider: Decider<DeploymentCommand, DeploymentEvent, Deployment> = { initialState, evolve, decide };

// ---- helpers ------------------------------------------------------------------------------------------

/** Revision `n` of the deployment, if there is one. */
export function revisionAt(state: Deployment, n: number): DeploymentRevision | undefined {
  return state.status === 'absent' || !Object.hasOwn(state.revisions, n) ? undefined : state.revisions[n];
}

/** The newest revision that ever became available, leaving out `excluding` (usually the current one). */
export function lastAvailableRevision(state: Deployment, excluding?: number): DeploymentRevision | undefined {
  if (state.status === 'absent') return undefined;
  const candidates = state.availableRevisions.filter((n) => n !== excluding);
  return candidates.length === 0 ? undefined : revisionAt(state, Math.max(...candidates));
}

/**
 * Where a failed rollout of the current revision goes back to by itself: the newest other revision that became
 * available. None when the current revision is not what failed (it became available before), when it is itself an
 * automatic rollback (one that fails too is left Failed for someone to look at), or when nothing ever became available.
 */
export function automaticRollbackTarget(state: Deployment): DeploymentRevision | undefined {
  if (state.status === 'absent' || noAutomaticRollback(state)) return undefined;
  return lastAvailableRevision(state, state.currentRevision);
}

/** Why the current revision is never rolled back by itself, if it is not. */
function noAutomaticRollback(state: PlacedDeployment): string | undefined {
  const current = state.currentRevision;
  if (state.revisions[current]?.automaticRollback) return `revision ${current} is itself an automatic rollback: it is not rolled back again`;
  if (state.availableRevisions.includes(current)) return `revision ${current} became available before: going back would not undo what failed`;
  return undefined;
}

function create(command: Extract<DeploymentCommand, { type: 'CreateDeployment' }>): DeploymentEvent[] {
  const { deploymentId, workload, cluster, replicas, strategy, driftPolicy } = command;
  refuseUnworkable(strategy);
  const errors: FieldError[] = [];
  if (!workload) errors.push({ path: 'workloadId', message: 'no such workload' });
  else if (workload.status === 'retired') errors.push({ path: 'workloadId', message: 'retired: it takes no new deployments' });
  if (!cluster) errors.push({ path: 'clusterId', message: 'no such cluster' });
  else if (cluster.status === 'deregistered') errors.push({ path: 'clusterId', message: 'deregistered: no new placements' });
  else if (cluster.status === 'cordoned') errors.push({ path: 'clusterId', message: 'cordoned: no new placements' });
  const gpu = workload?.gpu;
  if (gpu && gpu.count > 0 && cluster && !cluster.gpuSkus.includes(gpu.sku)) {
    const offered = cluster.gpuSkus.length === 0 ? 'none' : cluster.gpuSkus.join(', ');
    errors.push({ path: 'clusterId', message: `the workload needs ${gpu.sku} GPUs; this cluster offers: ${offered}` });
  }
  if (errors.length > 0 || !workload || !cluster) {
    throw new RuleViolation(`cannot place the deployment: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
  }
  return [
    {
      type: 'DeploymentCreated',
      data: {
        deploymentId,
        workloadId: workload.id,
        clusterId: cluster.id,
        replicas,
        strategy,
        driftPolicy,
        revision: 1,
        workloadRevision: workload.specRevision,
        spec: workload.spec,
      },
    },
  ];
}

function update(command: Extract<DeploymentCommand, { type: 'UpdateDeployment' }>, state: PlacedDeployment): DeploymentEvent[] {
  const { deploymentId, workload } = command;
  if (command.strategy) refuseUnworkable(command.strategy);
  if (workload.status === 'retired') {
    throw violation(`workload ${state.workloadId} is retired: it takes no new revisions`, 'workloadId', 'retired: no new revisions');
  }
  const workloadRevision = command.workloadRevision ?? workload.specRevision;
  if (workloadRevision < 1 || workloadRevision > workload.specRevision) {
    throw violation(
      `workload ${state.workloadId} has no spec revision ${workloadRevision}`,
      'workloadRevision',
      `no such spec revision: the workload has revisions 1 to ${workload.specRevision}`,
    );
  }
  const current = revisionAt(state, state.currentRevision)!;
  const changes = changedFields(
    { workloadRevision: current.workloadRevision, strategy: state.strategy, driftPolicy: state.driftPolicy },
    { workloadRevision, strategy: command.strategy, driftPolicy: command.driftPolicy },
  );
  const events: DeploymentEvent[] = [];
  if (changes.workloadRevision !== undefined || changes.strategy !== undefined) {
    events.push({
      type: 'DeploymentUpdated',
      data: { deploymentId, revision: latestRevision(state) + 1, workloadRevision, spec: workload.spec, strategy: command.strategy ?? state.strategy },
    });
  }
  if (changes.driftPolicy !== undefined) {
    events.push({ type: 'DeploymentDriftPolicyChanged', data: { deploymentId, driftPolicy: changes.driftPolicy, previousDriftPolicy: state.driftPolicy } });
  }
  return events;
}

/** The revision to go back to: the one named, or else the newest other than the current that became available. */
function rollbackTarget(state: PlacedDeployment, toRevision: number | undefined): DeploymentRevision {
  if (toRevision === undefined) {
    const target = lastAvailableRevision(state, state.currentRevision);
    if (!target) {
      throw violation(`deployment ${state.id} has no earlier revision that became available`, 'toRevision', 'no earlier revision ever became available: name one');
    }
    return target;
  }
  const target = revisionAt(state, toRevision);
  if (!target) {
    throw violation(`deployment ${state.id} has no revision ${toRevision}`, 'toRevision', `no such revision: the deployment has revisions 1 to ${latestRevision(state)}`);
  }
  if (toRevision === state.currentRevision) {
    throw violation(`revision ${toRevision} of deployment ${state.id} is the current one`, 'toRevision', 'the current revision: name an earlier one');
  }
  return target;
}

/** Whether a report about `revision` is out of date; a revision that never existed is a mistake, not news. */
function isStale(state: PlacedDeployment, revision: number): boolean {
  if (!revisionAt(state, revision)) {
    throw violation(`deployment ${state.id} has no revision ${revision}`, 'revision', `no such revision: the current one is ${state.currentRevision}`);
  }
  return revision !== state.currentRevision;
}

function withRevision(state: PlacedDeployment, revision: DeploymentRevision, status: DeploymentStatus): PlacedDeployment {
  return {
    ...state,
    status,
    strategy: revision.strategy,
    currentRevision: revision.revision,
    revisions: { ...state.revisions, [revision.revision]: revision },
  };
}

function latestRevision(state: PlacedDeployment): number {
  return Math.max(...Object.keys(state.revisions).map(Number));
}

/** What the schema takes (as events recorded before have it) but no new revision may ask for. */
function refuseUnworkable(strategy: Strategy): void {
  if (strategy.type === 'blue_green' && strategy.previewReplicas === 0) {
    throw violation('a blue/green preview needs at least one pod', 'strategy.previewReplicas', 'at least 1 (or leave it out for as many as the deployment has)');
  }
}

function violation(message: string, path: string, fieldMessage: string): RuleViolation {
  return new RuleViolation(message, [{ path, message: fieldMessage }]);
}

/** `ScaleDeployment` → "scale", `RecordRolloutProgress` → "record rollout progress". */
function verb(command: DeploymentCommand): string {
  return command.type
    .replace(/Deployment$/, '')
    .replace(/(?<=[a-z])(?=[A-Z])/g, ' ')
    .toLowerCase();
}
