// The causal timeline of one request: every event recorded under its correlation id, across streams, as a tree by
// causation id (request → decision → events → cluster outcomes → rollbacks), each decision with its policy results.
import { policyEvents } from '../domain/policy-evaluation.js';
import type { CorrelationReader, RecordedEvent } from '../domain/event-store.js';

export interface TimelineNode {
  id: string;
  stream: string;
  type: string;
  revision: number;
  position: string;
  recordedAt: string;
  actor: { id: string; kind: string } | null;
  source: string | null;
  causationId: string | null;
  /** The W3C trace id of the event's `traceparent`, or null when it was recorded without one. */
  traceId: string | null;
  /** At a `PolicyEvaluated` event: the verdict, the policy-set revision and each rule's result for each change judged. */
  decision?: TimelineDecision;
  children: TimelineNode[];
}

export interface TimelineDecision {
  command: string;
  verdict: 'allow' | 'deny';
  policySet: { stream: string; revision: number };
  breakGlass?: { justification: string; actorId: string };
  evaluations: {
    index?: number;
    action: string;
    target: { kind: string; id: string };
    verdict: 'allow' | 'deny';
    results: { policyId: string; name: string; type: string; mode: string; outcome: string; message: string }[];
  }[];
}

/**
 * A cause outside the log (an HTTP request, a reactor's observation, an agent's batch: its id is the events'
 * causation id), and the events it caused directly, each with what those caused in turn.
 */
export interface TimelineRoot {
  causationId: string | null;
  events: TimelineNode[];
}

export interface Timeline {
  correlationId: string;
  /** Events in the tree; `truncated` when the correlation holds more than were read. */
  events: number;
  truncated: boolean;
  roots: TimelineRoot[];
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function traceIdOf(traceparent: unknown): string | null {
  if (typeof traceparent !== 'string') return null;
  const match = TRACEPARENT.exec(traceparent);
  return match && !/^0+$/.test(match[1]!) ? match[1]! : null;
}

function decisionOf(event: RecordedEvent): TimelineDecision {
  const { data } = policyEvents.parse(event.type, event.schemaVersion, event.data);
  return {
    command: data.command,
    verdict: data.verdict,
    policySet: data.policySet,
    ...(data.breakGlass ? { breakGlass: data.breakGlass } : {}),
    evaluations: data.evaluations.map((evaluation) => ({
      ...(evaluation.index === undefined ? {} : { index: evaluation.index }),
      action: evaluation.change.action,
      target: evaluation.change.target,
      verdict: evaluation.verdict,
      results: evaluation.results.map(({ policyId, name, type, mode, outcome, message }) => ({ policyId, name, type, mode, outcome, message })),
    })),
  };
}

function nodeOf(event: RecordedEvent): TimelineNode {
  const { actor, source, causationId, traceparent } = event.metadata;
  return {
    id: event.id,
    stream: event.stream,
    type: event.type,
    revision: event.revision,
    position: event.position,
    recordedAt: event.recordedAt.toISOString(),
    actor: actor ? { id: actor.id, kind: actor.kind } : null,
    source: typeof source === 'string' ? source : null,
    causationId: typeof causationId === 'string' ? causationId : null,
    traceId: traceIdOf(traceparent),
    ...(event.type === 'PolicyEvaluated' ? { decision: decisionOf(event) } : {}),
    children: [],
  };
}

/**
 * The tree of events, given in log order: an event whose causation id is another event of the set hangs under it;
 * the rest hang under their causation id, a root, in the order each root's first event was recorded.
 */
export function buildTimeline(correlationId: string, events: readonly RecordedEvent[], truncated = false): Timeline {
  const nodes = new Map<string, TimelineNode>();
  for (const event of events) nodes.set(event.id, nodeOf(event));
  const roots = new Map<string | null, TimelineRoot>();
  for (const node of nodes.values()) {
    const parent = node.causationId === null || node.causationId === node.id ? undefined : nodes.get(node.causationId);
    if (parent) {
      parent.children.push(node);
      continue;
    }
    const root = roots.get(node.causationId) ?? { causationId: node.causationId, events: [] };
    roots.set(node.causationId, root);
    root.events.push(node);
  }
  return { correlationId, events: nodes.size, truncated, roots: [...roots.values()] };
}

/** Reads the correlation (up to `limit` events) and builds its tree; undefined when no event carries that id. */
export async function timelineOf(reader: CorrelationReader, correlationId: string, limit = 5_000): Promise<Timeline | undefined> {
  const events = await reader.readCorrelated(correlationId, { limit: limit + 1 });
  if (events.length === 0) return undefined;
  const truncated = events.length > limit;
  return buildTimeline(correlationId, truncated ? events.slice(0, limit) : events, truncated);
}
