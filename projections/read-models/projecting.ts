// What the read models' projectors share: a batch's events read through their catalogue, the columns of rows that
// follow an aggregate's stream, and the fold that keeps one such row per aggregate while a batch goes by. What their
// queries share is in query.ts.
import type { Knex } from 'knex';
import type { DomainEvent, EventCatalog } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import type { Row, RowBatch } from '../row-batch.js';

// ---- events -----------------------------------------------------------------------------------------------

/** A recorded event beside its domain event, upcast and checked by its catalogue. */
export interface Parsed<Event extends DomainEvent> {
  event: RecordedEvent;
  e: Event;
}

/**
 * The domain events parsed so far, by catalogue and by the recorded event they came from. The shared read hands the
 * same event objects to every projector of a batch, so a type that several projectors read (a deployment's events:
 * its read model and its uptime) is upcast and checked once. Held weakly: an entry goes with its batch. Parsed
 * events are never changed by the projectors that share them.
 */
const parsedBy = new WeakMap<EventCatalog<DomainEvent>, WeakMap<RecordedEvent, DomainEvent>>();

export function parse<Event extends DomainEvent>(catalog: EventCatalog<Event>, event: RecordedEvent): Event {
  let parsed = parsedBy.get(catalog) as WeakMap<RecordedEvent, Event> | undefined;
  if (!parsed) {
    parsed = new WeakMap();
    parsedBy.set(catalog, parsed);
  }
  let e = parsed.get(event);
  if (e === undefined) {
    e = catalog.parse(event.type, event.schemaVersion, event.data);
    parsed.set(event, e);
  }
  return e;
}

export function parseEach<Event extends DomainEvent>(catalog: EventCatalog<Event>, events: readonly RecordedEvent[]): Parsed<Event>[] {
  return events.map((event) => ({ event, e: parse(catalog, event) }));
}

// ---- columns ----------------------------------------------------------------------------------------------

/** Byte order, not the database locale's: positions and ids sort the same everywhere. */
export function sortable(table: Knex.CreateTableBuilder, column: string): Knex.ColumnBuilder {
  return table.specificType(column, 'text collate "C"').notNullable();
}

/** The order lists of aggregates are read in: by when each appeared in the log. */
export const BY_CREATION = ['created_position', 'id'] as const;

/** The columns every aggregate's row has, its place in the log and its stream revision, and the index lists page by. */
export function lifecycleColumns(table: Knex.CreateTableBuilder, name: string): void {
  sortable(table, 'created_position');
  table.integer('revision').notNullable();
  table.timestamp('created_at', { useTz: true }).notNullable();
  table.timestamp('updated_at', { useTz: true }).notNullable();
  table.unique([...BY_CREATION], { indexName: `${name}_order_idx` });
}

export function created(event: RecordedEvent) {
  return { created_position: event.position, revision: event.revision, created_at: event.recordedAt, updated_at: event.recordedAt };
}

export function touched(event: RecordedEvent) {
  return { revision: event.revision, updated_at: event.recordedAt };
}

// ---- one row per aggregate ----------------------------------------------------------------------------------

/**
 * Folds a batch, in log order, into one row per aggregate, keyed `id`, read and written in `rows`. `next` is given
 * the aggregate's row as it stands (undefined before its first event) and returns the columns the event leaves it
 * with, or undefined where the event leaves the row as it is. A first row is inserted with its place in the log; a
 * row that changes is touched. The caller flushes `rows`.
 */
export async function foldRows<Event extends DomainEvent>(
  rows: RowBatch,
  batch: readonly Parsed<Event>[],
  idOf: (parsed: Parsed<Event>) => string,
  next: (row: Row | undefined, parsed: Parsed<Event>, id: string) => Row | undefined,
): Promise<void> {
  const ids = batch.map(idOf);
  await rows.load(ids.map((id) => [id]));
  batch.forEach((parsed, i) => {
    const id = ids[i]!;
    const row = rows.get([id]);
    const columns = next(row, parsed, id);
    if (columns === undefined) return;
    // Assigned rather than spread: the columns' shapes differ from event to event, and spreading objects of many
    // shapes takes V8's slow path, which cost several microseconds an event.
    if (row === undefined) rows.insert(Object.assign({ id }, columns, created(parsed.event)));
    else rows.update([id], Object.assign({}, columns, touched(parsed.event)));
  });
}
