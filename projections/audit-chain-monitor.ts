// Verifies the audit trail's hash chain on a schedule and says what it found as gauges, for the AuditChainBroken alert.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { verifyAuditTrail, type AuditVerification } from './audit-trail.js';

/** What the monitor reports; implemented over prom-client in adapters/prometheus. */
export interface AuditChainMetrics {
  /** A verification finished: the whole chain held, or it broke at a row. */
  verified(result: AuditVerification, at: Date, seconds: number): void;
  /** A verification could not finish (the database did not answer): what was reported before stands. */
  failed(): void;
}

export interface AuditChainMonitorOptions {
  knex: Knex;
  /** The audit table serving now (it changes when the audit projection is rebuilt). */
  table: () => Promise<string>;
  metrics: AuditChainMetrics;
  logger: Logger;
  /** Seconds between the end of one verification and the start of the next. */
  intervalSeconds: number;
  now?: () => Date;
}

/**
 * Walks the whole chain each time, from the first row: a row edited anywhere, however old, is found on the next
 * pass (a walk from the last verified row would miss an edit behind it). The walk reads the table a page at a
 * time, and the next one starts only once it has finished, so a slow walk never overlaps another.
 */
export class AuditChainMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<AuditVerification | undefined> | undefined;
  private stopped = false;
  /** Whether the last finished verification found a break, so that a change of state is logged once. */
  private broken = false;

  constructor(private readonly options: AuditChainMonitorOptions) {
    if (!Number.isFinite(options.intervalSeconds) || options.intervalSeconds <= 0) {
      throw new RangeError(`intervalSeconds must be a positive number of seconds, not ${options.intervalSeconds}`);
    }
  }

  /** Verifies once now, in the background, then every interval. */
  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Verifies now (waiting for a walk already under way instead of starting a second); undefined when it failed. */
  check(): Promise<AuditVerification | undefined> {
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

  private async verify(): Promise<AuditVerification | undefined> {
    const { metrics, logger } = this.options;
    const now = this.options.now ?? (() => new Date());
    const started = process.hrtime.bigint();
    let result: AuditVerification;
    try {
      result = await verifyAuditTrail(this.options.knex, await this.options.table());
    } catch (error) {
      metrics.failed();
      logger.warn({ err: error }, 'verifying the audit chain failed; the last result stands');
      return undefined;
    }
    metrics.verified(result, now(), Number(process.hrtime.bigint() - started) / 1e9);
    if (!result.ok && !this.broken) logger.error({ rows: result.rows, brokenAt: result.brokenAt, reason: result.reason }, 'the audit chain is broken');
    if (result.ok && this.broken) logger.info({ rows: result.rows }, 'the audit chain holds again');
    this.broken = !result.ok;
    return result;
  }
}
