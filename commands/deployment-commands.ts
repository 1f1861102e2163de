// Deployment commands from people: create, scale, update, roll back, restart, pause, resume, delete. Facts
// about the workload and cluster are read fresh on every attempt and handed to the decider on the command;
// every change that moves the fleet is judged by policy and recorded with its decision.
import { fold, NotFound, RuleViolation } from '../domain/decider.js';
import {
  deploymentDecider,
  type Deployment,
  type DeploymentBody,
  type DeploymentCommand,
  type DeploymentEvent,
  type DeploymentPatchBody,
  type PlacedDeployment,
} from '../domain/deployment.js';
import type { ActionKind, Change, Footprint } from '../domain/policy.js';
import { NoRolloutInProgress, rolloutDecider, rolloutIdOf, rolloutStreamEvents, type Rollout, type RolloutCommand, type RolloutEvent } from '../domain/rollout.js';
import type { Placement } from '../domain/ledger.js';
import { sameFootprint } from '../domain/ledger-audit.js';
import { deployments } from './aggregates.js';
import type { Clock } from './clock.js';
import type { Aggregate, CommandContext, CommandHandler, Gate, WriteResult } from './command-handler.js';
import { deploymentChange, heldFootprint, specOf } from './deployment-change.js';
import { FleetFacts, type WorkloadWithRevisions } from './fleet-facts.js';
import type { PolicyEngine } from './policy-engine.js';
import { UniqueNames, type ClaimRequest } from './unique-names.js';
import { gpuRequest } from '../domain/workload.js';

/** The canary or blue/green rollout of one revision of a deployment, with its analysis runs, in stream `rollout-<deploymentId>.<revision>`. */
export const rollouts: Aggregate<RolloutCommand, RolloutEvent, Rollout> = {
  category: 'rollout',
  decider: rolloutDecider,
  events: rolloutStreamEvents,
  snapshotVersion: 1,
};

export class DeploymentCommands {
  private readonly facts: FleetFacts;
  private readonly names: UniqueNames;

  constructor(
    private readonly handler: CommandHandler,
    private readonly clock: Clock,
    private readonly policy: PolicyEngine,
  ) {
    this.facts = new FleetFacts(handler);
    this.names = new UniqueNames(handler, clock);
  }

  /**
   * One deployment of a workload per cluster: a second would write the same Kubernetes object. It runs the workload's
   * latest spec revision, or `workloadRevision` (a plan's move runs what the deployment it moves runs).
   */
  create(deploymentId: string, body: DeploymentBody, context: CommandContext, workloadRevision?: number): Promise<WriteResult> {
    const { workloadId, clusterId } = body;
    const placement: ClaimRequest = {
      key: `deployment:${workloadId}@${clusterId}`,
      ownerId: deploymentId,
      field: 'workloadId',
      value: workloadId,
      what: `a deployment of workload ${workloadId} on cluster ${clusterId}`,
      holder: async (id) => {
        const { state } = await this.handler.load(deployments, id);
        return state.status === 'absent' ? 'absent' : state.status === 'Deleted' ? 'gone' : 'live';
      },
    };
    return this.handler.execute(
      deployments,
      deploymentId,
      async () => ({
        type: 'CreateDeployment' as const,
        deploymentId,
        workload: atRevision(await this.facts.workload(body.workloadId), workloadRevision),
        cluster: await this.facts.cluster(body.clusterId),
        replicas: body.replicas,
        strategy: body.strategy,
        driftPolicy: body.driftPolicy,
      }),
      context,
      this.names.gate(placement, context, this.judged('create', deploymentId, context)),
    );
  }

  scale(deploymentId: string, replicas: number, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      async (state) => ({
        type: 'ScaleDeployment' as const,
        deploymentId,
        replicas,
        cluster: { status: (await this.facts.cluster(placed(state, deploymentId).clusterId))?.status ?? 'deregistered' },
      }),
      context,
      this.judged('scale', deploymentId, context),
    );
  }

  update(deploymentId: string, patch: DeploymentPatchBody, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      async (state) => {
        const workloadId = placed(state, deploymentId).workloadId;
        const workload = await this.facts.workload(workloadId);
        if (!workload) throw new NotFound('workload', workloadId);
        const target = patch.workloadRevision ?? workload.specRevision;
        return {
          type: 'UpdateDeployment' as const,
          deploymentId,
          workload: { ...workload, spec: workload.revisions[target] ?? workload.spec },
          workloadRevision: patch.workloadRevision,
          strategy: patch.strategy,
          driftPolicy: patch.driftPolicy,
        };
      },
      context,
      this.judged('update', deploymentId, context),
    );
  }

  rollback(deploymentId: string, toRevision: number | undefined, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      { type: 'RollbackDeployment', deploymentId, toRevision, reason },
      context,
      this.judged('rollback', deploymentId, context),
    );
  }

  restart(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    const at = this.clock.now().toISOString();
    return this.handler.execute(
      deployments,
      deploymentId,
      { type: 'RestartDeployment', deploymentId, at, reason },
      context,
      this.judged('restart', deploymentId, context),
    );
  }

  /** Moves the deployment's pods to the nodes of its cluster that carry these labels. */
  reschedule(deploymentId: string, nodeSelector: Record<string, string>, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      { type: 'RescheduleDeployment', deploymentId, nodeSelector, reason },
      context,
      this.judged('reschedule', deploymentId, context),
    );
  }

  pause(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(deployments, deploymentId, { type: 'PauseDeployment', deploymentId, reason }, context);
  }

  /** A resume rolls out what the deployment was told while paused: judged like the change it makes. */
  resume(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      { type: 'ResumeDeployment', deploymentId, reason },
      context,
      this.judged('resume', deploymentId, context),
    );
  }

  delete(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      { type: 'DeleteDeployment', deploymentId, reason },
      context,
      this.judged('delete', deploymentId, context),
    );
  }

  /** Ends what the canary or blue/green rollout of the current revision waits on, or (`full`) skips every step left. */
  promote(deploymentId: string, full: boolean, context: CommandContext): Promise<WriteResult> {
    return this.onRollout(deploymentId, 'promote', context, (rolloutId) => ({ type: 'PromoteRollout', rolloutId, full, at: this.clock.now().toISOString() }));
  }

  /** Stops the rollout of the current revision: traffic back to the stable (or active) side, the deployment back on its stable revision. */
  abort(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    const cause = `aborted by ${context.actor.id}${reason ? `: ${reason}` : ''}`;
    return this.onRollout(deploymentId, 'abort', context, (rolloutId) => ({ type: 'AbortRollout', rolloutId, cause, at: this.clock.now().toISOString() }));
  }

  private async onRollout(deploymentId: string, verb: string, context: CommandContext, command: (rolloutId: string) => RolloutCommand): Promise<WriteResult> {
    const { state } = await this.handler.loadState(deployments, deploymentId);
    if (state.status === 'absent') throw new NotFound('deployment', deploymentId);
    const rolloutId = rolloutIdOf(deploymentId, state.currentRevision);
    const rollout = await this.handler.loadState(rollouts, rolloutId);
    if (rollout.state.status === 'absent') {
      throw new NoRolloutInProgress('deployment', deploymentId, state.status, verb, `no rollout of revision ${state.currentRevision} is in progress`);
    }
    return this.handler.execute(rollouts, rolloutId, command(rolloutId), context);
  }

  /**
   * The gate for a rollout the cluster completed: the surge pods the ledger held for it are given back, so the ledger
   * holds what the deployment runs. Bookkeeping, not a change: it is not judged and no rate limit counts it.
   */
  settledObservation(deploymentId: string, context: CommandContext): Gate<DeploymentCommand, DeploymentEvent, Deployment> {
    return async ({ state, revision, events }) => {
      if (state.status === 'absent') return { events };
      const after = fold(deploymentDecider, events, state) as PlacedDeployment;
      if (after.status === 'Deleted') return { events };
      const turn = await this.policy.admissionTurn();
      const held = heldFootprint(after);
      const counted = turn.ledger.placements[deploymentId];
      if (!counted || sameFootprint(counted.footprint, held)) {
        turn.release();
        return { events };
      }
      const change = deploymentChange('scale', after, after, context, this.clock.now());
      return {
        events,
        release: turn.release,
        admit: (append) =>
          turn.admit(
            { at: change.at, action: 'scale', targetId: deploymentId, actorId: context.actor.id, targetRevision: revision + events.length, settles: true, placement: this.placement(change, held) },
            context,
            append,
          ),
      };
    };
  }

  /** Where a deployment's footprint sits, and what it costs, as the ledger records it. */
  private placement(change: Change, footprint: Footprint): Placement {
    return {
      clusterId: change.clusterId,
      namespace: change.namespace ?? '',
      ...(change.labels['team'] ? { team: change.labels['team'] } : {}),
      footprint,
      hourlyUsd: this.policy.price(footprint, change.clusterId),
    };
  }

  /**
   * The gate for what a cluster did on its own that changes what a deployment holds (an automatic rollback, a
   * scale by hand the deployment adopts): judged by policy and admitted to the ledger like any other change, so
   * the ledger never counts less than runs, and nothing the policies forbid goes ahead unrecorded.
   */
  judgedObservation(action: 'rollback' | 'scale', deploymentId: string, context: CommandContext): Gate<DeploymentCommand, DeploymentEvent, Deployment> {
    return this.judged(action, deploymentId, context);
  }

  /**
   * The policy gate of a deployment command: judge the change the decided events make, then either record
   * the refusal alone, or admit the change to the ledger and record the decision with the events.
   */
  private judged(action: ActionKind, deploymentId: string, context: CommandContext): Gate<DeploymentCommand, DeploymentEvent, Deployment> {
    return async ({ command, state, revision, events }) => {
      const after = fold(deploymentDecider, events, state) as PlacedDeployment;
      const change = deploymentChange(action, state.status === 'absent' ? undefined : state, after, context, this.clock.now());
      // What it holds once admitted: the rollout's surge pods included (released when the rollout completes), and a
      // paused deployment's last available revision.
      const footprint = after.status === 'Deleted' ? undefined : change.after;
      const replicasBefore = state.status === 'absent' ? 0 : state.replicas;
      return this.policy.gate({
        command: command.type,
        judged: { change, slo: specOf(after).slo },
        events,
        context,
        subject: `${action} of deployment ${deploymentId}`,
        admission: {
          at: change.at,
          action,
          targetId: deploymentId,
          actorId: context.actor.id,
          ...(after.replicas !== replicasBefore ? { direction: after.replicas > replicasBefore ? ('up' as const) : ('down' as const) } : {}),
          targetRevision: revision + 1 + events.length,
          placement: footprint ? this.placement(change, footprint) : null,
        },
      });
    };
  }
}

/** The workload as its spec revision `n` had it (absent: as it is now); a revision it never had is refused. */
function atRevision(workload: WorkloadWithRevisions | undefined, n: number | undefined): WorkloadWithRevisions | undefined {
  if (!workload || n === undefined || n === workload.specRevision) return workload;
  const spec = workload.revisions[n];
  if (!spec) {
    throw new RuleViolation(`workload ${workload.id} has no spec revision ${n}`, [
      { path: 'workloadRevision', message: `no such spec revision: the workload has revisions 1 to ${workload.specRevision}` },
    ]);
  }
  const gpu = gpuRequest(spec);
  const { gpu: _latest, ...rest } = workload;
  return { ...rest, specRevision: n, spec, ...(gpu ? { gpu } : {}) };
}

/** The deployment the command is about; the decider would refuse an absent one, but its facts are needed first. */
function placed(state: { status: string }, deploymentId: string): PlacedDeployment {
  if (state.status === 'absent') throw new NotFound('deployment', deploymentId);
  return state as PlacedDeployment;
}
