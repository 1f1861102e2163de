// The fast reading of an export's row lines, shared by the verifier and the worker threads that hash for it. Plain
// JavaScript (typed by audit-export-rows.d.mts): a worker runs it without the TypeScript loader, which costs a worker
// about 0.3 s of CPU to start, where the whole verification of 140,000 rows takes about 0.6 s.
import { Buffer } from 'node:buffer';
import { hash as digestOf } from 'node:crypto';

/** How a row line starts, and what lies between its two hashes. */
export const ROW_START = '{"kind":"row","prevHash":"';
export const HASH_MEMBER = '","hash":"';

const QUOTE = 0x22;
const COMMA = 0x2c;
const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;
/** The length of a SHA-256 in hex: every link and hash on a row line the fast path reads. */
const HASH_LENGTH = 64;
/** Members of the record after its content, each before its value: found from the end of a line. */
export const POSITION_MEMBER = ',"position":';
export const EVENT_ID_MEMBER = ',"eventId":';
export const RECORDED_AT_MEMBER = ',"recordedAt":';
const POSITION_BYTES = Buffer.from(POSITION_MEMBER);
const EVENT_ID_BYTES = Buffer.from(EVENT_ID_MEMBER);
const RECORDED_AT_BYTES = Buffer.from(RECORDED_AT_MEMBER);

/** Where the record's members start on a version 2 row line that links to `prevHash`. */
export function recordStart(prevHash) {
  return ROW_START.length + 2 * prevHash.length + HASH_MEMBER.length + 2;
}

/**
 * The row's hash as a version 2 line's head states it, when the head links to `prevHash`, which must be a SHA-256 in
 * hex (one byte a character, never escaped).
 */
export function statedHash(head, prevHash) {
  const hashAt = ROW_START.length + prevHash.length + HASH_MEMBER.length;
  const recordAt = recordStart(prevHash);
  const laidOut =
    head.startsWith(ROW_START) &&
    head.startsWith(prevHash, ROW_START.length) &&
    head.startsWith(HASH_MEMBER, hashAt - HASH_MEMBER.length) &&
    head.charCodeAt(recordAt - 2) === QUOTE &&
    head.charCodeAt(recordAt - 1) === COMMA;
  return laidOut ? head.slice(hashAt, recordAt - 2) : undefined;
}

/** The text a JSON string literal stands for. */
export function unquoted(literal) {
  return literal.includes('\\') ? JSON.parse(literal) : literal.slice(1, -1);
}

/**
 * The row on a line's bytes as read from a file, when the line is laid out as version 2 writes it, links to
 * `prevHash` and its record's bytes hash to the row's hash; otherwise undefined (see `hashedRowLine` in
 * audit-export.ts). The record's bytes are hashed as they are, never decoded into text and encoded again (which cost
 * a verification of a file about half its time); only the line's head and its last members are decoded.
 */
export function hashedRowBytes(line, prevHash) {
  const recordAt = recordStart(prevHash);
  if (line.length <= recordAt) return undefined;
  const hash = statedHash(line.toString('latin1', 0, recordAt), prevHash);
  if (hash === undefined) return undefined;
  // The hashed bytes put together in a buffer kept for it: the link (hex, so one byte a character), a line break, a
  // brace, and the record's bytes after its opening brace.
  const length = prevHash.length + 2 + line.length - recordAt;
  if (hashedBytes.length < length) hashedBytes = Buffer.allocUnsafe(2 * length);
  hashedBytes.write(`${prevHash}\n{`, 0, 'latin1');
  line.copy(hashedBytes, prevHash.length + 2, recordAt);
  if (digestOf('sha256', hashedBytes.subarray(0, length), 'hex') !== hash) return undefined;
  // The place members follow the content, whose text is the longest by far: found and decoded on their own. The
  // members after the content are scalars, whose JSON cannot hold `,"` anywhere but between members, so the last
  // `,"position":` is the record's own.
  const positionAt = line.lastIndexOf(POSITION_BYTES);
  const eventIdAt = line.lastIndexOf(EVENT_ID_BYTES, positionAt);
  const recordedAtAt = line.indexOf(RECORDED_AT_BYTES, positionAt);
  if (eventIdAt < recordAt || recordedAtAt < 0) return undefined;
  return {
    position: unquoted(line.toString('utf8', positionAt + POSITION_BYTES.length, recordedAtAt)),
    eventId: unquoted(line.toString('utf8', eventIdAt + EVENT_ID_BYTES.length, positionAt)),
    hash,
  };
}

/** Where `hashedRowBytes` puts together the text it hashes; grown when a line needs more. */
let hashedBytes = Buffer.allocUnsafe(1 << 16);

/**
 * The leading run of rows in a stretch of whole lines: each line a row that `hashedRowBytes` takes, linking to the
 * link its first line states, each after the one before in log order, up to the first line that is not (a header, a
 * checkpoint, a blank line, a broken row) or the end. What the run starts from (the link of its first row, and what
 * comes before it in the log) is for the caller to check; `end` is the byte where the lines after the run begin.
 */
export function leadingRows(bytes) {
  let end = 0;
  let count = 0;
  let first;
  let last;
  while (end < bytes.length) {
    const lineFeed = bytes.indexOf(LINE_FEED, end);
    const lineEnd = lineFeed < 0 ? bytes.length : lineFeed;
    const line = bytes[lineEnd - 1] === CARRIAGE_RETURN ? bytes.subarray(end, lineEnd - 1) : bytes.subarray(end, lineEnd);
    const link = last === undefined ? statedLink(line) : last.hash;
    const row = link === undefined ? undefined : hashedRowBytes(line, link);
    if (row === undefined || (last !== undefined && !(row.position > last.position))) break;
    if (first === undefined) first = { ...row, link };
    last = row;
    count += 1;
    end = lineEnd + 1;
  }
  return { count, end: Math.min(end, bytes.length), first, last };
}

/** The hash a row line states it links to, when it has the length of one. */
function statedLink(line) {
  const linkEnd = ROW_START.length + HASH_LENGTH;
  return line.length > linkEnd && line[linkEnd] === QUOTE ? line.toString('latin1', ROW_START.length, linkEnd) : undefined;
}
