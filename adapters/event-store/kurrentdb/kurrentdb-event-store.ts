// The event store port on KurrentDB / EventStoreDB, through the official gRPC client.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  ANY,
  AppendRecordSizeExceededError,
  BACKWARDS,
  END,
  FORWARDS,
  KurrentDBClient,
  MaxAppendSizeExceededError,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamDeletedError,
  StreamNotFoundError,
  StreamTombstonedError,
  TransactionMaxSizeExceededError,
  UnsupportedError,
  WrongExpectedVersionError,
  eventTypeFilter,
  excludeSystemEvents,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type AppendResult as KurrentAppendResult,
  type AppendStreamState,
  type CurrentStreamState,
  type EventData,
  type Filter,
  type MultiAppendResult,
  type Position as KurrentPosition,
  type ReadPosition,
  type ReadRevision,
  type RecordedEvent as KurrentRecordedEvent,
  type StreamMetadata as KurrentStreamMetadata,
  type StreamState,
} from '@kurrent/kurrentdb-client';
import {
  ConcurrencyConflict,
  filterAccepts,
  DuplicateEventConflict,
  EventStoreError,
  MAX_CORRELATED_EVENTS,
  InvalidEventStoreRequest,
  StreamDeleted,
  validate,
  type AppendResult,
  type CorrelationReader,
  type CountAfterOptions,
  type EventFilter,
  type EventMetadata,
  type EventStore,
  type EventToAppend,
  type ExpectedRevision,
  type Position,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type RecordedEvent,
  type StreamAppend,
  type StreamMetadata,
  type SubscribeOptions,
  type Subscription,
} from '../../../domain/event-store.js';
import { decodePosition, encodePosition } from '../position.js';

/** The part of the KurrentDB client this adapter uses; tests hand in a fake with the same shape. */
export type KurrentClientLike = Pick<
  KurrentDBClient,
  | 'appendToStream'
  | 'multiStreamAppend'
  | 'readStream'
  | 'readAll'
  | 'subscribeToAll'
  | 'getStreamMetadata'
  | 'setStreamMetadata'
  | 'deleteStream'
  | 'dispose'
>;

export interface KurrentDbEventStoreOptions {
  /** Events asked for per read of `$all` in `readAll`. */
  pageSize?: number;
}

/**
 * KurrentDB events have no schema version and no way to tell a written append from an idempotent replay, so
 * both travel in the event metadata under keys of the store's own; they are removed again on read.
 */
export const SCHEMA_VERSION_KEY = '$schemaVersion';
export const APPEND_ID_KEY = '$appendId';
/**
 * A multi-stream append takes metadata of string values only, so there the caller's metadata travels whole, as
 * JSON text under this key, and the store's own values as text.
 */
export const CALLER_METADATA_KEY = '$metadata';
/**
 * The caller's correlation id, copied where KurrentDB's `$by_correlation_id` standard projection looks for it, so
 * that it links every event of a correlation into `$bc-<correlationId>`; removed again on read.
 */
export const CORRELATION_ID_KEY = '$correlationId';

const DEFAULT_PAGE_SIZE = 1000;
/** How far back a rejected append with no exact expected revision looks for ids it already stored. */
const DUPLICATE_SCAN = 1000;
/** Attempts at a `stream_exists` delete while other writers keep moving the stream. */
const DELETE_ATTEMPTS = 5;
/** KurrentDB's own stream settings; `acl` and `cacheControl` are not the port's and survive its writes. */
const SYSTEM_METADATA_KEYS = ['maxAge', 'maxCount', 'truncateBefore', 'cacheControl', 'acl'] as const;

export class KurrentDbEventStore implements EventStore, CorrelationReader {
  private readonly pageSize: number;

  constructor(
    private readonly client: KurrentClientLike,
    options: KurrentDbEventStoreOptions = {},
  ) {
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  }

  /** A store on a KurrentDB reached through a connection string such as `kurrentdb://localhost:2113?tls=false`. */
  static connect(connectionString: string, options: KurrentDbEventStoreOptions = {}): KurrentDbEventStore {
    return new KurrentDbEventStore(KurrentDBClient.connectionString(connectionString), options);
  }

  async append(
    stream: string,
    events: EventToAppend[],
    options: { expected?: ExpectedRevision } = {},
  ): Promise<AppendResult> {
    const expected = options.expected ?? 'any';
    validate.append(stream, events, expected);
    const appendId = randomUUID();
    const proposed = events.map((e) =>
      jsonEvent({
        id: e.id,
        type: e.type,
        data: e.data,
        metadata: { ...e.metadata, ...correlationKey(e.metadata), [SCHEMA_VERSION_KEY]: e.schemaVersion ?? 1, [APPEND_ID_KEY]: appendId },
      }),
    );
    let result: KurrentAppendResult;
    try {
      result = await this.client.appendToStream(stream, proposed, { streamState: toAppendState(expected) });
    } catch (error) {
      throw await this.appendFailure(stream, events, expected, error);
    }
    if (!result.success) {
      // Only a client built with `throwOnAppendFailure: false` answers this way instead of throwing.
      const actual = result.nextExpectedRevision < 0n ? 'no_stream' : Number(result.nextExpectedRevision);
      throw new ConcurrencyConflict(stream, expected, actual);
    }
    return this.confirmAppend(stream, events, appendId, result.nextExpectedRevision, result.position);
  }

  /**
   * One `multiStreamAppend`, which the server commits as one transaction: every stream's events or none. It needs
   * KurrentDB 25.1 or later; an older server refuses the call, and that refusal is reported as such.
   *
   * Where the server acknowledges a stream's append by its event ids alone, as it does for `appendToStream`, a
   * call that repeats one append already stored beside new ones writes the new ones and answers the repeated one
   * as a duplicate: the results say which. (PostgreSQL refuses such a call.) A retry of a whole call is answered
   * as duplicates on both.
   */
  async appendMany(appends: StreamAppend[]): Promise<AppendResult[]> {
    const requests = validate.appendMany(appends);
    const appendId = randomUUID();
    let response: MultiAppendResult;
    try {
      response = await this.client.multiStreamAppend(
        requests.map(({ stream, events, expected }) => ({
          streamName: stream,
          expectedState: toAppendState(expected),
          events: events.map((e) => multiAppendEvent(e, appendId)),
        })),
      );
    } catch (error) {
      return this.multiAppendFailure(requests, error);
    }
    const revisions = new Map(response.responses.map((r) => [r.streamName, r.revision]));
    // The server reports one log position for the whole call; each stream's own comes from its last event.
    const callPosition: KurrentPosition = { commit: response.position, prepare: response.position };
    return Promise.all(
      requests.map(({ stream, events }) => {
        const revision = revisions.get(stream);
        if (revision === undefined) throw new Error(`KurrentDB did not report the revision of ${stream} after a multi-stream append`);
        return this.confirmAppend(stream, events, appendId, revision, callPosition);
      }),
    );
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    validate.readStream(stream, options);
    const backwards = options.direction === 'backwards';
    const fromRevision: ReadRevision =
      options.from !== undefined ? BigInt(options.from) : backwards ? END : START;
    const events: RecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(stream, {
        fromRevision,
        direction: backwards ? BACKWARDS : FORWARDS,
        ...(options.limit !== undefined ? { maxCount: options.limit } : {}),
      })) {
        if (resolved.event === undefined) continue;
        const revision = Number(resolved.event.revision);
        if (options.to !== undefined && (backwards ? revision < options.to : revision > options.to)) break;
        const event = toRecordedEvent(resolved.event);
        if (event !== undefined) events.push(event);
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw mapStreamError(stream, error);
    }
    return events;
  }

  /**
   * Through `$bc-<correlationId>`, the stream of links KurrentDB's `$by_correlation_id` standard projection keeps
   * (it must be running, reading `$correlationId`, its default). Links resolve to the events themselves, whose own
   * metadata is checked again; a link whose event is gone (deleted, truncated, past its max age) is left out.
   */
  async readCorrelated(correlationId: string, options: { limit?: number } = {}): Promise<RecordedEvent[]> {
    validate.correlationId(correlationId, options.limit);
    const limit = options.limit ?? MAX_CORRELATED_EVENTS;
    const events: RecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(`$bc-${correlationId}`, { fromRevision: START, direction: FORWARDS, resolveLinkTos: true })) {
        const event = resolved.event === undefined ? undefined : toRecordedEvent(resolved.event);
        if (event === undefined || event.metadata.correlationId !== correlationId) continue;
        events.push(event);
        if (events.length >= limit) break;
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw error;
    }
    // Links are appended as the projection gets to them; the log's order is the events' own positions.
    return events.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  }

  async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
    validate.filter(options.filter);
    validate.limit(options.limit);
    const after = options.after;
    // A checkpoint that is not a position is refused before anything is read.
    if (after !== undefined) toClientPosition(after);
    const limit = options.limit ?? DEFAULT_PAGE_SIZE;
    const plan = filterPlan(options.filter);
    // Taken before the scan: when the scan then reaches the end of the log, every event up to this position
    // has been looked at, so the checkpoint may move past the last match without skipping anything.
    const head = await this.headPosition();
    const events: RecordedEvent[] = [];
    let seen = after;
    for await (const { raw, position } of this.forwardAfter(after, plan, () => Math.min(limit - events.length, this.pageSize))) {
      seen = position;
      const event = plan.accepts(raw) ? toRecordedEvent(raw) : undefined;
      if (event === undefined) continue;
      events.push(event);
      if (events.length >= limit) return { events, checkpoint: event.position };
    }
    return { events, checkpoint: latest(seen, head) };
  }

  /**
   * KurrentDB keeps no count of `$all`: this reads forward from `after`, with the same filter as `readAll`, and
   * counts what it would return, one page at a time and keeping none of it. The cost is that of reading the
   * events (their data crosses the wire), bounded by `limit`: ask for a limit.
   */
  async countAfter(after: Position | undefined, options: CountAfterOptions = {}): Promise<number> {
    validate.filter(options.filter);
    validate.limit(options.limit);
    if (after !== undefined) toClientPosition(after);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const plan = filterPlan(options.filter);
    if (limit <= 0) return 0;
    let count = 0;
    for await (const { raw } of this.forwardAfter(after, plan, () => this.pageSize)) {
      if (plan.accepts(raw) && isPortEvent(raw)) count += 1;
      if (count >= limit) break;
    }
    return count;
  }

  /**
   * Every event of `$all` after `after` that the server-side part of `plan` lets through, read forward a page at a
   * time (`pageSize` asked before each page), with its position: what `readAll` and `countAfter` go through.
   */
  private async *forwardAfter(
    after: Position | undefined,
    plan: FilterPlan,
    pageSize: () => number,
  ): AsyncGenerator<{ raw: KurrentRecordedEvent; position: Position }> {
    let fromPosition: ReadPosition = after === undefined ? START : toClientPosition(after);
    let skipUpTo = after;
    for (;;) {
      // A read from a position includes that position's event, which was already handled; ask for one more.
      const maxCount = skipUpTo === undefined ? pageSize() : pageSize() + 1;
      let received = 0;
      let last: KurrentPosition | undefined;
      for await (const resolved of this.client.readAll({ fromPosition, maxCount, filter: plan.server })) {
        received += 1;
        const raw = resolved.event;
        if (raw === undefined) continue;
        last = raw.position;
        const position = encodePosition(raw.position.commit, raw.position.prepare);
        if (skipUpTo !== undefined && position <= skipUpTo) continue;
        yield { raw, position };
      }
      if (received < maxCount || last === undefined) return;
      fromPosition = last;
      skipUpTo = encodePosition(last.commit, last.prepare);
    }
  }

  /** An append is acknowledged once it has its place in the log's total order, so every position is settled. */
  async isSettled(position: Position): Promise<boolean> {
    toClientPosition(position);
    return true;
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    validate.filter(options.filter);
    if (options.batchSize !== undefined) validate.limit(options.batchSize);
    const after = options.after;
    const fromPosition: ReadPosition = after === undefined ? START : toClientPosition(after);
    const plan = filterPlan(options.filter);
    const source = this.client.subscribeToAll(
      { fromPosition, filter: plan.server },
      options.batchSize !== undefined ? { highWaterMark: options.batchSize } : {},
    );
    return new KurrentDbSubscription(source, (resolved) => {
      const raw = resolved.event;
      if (raw === undefined || !plan.accepts(raw)) return undefined;
      // Whether the server resends the event at the start position is not something to rely on.
      if (after !== undefined && encodePosition(raw.position.commit, raw.position.prepare) <= after) return undefined;
      return toRecordedEvent(raw);
    });
  }

  async getStreamMetadata(stream: string): Promise<StreamMetadata> {
    validate.stream(stream);
    const stored = await this.readMetadata(stream);
    const result: StreamMetadata = {};
    if (typeof stored.maxAge === 'number') result.maxAge = stored.maxAge;
    if (typeof stored.maxCount === 'number') result.maxCount = stored.maxCount;
    if (typeof stored.truncateBefore === 'number') {
      // A soft delete sets truncate-before to Int64.MaxValue, which JSON numbers cannot hold exactly.
      result.truncateBefore = Math.min(stored.truncateBefore, Number.MAX_SAFE_INTEGER);
    }
    const custom = Object.fromEntries(
      Object.entries(stored).filter(([key]) => !isSystemMetadataKey(key) && !key.startsWith('$')),
    );
    if (Object.keys(custom).length > 0) result.custom = custom;
    return result;
  }

  async setStreamMetadata(stream: string, metadata: StreamMetadata): Promise<void> {
    validate.stream(stream);
    validate.metadata(metadata);
    checkCustomMetadata(metadata.custom);
    const stored = await this.readMetadata(stream);
    const next: KurrentStreamMetadata = { ...metadata.custom };
    if (stored.acl !== undefined) next.acl = stored.acl;
    if (stored.cacheControl !== undefined) next.cacheControl = stored.cacheControl;
    if (metadata.maxAge !== undefined) next.maxAge = metadata.maxAge;
    if (metadata.maxCount !== undefined) next.maxCount = metadata.maxCount;
    if (metadata.truncateBefore !== undefined) next.truncateBefore = metadata.truncateBefore;
    try {
      await this.client.setStreamMetadata(stream, next);
    } catch (error) {
      throw mapStreamError(stream, error);
    }
  }

  async deleteStream(stream: string, options: { expected?: ExpectedRevision } = {}): Promise<void> {
    const expected = options.expected ?? 'any';
    validate.stream(stream);
    validate.expected(expected);
    if (expected !== 'stream_exists') {
      try {
        await this.client.deleteStream(stream, { expectedRevision: toDeleteState(expected) });
        return;
      } catch (error) {
        throw mapWriteError(stream, expected, error);
      }
    }
    // The client's delete has no "stream exists" expectation: delete at the revision the stream is at now,
    // and try again when another writer moved it in between.
    for (let attempt = 1; ; attempt += 1) {
      const revision = await this.lastRevision(stream);
      if (revision === undefined) throw new ConcurrencyConflict(stream, expected, 'no_stream');
      try {
        await this.client.deleteStream(stream, { expectedRevision: revision });
        return;
      } catch (error) {
        if (error instanceof WrongExpectedVersionError && attempt < DELETE_ATTEMPTS) continue;
        throw mapWriteError(stream, expected, error);
      }
    }
  }

  async ping(): Promise<void> {
    await this.headPosition();
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }

  // ---- append outcome ---------------------------------------------------------------------------------

  /**
   * KurrentDB acknowledges a replayed append (same ids) as a success without writing, whatever the content.
   * The last event of the append tells which happened: it carries this append's id only if this call wrote it.
   */
  private async confirmAppend(
    stream: string,
    events: EventToAppend[],
    appendId: string,
    revision: bigint,
    reported: KurrentPosition | undefined,
  ): Promise<AppendResult> {
    // A read from a hidden revision starts at the next visible one, so the revision must be checked.
    const last = (await this.readRange(stream, revision, 1)).find((e) => e.revision === revision);
    if (last !== undefined && metadataRecord(last.metadata)[APPEND_ID_KEY] === appendId) {
      return { revision: Number(revision), position: positionOf(last.position ?? reported), duplicate: false };
    }
    if (last === undefined) {
      // The stream's own settings (max count, max age, truncate-before) hide the event. A new event is the
      // newest of its stream and stays visible, so this is a replay of events stored long enough ago to be
      // hidden. Their content can no longer be compared, and the server's answer is the only position left.
      return { revision: Number(revision), position: positionOf(reported), duplicate: true };
    }
    const first = revision - BigInt(events.length - 1);
    const stored = new Map(
      (await this.readRange(stream, first < 0n ? 0n : first, events.length)).map((e) => [e.id, e]),
    );
    // The server matched every id; only events still visible can be compared.
    const differing = events
      .filter((e) => {
        const existing = stored.get(e.id);
        return existing !== undefined && !sameContent(e, existing);
      })
      .map((e) => e.id);
    if (differing.length > 0) throw new DuplicateEventConflict(stream, differing);
    return { revision: Number(revision), position: positionOf(last.position), duplicate: true };
  }

  /**
   * A rejected append is either a real concurrency conflict or, as KurrentDB reports it the same way, a batch
   * of which only some ids are already stored.
   */
  private async appendFailure(
    stream: string,
    events: EventToAppend[],
    expected: ExpectedRevision,
    error: unknown,
  ): Promise<unknown> {
    if (!(error instanceof WrongExpectedVersionError)) return mapStreamError(stream, error);
    const actual = toActual(error.actualState);
    if (actual === 'no_stream') return new ConcurrencyConflict(stream, expected, actual);
    let from: number;
    let count = events.length;
    if (typeof expected === 'number') from = expected + 1;
    else if (expected === 'no_stream') from = 0;
    else {
      count = events.length + DUPLICATE_SCAN;
      from = Math.max(0, actual - count + 1);
    }
    const ids = new Set(events.map((e) => e.id));
    let stored: string[];
    try {
      stored = (await this.readRange(stream, BigInt(from), count)).map((e) => e.id).filter((id) => ids.has(id));
    } catch {
      // The conflict itself is the answer the caller needs; failing to refine it must not hide it.
      stored = [];
    }
    return stored.length > 0
      ? new DuplicateEventConflict(stream, stored)
      : new ConcurrencyConflict(stream, expected, actual);
  }

  /**
   * A refused multi-stream append wrote nothing. A stream whose expected state did not hold is either a real
   * conflict or, as for one stream, a retry of a call already stored: then every event of every append is
   * found, and each is answered as a duplicate.
   */
  private async multiAppendFailure(requests: Required<StreamAppend>[], error: unknown): Promise<AppendResult[]> {
    if (error instanceof WrongExpectedVersionError) {
      const found = await Promise.all(requests.map(({ stream, events, expected }) => this.storedOf(stream, events, expected)));
      if (found.every((stored, i) => stored.size === requests[i]!.events.length)) {
        for (const [i, { stream, events }] of requests.entries()) {
          const differing = events.filter((e) => !sameContent(e, found[i]!.get(e.id)!)).map((e) => e.id);
          if (differing.length > 0) throw new DuplicateEventConflict(stream, differing);
        }
        return requests.map(({ events }, i) => duplicateResult(events, found[i]!));
      }
      const partly = found.findIndex((stored) => stored.size > 0);
      if (partly >= 0) throw new DuplicateEventConflict(requests[partly]!.stream, [...found[partly]!.keys()]);
      const failed = requests.find((r) => r.stream === error.streamName);
      throw new ConcurrencyConflict(error.streamName, failed?.expected ?? 'any', toActual(error.actualState));
    }
    throw multiAppendError(error);
  }

  /** The events of an append the stream already holds, by id: where a retry of it would have put them. */
  private async storedOf(stream: string, events: EventToAppend[], expected: ExpectedRevision): Promise<Map<string, KurrentRecordedEvent>> {
    const ids = new Set(events.map((e) => e.id));
    let candidates: KurrentRecordedEvent[];
    try {
      candidates =
        typeof expected === 'number'
          ? await this.readRange(stream, BigInt(expected + 1), events.length)
          : await this.readNewest(stream, events.length + DUPLICATE_SCAN);
    } catch {
      // The conflict itself is the answer the caller needs; failing to refine it must not hide it.
      candidates = [];
    }
    return new Map(candidates.filter((e) => ids.has(e.id)).map((e) => [e.id, e]));
  }

  // ---- reads ------------------------------------------------------------------------------------------

  private async readRange(stream: string, from: bigint, count: number): Promise<KurrentRecordedEvent[]> {
    const events: KurrentRecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(stream, { fromRevision: from, maxCount: count })) {
        if (resolved.event !== undefined) events.push(resolved.event);
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw error;
    }
    return events;
  }

  private async readNewest(stream: string, count: number): Promise<KurrentRecordedEvent[]> {
    const events: KurrentRecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(stream, { fromRevision: END, direction: BACKWARDS, maxCount: count })) {
        if (resolved.event !== undefined) events.push(resolved.event);
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw error;
    }
    return events;
  }

  private async lastRevision(stream: string): Promise<bigint | undefined> {
    try {
      for await (const resolved of this.client.readStream(stream, {
        fromRevision: END,
        direction: BACKWARDS,
        maxCount: 1,
      })) {
        if (resolved.event !== undefined) return resolved.event.revision;
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return undefined;
      throw mapStreamError(stream, error);
    }
    return undefined;
  }

  /** The position of the newest record in `$all`, system records included. */
  private async headPosition(): Promise<Position | undefined> {
    for await (const resolved of this.client.readAll({ fromPosition: END, direction: BACKWARDS, maxCount: 1 })) {
      const position = resolved.event?.position;
      if (position !== undefined) return encodePosition(position.commit, position.prepare);
    }
    return undefined;
  }

  private async readMetadata(stream: string): Promise<KurrentStreamMetadata> {
    try {
      return (await this.client.getStreamMetadata(stream)).metadata ?? {};
    } catch (error) {
      throw mapStreamError(stream, error);
    }
  }
}

/** A catch-up subscription to `$all`; ending the iteration or `close()` cancels it on the server. */
class KurrentDbSubscription implements Subscription {
  private closed = false;
  private failure: unknown;

  constructor(
    private readonly source: AllStreamSubscription,
    private readonly accept: (resolved: AllStreamResolvedEvent) => RecordedEvent | undefined,
  ) {
    // The client reports a failed subscription as an 'error' event, which would bring the process down when
    // it comes before anyone iterates; it is kept and thrown to the consumer instead.
    source.on('error', (error) => {
      this.failure ??= error;
    });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RecordedEvent, void, undefined> {
    let failed = false;
    try {
      if (this.failure !== undefined) throw this.failure;
      for await (const resolved of this.source as AsyncIterable<AllStreamResolvedEvent>) {
        if (this.closed) return;
        const event = this.accept(resolved);
        if (event !== undefined) yield event;
      }
    } catch (error) {
      // Closing destroys the stream under a pending read, which then rejects: that is the end, not a failure.
      if (this.closed) return;
      failed = true;
      throw error;
    } finally {
      if (failed) await this.close().catch(() => undefined);
      else await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.source.unsubscribe();
    } catch (error) {
      // A subscription that already failed has nothing left to cancel; its own failure is the one to report.
      if (this.failure === undefined) throw error;
    } finally {
      this.source.destroy();
    }
  }
}

// ---- mapping --------------------------------------------------------------------------------------------

function toAppendState(expected: ExpectedRevision): AppendStreamState {
  switch (expected) {
    case 'any':
      return ANY;
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    default:
      return BigInt(expected);
  }
}

function toDeleteState(expected: Exclude<ExpectedRevision, 'stream_exists'>): StreamState {
  switch (expected) {
    case 'any':
      return ANY;
    case 'no_stream':
      return NO_STREAM;
    default:
      return BigInt(expected);
  }
}

function toActual(state: CurrentStreamState): number | 'no_stream' {
  // Newer servers report a deleted or tombstoned stream with a negative revision.
  return typeof state === 'bigint' && state >= 0n ? Number(state) : 'no_stream';
}

function toClientPosition(position: Position): KurrentPosition {
  const [commit, prepare] = decodePosition(position);
  return { commit, prepare };
}

/** How the server reports a multi-stream append it refused for a reason other than an expected state. */
function multiAppendError(error: unknown): unknown {
  if (error instanceof StreamTombstonedError) return new StreamDeleted(error.stream);
  if (error instanceof StreamDeletedError) return new StreamDeleted(error.streamName);
  if (error instanceof TransactionMaxSizeExceededError || error instanceof MaxAppendSizeExceededError) {
    const limit = error instanceof TransactionMaxSizeExceededError ? `${error.size} bytes, at most ${error.maxSize}` : `at most ${error.maxAppendSize} bytes`;
    return new InvalidEventStoreRequest(`invalid multi-stream append: larger than the server takes in one transaction (${limit})`, [
      { path: 'appends', message: 'too large for one transaction on this server' },
    ]);
  }
  if (error instanceof AppendRecordSizeExceededError) {
    return new InvalidEventStoreRequest(`invalid append to stream ${JSON.stringify(error.stream)}: event ${error.recordId} is ${error.size} bytes, at most ${error.maxSize}`, [
      { path: 'events', message: `event ${error.recordId} is larger than the server accepts` },
    ]);
  }
  if (error instanceof UnsupportedError || (error as { code?: unknown } | undefined)?.code === GrpcStatus.UNIMPLEMENTED) {
    return new EventStoreError('multi-stream appends need KurrentDB 25.1 or later; this server does not offer them');
  }
  return error;
}

/** The store's copy of the caller's correlation id, when there is one (see CORRELATION_ID_KEY). */
function correlationKey(metadata: EventToAppend['metadata']): Record<string, string> {
  const correlationId = metadata?.correlationId;
  return typeof correlationId === 'string' ? { [CORRELATION_ID_KEY]: correlationId } : {};
}

/** An event as a multi-stream append sends it: metadata of strings only (see CALLER_METADATA_KEY). */
function multiAppendEvent(event: EventToAppend, appendId: string): EventData {
  return jsonEvent({
    id: event.id,
    type: event.type,
    data: event.data,
    metadata: {
      [CALLER_METADATA_KEY]: JSON.stringify(event.metadata ?? {}),
      ...correlationKey(event.metadata),
      [SCHEMA_VERSION_KEY]: String(event.schemaVersion ?? 1),
      [APPEND_ID_KEY]: appendId,
    },
  });
}

/** A retried append, every event of which is stored: answered with its last event, as a duplicate. */
function duplicateResult(events: EventToAppend[], stored: Map<string, KurrentRecordedEvent>): AppendResult {
  const last = events.map((e) => stored.get(e.id)!).reduce((a, b) => (b.revision > a.revision ? b : a));
  return { revision: Number(last.revision), position: positionOf(last.position), duplicate: true };
}

function mapStreamError(stream: string, error: unknown): unknown {
  if (error instanceof StreamDeletedError || error instanceof StreamTombstonedError) return new StreamDeleted(stream);
  return error;
}

function mapWriteError(stream: string, expected: ExpectedRevision, error: unknown): unknown {
  if (error instanceof WrongExpectedVersionError) {
    return new ConcurrencyConflict(stream, expected, toActual(error.actualState));
  }
  return mapStreamError(stream, error);
}

/**
 * Events that are not JSON objects (binary payloads, links) were not written through this port and have no
 * place in its envelope, so every read leaves them out.
 */
function toRecordedEvent(event: KurrentRecordedEvent): RecordedEvent | undefined {
  if (!isPortEvent(event)) return undefined;
  const { schemaVersion, caller } = splitMetadata(event.metadata);
  return {
    id: event.id,
    stream: event.streamId,
    type: event.type,
    schemaVersion: schemaVersion ?? 1,
    revision: Number(event.revision),
    position: positionOf(event.position),
    recordedAt: event.created,
    data: event.data,
    metadata: caller as EventMetadata,
  };
}

function isPortEvent(event: KurrentRecordedEvent): event is KurrentRecordedEvent & { data: Record<string, unknown> } {
  return event.isJson && isRecord(event.data);
}

function sameContent(proposed: EventToAppend, stored: KurrentRecordedEvent): boolean {
  if (!stored.isJson || stored.type !== proposed.type) return false;
  const { schemaVersion, caller } = splitMetadata(stored.metadata);
  return (
    (schemaVersion ?? 1) === (proposed.schemaVersion ?? 1) &&
    isDeepStrictEqual(stored.data, asStored(proposed.data)) &&
    isDeepStrictEqual(caller, splitMetadata(asStored(proposed.metadata ?? {})).caller)
  );
}

/**
 * Stored metadata taken apart into the store's own keys and what the caller wrote. An event of a multi-stream
 * append carries the caller's metadata as JSON text, and any other key there is not the caller's.
 */
function splitMetadata(metadata: unknown): { schemaVersion: number | undefined; caller: Record<string, unknown> } {
  const {
    [SCHEMA_VERSION_KEY]: schemaVersion,
    [APPEND_ID_KEY]: _appendId,
    [CALLER_METADATA_KEY]: packed,
    [CORRELATION_ID_KEY]: _correlationId,
    ...caller
  } = metadataRecord(metadata);
  return { schemaVersion: schemaVersionOf(schemaVersion), caller: typeof packed === 'string' ? unpackMetadata(packed) : caller };
}

function unpackMetadata(packed: string): Record<string, unknown> {
  try {
    return metadataRecord(JSON.parse(packed));
  } catch {
    return {};
  }
}

/** A schema version as stored: a number, or its text from a multi-stream append. */
function schemaVersionOf(value: unknown): number | undefined {
  const version = typeof value === 'string' && /^[1-9][0-9]{0,8}$/.test(value) ? Number(value) : value;
  return typeof version === 'number' && Number.isInteger(version) && version >= 1 ? version : undefined;
}

/** A value as it comes back from the store after its JSON round trip (undefined fields gone, dates as strings). */
function asStored(value: Record<string, unknown>): unknown {
  return JSON.parse(JSON.stringify(value));
}

function metadataRecord(metadata: unknown): Record<string, unknown> {
  return isRecord(metadata) ? metadata : {};
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function positionOf(position: KurrentPosition | undefined): Position {
  if (position === undefined) {
    throw new Error('KurrentDB did not report an event position; the server must be EventStoreDB 22.6 or later');
  }
  return encodePosition(position.commit, position.prepare);
}

function latest(a: Position | undefined, b: Position | undefined): Position | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

// ---- filters --------------------------------------------------------------------------------------------

interface FilterPlan {
  /** What the server filters on: one dimension only, so the other is checked here. */
  server: Filter;
  accepts(event: KurrentRecordedEvent): boolean;
}

function filterPlan(filter: EventFilter | undefined): FilterPlan {
  const types = filter?.types?.length ? filter.types : undefined;
  const prefixes = filter?.streamPrefixes?.length ? filter.streamPrefixes : undefined;
  const server = types
    ? eventTypeFilter({ regex: `^(?:${types.map(escapeRegex).join('|')})$` })
    : prefixes
      ? streamNameFilter({ prefixes })
      : excludeSystemEvents();
  return {
    server,
    accepts: (event) => !event.type.startsWith('$') && filterAccepts(filter, event.type, event.streamId),
  };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- metadata -------------------------------------------------------------------------------------------

function isSystemMetadataKey(key: string): boolean {
  return (SYSTEM_METADATA_KEYS as readonly string[]).includes(key);
}

/** Custom keys sit beside KurrentDB's own settings, so they must not take their names. */
function checkCustomMetadata(custom: Record<string, unknown> | undefined): void {
  const clashing = Object.keys(custom ?? {}).filter((key) => isSystemMetadataKey(key) || key.startsWith('$'));
  if (clashing.length === 0) return;
  const issues = clashing.map((key) => ({
    path: `custom.${key}`,
    message: `"${key}" is reserved by the store; use a name that does not start with "$" and is not one of ${SYSTEM_METADATA_KEYS.join(', ')}`,
  }));
  throw new InvalidEventStoreRequest(
    `invalid stream metadata: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues,
  );
}
