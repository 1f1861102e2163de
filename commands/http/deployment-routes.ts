// Routes for deployments (operator and up). Each answers 202: the reactor carries the change to the cluster.
import { rolesFrom } from '../../domain/access.js';
import {
  abortBody,
  deleteBody,
  deploymentBody,
  deploymentPatchBody,
  pauseBody,
  promoteBody,
  restartBody,
  resumeBody,
  rollbackBody,
  scaleBody,
} from '../../domain/deployment.js';
import type { DeploymentCommands } from '../deployment-commands.js';
import { accepted, pathId } from './replies.js';
import { route, writeResult, type Route } from './route.js';

export function deploymentRoutes(deployments: DeploymentCommands): Route[] {
  const common = { tag: 'deployments', access: rolesFrom('operator'), idempotent: true } as const;
  const recorded = { status: 202, schema: writeResult, description: 'recorded; the reactor carries it to the cluster' };
  const id = (params: Record<string, string>) => pathId(params, 'deployment');
  const withReason = { body: restartBody, bodyOptional: true } as const;
  // Changes policy judges: an admin may push one through a change freeze with X-Sentinel-Emergency.
  const judged = { headers: ['X-Sentinel-Emergency'] } as const;
  return [
    route({
      ...common,
      method: 'post',
      path: '/deployments',
      operationId: 'createDeployment',
      ...judged,
      summary: 'Create a deployment',
      body: deploymentBody,
      success: { status: 202, schema: writeResult, description: 'the deployment is created (Pending); the reactor rolls it out', location: true },
      handle: async ({ body, context, newId }) => {
        const result = await deployments.create(newId(), body, context);
        return { ...accepted(result), location: `/deployments/${result.id}` };
      },
    }),
    route({
      ...common,
      method: 'post',
      path: '/deployments/:id/scale',
      operationId: 'scaleDeployment',
      ...judged,
      summary: 'Scale a deployment',
      body: scaleBody,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await deployments.scale(id(params), body.replicas, context)),
    }),
    route({
      ...common,
      method: 'post',
      path: '/deployments/:id/rollback',
      operationId: 'rollbackDeployment',
      ...judged,
      summary: 'Roll a deployment back to an earlier revision',
      body: rollbackBody,
      bodyOptional: true,
      success: recorded,
      handle: async ({ body, params, context }) =>
        accepted(await deployments.rollback(id(params), body.toRevision, body.reason, context)),
    }),
    route({
      ...common,
      ...withReason,
      method: 'post',
      path: '/deployments/:id/restart',
      operationId: 'restartDeployment',
      ...judged,
      summary: 'Restart a deployment',
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await deployments.restart(id(params), body.reason, context)),
    }),
    route({
      ...common,
      method: 'post',
      path: '/deployments/:id/pause',
      operationId: 'pauseDeployment',
      summary: 'Pause a deployment',
      body: pauseBody,
      bodyOptional: true,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await deployments.pause(id(params), body.reason, context)),
    }),
    route({
      ...common,
      method: 'post',
      path: '/deployments/:id/resume',
      operationId: 'resumeDeployment',
      summary: 'Resume a deployment',
      body: resumeBody,
      bodyOptional: true,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await deployments.resume(id(params), body.reason, context)),
    }),
    route({
      ...common,
      method: 'post',
      path: '/deployments/:id/promote',
      operationId: 'promoteDeployment',
      summary: 'Promote the canary or blue/green rollout in progress: end its pause or analysis (a blue/green goes to its switch), or (full) skip every step left',
      body: promoteBody,
      bodyOptional: true,
      success: { status: 202, schema: writeResult, description: 'recorded; the rollout reactor goes on with the next step' },
      handle: async ({ body, params, context }) => accepted(await deployments.promote(id(params), body.full ?? false, context)),
    }),
    route({
      ...common,
      method: 'post',
      path: '/deployments/:id/abort',
      operationId: 'abortDeployment',
      summary: 'Abort the canary or blue/green rollout in progress: traffic back to the stable revision',
      body: abortBody,
      bodyOptional: true,
      success: { status: 202, schema: writeResult, description: 'recorded; the rollout reactor scales the canary down and the stable side back up' },
      handle: async ({ body, params, context }) => accepted(await deployments.abort(id(params), body.reason, context)),
    }),
    route({
      ...common,
      method: 'patch',
      path: '/deployments/:id',
      operationId: 'updateDeployment',
      ...judged,
      summary: 'Update a deployment to a workload spec revision (default: the latest)',
      body: deploymentPatchBody,
      bodyOptional: true,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await deployments.update(id(params), body, context)),
    }),
    route({
      ...common,
      method: 'delete',
      path: '/deployments/:id',
      operationId: 'deleteDeployment',
      ...judged,
      summary: 'Delete a deployment',
      body: deleteBody,
      bodyOptional: true,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await deployments.delete(id(params), body.reason, context)),
    }),
  ];
}
