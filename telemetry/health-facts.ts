// Health facts from the telemetry pipeline: each stored batch becomes node facts, and a timer finds silent nodes.
// What a fact leads to (remediation) follows the facts in the log, never this listener: a crash loses nothing.
import type { Batch } from '../adapters/grpc/telemetry-proto.js';
import type { StoredBatchListener } from './ingest-server.js';
import { systemClock, type Clock } from '../commands/clock.js';
import type { NodeHealthCommands, RecordedFacts } from '../commands/node-commands.js';
import type { EventStore } from '../domain/event-store.js';

export const DEFAULT_SILENCE_CHECK_INTERVAL_MS = 30_000;
/** A node is silent after this many check intervals without a batch (90 s at the default interval). */
export const DEFAULT_SILENT_AFTER_INTERVALS = 3;

export interface HealthFactsLogger {
  error(fields: Record<string, unknown>, message: string): void;
}

export interface HealthFactsOptions {
  /** How often the silence check runs. */
  intervalMs?: number;
  /** How long without a batch before a node counts as silent (SENTINEL_NODE_SILENT_SECONDS); 3 intervals by default. */
  silentAfterMs?: number;
  clock?: Clock;
  /** Where a failed silence check is reported: it runs on a timer, with no caller to answer. */
  logger?: HealthFactsLogger;
}

export class HealthFacts implements StoredBatchListener {
  readonly intervalMs: number;
  readonly silentAfterMs: number;
  private readonly clock: Clock;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<unknown> | undefined;

  constructor(
    private readonly commands: NodeHealthCommands,
    private readonly store: EventStore,
    private readonly options: HealthFactsOptions = {},
  ) {
    this.intervalMs = positive('intervalMs', options.intervalMs ?? DEFAULT_SILENCE_CHECK_INTERVAL_MS);
    this.silentAfterMs = positive('silentAfterMs', options.silentAfterMs ?? this.intervalMs * DEFAULT_SILENT_AFTER_INTERVALS);
    this.clock = options.clock ?? systemClock;
  }

  /** Records the facts the batch establishes about its node. */
  async batchStored(batch: Batch, receivedAt: Date): Promise<void> {
    await this.commands.observe(batch, receivedAt);
  }

  /** Learns the nodes the log knows of, then checks for silent ones every interval until `stop`. */
  async start(): Promise<void> {
    if (this.timer) return;
    await this.commands.loadKnownNodes(this.store, this.clock.now());
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a check under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.checking;
  }

  /** Records `NodeWentSilent` for every known node silent at `now`; what the timer runs. */
  checkSilence(now: Date = this.clock.now()): Promise<RecordedFacts[]> {
    return this.commands.checkSilence(now, { intervalMs: this.intervalMs, silentAfterMs: this.silentAfterMs });
  }

  /** One check at a time: a check slower than the interval is not stacked on. */
  private tick(): void {
    if (this.checking) return;
    this.checking = this.checkSilence()
      .catch((error: unknown) => this.reportFailure(error))
      .finally(() => {
        this.checking = undefined;
      });
  }

  private reportFailure(error: unknown): void {
    const fields = { err: error instanceof Error ? error.message : String(error) };
    const message = 'node silence check failed; it runs again at the next interval';
    if (this.options.logger) this.options.logger.error(fields, message);
    else process.emitWarning(`${message} (${fields.err})`, 'HealthFactsWarning');
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number of milliseconds, not ${value}`);
  return value;
}
