// The Cluster aggregate: a Kubernetes cluster Sentinel may place workloads on.
import { z } from 'zod';
import { changedFields, defineEvents, InvalidTransition, NotFound, type Decider, type EventOf } from './decider.js';
import { gpuSku, labels, name, reason } from './schemas.js';

// ---- bodies and records ------------------------------------------------------------------------------

/** How Sentinel reaches the cluster, as a request states it. */
export const credentialsInput = z.discriminatedUnion(
  'source',
  [
    z.strictObject({ source: z.literal('kubeconfig-file'), path: z.string().min(1, 'a file path') }),
    z.strictObject({
      source: z.literal('kubeconfig-base64'),
      data: z.base64({ error: 'a base64-encoded kubeconfig' }).min(1, 'a base64-encoded kubeconfig'),
    }),
    z.strictObject({ source: z.literal('in-cluster') }),
  ],
  { error: 'credentials.source: one of kubeconfig-file, kubeconfig-base64, in-cluster' },
);

/**
 * How Sentinel reaches the cluster, as the event log records it. An inline kubeconfig is a secret: it is
 * kept in the secret store and the log holds only its reference, so history never carries credentials.
 */
export const credentialsRecord = z.discriminatedUnion('source', [
  z.strictObject({ source: z.literal('kubeconfig-file'), path: z.string().min(1) }),
  z.strictObject({ source: z.literal('kubeconfig-base64'), secretRef: z.string().min(1) }),
  z.strictObject({ source: z.literal('in-cluster') }),
]);

const gpuSkus = z
  .array(gpuSku)
  .max(64, 'at most 64 SKUs')
  .refine((skus) => new Set(skus).size === skus.length, 'each SKU once');

const clusterFields = {
  name,
  apiServer: z.url({ protocol: /^https?$/, error: 'an http(s) URL of the Kubernetes API server' }),
  region: z.string().min(1, 'a region such as "us-east-1"').max(63, 'at most 63 characters'),
  labels,
  gpuSkus,
};

/** `POST /clusters` */
export const clusterBody = z.strictObject({
  ...clusterFields,
  credentials: credentialsInput,
  labels: labels.default({}),
  gpuSkus: gpuSkus.default([]),
});
export type ClusterBody = z.infer<typeof clusterBody>;

/** `PATCH /clusters/:id`: any subset of the fields, at least one. */
export const clusterPatchBody = z
  .strictObject({ ...clusterFields, credentials: credentialsInput })
  .partial()
  .refine((patch) => Object.keys(patch).length > 0, 'at least one field to change');
export type ClusterPatchBody = z.infer<typeof clusterPatchBody>;

export const clusterSpec = z.strictObject({ ...clusterFields, credentials: credentialsRecord });
export type ClusterSpec = z.infer<typeof clusterSpec>;
export type Credentials = z.infer<typeof credentialsRecord>;

/** `POST /clusters/:id/cordon` and `DELETE /clusters/:id` may say why. */
export const clusterReasonBody = z.strictObject({ reason: reason.optional() });

// ---- events -------------------------------------------------------------------------------------------

export const clusterEvents = defineEvents({
  ClusterRegistered: { version: 1, schema: z.object({ clusterId: z.string(), spec: clusterSpec }) },
  ClusterUpdated: { version: 1, schema: z.object({ clusterId: z.string(), changes: clusterSpec.partial() }) },
  ClusterCordoned: { version: 1, schema: z.object({ clusterId: z.string(), reason: z.string().optional() }) },
  ClusterUncordoned: { version: 1, schema: z.object({ clusterId: z.string() }) },
  ClusterDeregistered: { version: 1, schema: z.object({ clusterId: z.string(), reason: z.string().optional() }) },
  /** Sentinel reached the cluster's API server (again): its objects are listed and watched. */
  ClusterConnected: { version: 1, schema: z.object({ clusterId: z.string() }) },
  /** Sentinel cannot reach or use the cluster's API server; `cause` says why in the words of whatever failed. */
  ClusterUnreachable: { version: 1, schema: z.object({ clusterId: z.string(), cause: z.string() }) },
  /**
   * Policy let a drain of one of the cluster's nodes begin: the node is cordoned and its pods evicted next. Recorded
   * with its judgement, so that every drain counts against the cluster's rate limits and stops at a change freeze.
   */
  NodeDrainStarted: { version: 1, schema: z.object({ clusterId: z.string(), node: z.string().min(1), reason: z.string().optional() }) },
});
export type ClusterEvent = EventOf<typeof clusterEvents>;

// ---- state and commands -------------------------------------------------------------------------------

export type ClusterStatus = 'active' | 'cordoned' | 'deregistered';

/** Whether Sentinel can reach the cluster: unknown until it has tried with the credentials recorded now. */
export type ConnectionState = 'unknown' | 'connected' | 'unreachable';

/**
 * Whether an update makes the cluster's connection unknown again: new credentials or a new address are tried
 * afresh, since what was known of the old ones says nothing of them. The read model applies the same rule.
 */
export function reconnectsAfter(changes: { apiServer?: unknown; credentials?: unknown }): boolean {
  return changes.apiServer !== undefined || changes.credentials !== undefined;
}

export type Cluster =
  | { status: 'absent' }
  | { status: ClusterStatus; id: string; spec: ClusterSpec; cordonReason?: string; connection: ConnectionState };

export type ClusterCommand =
  | { type: 'RegisterCluster'; clusterId: string; spec: ClusterSpec }
  | { type: 'UpdateCluster'; clusterId: string; changes: Partial<ClusterSpec> }
  | { type: 'CordonCluster'; clusterId: string; reason?: string }
  | { type: 'UncordonCluster'; clusterId: string }
  | { type: 'DeregisterCluster'; clusterId: string; reason?: string }
  | { type: 'RecordClusterConnected'; clusterId: string }
  | { type: 'RecordClusterUnreachable'; clusterId: string; cause: string }
  | { type: 'StartNodeDrain'; clusterId: string; node: string; reason?: string };

export const initialState: Cluster = { status: 'absent' };

export function evolve(state: Cluster, event: ClusterEvent): Cluster {
  switch (event.type) {
    case 'ClusterRegistered':
      return { status: 'active', id: event.data.clusterId, spec: event.data.spec, connection: 'unknown' };
    case 'ClusterUpdated': {
      if (state.status === 'absent') return state;
      return {
        ...state,
        spec: { ...state.spec, ...event.data.changes },
        connection: reconnectsAfter(event.data.changes) ? 'unknown' : state.connection,
      };
    }
    case 'ClusterCordoned':
      return state.status === 'absent' ? state : { ...state, status: 'cordoned', cordonReason: event.data.reason };
    case 'ClusterUncordoned': {
      if (state.status === 'absent') return state;
      const { cordonReason: _cordonReason, ...rest } = state;
      return { ...rest, status: 'active' };
    }
    case 'ClusterDeregistered':
      return state.status === 'absent' ? state : { ...state, status: 'deregistered' };
    case 'ClusterConnected':
      return state.status === 'absent' ? state : { ...state, connection: 'connected' };
    case 'ClusterUnreachable':
      return state.status === 'absent' ? state : { ...state, connection: 'unreachable' };
    // Recorded to be judged and counted; whether the node takes pods is the cluster's to say, on the node itself.
    case 'NodeDrainStarted':
      return state;
  }
}

export function decide(command: ClusterCommand, state: Cluster): ClusterEvent[] {
  const { clusterId } = command;
  if (command.type === 'RegisterCluster') {
    if (state.status !== 'absent') throw new InvalidTransition('cluster', clusterId, state.status, 'register', 'it is already registered');
    return [{ type: 'ClusterRegistered', data: { clusterId, spec: command.spec } }];
  }
  if (state.status === 'absent') throw new NotFound('cluster', clusterId);
  // What a reactor saw of a cluster as it was being let go of is no longer news.
  if (state.status === 'deregistered' && (command.type === 'RecordClusterConnected' || command.type === 'RecordClusterUnreachable')) return [];
  if (state.status === 'deregistered') throw new InvalidTransition('cluster', clusterId, state.status, verb(command));

  switch (command.type) {
    case 'UpdateCluster': {
      const changes = changedFields(state.spec, command.changes);
      return Object.keys(changes).length === 0 ? [] : [{ type: 'ClusterUpdated', data: { clusterId, changes } }];
    }
    case 'CordonCluster':
      return state.status === 'cordoned' ? [] : [{ type: 'ClusterCordoned', data: { clusterId, reason: command.reason } }];
    case 'UncordonCluster':
      return state.status === 'active' ? [] : [{ type: 'ClusterUncordoned', data: { clusterId } }];
    case 'DeregisterCluster':
      return [{ type: 'ClusterDeregistered', data: { clusterId, reason: command.reason } }];
    // Recorded when the state changes, not on every attempt: a cluster down for a day is one event, not thousands.
    case 'RecordClusterConnected':
      return state.connection === 'connected' ? [] : [{ type: 'ClusterConnected', data: { clusterId } }];
    case 'RecordClusterUnreachable':
      return state.connection === 'unreachable' ? [] : [{ type: 'ClusterUnreachable', data: { clusterId, cause: command.cause } }];
    // Every drain is a change of its own, never merged with an earlier one of the same node: each is judged and counted.
    case 'StartNodeDrain':
      return [{ type: 'NodeDrainStarted', data: { clusterId, node: command.node, reason: command.reason } }];
  }
}

export const clusterDecider: Decider<ClusterCommand, ClusterEvent, Cluster> = { initialState, evolve, decide };

/** Whether new placements may land on the cluster. */
export function acceptsPlacements(cluster: Cluster): boolean {
  return cluster.status === 'active';
}

function verb(command: ClusterCommand): string {
  if (command.type === 'StartNodeDrain') return `drain node ${command.node}`;
  return command.type.replace(/Cluster$/, '').toLowerCase();
}
