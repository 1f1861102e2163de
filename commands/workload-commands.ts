// Workload commands: register, update the spec (a new spec revision), retire.
import type { WorkloadBody, WorkloadPatchBody } from '../domain/workload.js';
import { workloads } from './aggregates.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';

export class WorkloadCommands {
  constructor(private readonly handler: CommandHandler) {}

  register(workloadId: string, spec: WorkloadBody, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(workloads, workloadId, { type: 'RegisterWorkload', workloadId, spec }, context);
  }

  updateSpec(workloadId: string, changes: WorkloadPatchBody, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(workloads, workloadId, { type: 'UpdateWorkloadSpec', workloadId, changes }, context);
  }

  retire(workloadId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(workloads, workloadId, { type: 'RetireWorkload', workloadId, reason }, context);
  }
}
