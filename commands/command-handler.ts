// Runs a command against an aggregate: load its stream, decide, append at the revision it was decided on.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fold, PolicyViolation, type Decider, type DomainEvent, type EventCatalog } from '../domain/decider.js';
import {
  ConcurrencyConflict,
  type ActorKind,
  type EventMetadata,
  type EventStore,
  type EventToAppend,
  type Position,
  type RecordedEvent,
} from '../domain/event-store.js';

/** What the handler needs to know about an aggregate type. */
export interface Aggregate<Command, Event extends DomainEvent, State> {
  /** Stream category: the aggregate with id X lives in stream `<category>-X`. */
  category: string;
  decider: Decider<Command, Event, State>;
  events: EventCatalog<Event>;
  /** Other events its stream holds that do not change its state, such as policy decisions. */
  records?: EventCatalog<DomainEvent>;
}

/** What a gate (the policy engine) makes of a decision before anything is appended. */
export interface GateVerdict {
  /** Everything to append, in order: typically the judgement, then the events the command decided. */
  events: DomainEvent[];
  /** Runs just before the append; a `ConcurrencyConflict` from it runs the whole command again. */
  admit?: () => Promise<void>;
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

export interface Loaded<State> {
  state: State;
  /** The revision of the last event, or -1 when the stream does not exist. */
  revision: number;
  position: Position | null;
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
}

export class CommandHandler {
  private readonly maxAttempts: number;

  constructor(
    readonly store: EventStore,
    private readonly options: CommandHandlerOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 5;
  }

  async load<Command, Event extends DomainEvent, State>(
    aggregate: Aggregate<Command, Event, State>,
    id: string,
  ): Promise<Loaded<State>> {
    const recorded = await this.store.readStream(streamOf(aggregate, id));
    const records = aggregate.records?.types ?? [];
    const state = fold(
      aggregate.decider,
      recorded
        .filter((event) => !records.includes(event.type))
        .map((event) => aggregate.events.parse(event.type, event.schemaVersion, event.data)),
    );
    const last = recorded.at(-1);
    return { state, revision: last?.revision ?? -1, position: last?.position ?? null, recorded };
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
    type Event = EventOf<A>;
    const started = performance.now();
    const stream = streamOf(aggregate, id);
    let commandType = typeof command === 'function' ? aggregate.category : command.type;
    const outcome = (result: Parameters<CommandMetrics['observe']>[1]) =>
      this.options.metrics?.observe(commandType, result, (performance.now() - started) / 1000);

    for (let attempt = 1; ; attempt += 1) {
      const loaded = await this.load(aggregate, id);
      const replayed = alreadyApplied(loaded.recorded, context);
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
        events = aggregate.decider.decide(decided, loaded.state) as Event[];
        if (events.length > 0 && gate) {
          verdict = await gate({ command: decided, state: loaded.state, revision: loaded.revision, events: events as EventOf<A>[] });
          events = verdict.events;
        }
      } catch (error) {
        outcome('rejected');
        throw error;
      }
      if (events.length === 0) {
        outcome('unchanged');
        return { id, revision: loaded.revision, position: loaded.position, appended: 0 };
      }

      try {
        await verdict?.admit?.();
        const result = await this.store.append(stream, events.map((event, index) => envelope(aggregate, event, index, context)), {
          expected: loaded.revision === -1 ? 'no_stream' : loaded.revision,
        });
        if (verdict?.refusal) {
          outcome('rejected');
          if (verdict.refusal instanceof PolicyViolation) verdict.refusal.recordedIn = { id, revision: result.revision, position: result.position };
          throw verdict.refusal;
        }
        outcome('ok');
        return { id, revision: result.revision, position: result.position, appended: result.duplicate ? 0 : events.length };
      } catch (error) {
        if (error === verdict?.refusal) throw error;
        if (!(error instanceof ConcurrencyConflict)) {
          outcome('error');
          throw error;
        }
        if (attempt >= this.maxAttempts) {
          outcome('conflict');
          throw new ConflictAfterRetries(error.stream, attempt, error.actual);
        }
        this.options.metrics?.conflictRetried(commandType);
        // Jittered backoff keeps a crowd of writers to one stream from colliding in lockstep.
        await sleep(Math.random() * 5 * attempt);
      }
    }
  }
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

export function metadataOf(context: CommandContext): EventMetadata {
  return {
    correlationId: context.correlationId,
    causationId: context.causationId,
    actor: context.actor,
    ...(context.traceparent ? { traceparent: context.traceparent } : {}),
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
