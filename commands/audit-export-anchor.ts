// Anchors of the live audit trail: a signed checkpoint of the chain's head (counted from its first row), appended to a
// file outside the database now and then; and the check of the live chain against the last one, which catches a
// chain rewritten whole with its hashes recomputed, as Certificate Transparency's signed tree heads do.
import type { KeyObject } from 'node:crypto';
import { appendFile, readFile } from 'node:fs/promises';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { checkpointProblem, signCheckpoint, type ExportCheckpoint } from './audit-export.js';
import { GENESIS_HASH, verifyAuditTrail } from '../projections/audit-trail.js';

/** An anchor: an export's checkpoint over the whole chain, from its first row to `lastPosition`. */
export type AuditAnchor = ExportCheckpoint;

export interface AnchorCheck {
  position: string | null;
  hash: string;
  rows: number;
  signedAt: string;
  ok: boolean;
  reason?: string;
}

/** `GET /audit/verify`'s answer: the chain's verification, and with an anchor, whether the chain still holds it. */
export interface AnchoredVerification {
  ok: boolean;
  rows: number;
  brokenAt?: { id: string; position: string };
  reason?: string;
  anchor?: AnchorCheck;
}

/** Signs the chain's head as it stands; undefined while the trail is empty. */
export async function anchorOf(knex: Knex, table: string, key: KeyObject, now: () => Date = () => new Date()): Promise<AuditAnchor | undefined> {
  const head = (await knex(table).orderBy('position', 'desc').first('position', 'hash')) as { position: string; hash: string } | undefined;
  if (!head) return undefined;
  const [counted] = (await knex(table)
    .where('position', '<=', head.position)
    .select(knex.raw('count(*)::text as rows'), knex.raw('min(position) as first'))) as { rows: string; first: string }[];
  return signCheckpoint(
    { rows: Number(counted!.rows), prevHash: GENESIS_HASH, firstPosition: counted!.first, lastPosition: head.position, lastHash: head.hash, signedAt: now().toISOString() },
    key,
  );
}

/** Appends the anchor to the file as one JSON line (the file is created when missing). */
export async function writeAnchor(file: string, anchor: AuditAnchor): Promise<void> {
  await appendFile(file, `${JSON.stringify(anchor)}\n`);
}

/** The file's last anchor; undefined when the file is missing or empty. */
export async function lastAnchor(file: string): Promise<AuditAnchor | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  const line = text.trimEnd().split('\n').at(-1);
  return line ? (JSON.parse(line) as AuditAnchor) : undefined;
}

/**
 * The live chain verified whole, then against the anchor: its signature (with `publicKey`, else the key it names),
 * and the row at the anchor's position must still hold the anchored hash, with as many rows up to it as anchored.
 */
export async function verifyAgainstAnchor(knex: Knex, table: string, anchor: AuditAnchor | undefined, publicKey?: KeyObject): Promise<AnchoredVerification> {
  const chain: AnchoredVerification = await verifyAuditTrail(knex, table);
  if (anchor === undefined) return chain;
  const check = { position: anchor.lastPosition, hash: anchor.lastHash, rows: anchor.rows, signedAt: anchor.signedAt };
  const reason = checkpointProblem(anchor, publicKey) ?? (await anchoredRowProblem(knex, table, anchor));
  return { ...chain, ok: chain.ok && reason === undefined, anchor: { ...check, ok: reason === undefined, ...(reason ? { reason } : {}) } };
}

async function anchoredRowProblem(knex: Knex, table: string, anchor: AuditAnchor): Promise<string | undefined> {
  if (anchor.lastPosition === null) return undefined;
  const row = (await knex(table).where({ position: anchor.lastPosition }).first('hash')) as { hash: string } | undefined;
  if (row === undefined) return `the anchored row at ${anchor.lastPosition} is gone`;
  if (row.hash !== anchor.lastHash) return `the row at ${anchor.lastPosition} no longer holds the anchored hash: the chain up to it was rewritten`;
  const [counted] = (await knex(table).where('position', '<=', anchor.lastPosition).select(knex.raw('count(*)::text as rows'))) as { rows: string }[];
  if (Number(counted!.rows) !== anchor.rows) return `${counted!.rows} rows lie up to ${anchor.lastPosition}, the anchor counted ${anchor.rows}: rows were added or removed before it`;
  return undefined;
}

/** Writes an anchor every `intervalSeconds` while the head moves; a failure is logged and tried at the next tick. */
export function startAnchoring(options: {
  knex: Knex;
  table: () => Promise<string>;
  key: KeyObject;
  file: string;
  intervalSeconds: number;
  logger: Logger;
}): { stop(): Promise<void> } {
  let last: string | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = (async () => {
      try {
        const anchor = await anchorOf(options.knex, await options.table(), options.key);
        if (anchor === undefined || anchor.lastHash === last) return;
        await writeAnchor(options.file, anchor);
        last = anchor.lastHash;
      } catch (error) {
        options.logger.error({ err: error, file: options.file }, 'could not anchor the audit trail; trying again at the next interval');
      }
    })();
  };
  tick();
  const timer = setInterval(tick, options.intervalSeconds * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
