// Deployment commands from people: create, scale, update, roll back, restart, pause, resume, delete. Facts
// about the workload and cluster are read fresh on every attempt and handed to the decider on the command.
import { NotFound } from '../domain/decider.js';
import type { ClusterFacts, DeploymentBody, DeploymentPatchBody, PlacedDeployment, WorkloadFacts } from '../domain/deployment.js';
import { gpuRequest, type WorkloadSpec } from '../domain/workload.js';
import { clusters, deployments, workloads } from './aggregates.js';
import type { Clock } from './clock.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';

export class DeploymentCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly clock: Clock,
  ) {}

  create(deploymentId: string, body: DeploymentBody, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      async () => ({
        type: 'CreateDeployment' as const,
        deploymentId,
        workload: await this.workloadFacts(body.workloadId),
        cluster: await this.clusterFacts(body.clusterId),
        replicas: body.replicas,
        strategy: body.strategy,
        driftPolicy: body.driftPolicy,
      }),
      context,
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
        cluster: { status: (await this.clusterFacts(placed(state, deploymentId).clusterId))?.status ?? 'deregistered' },
      }),
      context,
    );
  }

  update(deploymentId: string, patch: DeploymentPatchBody, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      deployments,
      deploymentId,
      async (state) => {
        const workloadId = placed(state, deploymentId).workloadId;
        const workload = await this.workloadFacts(workloadId);
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
    );
  }

  rollback(deploymentId: string, toRevision: number | undefined, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(deployments, deploymentId, { type: 'RollbackDeployment', deploymentId, toRevision, reason }, context);
  }

  restart(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    const at = this.clock.now().toISOString();
    return this.handler.execute(deployments, deploymentId, { type: 'RestartDeployment', deploymentId, at, reason }, context);
  }

  pause(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(deployments, deploymentId, { type: 'PauseDeployment', deploymentId, reason }, context);
  }

  resume(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(deployments, deploymentId, { type: 'ResumeDeployment', deploymentId, reason }, context);
  }

  delete(deploymentId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(deployments, deploymentId, { type: 'DeleteDeployment', deploymentId, reason }, context);
  }

  private async workloadFacts(workloadId: string): Promise<(WorkloadFacts & { revisions: Record<number, WorkloadSpec> }) | undefined> {
    const { state } = await this.handler.load(workloads, workloadId);
    if (state.status === 'absent') return undefined;
    return {
      id: workloadId,
      status: state.status,
      specRevision: state.specRevision,
      spec: state.spec,
      gpu: gpuRequest(state.spec),
      revisions: state.revisions,
    };
  }

  private async clusterFacts(clusterId: string): Promise<ClusterFacts | undefined> {
    const { state } = await this.handler.load(clusters, clusterId);
    return state.status === 'absent' ? undefined : { id: clusterId, status: state.status, gpuSkus: state.spec.gpuSkus };
  }
}

/** The deployment the command is about; the decider would refuse an absent one, but its facts are needed first. */
function placed(state: { status: string }, deploymentId: string): PlacedDeployment {
  if (state.status === 'absent') throw new NotFound('deployment', deploymentId);
  return state as PlacedDeployment;
}
