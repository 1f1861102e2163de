// The anchored audit export: a window of the audit trail's hash chain as JSON lines, closed by a checkpoint of its
// last hash signed with Ed25519, and the offline verification of such a file (no database: the file and a public key).
import { createHash, createPrivateKey, createPublicKey, hash as digestOf, sign, verify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { canonicalJson } from '../projections/canonical-json.js';
import { auditRowHash, chainText, type AuditRecord, type AuditRecordTexts } from '../projections/audit-trail.js';
import { type AuditChainRow } from '../projections/audit-chain-read.js';
import {
  EVENT_ID_MEMBER,
  HASH_MEMBER,
  hashedRowBytes,
  leadingRows,
  POSITION_MEMBER,
  RECORDED_AT_MEMBER,
  recordStart,
  ROW_START,
  statedHash,
  unquoted,
  type HashedRow,
  type RowRun,
} from './audit-export-rows.mjs';
import { RowScanners, type ScannedLines } from './audit-export-workers.js';

export const EXPORT_FORMAT = 'sentinel-audit-export';
/** The version this code writes: 2 lays each row out with its hashes first, then its record's canonical JSON as hashed. */
export const EXPORT_VERSION = 2;
/** Versions this code verifies: 1 wrote each row's members in the order they are stored, the content last. */
const VERSIONS_READ = [1, 2] as const;
export const SIGNING_KEY_VARIABLE = 'AUDIT_SIGNING_KEY_FILE';

/** The first line: what the file holds, and the hash the first row links to (the row before the window). */
export interface ExportHeader {
  kind: 'header';
  format: typeof EXPORT_FORMAT;
  version: (typeof VERSIONS_READ)[number];
  /** The window as asked: times or positions, from inclusive, to exclusive. */
  window: { from: string | null; to: string | null };
  exportedAt: string;
  prevHash: string;
}

/**
 * One row of the chain: the record its hash covers, and its two hashes. Version 2 writes it as
 * `{"kind":"row","prevHash":…,"hash":…,` followed by the record's canonical JSON after its opening brace: the text
 * the hash covers, so a verifier hashes the line's own text, its link and a line break put before it.
 */
export type ExportRow = { kind: 'row'; prevHash: string; hash: string } & AuditRecord;

/** The last line: the chain's end, signed. `signature` is over the canonical JSON of every other member. */
export interface ExportCheckpoint {
  kind: 'checkpoint';
  rows: number;
  /** The hash the first row links to, the positions of the first and last rows, and the last row's hash. */
  prevHash: string;
  firstPosition: string | null;
  lastPosition: string | null;
  lastHash: string;
  signedAt: string;
  algorithm: 'ed25519';
  /** The signer's public key (SPKI PEM) and its id: the SHA-256 of its DER bytes, in hex. */
  publicKey: string;
  keyId: string;
  signature: string;
}

// ---- the signing key ---------------------------------------------------------------------------------------

/** A key the export cannot sign with; the message says what is wrong and what would be accepted. */
export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
}

/** The Ed25519 private key in the PEM text (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it). */
export function signingKeyFrom(pem: string, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw new SigningKeyError(`${where} holds no private key in PEM form (${(error as Error).message}); create one with: openssl genpkey -algorithm ed25519 -out audit-signing.pem`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(`${where} holds a ${key.asymmetricKeyType ?? 'symmetric'} key; the audit export signs with an Ed25519 key (openssl genpkey -algorithm ed25519)`);
  }
  return key;
}

/** An Ed25519 public key from PEM text: a public key (SPKI), or a private key whose public half is meant. */
export function publicKeyFrom(pem: string, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new SigningKeyError(`${where} holds no public key in PEM form (${(error as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SigningKeyError(`${where} holds a ${key.asymmetricKeyType ?? 'symmetric'} key, not an Ed25519 one`);
  return key;
}

function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

// ---- writing ------------------------------------------------------------------------------------------------

/**
 * Turns the stored chain into the lines of an export, checking it as it goes: a window whose rows do not hold up
 * (a hash that does not match its row, a row that does not link to the one before) is refused, never signed.
 */
export class AuditExportWriter {
  private rows = 0;
  private prevHash: string | undefined;
  private lastHash: string | undefined;
  private firstPosition: string | null = null;
  private lastPosition: string | null = null;
  /** The bytes of the last page: the next is about as long. */
  private pageSize = 0;

  constructor(
    private readonly key: KeyObject,
    private readonly window: ExportHeader['window'],
    private readonly now: () => Date = () => new Date(),
  ) {}

  header(firstPrevHash: string): string {
    this.prevHash = firstPrevHash;
    this.lastHash = firstPrevHash;
    const header: ExportHeader = { kind: 'header', format: EXPORT_FORMAT, version: EXPORT_VERSION, window: this.window, exportedAt: this.now().toISOString(), prevHash: firstPrevHash };
    return `${canonicalJson(header)}\n`;
  }

  /** The lines of a page of rows; throws, naming the row, when the stored chain is broken there. */
  page(rows: readonly AuditChainRow[]): string {
    return this.pageBytes(rows).toString('utf8');
  }

  /** `page` as the UTF-8 bytes written. */
  pageBytes(rows: readonly AuditChainRow[]): Buffer {
    const lines = new RowLines(this.pageSize);
    for (const row of rows) {
      if (this.lastHash === undefined) throw new Error('the header is written before the rows');
      if (row.prevHash !== this.lastHash) throw new Error(`${rowNamed(row)} does not link to the row before it: the stored chain is broken, and an export of it is not signed`);
      if (!lines.add(row)) throw new Error(`${rowNamed(row)} does not match its hash: the stored chain is broken, and an export of it is not signed`);
      this.rows += 1;
      this.firstPosition ??= row.record.position;
      this.lastPosition = row.record.position;
      this.lastHash = row.hash;
    }
    const bytes = lines.bytes();
    this.pageSize = bytes.length;
    return bytes;
  }

  /**
   * Writes the whole export through `write`: the header, each page's lines as the page is read, the signed
   * checkpoint. The header of a window without rows links to `prevHashOfEmpty()`. Answers the rows written.
   */
  async writeAll(pages: AsyncIterable<readonly AuditChainRow[]>, write: (piece: string | Uint8Array) => Promise<void>, prevHashOfEmpty: () => Promise<string>): Promise<number> {
    let headed = false;
    for await (const page of pages) {
      if (!headed) await write(this.header(page[0]!.prevHash));
      headed = true;
      await write(this.pageBytes(page));
    }
    if (!headed) await write(this.header(await prevHashOfEmpty()));
    await write(this.checkpoint());
    return this.rows;
  }

  checkpoint(): string {
    if (this.prevHash === undefined || this.lastHash === undefined) throw new Error('the header is written before the checkpoint');
    const checkpoint = signCheckpoint(
      { rows: this.rows, prevHash: this.prevHash, firstPosition: this.firstPosition, lastPosition: this.lastPosition, lastHash: this.lastHash, signedAt: this.now().toISOString() },
      this.key,
    );
    return `${canonicalJson(checkpoint)}\n`;
  }

  get exported(): number {
    return this.rows;
  }
}

function rowNamed({ record }: AuditChainRow): string {
  return `the audit trail's row at position ${record.position} (event ${record.eventId})`;
}

/** The two characters that end or escape a JSON string. */
const QUOTE_OR_BACKSLASH = /["\\]/;

/**
 * The text a row's hash covers, each member's text written between quotes as it stands; undefined when a member is
 * not text, null or (the revision) a safe integer, or a text holds a quote or a backslash.
 *
 * It spares `JSON.stringify` scanning every member for what to escape, and is right for nearly every row: exactly
 * when the text matches the row's hash. A text that JSON would escape otherwise (a control character, a lone
 * surrogate) then leaves it unlike the canonical text the hash was taken over, and the row is written from
 * `escapedHashedText`. Texts that hold neither a quote nor a backslash cannot shift what the template makes of them
 * into another member, so a match means these are the members the hash was taken over.
 */
function plainHashedText({ record: r, content, prevHash }: AuditChainRow): string | undefined {
  if (
    !Number.isSafeInteger(r.revision) ||
    !(isText(r.position) && isText(r.eventId) && isText(r.stream) && isText(r.type) && isText(r.recordedAt) && isText(r.action) && isText(r.summary)) ||
    !(isTextOrNull(r.actorId) && isTextOrNull(r.actorKind) && isTextOrNull(r.correlationId) && isTextOrNull(r.causationId)) ||
    QUOTE_OR_BACKSLASH.test(`${r.position}${r.eventId}${r.stream}${r.type}${r.recordedAt}${r.action}${r.summary}${r.actorId}${r.actorKind}${r.correlationId}${r.causationId}`)
  ) {
    return undefined;
  }
  const m: AuditRecordTexts = {
    position: `"${r.position}"`,
    eventId: `"${r.eventId}"`,
    stream: `"${r.stream}"`,
    type: `"${r.type}"`,
    revision: `${r.revision}`,
    recordedAt: `"${r.recordedAt}"`,
    actorId: quoted(r.actorId),
    actorKind: quoted(r.actorKind),
    action: `"${r.action}"`,
    correlationId: quoted(r.correlationId),
    causationId: quoted(r.causationId),
    summary: `"${r.summary}"`,
  };
  return chainText(prevHash, m, content);
}

/**
 * A page's lines, written as UTF-8 into one buffer as each row is checked. A row's text is encoded once: written where
 * its line puts the record, its link and line break just before, hashed there as bytes, and then the head of the line
 * (its two hashes) written over the link. The line is so written from the very bytes hashed: what is written is
 * always the text its hash was taken over. (Hashing a text, then writing it, encoded it twice, and the lines joined
 * into a page copied it twice more.)
 */
class RowLines {
  private buffer: Buffer;
  private used = 0;

  constructor(expectedBytes: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(1 << 16, expectedBytes + (expectedBytes >> 3)));
  }

  /**
   * Adds the row's line, written from the text its hash covers (see `plainHashedText`, then `escapedHashedText`);
   * false, and nothing added, when neither text matches its hash.
   */
  add(row: AuditChainRow): boolean {
    const plain = plainHashedText(row);
    return (plain !== undefined && this.addLine(row, plain)) || this.addLine(row, escapedHashedText(row));
  }

  private addLine(row: AuditChainRow, hashed: string): boolean {
    const head = `${ROW_START}${row.prevHash}${HASH_MEMBER}${row.hash}",`;
    const headBytes = Buffer.byteLength(head);
    // The hashed text starts with the link and a line break and brace, which the head then covers.
    const hashedAt = this.used + headBytes - (Buffer.byteLength(row.prevHash) + 2);
    // UTF-8 writes at most three bytes for each UTF-16 unit.
    this.reserve(headBytes + 3 * hashed.length + 1);
    const hashedBytes = this.buffer.write(hashed, hashedAt);
    if (digestOf('sha256', this.buffer.subarray(hashedAt, hashedAt + hashedBytes), 'hex') !== row.hash) return false;
    this.buffer.write(head, this.used);
    this.used = hashedAt + hashedBytes;
    this.buffer[this.used++] = LINE_FEED;
    return true;
  }

  bytes(): Buffer {
    return this.buffer.subarray(0, this.used);
  }

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.buffer.length) return;
    const larger = Buffer.allocUnsafe(Math.max(2 * this.buffer.length, this.used + bytes));
    this.buffer.copy(larger, 0, 0, this.used);
    this.buffer = larger;
  }
}

/** The text a row's hash covers, each member written by `JSON.stringify`: what `auditRowHash` hashes. */
function escapedHashedText({ record: r, content, prevHash }: AuditChainRow): string {
  const json = (value: unknown) => JSON.stringify(value) ?? 'null';
  const m: AuditRecordTexts = {
    position: json(r.position),
    eventId: json(r.eventId),
    stream: json(r.stream),
    type: json(r.type),
    revision: json(r.revision),
    recordedAt: json(r.recordedAt),
    actorId: json(r.actorId),
    actorKind: json(r.actorKind),
    action: json(r.action),
    correlationId: json(r.correlationId),
    causationId: json(r.causationId),
    summary: json(r.summary),
  };
  return chainText(prevHash, m, content);
}

function isText(value: unknown): value is string {
  return typeof value === 'string';
}

function isTextOrNull(value: unknown): value is string | null {
  return value === null || typeof value === 'string';
}

/** The JSON of a plain text or null. */
function quoted(value: string | null): string {
  return value === null ? 'null' : `"${value}"`;
}

/** What a checkpoint states about a chain, before it is signed. */
export type CheckpointClaims = Pick<ExportCheckpoint, 'rows' | 'prevHash' | 'firstPosition' | 'lastPosition' | 'lastHash' | 'signedAt'>;

/** The claims signed with the key: the signature is over the canonical JSON of every other member. */
export function signCheckpoint(claims: CheckpointClaims, key: KeyObject): ExportCheckpoint {
  const publicKey = createPublicKey(key);
  const unsigned = {
    kind: 'checkpoint' as const,
    ...claims,
    algorithm: 'ed25519' as const,
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
  return { ...unsigned, signature: sign(null, Buffer.from(canonicalJson(unsigned)!), key).toString('base64') };
}

/**
 * Why the checkpoint's signature does not hold, or undefined when it does: checked with the given public key (which
 * must be the one it names), else with the key it names.
 */
export function checkpointProblem(checkpoint: ExportCheckpoint, publicKey?: KeyObject): string | undefined {
  const { signature, ...unsigned } = checkpoint;
  let key: KeyObject;
  try {
    key = publicKey ?? publicKeyFrom(checkpoint.publicKey, 'the checkpoint');
  } catch (error) {
    return (error as Error).message;
  }
  if (publicKey !== undefined && keyIdOf(publicKey) !== checkpoint.keyId) {
    return `the checkpoint was signed with key ${checkpoint.keyId}, not the key given (${keyIdOf(publicKey)})`;
  }
  if (!verify(null, Buffer.from(canonicalJson(unsigned)!), key, Buffer.from(signature, 'base64'))) {
    return 'the checkpoint’s signature does not verify: the checkpoint was altered, or signed with another key';
  }
  return undefined;
}

// ---- verifying ----------------------------------------------------------------------------------------------

export interface ExportProblem {
  /** 1-based line of the file, and the row's position and event id where the problem is a row. */
  line: number;
  position?: string;
  eventId?: string;
  reason: string;
}

export type ExportVerification =
  | { ok: true; rows: number; lastHash: string; firstPosition: string | null; lastPosition: string | null; keyId: string; key: 'given' | 'embedded' }
  | { ok: false; rows: number; problem: ExportProblem };

const nullableText = z.string().nullable();

/** The members of a row line and what each holds: checked by hand, since a verification reads every row of the trail. */
const ROW_MEMBERS: Record<string, 'text' | 'text?' | 'revision' | 'json' | 'kind'> = {
  kind: 'kind',
  position: 'text',
  eventId: 'text',
  stream: 'text',
  type: 'text',
  revision: 'revision',
  recordedAt: 'text',
  actorId: 'text?',
  actorKind: 'text?',
  action: 'text',
  correlationId: 'text?',
  causationId: 'text?',
  summary: 'text',
  content: 'json',
  prevHash: 'text',
  hash: 'text',
};
const ROW_MEMBER_ENTRIES = Object.entries(ROW_MEMBERS);
const ROW_MEMBER_COUNT = ROW_MEMBER_ENTRIES.length;

/** Why the value is not a row line, or undefined when it is one. */
function rowLineProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const row = value as Record<string, unknown>;
  for (const [name, holds] of ROW_MEMBER_ENTRIES) {
    const member = row[name];
    const fits =
      holds === 'kind' ? member === 'row'
      : holds === 'text' ? typeof member === 'string'
      : holds === 'text?' ? member === null || typeof member === 'string'
      : holds === 'revision' ? typeof member === 'number' || typeof member === 'string'
      : member !== undefined;
    if (!fits) return `${name}: ${member === undefined ? 'missing' : `not ${holds === 'text?' ? 'a string or null' : holds === 'revision' ? 'a number' : 'a string'}`}`;
  }
  const members = Object.keys(row);
  const extra = members.length !== ROW_MEMBER_COUNT ? members.find((name) => !Object.hasOwn(ROW_MEMBERS, name)) : undefined;
  return extra === undefined ? undefined : `${extra}: not a member of a row`;
}
const headerLine = z.strictObject({
  kind: z.literal('header'),
  format: z.literal(EXPORT_FORMAT),
  version: z.union(VERSIONS_READ.map((version) => z.literal(version))),
  window: z.strictObject({ from: nullableText, to: nullableText }),
  exportedAt: z.string(),
  prevHash: z.string(),
});
const checkpointLine = z.strictObject({
  kind: z.literal('checkpoint'),
  rows: z.number().int().min(0),
  prevHash: z.string(),
  firstPosition: nullableText,
  lastPosition: nullableText,
  lastHash: z.string(),
  signedAt: z.string(),
  algorithm: z.literal('ed25519'),
  publicKey: z.string(),
  keyId: z.string(),
  signature: z.string(),
});

/** A SHA-256 in hex, as every hash of the chain is written. */
const HEX_HASH = /^[0-9a-f]{64}$/;

/**
 * The row on this line, when the line is laid out as version 2 writes it (`{"kind":"row","prevHash":"<hash>",
 * "hash":"<hash>",` and then the record's canonical JSON after its opening brace), links to `prevHash`, and the
 * record's text hashes to the row's hash; otherwise undefined, and the line is read whole (which also names what is
 * wrong).
 *
 * Nothing is parsed: the hashed text is the link, a line break, a brace and the rest of the line as it stands. When
 * it hashes to the row's hash it is the text the row was hashed over (anything else would be a SHA-256 collision),
 * the canonical JSON of a record, and the line is exactly what the whole-line reading would have accepted.
 */
function hashedRowLine(text: string, prevHash: string): HashedRow | undefined {
  const recordAt = recordStart(prevHash);
  const hash = statedHash(text, prevHash);
  if (hash === undefined || digestOf('sha256', `${prevHash}\n{${text.slice(recordAt)}`, 'hex') !== hash) return undefined;
  return placeOf(text, hash);
}

/**
 * The position and event id of a record whose canonical JSON ends the text. The members after the content are
 * scalars, whose JSON cannot hold `,"` anywhere but between members, so the last `,"position":` is the record's own
 * (and so in `hashedRowBytes`).
 */
function placeOf(text: string, hash: string): HashedRow {
  const positionAt = text.lastIndexOf(POSITION_MEMBER);
  const eventIdAt = text.lastIndexOf(EVENT_ID_MEMBER, positionAt);
  const recordedAtAt = text.indexOf(RECORDED_AT_MEMBER, positionAt);
  return {
    position: unquoted(text.slice(positionAt + POSITION_MEMBER.length, recordedAtAt)),
    eventId: unquoted(text.slice(eventIdAt + EVENT_ID_MEMBER.length, positionAt)),
    hash,
  };
}

/**
 * Checks an export line by line, without the database: each row's hash against its contents, each row's link to
 * the one before (an edited row, a deleted one, rows out of order), and the end of the chain against the signed
 * checkpoint (a tail rewritten with recomputed hashes, rows cut off the end). The signature is checked with the
 * given public key, or, without one, with the key the file names (which proves the file whole, not who signed it).
 * Reports the first problem, naming the line and the row.
 */
export function verifyExport(lines: Iterable<string>, publicKey?: KeyObject): ExportVerification {
  const verifier = new ExportVerifier(publicKey);
  for (const text of lines) if (!verifier.take(text)) break;
  return verifier.result();
}

/** How `verifyExportFile` reads a file: on how many threads, and how much at a time. */
export interface FileReading {
  /**
   * Threads that hash the rows, this one and worker threads: 1 for this one alone. By default one a core (up to
   * `MOST_THREADS`), and this one alone for a file under `THREADED_BYTES`.
   */
  threads?: number;
  /** Bytes read at a time: a megabyte by default. */
  chunkBytes?: number;
}

/** Below this size a file is verified on this thread alone: starting a worker (about 0.05 s of CPU) would cost more than it saves. */
const THREADED_BYTES = 16 << 20;
/** At most this many threads, however many cores. */
const MOST_THREADS = 4;

/**
 * `verifyExport` of a file, read a megabyte at a time (an export of a long chain passes the longest string V8
 * holds), each line taken as bytes. A line may end in CR LF. Throws only when the file cannot be read.
 *
 * A long file is hashed on several threads, this one and worker threads, each given a stretch of whole lines in turn:
 * a row's hash depends on its line alone, and the rows of a stretch are checked against each other (links, log
 * order) where it is hashed. This thread takes the stretches in order and checks what joins each to the one before
 * (its first row's link and place in the log); from the first line of a stretch not taken as a row (the header, the
 * checkpoint, anything wrong) it reads the lines one by one as it reads a small file, so the verdict and the problem
 * named are the same whatever the stretches.
 */
export async function verifyExportFile(file: string, publicKey?: KeyObject, reading: FileReading = {}): Promise<ExportVerification> {
  const verifier = new ExportVerifier(publicKey);
  const chunkBytes = reading.chunkBytes ?? 1 << 20;
  const threads = reading.threads ?? ((await stat(file)).size < THREADED_BYTES ? 1 : Math.min(availableParallelism(), MOST_THREADS));
  if (threads > 1) await verifyInThreads(file, verifier, chunkBytes, threads);
  else await verifyHere(file, verifier, chunkBytes);
  return verifier.result();
}

async function verifyHere(file: string, verifier: ExportVerifier, chunkBytes: number): Promise<void> {
  let rest: Buffer | undefined;
  // No byte of a character UTF-8 writes in several bytes is a line feed: every line is whole characters.
  read: for await (const chunk of createReadStream(file, { highWaterMark: chunkBytes }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let end = chunk.indexOf(LINE_FEED); end >= 0; end = chunk.indexOf(LINE_FEED, start)) {
      // The line begun in the chunk before ends here: only its own bytes are put together.
      const line = rest === undefined ? chunk.subarray(start, end) : Buffer.concat([rest, chunk.subarray(0, end)]);
      rest = undefined;
      if (!verifier.takeBytes(line)) break read;
      start = end + 1;
    }
    if (start < chunk.length) rest = rest === undefined ? chunk.subarray(start) : Buffer.concat([rest, chunk]);
  }
  if (rest !== undefined) verifier.takeBytes(rest);
}

async function verifyInThreads(file: string, verifier: ExportVerifier, chunkBytes: number, threads: number): Promise<void> {
  const scanners = new RowScanners(threads - 1);
  let stretches = 0;
  const out: Promise<ScannedLines>[] = [];
  const handle = await open(file);
  // The bytes after the last whole line read: the start of a line, put before the next read.
  let rest = Buffer.alloc(0);
  try {
    for (;;) {
      // Read into a buffer of this verification's own, which may move to a worker and back, never copied on the way.
      const bytes = Buffer.allocUnsafeSlow(rest.length + chunkBytes);
      rest.copy(bytes);
      const { bytesRead } = await handle.read(bytes, rest.length, chunkBytes, null);
      if (bytesRead === 0) break;
      const filled = rest.length + bytesRead;
      const end = bytes.lastIndexOf(LINE_FEED, filled - 1) + 1;
      rest = Buffer.from(bytes.subarray(end, filled));
      if (end > 0) {
        const lines = bytes.subarray(0, end);
        // Every `threads`th stretch is hashed here, while the workers hash theirs.
        const scanned = (stretches += 1) % threads === 0 ? Promise.resolve({ bytes: lines, run: leadingRows(lines) }) : scanners.scan(lines);
        // Awaited in order below; a worker's failure is thrown there, never taken for a rejection nobody handles.
        scanned.catch(() => undefined);
        out.push(scanned);
      }
      // Two stretches a worker out at most: enough to keep each busy while this thread takes an answer.
      while (out.length > 2 * threads) if (!verifier.takeScanned(await out.shift()!)) return;
    }
    while (out.length > 0) if (!verifier.takeScanned(await out.shift()!)) return;
    if (rest.length > 0) verifier.takeBytes(rest);
  } finally {
    await Promise.all([handle.close(), scanners.close()]);
  }
}

const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** What `verifyExport` does, a line at a time. */
class ExportVerifier {
  private header: z.infer<typeof headerLine> | undefined;
  private checkpoint: z.infer<typeof checkpointLine> | undefined;
  private rows = 0;
  private lastHash: string | undefined;
  private lastPosition: string | null = null;
  private firstPosition: string | null = null;
  private number = 0;
  private problem: ExportProblem | undefined;
  /** Whether the hash the next row links to is a SHA-256 in hex, as the fast paths need: every row's is. */
  private linkIsHex = false;

  constructor(private readonly publicKey: KeyObject | undefined) {}

  /** Checks the next line; false once a problem is found, and every line after it is then left unread. */
  take(text: string): boolean {
    if (this.problem !== undefined) return false;
    this.number += 1;
    this.problem = this.lineProblem(text);
    return this.problem === undefined;
  }

  /** `take` of a line's bytes, without its line feed: a row that verifies as bytes is never decoded whole. */
  takeBytes(bytes: Buffer): boolean {
    const line = bytes.at(-1) === CARRIAGE_RETURN ? bytes.subarray(0, -1) : bytes;
    const row = this.problem === undefined && this.readingRows() ? hashedRowBytes(line, this.lastHash!) : undefined;
    if (row === undefined) return this.take(line.toString('utf8'));
    this.number += 1;
    this.problem = this.rowTaken(row);
    return this.problem === undefined;
  }

  /** Takes a stretch of whole lines a worker scanned: its leading run of rows at once where it joins, then the rest line by line. */
  takeScanned({ bytes, run }: ScannedLines): boolean {
    let start = this.takeRun(run) ? run.end : 0;
    for (let end = bytes.indexOf(LINE_FEED, start); end >= 0; end = bytes.indexOf(LINE_FEED, start)) {
      if (!this.takeBytes(bytes.subarray(start, end))) return false;
      start = end + 1;
    }
    return this.problem === undefined;
  }

  /**
   * Takes a run of rows found hashed, linked and in log order, when its first row links to the row before it and
   * comes after it in the log: as taking each of its lines in turn would.
   */
  private takeRun({ count, first, last }: RowRun): boolean {
    if (count === 0 || first === undefined || last === undefined || this.problem !== undefined || !this.readingRows()) return false;
    if (first.link !== this.lastHash || this.outOfOrder(first.position, first.eventId) !== undefined) return false;
    this.number += count;
    this.rows += count;
    this.firstPosition ??= first.position;
    this.lastPosition = last.position;
    this.lastHash = last.hash;
    return true;
  }

  /** Whether the next line may be a row read on a fast path: after the header, before the checkpoint. */
  private readingRows(): boolean {
    return this.linkIsHex && this.checkpoint === undefined;
  }

  result(): ExportVerification {
    const problem = this.problem ?? this.endProblem();
    if (problem !== undefined) return { ok: false, rows: this.rows, problem };
    return { ok: true, rows: this.rows, lastHash: this.lastHash!, firstPosition: this.firstPosition, lastPosition: this.lastPosition, keyId: this.checkpoint!.keyId, key: this.publicKey ? 'given' : 'embedded' };
  }

  private lineProblem(text: string): ExportProblem | undefined {
    const number = this.number;
    if (text.trim() === '') return undefined;
    const row = this.readingRows() ? hashedRowLine(text, this.lastHash!) : undefined;
    if (row !== undefined) return this.rowTaken(row);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { line: number, reason: 'not a JSON line' };
    }
    const kind = (value as { kind?: unknown } | null)?.kind;
    if (this.checkpoint !== undefined) return { line: number, reason: 'a line after the checkpoint: the checkpoint is the last line' };
    if (this.header === undefined) {
      const parsed = headerLine.safeParse(value);
      if (!parsed.success) return { line: number, reason: `the first line is not the header of a ${EXPORT_FORMAT} of version ${VERSIONS_READ.join(' or ')}` };
      this.header = parsed.data;
      this.lastHash = parsed.data.prevHash;
      this.linkIsHex = HEX_HASH.test(parsed.data.prevHash);
      return undefined;
    }
    if (kind === 'checkpoint') {
      const parsed = checkpointLine.safeParse(value);
      if (!parsed.success) return { line: number, reason: `the checkpoint is malformed: ${z.prettifyError(parsed.error)}` };
      this.checkpoint = parsed.data;
      return undefined;
    }
    const problem = rowLineProblem(value);
    if (problem !== undefined) return { line: number, reason: `not a row of the chain: ${problem}` };
    const { kind: _kind, prevHash, hash, ...record } = value as ExportRow;
    const at = { line: number, position: record.position, eventId: record.eventId };
    const outOfOrder = this.outOfOrder(record.position, record.eventId);
    if (outOfOrder !== undefined) return outOfOrder;
    if (prevHash !== this.lastHash) return { ...at, reason: 'does not link to the row before it (a row before it was deleted, inserted or moved)' };
    if (auditRowHash(prevHash, record) !== hash) return { ...at, reason: 'does not match its hash (the row was edited)' };
    return this.accept(record.position, hash);
  }

  /** A row whose hash and link held on the fast path, taken unless it is out of log order. */
  private rowTaken(row: HashedRow): ExportProblem | undefined {
    return this.outOfOrder(row.position, row.eventId) ?? this.accept(row.position, row.hash);
  }

  private outOfOrder(position: string, eventId: string): ExportProblem | undefined {
    if (this.lastPosition === null || position > this.lastPosition) return undefined;
    return { line: this.number, position, eventId, reason: `out of log order: position ${position} comes after ${this.lastPosition} (rows were reordered)` };
  }

  /** Takes a row whose link, hash and place in the log hold. */
  private accept(position: string, hash: string): undefined {
    // Equal to a digest just computed, on either path.
    this.linkIsHex = true;
    this.rows += 1;
    this.firstPosition ??= position;
    this.lastPosition = position;
    this.lastHash = hash;
    return undefined;
  }

  /** Once every line is read: what the checkpoint signed against what the file holds. */
  private endProblem(): ExportProblem | undefined {
    const end = { line: this.number };
    const { header, checkpoint, rows, firstPosition, lastPosition } = this;
    if (header === undefined) return { ...end, reason: 'the file is empty: no header' };
    if (checkpoint === undefined) return { ...end, reason: 'no signed checkpoint at the end (the file was cut short)' };
    const unsigned = checkpointProblem(checkpoint, this.publicKey);
    if (unsigned !== undefined) return { ...end, reason: unsigned };
    if (checkpoint.prevHash !== header.prevHash) return { ...end, reason: 'the header’s prevHash is not the one the checkpoint signed (the start of the chain was changed)' };
    if (checkpoint.rows !== rows || checkpoint.lastPosition !== lastPosition || checkpoint.firstPosition !== firstPosition) {
      return { ...end, reason: `the checkpoint signed ${checkpoint.rows} rows from ${checkpoint.firstPosition} to ${checkpoint.lastPosition}; the file holds ${rows} from ${firstPosition} to ${lastPosition} (rows were added or deleted)` };
    }
    if (checkpoint.lastHash !== this.lastHash) return { ...end, reason: 'the chain’s last hash is not the one the checkpoint signed: rows were rewritten and their hashes recomputed' };
    return undefined;
  }
}
