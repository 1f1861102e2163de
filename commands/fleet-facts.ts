// Reads the facts one aggregate's command needs about others: a deployment's workload and cluster (their
// current state, read forward from the handler's cache).
import type { ClusterFacts, PlacedDeployment, WorkloadFacts } from '../domain/deployment.js';
import { gpuRequest, type WorkloadSpec } from '../domain/workload.js';
import { clusters, deployments, workloads } from './aggregates.js';
import type { CommandHandler } from './command-handler.js';

export type WorkloadWithRevisions = WorkloadFacts & { revisions: Record<number, WorkloadSpec> };

export class FleetFacts {
  constructor(private readonly handler: CommandHandler) {}

  async workload(workloadId: string): Promise<WorkloadWithRevisions | undefined> {
    const { state } = await this.handler.loadState(workloads, workloadId);
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

  async cluster(clusterId: string): Promise<ClusterFacts | undefined> {
    const { state } = await this.handler.loadState(clusters, clusterId);
    return state.status === 'absent' ? undefined : { id: clusterId, status: state.status, gpuSkus: state.spec.gpuSkus };
  }

  async deployment(deploymentId: string): Promise<PlacedDeployment | undefined> {
    const { state } = await this.handler.loadState(deployments, deploymentId);
    return state.status === 'absent' ? undefined : state;
  }
}
