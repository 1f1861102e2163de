// Wraps any event store with Prometheus metrics, so every adapter reports the same sentinel_ series.
import { Counter, Histogram, type Registry } from 'prom-client';
import {
  ConcurrencyConflict,
  DuplicateEventConflict,
  InvalidEventStoreRequest,
  isCorrelationReader,
  type AppendResult,
  type CorrelationReader,
  type CountAfterOptions,
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
} from '../../domain/event-store.js';

type AppendOutcome = 'ok' | 'duplicate' | 'conflict' | 'duplicate_conflict' | 'rejected' | 'error';
/** `append` writes one stream; `append_many` several in one transaction, which takes longer and conflicts more. */
type AppendOp = 'append' | 'append_many';
type ReadKind = 'stream' | 'all' | 'count' | 'correlation';

export class InstrumentedEventStore implements EventStore, CorrelationReader {
  private readonly appends: Counter<'result' | 'op'>;
  private readonly appendedEvents: Counter;
  private readonly appendSeconds: Histogram<'result' | 'op'>;
  private readonly reads: Counter<'kind'>;
  private readonly readSeconds: Histogram<'kind'>;

  constructor(
    private readonly inner: EventStore,
    registry: Registry,
  ) {
    this.appends = new Counter({
      name: 'sentinel_event_store_appends_total',
      help: 'Appends by result (ok, duplicate (idempotent retry), conflict (expected revision), duplicate_conflict, rejected (bad input), error) and op (append, append_many)',
      labelNames: ['result', 'op'],
      registers: [registry],
    });
    this.appendedEvents = new Counter({
      name: 'sentinel_event_store_appended_events_total',
      help: 'Events written by successful appends',
      registers: [registry],
    });
    this.appendSeconds = new Histogram({
      name: 'sentinel_event_store_append_duration_seconds',
      help: 'Time to complete an append, by result and op (append, append_many)',
      labelNames: ['result', 'op'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.reads = new Counter({
      name: 'sentinel_event_store_reads_total',
      help: 'Reads by kind: stream, all, count (events counted without being read), or correlation (one correlation id across streams)',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.readSeconds = new Histogram({
      name: 'sentinel_event_store_read_duration_seconds',
      help: 'Time to complete a read, by kind (stream, all, count, correlation)',
      labelNames: ['kind'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    });
  }

  append(stream: string, events: EventToAppend[], options?: { expected?: ExpectedRevision }): Promise<AppendResult> {
    return this.timedAppend('append', () => events.length, async () => {
      const result = await this.inner.append(stream, events, options);
      return { result, duplicate: result.duplicate };
    });
  }

  appendMany(appends: StreamAppend[]): Promise<AppendResult[]> {
    return this.timedAppend('append_many', () => appends.reduce((sum, a) => sum + a.events.length, 0), async () => {
      const results = await this.inner.appendMany(appends);
      // All or nothing: a call either wrote its events or found every one of them stored already.
      return { result: results, duplicate: results.every((r) => r.duplicate) };
    });
  }

  readStream(stream: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return this.timedRead('stream', () => this.inner.readStream(stream, options));
  }

  /** The wrapped store's, when it reads by correlation id; otherwise it refuses, naming the store. */
  readCorrelated(correlationId: string, options?: { limit?: number }): Promise<RecordedEvent[]> {
    const inner = this.inner;
    if (!isCorrelationReader(inner)) {
      return Promise.reject(new Error(`${inner.constructor.name} cannot read events by correlation id`));
    }
    return this.timedRead('correlation', () => inner.readCorrelated(correlationId, options));
  }

  readAll(options?: ReadAllOptions): Promise<ReadAllResult> {
    return this.timedRead('all', () => this.inner.readAll(options));
  }

  countAfter(after: Position | undefined, options?: CountAfterOptions): Promise<number> {
    return this.timedRead('count', () => this.inner.countAfter(after, options));
  }

  isSettled(position: Position): Promise<boolean> {
    return this.inner.isSettled(position);
  }

  subscribe(options?: SubscribeOptions): Subscription {
    return this.inner.subscribe(options);
  }

  getStreamMetadata(stream: string): Promise<StreamMetadata> {
    return this.inner.getStreamMetadata(stream);
  }

  setStreamMetadata(stream: string, metadata: StreamMetadata): Promise<void> {
    return this.inner.setStreamMetadata(stream, metadata);
  }

  deleteStream(stream: string, options?: { expected?: ExpectedRevision }): Promise<void> {
    return this.inner.deleteStream(stream, options);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** `written` counts the events, asked only once the append has succeeded and its input is known to be good. */
  private async timedAppend<T>(op: AppendOp, written: () => number, append: () => Promise<{ result: T; duplicate: boolean }>): Promise<T> {
    const stop = this.appendSeconds.startTimer();
    let outcome: AppendOutcome = 'error';
    try {
      const { result, duplicate } = await append();
      outcome = duplicate ? 'duplicate' : 'ok';
      if (!duplicate) this.appendedEvents.inc(written());
      return result;
    } catch (error) {
      outcome = classify(error);
      throw error;
    } finally {
      stop({ result: outcome, op });
      this.appends.inc({ result: outcome, op });
    }
  }

  private async timedRead<T>(kind: ReadKind, read: () => Promise<T>): Promise<T> {
    const stop = this.readSeconds.startTimer({ kind });
    try {
      return await read();
    } finally {
      stop();
      this.reads.inc({ kind });
    }
  }
}

function classify(error: unknown): AppendOutcome {
  if (error instanceof ConcurrencyConflict) return 'conflict';
  if (error instanceof DuplicateEventConflict) return 'duplicate_conflict';
  if (error instanceof InvalidEventStoreRequest) return 'rejected';
  return 'error';
}
