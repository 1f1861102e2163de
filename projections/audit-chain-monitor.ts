// Verifies the audit trail's hash chain on a schedule and says what it found as gauges, for the AuditChainBroken and
// AuditChainWalkStale alerts.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { auditRowHash, GENESIS_HASH } from './audit-trail.js';
import { readAuditChain, type AuditVerification } from './audit-chain-read.js';

/** How a verification read the chain: from the first row, or on from the head the last one found whole. */
export type ChainWalk = 'full' | 'incremental';

/** What one verification found: the chain's rows verified (up to and including a broken one), and what it read. */
export type ChainCheck = AuditVerification & { walk: ChainWalk; walked: number };

/** What the monitor reports; implemented over prom-client in adapters/prometheus. */
export interface AuditChainMetrics {
  /** The schedule the monitor keeps, once it starts: the AuditChainWalkStale alert compares with it. */
  scheduled(intervalSeconds: number, fullEvery: number): void;
  /** A verification finished: the chain held, or it broke at a row. */
  verified(result: ChainCheck, at: Date, seconds: number): void;
  /** A verification could not finish (the database did not answer): what was reported before stands. */
  failed(): void;
}

export interface AuditChainMonitorOptions {
  knex: Knex;
  /** The audit table serving now (it changes when the audit projection is rebuilt). */
  table: () => Promise<string>;
  metrics: AuditChainMetrics;
  logger: Logger;
  /** Seconds between the end of one verification and the start of the next (AUDIT_VERIFY_INTERVAL_SECONDS). */
  intervalSeconds: number;
  /**
   * Every this many verifications, one walks the whole chain from the first row (AUDIT_VERIFY_FULL_EVERY); 1: every
   * one does. 12 when not given.
   */
  fullEvery?: number;
  now?: () => Date;
  /** Rows read per statement. */
  batchSize?: number;
}

/** Verifications per full walk when none is given: at the default interval of 5 minutes, one full walk an hour. */
export const DEFAULT_FULL_EVERY = 12;

/** The last row of the chain as a verification found it whole: where the next incremental walk starts. */
interface VerifiedHead {
  table: string;
  id: string;
  position: string;
  prevHash: string;
  hash: string;
  /** Its place in the chain, counted from 1. */
  rows: number;
}

/**
 * Walking the whole chain each time costs as much as the history is long, so most verifications walk only the rows
 * appended since the last one: they start at the head it found whole, which must still be there with the same hash
 * (a tail rewritten from there, hashes and all, is caught this way), and check that every new row links to it. Every
 * `fullEvery`-th verification, the first one, and every one after a break walk from the first row, so that an edit
 * anywhere, however old, is still found; a full walk also checks the head remembered from before, so a chain
 * rewritten consistently up to it (hashes and all) is found too. A walk reads the table a page at a time, and the next one starts
 * only once it has finished, so a slow walk never overlaps another.
 */
export class AuditChainMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ChainCheck | undefined> | undefined;
  private stopped = false;
  /** Whether the last finished verification found a break: a change of state is logged once, and the next walk is full. */
  private broken = false;
  /** The head the last verification that held found, kept through a break so that a later full walk checks it too. */
  private head: VerifiedHead | undefined;
  /** Verifications that found the chain whole since, and with, the last full one: a full walk is due at `fullEvery`. */
  private sinceFull = 0;
  private readonly fullEvery: number;

  constructor(private readonly options: AuditChainMonitorOptions) {
    if (!Number.isFinite(options.intervalSeconds) || options.intervalSeconds <= 0) {
      throw new RangeError(`intervalSeconds must be a positive number of seconds, not ${options.intervalSeconds}`);
    }
    this.fullEvery = options.fullEvery ?? DEFAULT_FULL_EVERY;
    if (!Number.isInteger(this.fullEvery) || this.fullEvery < 1) {
      throw new RangeError(`fullEvery must be a whole number of verifications from 1 (every one walks the whole chain), not ${this.fullEvery}`);
    }
  }

  /** Verifies once now, in the background (a full walk), then every interval. */
  start(): void {
    this.stopped = false;
    this.options.metrics.scheduled(this.options.intervalSeconds, this.fullEvery);
    this.schedule(0);
  }

  /** Verifies now (waiting for a walk already under way instead of starting a second); undefined when it failed. */
  check(): Promise<ChainCheck | undefined> {
    this.running ??= this.verify().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.check().then(() => this.schedule(this.options.intervalSeconds * 1000));
    }, delayMs).unref();
  }

  private async verify(): Promise<ChainCheck | undefined> {
    const { metrics, logger } = this.options;
    const now = this.options.now ?? (() => new Date());
    const started = process.hrtime.bigint();
    let result: ChainCheck;
    try {
      const table = await this.options.table();
      // A rebuilt audit projection serves a new table: what was remembered of the old one says nothing about it.
      if (this.head && this.head.table !== table) this.head = undefined;
      const head = this.head;
      const incremental = head !== undefined && !this.broken && this.sinceFull < this.fullEvery;
      const walked = await this.walk(table, incremental ? head : undefined, head);
      result = walked.result;
      if (result.ok) {
        this.head = walked.head;
        this.sinceFull = incremental ? this.sinceFull + 1 : 1;
      }
    } catch (error) {
      metrics.failed();
      logger.warn({ err: error }, 'verifying the audit chain failed; the last result stands');
      return undefined;
    }
    metrics.verified(result, now(), Number(process.hrtime.bigint() - started) / 1e9);
    if (!result.ok && !this.broken) {
      logger.error({ rows: result.rows, brokenAt: result.brokenAt, reason: result.reason, walk: result.walk }, 'the audit chain is broken');
    }
    if (result.ok && this.broken) logger.info({ rows: result.rows }, 'the audit chain holds again');
    this.broken = !result.ok;
    return result;
  }

  /**
   * One walk: from the first row (`from` undefined), or from `from`, the head the last walk found whole, which is read
   * again and checked like any other row. `remembered`, a head an earlier walk found whole, must be met on the way with
   * the hash it had then: a chain that links up but no longer holds that row was rewritten from there.
   */
  private async walk(
    table: string,
    from: VerifiedHead | undefined,
    remembered: VerifiedHead | undefined,
  ): Promise<{ result: ChainCheck; head: VerifiedHead | undefined }> {
    const walk: ChainWalk = from ? 'incremental' : 'full';
    let expectedPrev = from?.prevHash ?? GENESIS_HASH;
    let rows = from ? from.rows - 1 : 0;
    let walked = 0;
    let met = remembered === undefined;
    let head: VerifiedHead | undefined;
    const broken = (brokenAt: { id: string; position: string }, reason: string) => ({
      result: { ok: false as const, rows, brokenAt, reason, walk, walked },
      head: undefined,
    });
    const gone = (lost: VerifiedHead) => {
      rows = lost.rows;
      return broken({ id: lost.id, position: lost.position }, `the row at position ${lost.position}, found whole before, is gone (rows were removed)`);
    };
    for await (const page of readAuditChain(this.options.knex, table, from ? { from: from.position } : {}, this.options.batchSize)) {
      for (const row of page) {
        const { eventId: id, position } = row.record;
        if (walked === 0 && from && position !== from.position) return gone(from);
        walked += 1;
        rows += 1;
        // First: a row rewritten with hashes that link up would otherwise be reported by the link it changed.
        if (remembered && position === remembered.position) {
          if (row.hash !== remembered.hash) {
            return broken({ id, position }, `the row at position ${position} no longer has the hash it had when it was found whole (the chain was rewritten up to there)`);
          }
          met = true;
        }
        if (row.prevHash !== expectedPrev) return broken({ id, position }, "prev_hash does not match the previous row's hash (a row was removed, inserted or reordered)");
        if (auditRowHash(row.prevHash, row.record, row.content) !== row.hash) return broken({ id, position }, "hash does not match the row's contents (the row or its hash was changed)");
        expectedPrev = row.hash;
        head = { table, id, position, prevHash: row.prevHash, hash: row.hash, rows };
      }
    }
    if (!met) return gone(remembered!);
    return { result: { ok: true, rows, walk, walked }, head };
  }
}
