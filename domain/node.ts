// The Node aggregate: a Kubernetes node whose agent reports telemetry, and the health facts derived from it.
import { v5 as uuidv5 } from 'uuid';
import { z } from 'zod';
import { defineEvents, type Decider, type EventOf } from './decider.js';
import { applyGpuFact, deriveGpuFacts, gpuFactSchemas, unfitReason, type GpuConditions, type GpuFact, type HealthSample } from './node-health.js';
import { timestamp } from './schemas.js';

/** Namespace of node ids and of the ids of node facts (uuid v5). */
const NODE_NAMESPACE = '3c9d2f6a-7b41-5e08-a1d3-94c0b7e25f18';

/**
 * A node's id: the uuid v5 of its cluster id and node name (joined by a NUL, which neither may contain). Stable
 * for as long as the node keeps its name in its cluster, whichever agent or ingest instance reports it, and safe
 * in a stream name whatever characters the cluster id holds. The stream is `node-<id>`.
 */
export function nodeId(clusterId: string, nodeName: string): string {
  return uuidv5(`${clusterId}\u0000${nodeName}`, NODE_NAMESPACE);
}

// ---- events -------------------------------------------------------------------------------------------

export const nodeEvents = defineEvents({
  /** The first batch from the node's agent was observed. */
  NodeRegistered: {
    version: 1,
    schema: z.object({ clusterId: z.string().min(1), nodeName: z.string().min(1), agentId: z.string().min(1), firstSeenAt: timestamp }),
  },
  /**
   * No batch came for long enough: `lastSeenAt` is when the last one came, `silentSince` when the silence began to
   * count (`lastSeenAt` plus the silence threshold), `intervals` how many check intervals had passed without one.
   */
  NodeWentSilent: { version: 1, schema: z.object({ lastSeenAt: timestamp, silentSince: timestamp, intervals: z.number().int().min(1) }) },
  NodeHeardFromAgain: { version: 1, schema: z.object({ silentSince: timestamp, seenAt: timestamp }) },
  GpuXidErrorObserved: { version: 1, schema: gpuFactSchemas.GpuXidErrorObserved },
  GpuEccDoubleBitErrorsGrew: { version: 1, schema: gpuFactSchemas.GpuEccDoubleBitErrorsGrew },
  GpuThrottlingBegan: { version: 1, schema: gpuFactSchemas.GpuThrottlingBegan },
  GpuThrottlingEnded: { version: 1, schema: gpuFactSchemas.GpuThrottlingEnded },
  GpuFellOffBus: { version: 1, schema: gpuFactSchemas.GpuFellOffBus },
  GpuBackOnBus: { version: 1, schema: gpuFactSchemas.GpuBackOnBus },
});
export type NodeEvent = EventOf<typeof nodeEvents>;

// ---- state and commands -------------------------------------------------------------------------------

/**
 * Why the node is unfit to run work: one entry per fact that made it so and still holds. A GPU that fell off the
 * bus (`bus`) is fit again once it is back on it; an XID or ECC fault (`fault`) clears only with a GPU reset or a
 * reboot, which telemetry shows as the node going silent and being heard from again.
 */
export interface UnfitCause {
  kind: 'bus' | 'fault';
  gpu: string;
  reason: string;
  since: string;
  /** The fact that made it so, by type and derived event id. */
  fact: GpuFact['type'];
  eventKey: string;
}

export type Node =
  | { status: 'absent' }
  | {
      status: 'reporting' | 'silent';
      clusterId: string;
      nodeName: string;
      agentId: string;
      firstSeenAt: string;
      /** When the log last heard of a batch from the node: first seen, or heard from again. */
      lastSeenAt: string;
      silentSince?: string;
      gpus: GpuConditions;
      unfit: UnfitCause[];
    };

export type NodeCommand =
  | { type: 'ObserveBatch'; clusterId: string; nodeName: string; agentId: string; samples: HealthSample[]; observedAt: string }
  /**
   * `lastHeardAt`: when the checker last received a batch from the node. Batches are not events (a fact is recorded
   * only when something changes), so the log alone cannot say a node is still reporting.
   */
  | { type: 'CheckSilence'; now: string; silentAfterMs: number; intervalMs: number; lastHeardAt?: string };

export const initialState: Node = { status: 'absent' };

export function evolve(state: Node, event: NodeEvent): Node {
  if (event.type === 'NodeRegistered') {
    const { clusterId, nodeName, agentId, firstSeenAt } = event.data;
    return { status: 'reporting', clusterId, nodeName, agentId, firstSeenAt, lastSeenAt: firstSeenAt, gpus: {}, unfit: [] };
  }
  if (state.status === 'absent') return state;
  switch (event.type) {
    case 'NodeWentSilent':
      return { ...state, status: 'silent', silentSince: event.data.silentSince };
    case 'NodeHeardFromAgain': {
      const { silentSince: _silentSince, ...rest } = state;
      return { ...rest, status: 'reporting', lastSeenAt: event.data.seenAt, unfit: state.unfit.filter((cause) => cause.kind === 'bus') };
    }
    default:
      return { ...state, gpus: applyGpuFact(state.gpus, event), unfit: withUnfitness(state.unfit, event) };
  }
}

export function decide(command: NodeCommand, state: Node): NodeEvent[] {
  switch (command.type) {
    case 'ObserveBatch':
      return observe(command, state);
    case 'CheckSilence':
      return checkSilence(command, state);
  }
}

export const nodeDecider: Decider<NodeCommand, NodeEvent, Node> = { initialState, evolve, decide };

/** Whether the node is unfit to run work now. */
export function isUnfit(state: Node): boolean {
  return state.status !== 'absent' && state.unfit.length > 0;
}

// ---- deciding -----------------------------------------------------------------------------------------

function observe(command: Extract<NodeCommand, { type: 'ObserveBatch' }>, state: Node): NodeEvent[] {
  const { clusterId, nodeName, agentId, observedAt } = command;
  const events: NodeEvent[] = [];
  if (state.status === 'absent') events.push({ type: 'NodeRegistered', data: { clusterId, nodeName, agentId, firstSeenAt: observedAt } });
  if (state.status === 'silent') events.push({ type: 'NodeHeardFromAgain', data: { silentSince: state.silentSince!, seenAt: observedAt } });
  const gpus = state.status === 'absent' ? {} : state.gpus;
  return [...events, ...deriveGpuFacts(gpus, command.samples)];
}

function checkSilence(command: Extract<NodeCommand, { type: 'CheckSilence' }>, state: Node): NodeEvent[] {
  if (state.status !== 'reporting') return [];
  const { now, silentAfterMs, intervalMs, lastHeardAt } = command;
  const lastSeen = Math.max(Date.parse(state.lastSeenAt), lastHeardAt === undefined ? -Infinity : Date.parse(lastHeardAt));
  const quiet = Date.parse(now) - lastSeen;
  if (quiet < silentAfterMs) return [];
  return [
    {
      type: 'NodeWentSilent',
      data: {
        lastSeenAt: new Date(lastSeen).toISOString(),
        silentSince: new Date(lastSeen + silentAfterMs).toISOString(),
        intervals: Math.max(1, Math.floor(quiet / intervalMs)),
      },
    },
  ];
}

function withUnfitness(unfit: UnfitCause[], fact: GpuFact): UnfitCause[] {
  if (fact.type === 'GpuBackOnBus') return unfit.filter((cause) => !(cause.kind === 'bus' && cause.gpu === fact.data.gpu));
  const reason = unfitReason(fact);
  if (reason === undefined) return unfit;
  const kind = fact.type === 'GpuFellOffBus' ? 'bus' : 'fault';
  const since = 'at' in fact.data ? fact.data.at : fact.data.observedAt;
  return [...unfit, { kind, gpu: fact.data.gpu, reason, since, fact: fact.type, eventKey: factKey(fact) }];
}

// ---- derived ids --------------------------------------------------------------------------------------

/**
 * What identifies a fact: its type and what was observed (the GPU, the code or cause, the sample time; for silence,
 * the last time the node was seen). Two ingest instances, or one batch delivered twice, name the same fact alike.
 */
export function factKey(event: NodeEvent): string {
  const parts: (string | number)[] = [event.type];
  switch (event.type) {
    case 'NodeRegistered':
      break;
    case 'NodeWentSilent':
      parts.push(event.data.lastSeenAt);
      break;
    case 'NodeHeardFromAgain':
      parts.push(event.data.silentSince);
      break;
    case 'GpuXidErrorObserved':
      parts.push(event.data.gpu, event.data.xid, event.data.observedAt);
      break;
    case 'GpuEccDoubleBitErrorsGrew':
      parts.push(event.data.gpu, event.data.counter, event.data.to, event.data.observedAt);
      break;
    case 'GpuThrottlingBegan':
    case 'GpuThrottlingEnded':
      parts.push(event.data.gpu, event.data.cause, event.data.at);
      break;
    case 'GpuFellOffBus':
    case 'GpuBackOnBus':
      parts.push(event.data.gpu, event.data.at);
      break;
  }
  // JSON, not a separator: unambiguous whatever a GPU id holds, and storable in jsonb (which refuses NUL).
  return JSON.stringify(parts);
}

/** The event id of a fact in a node's stream: a second append of the same fact is a no-op at the store. */
export function factEventId(stream: string, event: NodeEvent): string {
  return uuidv5(`${stream}\u0000${factKey(event)}`, NODE_NAMESPACE);
}
