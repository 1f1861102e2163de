// Wraps any event store with Prometheus metrics, so every adapter reports the same sentinel_ series.
import { Counter, Histogram, type Registry } from 'prom-client';
import {
  ConcurrencyConflict,
  DuplicateEventConflict,
  InvalidEventStoreRequest,
  type AppendResult,
  type EventStore,
  type EventToAppend,
  type ExpectedRevision,
  type Position,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type RecordedEvent,
  type StreamMetadata,
  type SubscribeOptions,
  type Subscription,
} from '../../domain/event-store.js';

type AppendOutcome = 'ok' | 'duplicate' | 'conflict' | 'duplicate_conflict' | 'rejected' | 'error';

export class InstrumentedEventStore implements EventStore {
  private readonly appends: Counter<'result'>;
  private readonly appendedEvents: Counter;
  private readonly appendSeconds: Histogram<'result'>;
  private readonly reads: Counter<'kind'>;
  private readonly readSeconds: Histogram<'kind'>;

  constructor(
    private readonly inner: EventStore,
    registry: Registry,
  ) {
    this.appends = new Counter({
      name: 'sentinel_event_store_appends_total',
      help: 'Appends by result: ok, duplicate (idempotent retry), conflict (expected revision), duplicate_conflict, rejected (bad input), error',
      labelNames: ['result'],
      registers: [registry],
    });
    this.appendedEvents = new Counter({
      name: 'sentinel_event_store_appended_events_total',
      help: 'Events written by successful appends',
      registers: [registry],
    });
    this.appendSeconds = new Histogram({
      name: 'sentinel_event_store_append_duration_seconds',
      help: 'Time to complete an append, by result',
      labelNames: ['result'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.reads = new Counter({
      name: 'sentinel_event_store_reads_total',
      help: 'Reads by kind: stream or all',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.readSeconds = new Histogram({
      name: 'sentinel_event_store_read_duration_seconds',
      help: 'Time to complete a read, by kind',
      labelNames: ['kind'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    });
  }

  async append(stream: string, events: EventToAppend[], options?: { expected?: ExpectedRevision }): Promise<AppendResult> {
    const stop = this.appendSeconds.startTimer();
    let outcome: AppendOutcome = 'error';
    try {
      const result = await this.inner.append(stream, events, options);
      outcome = result.duplicate ? 'duplicate' : 'ok';
      if (!result.duplicate) this.appendedEvents.inc(events.length);
      return result;
    } catch (error) {
      outcome = classify(error);
      throw error;
    } finally {
      stop({ result: outcome });
      this.appends.inc({ result: outcome });
    }
  }

  readStream(stream: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return this.timedRead('stream', () => this.inner.readStream(stream, options));
  }

  readAll(options?: ReadAllOptions): Promise<ReadAllResult> {
    return this.timedRead('all', () => this.inner.readAll(options));
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

  private async timedRead<T>(kind: 'stream' | 'all', read: () => Promise<T>): Promise<T> {
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
