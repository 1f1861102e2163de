// Time travel: an aggregate's state as its stream stood at a time or at a log position, folded with the domain's
// `evolve` from the latest snapshot at or below that point (or from the stream's first event).
import { z } from 'zod';
import type { SnapshotStore } from '../commands/aggregate-cache.js';
import { streamOf, type Aggregate } from '../commands/command-handler.js';
import type { DomainEvent } from '../domain/decider.js';
import type { EventStore, Position, RecordedEvent } from '../domain/event-store.js';
import { timestamp } from '../domain/schemas.js';

/** A point in the log: every event recorded at or before a time, or at or before a global position. */
export type AsOf = { at: Date } | { position: Position };

const POSITION = /^[0-9a-f]{16}-[0-9a-f]{16}$/;

export const AS_OF_ACCEPTS = 'an ISO 8601 date-time with a zone, such as 2026-03-01T14:02:00Z, or a log position, such as 0000000000000302-0000000000000004';

/** `?asOf=`: an ISO 8601 time with a zone, or a position as writes answer with. */
export const asOfParameter = z
  .string()
  .refine((value) => parseAsOf(value) !== undefined, AS_OF_ACCEPTS)
  .describe(
    'answer the entity as its stream stood at this point: every event recorded at or before this time (ISO 8601, with a zone) ' +
      'or at or before this log position, folded as the write side folds it (see the AsOf shape)',
  );

export function parseAsOf(value: string): AsOf | undefined {
  if (POSITION.test(value)) return { position: value };
  // The project's ISO 8601 check: it refuses a day a month does not have, which Date would roll over.
  if (!timestamp.safeParse(value).success || value.startsWith('0000-')) return undefined;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? undefined : { at };
}

/** Whether an event lies at or before the point. */
export function within(event: Pick<RecordedEvent, 'position' | 'recordedAt'>, point: AsOf): boolean {
  return 'position' in point ? event.position <= point.position : event.recordedAt.getTime() <= point.at.getTime();
}

/**
 * The `asOf` shape: the folded state, and which event it was folded up to. `state` is the aggregate's state as the
 * write side's `evolve` makes it (what its commands are decided against), not the read model's row.
 */
export interface StateAsOf<State = unknown> {
  id: string;
  stream: string;
  asOf: {
    /** The last event folded in: its stream revision, global position and the time it was recorded. */
    revision: number;
    position: Position;
    recordedAt: string;
    /** Events read and folded for this answer, and the snapshot revision the fold started from (null: the first event). */
    eventsFolded: number;
    fromSnapshot: number | null;
  };
  state: State;
}

export interface TimeTravelOptions {
  /** Where the write side keeps snapshots; without it, every fold starts from the stream's first event. */
  snapshots?: SnapshotStore;
  /** Events read per page while folding forward. */
  pageSize?: number;
}

interface Base<State> {
  state: State;
  revision: number;
  event: Pick<RecordedEvent, 'position' | 'recordedAt'> | undefined;
  snapshot: number | null;
}

/**
 * The aggregate's state as of the point, or undefined when the aggregate did not exist by then (its state folds to
 * the decider's `absent`). The fold starts from the stored snapshot when the snapshot is of this `snapshotVersion`,
 * lies at or below the point, and the stream hides none of its events (a snapshot of a truncated stream folds
 * events reads no longer show).
 */
export async function stateAsOf<Command, Event extends DomainEvent, State>(
  store: EventStore,
  aggregate: Aggregate<Command, Event, State>,
  id: string,
  point: AsOf,
  options: TimeTravelOptions = {},
): Promise<StateAsOf<State> | undefined> {
  const stream = streamOf(aggregate, id);
  const pageSize = options.pageSize ?? 1000;
  const snapshot = await fromSnapshot(store, aggregate, stream, point, options.snapshots);
  const base = snapshot?.base ?? { state: aggregate.decider.initialState, revision: -1, event: undefined, snapshot: null };
  // A snapshot past the point still bounds the fold: its event and every later one lie past the point too.
  const last = snapshot?.past === undefined ? undefined : snapshot.past - 1;
  const records = new Set(aggregate.records?.types ?? []);
  let { state, revision } = base;
  let lastEvent = base.event;
  let folded = 0;
  for (let from = base.revision + 1; last === undefined || from <= last; ) {
    const limit = last === undefined ? pageSize : Math.min(pageSize, last - from + 1);
    const page = await store.readStream(stream, { from, ...(last !== undefined ? { to: last } : {}), limit });
    let passed = false;
    for (const event of page) {
      if (!within(event, point)) {
        passed = true;
        break;
      }
      if (!records.has(event.type)) state = aggregate.decider.evolve(state, aggregate.events.parse(event.type, event.schemaVersion, event.data));
      revision = event.revision;
      lastEvent = event;
      folded += 1;
    }
    if (passed || page.length < limit) break;
    from = page.at(-1)!.revision + 1;
  }
  // Before its first event, or with only records (a decision appended ahead of its change) folded: not there yet.
  if (revision < 0 || lastEvent === undefined || (state as { status?: unknown }).status === 'absent') return undefined;
  return {
    id,
    stream,
    asOf: {
      revision,
      position: lastEvent.position,
      recordedAt: lastEvent.recordedAt.toISOString(),
      eventsFolded: folded,
      fromSnapshot: base.snapshot,
    },
    state,
  };
}

/**
 * Where the fold starts: `base` when the stored snapshot can be folded on from; `past`, the snapshot's revision, when
 * it is sound but lies past the point; undefined when there is none to use.
 */
async function fromSnapshot<Command, Event extends DomainEvent, State>(
  store: EventStore,
  aggregate: Aggregate<Command, Event, State>,
  stream: string,
  point: AsOf,
  snapshots: SnapshotStore | undefined,
): Promise<{ base: Base<State>; past?: undefined } | { base?: undefined; past: number } | undefined> {
  if (!snapshots || aggregate.snapshotVersion === undefined) return undefined;
  const [snapshot, metadata] = await Promise.all([snapshots.read(stream), store.getStreamMetadata(stream)]);
  if (!snapshot || snapshot.version !== aggregate.snapshotVersion || !Number.isSafeInteger(snapshot.revision) || snapshot.revision < 0) return undefined;
  if ((metadata.truncateBefore ?? 0) > 0 || metadata.maxCount !== undefined || metadata.maxAge !== undefined) return undefined;
  // The snapshot's own event says where it lies: its position, and the time it was recorded.
  const [event] = await store.readStream(stream, { from: snapshot.revision, to: snapshot.revision, limit: 1 });
  if (!event || event.revision !== snapshot.revision) return undefined;
  if (!within(event, point)) return { past: snapshot.revision };
  let state: State;
  try {
    state = JSON.parse(snapshot.state) as State;
  } catch {
    // An unreadable snapshot is no worse than none: the stream itself is the record.
    return undefined;
  }
  if (state === null || state === undefined) return undefined;
  return { base: { state, revision: snapshot.revision, event, snapshot: snapshot.revision } };
}
