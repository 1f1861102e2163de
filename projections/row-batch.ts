// The rows of one read-model table that a batch of events touches: read in one query, changed in memory, written
// back in one upsert. A projector folds a thousand events with two round trips instead of two thousand.
//
// Rows go to the server and keys come from the client as one JSON document each, which the server reads into the
// table's own row type (`json_populate_recordset`): one parameter to bind and a statement whose text does not
// grow with the rows, where a multi-row VALUES list binds, and has the server parse and plan, a parameter for
// every column of every row. A jsonb column takes the JSON value in its place as it is.
import type { Knex } from 'knex';

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
  for (let i = 0; i < rows.length; i += WRITE_CHUNK) await writeRows(trx, table, rows.slice(i, i + WRITE_CHUNK));
}

/**
 * Inserts rows read from one JSON array into the table's row type; with `key`, a row whose key is there already
 * takes the new values instead. The columns written are those the rows name, as a multi-row insert lists them; a
 * column a row leaves out is null in it (no read-model column has a default).
 */
async function writeRows(trx: Knex.Transaction, table: string, rows: readonly Row[], key?: readonly string[]): Promise<void> {
  if (rows.length === 0) return;
  const columns = new Set<string>();
  for (const row of rows) for (const column of Object.keys(row)) columns.add(column);
  const list = [...columns].map(quoted).join(', ');
  const updated = key ? [...columns].filter((column) => !key.includes(column)) : [];
  const onConflict = updated.length > 0 ? `update set ${updated.map((column) => `${quoted(column)} = excluded.${quoted(column)}`).join(', ')}` : 'nothing';
  const conflict = key ? ` on conflict (${key.map(quoted).join(', ')}) do ${onConflict}` : '';
  await trx.raw(`insert into ?? (${list}) select ${list} from json_populate_recordset(null::??, ?::json)${conflict}`, [table, table, JSON.stringify(rows)]);
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
