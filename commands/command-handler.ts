// Runs a command against an aggregate: load its stream, decide, append at the revision it was decided on.
import { randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import { retrying } from '../adapters/retry.js';
import { activeTraceparent, contextFrom, inSpan, type Span } from '../adapters/tracing.js';
import { jsonCopy } from '../domain/json-copy.js';
import { DomainError, fold, PolicyViolation, type Decider, type DomainEvent, type EventCatalog } from '../domain/decider.js';
import {
  AggregateCache,
  InvalidatingEventStore,
  type AggregateStateMetrics,
  type CacheEntry,
  type EventLocator,
  type FoldedState,
  type SnapshotStore,
} from './aggregate-cache.js';
import {
  ConcurrencyConflict,
  DuplicateEventConflict,
  type ActorKind,
  type AppendResult,
  type EventMetadata,
  type EventStore,
  type EventToAppend,
  type Position,
  type RecordedEvent,
  type StreamAppend,
} from '../domain/event-store.js';

/** What the handler needs to know about an aggregate type. */
export interface Aggregate<Command, Event extends DomainEvent, State> {
  /** Stream category: the aggregate with id X lives in stream `<category>-X`. */
  category: string;
  decider: Decider<Command, Event, State>;
  events: EventCatalog<Event>;
  /** Other events its stream holds that do not change its state, such as policy decisions. */
  records?: EventCatalog<DomainEvent>;
  /**
   * The version of the state `evolve` folds, for snapshots: raise it whenever the state's shape or what `evolve`
   * (or an upcaster) makes of an event changes, and snapshots written before are ignored. No snapshots without it.
   */
  snapshotVersion?: number;
}

/** What a gate (the policy engine) makes of a decision before anything is appended. */
export interface GateVerdict {
  /** Everything to append, in order: typically the judgement, then the events the command decided. */
  events: DomainEvent[];
  /**
   * Stores the command's own append together with what the gate admits, as one atomic step (so that nothing is
   * admitted for a change that was never stored), and answers the append's result. A `ConcurrencyConflict` from it
   * runs the whole command again. Without it the handler appends the events itself.
   */
  admit?: (append: StreamAppend) => Promise<AppendResult>;
  /** Called once the attempt is over, whether `admit` ran or not: gives up what the gate held for it. */
  release?: () => void;
  /** When set, the events are appended and then this is thrown: the command was judged and refused. */
  refusal?: Error;
}

export type Gate<Command, Event, State> = (decision: {
  command: Command;
  state: State;
  revision: number;
  events: Event[];
}) => Promise<GateVerdict>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the handler is generic over every aggregate
type AnyAggregate = Aggregate<any, any, any>;
type CommandOf<A> = A extends { decider: Decider<infer Command, DomainEvent, unknown> } ? Command & { type: string } : never;
type StateOf<A> = A extends { decider: { initialState: infer State } } ? State : never;
type EventOf<A> = A extends Aggregate<unknown, infer Event, unknown> ? Event : never;

/** Who asked, and how this command relates to others; copied into every event's metadata. */
export interface CommandContext {
  actor: { id: string; kind: ActorKind };
  correlationId: string;
  causationId: string;
  traceparent?: string;
  source?: string;
  /** An admin's break-glass marking (`X-Sentinel-Emergency`), which a change freeze lets through and records. */
  emergency?: { justification: string };
  /**
   * Event ids for this command's events. A retried request (same Idempotency-Key) derives the same ids, so
   * a command that already landed is recognised in the stream and answered from it, never applied twice.
   */
  eventIds?: (index: number) => string;
}

export interface WriteResult {
  id: string;
  /** The stream's revision after the command; unchanged when the command asked for what was already so. */
  revision: number;
  position: Position | null;
  /** How many events the command appended. */
  appended: number;
}

/** An aggregate's current state, with the revision (-1: no stream) and position of its last event. */
export type AggregateState<State> = FoldedState<State>;

export interface Loaded<State> extends FoldedState<State> {
  /** Every event of the stream, oldest first. */
  recorded: RecordedEvent[];
}

/** The stream kept moving under every attempt; nothing was written. */
export class ConflictAfterRetries extends Error {
  override name = 'ConflictAfterRetries';
  constructor(
    readonly stream: string,
    readonly attempts: number,
    readonly currentRevision: number | 'no_stream',
  ) {
    super(`${stream} changed concurrently on each of ${attempts} attempts; it is now at revision ${currentRevision}`);
  }
}

export interface CommandMetrics {
  observe(command: string, outcome: 'ok' | 'unchanged' | 'replayed' | 'rejected' | 'conflict' | 'error', seconds: number): void;
  conflictRetried(command: string): void;
}

export interface CommandHandlerOptions {
  /** Attempts on a concurrency conflict before answering with `ConflictAfterRetries`. */
  maxAttempts?: number;
  metrics?: CommandMetrics;
  /** How many streams' folded state is kept in memory, least recently used dropped first; 0 keeps none. */
  cacheSize?: number;
  /** Where folded state is written down every `snapshotEvery` events, for aggregates with a `snapshotVersion`. */
  snapshots?: SnapshotStore;
  snapshotEvery?: number;
  /**
   * Finds a derived event id in a stream without reading the stream. Without one, a command with derived ids
   * reads its whole stream to tell whether it already landed.
   */
  eventLocator?: EventLocator;
  stateMetrics?: AggregateStateMetrics;
  /** Where an unreadable snapshot or a failed snapshot write is reported. */
  logger?: { warn(fields: Record<string, unknown>, message: string): void };
  /**
   * Whether a command's first attempt may decide on the state kept in memory without reading the stream for what
   * came since (the append's expected revision still checks it); true unless given. False reads before every attempt.
   */
  decideFromMemory?: boolean;
}

export const DEFAULT_AGGREGATE_CACHE_SIZE = 10_000;
export const DEFAULT_SNAPSHOT_EVERY = 100;

export class CommandHandler {
  /** The store, through which deleting or truncating a stream also drops its cached state. */
  readonly store: EventStore;
  private readonly maxAttempts: number;
  private readonly cache: AggregateCache;
  private readonly snapshotEvery: number;
  private readonly snapshotWrites = new Set<Promise<void>>();
  private readonly decideFromMemory: boolean;

  constructor(
    store: EventStore,
    private readonly options: CommandHandlerOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.cache = new AggregateCache(options.cacheSize ?? DEFAULT_AGGREGATE_CACHE_SIZE);
    this.snapshotEvery = Math.max(1, options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY);
    this.decideFromMemory = options.decideFromMemory ?? true;
    this.store = new InvalidatingEventStore(store, (stream) => this.cache.invalidate(stream));
  }

  /** The aggregate's state and every event of its stream: for callers that need the events themselves. */
  async load<Command, Event extends DomainEvent, State>(
    aggregate: Aggregate<Command, Event, State>,
    id: string,
  ): Promise<Loaded<State>> {
    const stream = streamOf(aggregate, id);
    const generation = this.cache.generation;
    const recorded = await this.store.readStream(stream);
    const state = fold(aggregate.decider, stateEvents(aggregate, recorded));
    const last = recorded.at(-1);
    const loaded = { state, revision: last?.revision ?? -1, position: last?.position ?? null, recorded };
    this.cache.put(stream, { state, revision: loaded.revision, position: loaded.position, aggregate, snapshotRevision: -1 }, generation);
    return loaded;
  }

  /**
   * The aggregate's current state, read forward from the state kept in memory (or from a snapshot, or from the
   * start): as current as `load`, at a cost that does not grow with the stream.
   */
  async loadState<Command, Event extends DomainEvent, State>(
    aggregate: Aggregate<Command, Event, State>,
    id: string,
  ): Promise<AggregateState<State>> {
    return view((await this.current(aggregate, streamOf(aggregate, id))) as CacheEntry & { state: State });
  }

  private async current(aggregate: AnyAggregate, stream: string): Promise<CacheEntry> {
    const generation = this.cache.generation;
    let from: 'cache' | 'snapshot' | 'stream' = 'cache';
    let base = this.cache.get(stream, aggregate);
    if (!base) {
      base = await this.fromSnapshot(aggregate, stream);
      from = base ? 'snapshot' : 'stream';
    }
    let newer = await this.store.readStream(stream, base ? { from: base.revision + 1 } : {});
    if (base && newer.length > 0 && newer[0]!.revision !== base.revision + 1) {
      // Events were hidden in between (the stream was truncated): the state is the fold of what reads show.
      this.cache.evict(stream);
      base = undefined;
      from = 'stream';
      newer = await this.store.readStream(stream);
    }
    this.options.stateMetrics?.loaded(aggregate.category, from, newer.length);
    const start: CacheEntry = base ?? { state: aggregate.decider.initialState, revision: -1, position: null, aggregate, snapshotRevision: -1 };
    if (newer.length === 0) {
      if (from !== 'cache') this.remember(aggregate, stream, start, generation);
      return start;
    }
    const last = newer.at(-1)!;
    const entry: CacheEntry = {
      state: fold(aggregate.decider, stateEvents(aggregate, newer), start.state),
      revision: last.revision,
      position: last.position,
      recordedAt: last.recordedAt,
      aggregate,
      snapshotRevision: start.snapshotRevision,
    };
    this.remember(aggregate, stream, entry, generation);
    return entry;
  }

  /**
   * The latest event of one of `types` in the aggregate's stream, at or before revision `upTo` (the end when
   * absent), read backwards a page at a time: what a caller of `loadState` that needs one event reads instead
   * of the whole stream. Pass the revision `loadState` gave to get the event as of that state.
   */
  async latestOf(aggregate: { category: string }, id: string, types: ReadonlySet<string>, upTo?: number): Promise<RecordedEvent | undefined> {
    const stream = streamOf(aggregate, id);
    const PAGE = 64;
    for (let from = upTo; from === undefined || from >= 0; ) {
      const page = await this.store.readStream(stream, { direction: 'backwards', limit: PAGE, ...(from === undefined ? {} : { from }) });
      const found = page.find((event) => types.has(event.type));
      if (found || page.length < PAGE) return found;
      from = page.at(-1)!.revision - 1;
    }
    return undefined;
  }

  /** Resolves once every snapshot write begun so far has finished (or failed). */
  async snapshotsWritten(): Promise<void> {
    while (this.snapshotWrites.size > 0) await Promise.all(this.snapshotWrites);
  }

  private async fromSnapshot(aggregate: AnyAggregate, stream: string): Promise<CacheEntry | undefined> {
    const { snapshots } = this.options;
    const version = aggregate.snapshotVersion;
    if (!snapshots || version === undefined) return undefined;
    let snapshot: Awaited<ReturnType<SnapshotStore['read']>>;
    let metadata: Awaited<ReturnType<EventStore['getStreamMetadata']>>;
    try {
      [snapshot, metadata] = await Promise.all([snapshots.read(stream), this.store.getStreamMetadata(stream)]);
    } catch (error) {
      this.snapshotTrouble(aggregate, stream, 'read_failed', error);
      return undefined;
    }
    if (!snapshot) return undefined;
    if (snapshot.version !== version) {
      this.options.stateMetrics?.snapshot(aggregate.category, 'other_version');
      return undefined;
    }
    // A stream with hidden events folds from what reads show, which a snapshot of the whole stream is not.
    if ((metadata.truncateBefore ?? 0) > 0 || metadata.maxCount !== undefined || metadata.maxAge !== undefined) {
      this.options.stateMetrics?.snapshot(aggregate.category, 'truncated_stream');
      return undefined;
    }
    let state: unknown;
    try {
      if (!Number.isSafeInteger(snapshot.revision) || snapshot.revision < 0) throw new Error(`revision ${snapshot.revision} is not one of a stream`);
      state = JSON.parse(snapshot.state);
      if (state === null || state === undefined) throw new Error('the snapshot holds no state');
    } catch (error) {
      this.snapshotTrouble(aggregate, stream, 'corrupt', error);
      return undefined;
    }
    return {
      state,
      revision: snapshot.revision,
      position: snapshot.position,
      ...(snapshot.recordedAt ? { recordedAt: snapshot.recordedAt } : {}),
      aggregate,
      snapshotRevision: snapshot.revision,
    };
  }

  /** Keeps the folded state, and writes it down when enough events came since the last snapshot. */
  private remember(aggregate: AnyAggregate, stream: string, entry: CacheEntry, generation: number): void {
    const known = this.cache.get(stream, aggregate);
    if (known) entry.snapshotRevision = Math.max(entry.snapshotRevision, known.snapshotRevision);
    const due =
      this.options.snapshots !== undefined &&
      aggregate.snapshotVersion !== undefined &&
      generation === this.cache.generation &&
      entry.revision - entry.snapshotRevision >= this.snapshotEvery;
    if (due) entry.snapshotRevision = entry.revision;
    this.cache.put(stream, entry, generation);
    if (due) this.writeSnapshot(aggregate, stream, entry);
  }

  /** Best effort, off the command's path: a failed write is reported and counted, never thrown. */
  private writeSnapshot(aggregate: AnyAggregate, stream: string, entry: CacheEntry): void {
    const write = (async () => {
      try {
        // After the command has answered: even the serialising stays off its path.
        await setImmediate();
        const state = JSON.stringify(entry.state);
        await this.options.snapshots!.write({
          stream,
          revision: entry.revision,
          position: entry.position,
          recordedAt: entry.recordedAt ?? null,
          version: aggregate.snapshotVersion!,
          state,
        });
        this.options.stateMetrics?.snapshot(aggregate.category, 'written');
      } catch (error) {
        this.snapshotTrouble(aggregate, stream, 'write_failed', error);
      }
    })();
    this.snapshotWrites.add(write);
    void write.finally(() => this.snapshotWrites.delete(write));
  }

  private snapshotTrouble(aggregate: AnyAggregate, stream: string, outcome: 'read_failed' | 'write_failed' | 'corrupt', error: unknown): void {
    this.options.stateMetrics?.snapshot(aggregate.category, outcome);
    const message = {
      read_failed: 'snapshot could not be read; the stream is read from its start',
      write_failed: 'snapshot could not be written; the next one is due after as many events again',
      corrupt: 'snapshot is unreadable and ignored; the stream is read from its start',
    }[outcome];
    const fields = { stream, err: error instanceof Error ? error.message : String(error) };
    if (this.options.logger) this.options.logger.warn(fields, message);
    else process.emitWarning(`${stream}: ${message} (${fields.err})`, 'SnapshotWarning');
  }

  /** After an append decided on `loaded`: the state moves on by the events appended, without reading them back. */
  private appended(aggregate: AnyAggregate, stream: string, loaded: CacheEntry, events: EventToAppend[], result: AppendResult, generation: number): void {
    if (result.duplicate || result.revision !== loaded.revision + events.length) {
      this.cache.evict(stream);
      return;
    }
    // Folded as they read back (as JSON, through the catalogue), so the state is the one a later load would fold.
    const records = aggregate.records?.types ?? [];
    const stored = events
      .filter((event) => !records.includes(event.type))
      .map((event) => ({ type: event.type, schemaVersion: event.schemaVersion ?? 1, data: jsonCopy(event.data) }));
    const entry: CacheEntry = {
      state: fold(aggregate.decider, stateEvents(aggregate, stored), loaded.state),
      revision: result.revision,
      position: result.position,
      // The store answers after recording: a time no earlier than the event's, which a store that does not
      // report the time (KurrentDB's append) leaves the snapshot history to pick snapshots by.
      recordedAt: new Date(),
      aggregate,
      snapshotRevision: loaded.snapshotRevision,
    };
    this.remember(aggregate, stream, entry, generation);
  }

  /** The events this command already appended, when it was sent before with the same derived ids. */
  private async replayOf(stream: string, context: CommandContext): Promise<RecordedEvent | undefined> {
    if (!context.eventIds) return undefined;
    if (!this.options.eventLocator) return alreadyApplied(await this.store.readStream(stream), context);
    const first = await this.options.eventLocator.revisionOf(stream, context.eventIds(0));
    if (first === undefined) return undefined;
    // Read from the first of them on, as far as they run; a hidden event does not count, as with a full read.
    const PAGE = 64;
    const run: RecordedEvent[] = [];
    for (let from = first; ; from += PAGE) {
      const page = await this.store.readStream(stream, { from, limit: PAGE });
      run.push(...page);
      const found = alreadyApplied(run, context);
      if (!found || found !== run.at(-1) || page.length < PAGE) return found;
    }
  }

  /**
   * Decides the command against the aggregate and appends the outcome. A command given as a function of
   * the state is built again on every attempt, so facts it loads from other aggregates are as fresh as the
   * state they are judged with.
   */
  async execute<A extends AnyAggregate>(
    aggregate: A,
    id: string,
    command: CommandOf<A> | ((state: StateOf<A>) => Promise<CommandOf<A>>),
    context: CommandContext,
    gate?: Gate<CommandOf<A>, EventOf<A>, StateOf<A>>,
  ): Promise<WriteResult> {
    // The command continues the trace its context names (a request's span, a reaction's), else the one active now;
    // its events carry the command's own span (see `metadataOf`), which is where whoever handles them continues from.
    const parent = context.traceparent === undefined ? undefined : contextFrom(context.traceparent);
    const name = `command ${typeof command === 'function' ? aggregate.category : command.type}`;
    const attributes = { 'sentinel.stream': streamOf(aggregate, id), 'sentinel.actor': context.actor.id };
    return inSpan(name, { parent, attributes, failure: (error) => !(error instanceof DomainError) }, (span) =>
      this.decideAndAppend(aggregate, id, command, context, gate, span),
    );
  }

  private async decideAndAppend<A extends AnyAggregate>(
    aggregate: A,
    id: string,
    command: CommandOf<A> | ((state: StateOf<A>) => Promise<CommandOf<A>>),
    context: CommandContext,
    gate: Gate<CommandOf<A>, EventOf<A>, StateOf<A>> | undefined,
    span: Span,
  ): Promise<WriteResult> {
    type Event = EventOf<A>;
    const started = performance.now();
    const stream = streamOf(aggregate, id);
    let commandType = typeof command === 'function' ? aggregate.category : command.type;
    const outcome = (result: Parameters<CommandMetrics['observe']>[1]) => {
      span.setAttribute('sentinel.command.outcome', result);
      this.options.metrics?.observe(commandType, result, (performance.now() - started) / 1000);
    };

    // The conflict the last attempt met on append: the one failure tried again.
    let conflict: ConcurrencyConflict | DuplicateEventConflict | undefined;
    // How many attempts were lost to another command (or to another process's admissions), not to the system's own records.
    let contended = 0;
    // The first attempt may decide on the state kept in memory without reading the stream: what it appends expects
    // the revision that state was folded to, so a stream that moved on meanwhile makes it conflict and run again on
    // what the store holds. An answer that appends nothing has no such check, and is given only on a fresh read.
    let trustMemory = this.decideFromMemory && context.eventIds === undefined;
    const attempt = async (): Promise<WriteResult> => {
      const generation = this.cache.generation;
      const remembered = trustMemory ? this.cache.get(stream, aggregate) : undefined;
      trustMemory = false;
      if (remembered) this.options.stateMetrics?.loaded(aggregate.category, 'cache', 0);
      const loaded = (remembered ?? (await this.current(aggregate, stream))) as CacheEntry & { state: StateOf<A> };
      // Looked for after the load: whatever the state was folded from, the lookup sees too.
      const replayed = await this.replayOf(stream, context);
      if (replayed) {
        outcome('replayed');
        return { id, revision: replayed.revision, position: replayed.position, appended: 0 };
      }

      let events: DomainEvent[];
      let verdict: GateVerdict | undefined;
      try {
        const decided: CommandOf<A> =
          typeof command === 'function' ? await (command as (state: StateOf<A>) => Promise<CommandOf<A>>)(loaded.state) : command;
        commandType = decided.type;
        span.updateName(`command ${commandType}`);
        events = aggregate.decider.decide(decided, loaded.state) as Event[];
        if (events.length > 0 && gate) {
          const decision = { command: decided, state: loaded.state, revision: loaded.revision, events: events as EventOf<A>[] };
          verdict = await inSpan(`policy ${commandType}`, {}, () => gate(decision));
          events = verdict.events;
        }
      } catch (error) {
        if (remembered) return attempt();
        outcome('rejected');
        throw error;
      }
      if (events.length === 0) {
        verdict?.release?.();
        if (remembered) return attempt();
        outcome('unchanged');
        return { id, revision: loaded.revision, position: loaded.position, appended: 0 };
      }

      try {
        const toAppend = events.map((event, index) => envelope(aggregate, event, index, context));
        const append: StreamAppend = { stream, events: toAppend, expected: loaded.revision === -1 ? 'no_stream' : loaded.revision };
        let result: AppendResult;
        try {
          result = await inSpan(`append ${aggregate.category}`, { attributes: { 'sentinel.stream': stream, 'sentinel.events': toAppend.length } }, () =>
            verdict?.admit ? verdict.admit(append) : this.store.append(stream, toAppend, { expected: append.expected }),
          );
        } finally {
          verdict?.release?.();
        }
        this.appended(aggregate, stream, loaded, toAppend, result, generation);
        if (verdict?.refusal) {
          outcome('rejected');
          if (verdict.refusal instanceof PolicyViolation) verdict.refusal.recordedIn = { id, revision: result.revision, position: result.position };
          throw verdict.refusal;
        }
        outcome('ok');
        return { id, revision: result.revision, position: result.position, appended: result.duplicate ? 0 : events.length };
      } catch (error) {
        if (error === verdict?.refusal) throw error;
        // Stored together with an admission, a retried command's events are found as part of a bigger append: the
        // next attempt finds them in the stream and answers from them.
        const landedBefore = error instanceof DuplicateEventConflict && error.stream === stream && context.eventIds !== undefined && verdict?.admit !== undefined;
        if (!(error instanceof ConcurrencyConflict) && !landedBefore) {
          outcome('error');
          throw error;
        }
        // The stream moved on under the state decided on: the next attempt starts from what the store holds. A conflict
        // on another stream (the admission ledger's, stored with the gate's admission) says nothing of this one, whose
        // cached state stays: the next attempt reads only what came after it.
        if (error.stream !== stream) contended += 1;
        else {
          this.cache.evict(stream);
          if (error instanceof ConcurrencyConflict && (await this.contended(stream, loaded.revision))) contended += 1;
        }
        conflict = error;
        throw error;
      }
    };

    // The backoff's jitter keeps a crowd of writers to one stream from colliding in lockstep. Only attempts lost to
    // another command count against `maxAttempts`: the events the system records on its own (a reactor's
    // observations of the rollout) never decide whether a command is refused, so losing to them only means deciding
    // again, on the newer state, up to a bound that keeps a runaway writer from holding the command forever.
    try {
      return await retrying(attempt, {
        backoff: CONFLICT_BACKOFF,
        attempts: this.maxAttempts + MAX_ATTEMPTS_LOST_TO_THE_SYSTEM,
        retryable: (error) => error === conflict && contended < this.maxAttempts,
        onRetry: () => this.options.metrics?.conflictRetried(commandType),
      });
    } catch (error) {
      if (error !== conflict || !conflict) throw error;
      if (conflict instanceof DuplicateEventConflict) throw conflict;
      outcome('conflict');
      throw new ConflictAfterRetries(conflict.stream, this.maxAttempts, conflict.actual);
    }
  }

  /**
   * Whether the events that landed on `stream` after `revision` include another command's (anything not recorded
   * by Sentinel itself): only those can have changed what a request asked for.
   */
  private async contended(stream: string, revision: number): Promise<boolean> {
    const since = await this.store.readStream(stream, { from: revision + 1, limit: 64 });
    return since.length === 0 || since.some((event) => event.metadata.actor?.kind !== 'system');
  }
}

/** Attempts beyond `maxAttempts` a command may spend losing to events the system recorded on its own. */
const MAX_ATTEMPTS_LOST_TO_THE_SYSTEM = 50;

/** Between attempts at a command whose stream moved on: from 5 ms, doubling, at most 20 ms. */
const CONFLICT_BACKOFF = { baseMs: 5, maxMs: 20 };


/** The events of a stream that change the aggregate's state (not its records), through the catalogue. */
function stateEvents<Event extends DomainEvent>(
  aggregate: Aggregate<unknown, Event, unknown>,
  recorded: Pick<RecordedEvent, 'type' | 'schemaVersion' | 'data'>[],
): Event[] {
  const records = aggregate.records?.types ?? [];
  return recorded
    .filter((event) => !records.includes(event.type))
    .map((event) => aggregate.events.parse(event.type, event.schemaVersion, event.data));
}

function view<State>(entry: FoldedState<State>): AggregateState<State> {
  return { state: entry.state, revision: entry.revision, position: entry.position };
}

export function streamOf(aggregate: { category: string }, id: string): string {
  return `${aggregate.category}-${id}`;
}

function envelope(aggregate: AnyAggregate, event: DomainEvent, index: number, context: CommandContext): EventToAppend {
  const catalog = aggregate.records?.types.includes(event.type) ? aggregate.records : aggregate.events;
  return {
    id: context.eventIds?.(index) ?? randomUUID(),
    type: event.type,
    schemaVersion: catalog.version(event.type),
    data: event.data as Record<string, unknown>,
    metadata: metadataOf(context),
  };
}

/**
 * An event's metadata. Its traceparent is the span it is written in (a command's, or the append's); with tracing
 * off, none is active and the context's, the caller's own, is carried on unchanged.
 */
export function metadataOf(context: CommandContext): EventMetadata {
  const traceparent = activeTraceparent() ?? context.traceparent;
  return {
    correlationId: context.correlationId,
    causationId: context.causationId,
    actor: context.actor,
    ...(traceparent ? { traceparent } : {}),
    ...(context.source ? { source: context.source } : {}),
  };
}

/** The last event this command already appended, when its derived ids are in the stream. */
function alreadyApplied(recorded: RecordedEvent[], context: CommandContext): RecordedEvent | undefined {
  if (!context.eventIds) return undefined;
  const first = recorded.findIndex((event) => event.id === context.eventIds!(0));
  if (first === -1) return undefined;
  let last = first;
  while (recorded[last + 1]?.id === context.eventIds(last + 1 - first)) last += 1;
  return recorded[last];
}
