// Time travel: an aggregate's state as its stream stood at a time or at a log position, folded with the domain's
// `evolve` from the newest snapshot at or below that point (or from the stream's first event).
import { z } from 'zod';
import type { SnapshotBound, SnapshotStore } from '../commands/aggregate-cache.js';
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

/** Where a fold starts: a snapshot's state at its revision, or the decider's initial state before the first event. */
interface Base<State> {
  state: State;
  revision: number;
  snapshot: number | null;
}

/** Snapshots tried at most, each found past the point by its event, before a fold starts from the first event. */
const SNAPSHOT_TRIES = 3;

/**
 * The aggregate's state as of the point, or undefined when the aggregate did not exist by then (its state folds to
 * the decider's `absent`). The fold starts from the newest stored snapshot at or below the point of this
 * `snapshotVersion`, when the stream hides none of its events (a snapshot of a truncated stream folds events reads
 * no longer show), so it reads about as many events as lie between two snapshots.
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
  const candidates = await snapshotsAtOrBelow(store, aggregate, stream, point, options.snapshots);
  // An event known to lie past the point: the fold reads no further than the one before it.
  let past: number | undefined;
  for (let tries = 0; ; tries++) {
    const candidate = tries < SNAPSHOT_TRIES ? await candidates.next(past) : undefined;
    const base = candidate?.base ?? { state: aggregate.decider.initialState, revision: -1, snapshot: null };
    // The snapshot's own event is read first, in the fold's first page: it says where the snapshot lies, whatever
    // the row says, and that page reaches the next snapshot's event, where the point lies most often.
    const checked = candidate !== undefined;
    // Without a snapshot to start from, the first snapshot past the point still says how far to read.
    const next = candidate ? candidate.next : past === undefined ? candidates.first : undefined;
    const folded = await foldFrom(store, aggregate, stream, point, base, checked, {
      first: next === undefined ? pageSize : Math.max(1, Math.min(pageSize, next - base.revision + 1)),
      pageSize,
      ...(past === undefined ? {} : { last: past - 1 }),
    });
    if (folded === 'past') {
      past = base.revision;
      continue;
    }
    if (folded === 'unusable') {
      // Its event is not there to check it by (or the state does not parse): the stream itself is the record.
      tries = SNAPSHOT_TRIES;
      continue;
    }
    const { state, revision, lastEvent, count } = folded;
    // Before its first event, or with only records (a decision appended ahead of its change) folded: not there yet.
    if (revision < 0 || lastEvent === undefined || (state as { status?: unknown }).status === 'absent') return undefined;
    return {
      id,
      stream,
      asOf: {
        revision,
        position: lastEvent.position,
        recordedAt: lastEvent.recordedAt.toISOString(),
        eventsFolded: count,
        fromSnapshot: base.snapshot,
      },
      state,
    };
  }
}

interface Folded<State> {
  state: State;
  revision: number;
  lastEvent: Pick<RecordedEvent, 'position' | 'recordedAt'> | undefined;
  count: number;
}

/**
 * Folds forward from the base up to the point. With `checked`, the first event read is the snapshot's own: 'past'
 * when it lies past the point, 'unusable' when it is not there.
 */
async function foldFrom<Command, Event extends DomainEvent, State>(
  store: EventStore,
  aggregate: Aggregate<Command, Event, State>,
  stream: string,
  point: AsOf,
  base: Base<State>,
  checked: boolean,
  reads: { first: number; pageSize: number; last?: number },
): Promise<Folded<State> | 'past' | 'unusable'> {
  const records = new Set(aggregate.records?.types ?? []);
  const { last } = reads;
  let { state, revision } = base;
  let lastEvent: Pick<RecordedEvent, 'position' | 'recordedAt'> | undefined;
  let count = 0;
  let want = reads.first;
  for (let from = checked ? base.revision : base.revision + 1; last === undefined || from <= last; ) {
    const limit = last === undefined ? want : Math.min(want, last - from + 1);
    const page = await store.readStream(stream, { from, ...(last !== undefined ? { to: last } : {}), limit });
    let passed = false;
    for (const event of page) {
      if (checked && lastEvent === undefined) {
        if (event.revision !== base.revision) return 'unusable';
        if (!within(event, point)) return 'past';
        lastEvent = event;
        continue;
      }
      if (!within(event, point)) {
        passed = true;
        break;
      }
      if (!records.has(event.type)) state = aggregate.decider.evolve(state, aggregate.events.parse(event.type, event.schemaVersion, event.data));
      revision = event.revision;
      lastEvent = event;
      count += 1;
    }
    if (checked && lastEvent === undefined) return 'unusable';
    if (passed || page.length < limit) break;
    from = page.at(-1)!.revision + 1;
    want = reads.pageSize;
  }
  return { state, revision, lastEvent, count };
}

/** A snapshot to try folding from, and the revision of the next snapshot past the point where the store says. */
interface Candidate<State> {
  base: Base<State>;
  next: number | undefined;
}

/**
 * The snapshots of the aggregate's `snapshotVersion` that the store places at or below the point, newest first:
 * each call gives the newest below the revision given (a snapshot found past the point by its event), or
 * undefined when there is none to use; `first`, the revision of the oldest snapshot past the point.
 */
async function snapshotsAtOrBelow<Command, Event extends DomainEvent, State>(
  store: EventStore,
  aggregate: Aggregate<Command, Event, State>,
  stream: string,
  point: AsOf,
  snapshots: SnapshotStore | undefined,
): Promise<{ first: number | undefined; next(below: number | undefined): Promise<Candidate<State> | undefined> }> {
  const version = aggregate.snapshotVersion;
  const none = { first: undefined, next: async () => undefined };
  if (!snapshots || version === undefined) return none;
  const bound: SnapshotBound = 'position' in point ? { position: point.position } : { recordedAt: point.at };
  const [first, metadata] = await Promise.all([snapshots.readAtOrBelow(stream, version, bound), store.getStreamMetadata(stream)]);
  if ((metadata.truncateBefore ?? 0) > 0 || metadata.maxCount !== undefined || metadata.maxAge !== undefined) return none;
  return {
    first: first.nextRevision,
    async next(below) {
      const found = below === undefined ? first : await snapshots.readAtOrBelow(stream, version, { ...bound, revision: below - 1 });
      const { snapshot } = found;
      if (!snapshot || !Number.isSafeInteger(snapshot.revision) || snapshot.revision < 0) return undefined;
      const state = parsed<State>(snapshot.state);
      // An unreadable snapshot is no worse than none: the stream itself is the record.
      if (state === undefined) return undefined;
      return { base: { state, revision: snapshot.revision, snapshot: snapshot.revision }, next: below === undefined ? found.nextRevision : undefined };
    },
  };
}

function parsed<State>(text: string): State | undefined {
  try {
    const state = JSON.parse(text) as State | null;
    return state === null ? undefined : state;
  } catch {
    return undefined;
  }
}
