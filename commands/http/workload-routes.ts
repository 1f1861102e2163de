// Routes for registering workloads, revising their spec and retiring them (operator and up).
import { rolesFrom } from '../../domain/access.js';
import { workloadBody, workloadPatchBody, workloadRetireBody } from '../../domain/workload.js';
import type { WorkloadCommands } from '../workload-commands.js';
import { accepted, created, pathId } from './replies.js';
import { route, writeResult, type Route } from './route.js';

export function workloadRoutes(workloads: WorkloadCommands): Route[] {
  const common = { tag: 'workloads', access: rolesFrom('operator'), idempotent: true } as const;
  return [
    route({
      ...common,
      method: 'post',
      path: '/workloads',
      operationId: 'registerWorkload',
      summary: 'Register a workload',
      body: workloadBody,
      success: { status: 201, schema: writeResult, description: 'the workload is registered at spec revision 1' },
      handle: async ({ body, context, newId }) => created(await workloads.register(newId(), body, context), '/workloads'),
    }),
    route({
      ...common,
      method: 'patch',
      path: '/workloads/:id',
      operationId: 'updateWorkload',
      summary: 'Update a workload spec (a new spec revision)',
      body: workloadPatchBody,
      success: { status: 202, schema: writeResult, description: 'the new spec revision is recorded' },
      handle: async ({ body, params, context }) => accepted(await workloads.updateSpec(pathId(params, 'workload'), body, context)),
    }),
    route({
      ...common,
      method: 'delete',
      path: '/workloads/:id',
      operationId: 'retireWorkload',
      summary: 'Retire a workload',
      body: workloadRetireBody,
      bodyOptional: true,
      success: { status: 202, schema: writeResult, description: 'the workload is retired' },
      handle: async ({ body, params, context }) => accepted(await workloads.retire(pathId(params, 'workload'), body.reason, context)),
    }),
  ];
}
