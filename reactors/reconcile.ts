// The cluster reactor's reconcile rules, without I/O: what a deployment asks the cluster to run, how far a rollout got
// in the cluster's own words, where an object drifted, and what an object the watch showed means for its deployment.
import { isDeepStrictEqual } from 'node:util';
import { automaticRollbackTarget, lastAvailableRevision, type DriftDifference, type DriftPolicy, type PlacedDeployment } from '../domain/deployment.js';
import { cpuMillicores, memoryBytes } from '../domain/quantity.js';
import type { WorkloadSpec } from '../domain/workload.js';
import { desiredTemplate, type Condition, type DesiredWorkload, type LiveWorkload, type ManagedChange, type RolloutStatus } from './cluster-driver.js';

/** The drift of an object that was deleted by hand. */
const ABSENT: DriftDifference[] = [{ field: 'object', expected: 'present', actual: 'absent' }];

/**
 * What an object the watch showed means for its deployment. Drift, a count changed by hand and a change of health
 * are what the event showed: the reactor reads the object again and acts on it as it is now (the events queued
 * behind this one may be older), through `driftOnCluster`, `countChangedByHand` and `healthChange`.
 */
export type Judgement =
  | { kind: 'ignore' }
  /**
   * The replica count of a paused or failed deployment changed by hand, answered at once. `asDrift` when the
   * deployment is settled (Available or Degraded): recorded as drift, put back or adopted by policy; otherwise only
   * put back.
   */
  | { kind: 'scaledByHand'; difference: DriftDifference; asDrift: boolean }
  /** A rollout the reactor follows took a step. */
  | { kind: 'followRollout'; step: RolloutStep }
  /** A settled deployment's object differs from the recorded revision, or is gone. */
  | { kind: 'drift'; differences: DriftDifference[] }
  /** A settled deployment lost pods, or has them back. */
  | { kind: 'health'; change: HealthChange };

/** How far a rollout got, once the controller has seen the generation it rolls out. */
export type RolloutStep =
  | { outcome: 'progressing'; readyReplicas: number; updatedReplicas: number }
  | { outcome: 'available'; readyReplicas: number }
  /** `rollbackTo` is the revision the deployment goes back to by itself, if it does (`automaticRollbackTarget`). */
  | { outcome: 'failed'; cause: string; readyReplicas: number; updatedReplicas: number; rollbackTo: number | undefined };

export type HealthChange = { to: 'Degraded'; cause: string } | { to: 'Available'; readyReplicas: number };

const IGNORE: Judgement = { kind: 'ignore' };

/**
 * What `change` means for the deployment in `state`, which runs on the watched cluster and asks for `desired`
 * (`desiredOf(state)`).
 */
export function judgeObservation(state: PlacedDeployment, desired: DesiredWorkload, change: ManagedChange): Judgement {
  const live = change.workload;
  const deleted = change.type === 'DELETED';
  // A canary's or a preview's object is the rollout reactor's: neither drift nor a rollout of the deployment's own object.
  if (state.status === 'Deleted' || live.role !== undefined) return IGNORE;
  // A paused deployment is followed only through a scale of it: Kubernetes scales a paused Deployment, so a count
  // changed by hand is put back (or adopted) at once, as for any deployment, whatever change waits for the resume.
  // The rest of its drift and its health wait for the resume, which applies everything that waited (a restart or a
  // reschedule asked for meanwhile would otherwise read as drift and be rolled out).
  if (state.paused && state.status !== 'Progressing') return deleted ? IGNORE : scaledByHand(state, desired, live);
  // Another revision on the cluster: an older one still visible, or a newer one is being applied right now.
  if (live.revision !== desired.revision && !deleted) return IGNORE;

  switch (state.status) {
    case 'Pending':
    case 'Applying':
    case 'RolledBack':
      // A change is on its way to the cluster, or the rollout is over and being undone: nothing to judge yet.
      return IGNORE;
    case 'Failed':
      // A failed rollout stays as it is until the next change (its automatic rollback refused, or none to go back
      // to), but not a count changed by hand: pods the ledger does not hold are put back (or adopted) at once.
      return deleted ? IGNORE : scaledByHand(state, desired, live);
    case 'Progressing': {
      const step = deleted ? undefined : rolloutStep(state, desired, live);
      return step ? { kind: 'followRollout', step } : IGNORE;
    }
    case 'Available':
    case 'Degraded': {
      const differences = driftOnCluster(desired, deleted ? undefined : live);
      if (differences.length > 0) return { kind: 'drift', differences };
      const change = healthChange(state, live);
      return change ? { kind: 'health', change } : IGNORE;
    }
  }
}

function scaledByHand(state: PlacedDeployment, desired: DesiredWorkload, live: LiveWorkload): Judgement {
  const difference = countChangedByHand(desired, live);
  if (!difference) return IGNORE;
  // A change waiting for the resume, or a failed rollout, has no settled count to record a drift of, or to adopt.
  return { kind: 'scaledByHand', difference, asDrift: state.status === 'Available' || state.status === 'Degraded' };
}

/** The replica count someone set by hand, whatever revision the object runs; none for a Job, which has no count. */
export function countChangedByHand(desired: DesiredWorkload, live: LiveWorkload): DriftDifference | undefined {
  if (live.replicas === undefined || live.replicas === desired.replicas) return undefined;
  return { field: 'replicas', expected: desired.replicas, actual: live.replicas };
}

/**
 * The step a rollout took, as `live` shows it; none until the controller has seen the object's generation, since
 * until then the status (a failed condition included) is about the spec before it: a rolled-back revision would
 * otherwise fail on the condition that made it roll back.
 */
export function rolloutStep(state: PlacedDeployment, desired: DesiredWorkload, live: LiveWorkload): RolloutStep | undefined {
  if (live.rollout.observedGeneration < live.generation) return undefined;
  const { readyReplicas, updatedReplicas } = live.rollout;
  const cause = rolloutFailure(live.rollout);
  if (cause) return { outcome: 'failed', cause, readyReplicas, updatedReplicas, rollbackTo: automaticRollbackTarget(state)?.revision };
  if (isComplete(live, desired.replicas)) return { outcome: 'available', readyReplicas };
  return { outcome: 'progressing', readyReplicas, updatedReplicas };
}

/**
 * After the rollout: an available deployment that loses pods is degraded, and available again once it has them
 * back. A Job has no health to follow, and an object of another revision says nothing about the current one.
 */
export function healthChange(state: PlacedDeployment, live: LiveWorkload): HealthChange | undefined {
  if (live.ref.kind === 'Job' || live.revision !== state.currentRevision) return undefined;
  const available = condition(live.rollout, 'Available');
  if (state.status === 'Available' && available?.status === 'False') {
    return { to: 'Degraded', cause: `${available.reason ?? 'Unavailable'}: ${available.message ?? 'fewer pods are ready than the deployment needs'}` };
  }
  if (state.status === 'Degraded' && isComplete(live, state.replicas)) return { to: 'Available', readyReplicas: live.rollout.readyReplicas };
  return undefined;
}

/**
 * The drift of the object as the cluster has it (`undefined`: it is gone). None while it runs another revision: a
 * newer one is being applied, and the rollout that follows judges it.
 */
export function driftOnCluster(desired: DesiredWorkload, live: LiveWorkload | undefined): DriftDifference[] {
  if (!live) return ABSENT;
  if (live.revision !== desired.revision) return [];
  return driftBetween(desired, live);
}

/** How drift is answered: put back by applying the recorded revision, or adopted as the deployment's own. */
export type DriftResolution = { resolution: 'revert' } | { resolution: 'adopt'; judgedAsScale: boolean };

/**
 * As the drift policy says, except that an object deleted by hand is put back whatever the policy: adopting it would
 * leave a deployment that runs nothing. Adopting a count changed by hand changes what the deployment holds, so it is
 * judged and admitted like a scale (and put back when refused).
 */
export function driftResolution(policy: DriftPolicy, differences: DriftDifference[], objectPresent: boolean): DriftResolution {
  if (policy !== 'adopt' || !objectPresent) return { resolution: 'revert' };
  return { resolution: 'adopt', judgedAsScale: differences.some((difference) => difference.field === 'replicas') };
}

/** Differences an adopted drift was recorded with, each keyed by its content. */
export type AdoptedDrift = ReadonlySet<string>;

export function adoptedDrift(differences: readonly DriftDifference[]): AdoptedDrift {
  return new Set(differences.map((difference) => JSON.stringify(difference)));
}

/**
 * Whether a drift under `adopt` is one already recorded: every difference the object shows now was among those
 * adopted. Adopting a count makes it the deployment's own, so the same edit seen again (the watch events queued
 * behind the first) shows fewer differences, never new ones: a count and an image changed together are one drift.
 */
export function adoptedAlready(adopted: AdoptedDrift | undefined, differences: readonly DriftDifference[]): boolean {
  return adopted !== undefined && differences.every((difference) => adopted.has(JSON.stringify(difference)));
}

/**
 * Whether the current revision is to be carried out as a canary or blue/green, next to the stable revision, by the
 * rollout reactor rather than rolled out over it: such a strategy, a revision that is not a rollback and never became
 * available, and an earlier revision that did (the first revision of a deployment just deploys, as Argo Rollouts does).
 */
export function progressiveRollout(state: PlacedDeployment): { stableRevision: number; strategy: 'canary' | 'blue_green' } | undefined {
  const current = state.revisions[state.currentRevision];
  if (!current || (current.strategy.type !== 'canary' && current.strategy.type !== 'blue_green') || current.rollbackOf !== undefined) return undefined;
  if (state.availableRevisions.includes(state.currentRevision)) return undefined;
  const stable = lastAvailableRevision(state, state.currentRevision);
  return stable ? { stableRevision: stable.revision, strategy: current.strategy.type } : undefined;
}

/**
 * What the deployment's current revision asks the cluster to run: the revision's spec, with what was adopted from the
 * cluster on that revision laid over it (so a replay, a resync or a restart applies the adopted image, not the old one).
 */
export function desiredOf(state: PlacedDeployment, progressDeadlineSeconds: number): DesiredWorkload {
  const current = state.revisions[state.currentRevision]!;
  const adopted = state.adoptedDrift?.revision === state.currentRevision ? state.adoptedDrift.differences : [];
  // Snapshotted from the workload when the revision was made, where it was validated.
  const { spec, nodeSelector } = withAdopted(current.spec as unknown as WorkloadSpec, state.nodeSelector, adopted);
  return {
    deploymentId: state.id,
    revision: state.currentRevision,
    spec,
    replicas: state.replicas,
    strategy: current.strategy,
    ...(state.restartedAt ? { restartedAt: state.restartedAt } : {}),
    ...(nodeSelector && Object.keys(nodeSelector).length > 0 ? { nodeSelector } : {}),
    progressDeadlineSeconds,
  };
}

/**
 * The pod template fields of `adopted` (as `driftBetween` names them) laid over a spec. The replica count is not
 * among them: adopting it changed the deployment's own count, which later scales change in turn.
 */
export function withAdopted(
  spec: WorkloadSpec,
  nodeSelector: Record<string, string> | undefined,
  adopted: readonly DriftDifference[],
): { spec: WorkloadSpec; nodeSelector: Record<string, string> | undefined } {
  let result = { spec, nodeSelector };
  for (const { field, actual } of adopted) {
    const resources = result.spec.resources;
    const strings = Array.isArray(actual) && actual.every((item) => typeof item === 'string') ? (actual as string[]) : undefined;
    const record = actual !== null && typeof actual === 'object' && !Array.isArray(actual) ? (actual as Record<string, string>) : undefined;
    if (field === 'image' && typeof actual === 'string') result = { ...result, spec: { ...result.spec, image: actual } };
    else if ((field === 'command' || field === 'args') && (strings || actual === null)) {
      const { [field]: _dropped, ...rest } = result.spec;
      result = { ...result, spec: strings ? { ...rest, [field]: strings } : rest };
    } else if (field === 'env' && record) result = { ...result, spec: { ...result.spec, env: record } };
    else if ((field === 'cpu' || field === 'memory') && typeof actual === 'string') {
      result = { ...result, spec: { ...result.spec, resources: { ...resources, [field]: actual } } };
    } else if (field === 'gpus' && typeof actual === 'number' && resources.gpu) {
      result = { ...result, spec: { ...result.spec, resources: { ...resources, gpu: { ...resources.gpu, count: actual } } } };
    } else if (field === 'nodeSelector' && record) result = { ...result, nodeSelector: record };
  }
  return result;
}

/** Why the rollout cannot succeed as it stands, in the cluster's words; undefined while it may still. */
export function rolloutFailure(rollout: RolloutStatus): string | undefined {
  const progressing = condition(rollout, 'Progressing');
  if (progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded') {
    return `ProgressDeadlineExceeded: ${progressing.message ?? 'the rollout made no progress within its deadline'}`;
  }
  const replicaFailure = condition(rollout, 'ReplicaFailure');
  if (replicaFailure?.status === 'True') {
    return `${replicaFailure.reason ?? 'ReplicaFailure'}: ${replicaFailure.message ?? 'pods could not be created'}`;
  }
  return undefined;
}

/** The rollout's condition of `type`, if the controller has set one. */
export function condition(rollout: RolloutStatus, type: string): Condition | undefined {
  return rollout.conditions.find((c) => c.type === type);
}

/** The controller has seen this generation and every replica runs it and is ready. */
export function isComplete(live: LiveWorkload, replicas: number): boolean {
  const { rollout } = live;
  return (
    rollout.observedGeneration >= live.generation &&
    rollout.updatedReplicas >= replicas &&
    rollout.readyReplicas >= replicas &&
    rollout.replicas <= Math.max(replicas, rollout.updatedReplicas)
  );
}

/** The fields where the cluster's object differs from the recorded revision; quantities compare by value. */
export function driftBetween(desired: DesiredWorkload, live: LiveWorkload): DriftDifference[] {
  const expected = desiredTemplate(desired);
  const actual = live.template;
  const differences: DriftDifference[] = [];
  const compare = (field: string, want: unknown, have: unknown, same = isDeepStrictEqual(want, have)) => {
    if (!same) differences.push({ field, expected: want ?? null, actual: have ?? null });
  };
  if (live.replicas !== undefined) compare('replicas', desired.replicas, live.replicas);
  compare('image', expected.image, actual.image);
  compare('command', expected.command, actual.command);
  compare('args', expected.args, actual.args);
  compare('env', expected.env, actual.env);
  compare('cpu', expected.cpu, actual.cpu, cpuMillicores(expected.cpu) === cpuMillicores(actual.cpu));
  compare('memory', expected.memory, actual.memory, memoryBytes(expected.memory) === memoryBytes(actual.memory));
  compare('gpus', expected.gpus, actual.gpus);
  compare('nodeSelector', expected.nodeSelector, actual.nodeSelector);
  return differences;
}
