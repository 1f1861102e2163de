// The shape every aggregate takes, the typed domain errors, and versioned event catalogues.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';

/**
 * An aggregate as three pure pieces. `decide` throws a `DomainError` for a command the state does not
 * allow, and returns no events for a command that asks for what is already so.
 */
export interface Decider<Command, Event, State> {
  initialState: State;
  evolve(state: State, event: Event): State;
  decide(command: Command, state: State): Event[];
}

/** A domain event before it has an envelope: the store adds id, stream, revision and position. */
export interface DomainEvent<Type extends string = string, Data = unknown> {
  type: Type;
  data: Data;
}

// ---- errors -------------------------------------------------------------------------------------------

export interface FieldError {
  path: string;
  message: string;
}

export abstract class DomainError extends Error {
  abstract readonly code: 'not_found' | 'invalid_transition' | 'rule_violation' | 'policy_violation';
}

/** The aggregate the command names does not exist. */
export class NotFound extends DomainError {
  override name = 'NotFound';
  readonly code = 'not_found';
  constructor(
    readonly kind: string,
    readonly id: string,
  ) {
    super(`${kind} ${id} does not exist`);
  }
}

/** The aggregate exists, but its current status does not allow the command. */
export class InvalidTransition extends DomainError {
  override name = 'InvalidTransition';
  readonly code = 'invalid_transition';
  constructor(
    readonly kind: string,
    readonly id: string,
    readonly status: string,
    readonly command: string,
    reason?: string,
  ) {
    super(`${kind} ${id} is ${status}: cannot ${command}${reason ? ` (${reason})` : ''}`);
  }
}

/** The command is well formed but breaks a rule of the domain (a SKU the cluster lacks, an unknown revision). */
export class RuleViolation extends DomainError {
  override name = 'RuleViolation';
  readonly code = 'rule_violation';
  constructor(
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
  }
}

/** Policy refused the change; the decision is recorded. `errors` name each enforce policy that failed. */
export class PolicyViolation extends DomainError {
  override name = 'PolicyViolation';
  readonly code = 'policy_violation';
  constructor(
    message: string,
    readonly errors: FieldError[],
    /** Where the decision was recorded: the id of the judged thing, and the revision and position of the record. */
    public recordedIn?: { id: string; revision: number; position: string | null },
  ) {
    super(message);
  }
}

// ---- event catalogues ---------------------------------------------------------------------------------

/**
 * One event type: its current schema version, its schema, and how to lift each older version's data to
 * the next one. Stored events are never rewritten; they are upcast when read.
 */
export interface EventDefinition<Data> {
  version: number;
  schema: z.ZodType<Data>;
  /** `upcast[v]` turns data written at version v into data of version v + 1. */
  upcast?: Record<number, (data: unknown) => unknown>;
}

type DataOf<D> = D extends EventDefinition<infer Data> ? Data : never;

/** The union of domain events a catalogue describes. */
export type EventsOf<Defs extends Record<string, EventDefinition<unknown>>> = {
  [T in keyof Defs & string]: DomainEvent<T, DataOf<Defs[T]>>;
}[keyof Defs & string];

/** The event union of a catalogue. */
export type EventOf<Catalog> = Catalog extends EventCatalog<infer Event> ? Event : never;

export class UnknownEvent extends Error {
  override name = 'UnknownEvent';
}

export interface EventCatalog<Event extends DomainEvent> {
  readonly types: readonly Event['type'][];
  version(type: Event['type']): number;
  /** Upcasts and validates a stored event; throws `UnknownEvent` for a type or version it cannot read. */
  parse(type: string, schemaVersion: number, data: unknown): Event;
}

export function defineEvents<const Defs extends Record<string, EventDefinition<unknown>>>(
  definitions: Defs,
): EventCatalog<EventsOf<Defs>> {
  type Event = EventsOf<Defs>;
  const types = Object.keys(definitions) as Event['type'][];
  return {
    types,
    version: (type) => definitions[type]!.version,
    parse(type, schemaVersion, data) {
      const definition = Object.hasOwn(definitions, type) ? definitions[type] : undefined;
      if (!definition) throw new UnknownEvent(`unknown event type ${type}`);
      if (!Number.isInteger(schemaVersion) || schemaVersion < 1 || schemaVersion > definition.version) {
        throw new UnknownEvent(`${type} has no schema version ${schemaVersion} (current: ${definition.version})`);
      }
      let current = data;
      for (let v = schemaVersion; v < definition.version; v += 1) {
        const lift = definition.upcast?.[v];
        if (!lift) throw new UnknownEvent(`${type}: no upcaster from schema version ${v}`);
        current = lift(current);
      }
      const parsed = definition.schema.safeParse(current);
      if (!parsed.success) {
        throw new UnknownEvent(`${type} v${schemaVersion} does not match its schema: ${z.prettifyError(parsed.error)}`);
      }
      return { type, data: parsed.data } as Event;
    },
  };
}

/** Folds events into state (from the initial state, or from `from`): what loading an aggregate is, without the I/O. */
export function fold<Event, State>(
  decider: Pick<Decider<unknown, Event, State>, 'initialState' | 'evolve'>,
  events: Iterable<Event>,
  from: State = decider.initialState,
): State {
  let state = from;
  for (const event of events) state = decider.evolve(state, event);
  return state;
}

/** The fields of `changes` whose values differ from `current`: an update that changes nothing records nothing. */
export function changedFields<T extends object>(current: T, changes: Partial<T>): Partial<T> {
  const changed: Partial<T> = {};
  for (const key of Object.keys(changes) as (keyof T)[]) {
    if (changes[key] !== undefined && !isDeepStrictEqual(changes[key], current[key])) changed[key] = changes[key];
  }
  return changed;
}
