// What a proposed change would do, worked out without doing it: each plan action (and each what-if) is
// decided against the current state of its target, so policy judges exactly what execution would change.
import { z } from 'zod';
import { planAction, type PlanAction } from '../domain/action-plan.js';
import { DomainError, fold } from '../domain/decider.js';
import { deploymentDecider, type DeploymentCommand, type PlacedDeployment } from '../domain/deployment.js';
import type { Change } from '../domain/policy.js';
import { id } from '../domain/schemas.js';
import { drainChange } from './cluster-commands.js';
import type { CommandContext } from './command-handler.js';
import { deploymentChange, footprint, specOf } from './deployment-change.js';
import type { FleetFacts } from './fleet-facts.js';
import type { Judged } from './policy-engine.js';

/** A change to judge: a plan action, or a deployment create or delete. */
export const proposedChange = z.union([
  planAction,
  z.strictObject({ kind: z.literal('create'), workloadId: id, clusterId: id, replicas: z.int().min(0).max(1000) }),
  z.strictObject({ kind: z.literal('delete'), deploymentId: id }),
]);
export type ProposedChange = z.infer<typeof proposedChange>;

/** Either the change as policy sees it, or why it cannot be carried out at all. */
export type Simulated = { judged: Judged } | { refused: string };

export async function simulate(
  proposal: ProposedChange | PlanAction,
  facts: FleetFacts,
  context: CommandContext,
  now: Date,
): Promise<Simulated> {
  try {
    if (proposal.kind === 'drain') {
      const cluster = await facts.cluster(proposal.clusterId);
      if (!cluster || cluster.status === 'deregistered') return { refused: `cluster ${proposal.clusterId} is not registered` };
      return { judged: { change: drainChange(proposal.clusterId, context, now) } };
    }
    if (proposal.kind === 'create') {
      const deploymentId = '00000000-0000-4000-8000-000000000000';
      const command: DeploymentCommand = {
        type: 'CreateDeployment',
        deploymentId,
        workload: await facts.workload(proposal.workloadId),
        cluster: await facts.cluster(proposal.clusterId),
        replicas: proposal.replicas,
        strategy: { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' },
        driftPolicy: 'revert',
      };
      const after = fold(deploymentDecider, deploymentDecider.decide(command, deploymentDecider.initialState)) as PlacedDeployment;
      return judged('create', undefined, after, context, now);
    }

    const before = await facts.deployment(proposal.deploymentId);
    if (!before) return { refused: `deployment ${proposal.deploymentId} does not exist` };
    if (proposal.kind === 'reschedule') {
      const clusterId = proposal.clusterId ?? before.clusterId;
      const cluster = await facts.cluster(clusterId);
      if (!cluster || cluster.status !== 'active') return { refused: `cluster ${clusterId} takes no new placements` };
      const change = deploymentChange('reschedule', before, { ...before, clusterId }, context, now);
      return { judged: { change: { ...change, before: footprint(before) }, slo: specOf(before).slo } };
    }
    const command = await deploymentCommand(proposal, before, facts, now);
    const after = fold(deploymentDecider, deploymentDecider.decide(command, before), before) as PlacedDeployment;
    return judged(proposal.kind, before, after, context, now);
  } catch (error) {
    if (error instanceof DomainError) return { refused: error.message };
    throw error;
  }
}

function judged(
  action: Change['action'],
  before: PlacedDeployment | undefined,
  after: PlacedDeployment,
  context: CommandContext,
  now: Date,
): Simulated {
  return { judged: { change: deploymentChange(action, before, after, context, now), slo: specOf(after).slo } };
}

async function deploymentCommand(
  proposal: Exclude<ProposedChange, { kind: 'create' | 'drain' | 'reschedule' }>,
  deployment: PlacedDeployment,
  facts: FleetFacts,
  now: Date,
): Promise<DeploymentCommand> {
  const deploymentId = proposal.deploymentId;
  switch (proposal.kind) {
    case 'scale': {
      const cluster = await facts.cluster(deployment.clusterId);
      return { type: 'ScaleDeployment', deploymentId, replicas: proposal.replicas, cluster: { status: cluster?.status ?? 'deregistered' } };
    }
    case 'update': {
      const workload = await facts.workload(deployment.workloadId);
      if (!workload) return { type: 'UpdateDeployment', deploymentId, workload: { status: 'retired', specRevision: 0, spec: {} } };
      const target = proposal.workloadRevision ?? workload.specRevision;
      return {
        type: 'UpdateDeployment',
        deploymentId,
        workload: { ...workload, spec: workload.revisions[target] ?? workload.spec },
        workloadRevision: proposal.workloadRevision,
      };
    }
    case 'rollback':
      return { type: 'RollbackDeployment', deploymentId, toRevision: proposal.toRevision };
    case 'restart':
      return { type: 'RestartDeployment', deploymentId, at: now.toISOString() };
    case 'delete':
      return { type: 'DeleteDeployment', deploymentId };
  }
}
