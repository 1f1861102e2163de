// The audit trail: one row per event in log order, each chained to the one before by a SHA-256 hash, so an
// edited, deleted or reordered row shows up when the chain is verified.
import { hash as digestOf } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Knex } from 'knex';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { z } from 'zod';
import type { RecordedEvent } from '../domain/event-store.js';
import { timestamp } from '../domain/schemas.js';
import { canonicalJson } from './canonical-json.js';
import { decodeCursor, encodeCursor, filterText, InvalidQuery } from './read-models/query.js';
import type { Projector, TableNames } from './projector.js';
import { copyJson, copyText } from './row-batch.js';

export { canonicalJson } from './canonical-json.js';

/** The `prev_hash` of the first row. */
export const GENESIS_HASH = '0'.repeat(64);

const MAX_SUMMARY = 200;
const MAX_DETAIL = 80;
/** Rows per statement: about a megabyte of text, and as many rows as the runtime's largest batch. */
const INSERT_CHUNK = 1000;

// ---- the projector --------------------------------------------------------------------------------------

export const auditProjector: Projector<'audit'> = {
  name: 'audit',
  // 2: the content is stored as its canonical text (it was jsonb), the very bytes its hash covers.
  version: 2,
  tables: ['audit'],

  async createTables(trx, tables) {
    const table = tables.audit;
    await trx.schema.createTable(table, (t) => {
      // Byte order, not the database locale's: positions compare as plain strings.
      t.specificType('position', 'text collate "C"').primary();
      t.uuid('event_id').notNullable();
      t.text('stream').notNullable();
      t.text('type').notNullable();
      t.bigInteger('revision').notNullable();
      t.timestamp('recorded_at', { useTz: true }).notNullable();
      t.text('actor_id').nullable();
      t.text('actor_kind').nullable();
      t.text('action').notNullable();
      t.text('correlation_id').nullable();
      t.text('causation_id').nullable();
      t.text('summary').notNullable();
      // The canonical text, as hashed: read back and exported as it is, never parsed and written again. jsonb
      // would keep neither its key order nor its bytes.
      t.text('content').notNullable();
      t.text('prev_hash').notNullable();
      t.text('hash').notNullable();
      // Each filter of `queryAudit` pages by position, so the filtered column leads and position follows.
      t.index(['actor_id', 'position'], `${table}_actor_idx`);
      t.index(['stream', 'position'], `${table}_stream_idx`);
      t.index(['type', 'position'], `${table}_type_idx`);
      t.index(['correlation_id', 'position'], `${table}_correlation_idx`);
      t.index(['recorded_at'], `${table}_recorded_at_idx`);
    });
  },

  async apply(events, trx, tables) {
    if (events.length === 0) return;
    const last = (await trx(tables.audit).orderBy('position', 'desc').first('position', 'hash')) as
      | { position: string; hash: string }
      | undefined;
    let prevHash = last?.hash ?? GENESIS_HASH;
    let prevPosition: string | undefined;
    const rows: RowValues[] = [];
    for (const event of events) {
      // Already recorded (a replayed batch): skipped, since chaining it again would fork the chain.
      if (last && event.position <= last.position) continue;
      if (prevPosition !== undefined && event.position <= prevPosition) {
        throw new Error(`audit trail: events out of log order (${event.position} after ${prevPosition})`);
      }
      const record = recordOf(event);
      // The content's canonical text is made once: it is the stored column and part of the hashed text.
      const content = canonicalJson(record.content);
      const hash = chainHash(prevHash, record, content);
      rows.push(rowValues(record, content, prevHash, hash));
      prevHash = hash;
      prevPosition = record.position;
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) await insertRows(trx, tables.audit, rows.slice(i, i + INSERT_CHUNK));
  },
};

export type AuditTables = TableNames<'audit'>;

/** The audit table's columns in the order rows are written, with their types. */
const ROW_COLUMNS = [
  ['position', 'text'],
  ['event_id', 'uuid'],
  ['stream', 'text'],
  ['type', 'text'],
  ['revision', 'bigint'],
  ['recorded_at', 'timestamptz'],
  ['actor_id', 'text'],
  ['actor_kind', 'text'],
  ['action', 'text'],
  ['correlation_id', 'text'],
  ['causation_id', 'text'],
  ['summary', 'text'],
  ['content', 'text'],
  ['prev_hash', 'text'],
  ['hash', 'text'],
] as const;
const COLUMNS = ROW_COLUMNS.map(([column]) => column).join(', ');
/** The row type `json_to_recordset` reads. */
const ROW_TYPE = ROW_COLUMNS.map(([column, type]) => `${column} ${type}`).join(', ');

/** One row's values in `ROW_COLUMNS` order; the content is its canonical text. */
type RowValues = (string | number | null)[];

function rowValues(record: AuditRecord, content: string, prevHash: string, hash: string): RowValues {
  return [
    record.position,
    record.eventId,
    record.stream,
    record.type,
    record.revision,
    // Millisecond ISO text of the event's time: the instant the hash covers.
    record.recordedAt,
    record.actorId,
    record.actorKind,
    record.action,
    record.correlationId,
    record.causationId,
    record.summary,
    // The canonical text, stored as it is: exactly the bytes hashed.
    content,
    prevHash,
    hash,
  ];
}

/**
 * Writes rows in one statement per chunk: COPY on PostgreSQL, which parses least per row; elsewhere (PGlite,
 * whose COPY reads no client stream) one JSON document, which is still a single parameter to bind rather than
 * fifteen per row.
 */
async function insertRows(trx: Knex.Transaction, table: string, rows: readonly RowValues[]): Promise<void> {
  // Inside a transaction, knex hands out the transaction's own connection.
  const connection: unknown = await (trx.client as Knex.Client).acquireConnection();
  if (connection instanceof pg.Client) await copyRows(connection, table, rows);
  else await trx.raw(`insert into ?? (${COLUMNS}) select ${COLUMNS} from json_to_recordset(?::json) as row(${ROW_TYPE})`, [table, jsonRows(rows)]);
}

async function copyRows(connection: pg.Client, table: string, rows: readonly RowValues[]): Promise<void> {
  let lines = '';
  for (const values of rows) lines += copyLine(values);
  const quoted = connection.escapeIdentifier(table);
  await pipeline(Readable.from([lines]), connection.query(copyFrom(`copy ${quoted} (${COLUMNS}) from stdin`)));
}

/** Where the content sits in `ROW_COLUMNS`. */
const CONTENT_COLUMN = ROW_COLUMNS.findIndex(([column]) => column === 'content');

/** One row in COPY's text format: its fields separated by tabs, ended by a line break. */
function copyLine(values: RowValues): string {
  let line = '';
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    // The content is JSON, which holds no raw tab, line break or carriage return: only its backslashes need escaping.
    const field = i === CONTENT_COLUMN && typeof value === 'string' ? copyJson(value) : copyField(value);
    line += i === 0 ? field : `\t${field}`;
  }
  return `${line}\n`;
}

/** A value in COPY's text format: `\N` for null, and text escaped as `copyText` does. */
function copyField(value: string | number | null): string {
  if (value === null) return '\\N';
  return typeof value === 'number' ? String(value) : copyText(value);
}

/** Rows as a JSON array of objects. */
function jsonRows(rows: readonly RowValues[]): string {
  const objects = rows.map((values) => `{${values.map((value, i) => `"${ROW_COLUMNS[i]![0]}":${JSON.stringify(value)}`).join(',')}}`);
  return `[${objects.join(',')}]`;
}

// ---- the hash chain -------------------------------------------------------------------------------------

/** What a row's hash covers: every column but the two hashes. */
export interface AuditRecord {
  position: string;
  eventId: string;
  stream: string;
  type: string;
  revision: number | string;
  recordedAt: string;
  actorId: string | null;
  actorKind: string | null;
  action: string;
  correlationId: string | null;
  causationId: string | null;
  summary: string;
  content: unknown;
}

/** A record without its content: the columns hashed beside the content's canonical text. */
export type AuditRecordHead = Omit<AuditRecord, 'content'>;

function recordOf(event: RecordedEvent): AuditRecord {
  const eventId = event.id.toLowerCase();
  const recordedAt = event.recordedAt.toISOString();
  const actor = event.metadata.actor;
  const action = cachedActionOf(event.type);
  return {
    position: event.position,
    eventId,
    stream: event.stream,
    type: event.type,
    revision: event.revision,
    recordedAt,
    actorId: typeof actor?.id === 'string' ? actor.id : null,
    actorKind: typeof actor?.kind === 'string' ? actor.kind : null,
    action,
    correlationId: textOrNull(event.metadata.correlationId),
    causationId: textOrNull(event.metadata.causationId),
    summary: summarize(event, action),
    // Members in canonical order, so canonicalJson need not sort them.
    content: {
      data: event.data,
      id: eventId,
      metadata: event.metadata,
      position: event.position,
      recordedAt,
      revision: event.revision,
      schemaVersion: event.schemaVersion,
      stream: event.stream,
      type: event.type,
    },
  };
}

/** Every member of an `AuditRecord`, in canonical (sorted) order; the type check keeps the list complete. */
const RECORD_KEYS = Object.keys({
  position: true,
  eventId: true,
  stream: true,
  type: true,
  revision: true,
  recordedAt: true,
  actorId: true,
  actorKind: true,
  action: true,
  correlationId: true,
  causationId: true,
  summary: true,
  content: true,
} satisfies Record<keyof AuditRecord, true>).sort() as (keyof AuditRecord)[];
/** Each member's `"name":`, made once. */
const MEMBER_NAMES = new Map(RECORD_KEYS.map((key) => [key, `${JSON.stringify(key)}:`]));

/**
 * A row's hash: SHA-256 of `<prevHash>\n<canonicalJson(record)>`, given the canonical text of the record's
 * content (which is also the stored column, so it is made once). The record's text is written member by member in
 * sorted key order, with the content's text in its place: the same bytes as canonicalJson(record).
 */
function chainHash(prevHash: string, record: AuditRecordHead, content: string): string {
  const r = record;
  // Every member but the content is text, a number or null, whose canonical text is its plain JSON: written in the
  // order of RECORD_KEYS without walking it (a verification hashes every row of the trail).
  if (
    scalar(r.action) && scalar(r.actorId) && scalar(r.actorKind) && scalar(r.causationId) && scalar(r.correlationId) && scalar(r.eventId) &&
    scalar(r.position) && scalar(r.recordedAt) && scalar(r.revision) && scalar(r.stream) && scalar(r.summary) && scalar(r.type)
  ) {
    // Each member's JSON, in the layout of `chainText`: the bytes canonicalJson(record) writes.
    const texts: AuditRecordTexts = {
      action: scalarJson(r.action),
      actorId: scalarJson(r.actorId),
      actorKind: scalarJson(r.actorKind),
      causationId: scalarJson(r.causationId),
      correlationId: scalarJson(r.correlationId),
      eventId: scalarJson(r.eventId),
      position: scalarJson(r.position),
      recordedAt: scalarJson(r.recordedAt),
      revision: scalarJson(r.revision),
      stream: scalarJson(r.stream),
      summary: scalarJson(r.summary),
      type: scalarJson(r.type),
    };
    return digestOf('sha256', chainText(prevHash, texts, content), 'hex');
  }
  let text = `${prevHash}\n`;
  let separator = '{';
  for (const key of RECORD_KEYS) {
    const value = key === 'content' ? undefined : record[key];
    const member = key === 'content' ? content : typeof value === 'object' && value !== null ? canonicalJson(value) : JSON.stringify(value);
    // Undefined has no JSON form, so it is left out, as canonicalJson leaves it out.
    if (member === undefined) continue;
    text += `${separator}${MEMBER_NAMES.get(key)!}${member}`;
    separator = ',';
  }
  // The content is always a member, so the object is never empty.
  return digestOf('sha256', `${text}}`, 'hex');
}

/** The JSON text of each member of a record but its content. */
export type AuditRecordTexts = Record<keyof AuditRecordHead, string>;

/**
 * What `auditRowHash` hashes, from the JSON text of each member as given: the previous hash, a line break, and the
 * record's canonical JSON, its members in the order of RECORD_KEYS with the content's canonical text in its place.
 * For the export, which has each member's text at hand; a test holds it to `auditRowHash`.
 */
export function chainText(prevHash: string, m: AuditRecordTexts, content: string): string {
  return (
    `${prevHash}\n{"action":${m.action},"actorId":${m.actorId},"actorKind":${m.actorKind},"causationId":${m.causationId},"content":${content},` +
    `"correlationId":${m.correlationId},"eventId":${m.eventId},"position":${m.position},"recordedAt":${m.recordedAt},"revision":${m.revision},` +
    `"stream":${m.stream},"summary":${m.summary},"type":${m.type}}`
  );
}

/** Characters JSON.stringify escapes in a string: quotes, backslashes, controls and lone surrogates. */
// eslint-disable-next-line no-control-regex
const JSON_ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * `JSON.stringify` of a text, a number or null, byte for byte: a text that needs no escape is only quoted, which a
 * test finds cheaper than the call (every row of the trail is hashed, and hashed again on verification).
 */
function scalarJson(value: string | number | null): string {
  if (typeof value === 'string') return JSON_ESCAPED.test(value) ? JSON.stringify(value) : `"${value}"`;
  return JSON.stringify(value);
}

/** Whether the value's canonical JSON is its plain `JSON.stringify` text, never left out. */
function scalar(value: unknown): boolean {
  return typeof value === 'string' || typeof value === 'number' || value === null;
}

/**
 * The hash a row must hold: SHA-256 of the previous row's hash and the record's canonical JSON. Given `content`,
 * the canonical text of the record's content as stored or written, that text is hashed as it stands (a text that
 * is not canonical, or not JSON at all, gives a hash no canonical record has); else the record's content is
 * written canonically first.
 */
export function auditRowHash(prevHash: string, record: AuditRecord): string;
export function auditRowHash(prevHash: string, record: AuditRecordHead, content: string): string;
export function auditRowHash(prevHash: string, record: AuditRecordHead & { content?: unknown }, content?: string): string {
  return chainHash(prevHash, record, content ?? canonicalJson(record.content));
}

// ---- queries --------------------------------------------------------------------------------------------

export interface AuditQuery {
  /** Actor id; a list matches any of them (an actor's id and the ids its name stands for). */
  actor?: string | readonly string[];
  stream?: string;
  type?: string;
  correlationId?: string;
  /** ISO time; entries recorded at or after it. */
  from?: string;
  /** ISO time; entries recorded before it. */
  to?: string;
  /** 1 to 1000. */
  limit: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Log order (`asc`, the default) or newest first (`desc`). */
  order?: 'asc' | 'desc';
}

export interface AuditEntry {
  id: string;
  position: string;
  time: string;
  actor: { id: string; kind: string } | null;
  action: string;
  stream: string;
  type: string;
  correlationId: string | null;
  causationId: string | null;
  summary: string;
  hash: string;
}

export interface AuditPage {
  items: AuditEntry[];
  /** Pass it as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

const auditQuery = z.strictObject({
  actor: z.union([filterText, z.array(filterText).min(1, 'at least one actor')]).optional(),
  stream: filterText.optional(),
  type: filterText.optional(),
  correlationId: filterText.optional(),
  from: timestamp.optional(),
  to: timestamp.optional(),
  limit: z.int({ error: 'a whole number from 1 to 1000' }).min(1, 'at least 1').max(1000, 'at most 1000'),
  cursor: z.string().optional(),
  order: z.enum(['asc', 'desc'], { error: 'asc or desc' }).default('asc'),
});

interface EntryRow {
  event_id: string;
  position: string;
  recorded_at: Date | string;
  actor_id: string | null;
  actor_kind: string | null;
  action: string;
  stream: string;
  type: string;
  correlation_id: string | null;
  causation_id: string | null;
  summary: string;
  hash: string;
}

/** One page of the trail in log order, filtered; the cursor continues exactly after the page's last entry. */
export async function queryAudit(knex: Knex, table: string, query: AuditQuery): Promise<AuditPage> {
  const parsed = auditQuery.safeParse(query);
  if (!parsed.success) {
    const errors = parsed.error.issues.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message }));
    throw new InvalidQuery(`invalid audit query: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
  }
  const q = parsed.data;
  // The cursor is the position of the page's last entry, in the one codec every list uses.
  const after = q.cursor === undefined || q.cursor === '' ? undefined : decodeCursor(q.cursor, 1, q.order)[0];
  const rows = (await knex(table)
    .select('event_id', 'position', 'recorded_at', 'actor_id', 'actor_kind', 'action', 'stream', 'type', 'correlation_id', 'causation_id', 'summary', 'hash')
    .modify((select) => {
      if (q.actor !== undefined) select.whereIn('actor_id', typeof q.actor === 'string' ? [q.actor] : q.actor);
      if (q.stream !== undefined) select.where('stream', q.stream);
      if (q.type !== undefined) select.where('type', q.type);
      if (q.correlationId !== undefined) select.where('correlation_id', q.correlationId);
      if (q.from !== undefined) select.where('recorded_at', '>=', new Date(q.from));
      if (q.to !== undefined) select.where('recorded_at', '<', new Date(q.to));
      if (after !== undefined) select.where('position', q.order === 'asc' ? '>' : '<', after);
    })
    .orderBy('position', q.order)
    .limit(q.limit + 1)) as EntryRow[];
  const page = rows.slice(0, q.limit);
  return {
    items: page.map(entryOf),
    nextCursor: rows.length > q.limit ? encodeCursor([page.at(-1)!.position], q.order) : null,
  };
}

function entryOf(row: EntryRow): AuditEntry {
  return {
    id: row.event_id,
    position: row.position,
    time: new Date(row.recorded_at).toISOString(),
    actor: row.actor_id === null ? null : { id: row.actor_id, kind: row.actor_kind ?? 'unknown' },
    action: row.action,
    stream: row.stream,
    type: row.type,
    correlationId: row.correlation_id,
    causationId: row.causation_id,
    summary: row.summary,
    hash: row.hash,
  };
}

// ---- actions and summaries ------------------------------------------------------------------------------

/** `actionOf`, remembered: a log holds few event types and `<noun>Id` fields, and a catch-up meets them all the time. */
const actions = new Map<string, string>();
const MAX_CACHED_ACTIONS = 1000;

function cachedActionOf(name: string): string {
  let action = actions.get(name);
  if (action === undefined) {
    if (actions.size >= MAX_CACHED_ACTIONS) actions.clear();
    action = actionOf(name);
    actions.set(name, action);
  }
  return action;
}

/** `DeploymentScaled` → `deployment scaled`. */
export function actionOf(type: string): string {
  return type
    .replace(/[_.]+/g, ' ')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .trim()
    .toLowerCase();
}

type Data = Record<string, unknown>;

/** Short phrases for the events whose data says more than their type; the rest get `genericSummary`. */
const SUMMARIES: Record<string, (d: Data, subject: string) => string | false> = {
  DeploymentCreated: (d, s) =>
    all(d.clusterId, d.replicas) && `deployment ${s} created on cluster ${text(d.clusterId)} with ${text(d.replicas)} replicas`,
  DeploymentScaled: (d, s) =>
    all(d.previousReplicas, d.replicas) && `deployment ${s} scaled from ${text(d.previousReplicas)} to ${text(d.replicas)} replicas`,
  DeploymentUpdated: (d, s) => all(d.revision) && `deployment ${s} updated to revision ${text(d.revision)}`,
  DeploymentDriftPolicyChanged: (d, s) =>
    all(d.previousDriftPolicy, d.driftPolicy) &&
    `deployment ${s} drift policy changed from ${text(d.previousDriftPolicy)} to ${text(d.driftPolicy)}`,
  DeploymentRollbackRequested: (d, s) =>
    all(d.revision, d.toRevision) && `deployment ${s} rollback from revision ${text(d.revision)} to ${text(d.toRevision)} requested`,
  DeploymentApplying: (d, s) => all(d.revision) && `deployment ${s} applying revision ${text(d.revision)}`,
  DeploymentApplied: (d, s) => all(d.revision) && `deployment ${s} applied revision ${text(d.revision)}`,
  DeploymentRolloutProgressed: (d, s) =>
    all(d.revision, d.readyReplicas, d.updatedReplicas) &&
    `deployment ${s} rollout of revision ${text(d.revision)}: ${text(d.readyReplicas)} ready, ${text(d.updatedReplicas)} updated`,
  DeploymentAvailable: (d, s) =>
    all(d.revision, d.readyReplicas) && `deployment ${s} available at revision ${text(d.revision)} with ${text(d.readyReplicas)} ready`,
  DeploymentRolledBack: (d, s) =>
    all(d.revision, d.toRevision) && `deployment ${s} rolled back from revision ${text(d.revision)} to ${text(d.toRevision)}`,
  UserCreated: (d) => all(d.username, d.role) && `user ${text(d.username)} created with role ${text(d.role)}`,
  UserUpdated: (d, s) => {
    const changes = [
      d.role !== undefined ? `role ${text(d.role)}` : undefined,
      d.disabled === true ? 'disabled' : d.disabled === false ? 'enabled' : undefined,
      d.passwordChanged === true ? 'password changed' : undefined,
    ].filter(Boolean);
    return `user ${s} updated${changes.length ? ` (${changes.join(', ')})` : ''}`;
  },
  ServiceAccountCreated: (d) => all(d.name) && `service account ${text(d.name)} created`,
  ActionPlanSubmitted: (d, s) =>
    Array.isArray(d.actions) &&
    `action plan ${s} submitted with ${d.actions.length} action${d.actions.length === 1 ? '' : 's'}${d.shadow === true ? ' (shadow)' : ''}`,
  ActionPlanRejected: (d, s) =>
    Array.isArray(d.violations) && `action plan ${s} rejected with ${d.violations.length} violation${d.violations.length === 1 ? '' : 's'}`,
  PlanActionStarted: (d, s) => all(d.index) && `action ${text(d.index)} of plan ${s} started`,
  PlanActionSucceeded: (d, s) => all(d.index) && `action ${text(d.index)} of plan ${s} succeeded`,
  PlanActionFailed: (d, s) => all(d.index) && `action ${text(d.index)} of plan ${s} failed`,
  PlanActionRolledBack: (d, s) => all(d.index) && `action ${text(d.index)} of plan ${s} rolled back`,
  ChangeAdmitted: (d) =>
    all(d.action, d.targetId) && `change admitted: ${text(d.action)} of ${text(d.targetId)}${d.direction ? ` (${text(d.direction)})` : ''}`,
  PolicyEvaluated: (d) =>
    all(d.verdict, d.command) &&
    `policy ${d.verdict === 'allow' ? 'allowed' : d.verdict === 'deny' ? 'denied' : text(d.verdict)} ${text(d.command)}` +
      (d.breakGlass ? ' (break-glass)' : ''),
};

function summarize(event: RecordedEvent, action: string): string {
  const data = event.data ?? {};
  const subject = subjectOf(data, action);
  const describe = Object.hasOwn(SUMMARIES, event.type) ? SUMMARIES[event.type] : undefined;
  const specific = describe?.(data, subject?.id ?? streamId(event.stream)) || undefined;
  const base = specific ?? genericSummary(event, action, subject);
  const detail = textOrNull(data.reason) ?? textOrNull(data.cause);
  return clip(oneLine(detail ? `${base}: ${clip(oneLine(detail), MAX_DETAIL)}` : base), MAX_SUMMARY);
}

/** `deployment 1234 paused`: the entity's id after the words that name it, or the stream when none does. */
function genericSummary(event: RecordedEvent, action: string, subject: Subject | undefined): string {
  if (!subject) return `${action} in ${event.stream}`;
  const words = action.split(' ');
  return [...words.slice(0, subject.after), subject.id, ...words.slice(subject.after)].join(' ');
}

interface Subject {
  id: string;
  /** How many words of the action name the entity: the id goes after them. */
  after: number;
}

/**
 * The entity the event is about: the `<noun>Id` field whose noun the action names first (`deploymentId` for
 * "deployment created", `serviceAccountId` for "service account revoked"). Key order plays no part, since
 * jsonb does not keep it.
 */
function subjectOf(data: Data, action: string): Subject | undefined {
  for (const { key, after } of subjectCandidates(action, Object.keys(data))) {
    const value = data[key];
    if (typeof value === 'string' || typeof value === 'number') return { id: text(value), after };
  }
  return undefined;
}

interface Candidate {
  key: string;
  after: number;
}

/** Candidates by action and keys: a log holds few shapes of data, and the audit trail records every event. */
const candidates = new Map<string, readonly Candidate[]>();
const MAX_CACHED_CANDIDATES = 1000;

/**
 * The `<noun>Id` keys whose noun the action names, best first: the one named earliest in the action, and of those
 * named at the same place the first in sorted key order. The subject is the first whose value is a text or a number.
 */
function subjectCandidates(action: string, keys: readonly string[]): readonly Candidate[] {
  const cacheKey = `${action}\u0000${keys.join('\u0000')}`;
  let found = candidates.get(cacheKey);
  if (found === undefined) {
    const words = action.split(' ');
    const named: (Candidate & { at: number })[] = [];
    for (const key of [...keys].sort()) {
      const match = /^([a-z][A-Za-z0-9]*)Id$/.exec(key);
      if (!match) continue;
      const noun = cachedActionOf(match[1]!).split(' ');
      for (let at = 0; at + noun.length <= words.length; at++) {
        if (noun.every((word, k) => words[at + k] === word)) {
          named.push({ key, after: at + noun.length, at });
          break;
        }
      }
    }
    // A stable sort: keys named at the same place stay in sorted key order.
    found = named.sort((a, b) => a.at - b.at).map(({ key, after }) => ({ key, after }));
    if (candidates.size >= MAX_CACHED_CANDIDATES) candidates.clear();
    candidates.set(cacheKey, found);
  }
  return found;
}

function streamId(stream: string): string {
  const dash = stream.indexOf('-');
  return dash === -1 ? stream : stream.slice(dash + 1);
}

function all(...values: unknown[]): boolean {
  return values.every((value) => typeof value === 'string' || typeof value === 'number');
}

function text(value: unknown): string {
  return clip(oneLine(String(value)), MAX_DETAIL);
}

function textOrNull(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null;
}

function oneLine(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f]+/g, ' ');
}

function clip(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max - 1)}…`;
}
