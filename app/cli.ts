#!/usr/bin/env tsx
// `sentinel`: the command line. Verbs that talk to a running Sentinel over its HTTP API (login, get, describe,
// scale, …; in app/cli/; and policies impact), and operator commands against the database `npm start` uses —
// projection status and rebuilds, the bulk replay of recorded decisions, and the way back in when no admin can log in.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { scryptPasswords } from '../adapters/auth/passwords.js';
import { PostgresLoginThrottle } from '../adapters/auth/login-throttle.js';
import { PostgresPrincipalStore } from '../adapters/auth/principal-store.js';
import { AdvisoryLease, inProcessLease } from '../adapters/postgres/advisory-lease.js';
import type { Database } from '../adapters/postgres/database.js';
import { sentinelMigrated } from '../adapters/postgres/schema.js';
import { AccessService, type TokenService } from '../commands/access.js';
import { decisionWindow, replayDecisions, type DecisionReplay, type DecisionWindow } from '../commands/decision-replay.js';
import { MAX_IMPACT_LIMIT } from '../commands/policy-impact.js';
import { USER_ROLES, type UserRole } from '../domain/access.js';
import { DomainError, RuleViolation } from '../domain/decider.js';
import type { EventStore } from '../domain/event-store.js';
import { auditProjector } from '../projections/audit-trail.js';
import { readModelDecisionIndex } from '../projections/decision-index.js';
import type { Projector } from '../projections/projector.js';
import { policyDecisions, READ_MODEL_PROJECTORS } from '../projections/read-models.js';
import { DEFAULT_DROP_AFTER_MS, DEFAULT_REBUILD_BATCH_SIZE, rebuildProjection, RebuildError, type RebuildProgress } from '../projections/rebuild.js';
import { LAG_COUNT_LIMIT, ProjectionRuntime, type ProjectionStatus } from '../projections/runtime.js';
import { listParked, requestRetry, type ParkedEvent } from '../reactors/reactor-runtime.js';
import { URL_OPTION } from './cli/auth-verbs.js';
import { Exit, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, messageOf } from './cli/exit.js';
import { ApiClient, serverUrl } from './cli/http-client.js';
import { readStdin } from './cli/stdin.js';
import { credentialsFor } from './cli/session.js';
import { count, table } from './cli/tables.js';
import { registerApiVerbs } from './cli/verbs.js';
import { registerForensicsVerbs } from './cli/forensics-verbs.js';
import { registerRolloutVerbs } from './cli/rollout-verbs.js';
import { ConfigError, loadConfig, type Config } from './config.js';

/**
 * The composition root, loaded only by the commands that open the database: it brings in every adapter (the
 * Kubernetes client, PGlite, KurrentDB), which takes seconds the HTTP verbs should not wait for.
 */
const composition = () => import('./sentinel.js');

/** The projectors Sentinel runs, as `app/sentinel.ts` wires them. */
const PROJECTORS: readonly Projector[] = [...READ_MODEL_PROJECTORS, auditProjector];

const { version } = z.object({ version: z.string() }).parse(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')));

// ---- opening what `npm start` opens ----------------------------------------------------------------------

interface Opened {
  config: Config;
  db: Database;
  store: EventStore;
}

async function withSentinel<T>(run: (opened: Opened) => Promise<T>): Promise<T> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new Exit(error.message, EXIT_USAGE);
    throw error;
  }
  // Quiet: only warnings and errors, on stderr, so stdout holds the command's answer alone.
  const logger = pino({ level: 'warn', base: { service: 'sentinel-cli' } }, pino.destination(2));
  const db = await open(config, logger);
  let store: EventStore | undefined;
  try {
    if (!(await sentinelMigrated(db.knex))) {
      throw new Exit('the database schema is not at this build\'s version: start Sentinel (npm start) once, so that it migrates it', EXIT_FAILURE);
    }
    const { openEventStore } = await composition();
    store = await openEventStore(config, db, logger);
    return await run({ config, db, store });
  } finally {
    await store?.close().catch(() => undefined);
    await db.close().catch(() => undefined);
  }
}

async function open(config: Config, logger: Logger): Promise<Database> {
  const { openDatabase, pgliteDataDir, redact } = await composition();
  if (config.DATABASE_URL) {
    const db = await openDatabase(config, logger);
    try {
      await db.query('select 1');
      return db;
    } catch (error) {
      await db.close().catch(() => undefined);
      throw new Exit(`cannot reach PostgreSQL at ${redact(config.DATABASE_URL)}: ${messageOf(error)}`, EXIT_FAILURE);
    }
  }
  // Embedded PGlite is one process's alone, and it takes no lock that would stop a second one: check first.
  const dataDir = pgliteDataDir(config);
  const stopFirst =
    `Sentinel uses the embedded PGlite database at ${dataDir}, which only one process can open at a time: ` +
    'stop Sentinel first, then run this command again (or point DATABASE_URL at PostgreSQL)';
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    throw new Exit(`no Sentinel database at ${dataDir}: start Sentinel once (npm start), or set DATABASE_URL or SENTINEL_DATA_DIR`, EXIT_FAILURE);
  }
  const listening = await answering(config.HOST, config.PORT);
  if (listening) throw new Exit(`Sentinel looks to be running (${listening} answers). ${stopFirst}`, EXIT_FAILURE);
  try {
    const db = await openDatabase(config, logger);
    await db.query('select 1');
    return db;
  } catch (error) {
    throw new Exit(`cannot open the embedded PGlite database: ${messageOf(error)}. ${stopFirst}`, EXIT_FAILURE);
  }
}

/** `host:port` when something listens where Sentinel would; undefined when nothing does. */
async function answering(host: string, port: number): Promise<string | undefined> {
  if (port === 0) return undefined;
  const target = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const connected = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: target, port });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
  return connected ? `${target}:${port}` : undefined;
}

// ---- projections status ------------------------------------------------------------------------------------

async function status(options: { json?: boolean }): Promise<void> {
  await withSentinel(async ({ db, store }) => {
    const runtime = new ProjectionRuntime(db.knex, store, PROJECTORS, { logger: pino({ level: 'silent' }), lease: inProcessLease });
    const rows = await runtime.status();
    if (options.json) {
      process.stdout.write(`${JSON.stringify(rows.map(({ active: _active, ...row }) => row), null, 2)}\n`);
      return;
    }
    if (rows.length === 0) {
      process.stdout.write('no projections registered yet: start Sentinel once, so that it creates them\n');
      return;
    }
    process.stdout.write(projectionTable(rows));
  });
}

function projectionTable(rows: ProjectionStatus[]): string {
  const header = ['NAME', 'VERSION', 'GENERATION', 'POSITION', 'APPLIED', 'LAG EVENTS', 'LAG SECONDS', 'UPDATED'];
  const numeric = [false, true, true, false, true, true, true, false];
  const cells = rows.map((row) => [
    row.name,
    String(row.version),
    String(row.generation),
    row.position ?? '-',
    count(row.eventsApplied),
    row.lagEvents >= LAG_COUNT_LIMIT ? `${count(LAG_COUNT_LIMIT)}+` : count(row.lagEvents),
    row.lagSeconds.toFixed(1),
    row.updatedAt,
  ]);
  return table(header, cells, numeric);
}

// ---- reactors parked and retry --------------------------------------------------------------------------------

async function parked(options: { json?: boolean }): Promise<void> {
  await withSentinel(async ({ db }) => {
    const rows = await listParked(db.knex);
    if (options.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else if (rows.length === 0) process.stdout.write('no parked events\n');
    else process.stdout.write(parkedTable(rows));
  });
}

function parkedTable(rows: ParkedEvent[]): string {
  const header = ['ID', 'REACTOR', 'EVENT', 'TYPE', 'STREAM', 'KIND', 'FAILURES', 'PARKED', 'RETRY ASKED', 'ERROR'];
  const numeric = [true, false, false, false, false, false, true, false, false, false];
  const cells = rows.map((row) => [
    String(row.id),
    row.reactor,
    row.eventId,
    row.type,
    row.stream,
    row.kind,
    String(row.failures),
    row.parkedAt,
    row.retryRequestedAt ?? '-',
    row.error,
  ]);
  return table(header, cells, numeric);
}

async function retryParked(id: number): Promise<void> {
  await withSentinel(async ({ db }) => {
    const row = await requestRetry(db.knex, id);
    if (!row) throw new Exit(`no parked event has id ${id}; \`sentinel reactors parked\` lists them`, EXIT_FAILURE);
    process.stdout.write(`event ${row.eventId} (${row.type}) will be tried again by reactor ${row.reactor} while it runs\n`);
  });
}

// ---- projections rebuild -------------------------------------------------------------------------------------

async function rebuild(name: string, options: { batchSize: number; dropAfter: number }): Promise<void> {
  const projector = PROJECTORS.find((p) => p.name === name);
  if (!projector) {
    throw new Exit(`unknown projection "${name}"; known projections: ${PROJECTORS.map((p) => p.name).join(', ')}`, EXIT_USAGE);
  }
  await withSentinel(async ({ db, store }) => {
    const abort = new AbortController();
    const interrupt = () => {
      process.stderr.write('\nstopping after the batch in hand: the new tables are dropped, the current generation keeps serving\n');
      abort.abort(new Exit(`rebuild of ${name} interrupted; nothing was swapped`, EXIT_FAILURE));
    };
    process.once('SIGINT', interrupt);
    process.once('SIGTERM', interrupt);
    const bar = progressBar(process.stderr);
    try {
      const result = await rebuildProjection(db.knex, store, projector, {
        batchSize: options.batchSize,
        dropAfterMs: options.dropAfter,
        lease: db.kind === 'postgres' && db.connectionString ? new AdvisoryLease(db.connectionString) : inProcessLease,
        signal: abort.signal,
        onProgress: bar.update,
      });
      bar.done();
      process.stdout.write(
        `rebuilt ${result.name} (version ${result.version}): generation ${result.previousGeneration} → ${result.generation}, ` +
          `${count(result.events)} events up to position ${result.position ?? '(none)'}, ` +
          `in ${result.seconds.toFixed(1)} s (${count(Math.round(result.eventsPerSecond))} ev/s` +
          `${result.swapAttempts > 1 ? `; swapped on try ${result.swapAttempts}, the live projector having got ahead` : ''})\n`,
      );
      if (result.previousDropped) process.stdout.write(`dropped the tables of generation ${result.previousGeneration}\n`);
      else process.stderr.write(`warning: the tables of generation ${result.previousGeneration} are still there (${result.dropError}); drop them by hand\n`);
    } catch (error) {
      bar.done();
      if (abort.signal.aborted && abort.signal.reason instanceof Exit) throw abort.signal.reason;
      throw error;
    } finally {
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
    }
  });
}

/** `[#####-----] 45% 12,345/27,000 ev 8,120 ev/s ETA 2s`, redrawn in place on a terminal, a line every few seconds elsewhere. */
function progressBar(stream: NodeJS.WriteStream): { update(progress: RebuildProgress): void; done(): void } {
  const interactive = stream.isTTY === true;
  const every = interactive ? 100 : 2000;
  let last: RebuildProgress | undefined;
  let drawnAt = 0;
  let drawn = false;
  const render = (p: RebuildProgress) => {
    const ratio = p.total > 0 ? p.applied / p.total : 1;
    const filled = Math.round(ratio * 20);
    const eta = Number.isFinite(p.etaSeconds) ? `${Math.ceil(p.etaSeconds)}s` : '--';
    return `[${'#'.repeat(filled)}${'-'.repeat(20 - filled)}] ${Math.floor(ratio * 100)}% ${count(p.applied)}/${count(p.total)} ev ${count(Math.round(p.eventsPerSecond))} ev/s ETA ${eta}`;
  };
  const draw = (p: RebuildProgress) => {
    stream.write(interactive ? `\r${render(p)}\x1b[K` : `${render(p)}\n`);
    drawn = true;
    drawnAt = Date.now();
  };
  return {
    update(progress) {
      last = progress;
      if (Date.now() - drawnAt >= every) draw(progress);
    },
    done() {
      if (last) draw(last);
      if (drawn && interactive) stream.write('\n');
      last = undefined;
    },
  };
}

// ---- users reset-password ---------------------------------------------------------------------------------

/** Resetting a password issues no token; a service that would is not needed here. */
const NO_TOKENS: TokenService = {
  accessTtlSeconds: 0,
  refreshTtlSeconds: 0,
  issue: () => Promise.reject(new Error('the sentinel CLI issues no tokens')),
  verify: () => Promise.reject(new Error('the sentinel CLI verifies no tokens')),
};

async function resetPassword(username: string, options: { role?: UserRole }): Promise<void> {
  await withSentinel(async ({ config, db, store }) => {
    const { loginSettings } = await composition();
    const access = new AccessService(new PostgresPrincipalStore(db.knex), NO_TOKENS, scryptPasswords, store, {
      throttle: new PostgresLoginThrottle(db.knex),
      login: loginSettings(config),
    });
    const context = { actor: { id: 'sentinel', kind: 'system' as const }, correlationId: randomUUID(), causationId: randomUUID(), source: 'cli' };
    try {
      const reset = await access.resetPassword(username, options, context);
      process.stderr.write(
        `reset the password of "${username}"${options.role ? ` and made it ${options.role}` : ''}; the user is enabled and every token it had is ended. ` +
          'The new password is on stdout, shown this once; change it with PATCH /api/v1/users/:id\n',
      );
      process.stdout.write(`${reset.password}\n`);
    } catch (error) {
      if (error instanceof RuleViolation) {
        throw new Exit(`${error.message}: ${error.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, EXIT_FAILURE);
      }
      if (error instanceof DomainError) throw new Exit(error.message, EXIT_FAILURE);
      throw error;
    }
  });
}

// ---- decisions replay ----------------------------------------------------------------------------------------

interface ReplayOptions {
  from: string;
  to: string;
  policy?: string;
  json?: boolean;
}

/** The window of a verb's --from and --to; a bad one is a usage error naming the option. */
function windowOf(options: { from: string; to: string }): DecisionWindow {
  try {
    return decisionWindow(options, '--');
  } catch (error) {
    if (error instanceof RuleViolation) throw new Exit(error.errors.map((e) => `${e.path}: ${e.message}`).join('\n'), EXIT_USAGE);
    throw error;
  }
}

/**
 * Re-runs every decision of the window with its recorded inputs and policy-set revision. On a terminal: a progress
 * line and a summary; otherwise, or with --json: a JSON line per decision that no longer matches, then a summary line.
 * Exits 1 when any does not match.
 */
async function replay(options: ReplayOptions): Promise<void> {
  const window = windowOf(options);
  const forPeople = !options.json && process.stdout.isTTY === true;
  const summary = await withSentinel(async ({ db, store }) => {
    const runtime = new ProjectionRuntime(db.knex, store, PROJECTORS, { logger: pino({ level: 'silent' }), lease: inProcessLease });
    const index = readModelDecisionIndex(db.knex, () => runtime.tables(policyDecisions.projector));
    const progress = replayProgress(process.stderr, forPeople);
    const started = performance.now();
    let replayed = 0;
    let mismatched = 0;
    try {
      for await (const result of replayDecisions(store, window, { index, ...(options.policy ? { policy: options.policy } : {}) })) {
        replayed += 1;
        if (!result.matches) {
          mismatched += 1;
          if (forPeople) progress.above(describeMismatch(result));
          else process.stdout.write(`${JSON.stringify(result)}\n`);
        }
        progress.update(replayed, mismatched);
      }
    } finally {
      progress.done();
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      from: options.from,
      to: options.to,
      ...(options.policy ? { policy: options.policy } : {}),
      replayed,
      matched: replayed - mismatched,
      mismatched,
      seconds: Number(seconds.toFixed(3)),
      decisionsPerSecond: Math.round(replayed / Math.max(seconds, 1e-3)),
    };
  });
  if (forPeople) {
    process.stdout.write(
      `replayed ${count(summary.replayed)} decisions in ${summary.seconds.toFixed(1)} s (${count(summary.decisionsPerSecond)}/s): ` +
        `${count(summary.matched)} match, ${count(summary.mismatched)} do not\n`,
    );
  } else {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
  if (summary.mismatched > 0) throw new Exit(`${count(summary.mismatched)} of ${count(summary.replayed)} decisions no longer match their record`, EXIT_FAILURE);
}

function describeMismatch(result: DecisionReplay): string {
  const head = `${result.eventId} in ${result.stream} at ${result.at}: recorded ${result.recordedVerdict}, replayed ${result.replayedVerdict}`;
  const difference = result.difference;
  if (!difference) return head;
  const { recorded, replayed } = difference;
  const policy = recorded ?? replayed;
  if (!policy) return `${head}; evaluation ${difference.evaluation}: its verdict alone differs`;
  const outcomes = `${recorded?.outcome ?? 'no result'} → ${replayed?.outcome ?? 'no result'}`;
  return `${head}; evaluation ${difference.evaluation}: ${policy.name} (${policy.type}) ${outcomes}${replayed ? `: ${replayed.message}` : ''}`;
}

/** `replaying: 12,345 decisions, 8,120/s, 3 do not match`, redrawn in place on a terminal; nothing elsewhere. */
function replayProgress(stream: NodeJS.WriteStream, shown: boolean) {
  const interactive = shown && stream.isTTY === true;
  const started = performance.now();
  let drawnAt = 0;
  let line = '';
  const draw = () => {
    stream.write(`\r${line}\x1b[K`);
    drawnAt = performance.now();
  };
  return {
    update(replayed: number, mismatched: number) {
      if (!interactive || performance.now() - drawnAt < 100) return;
      const rate = replayed / Math.max((performance.now() - started) / 1000, 1e-3);
      line = `replaying: ${count(replayed)} decisions, ${count(Math.round(rate))}/s, ${count(mismatched)} do not match`;
      draw();
    },
    /** A line printed on stdout, with the progress line redrawn under it. */
    above(text: string) {
      if (interactive && line) stream.write('\r\x1b[K');
      process.stdout.write(`${text}\n`);
      if (interactive && line) draw();
    },
    done() {
      if (interactive && line) stream.write('\r\x1b[K');
    },
  };
}

// ---- policies impact -------------------------------------------------------------------------------------------

interface ImpactOptions {
  file: string;
  from: string;
  to: string;
  maxDecisions?: number;
  url?: string;
  json?: boolean;
}

const group = z.object({ count: z.number(), eventIds: z.array(z.string()) });
const outcome = z.object({
  count: z.number(),
  decisions: z.array(z.object({ eventId: z.string(), at: z.string(), command: z.string(), rules: z.array(z.object({ name: z.string(), type: z.string(), message: z.string() })) })),
  byTarget: z.array(group.extend({ target: z.object({ kind: z.string(), id: z.string() }) })),
  byActor: z.array(group.extend({ actor: z.object({ id: z.string(), kind: z.string() }).nullable() })),
  byRule: z.array(group.extend({ name: z.string(), type: z.string() })),
});
/** What the CLI prints of `POST /policies/impact`; --json prints the whole answer. */
const impactAnswer = z.looseObject({
  policy: z.object({ name: z.string(), type: z.string(), mode: z.string(), change: z.string() }),
  window: z.object({ from: z.string(), to: z.string() }),
  examined: z.number(),
  truncated: z.boolean(),
  newlyRefused: outcome,
  newlyAllowed: outcome,
  unchanged: z.object({ count: z.number() }),
  notJudged: z.object({ count: z.number() }),
});

/** Asks the running Sentinel what the draft in the file would have decided of the decisions in the window. */
async function impact(options: ImpactOptions): Promise<void> {
  const policy = await readDraft(options.file);
  const server = serverUrl(options.url);
  const answer = await new ApiClient(server, credentialsFor(server)).request('POST', '/policies/impact', impactAnswer, {
    body: { policy, from: options.from, to: options.to },
    query: { maxDecisions: options.maxDecisions },
  });
  process.stdout.write(options.json ? `${JSON.stringify(answer, null, 2)}\n` : impactReport(answer));
}

/** The draft: a policy body, or {id, patch}, as YAML or JSON (YAML reads both), from a file or stdin (`-`). */
async function readDraft(file: string): Promise<unknown> {
  const name = file === '-' ? 'stdin' : file;
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new Exit(`cannot read the draft policy from ${name}: ${messageOf(error)}`, EXIT_USAGE);
  }
  try {
    return parseYaml(text) as unknown;
  } catch (error) {
    throw new Exit(`the draft policy in ${name} is neither YAML nor JSON: ${messageOf(error).split('\n')[0]}`, EXIT_USAGE);
  }
}

function impactReport(answer: z.infer<typeof impactAnswer>): string {
  const { policy, newlyRefused, newlyAllowed } = answer;
  const lines = [
    `${policy.type} policy "${policy.name}" (${policy.mode}, ${policy.change}) against ${count(answer.examined)} decisions from ${answer.window.from} to ${answer.window.to}` +
      `${answer.truncated ? ' (truncated: the window holds more; raise --max-decisions)' : ''}`,
    `newly refused: ${count(newlyRefused.count)}, newly allowed: ${count(newlyAllowed.count)}, unchanged: ${count(answer.unchanged.count)}` +
      `${answer.notJudged.count > 0 ? `, not judged (no count recorded for the rate limit's window): ${count(answer.notJudged.count)}` : ''}`,
  ];
  for (const [title, outcome] of [['newly refused', newlyRefused], ['newly allowed', newlyAllowed]] as const) {
    if (outcome.count === 0) continue;
    lines.push('', `${title}, by rule:`, table(['POLICY', 'TYPE', 'DECISIONS'], outcome.byRule.map((g) => [g.name, g.type, count(g.count)]), [false, false, true]).trimEnd());
    lines.push(`by target:`, table(['TARGET', 'DECISIONS'], outcome.byTarget.map((g) => [`${g.target.kind}/${g.target.id}`, count(g.count)]), [false, true]).trimEnd());
    lines.push(`by actor:`, table(['ACTOR', 'DECISIONS'], outcome.byActor.map((g) => [g.actor ? `${g.actor.kind}/${g.actor.id}` : '-', count(g.count)]), [false, true]).trimEnd());
    const rows = outcome.decisions.map((d) => [d.eventId, d.at, d.command, d.rules.map((r) => `${r.name}: ${r.message}`).join('; ')]);
    lines.push(`decisions:`, table(['EVENT', 'AT', 'COMMAND', 'WHY'], rows).trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

// ---- the program -----------------------------------------------------------------------------------------

function integer(min: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < min) throw new InvalidArgumentError(`a whole number from ${min} up`);
    return parsed;
  };
}

const program = new Command('sentinel')
  .description(
    'Use Sentinel from the command line. login, get, describe, scale, rollback, restart, deployment watch, plan and policies talk to a running ' +
      'Sentinel over its HTTP API (--url or SENTINEL_URL; SENTINEL_TOKEN); projections, reactors, decisions and users open its database directly and read ' +
      'the same environment as `npm start` (DATABASE_URL or SENTINEL_DATA_DIR, KURRENTDB_URL).',
  )
  .version(version)
  .exitOverride()
  .showHelpAfterError();

registerApiVerbs(program);
registerRolloutVerbs(program);

const projections = program.command('projections').description('the read side: status and rebuilds').exitOverride();

projections
  .command('status')
  .description('each projection: version, serving generation, checkpoint, events applied and lag')
  .option('--json', 'print JSON instead of a table')
  .exitOverride()
  .action(status);

projections
  .command('rebuild')
  .description('rebuild a projection from the start of the log into new tables while the current ones keep serving, then swap')
  .argument('<name>', `one of: ${PROJECTORS.map((p) => p.name).join(', ')}`)
  .option('--batch-size <events>', 'events per transaction', integer(1), DEFAULT_REBUILD_BATCH_SIZE)
  .option('--drop-after <ms>', "how long the old generation's tables stay after the swap (queries reuse a generation's name for 500 ms)", integer(0), DEFAULT_DROP_AFTER_MS)
  .exitOverride()
  .action(rebuild);

const reactors = program.command('reactors').description('the reactors: events they parked, and trying them again').exitOverride();

reactors
  .command('parked')
  .description('events a reactor set aside because handling them failed in a way no retry heals')
  .option('--json', 'print JSON instead of a table')
  .exitOverride()
  .action(parked);

reactors
  .command('retry')
  .description('ask the reactor that parked an event to try it once more (it does while it runs)')
  .argument('<id>', 'the id `sentinel reactors parked` shows', integer(1))
  .exitOverride()
  .action(retryParked);

const decisions = program.command('decisions').description('recorded policy decisions: replaying them in bulk').exitOverride();

decisions
  .command('replay')
  .description(
    're-run every decision recorded in a window with its recorded inputs and policy-set revision, and report those that no longer match ' +
      '(exit code 1 when any does not, 0 when all do)',
  )
  .requiredOption('--from <time|position>', 'the start of the window (inclusive): an ISO 8601 date-time or a log position')
  .requiredOption('--to <time|position>', 'the end of the window (exclusive)')
  .option('--policy <id|name>', 'only the decisions that evaluated this policy')
  .option('--json', 'JSON lines even on a terminal: one per decision that does not match, then a summary')
  .exitOverride()
  .action(replay);

const policiesCommand = program.command('policies').description('policies: the impact of a draft before it is enabled').exitOverride();

policiesCommand
  .command('impact')
  .description('what a draft policy, or a change to one, would have decided of the decisions recorded in a window (admin; asks the running Sentinel)')
  .requiredOption('-f, --file <path>', 'the draft: a policy body as POST /policies takes it, or {id, patch}; YAML or JSON, - for stdin')
  .requiredOption('--from <time|position>', 'the start of the window (inclusive): an ISO 8601 date-time or a log position')
  .requiredOption('--to <time|position>', 'the end of the window (exclusive)')
  .option('--max-decisions <n>', `decisions judged at most (default 100,000; at most ${count(MAX_IMPACT_LIMIT)})`, integer(1))
  .option(...URL_OPTION)
  .option('--json', 'print the whole answer as JSON')
  .exitOverride()
  .action(impact);

registerForensicsVerbs(program, { withSentinel });

const users = program.command('users').description('user accounts: recovery when nobody can log in').exitOverride();

users
  .command('reset-password')
  .description('give a user a new generated password (printed once on stdout), enable it, and end every token it had')
  .argument('<name>', 'the user name')
  .addOption(new Option('--role <role>', 'also give the user this role, e.g. admin when no admin is left').choices(USER_ROLES))
  .exitOverride()
  .action(resetPassword);

try {
  await program.parseAsync(process.argv);
  process.exitCode = EXIT_OK;
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and --version end with 0; anything else commander refused is a usage error, already explained.
    process.exitCode = error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  } else if (error instanceof Exit || error instanceof RebuildError) {
    process.stderr.write(`sentinel: ${error.message}\n`);
    process.exitCode = error instanceof Exit ? error.code : EXIT_FAILURE;
  } else {
    process.stderr.write(`sentinel: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}
