// Routes for registering and managing clusters (admin).
import { rolesFrom } from '../../domain/access.js';
import { clusterBody, clusterPatchBody, clusterReasonBody } from '../../domain/cluster.js';
import type { ClusterCommands } from '../cluster-commands.js';
import { accepted, created, pathId } from './replies.js';
import { route, writeResult, type Route } from './route.js';

export function clusterRoutes(clusters: ClusterCommands): Route[] {
  const common = { tag: 'clusters', access: rolesFrom('admin'), idempotent: true } as const;
  const recorded = { status: 202, schema: writeResult, description: 'the change is recorded' };
  return [
    route({
      ...common,
      method: 'post',
      path: '/clusters',
      operationId: 'registerCluster',
      summary: 'Register a cluster',
      body: clusterBody,
      success: { status: 201, schema: writeResult, description: 'the cluster is registered' },
      handle: async ({ body, context, newId }) => created(await clusters.register(newId(), body, context), '/clusters'),
    }),
    route({
      ...common,
      method: 'patch',
      path: '/clusters/:id',
      operationId: 'updateCluster',
      summary: 'Update a cluster',
      body: clusterPatchBody,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await clusters.update(pathId(params, 'cluster'), body, context)),
    }),
    route({
      ...common,
      method: 'post',
      path: '/clusters/:id/cordon',
      operationId: 'cordonCluster',
      summary: 'Cordon a cluster (no new placements)',
      body: clusterReasonBody,
      bodyOptional: true,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await clusters.cordon(pathId(params, 'cluster'), body.reason, context)),
    }),
    route({
      ...common,
      method: 'post',
      path: '/clusters/:id/uncordon',
      operationId: 'uncordonCluster',
      summary: 'Uncordon a cluster',
      success: recorded,
      handle: async ({ params, context }) => accepted(await clusters.uncordon(pathId(params, 'cluster'), context)),
    }),
    route({
      ...common,
      method: 'delete',
      path: '/clusters/:id',
      operationId: 'deregisterCluster',
      summary: 'Deregister a cluster',
      body: clusterReasonBody,
      bodyOptional: true,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await clusters.deregister(pathId(params, 'cluster'), body.reason, context)),
    }),
  ];
}
