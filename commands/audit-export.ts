// The anchored audit export: a window of the audit trail's hash chain as JSON lines, closed by a checkpoint of its
// last hash signed with Ed25519, and the offline verification of such a file (no database: the file and a public key).
import { createHash, createPrivateKey, createPublicKey, hash as digestOf, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../projections/canonical-json.js';
import { auditRowHash, chainText, type AuditRecord, type AuditRecordTexts } from '../projections/audit-trail.js';
import { type AuditChainRow } from '../projections/audit-chain-read.js';

export const EXPORT_FORMAT = 'sentinel-audit-export';
export const EXPORT_VERSION = 1;
export const SIGNING_KEY_VARIABLE = 'AUDIT_SIGNING_KEY_FILE';

/** The first line: what the file holds, and the hash the first row links to (the row before the window). */
export interface ExportHeader {
  kind: 'header';
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  /** The window as asked: times or positions, from inclusive, to exclusive. */
  window: { from: string | null; to: string | null };
  exportedAt: string;
  prevHash: string;
}

/** One row of the chain: the record its hash covers, and its two hashes. */
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
    // Joined once: one flat text, where appending each line would leave a tree of every piece for the write to flatten.
    const lines: string[] = [];
    for (const row of rows) {
      if (this.lastHash === undefined) throw new Error('the header is written before the rows');
      if (row.prevHash !== this.lastHash) throw new Error(`${rowNamed(row)} does not link to the row before it: the stored chain is broken, and an export of it is not signed`);
      // The content's stored canonical text is hashed and written into the line as it stands: a text that is not the
      // canonical JSON the hash was taken over does not match the hash, so what is written is always that JSON.
      const plain = plainRowTexts(row);
      if (plain !== undefined && digestOf('sha256', plain.hashed, 'hex') === row.hash) {
        lines.push(plain.line);
      } else if (auditRowHash(row.prevHash, row.record, row.content) === row.hash) {
        lines.push(rowLine(row));
      } else {
        throw new Error(`${rowNamed(row)} does not match its hash: the stored chain is broken, and an export of it is not signed`);
      }
      this.rows += 1;
      this.firstPosition ??= row.record.position;
      this.lastPosition = row.record.position;
      this.lastHash = row.hash;
    }
    return lines.join('');
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

/**
 * A row's line: its members in the order a stored row holds them (as `readAuditChain` reads it), then its hashes,
 * then the content, last, as its stored canonical text. The members are written by one `JSON.stringify` of an object
 * of one fixed shape, which gives a flat string where a template of each member's JSON would leave dozens of pieces
 * to join for every row.
 */
function rowLine({ record: r, content, prevHash, hash }: AuditChainRow): string {
  const members = {
    kind: 'row',
    position: r.position,
    eventId: r.eventId,
    stream: r.stream,
    type: r.type,
    revision: r.revision,
    recordedAt: r.recordedAt,
    actorId: r.actorId,
    actorKind: r.actorKind,
    action: r.action,
    correlationId: r.correlationId,
    causationId: r.causationId,
    summary: r.summary,
    prevHash,
    hash,
  } satisfies Omit<ExportRow, 'content'>;
  return `${JSON.stringify(members).slice(0, -1)},"content":${content}}\n`;
}

/** The two characters that end or escape a JSON string. */
const QUOTE_OR_BACKSLASH = /["\\]/;

/**
 * The text a row's hash covers and the row's line, both as templates, with the members in the orders
 * `auditRowHash` (sorted by name) and `rowLine` write them, each text between quotes as it stands; undefined when a
 * member is not text, null or (the revision) a safe integer, or a text holds a quote or a backslash.
 *
 * It spares `JSON.stringify` scanning every member for what to escape, twice, and is right for nearly every row:
 * exactly when the hashed text matches the row's hash. A text that JSON would escape otherwise (a control character,
 * a lone surrogate) then leaves the hashed text unlike the canonical text the hash was taken over, and the row is
 * written by `rowLine`. Texts that hold neither a quote nor a backslash cannot shift what the template makes of them
 * into another member, so a match means these are the members the hash was taken over. The two hashes need no such
 * test: the link starts the hashed text, before a line break no canonical JSON holds, and the row's hash is the one
 * computed.
 */
function plainRowTexts({ record: r, content, prevHash, hash }: AuditChainRow): { hashed: string; line: string } | undefined {
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
  return {
    hashed: chainText(prevHash, m, content),
    line:
      `{"kind":"row","position":${m.position},"eventId":${m.eventId},"stream":${m.stream},"type":${m.type},"revision":${m.revision},` +
      `"recordedAt":${m.recordedAt},"actorId":${m.actorId},"actorKind":${m.actorKind},"action":${m.action},"correlationId":${m.correlationId},` +
      `"causationId":${m.causationId},"summary":${m.summary},"prevHash":"${prevHash}","hash":"${hash}","content":${content}}\n`,
  };
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
  version: z.literal(EXPORT_VERSION),
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

/** How a row line written by `rowLine` starts. */
const LINE_START = '{"kind":"row"';
/** Its members after the kind and before the content, in the order it writes them, each with its `,"name":`. */
const LINE_HEAD = ROW_MEMBER_ENTRIES.filter(([name]) => name !== 'kind' && name !== 'content').map(([name, holds]) => ({ name, key: `,${JSON.stringify(name)}:`, holds }));
/** What follows them: the content's canonical text, then the closing brace. */
const CONTENT_MEMBER = ',"content":';
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const CLOSING_BRACE = 0x7d;

/**
 * The row on this line, when the line is a row laid out as `rowLine` writes it, that links to `prevHash` and whose
 * members' texts, as written, hash to the row's hash; otherwise undefined, and the line is read whole (which also
 * names what is wrong).
 *
 * Nothing is parsed and written out again: the JSON text of each member is cut from the line and the hashed text
 * put together from those texts and the content's, as they stand. A row of a kilobyte decision costs a walk over
 * its few short members and one hash. When that text hashes to the row's hash it is the text the row was hashed over
 * (anything else would be a SHA-256 collision), the canonical JSON of the record: so each member's text is its
 * canonical JSON and the content's text valid JSON, and the line is exactly what the whole-line reading would have
 * accepted.
 */
function hashedRowLine(text: string, prevHash: string): { position: string; eventId: string; hash: string } | undefined {
  if (!text.startsWith(LINE_START) || text.charCodeAt(text.length - 1) !== CLOSING_BRACE) return undefined;
  const values: string[] = [];
  let at = LINE_START.length;
  for (const { key, holds } of LINE_HEAD) {
    if (!text.startsWith(key, at)) return undefined;
    at += key.length;
    const end = valueEnd(text, at);
    const first = text.charCodeAt(at);
    // The kind of each value, from its first character: a string, null where a member may be null, else a number.
    const fits = first === QUOTE || (holds === 'text?' ? text.startsWith('null', at) : holds === 'revision' && first !== 0x7b && first !== 0x5b);
    if (end < 0 || !fits) return undefined;
    values.push(text.slice(at, end));
    at = end;
  }
  if (!text.startsWith(CONTENT_MEMBER, at)) return undefined;
  const [position, eventId, stream, type, revision, recordedAt, actorId, actorKind, action, correlationId, causationId, summary, linkedTo, hash] = values as [
    string, string, string, string, string, string, string, string, string, string, string, string, string, string,
  ];
  if (linkedTo !== `"${prevHash}"`) return undefined;
  const members: AuditRecordTexts = { position, eventId, stream, type, revision, recordedAt, actorId, actorKind, action, correlationId, causationId, summary };
  const hashed = chainText(prevHash, members, text.slice(at + CONTENT_MEMBER.length, -1));
  if (hash !== `"${digestOf('sha256', hashed, 'hex')}"`) return undefined;
  return { position: unquoted(position), eventId: unquoted(eventId), hash: hash.slice(1, -1) };
}

/**
 * Where the JSON value that starts at `at` ends: after the closing quote of a string (the first quote after an even
 * number of backslashes), or at the next comma for anything else; -1 when there is none.
 */
function valueEnd(text: string, at: number): number {
  if (text.charCodeAt(at) !== QUOTE) return text.indexOf(',', at);
  for (let from = at + 1; ; ) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return -1;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** The text a JSON string literal stands for. */
function unquoted(literal: string): string {
  return literal.includes('\\') ? (JSON.parse(literal) as string) : literal.slice(1, -1);
}

/**
 * Checks an export line by line, without the database: each row's hash against its contents, each row's link to
 * the one before (an edited row, a deleted one, rows out of order), and the end of the chain against the signed
 * checkpoint (a tail rewritten with recomputed hashes, rows cut off the end). The signature is checked with the
 * given public key, or, without one, with the key the file names (which proves the file whole, not who signed it).
 * Reports the first problem, naming the line and the row.
 */
export function verifyExport(lines: Iterable<string>, publicKey?: KeyObject): ExportVerification {
  let header: z.infer<typeof headerLine> | undefined;
  let checkpoint: z.infer<typeof checkpointLine> | undefined;
  let rows = 0;
  let lastHash: string | undefined;
  let lastPosition: string | null = null;
  let firstPosition: string | null = null;
  let number = 0;
  const fail = (problem: ExportProblem): ExportVerification => ({ ok: false, rows, problem });
  for (const text of lines) {
    number += 1;
    if (text.trim() === '') continue;
    if (header !== undefined && checkpoint === undefined) {
      const row = hashedRowLine(text, lastHash!);
      if (row !== undefined) {
        if (lastPosition !== null && row.position <= lastPosition) {
          return fail({ line: number, position: row.position, eventId: row.eventId, reason: `out of log order: position ${row.position} comes after ${lastPosition} (rows were reordered)` });
        }
        rows += 1;
        firstPosition ??= row.position;
        lastPosition = row.position;
        lastHash = row.hash;
        continue;
      }
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return fail({ line: number, reason: 'not a JSON line' });
    }
    const kind = (value as { kind?: unknown } | null)?.kind;
    if (checkpoint !== undefined) return fail({ line: number, reason: 'a line after the checkpoint: the checkpoint is the last line' });
    if (header === undefined) {
      const parsed = headerLine.safeParse(value);
      if (!parsed.success) return fail({ line: number, reason: `the first line is not the header of a ${EXPORT_FORMAT} of version ${EXPORT_VERSION}` });
      header = parsed.data;
      lastHash = header.prevHash;
      continue;
    }
    if (kind === 'checkpoint') {
      const parsed = checkpointLine.safeParse(value);
      if (!parsed.success) return fail({ line: number, reason: `the checkpoint is malformed: ${z.prettifyError(parsed.error)}` });
      checkpoint = parsed.data;
      continue;
    }
    const problem = rowLineProblem(value);
    if (problem !== undefined) return fail({ line: number, reason: `not a row of the chain: ${problem}` });
    const { kind: _kind, prevHash, hash, ...record } = value as ExportRow;
    const at = { line: number, position: record.position, eventId: record.eventId };
    if (lastPosition !== null && record.position <= lastPosition) {
      return fail({ ...at, reason: `out of log order: position ${record.position} comes after ${lastPosition} (rows were reordered)` });
    }
    if (prevHash !== lastHash) {
      return fail({ ...at, reason: 'does not link to the row before it (a row before it was deleted, inserted or moved)' });
    }
    if (auditRowHash(prevHash, record) !== hash) {
      return fail({ ...at, reason: 'does not match its hash (the row was edited)' });
    }
    rows += 1;
    firstPosition ??= record.position;
    lastPosition = record.position;
    lastHash = hash;
  }
  if (header === undefined) return fail({ line: number, reason: 'the file is empty: no header' });
  if (checkpoint === undefined) return fail({ line: number, reason: 'no signed checkpoint at the end (the file was cut short)' });
  const end = { line: number };
  const unsigned = checkpointProblem(checkpoint, publicKey);
  if (unsigned !== undefined) return fail({ ...end, reason: unsigned });
  if (checkpoint.prevHash !== header.prevHash) return fail({ ...end, reason: 'the header’s prevHash is not the one the checkpoint signed (the start of the chain was changed)' });
  if (checkpoint.rows !== rows || checkpoint.lastPosition !== lastPosition || checkpoint.firstPosition !== firstPosition) {
    return fail({ ...end, reason: `the checkpoint signed ${checkpoint.rows} rows from ${checkpoint.firstPosition} to ${checkpoint.lastPosition}; the file holds ${rows} from ${firstPosition} to ${lastPosition} (rows were added or deleted)` });
  }
  if (checkpoint.lastHash !== lastHash) {
    return fail({ ...end, reason: 'the chain’s last hash is not the one the checkpoint signed: rows were rewritten and their hashes recomputed' });
  }
  return { ok: true, rows, lastHash: lastHash!, firstPosition, lastPosition, keyId: checkpoint.keyId, key: publicKey ? 'given' : 'embedded' };
}
