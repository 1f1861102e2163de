// Workload commands: register, update the spec (a new spec revision), retire.
import type { WorkloadBody, WorkloadPatchBody } from '../domain/workload.js';
import { workloads } from './aggregates.js';
import type { Clock } from './clock.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';
import { UniqueNames, type ClaimRequest } from './unique-names.js';

export class WorkloadCommands {
  private readonly names: UniqueNames;

  constructor(
    private readonly handler: CommandHandler,
    clock: Clock,
  ) {
    this.names = new UniqueNames(handler, clock);
  }

  /** One workload of a name in a namespace: a second would be the same Kubernetes object. A retired one frees it. */
  register(workloadId: string, spec: WorkloadBody, context: CommandContext): Promise<WriteResult> {
    const name: ClaimRequest = {
      key: `workload:${spec.namespace}/${spec.name}`,
      ownerId: workloadId,
      field: 'name',
      value: spec.name,
      what: `workload ${spec.name} in namespace ${spec.namespace}`,
      holder: async (id) => {
        const { state } = await this.handler.load(workloads, id);
        return state.status === 'absent' ? 'absent' : state.status === 'retired' ? 'gone' : 'live';
      },
    };
    return this.handler.execute(workloads, workloadId, { type: 'RegisterWorkload', workloadId, spec }, context, this.names.gate(name, context));
  }

  updateSpec(workloadId: string, changes: WorkloadPatchBody, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(workloads, workloadId, { type: 'UpdateWorkloadSpec', workloadId, changes }, context);
  }

  retire(workloadId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(workloads, workloadId, { type: 'RetireWorkload', workloadId, reason }, context);
  }
}
