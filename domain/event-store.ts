// The event store port: the system of record every side of Sentinel reads and appends through.
import { z } from 'zod';

/**
 * An opaque, totally ordered global checkpoint. Adapters encode positions as fixed-width strings, so two
 * positions from the same store compare with plain string comparison (see `comparePositions`).
 */
export type Position = string;

/** The state a stream must be in for an append to go ahead. A number is the exact current revision. */
export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | number;

export type ActorKind = 'user' | 'service' | 'system';

export interface EventMetadata {
  correlationId?: string;
  causationId?: string;
  actor?: { id: string; kind: ActorKind };
  traceparent?: string;
  source?: string;
  [key: string]: unknown;
}

export interface EventToAppend {
  /** Client-assigned UUID; the idempotency key of the append within its stream. */
  id: string;
  type: string;
  schemaVersion?: number;
  data: Record<string, unknown>;
  metadata?: EventMetadata;
}

export interface RecordedEvent {
  id: string;
  stream: string;
  type: string;
  schemaVersion: number;
  /** 0-based, per stream. */
  revision: number;
  position: Position;
  recordedAt: Date;
  data: Record<string, unknown>;
  metadata: EventMetadata;
}

export interface AppendResult {
  /** Revision of the last event of the append. */
  revision: number;
  /** Position of the last event of the append. */
  position: Position;
  /** True when every event id was already stored and nothing was written. */
  duplicate: boolean;
}

/** One stream's part of a multi-stream append. */
export interface StreamAppend {
  stream: string;
  events: EventToAppend[];
  /** 'any' when absent, as for `append`. */
  expected?: ExpectedRevision;
}

export interface CountAfterOptions {
  filter?: EventFilter;
  /** Counting stops here: the answer is at most this. No bound when absent. */
  limit?: number;
}

export interface ReadStreamOptions {
  /** First revision to read (inclusive). Defaults to the start, or the end when reading backwards. */
  from?: number;
  /** Last revision to read (inclusive). */
  to?: number;
  direction?: 'forwards' | 'backwards';
  limit?: number;
}

export interface EventFilter {
  types?: string[];
  streamPrefixes?: string[];
}

/** Whether an event of `type` in `stream` passes the filter: one of its types, and one of its stream prefixes, where it names any. */
export function filterAccepts(filter: EventFilter | undefined, type: string, stream: string): boolean {
  if (filter?.types?.length && !filter.types.includes(type)) return false;
  if (filter?.streamPrefixes?.length && !filter.streamPrefixes.some((prefix) => stream.startsWith(prefix))) return false;
  return true;
}

export interface ReadAllOptions {
  /** Read events strictly after this position; from the beginning of the log when absent. */
  after?: Position;
  filter?: EventFilter;
  limit?: number;
}

export interface ReadAllResult {
  events: RecordedEvent[];
  /**
   * Where the next read continues from. With a filter this can lie past the last returned event: the
   * store has looked at the events in between and none matched.
   */
  checkpoint: Position | undefined;
}

export interface SubscribeOptions {
  after?: Position;
  filter?: EventFilter;
  /** Events fetched per read while catching up. */
  batchSize?: number;
}

/** Catch-up, then live, in global order. Iterate with `for await`; `break` or `close()` ends it. */
export interface Subscription extends AsyncIterable<RecordedEvent> {
  close(): Promise<void>;
}

export interface StreamMetadata {
  /** Events older than this many seconds are not returned by `readStream`. */
  maxAge?: number;
  /** Only the newest `maxCount` events are returned by `readStream`. */
  maxCount?: number;
  /** Events with a lower revision are not returned by `readStream` (soft delete). */
  truncateBefore?: number;
  custom?: Record<string, unknown>;
}

export interface EventStore {
  append(stream: string, events: EventToAppend[], options?: { expected?: ExpectedRevision }): Promise<AppendResult>;
  /**
   * Appends to several streams as one: either every append is stored or none is. A stream whose expected state
   * does not hold fails the whole call with a ConcurrencyConflict naming that stream; when every event of every
   * append is stored already (a retry), each is answered as `append` answers one (duplicate: true) and nothing
   * is written, and when only some are, the call fails with a DuplicateEventConflict. Each append is checked as
   * `append` checks one, a stream may appear only once, and the events get increasing positions in the order
   * given, stream by stream. One result per append, in order.
   */
  appendMany(appends: StreamAppend[]): Promise<AppendResult[]>;
  readStream(stream: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  readAll(options?: ReadAllOptions): Promise<ReadAllResult>;
  /**
   * How many events (matching `filter`) lie after `after` (from the start when absent), counting at most
   * `limit`: the events `readAll` would return from there, counted where they are kept rather than loaded.
   */
  countAfter(after: Position | undefined, options?: CountAfterOptions): Promise<number>;
  /**
   * True once every event the store will ever order at or before `position` can be read. Until then a
   * `readAll` that finds nothing up to `position` proves nothing: a write ordered before it may still commit.
   * The same holds for `subscribe`: start one from a checkpoint a read or a subscription returned, never from
   * the position of an append, which may lie ahead of events that become visible after it was returned.
   */
  isSettled(position: Position): Promise<boolean>;
  subscribe(options?: SubscribeOptions): Subscription;
  getStreamMetadata(stream: string): Promise<StreamMetadata>;
  setStreamMetadata(stream: string, metadata: StreamMetadata): Promise<void>;
  /** Soft delete: reads return nothing up to the current revision; a later append continues the revisions. */
  deleteStream(stream: string, options?: { expected?: ExpectedRevision }): Promise<void>;
  /** Resolves when the store is reachable and its schema is in place. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** At most this many events are read for one correlation id: a causal timeline, not a log dump. */
export const MAX_CORRELATED_EVENTS = 10_000;

/**
 * Every event recorded under one correlation id (`metadata.correlationId`), across streams, in log order: what a
 * causal timeline is built from. A store offers it beside the `EventStore` port when it can find them without
 * reading the whole log (an index, a by-correlation projection). Events a stream's metadata hides are left out.
 */
export interface CorrelationReader {
  readCorrelated(correlationId: string, options?: { limit?: number }): Promise<RecordedEvent[]>;
}

export function isCorrelationReader(store: unknown): store is CorrelationReader {
  return typeof (store as Partial<CorrelationReader> | undefined)?.readCorrelated === 'function';
}

export function comparePositions(a: Position, b: Position): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- errors -------------------------------------------------------------------------------------------

export class EventStoreError extends Error {
  override name = 'EventStoreError';
}

/** The stream was not in the expected state; nothing was written. */
export class ConcurrencyConflict extends EventStoreError {
  override name = 'ConcurrencyConflict';
  constructor(
    readonly stream: string,
    readonly expected: ExpectedRevision,
    /** The stream's current revision, or 'no_stream'. */
    readonly actual: number | 'no_stream',
  ) {
    super(`stream ${stream}: expected ${describeExpected(expected)}, but the stream is at ${describeActual(actual)}`);
  }
}

/** An event id already stored in the stream came again with different content; nothing was written. */
export class DuplicateEventConflict extends EventStoreError {
  override name = 'DuplicateEventConflict';
  constructor(
    readonly stream: string,
    readonly eventIds: string[],
  ) {
    super(
      `stream ${stream}: event id(s) ${eventIds.join(', ')} already stored with different content, ` +
        'or only part of the batch was stored before; use fresh ids for new events',
    );
  }
}

/** The request itself is malformed; nothing was read or written. */
export class InvalidEventStoreRequest extends EventStoreError {
  override name = 'InvalidEventStoreRequest';
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
  }
}

/** The stream was hard-deleted (tombstoned) and can never be written again. */
export class StreamDeleted extends EventStoreError {
  override name = 'StreamDeleted';
  constructor(readonly stream: string) {
    super(`stream ${stream} has been permanently deleted`);
  }
}

function describeExpected(expected: ExpectedRevision): string {
  return typeof expected === 'number' ? `revision ${expected}` : expected;
}

function describeActual(actual: number | 'no_stream'): string {
  return actual === 'no_stream' ? 'no stream' : `revision ${actual}`;
}

// ---- request validation, shared by every adapter ------------------------------------------------------

const MAX_EVENTS_PER_APPEND = 10_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EVENT_TYPE = /^[A-Za-z][A-Za-z0-9_.]{0,199}$/;

const streamName = z
  .string()
  .min(1, 'a stream name is required')
  .max(512, 'a stream name is at most 512 characters')
  .refine((s) => !s.startsWith('$'), 'stream names starting with $ are reserved for the store');

const eventToAppend = z.object({
  id: z.string().regex(UUID, 'an event id must be a UUID'),
  type: z.string().regex(EVENT_TYPE, 'an event type is a name of letters, digits, "_" and "." (PascalCase)'),
  schemaVersion: z.number().int().min(1).optional(),
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()).optional(),
}).strict();

const expectedRevision = z.union([
  z.enum(['any', 'no_stream', 'stream_exists']),
  z.number().int().min(0, 'an expected revision is 0 or more'),
]);

const appendRequest = z.object({
  stream: streamName,
  events: z
    .array(eventToAppend)
    .min(1, 'an append needs at least one event')
    .max(MAX_EVENTS_PER_APPEND, `an append holds at most ${MAX_EVENTS_PER_APPEND} events`)
    .refine((events) => new Set(events.map((e) => e.id)).size === events.length, 'event ids must be unique within an append'),
  expected: expectedRevision,
});

/** Every append of a multi-stream append together, so that one transaction stays bounded. */
const MAX_EVENTS_PER_MULTI_APPEND = MAX_EVENTS_PER_APPEND;

const readStreamRequest = z.object({
  stream: streamName,
  from: z.number().int().min(0).optional(),
  to: z.number().int().min(0).optional(),
  direction: z.enum(['forwards', 'backwards']).optional(),
  limit: z.number().int().min(1).optional(),
});

const filter = z
  .object({
    types: z.array(z.string().min(1)).optional(),
    streamPrefixes: z.array(z.string().min(1)).optional(),
  })
  .strict();

const metadataRequest = z
  .object({
    maxAge: z.number().int().min(1).optional(),
    maxCount: z.number().int().min(1).optional(),
    truncateBefore: z.number().int().min(0).optional(),
    custom: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

/** Accepts only what `appendRequest` accepts; may refuse more, since zod then decides and explains. */
export function appendLooksValid(stream: unknown, events: unknown, expected: unknown): boolean {
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 512 || stream.startsWith('$')) return false;
  if (!(expected === 'any' || expected === 'no_stream' || expected === 'stream_exists')) {
    if (typeof expected !== 'number' || !Number.isSafeInteger(expected) || expected < 0) return false;
  }
  if (!Array.isArray(events) || events.length === 0 || events.length > MAX_EVENTS_PER_APPEND) return false;
  for (let i = 0; i < events.length; i++) {
    const e: unknown = events[i];
    if (typeof e !== 'object' || e === null) return false;
    const { id, type, schemaVersion, data, metadata } = e as Record<string, unknown>;
    if (typeof id !== 'string' || !UUID.test(id)) return false;
    if (typeof type !== 'string' || !EVENT_TYPE.test(type)) return false;
    if (schemaVersion !== undefined && (!Number.isSafeInteger(schemaVersion) || (schemaVersion as number) < 1)) return false;
    if (!isPlainRecord(data) || (metadata !== undefined && !isPlainRecord(metadata))) return false;
    for (const key in e) if (!EVENT_KEYS.has(key)) return false;
  }
  return distinctIds(events as { id: string }[]);
}

function distinctIds(events: { id: string }[]): boolean {
  if (events.length > 16) return new Set(events.map((e) => e.id)).size === events.length;
  for (let i = 1; i < events.length; i++) {
    for (let j = 0; j < i; j++) if (events[j]!.id === events[i]!.id) return false;
  }
  return true;
}

const EVENT_KEYS = new Set(['id', 'type', 'schemaVersion', 'data', 'metadata']);

function isPlainRecord(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
  throw new InvalidEventStoreRequest(
    `invalid ${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues,
  );
}

export const validate = {
  append(stream: string, events: EventToAppend[], expected: ExpectedRevision): void {
    // Appends are the hot path: a check that allocates nothing lets good requests through, and the zod schema,
    // which copies what it parses, runs only to explain a rejection.
    if (appendLooksValid(stream, events, expected)) return;
    parse(appendRequest, { stream, events, expected }, 'append');
  },
  /** Checks every append as `append` does, naming the one at fault, and returns them with `expected` filled in. */
  appendMany(appends: StreamAppend[]): Required<StreamAppend>[] {
    if (!Array.isArray(appends) || appends.length === 0) {
      throw new InvalidEventStoreRequest('invalid multi-stream append: it needs at least one stream', [
        { path: 'appends', message: 'at least one append is required' },
      ]);
    }
    const seen = new Set<string>();
    let total = 0;
    const checked = appends.map((append, i) => {
      const { stream, events, expected = 'any' } = (append ?? {}) as Partial<StreamAppend>;
      try {
        validate.append(stream as string, events as EventToAppend[], expected);
      } catch (error) {
        if (!(error instanceof InvalidEventStoreRequest)) throw error;
        const issues = error.issues.map((issue) => ({ path: issue.path === '(root)' ? `appends.${i}` : `appends.${i}.${issue.path}`, message: issue.message }));
        throw new InvalidEventStoreRequest(
          `invalid append to stream ${JSON.stringify(stream)} (appends.${i}): ${error.issues.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
          issues,
        );
      }
      if (seen.has(stream!)) {
        throw new InvalidEventStoreRequest(
          `invalid multi-stream append: stream ${JSON.stringify(stream)} appears more than once; put its events in one append`,
          [{ path: `appends.${i}.stream`, message: 'a stream may appear only once' }],
        );
      }
      seen.add(stream!);
      total += events!.length;
      return { stream: stream!, events: events!, expected };
    });
    if (total > MAX_EVENTS_PER_MULTI_APPEND) {
      throw new InvalidEventStoreRequest(
        `invalid multi-stream append: ${total} events, at most ${MAX_EVENTS_PER_MULTI_APPEND} in all`,
        [{ path: 'appends', message: `at most ${MAX_EVENTS_PER_MULTI_APPEND} events in all` }],
      );
    }
    return checked;
  },
  readStream(stream: string, options: ReadStreamOptions): void {
    parse(readStreamRequest, { stream, ...options }, 'stream read');
  },
  filter(value: EventFilter | undefined): void {
    if (value !== undefined) parse(filter, value, 'event filter');
  },
  limit(value: number | undefined): void {
    if (value !== undefined) parse(z.number().int().min(1), value, 'limit');
  },
  stream(stream: string): void {
    parse(streamName, stream, 'stream name');
  },
  correlationId(correlationId: string, limit: number | undefined): void {
    parse(
      z
        .string()
        .min(1, 'a correlation id is required')
        .max(512, 'a correlation id is at most 512 characters')
        .refine((value) => !/\p{Cc}/u.test(value), 'a correlation id has no control characters'),
      correlationId,
      'correlation id',
    );
    parse(z.number().int().min(1).max(MAX_CORRELATED_EVENTS, `at most ${MAX_CORRELATED_EVENTS}`).optional(), limit, 'limit');
  },
  metadata(metadata: StreamMetadata): void {
    parse(metadataRequest, metadata, 'stream metadata');
  },
  expected(expected: ExpectedRevision): void {
    parse(expectedRevision, expected, 'expected revision');
  },
};
