// Who a reactor's commands come from, and event ids derived from what caused them, so a replay appends nothing.
import { randomUUID } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import { activeTraceparent } from '../adapters/tracing.js';
import type { CommandContext } from '../commands/command-handler.js';
import type { RecordedEvent } from '../domain/event-store.js';

/** Namespace of every id a reactor derives (uuid v5). */
const REACTOR_NAMESPACE = '6f1f4e3c-8a0b-5d2e-9c47-2b1e0d9a7f35';

export const REACTOR_ACTOR = { id: 'sentinel-reactor', kind: 'system' as const };

/**
 * The context for a command a reactor sends because of `cause`, the `step`th thing it does about it. Its trace goes
 * on from the reaction's span (the runtime's, a child of the cause's), or from the cause when no span is active.
 */
export function reactionTo(reactor: string, cause: RecordedEvent, step: string): CommandContext {
  const traceparent = activeTraceparent() ?? cause.metadata.traceparent;
  return {
    actor: REACTOR_ACTOR,
    correlationId: cause.metadata.correlationId ?? cause.id,
    causationId: cause.id,
    ...(traceparent ? { traceparent } : {}),
    source: `reactor:${reactor}`,
    eventIds: (index) => uuidv5(`${reactor}\u0000${cause.id}\u0000${step}\u0000${index}`, REACTOR_NAMESPACE),
  };
}

/**
 * The context for a command a reactor sends because of something it observed on a cluster, named by `key`
 * (such as the object and the state it reached): two instances observing the same thing derive the same ids.
 * `traceparent` is that of the change whose outcome this is, which the observation's events continue; without it,
 * the span active now.
 */
export function reactionToObservation(reactor: string, key: string, correlationId?: string, traceparent?: string): CommandContext {
  const causationId = uuidv5(`${reactor}\u0000observed\u0000${key}`, REACTOR_NAMESPACE);
  const trace = traceparent ?? activeTraceparent();
  return {
    actor: REACTOR_ACTOR,
    correlationId: correlationId ?? causationId,
    causationId,
    ...(trace ? { traceparent: trace } : {}),
    source: `reactor:${reactor}`,
    eventIds: (index) => uuidv5(`${reactor}\u0000${key}\u0000${index}`, REACTOR_NAMESPACE),
  };
}

/**
 * The context for a report whose events the decider makes unique by itself (it records a change of state, once), so
 * the ids need not be derived: such as whether a cluster can be reached.
 */
export function reportBy(reactor: string): CommandContext {
  const id = randomUUID();
  return { actor: REACTOR_ACTOR, correlationId: id, causationId: id, source: `reactor:${reactor}` };
}
