// The rows of one read-model table that a batch of events touches: read in one query, changed in memory, written
// back in one upsert. A projector folds a thousand events with two round trips instead of two thousand.
//
// Rows go to the server and keys come from the client as one JSON document each, which the server reads into the
// table's own row type (`json_populate_recordset`): one parameter to bind and a statement whose text does not
// grow with the rows, where a multi-row VALUES list binds, and has the server parse and plan, a parameter for
// every column of every row. A jsonb column takes the JSON value in its place as it is. Rows that are only ever added
// go by COPY where the server is PostgreSQL, which reads each column's text for a fraction of what reading it out of
// a JSON document costs.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Knex } from 'knex';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

export type Row = Record<string, unknown>;

/** Rows per statement: a few hundred kilobytes of JSON, and at most one statement per batch of the runtime's size. */
const WRITE_CHUNK = 1000;

export class RowBatch {
  private readonly rows = new Map<string, Row>();
  private readonly changed = new Set<string>();

  /**
   * @param key the primary-key columns. Rows hold jsonb columns as their values (objects, arrays), as they are read.
   */
  constructor(
    private readonly trx: Knex.Transaction,
    private readonly table: string,
    private readonly key: readonly string[],
  ) {}

  /** Reads the rows with these keys (those that exist) into the batch. */
  async load(keys: Iterable<readonly unknown[]>): Promise<void> {
    const wanted = new Map<string, readonly unknown[]>();
    for (const key of keys) {
      const id = this.id(key);
      if (!this.rows.has(id)) wanted.set(id, key);
    }
    const all = [...wanted.values()];
    for (let i = 0; i < all.length; i += WRITE_CHUNK) {
      const keys = all.slice(i, i + WRITE_CHUNK).map((key) => Object.fromEntries(this.key.map((column, k) => [column, key[k]])));
      const rows = await selectWhereIn(this.trx, this.table, this.key, keys);
      for (const row of rows) this.rows.set(this.id(this.key.map((column) => row[column])), row);
    }
  }

  /** Reads every row whose `column` holds one of `values` (a key's leading column, say) into the batch. */
  async loadWhere(column: string, values: Iterable<unknown>): Promise<void> {
    const all = [...new Set(values)];
    for (let i = 0; i < all.length; i += WRITE_CHUNK) {
      const rows = await selectWhereIn(
        this.trx,
        this.table,
        [column],
        all.slice(i, i + WRITE_CHUNK).map((value) => ({ [column]: value })),
      );
      for (const row of rows) {
        const id = this.id(this.key.map((part) => row[part]));
        if (!this.rows.has(id)) this.rows.set(id, row);
      }
    }
  }

  /** The rows in the batch that `match`, in no particular order. */
  filter(match: (row: Row) => boolean): Row[] {
    return [...this.rows.values()].filter(match);
  }

  get(key: readonly unknown[]): Row | undefined {
    return this.rows.get(this.id(key));
  }

  /** A new row; like an SQL insert, a row whose key is already there is an error. */
  insert(row: Row): void {
    const id = this.id(this.key.map((column) => row[column]));
    if (this.rows.has(id)) throw new Error(`${this.table}: a row with key ${id} already exists`);
    this.rows.set(id, row);
    this.changed.add(id);
  }

  /** Changes the row with this key and returns it; like an SQL update, a key with no row changes nothing. */
  update(key: readonly unknown[], changes: Row): Row | undefined {
    const id = this.id(key);
    const row = this.rows.get(id);
    if (!row) return undefined;
    Object.assign(row, changes);
    this.changed.add(id);
    return row;
  }

  /** Writes every row inserted or changed since the last flush. */
  async flush(): Promise<void> {
    const rows = [...this.changed].map((id) => this.rows.get(id)!);
    this.changed.clear();
    for (let i = 0; i < rows.length; i += WRITE_CHUNK) await writeRows(this.trx, this.table, rows.slice(i, i + WRITE_CHUNK), this.key);
  }

  private id(key: readonly unknown[]): string {
    // Most tables are keyed by one text column: its value is the id as it is (a text key and a composite one never
    // meet, since a batch holds one table's rows).
    if (key.length === 1 && typeof key[0] === 'string') return key[0];
    return JSON.stringify(key.map((part) => (part instanceof Date ? part.toISOString() : part)));
  }
}

/**
 * Rows that are only ever added: collected while a batch is folded, then written in a statement per thousand. A
 * jsonb column holds its value (an object, an array), not JSON text, which it would store as a JSON string.
 */
export async function insertRows(trx: Knex.Transaction, table: string, rows: readonly Row[]): Promise<void> {
  if (rows.length === 0) return;
  // Inside a transaction, knex hands out the transaction's own connection. PGlite's COPY reads no client stream.
  const connection: unknown = await (trx.client as Knex.Client).acquireConnection();
  const types = connection instanceof pg.Client ? await copyTypes(trx, table) : undefined;
  for (let i = 0; i < rows.length; i += WRITE_CHUNK) {
    const chunk = rows.slice(i, i + WRITE_CHUNK);
    if (types) await copyRows(connection as pg.Client, table, chunk, types);
    else await writeRows(trx, table, chunk);
  }
}

/** The types whose text COPY reads as `copyValue` writes it; a column of any other (an array, say) keeps the JSON way. */
const COPY_TYPES = new Set([
  'text',
  'uuid',
  'integer',
  'bigint',
  'smallint',
  'numeric',
  'double precision',
  'real',
  'boolean',
  'timestamp with time zone',
  'jsonb',
  'json',
]);

/**
 * A table's column types, looked up once: a read model's table keeps its columns for its generation (a new version
 * is a new table), and the lookup would otherwise add a round trip to every batch's transaction while it holds the
 * log's visible horizon back. Forgotten all at once past a bound, since fleet snapshots make tables of their own.
 */
const copyTypesByTable = new Map<string, Promise<Map<string, string> | undefined>>();
const MAX_TABLES_REMEMBERED = 1000;

/** The table's column types by name, or undefined where one of them is not in COPY_TYPES. */
function copyTypes(trx: Knex.Transaction, table: string): Promise<Map<string, string> | undefined> {
  let types = copyTypesByTable.get(table);
  if (!types) {
    if (copyTypesByTable.size >= MAX_TABLES_REMEMBERED) copyTypesByTable.clear();
    types = lookUpCopyTypes(trx, table);
    copyTypesByTable.set(table, types);
    types.catch(() => copyTypesByTable.delete(table));
  }
  return types;
}

async function lookUpCopyTypes(trx: Knex.Transaction, table: string): Promise<Map<string, string> | undefined> {
  const { rows } = (await trx.raw(
    'select attname as name, format_type(atttypid, null) as type from pg_attribute where attrelid = ?::regclass and attnum > 0 and not attisdropped',
    [quoted(table)],
  )) as { rows: { name: string; type: string }[] };
  if (rows.some(({ type }) => !COPY_TYPES.has(type))) return undefined;
  return new Map(rows.map(({ name, type }) => [name, type]));
}

/** The same rows as `writeRows` inserts, by COPY: each column the value the JSON way would have given it. */
async function copyRows(connection: pg.Client, table: string, rows: readonly Row[], types: ReadonlyMap<string, string>): Promise<void> {
  const columns = new Set<string>();
  for (const row of rows) for (const column of Object.keys(row)) columns.add(column);
  const named = [...columns];
  const json = named.map((column) => types.get(column) === 'jsonb' || types.get(column) === 'json');
  let lines = '';
  for (const row of rows) {
    let line = '';
    for (let i = 0; i < named.length; i++) {
      const value = copyValue(row[named[i]!], json[i]!);
      line += i === 0 ? value : `\t${value}`;
    }
    lines += `${line}\n`;
  }
  const list = named.map(quoted).join(', ');
  await pipeline(Readable.from([lines]), connection.query(copyFrom(`copy ${quoted(table)} (${list}) from stdin`)));
}

/**
 * A value in COPY's text format, as `json_populate_recordset` would have read it from the value's JSON: JSON null
 * (and what JSON leaves out) is `\N`; a json or jsonb column takes the JSON text; any other takes a JSON string's
 * text, or else the JSON text (a number, a boolean, an object in a text column).
 */
function copyValue(value: unknown, json: boolean): string {
  if (value === null || value === undefined) return '\\N';
  if (!json) {
    if (typeof value === 'string') return copyText(value);
    // Neither a number's text nor a Date's ISO text holds a character COPY escapes.
    if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '\\N';
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? '\\N' : value.toISOString();
  }
  const text = valueJson(value);
  if (text === undefined || text === 'null') return '\\N';
  // A string that toJSON gave: its text, as the JSON way reads a JSON string into a column that is not JSON.
  if (!json && text.startsWith('"')) return copyText(JSON.parse(text) as string);
  return copyJson(text);
}

/** JSON text in COPY's text format: JSON holds no raw tab, line break or carriage return, so only backslashes. */
export function copyJson(text: string): string {
  return text.includes('\\') ? text.replaceAll('\\', '\\\\') : text;
}

const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_SPECIALS = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** Text in COPY's text format: the four characters that delimit fields and rows escaped. */
export function copyText(text: string): string {
  // Most values hold none of them: a test is cheaper than a replace that finds nothing.
  return COPY_SPECIAL.test(text) ? text.replace(COPY_SPECIALS, (char) => COPY_ESCAPES[char]!) : text;
}

/**
 * Inserts rows read from one JSON array into the table's row type; with `key`, a row whose key is there already
 * takes the new values instead. The columns written are those the rows name, as a multi-row insert lists them; a
 * column a row leaves out is null in it (no read-model column has a default).
 */
async function writeRows(trx: Knex.Transaction, table: string, rows: readonly Row[], key?: readonly string[]): Promise<void> {
  if (rows.length === 0) return;
  const columns = new Set<string>();
  const json = rowsJson(rows, columns);
  const list = [...columns].map(quoted).join(', ');
  const updated = key ? [...columns].filter((column) => !key.includes(column)) : [];
  const onConflict = updated.length > 0 ? `update set ${updated.map((column) => `${quoted(column)} = excluded.${quoted(column)}`).join(', ')}` : 'nothing';
  const conflict = key ? ` on conflict (${key.map(quoted).join(', ')}) do ${onConflict}` : '';
  await trx.raw(`insert into ?? (${list}) select ${list} from json_populate_recordset(null::??, ?::json)${conflict}`, [table, table, json]);
}

/**
 * The text of `JSON.stringify(rows)`, written a column at a time, adding every column a row names to `columns`.
 * Rows hold their times as Dates (the events' and those read back), and `JSON.stringify` reaches a Date's `toJSON`
 * by a slow path that cost more than the rest of a row: here a Date is written as its ISO text directly, and
 * everything else as `JSON.stringify` writes it.
 */
function rowsJson(rows: readonly Row[], columns: Set<string>): string {
  let json = '[';
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    let text = i === 0 ? '{' : ',{';
    let first = true;
    for (const column of Object.keys(row)) {
      // Named by the row, so written: a column left undefined is null in the row the server reads.
      columns.add(column);
      const value = valueJson(row[column]);
      // Undefined has no JSON form: the member is left out, as JSON.stringify leaves it out.
      if (value === undefined) continue;
      text += `${first ? '' : ','}${stringJson(column)}:${value}`;
      first = false;
    }
    json += `${text}}`;
  }
  return `${json}]`;
}

/** A column's value as JSON.stringify writes it; undefined where it would leave the member out. */
function valueJson(value: unknown): string | undefined {
  if (typeof value === 'string') return stringJson(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  // An invalid Date has no ISO text: its toJSON gives null.
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'null' : `"${value.toISOString()}"`;
  return JSON.stringify(value) as string | undefined;
}

/** Characters JSON.stringify escapes in a string: quotes, backslashes, controls and lone surrogates. */
// eslint-disable-next-line no-control-regex
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string's JSON text; most need no escape, and a test is cheaper than the call that would find none. */
function stringJson(value: string): string {
  return ESCAPED.test(value) ? JSON.stringify(value) : `"${value}"`;
}

/** The rows whose `columns` hold one of the `keys` (objects of those columns), every column of them. */
async function selectWhereIn(trx: Knex.Transaction, table: string, columns: readonly string[], keys: readonly Row[]): Promise<Row[]> {
  const list = columns.map(quoted).join(', ');
  const { rows } = (await trx.raw(`select * from ?? where (${list}) in (select ${list} from json_populate_recordset(null::??, ?::json))`, [
    table,
    table,
    JSON.stringify(keys),
  ])) as { rows: Row[] };
  return rows;
}

/** A column name as an SQL identifier. */
function quoted(column: string): string {
  return `"${column.replaceAll('"', '""')}"`;
}
