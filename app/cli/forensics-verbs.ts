// Forensics verbs: `explain` (the causal timelines of a plan or a deployment, from the running Sentinel),
// `forensics snapshot` (every read model as it stood at a time, as JSON lines), and `audit export` / `audit verify`
// (a signed export of the audit trail's hash chain, verified offline).
import { randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import type { Command } from 'commander';
import type { KeyObject } from 'node:crypto';
import { pino } from 'pino';
import { z } from 'zod';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import type { Database } from '../../adapters/postgres/database.js';
import { AuditExportWriter, publicKeyFrom, SIGNING_KEY_VARIABLE, signingKeyFrom, SigningKeyError, verifyExportFile, type ExportVerification } from '../../commands/audit-export.js';
import type { EventStore } from '../../domain/event-store.js';
import { auditProjector, GENESIS_HASH } from '../../projections/audit-trail.js';
import { firstAuditPositionAt, readAuditChain } from '../../projections/audit-chain-read.js';
import {
  createSnapshot,
  dropSnapshot,
  FLEET_COST,
  listSnapshot,
  projectSnapshot,
  SNAPSHOT_CONTENTS,
  SNAPSHOT_READ_MODELS,
  snapshotFleetCost,
} from '../../projections/fleet-snapshot.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { parseAsOf, AS_OF_ACCEPTS } from '../../projections/time-travel.js';
import type { Timeline, TimelineNode } from '../../projections/timeline.js';
import { URL_OPTION } from './auth-verbs.js';
import { Exit, EXIT_FAILURE, EXIT_USAGE, messageOf } from './exit.js';
import { ApiClient, serverUrl } from './http-client.js';
import { print, printData } from './output.js';
import { credentialsFor } from './session.js';

/** What `audit export` reads through: the database and event store `npm start` uses, opened by the CLI. */
export interface ForensicsDeps {
  withSentinel<T>(run: (opened: { db: Database; store: EventStore }) => Promise<T>): Promise<T>;
}

export function registerForensicsVerbs(program: Command, deps: ForensicsDeps): void {
  program
    .command('explain')
    .description('every event each request on a plan or a deployment caused, across streams, as a tree by causation, with the policy results at each decision')
    .argument('<kind>', 'plan or deployment')
    .argument('<id>', 'its id')
    .option(...URL_OPTION)
    .option('--json', 'print the timelines as JSON')
    .exitOverride()
    .action((kind: string, id: string, options: ExplainOptions) => explain(kind, id, options));

  program
    .command('forensics')
    .description('forensics over the database Sentinel uses')
    .exitOverride()
    .command('snapshot')
    .description(
      'project every read model up to a time or log position into a scratch snapshot, write its rows as JSON lines ' +
        '(a header line, then one line per row with its read model), and drop the snapshot',
    )
    .requiredOption('--at <time|position>', 'an ISO 8601 date-time with a zone (every event recorded at or before it) or a log position (every event at or before it)')
    .option('--out <file>', 'the file to write (it must not exist yet); standard output when absent')
    .exitOverride()
    .action((options: SnapshotOptions) => fleetSnapshot(options, deps));

  const audit = program.command('audit').description('the audit trail: a signed export of its hash chain, and its offline verification').exitOverride();

  audit
    .command('export')
    .description(`write the audit trail's chain in a window as JSON lines, closed by a checkpoint of its last hash signed with the Ed25519 key in $${SIGNING_KEY_VARIABLE}`)
    .option('--from <time|position>', 'the start of the window (inclusive): an ISO 8601 date-time or a log position; the start of the trail when absent')
    .option('--to <time|position>', 'the end of the window (exclusive); the end of the trail when absent')
    .requiredOption('--out <file>', 'the file to write (it must not exist yet)')
    .exitOverride()
    .action((options: ExportOptions) => exportAudit(options, deps));

  audit
    .command('verify')
    .description('verify an export without the database: every row against its hash and the one before, and the end of the chain against the signed checkpoint (exit 1 when it does not hold)')
    .requiredOption('--file <file>', 'the export to verify')
    .option('--public-key <pem>', 'the signer’s public key (PEM); without it, the key the file names is used, which proves the file whole but not who signed it')
    .option('--json', 'print the result as JSON')
    .exitOverride()
    .action((options: VerifyOptions) => verifyAudit(options));
}

// ---- explain ---------------------------------------------------------------------------------------------------

interface ExplainOptions {
  url?: string;
  json?: boolean;
}

const STREAM_OF: Record<string, string> = { plan: 'plan', deployment: 'deployment' };
const auditPage = z.object({ items: z.array(z.object({ correlationId: z.string().nullable() })), nextCursor: z.string().nullable() });
const timeline = z.looseObject({ correlationId: z.string(), events: z.number(), truncated: z.boolean(), roots: z.array(z.unknown()) });

/** The correlation ids of the entity's stream, oldest first (from the audit trail), and the timeline of each. */
async function explain(kind: string, id: string, options: ExplainOptions): Promise<void> {
  const category = STREAM_OF[kind];
  if (category === undefined) throw new Exit(`explain takes plan or deployment, not ${JSON.stringify(kind)}`, EXIT_USAGE);
  if (!z.uuid().safeParse(id).success) throw new Exit(`${kind} ids are UUIDs, not ${JSON.stringify(id)}`, EXIT_USAGE);
  const server = serverUrl(options.url);
  const client = new ApiClient(server, credentialsFor(server));
  const correlations: string[] = [];
  for (let cursor: string | undefined; ; ) {
    const page = await client.get('/audit', auditPage, { stream: `${category}-${id}`, limit: 500, cursor });
    for (const item of page.items) if (item.correlationId !== null && !correlations.includes(item.correlationId)) correlations.push(item.correlationId);
    if (page.nextCursor === null) break;
    cursor = page.nextCursor;
  }
  if (correlations.length === 0) throw new Exit(`${kind} ${id} has no events in the audit trail (does it exist, and has the read side caught up?)`, EXIT_FAILURE);
  const timelines = [];
  for (const correlationId of correlations) timelines.push((await client.get('/timeline', timeline, { correlationId })) as unknown as Timeline);
  if (options.json) return printData(timelines, 'json');
  print(timelines.map(describeTimeline).join('\n'));
}

export function describeTimeline(timeline: Timeline): string {
  const lines = [`correlation ${timeline.correlationId}: ${timeline.events} events${timeline.truncated ? ' (more not shown)' : ''}`];
  for (const root of timeline.roots) {
    lines.push(`└ cause ${root.causationId ?? '(none recorded)'}`);
    const walk = (node: TimelineNode, depth: number) => {
      lines.push(`${'  '.repeat(depth)}└ ${describeNode(node)}`);
      for (const result of decisionLines(node)) lines.push(`${'  '.repeat(depth + 2)}${result}`);
      for (const child of node.children) walk(child, depth + 1);
    };
    for (const node of root.events) walk(node, 1);
  }
  return lines.join('\n');
}

function describeNode(node: TimelineNode): string {
  const actor = node.actor ? `${node.actor.kind} ${node.actor.id}` : 'no actor';
  const trace = node.traceId ? ` trace ${node.traceId}` : '';
  return `${node.recordedAt} ${node.type} ${node.stream}@${node.revision} (${actor}${node.source ? `, ${node.source}` : ''})${trace}`;
}

function decisionLines(node: TimelineNode): string[] {
  if (!node.decision) return [];
  const { decision } = node;
  return [
    `${decision.command}: ${decision.verdict} (policy set ${decision.policySet.stream}@${decision.policySet.revision})`,
    ...decision.evaluations.flatMap((evaluation) =>
      evaluation.results.map((result) => `${evaluation.action} ${evaluation.target.kind} ${evaluation.target.id}: ${result.name} (${result.type}, ${result.mode}) ${result.outcome}: ${result.message}`),
    ),
  ];
}

// ---- audit export --------------------------------------------------------------------------------------------

interface ExportOptions {
  from?: string;
  to?: string;
  out: string;
}

async function signingKey(): Promise<KeyObject> {
  const file = process.env[SIGNING_KEY_VARIABLE];
  if (!file) {
    throw new Exit(
      `${SIGNING_KEY_VARIABLE} is not set: name the PEM file of the Ed25519 key that signs the export ` +
        `(create one with: openssl genpkey -algorithm ed25519 -out audit-signing.pem; its public half: openssl pkey -in audit-signing.pem -pubout)`,
      EXIT_USAGE,
    );
  }
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (error) {
    throw new Exit(`${SIGNING_KEY_VARIABLE}: cannot read ${file}: ${messageOf(error)}`, EXIT_USAGE);
  }
  try {
    return signingKeyFrom(pem, `${SIGNING_KEY_VARIABLE} (${file})`);
  } catch (error) {
    if (error instanceof SigningKeyError) throw new Exit(error.message, EXIT_USAGE);
    throw error;
  }
}

function pointOf(option: string, value: string | undefined) {
  if (value === undefined) return undefined;
  const point = parseAsOf(value);
  if (point === undefined) throw new Exit(`${option}: ${AS_OF_ACCEPTS}`, EXIT_USAGE);
  return point;
}

async function exportAudit(options: ExportOptions, deps: ForensicsDeps): Promise<void> {
  const [from, to] = [pointOf('--from', options.from), pointOf('--to', options.to)];
  const key = await signingKey();
  let out: WriteStream;
  try {
    out = createWriteStream(options.out, { flags: 'wx' });
    await once(out, 'open');
  } catch (error) {
    throw new Exit(`--out: cannot create ${options.out}: ${messageOf(error)}${(error as { code?: string }).code === 'EEXIST' ? ' (an export never overwrites a file)' : ''}`, EXIT_USAGE);
  }
  const write = async (piece: string | Uint8Array) => {
    if (!out.write(piece)) await once(out, 'drain');
  };
  const { rows, seconds } = await deps.withSentinel(async ({ db, store }) => {
    const runtime = new ProjectionRuntime(db.knex, store, [auditProjector], { logger: pino({ level: 'silent' }), lease: inProcessLease });
    const table = (await runtime.tables(auditProjector)).audit;
    // A time is the first position recorded at or after it, so the window is a contiguous piece of the chain.
    const positionOf = async (point: ReturnType<typeof pointOf>) =>
      point === undefined ? undefined : 'position' in point ? point.position : ((await firstAuditPositionAt(db.knex, table, point.at)) ?? '\uffff');
    const range = { from: await positionOf(from), to: await positionOf(to) };
    const started = performance.now();
    const writer = new AuditExportWriter(key, { from: options.from ?? null, to: options.to ?? null });
    // Pages of 1,000 rows: a page is alive from its query until its lines are written; smaller pages are mostly dead
    // by the next young-generation collection (5,000-row pages spent seconds of scavenges copying them).
    const rows = await writer.writeAll(readAuditChain(db.knex, table, range, 1000), write, () => hashBefore(db, table, range.from));
    return { rows, seconds: (performance.now() - started) / 1000 };
  }).catch(async (error: unknown) => {
    out.destroy();
    await rm(options.out, { force: true });
    if (error instanceof Exit) throw error;
    throw new Exit(`audit export failed, and ${options.out} was removed: ${messageOf(error)}`, EXIT_FAILURE);
  });
  out.end();
  await once(out, 'finish');
  process.stderr.write(`exported ${rows} rows to ${options.out} in ${seconds.toFixed(1)} s, with a signed checkpoint of the last hash\n`);
}

/** The hash an empty window's header names: the last row's before it, or the genesis hash. */
async function hashBefore(db: Database, table: string, position: string | undefined): Promise<string> {
  const query = db.knex(table).orderBy('position', 'desc').first('hash');
  if (position !== undefined) query.where('position', '<', position);
  const row = (await query) as { hash: string } | undefined;
  return row?.hash ?? GENESIS_HASH;
}

// ---- forensics snapshot ------------------------------------------------------------------------------------

interface SnapshotOptions {
  at: string;
  out?: string;
}

/** Rows read from the snapshot at a time, and lines written in one go. */
const SNAPSHOT_PAGE = 500;
/** Only for a process killed before it drops its snapshot: the API's sweeper drops it after this. */
const CLI_SNAPSHOT_TTL_SECONDS = 3600;

/**
 * The snapshot as JSON lines: `{"kind":"snapshot", at, position, events, contents}` first, then one
 * `{"kind":"row","readModel":…,"row":…}` per row in each read model's list order (the fleet's cost is one row).
 */
async function fleetSnapshot(options: SnapshotOptions, deps: ForensicsDeps): Promise<void> {
  const point = pointOf('--at', options.at)!;
  let out: NodeJS.WritableStream = process.stdout;
  if (options.out !== undefined) {
    try {
      const file = createWriteStream(options.out, { flags: 'wx' });
      await once(file, 'open');
      out = file;
    } catch (error) {
      throw new Exit(`--out: cannot create ${options.out}: ${messageOf(error)}${(error as { code?: string }).code === 'EEXIST' ? ' (a snapshot never overwrites a file)' : ''}`, EXIT_USAGE);
    }
  }
  const write = async (value: unknown) => {
    if (!out.write(`${JSON.stringify(value)}\n`)) await once(out, 'drain');
  };
  const started = performance.now();
  const summary = await deps
    .withSentinel(async ({ db, store }) => {
      const id = randomUUID();
      await createSnapshot(db.knex, { id, at: options.at, ttlSeconds: CLI_SNAPSHOT_TTL_SECONDS });
      try {
        const status = await projectSnapshot(db.knex, store, id, point);
        await write({ kind: 'snapshot', at: options.at, position: status.position, events: status.events, contents: SNAPSHOT_CONTENTS });
        let rows = 0;
        for (const readModel of Object.keys(SNAPSHOT_READ_MODELS)) {
          for (let cursor: string | undefined; ; ) {
            const page = await listSnapshot(db.knex, id, readModel, { limit: SNAPSHOT_PAGE, cursor, filters: {} });
            for (const row of page.items) await write({ kind: 'row', readModel, row });
            rows += page.items.length;
            if (page.nextCursor === null) break;
            cursor = page.nextCursor;
          }
        }
        await write({ kind: 'row', readModel: FLEET_COST, row: await snapshotFleetCost(db.knex, id) });
        return { rows: rows + 1, events: status.events, position: status.position };
      } finally {
        await dropSnapshot(db.knex, id);
      }
    })
    .catch(async (error: unknown) => {
      if (options.out !== undefined) {
        (out as WriteStream).destroy();
        await rm(options.out, { force: true });
      }
      if (error instanceof Exit) throw error;
      throw new Exit(`forensics snapshot failed${options.out !== undefined ? `, and ${options.out} was removed` : ''}: ${messageOf(error)}`, EXIT_FAILURE);
    });
  if (options.out !== undefined) {
    out.end();
    await once(out, 'finish');
  }
  process.stderr.write(
    `snapshot at ${options.at}: ${summary.events} events applied, up to position ${summary.position ?? '(none: nothing lay at or before it)'}; ` +
      `${summary.rows} rows of ${SNAPSHOT_CONTENTS.length} read models written${options.out !== undefined ? ` to ${options.out}` : ''} ` +
      `in ${((performance.now() - started) / 1000).toFixed(1)} s; the scratch snapshot was dropped\n`,
  );
}

// ---- audit verify --------------------------------------------------------------------------------------------

interface VerifyOptions {
  file: string;
  publicKey?: string;
  json?: boolean;
}

async function verifyAudit(options: VerifyOptions): Promise<void> {
  let key: KeyObject | undefined;
  if (options.publicKey !== undefined) {
    let pem: string;
    try {
      pem = await readFile(options.publicKey, 'utf8');
    } catch (error) {
      throw new Exit(`--public-key: cannot read ${options.publicKey}: ${messageOf(error)}`, EXIT_USAGE);
    }
    try {
      key = publicKeyFrom(pem, `--public-key ${options.publicKey}`);
    } catch (error) {
      if (error instanceof SigningKeyError) throw new Exit(error.message, EXIT_USAGE);
      throw error;
    }
  }
  let result: ExportVerification;
  try {
    result = await verifyExportFile(options.file, key);
  } catch (error) {
    throw new Exit(`--file: cannot read ${options.file}: ${messageOf(error)}`, EXIT_USAGE);
  }
  if (options.json) printData(result, 'json');
  if (!result.ok) {
    const { line, position, eventId, reason } = result.problem;
    throw new Exit(`${options.file} does not verify: line ${line}${position ? ` (position ${position}, event ${eventId})` : ''}: ${reason}`, EXIT_FAILURE);
  }
  if (!options.json) {
    print(
      `${options.file}: ${result.rows} rows verified, from ${result.firstPosition ?? '-'} to ${result.lastPosition ?? '-'}; last hash ${result.lastHash}, ` +
        `signed by key ${result.keyId}${result.key === 'embedded' ? ' (the key the file names: pass --public-key to check who signed it)' : ''}`,
    );
  }
}
