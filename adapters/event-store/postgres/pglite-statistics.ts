// PGlite runs no autovacuum, so the planner's statistics on the events table would never move from those of an
// empty table, and reads filtered by type or by stream prefix would keep a plan that scans the log. The store
// analyses the table itself, by autovacuum's default rule: when it opens, then once the events appended since the
// last analysis exceed 50 plus a tenth of the table's rows. One analysis at a time, off the append's path.
import type { Database } from '../../postgres/database.js';

const BASE_THRESHOLD = 50;
const SCALE_FACTOR = 0.1;

export class PgliteStatistics {
  private rows = 0;
  private appendedSince = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly db: Database) {}

  /** Analyses the table as it is now. */
  start(): Promise<void> {
    return this.analyze();
  }

  /** Counts appended events; starts an analysis in the background when enough have been. */
  appended(count: number): void {
    this.appendedSince += count;
    if (this.running || this.appendedSince <= BASE_THRESHOLD + SCALE_FACTOR * this.rows) return;
    this.running = this.analyze().finally(() => (this.running = undefined));
  }

  /** Waits for an analysis under way. */
  async idle(): Promise<void> {
    await this.running;
  }

  private async analyze(): Promise<void> {
    const counted = this.appendedSince;
    this.appendedSince = 0;
    try {
      await this.db.query('analyze sentinel_events, sentinel_stream_metadata');
      const [table] = await this.db.query<{ rows: number }>(`select reltuples::float8 as rows from pg_class where relname = 'sentinel_events'`);
      this.rows = Math.max(0, Number(table?.rows ?? 0));
    } catch {
      // Statistics only steer plans: a failed analysis leaves the old ones, and the next append tries again.
      this.appendedSince += counted;
    }
  }
}
