// Runs reactors: each follows the log from its checkpoint under a lease, handles every event at least once, and
// moves its checkpoint after the event's effects. Handlers are idempotent, so a replay after a crash changes nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { EventStore, Position, RecordedEvent, Subscription } from '../domain/event-store.js';
import type { ProjectionLease } from '../projections/runtime.js';

export interface Reactor {
  /** Names its checkpoint and its lease: one active instance per name across every process. */
  readonly name: string;
  readonly eventTypes: readonly string[];
  /** Once the lease is held, before the first event: start watches and resume work in flight. */
  start?(signal: AbortSignal): Promise<void>;
  /**
   * Handles one event. Failures that will not heal are recorded as events by the handler; what it throws is
   * taken as transient and the same event is tried again, with backoff.
   */
  handle(event: RecordedEvent, signal: AbortSignal): Promise<void>;
  /** When the lease is lost or the runtime stops. */
  stop?(): Promise<void>;
  /**
   * When given, events with different keys are handled side by side (up to `maxInFlight`), and events with the
   * same key in log order: for a reactor whose events about different things do not depend on each other.
   */
  keyOf?(event: RecordedEvent): string;
  maxInFlight?: number;
}

export interface ReactorRuntimeOptions {
  logger: Logger;
  lease: ProjectionLease;
  /** How often a standby tries for the lease. */
  standbyRetryMs?: number;
  /** Backoff between attempts at an event that failed: doubling from `retryBaseMs` to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Longest wait before starting a reactor again that failed to start or stopped (doubling from 1 s). */
  restartMaxMs?: number;
}

const CHECKPOINTS = 'sentinel_reactor_checkpoints';

/** One reactor in the runtime: its own stop signal, its subscription while it follows the log, and its loop. */
interface Running {
  reactor: Reactor;
  abort: AbortController;
  subscription?: Subscription;
  done: Promise<void>;
}

export class ReactorRuntime {
  private readonly abort = new AbortController();
  private readonly running = new Map<string, Running>();
  private readonly active = new Set<string>();

  constructor(
    private readonly knex: Knex,
    private readonly store: EventStore,
    private readonly options: ReactorRuntimeOptions,
  ) {}

  /** Starts following the log with this reactor; it may be added while others run. One reactor of a name at a time. */
  add(reactor: Reactor): void {
    if (this.running.has(reactor.name)) throw new Error(`reactor ${reactor.name} is already running`);
    const abort = new AbortController();
    if (this.abort.signal.aborted) abort.abort();
    const entry: Running = { reactor, abort, done: Promise.resolve() };
    entry.done = this.loop(entry).finally(() => {
      if (this.running.get(reactor.name) === entry) this.running.delete(reactor.name);
    });
    this.running.set(reactor.name, entry);
  }

  /**
   * Stops a reactor and takes it out of the runtime: its signal is aborted at once, its subscription closed, and
   * the promise settles once it has stopped and let go of its lease. Its checkpoint stays, for a reactor of the same
   * name added later.
   */
  async remove(name: string): Promise<void> {
    const entry = this.running.get(name);
    if (!entry) return;
    entry.abort.abort();
    await entry.subscription?.close();
    await entry.done;
  }

  /** Whether this process holds the reactor's lease and is acting on it. */
  isActive(name: string): boolean {
    return this.active.has(name);
  }

  async checkpoint(name: string): Promise<Position | undefined> {
    const row = (await this.knex(CHECKPOINTS).where({ name }).first('position')) as { position: string } | undefined;
    return row?.position;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    const entries = [...this.running.values()];
    for (const entry of entries) entry.abort.abort();
    await Promise.all(entries.map((entry) => entry.subscription?.close()));
    await Promise.allSettled(entries.map((entry) => entry.done));
  }

  private async loop(entry: Running): Promise<void> {
    const { lease, logger } = this.options;
    const { reactor } = entry;
    const signal = entry.abort.signal;
    // A reactor that cannot start (its cluster is unreachable) tries again with backoff, and says so once per cause.
    let failures = 0;
    let lastFailure: string | undefined;
    while (!signal.aborted) {
      let acquired = false;
      try {
        acquired = await lease.tryAcquire(`reactor:${reactor.name}`);
        if (!acquired) {
          await sleep(this.options.standbyRetryMs ?? 1000, undefined, { signal });
          continue;
        }
        this.active.add(reactor.name);
        if (failures === 0) logger.info({ reactor: reactor.name }, 'reacting');
        await reactor.start?.(signal);
        if (signal.aborted) break;
        if (failures > 0) logger.info({ reactor: reactor.name, failures }, 'reacting again');
        failures = 0;
        lastFailure = undefined;
        await this.follow(entry);
      } catch (error) {
        if (signal.aborted) break;
        failures += 1;
        const failure = error instanceof Error ? error.message : String(error);
        const delay = backoffMs(failures, 1000, this.options.restartMaxMs ?? 30_000);
        if (failure === lastFailure) logger.debug({ err: error, reactor: reactor.name, failures, retryInMs: Math.round(delay) }, 'reactor still failing; starting again');
        else logger.error({ err: error, reactor: reactor.name, failures, retryInMs: Math.round(delay) }, 'reactor stopped; starting again');
        lastFailure = failure;
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      } finally {
        if (acquired) {
          this.active.delete(reactor.name);
          await reactor.stop?.().catch((error: unknown) => logger.error({ err: error, reactor: reactor.name }, 'reactor did not stop cleanly'));
          await lease.release(`reactor:${reactor.name}`).catch(() => undefined);
        }
      }
    }
  }

  private async follow(entry: Running): Promise<void> {
    const { reactor } = entry;
    const signal = entry.abort.signal;
    const subscription = this.store.subscribe({ after: await this.checkpoint(reactor.name), filter: { types: [...reactor.eventTypes] } });
    entry.subscription = subscription;
    // stop() or remove() may have run while this was subscribing, before there was a subscription to close.
    if (signal.aborted) await subscription.close();
    const lanes = new Lanes(reactor.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    try {
      for await (const event of subscription) {
        if (!reactor.keyOf) {
          await this.handleWithRetries(reactor, event, signal);
          if (signal.aborted) return;
          await this.saveCheckpoint(reactor, event.position);
          continue;
        }
        // Events of one key in log order, different keys side by side; the checkpoint only passes an event
        // once it and every event before it are handled, so a restart never skips one.
        await lanes.run(reactor.keyOf(event), event.position, () => this.handleWithRetries(reactor, event, signal), async (handled) => {
          if (!signal.aborted) await this.saveCheckpoint(reactor, handled);
        });
        if (signal.aborted) return;
      }
    } finally {
      if (entry.subscription === subscription) entry.subscription = undefined;
      await subscription.close();
      await lanes.settled();
    }
  }

  private async saveCheckpoint(reactor: Reactor, position: Position): Promise<void> {
    await this.knex(CHECKPOINTS).insert({ name: reactor.name, position, updated_at: this.knex.fn.now() }).onConflict('name').merge();
    if (!(await this.options.lease.stillHeld(`reactor:${reactor.name}`))) throw new Error(`lost the lease on reactor ${reactor.name}`);
  }

  private async handleWithRetries(reactor: Reactor, event: RecordedEvent, signal: AbortSignal): Promise<void> {
    const base = this.options.retryBaseMs ?? 200;
    const max = this.options.retryMaxMs ?? 30_000;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await reactor.handle(event, signal);
        return;
      } catch (error) {
        if (signal.aborted) return;
        const delay = backoffMs(attempt, base, max);
        this.options.logger.warn(
          { err: error, reactor: reactor.name, event: event.id, type: event.type, attempt, retryInMs: Math.round(delay) },
          'reaction failed; trying again',
        );
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      }
    }
  }
}

/** The wait before attempt `attempt + 1`: doubling from `base` up to `max`, with jitter so retries spread out. */
export function backoffMs(attempt: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
}

/** Every event of these types from the start of the log, page by page: for reactors that resume what the log left open. */
export async function* everyEventOf(store: EventStore, types: string[]): AsyncGenerator<RecordedEvent> {
  for (let after: Position | undefined; ; ) {
    const page = await store.readAll({ after, filter: { types }, limit: 1000 });
    yield* page.events;
    if (page.checkpoint === undefined || page.checkpoint === after) return;
    after = page.checkpoint;
  }
}

const DEFAULT_MAX_IN_FLIGHT = 16;

/**
 * Work in lanes: one lane per key, in order within it, up to `max` pieces at once. `done` is told the position
 * below which every piece has finished, in order, one call at a time.
 */
class Lanes {
  private readonly lanes = new Map<string, Promise<void>>();
  private readonly pending: { position: Position; finished: boolean }[] = [];
  private running = 0;
  private freed: (() => void) | undefined;
  private reporting: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(private readonly max: number) {}

  /** Starts `work` in its lane once a place is free; resolves when it has started. Throws a reporting failure. */
  async run(key: string, position: Position, work: () => Promise<void>, done: (position: Position) => Promise<void>): Promise<void> {
    while (this.running >= this.max) await new Promise<void>((resolve) => (this.freed = resolve));
    if (this.failure) throw this.failure;
    const entry = { position, finished: false };
    this.pending.push(entry);
    this.running += 1;
    const lane = (this.lanes.get(key) ?? Promise.resolve()).then(work).then(() => {
      entry.finished = true;
      this.running -= 1;
      this.freed?.();
      this.report(done);
    });
    this.lanes.set(key, lane);
    void lane.finally(() => {
      if (this.lanes.get(key) === lane) this.lanes.delete(key);
    });
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.lanes.values()]);
    await this.reporting.catch(() => undefined);
  }

  private report(done: (position: Position) => Promise<void>): void {
    let last: Position | undefined;
    while (this.pending[0]?.finished) last = this.pending.shift()!.position;
    if (last === undefined) return;
    const position = last;
    this.reporting = this.reporting.then(() => done(position)).catch((error: unknown) => {
      this.failure ??= error;
      this.freed?.();
    });
  }
}
