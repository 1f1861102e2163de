// The query side every list shares, the read models' and the audit trail's: a read model's shape, paging with
// opaque cursors, the one error for a query that cannot be answered, and filters checked before any SQL is built.
// What their projectors share is in projecting.ts.
import type { Knex } from 'knex';
import { z } from 'zod';
import { timestamp } from '../../domain/schemas.js';
import type { Projector, TableNames } from '../projector.js';

// ---- the shape every read model takes ---------------------------------------------------------------------

export const ORDERS = ['asc', 'desc'] as const;
export type Order = (typeof ORDERS)[number];

export interface Page {
  /** 1 to 500. */
  limit: number;
  /** `nextCursor` of the previous page; absent (or empty) for the first. */
  cursor?: string;
  /** Oldest first (`asc`, the default) or newest first (`desc`); a cursor continues only in the order it was handed out in. */
  order?: Order;
  /** Filters by name; each read model says which it accepts. A list of values (only for equality filters) matches any of them. */
  filters: Record<string, string | readonly string[]>;
}

export interface PageOf<Item = unknown> {
  items: Item[];
  /** Null on the last page. */
  nextCursor: string | null;
}

export interface ReadModel<Base extends string = string> {
  projector: Projector<Base>;
  /** The filters `list` accepts, by name. */
  filters: readonly string[];
  /** What each filter accepts, by name: the query API checks parameters against these and documents them. */
  accepts: Readonly<Record<string, z.ZodType<string>>>;
  list(knex: Knex, tables: TableNames<Base>, page: Page): Promise<PageOf>;
  get?(knex: Knex, tables: TableNames<Base>, id: string): Promise<unknown | undefined>;
}

export const MAX_PAGE_SIZE = 500;

/** A query the read side cannot answer as asked: a bad limit, cursor or filter. `errors` name the parameter. */
export class InvalidQuery extends Error {
  override name = 'InvalidQuery';
  constructor(
    message: string,
    readonly errors: { path: string; message: string }[],
  ) {
    super(message);
  }
}

// ---- paging and filtering ---------------------------------------------------------------------------------

/** Opaque to clients: the order a page was read in and the sort key of its last row. */
export function encodeCursor(key: readonly string[], order: Order = 'asc'): string {
  return Buffer.from(JSON.stringify([order, ...key])).toString('base64url');
}

/** The sort key a cursor continues after; a cursor handed out for the other order is refused, naming the order. */
export function decodeCursor(cursor: string, length: number, order: Order = 'asc'): string[] {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  // Each part goes into SQL text: a control character or a lone surrogate is no key this list handed out.
  if (!Array.isArray(key) || key.length !== length + 1 || !key.every((part) => typeof part === 'string' && !/[\p{Cc}\p{Cs}]/u.test(part))) {
    throw new InvalidQuery('the cursor is not one this list handed out', [{ path: 'cursor', message: "a previous page's nextCursor" }]);
  }
  const [handedOutFor, ...rest] = key as string[];
  if (handedOutFor !== order) {
    throw new InvalidQuery(`the cursor continues a list read with order=${handedOutFor}, not order=${order}`, [
      { path: 'cursor', message: `a nextCursor of a page read with order=${order}` },
    ]);
  }
  return rest;
}

/** A filter: what it accepts (checked before any SQL is built), and how it narrows the query. */
export type Filter = ((query: Knex.QueryBuilder, value: string | readonly string[]) => void) & { accepts: z.ZodType<string> };
export type Filters = Record<string, Filter>;

/** A filter's value as it accepts it; `listPage` names the filter in the error. */
export function checked(accepts: z.ZodType<string>, value: string): string {
  const parsed = accepts.safeParse(value);
  if (!parsed.success) throw new InvalidQuery(`cannot filter by ${JSON.stringify(value)}`, [{ path: '', message: parsed.error.issues[0]!.message }]);
  return parsed.data;
}

export function filter(accepts: z.ZodType<string>, narrow: (query: Knex.QueryBuilder, value: string) => void): Filter {
  const apply = (query: Knex.QueryBuilder, value: string | readonly string[]) => {
    if (typeof value !== 'string') throw new InvalidQuery('this filter takes one value', [{ path: '', message: 'one value' }]);
    narrow(query, checked(accepts, value));
  };
  return Object.assign(apply, { accepts });
}

export const filterText = z.string().min(1, 'a non-empty string').max(1024, 'at most 1024 characters');

/** An instant PostgreSQL can compare with: an ISO 8601 date-time in the years 1 to 9999 (JavaScript's dates reach far further). */
export const instant = timestamp.refine((value) => !value.startsWith('0000-'), 'an ISO 8601 date-time in the years 1 to 9999, such as 2026-01-31T12:00:00Z');

/** Equal to the value; a list of values (an actor's id and the ids its name stands for) matches any of them. */
export function equals(column: string, accepts: z.ZodType<string> = filterText): Filter {
  const apply = (query: Knex.QueryBuilder, value: string | readonly string[]) =>
    void query.whereIn(column, (typeof value === 'string' ? [value] : value).map((one) => checked(accepts, one)));
  return Object.assign(apply, { accepts });
}

export const oneOf = (column: string, values: readonly string[]): Filter =>
  filter(z.enum(values as [string, ...string[]], { error: `one of ${values.join(', ')}` }), (query, value) => void query.where(column, value));

export const flag = (column: string): Filter =>
  filter(z.enum(['true', 'false'], { error: 'true or false' }), (query, value) => void query.where(column, value === 'true'));

/** Rows whose jsonb array column holds an element containing `element`; GIN-indexed, and the same on PGlite. */
export const contains = (column: string, element: (value: string) => unknown, accepts: z.ZodType<string> = filterText): Filter =>
  filter(accepts, (query, value) => void query.whereRaw('?? @> ?::jsonb', [column, JSON.stringify([element(value)])]));

export function instantFilter(column: string, operator: '>=' | '<'): Filter {
  const described = instant.describe(operator === '>=' ? 'at or after this time (ISO 8601 date-time)' : 'before this time (ISO 8601 date-time)');
  return filter(described, (query, value) => void query.where(column, operator, new Date(value)));
}

export function acceptsOf(filters: Filters): Record<string, z.ZodType<string>> {
  return Object.fromEntries(Object.entries(filters).map(([name, { accepts }]) => [name, accepts]));
}

/**
 * One page of `query` in the order of `sort` (columns that together are unique, compared in byte order),
 * after the cursor, with the given filters.
 */
export async function listPage<Row>(
  query: Knex.QueryBuilder,
  sort: readonly string[],
  filters: Filters,
  page: Page,
  item: (row: Row) => unknown,
): Promise<PageOf> {
  const { limit } = page;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new InvalidQuery(`limit ${limit} is out of range`, [{ path: 'limit', message: `a whole number from 1 to ${MAX_PAGE_SIZE}` }]);
  }
  const order = page.order ?? 'asc';
  if (!ORDERS.includes(order)) throw new InvalidQuery(`order ${String(order)} is not one of asc, desc`, [{ path: 'order', message: 'asc or desc' }]);
  for (const [name, value] of Object.entries(page.filters)) {
    const filter = Object.hasOwn(filters, name) ? filters[name] : undefined;
    if (!filter) {
      const accepted = Object.keys(filters);
      throw new InvalidQuery(`unknown filter ${name}`, [
        { path: name, message: accepted.length === 0 ? 'this list takes no filters' : `not a filter here; accepted are ${accepted.join(', ')}` },
      ]);
    }
    try {
      filter(query, value);
    } catch (error) {
      if (!(error instanceof InvalidQuery)) throw error;
      throw new InvalidQuery(`${name}: ${error.message}`, [{ path: name, message: error.errors[0]?.message ?? error.message }]);
    }
  }
  if (page.cursor) {
    const after = decodeCursor(page.cursor, sort.length, order);
    const marks = sort.map(() => '??').join(', ');
    const values = sort.map(() => '?').join(', ');
    query.whereRaw(`(${marks}) ${order === 'asc' ? '>' : '<'} (${values})`, [...sort, ...after]);
  }
  const rows = (await query.orderBy(sort.map((column) => ({ column, order }))).limit(limit + 1)) as Record<string, unknown>[];
  const shown = rows.slice(0, limit);
  const last = shown.at(-1);
  return {
    items: shown.map((row) => item(row as Row)),
    nextCursor: rows.length > limit && last ? encodeCursor(sort.map((column) => String(last[column])), order) : null,
  };
}

// ---- what items show ----------------------------------------------------------------------------------------

export function iso(value: unknown): string | null {
  return value === null || value === undefined ? null : new Date(value as string | Date).toISOString();
}

/** The columns every aggregate's row has (see `lifecycleColumns`), as rows are read back. */
export interface Lifecycle {
  revision: number;
  created_at: Date;
  updated_at: Date;
}

export function lifecycle(row: Lifecycle) {
  return { revision: row.revision, createdAt: iso(row.created_at), updatedAt: iso(row.updated_at) };
}
