// Drives one cluster: applies each deployment change, follows the rollout through a watch, rolls a failed rollout
// back to the last revision that became available, and puts right (or adopts) what others change by hand.
import type { Logger } from 'pino';
import { clusters, deployments } from '../commands/aggregates.js';
import type { CommandContext, CommandHandler, Gate } from '../commands/command-handler.js';
import { rollouts } from '../commands/deployment-commands.js';
import { rolloutIdOf } from '../domain/rollout.js';
import { PolicyViolation } from '../domain/decider.js';
import type { ClusterCommand } from '../domain/cluster.js';
import {
  deploymentEvents,
  type Deployment,
  type DeploymentCommand,
  type DeploymentEvent,
  type DriftDifference,
  type PlacedDeployment,
} from '../domain/deployment.js';
import type { RecordedEvent } from '../domain/event-store.js';
import {
  CANARY_SUFFIX,
  ClusterError,
  PREVIEW_SUFFIX,
  type ClusterDriver,
  type ConnectionReport,
  type DesiredWorkload,
  type LiveWorkload,
  type ManagedChange,
  type ManagedWatch,
  type ObjectRef,
} from './cluster-driver.js';
import { reactionTo, reactionToObservation, reportBy } from './reaction-context.js';
import { retrying } from '../adapters/retry.js';
import { everyEventOf, type Reactor } from './reactor-runtime.js';
import {
  adoptedAlready,
  adoptedDrift,
  progressiveRollout,
  countChangedByHand,
  desiredOf,
  driftOnCluster,
  driftResolution,
  healthChange,
  judgeObservation,
  type RolloutStep,
} from './reconcile.js';

/** Deployment events that change what should run; each is answered by applying the deployment's current state. */
export const DEPLOYMENT_CHANGES = [
  'DeploymentCreated',
  'DeploymentScaled',
  'DeploymentUpdated',
  'DeploymentRollbackRequested',
  'DeploymentRestartRequested',
  'DeploymentRescheduled',
  'DeploymentResumed',
  'DeploymentDeleted',
  'DeploymentRolledBack',
] as const;
const CHANGES: ReadonlySet<string> = new Set(DEPLOYMENT_CHANGES);

/** Judges what a cluster did on its own and admits it to the ledger (`DeploymentCommands.judgedObservation`). */
export type ObservedChangeGate = (
  action: 'rollback' | 'scale',
  deploymentId: string,
  context: CommandContext,
) => Gate<DeploymentCommand, DeploymentEvent, Deployment>;

export interface ClusterReactorOptions {
  logger: Logger;
  /**
   * How an automatic rollback and an adopted scale by hand are judged and admitted to the ledger. Without it they
   * are recorded unjudged (tests of the reactor alone); the app always passes it.
   */
  judged?: ObservedChangeGate;
  /**
   * How a completed rollout gives back to the ledger the surge pods it was admitted with
   * (`DeploymentCommands.settledObservation`). Without it the ledger keeps them until the next change.
   */
  settled?: (deploymentId: string, context: CommandContext) => Gate<DeploymentCommand, DeploymentEvent, Deployment>;
  /** How long a rollout may make no progress before the cluster reports it failed (progressDeadlineSeconds). */
  progressDeadlineSeconds: number;
  /** Attempts at recording what the watch showed before giving up on that observation (the next one retries). */
  observeAttempts?: number;
  /**
   * How often every deployment on the cluster is compared with what the cluster runs, besides once on start: what a
   * watch cannot show (a cluster that lost its objects while nobody watched, an event missed) is found this way.
   * 0 resyncs on start only.
   */
  resyncIntervalMs?: number;
}

/** Resync every five minutes unless told otherwise, as Kubernetes controllers relist. */
export const DEFAULT_RESYNC_INTERVAL_MS = 300_000;

/** Every cluster reactor is named `cluster-<clusterId>`: one per cluster. */
const NAME_PREFIX = 'cluster-';

/** Whether a cluster reactor appended this event: what a cluster did on its own, such as undoing a failed rollout. */
export function isClusterReaction(event: RecordedEvent): boolean {
  return event.metadata.source?.startsWith(`reactor:${NAME_PREFIX}`) ?? false;
}

export class ClusterReactor implements Reactor {
  readonly name: string;
  readonly eventTypes = DEPLOYMENT_CHANGES;
  private watch: ManagedWatch | undefined;
  /** Observations are handled one at a time per deployment, in the order the watch delivered them. */
  private readonly queues = new Map<string, Promise<void>>();
  /** Every deployment ever placed on this cluster and not yet seen deleted: what a resync goes through. */
  private readonly placed = new Set<string>();
  private placedRead = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Whether the cluster was last reached, as logged. */
  private connectionState: 'connected' | 'unreachable' | undefined;
  private connectionReports: Promise<void> = Promise.resolve();
  private resyncing: Promise<void> | undefined;

  constructor(
    readonly clusterId: string,
    private readonly driver: ClusterDriver,
    private readonly handler: CommandHandler,
    private readonly options: ClusterReactorOptions,
  ) {
    this.name = `${NAME_PREFIX}${clusterId}`;
  }

  async start(): Promise<void> {
    // The watch lists every managed object first: rollouts that were in flight when a previous instance stopped
    // are picked up from there. What it cannot list (objects the cluster lost meanwhile) the first resync finds.
    // Read from the log once per instance: after that, the changes it handles keep the set (a restart by the runtime
    // hands it every change since its checkpoint again).
    if (!this.placedRead) {
      for await (const event of everyEventOf(this.handler.store, ['DeploymentCreated'])) {
        const created = deploymentEventOf(event);
        if (created.type === 'DeploymentCreated' && created.data.clusterId === this.clusterId) this.placed.add(created.data.deploymentId);
      }
      this.placedRead = true;
    }
    try {
      this.watch = await this.driver.watch(
        (change) => this.enqueue(change),
        (report) => void this.connection(report),
      );
    } catch (error) {
      // The runtime starts this again with backoff; the cluster says why it waits meanwhile.
      if (error instanceof ClusterError) await this.connection({ connected: false, cause: error.message });
      throw error;
    }
    await this.connection({ connected: true });
    this.resync();
    const every = this.options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
    if (every > 0) this.resyncTimer = setInterval(() => this.resync(), every).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    await this.watch?.stop();
    this.watch = undefined;
    await this.resyncing;
    await Promise.allSettled([...this.queues.values()]);
  }

  /**
   * Compares every deployment on the cluster with what the cluster runs, each in turn with its watch events. One
   * resync at a time: a slow cluster skips the next rather than piling them up. Resolves once every deployment has
   * been looked at (for tests and for stop).
   */
  resync(): Promise<void> {
    if (this.resyncing || !this.watch) return this.resyncing ?? Promise.resolve();
    const ids = [...this.placed];
    const looked = ids.map(
      (id) =>
        new Promise<void>((done) =>
          this.after(id, () =>
            this.resyncOne(id)
              .catch((error: unknown) => this.options.logger.warn({ err: error, reactor: this.name, deploymentId: id }, 'could not compare the deployment with the cluster; the next resync tries again'))
              .finally(done),
          ),
        ),
    );
    this.resyncing = Promise.all(looked).then(() => {
      this.resyncing = undefined;
    });
    return this.resyncing;
  }

  /**
   * Resolves once nothing is queued: every observation handed over so far, and every look after a change, has been
   * judged and carried out (what the watch shows meanwhile included). Tests wait on this rather than on time.
   */
  async idle(): Promise<void> {
    while (this.queues.size > 0) await Promise.allSettled([...this.queues.values()]);
  }

  /** One deployment as recorded against the object on the cluster: what is missing is put back, the rest is observed. */
  private async resyncOne(deploymentId: string): Promise<void> {
    if (!this.watch) return;
    const { state, revision } = await this.handler.loadState(deployments, deploymentId);
    if (state.status === 'absent' || state.clusterId !== this.clusterId) {
      this.placed.delete(deploymentId);
      return;
    }
    const desired = desiredOf(state, this.options.progressDeadlineSeconds);
    const ref = this.driver.refFor(desired);
    if (state.status === 'Deleted') {
      // A delete that did not reach the cluster (it was unreachable, or lost its objects and got them back) is done now.
      await this.deleteOwn(deploymentId, ref);
      await this.deleteRolloutSides(deploymentId, desired);
      this.placed.delete(deploymentId);
      return;
    }
    // A change on its way is the change's to apply; a paused deployment waits for its resume; a canary is the
    // rollout reactor's until its rollout completes.
    if (state.paused || state.status === 'Pending' || state.status === 'Applying' || (await this.rolloutOwns(state))) return;
    const live = await this.driver.read(ref);
    if (live) {
      await this.observeWithRetries({ type: 'MODIFIED', workload: live });
      return;
    }
    if (state.status === 'Available' || state.status === 'Degraded') {
      // Named after the deployment's stream as it stands: the object found missing again later is another drift.
      await this.drifted(state, desired, { ref, resourceVersion: `absent@${revision}` });
      return;
    }
    // A rollout being followed, or one that ended in failure, whose object is gone: apply it again for the watch to follow.
    this.options.logger.warn({ reactor: this.name, deploymentId, revision: desired.revision, status: state.status }, 'the cluster has no object for the deployment; applying it again');
    await this.driver.apply(desired);
  }

  /**
   * Deletes the object at `ref` if it is this deployment's. Objects are named after the workload, so a later deployment
   * of the same workload on this cluster (a plan's move back, a delete and a create) takes the same name: a delete
   * handled again after a restart, or a resync of the deleted deployment, must leave that one's object alone.
   */
  private async deleteOwn(deploymentId: string, ref: ObjectRef): Promise<void> {
    const live = await this.driver.read(ref);
    // An object without the label (written before it was set) is taken as the deleted deployment's, as before.
    if (live && (live.deploymentId === deploymentId || live.deploymentId === '')) await this.driver.delete(ref);
  }

  /** A deleted deployment's rollout objects: a canary's or a preview's object, and the Services rollouts made. */
  private async deleteRolloutSides(deploymentId: string, desired: DesiredWorkload): Promise<void> {
    await this.deleteOwn(deploymentId, this.driver.refFor({ ...desired, role: 'canary' }));
    await this.deleteOwn(deploymentId, this.driver.refFor({ ...desired, role: 'preview' }));
    const traffic = this.driver.traffic;
    if (!traffic) return;
    for (const name of [desired.spec.name, `${desired.spec.name}${PREVIEW_SUFFIX}`, `${desired.spec.name}${CANARY_SUFFIX}`]) {
      const ref = { namespace: desired.spec.namespace, name };
      const live = await traffic.readService(ref);
      if (live?.deploymentId === deploymentId) await traffic.deleteService(ref);
    }
  }

  /** Changes to different deployments do not depend on each other: they are applied side by side. */
  keyOf(event: RecordedEvent): string {
    return deploymentEventOf(event).data.deploymentId;
  }

  async handle(event: RecordedEvent): Promise<void> {
    const { deploymentId } = deploymentEventOf(event).data;
    const loaded = await this.handler.loadState(deployments, deploymentId);
    const { state } = loaded;
    if (state.status === 'absent' || state.clusterId !== this.clusterId) return;
    if (state.status !== 'Deleted') this.placed.add(deploymentId);
    // Each change applies the whole current state, so only the latest one needs handling; an earlier one
    // (a replay, or a backlog) would only apply the same thing again.
    const latest = await this.handler.latestOf(deployments, deploymentId, CHANGES, loaded.revision);
    if (latest && latest.id !== event.id) return;

    const desired = desiredOf(state, this.options.progressDeadlineSeconds);
    const ref = this.driver.refFor(desired);
    if (state.status === 'Deleted') {
      await this.deleteOwn(deploymentId, ref);
      await this.deleteRolloutSides(deploymentId, desired);
      return;
    }
    // A canary revision is the rollout reactor's until its rollout completes: rolled out here it would replace the
    // stable side at once.
    if (await this.rolloutOwns(state)) return;
    if (state.paused) {
      // Kubernetes pauses rollouts, not scaling: a paused deployment takes a new replica count at the revision it
      // runs, while a new revision, a restart or a reschedule waits until it is resumed.
      if (latest?.type === 'DeploymentScaled') await this.scalePaused(desired, event);
      return;
    }

    const { revision } = desired;
    await this.record({ type: 'RecordApplying', deploymentId, revision }, reactionTo(this.name, event, 'applying'));
    try {
      await this.driver.apply(desired);
    } catch (error) {
      if (!(error instanceof ClusterError) || error.transient) throw error;
      await this.record(
        { type: 'RecordRolloutFailed', deploymentId, revision, cause: `the cluster refused revision ${revision}: ${error.message}` },
        reactionTo(this.name, event, 'refused'),
      );
      return;
    }
    await this.record({ type: 'RecordApplied', deploymentId, revision }, reactionTo(this.name, event, 'applied'));
    this.lookAgain(deploymentId, ref);
  }

  /** Whether the current revision is a canary or blue/green whose rollout has not completed (or has not started yet). */
  private async rolloutOwns(state: PlacedDeployment): Promise<boolean> {
    if (!progressiveRollout(state)) return false;
    const { state: rollout } = await this.handler.loadState(rollouts, rolloutIdOf(state.id, state.currentRevision));
    return rollout.status !== 'Completed';
  }

  /** A scale of a paused deployment: only the replica count of the revision on the cluster changes. */
  private async scalePaused(desired: DesiredWorkload, event: RecordedEvent): Promise<void> {
    const { deploymentId, revision, replicas } = desired;
    const ref = this.driver.refFor(desired);
    const live = await this.driver.read(ref);
    // Nothing on the cluster yet: the resume applies all. Otherwise the count applies to whatever revision runs, a new
    // revision waiting for the resume included, as the ledger holds the deployment (`heldFootprint`): told count,
    // running revision.
    if (!live) return;
    // A revision that waits for the resume is not being rolled out: only the count of the one that runs changes, and
    // the deployment stays Pending on the waiting one (recording it Applying would have it followed as a rollout).
    const waiting = live.revision !== revision;
    if (!waiting) await this.record({ type: 'RecordApplying', deploymentId, revision }, reactionTo(this.name, event, 'applying'));
    const result = await this.driver.scale(ref, replicas);
    if (!result.scaled) this.options.logger.warn({ deploymentId, replicas, detail: result.detail }, 'the paused deployment was not scaled');
    if (waiting) return;
    await this.record({ type: 'RecordApplied', deploymentId, revision }, reactionTo(this.name, event, 'applied'));
    this.lookAgain(deploymentId, ref);
  }

  /**
   * Watch events that came while a change was being recorded were set aside: look once more, in turn with the
   * watch's, while this reactor goes on to the next change.
   */
  private lookAgain(deploymentId: string, ref: ObjectRef): void {
    this.after(deploymentId, async () => {
      // Read until it answers: an apply that changed nothing on the cluster (one applied again after a restart, or
      // after its reply was lost) is followed by no watch event, and this read is all that moves it on before the
      // next resync.
      const live = await retrying(() => this.driver.read(ref), {
        backoff: { baseMs: 200, maxMs: 5000 },
        attempts: this.options.observeAttempts ?? 5,
        retryable: () => this.watch !== undefined,
      }).catch((error: unknown) => {
        this.options.logger.warn({ err: error, reactor: this.name, deploymentId }, 'could not read the object back; the watch or the next resync will report it');
      });
      if (live) await this.observeWithRetries({ type: 'MODIFIED', workload: live });
    });
  }

  private enqueue(change: ManagedChange): void {
    this.after(change.workload.deploymentId, () => this.observeWithRetries(change));
  }

  /** Runs `work` after everything already queued for the deployment. */
  private after(id: string, work: () => Promise<void>): void {
    const previous = this.queues.get(id) ?? Promise.resolve();
    const next = previous.then(work);
    this.queues.set(id, next);
    void next.finally(() => {
      if (this.queues.get(id) === next) this.queues.delete(id);
    });
  }

  /** Records what the watch showed, trying again with backoff while the reactor runs; what still fails is logged. */
  private async observeWithRetries(change: ManagedChange): Promise<void> {
    try {
      await retrying(() => this.observe(change), {
        backoff: { baseMs: 200, maxMs: 5000 },
        attempts: this.options.observeAttempts ?? 5,
        retryable: () => this.watch !== undefined,
      });
    } catch (error) {
      const { deploymentId, resourceVersion } = change.workload;
      this.options.logger.error({ err: error, reactor: this.name, deploymentId, resourceVersion }, 'could not record what the cluster showed');
    }
  }

  /** Judges what the watch showed (`judgeObservation`) and carries the judgement out on the cluster and the ledger. */
  private async observe(change: ManagedChange): Promise<void> {
    const seen = change.workload;
    const { state, revision } = await this.handler.loadState(deployments, seen.deploymentId);
    if (state.status === 'absent' || state.clusterId !== this.clusterId) return;
    const desired = desiredOf(state, this.options.progressDeadlineSeconds);
    const judgement = judgeObservation(state, desired, change);
    switch (judgement.kind) {
      case 'ignore':
        return;
      case 'scaledByHand':
        await this.scaledByHand(state, desired, seen, judgement.asDrift);
        return;
      case 'followRollout': {
        const rollout = await this.handler.latestOf(deployments, state.id, CHANGES, revision);
        if (!rollout) throw new Error(`deployment ${state.id} is progressing but its stream holds no change that started it`);
        await this.followRollout(state, desired, judgement.step, rollout);
        return;
      }
      case 'drift':
        await this.drifted(state, desired, seen);
        return;
      case 'health':
        await this.followHealth(state, seen);
        return;
    }
  }

  /**
   * A rollout in progress, started by the change `rollout`, took `step`: record how far it got, that it became
   * available, or that it failed (and roll back).
   */
  private async followRollout(state: PlacedDeployment, desired: DesiredWorkload, step: RolloutStep, rollout: RecordedEvent): Promise<void> {
    const { id: deploymentId } = state;
    const { revision } = desired;
    // A scale or a restart rolls out again at the same revision: the change that started the rollout tells one
    // rollout's outcomes from another's, so the ids they are recorded under do not collide.
    const key = `${deploymentId}/${revision}/${rollout.id}`;
    const observed = (name: string) => reactionToObservation(this.name, `${key}/${name}`, rollout.metadata.correlationId, rollout.metadata.traceparent);
    if (step.outcome === 'available') {
      await this.record({ type: 'RecordAvailable', deploymentId, revision, readyReplicas: step.readyReplicas }, observed('available'), 'settled');
      // What was changed by hand while the rollout ran is judged now, on the object as it is: no further watch event
      // need come to show it.
      this.lookAgain(deploymentId, this.driver.refFor(desired));
      return;
    }
    // How far it got is recorded with a failure too: the replicas that run are shown, not left unknown.
    const { readyReplicas, updatedReplicas } = step;
    await this.record(
      { type: 'RecordRolloutProgress', deploymentId, revision, readyReplicas, updatedReplicas },
      observed(`progress/${readyReplicas}/${updatedReplicas}`),
    );
    if (step.outcome === 'progressing') return;

    const { cause, rollbackTo } = step;
    // A revision that became available before is recorded Degraded, not Failed: a scale it cannot place is no
    // reason to go back. An automatic rollback that fails too stays Failed: going back again would only loop.
    await this.record({ type: 'RecordRolloutFailed', deploymentId, revision, cause }, observed('failed'));
    if (rollbackTo === undefined) {
      this.options.logger.warn({ deploymentId, revision, cause }, 'rollout did not complete and is not rolled back automatically; left as it is');
      // Left as it is, but not with a count changed by hand while it ran: judged now, as above.
      this.lookAgain(deploymentId, this.driver.refFor(desired));
      return;
    }
    try {
      await this.record(
        { type: 'RecordRolledBack', deploymentId, revision, toRevision: rollbackTo, cause },
        observed('rolled-back'),
        'rollback',
      );
    } catch (error) {
      if (!(error instanceof PolicyViolation)) throw error;
      // Going back to a larger footprint, or inside a freeze, is a change like any other: refused, the deployment
      // stays Failed with its cause, and the refusal is recorded on its stream.
      this.options.logger.error({ deploymentId, revision, toRevision: rollbackTo, err: error.message }, 'automatic rollback refused by policy; the deployment stays Failed');
    }
  }

  /**
   * A settled deployment whose health the watch showed changing. A watch event can be older than what the deployment
   * was last judged on (the read after an apply sees the object as it is now while the events of the rollout that
   * led there are still queued), so the change is judged again on the object as it is now: a rollout's early steps
   * are not mistaken for pods lost after it.
   */
  private async followHealth(state: PlacedDeployment, seen: LiveWorkload): Promise<void> {
    const live = await this.driver.read(seen.ref);
    const change = live && healthChange(state, live);
    if (!live || !change) return;
    const { id: deploymentId, currentRevision: revision } = state;
    if (change.to === 'Degraded') {
      await this.record(
        { type: 'RecordDegraded', deploymentId, revision, cause: change.cause },
        reactionToObservation(this.name, `${deploymentId}/degraded/${live.resourceVersion}`),
      );
    } else {
      await this.record(
        { type: 'RecordAvailable', deploymentId, revision, readyReplicas: change.readyReplicas },
        reactionToObservation(this.name, `${deploymentId}/recovered/${live.resourceVersion}`),
      );
    }
  }

  /**
   * Someone changed the object by hand: record it, then put the recorded revision back or accept the change. `seen`
   * is what showed the drift: the object's reference and the version it was seen at, which names the drift when the
   * object is gone by the time it is read.
   */
  private async drifted(state: PlacedDeployment, desired: DesiredWorkload, seen: Pick<LiveWorkload, 'ref' | 'resourceVersion'>): Promise<void> {
    // The watch events queued behind the one that showed the drift still show it after it has been put right:
    // judged on the object as it is now, one change by hand is recorded, and reverted, once.
    const live = await this.driver.read(seen.ref);
    const differences = driftOnCluster(desired, live);
    if (differences.length === 0) return;
    const observedVersion = live?.resourceVersion ?? seen.resourceVersion;
    const { id: deploymentId, currentRevision: revision } = state;
    const resolved = driftResolution(state.driftPolicy, differences, live !== undefined);
    // What was adopted is in the desired spec, so it shows no difference; this catches a field the spec cannot carry
    // as the cluster shows it (a node selector without the GPU label), recorded once from the log rather than again.
    const adoptedBefore = state.adoptedDrift?.revision === revision ? adoptedDrift(state.adoptedDrift.differences) : undefined;
    if (resolved.resolution === 'adopt' && adoptedAlready(adoptedBefore, differences)) return;
    try {
      await this.record(
        { type: 'RecordDrift', deploymentId, revision, differences, observedVersion },
        reactionToObservation(this.name, `${deploymentId}/drift/${observedVersion}`),
        resolved.resolution === 'adopt' && resolved.judgedAsScale ? 'scale' : undefined,
      );
    } catch (error) {
      if (!(error instanceof PolicyViolation)) throw error;
      // An adopted count is judged and admitted like a scale: refused, the change is put back instead.
      this.options.logger.warn({ deploymentId, revision, differences, err: error.message }, 'a scale by hand may not be adopted under the policies; put back');
      await this.driver.apply(desired);
      return;
    }
    if (resolved.resolution === 'revert') await this.driver.apply(desired);
  }

  /**
   * A paused or failed deployment whose replica count someone changed by hand: only the count is put back, or
   * adopted, whatever revision the object runs (a paused one may still run the revision before a change that waits).
   * `asDrift`: the deployment is settled, and the count is recorded as drift, adopted or put back by its policy.
   */
  private async scaledByHand(state: PlacedDeployment, desired: DesiredWorkload, seen: LiveWorkload, asDrift: boolean): Promise<void> {
    // Judged on the object as it is now, as any drift is: the events queued behind this one still show the hand's count.
    const live = await this.driver.read(seen.ref);
    const difference = live && countChangedByHand(desired, live);
    if (!live || !difference) return;
    const { id: deploymentId } = state;
    const differences: DriftDifference[] = [difference];
    if (!asDrift) {
      this.options.logger.warn({ deploymentId, status: state.status, differences }, 'a count changed by hand while the deployment is not settled; put back');
      await this.driver.scale(live.ref, desired.replicas);
      return;
    }
    let adopted = driftResolution(state.driftPolicy, differences, true).resolution === 'adopt';
    try {
      await this.record(
        { type: 'RecordDrift', deploymentId, revision: desired.revision, differences, observedVersion: live.resourceVersion },
        reactionToObservation(this.name, `${deploymentId}/drift/${live.resourceVersion}`),
        adopted ? 'scale' : undefined,
      );
    } catch (error) {
      if (!(error instanceof PolicyViolation)) throw error;
      this.options.logger.warn({ deploymentId, differences, err: error.message }, 'a scale by hand may not be adopted under the policies; put back');
      adopted = false;
    }
    if (!adopted) await this.driver.scale(live.ref, desired.replicas);
  }

  /**
   * Records on the cluster whether it can be reached, when that changes (the decider drops what is no change), and
   * says so in the log once. Recording is best effort: a failure to record is logged, and the next change retries.
   */
  private connection(report: ConnectionReport): Promise<void> {
    // In the order the watch told them: a loss and a recovery close together end as the recovery.
    this.connectionReports = this.connectionReports.then(() => this.recordConnection(report));
    return this.connectionReports;
  }

  private async recordConnection(report: ConnectionReport): Promise<void> {
    const { clusterId } = this;
    const state = report.connected ? 'connected' : 'unreachable';
    if (state !== this.connectionState) {
      if (report.connected) this.options.logger.info({ reactor: this.name, clusterId }, 'cluster reached');
      else this.options.logger.warn({ reactor: this.name, clusterId, cause: report.cause }, 'cluster unreachable; trying again with backoff');
    }
    this.connectionState = state;
    const command: ClusterCommand = report.connected
      ? { type: 'RecordClusterConnected', clusterId }
      : { type: 'RecordClusterUnreachable', clusterId, cause: report.cause };
    await this.handler.execute(clusters, clusterId, command, reportBy(this.name)).catch((error: unknown) => {
      this.options.logger.warn({ err: error, reactor: this.name, clusterId, state }, 'could not record whether the cluster is reachable');
    });
  }

  /**
   * Records what was observed: with `rollback` or `scale`, as a change policy judges and the ledger admits; with
   * `settled`, as a rollout that gives its surge pods back to the ledger.
   */
  private async record(command: DeploymentCommand, context: CommandContext, as?: 'rollback' | 'scale' | 'settled'): Promise<void> {
    const gate =
      as === 'settled' ? this.options.settled?.(command.deploymentId, context) : as ? this.options.judged?.(as, command.deploymentId, context) : undefined;
    await this.handler.execute(deployments, command.deploymentId, command, context, gate);
  }
}

/** A deployment event as the domain defines it now: parsed, and upcast from the version it was stored at. */
export function deploymentEventOf(event: RecordedEvent): DeploymentEvent {
  return deploymentEvents.parse(event.type, event.schemaVersion, event.data);
}
