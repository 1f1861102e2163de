// A recorded event as a Kafka message in CloudEvents binary mode: the event's data is the value, its envelope the headers.
import type { IHeaders } from 'kafkajs';
import type { Position, RecordedEvent } from '../../domain/event-store.js';

/** Header names; CloudEvents' Kafka binding prefixes its attributes with `ce_`. */
export const HEADERS = {
  specversion: 'ce_specversion',
  id: 'ce_id',
  type: 'ce_type',
  source: 'ce_source',
  time: 'ce_time',
  contentType: 'content-type',
  traceparent: 'traceparent',
  /** The event's global position in Sentinel's log: what a publisher reads back to know how far it got. */
  position: 'sentinel_position',
  /** The event's 0-based revision within its stream. */
  revision: 'sentinel_revision',
} as const;

export interface EventMessage {
  /** The stream name, so that every event of a stream lands in one partition, in order. */
  key: string;
  value: string;
  headers: Record<string, string>;
  /** Milliseconds since the epoch: when the event was recorded, not when it was published. */
  timestamp: string;
}

/**
 * `ce_type` names the event type and the schema version its data was written at (`sentinel.DeploymentScaled.v1`):
 * Sentinel upcasts old versions when it reads, and a consumer needs to know which shape it got.
 */
export function cloudEventType(event: Pick<RecordedEvent, 'type' | 'schemaVersion'>): string {
  return `sentinel.${event.type}.v${event.schemaVersion}`;
}

/** `ce_source`: the stream the event belongs to, as a URI reference. */
export function cloudEventSource(stream: string): string {
  return `/sentinel/${encodeURIComponent(stream)}`;
}

/** `traceparent` is the span that publishes the event, a child of the event's own; the event's when not given. */
export function toEventMessage(event: RecordedEvent, traceparent = event.metadata.traceparent): EventMessage {
  const headers: Record<string, string> = {
    [HEADERS.specversion]: '1.0',
    [HEADERS.id]: event.id,
    [HEADERS.type]: cloudEventType(event),
    [HEADERS.source]: cloudEventSource(event.stream),
    [HEADERS.time]: event.recordedAt.toISOString(),
    [HEADERS.contentType]: 'application/json',
    [HEADERS.position]: event.position,
    [HEADERS.revision]: String(event.revision),
  };
  if (typeof traceparent === 'string') headers[HEADERS.traceparent] = traceparent;
  return { key: event.stream, value: JSON.stringify(event.data), headers, timestamp: String(event.recordedAt.getTime()) };
}

/** The `sentinel_position` a message was published with; undefined for a message without one. */
export function positionOf(headers: IHeaders | undefined): Position | undefined {
  return headerText(headers, HEADERS.position);
}

/** One header as text; a header sent more than once counts by its last value. */
export function headerText(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const last = Array.isArray(value) ? value.at(-1) : value;
  return last === undefined ? undefined : last.toString();
}
