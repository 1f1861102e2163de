// Reading the audit trail's stored hash chain back, a page at a time in log order, as export and verification read
// it: each row's record as it was hashed, its content's canonical text as stored, and its two hashes.
import { setImmediate as yieldToOthers } from 'node:timers/promises';
import type { Knex } from 'knex';
import { canonicalJson } from './canonical-json.js';
import { auditRowHash, GENESIS_HASH, type AuditRecordHead } from './audit-trail.js';


export type AuditVerification =
  | { ok: true; rows: number }
  | { ok: false; rows: number; brokenAt: { id: string; position: string }; reason: string };

/**
 * A stored row as `readAuditChain` reads it: its columns in `STORED_COLUMNS` order, the revision and the time (in
 * microseconds) as text, and last the content as its stored canonical text.
 */
type StoredRow = [...StoredHead, content: string];

/** The columns of a `StoredRow` before its content. */
type StoredHead = [
  position: string,
  eventId: string,
  stream: string,
  type: string,
  revision: string,
  recordedMicros: string,
  actorId: string | null,
  actorKind: string | null,
  action: string,
  correlationId: string | null,
  causationId: string | null,
  summary: string,
  prevHash: string,
  hash: string,
];

/** The columns of a `StoredRow`, as SQL over the audit table. */
const STORED_COLUMNS = [
  'position',
  'event_id',
  'stream',
  'type',
  'revision::text',
  // Microseconds, so an edit below the millisecond is caught too.
  '(extract(epoch from recorded_at) * 1000000)::bigint::text',
  'actor_id',
  'actor_kind',
  'action',
  'correlation_id',
  'causation_id',
  'summary',
  'prev_hash',
  'hash',
  'content',
];
/** Where a `StoredRow` holds the content: after every column of its head. */
const STORED_CONTENT = (STORED_COLUMNS.length - 1) as StoredHead['length'];
/** The columns that may be null. */
const NULLABLE = new Set(['actor_id', 'actor_kind', 'correlation_id', 'causation_id']);
/**
 * Between a row's columns, and between a page's rows where PGlite reads a page as one text: the unit and record
 * separators (`chr(31)` and `chr(30)` in SQL), which no stored text holds where the trail wrote it (canonical JSON
 * escapes every control character, and summaries have theirs replaced). A text edited to hold one adds a column or a
 * row, and the page, whose count of rows or their columns no longer add up, is read again column by column.
 */
const ROW_SEPARATOR = '\u001e';
const COLUMN_SEPARATOR = '\u001f';
/**
 * A stored row as one text: its columns between separators, a column that may be null as empty when it is and
 * after a space when it is not (`concat_ws` leaves a null out, which would shift the columns after it).
 */
const STORED_TEXT = `concat_ws(chr(31), ${STORED_COLUMNS.map((sql) => (NULLABLE.has(sql) ? `coalesce(' ' || ${sql}, '')` : sql)).join(', ')})`;
const STORED_NULLABLE = STORED_COLUMNS.map((sql) => NULLABLE.has(sql));

/**
 * Walks the table in log order, a page at a time, recomputing every row's hash from its columns and checking
 * that it links to the row before. Reports the first row that does not hold up.
 */
export async function verifyAuditTrail(knex: Knex, table: string, options: { batchSize?: number } = {}): Promise<AuditVerification> {
  let expectedPrev = GENESIS_HASH;
  let rows = 0;
  for await (const page of readAuditChain(knex, table, {}, options.batchSize)) {
    for (const row of page) {
      rows++;
      const brokenAt = { id: row.record.eventId, position: row.record.position };
      if (row.prevHash !== expectedPrev) {
        return { ok: false, rows, brokenAt, reason: "prev_hash does not match the previous row's hash (a row was removed, inserted or reordered)" };
      }
      if (auditRowHash(row.prevHash, row.record, row.content) !== row.hash) {
        return { ok: false, rows, brokenAt, reason: "hash does not match the row's contents (the row or its hash was changed)" };
      }
      expectedPrev = row.hash;
    }
    // Let requests that came in while this page was hashed queue their queries before the next page's: on embedded
    // PGlite the walk and every other request share one connection and one thread.
    await yieldToOthers();
  }
  return { ok: true, rows };
}

/** A row of the chain as stored: what was hashed, and the hashes it holds. */
export interface AuditChainRow {
  record: AuditRecordHead;
  /** The content's canonical text as stored: the bytes the hash covers, never parsed on the way. */
  content: string;
  prevHash: string;
  hash: string;
}

/**
 * The stored chain in log order, a page at a time, from position `from` (inclusive) to `to` (exclusive), the whole
 * chain when neither is given.
 *
 * Each row is read as one text, its columns between separators as they are stored, never escaped into JSON strings
 * and parsed back. On embedded PGlite a page is one text made by the database, its rows between separators: one
 * value to receive, where fifteen columns a row are each received, decoded and converted on their own there (most of
 * the cost of reading the chain). A PostgreSQL server's driver receives values cheaply, but one text a row still
 * costs this process about a third less than fifteen columns, and the server about the same; there the next page
 * is asked for before this one is handed out.
 */
export async function* readAuditChain(
  knex: Knex,
  table: string,
  range: { from?: string; to?: string },
  batchSize = 1000,
): AsyncGenerator<AuditChainRow[]> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, not ${batchSize}`);
  const asText = !onServer(knex);
  // A table of version 1 (the content as jsonb) still serves while version 2 is built: its contents are read as
  // JSON values and written canonically again, as version 1 hashed them.
  const legacy = (await contentType(knex, table)) === 'jsonb';
  const readPage = async (after: string | undefined): Promise<AuditChainRow[]> => {
    const rows = (select: string) =>
      knex(table)
        .select(knex.raw(select))
        .modify((query) => {
          if (after !== undefined) query.where('position', '>', after);
          else if (range.from !== undefined) query.where('position', '>=', range.from);
          if (range.to !== undefined) query.where('position', '<', range.to);
        })
        .orderBy('position')
        .limit(batchSize);
    // Every column as one JSON array per row, the content too: the PGlite read of a version 1 table, and of a page
    // whose contents do not split into one a row.
    const wholePage = async (): Promise<StoredRow[]> => {
      const [{ page: text }] = (await knex
        .from(rows(`json_build_array(${STORED_COLUMNS.join(', ')}) as stored, position`).as('page'))
        .select(knex.raw('json_agg(stored order by position)::text as page'))) as [{ page: string | null }];
      return text === null ? [] : (JSON.parse(text) as StoredRow[]);
    };
    if (legacy) return (await wholePage()).map((row) => chainRowOf(withCanonicalContent(row)));
    if (asText) {
      const [{ text, count }] = (await knex
        .from(rows(`${STORED_TEXT} as stored, position`).as('page'))
        .select(knex.raw('string_agg(stored, chr(30) order by position) as text, count(*)::int as count'))) as [{ text: string | null; count: number }];
      if (text === null) return [];
      const texts = text.split(ROW_SEPARATOR);
      return (texts.length === count ? rowsOfTexts(texts) : undefined) ?? (await wholePage()).map(chainRowOf);
    }
    const texts = ((await rows(`${STORED_TEXT} as stored`).options({ rowMode: 'array' })) as [string][]).map(([stored]) => stored);
    return rowsOfTexts(texts) ?? ((await rows(STORED_COLUMNS.join(', ')).options({ rowMode: 'array' })) as StoredRow[]).map(chainRowOf);
  };
  // On a server the next page is asked for before this one is handed out, so that the server reads it while the caller
  // works through this one; PGlite runs its queries on this thread, where asking early saves nothing.
  const readAhead = (after: string) => {
    const page = readPage(after);
    // Marked handled at once: a read that fails while the caller works is thrown where the page is awaited, and is
    // never taken for a rejection nobody handles.
    page.catch(() => undefined);
    return page;
  };
  let next: Promise<AuditChainRow[]> | undefined = readPage(undefined);
  try {
    for (;;) {
      const page = await next!;
      next = undefined;
      const last = page.length === batchSize ? page.at(-1)!.record.position : undefined;
      if (last !== undefined && !asText) next = readAhead(last);
      if (page.length > 0) yield page;
      if (last === undefined) return;
      next ??= readPage(last);
    }
  } finally {
    // A page read ahead and not needed (the caller stopped) is let finish, so that the caller may close the
    // database once this ends. Nothing waits for what it found, or for why it failed.
    await next?.catch(() => undefined);
  }
}

/** The type of the table's content column: `text` from version 2 on, `jsonb` in a table version 1 made. */
async function contentType(knex: Knex, table: string): Promise<string | undefined> {
  const [row] = (await knex
    .select(knex.raw('format_type(atttypid, atttypmod) as type'))
    .from('pg_attribute')
    .where({ attname: 'content' })
    .andWhere('attrelid', knex.raw('to_regclass(?)', [table]))) as { type: string }[];
  return row?.type;
}

/** The rows of a page read as a text a row; undefined when an edited column held a separator (its columns do not add up). */
function rowsOfTexts(texts: readonly string[]): AuditChainRow[] | undefined {
  const page: AuditChainRow[] = [];
  for (const rowText of texts) {
    const columns: (string | null)[] = rowText.split(COLUMN_SEPARATOR);
    if (columns.length !== STORED_COLUMNS.length) return undefined;
    for (let i = 0; i < columns.length; i++) if (STORED_NULLABLE[i]) columns[i] = columns[i] === '' ? null : columns[i]!.slice(1);
    page.push(chainRowOf(columns as StoredRow));
  }
  return page;
}

/** A row of a version 1 table, its content (read as a JSON value) written canonically again, as version 1 hashed it. */
function withCanonicalContent(row: StoredRow): StoredRow {
  row[STORED_CONTENT] = canonicalJson(row[STORED_CONTENT]);
  return row;
}

/** Whether the knex instance speaks to a PostgreSQL server through node-postgres (rather than to embedded PGlite). */
function onServer(knex: Knex): boolean {
  return (knex.client as Knex.Client).config.client === 'pg';
}

/** The first position, in log order, of a row recorded at or after the time; undefined when none was. */
export async function firstAuditPositionAt(knex: Knex, table: string, at: Date): Promise<string | undefined> {
  const row = (await knex(table).where('recorded_at', '>=', at).orderBy('position').first('position')) as { position: string } | undefined;
  return row?.position;
}

function chainRowOf(row: StoredRow): AuditChainRow {
  const [position, eventId, stream, type, revisionText, recordedMicros, actorId, actorKind, action, correlationId, causationId, summary, prevHash, hash, content] = row;
  const revision = Number(revisionText);
  return {
    record: {
      position,
      eventId,
      stream,
      type,
      revision: Number.isSafeInteger(revision) ? revision : revisionText,
      recordedAt: isoFromMicros(recordedMicros),
      actorId,
      actorKind,
      action,
      correlationId,
      causationId,
      summary,
    },
    content,
    prevHash,
    hash,
  };
}

/**
 * Millisecond ISO text, as the hash was taken over; a time off the millisecond gives text that cannot match.
 *
 * Rows of a page mostly fall in the same second: the text up to the second is kept from the last row and only the
 * milliseconds (and microseconds) written, rather than a date made and formatted for every row of an export.
 */
function isoFromMicros(text: string): string {
  const micros = Number(text);
  // Exact in a double up to 2^53 microseconds (the year 2255); beyond that, or before 1970, in BigInt arithmetic.
  if (!Number.isSafeInteger(micros) || micros < 0) return isoFromBigMicros(BigInt(text));
  const rest = micros % 1000;
  const millis = (micros - rest) / 1000;
  const inSecond = millis % 1000;
  const second = millis - inSecond;
  if (second !== lastSecond.millis) {
    // Up to and with the decimal point: "2026-12-07T12:00:28."
    lastSecond.prefix = new Date(second).toISOString().slice(0, -4);
    lastSecond.millis = second;
  }
  return `${lastSecond.prefix}${threeDigits(inSecond)}${rest === 0 ? '' : threeDigits(rest)}Z`;
}

/** The second `isoFromMicros` wrote last, in milliseconds since 1970, and its ISO text up to the decimal point. */
const lastSecond = { millis: Number.NaN, prefix: '' };

function threeDigits(n: number): string {
  return n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`;
}

function isoFromBigMicros(micros: bigint): string {
  const millis = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const iso = new Date(Number(millis)).toISOString();
  const rest = ((micros % 1000n) + 1000n) % 1000n;
  return rest === 0n ? iso : iso.replace('Z', `${rest.toString().padStart(3, '0')}Z`);
}
