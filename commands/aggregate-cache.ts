// Folded aggregate state kept between commands, so that a load reads only the events appended since; and the
// ports for snapshots of that state, from which any process can start a stream instead of its first event.
import type { EventStore, Position } from '../domain/event-store.js';
import { ForwardingEventStore } from '../domain/forwarding-event-store.js';

/** An aggregate's state folded up to a revision of its stream. */
export interface FoldedState<State> {
  state: State;
  /** The revision of the last event folded in, or -1 when the stream does not exist. */
  revision: number;
  position: Position | null;
}

/** Folded state written down at a revision of its stream. */
export interface Snapshot {
  stream: string;
  /** The last event folded into the state. */
  revision: number;
  position: Position | null;
  /**
   * When the last event folded in was recorded, where the writer knows it (a store may fill it in itself), or a
   * time no earlier than that: what a read at a time picks a snapshot by. A time too late only makes a read pick
   * an older snapshot; one too early (clocks apart) is caught when the fold reads the snapshot's event back.
   */
  recordedAt?: Date | null;
  /** The aggregate's `snapshotVersion` when it was written; a snapshot of any other version is ignored. */
  version: number;
  /** The state as JSON text. */
  state: string;
}

/**
 * A point of a stream a snapshot's event must lie at or below: every bound given holds at once. A snapshot whose
 * position (or recorded time) is not known never satisfies a bound on it.
 */
export interface SnapshotBound {
  revision?: number;
  position?: Position;
  recordedAt?: Date;
}

/** The newest snapshot at or below a point, and how far the next one lies past it. */
export interface SnapshotAtOrBelow {
  snapshot: Snapshot | undefined;
  /** The revision of the oldest snapshot of the version past the point: a hint at how far a fold has to read. */
  nextRevision: number | undefined;
}

/**
 * Where snapshots are kept: the latest of each stream, which a command load reads, and every one written before
 * it, from which a fold up to a past point starts.
 */
export interface SnapshotStore {
  /** The latest snapshot written of the stream, of whatever version. */
  read(stream: string): Promise<Snapshot | undefined>;
  /** The newest snapshot of `version` whose event lies at or below the bound. */
  readAtOrBelow(stream: string, version: number, bound: SnapshotBound): Promise<SnapshotAtOrBelow>;
  /**
   * Stores the snapshot, kept beside those written before it; it becomes the latest unless one of the same version
   * at a later revision is already there.
   */
  write(snapshot: Snapshot): Promise<void>;
}

/**
 * Finds an event by id without reading its stream: how a command sent again with the same derived event ids
 * is recognised when only the tail of the stream is read.
 */
export interface EventLocator {
  /** The revision of the event with this id in the stream, or undefined when the stream holds none. */
  revisionOf(stream: string, eventId: string): Promise<number | undefined>;
}

/** What happened to the state of a load, and to snapshots, for metrics. */
export interface AggregateStateMetrics {
  /** Where a load started from: memory, a snapshot, or the start of the stream. */
  loaded(category: string, from: 'cache' | 'snapshot' | 'stream', eventsRead: number): void;
  snapshot(category: string, outcome: 'written' | 'write_failed' | 'read_failed' | 'other_version' | 'corrupt' | 'truncated_stream'): void;
}

export interface CacheEntry extends FoldedState<unknown> {
  /** The aggregate definition the state was folded with: a different one never shares it. */
  aggregate: object;
  /**
   * When the last event folded in was recorded: exact when it was read, the moment its append was answered when
   * this process appended it (no earlier, clocks agreeing); absent when not known.
   */
  recordedAt?: Date;
  /** The revision of the latest snapshot known to be written (or being written); -1 when none. */
  snapshotRevision: number;
}

/** At most `capacity` streams' folded state; the least recently used is dropped first. */
export class AggregateCache {
  private readonly entries = new Map<string, CacheEntry>();
  private invalidations = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Counts invalidations: a load remembers what it folded only if none happened since it began, so a state
   * read before a stream was deleted is never put back after.
   */
  get generation(): number {
    return this.invalidations;
  }

  get(stream: string, aggregate: object): CacheEntry | undefined {
    const entry = this.entries.get(stream);
    if (!entry || entry.aggregate !== aggregate) return undefined;
    this.entries.delete(stream);
    this.entries.set(stream, entry);
    return entry;
  }

  /** Keeps whichever of the stored and the given state is further along. */
  put(stream: string, entry: CacheEntry, generation: number): void {
    if (this.capacity <= 0 || generation !== this.invalidations) return;
    const current = this.entries.get(stream);
    if (current && current.aggregate === entry.aggregate) {
      const snapshotRevision = Math.max(current.snapshotRevision, entry.snapshotRevision);
      current.snapshotRevision = entry.snapshotRevision = snapshotRevision;
      if (current.revision >= entry.revision) return;
    }
    this.entries.delete(stream);
    this.entries.set(stream, entry);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(oldest);
    }
  }

  /** Forgets a stream whose state may have moved in a way reading forward does not show. */
  evict(stream: string): void {
    this.entries.delete(stream);
  }

  /** Forgets a stream that was deleted or truncated, and any load of it already under way. */
  invalidate(stream: string): void {
    this.invalidations += 1;
    this.entries.delete(stream);
  }
}

/**
 * The store as the handler hands it out: deleting or truncating a stream through it drops the stream's cached
 * state, since reading forward from a cached revision cannot show that earlier events were hidden.
 */
export class InvalidatingEventStore extends ForwardingEventStore {
  constructor(
    inner: EventStore,
    private readonly invalidate: (stream: string) => void,
  ) {
    super(inner);
  }

  override async setStreamMetadata(...args: Parameters<EventStore['setStreamMetadata']>): Promise<void> {
    try {
      await this.inner.setStreamMetadata(...args);
    } finally {
      this.invalidate(args[0]);
    }
  }
  override async deleteStream(...args: Parameters<EventStore['deleteStream']>): Promise<void> {
    try {
      await this.inner.deleteStream(...args);
    } finally {
      this.invalidate(args[0]);
    }
  }
}
