// Runs reactors: each follows the log from its checkpoint under a lease (domain/log-follower.ts, as projectors do),
// handles every event at least once, and moves its checkpoint after the event's effects (after each batch, for a
// reactor that takes batches). Handlers are idempotent, so a replay after a crash changes nothing.
// A failure is handled by its kind (failures.ts): a transient one is tried again with backoff, any other parks the
// event so the reactor goes on with the next one; a parked event is tried again when someone asks. How far each
// reactor trails the log is sampled for its metrics, as the projection runtime does for projectors.
import { setMaxListeners } from 'node:events';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { backoffDelay, RetryAborted, retrying } from '../adapters/retry.js';
import { batchParent, contextFrom, failed, inSpan, linkBatch, SpanKind, type Span } from '../adapters/tracing.js';
import type { EventStore, Position, RecordedEvent } from '../domain/event-store.js';
import type { Lease } from '../domain/lease.js';
import { batchesOf, followUnderLease, lagAfter, type Held, type Lag } from '../domain/log-follower.js';
import { reactorCheckpoint, saveReactorCheckpoint } from '../adapters/postgres/checkpoints.js';
import { classifyFailure, PermanentFailure, type FailureKind } from './failures.js';

export interface Reactor {
  /** Names its checkpoint and its lease: one active instance per name across every process. */
  readonly name: string;
  readonly eventTypes: readonly string[];
  /** Once the lease is held, before the first event: start watches and resume work in flight. */
  start?(signal: AbortSignal): Promise<void>;
  /**
   * Handles one event. What it throws is judged by `classifyFailure`: a transient failure is tried again, with
   * backoff; a permanent failure or a bug parks the event, and the reactor goes on with the next one.
   */
  handle(event: RecordedEvent, signal: AbortSignal): Promise<void>;
  /**
   * When given, the runtime hands over the events it has in hand together (up to `maxBatch`) and moves the
   * checkpoint once per batch: for a firehose reactor whose work is cheaper in bulk. Failures are judged as for
   * `handle`: a transient one tries the whole batch again; after any other, the batch's events go one at a time
   * through `handle`, so only the event that fails is parked. Such a reactor has no lanes (`keyOf` is not asked).
   */
  handleBatch?(events: readonly RecordedEvent[], signal: AbortSignal): Promise<void>;
  /** Most events in one `handleBatch` (500 when not given). */
  maxBatch?: number;
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
  lease: Lease;
  /** How often a standby tries for the lease. */
  standbyRetryMs?: number;
  /** Backoff between attempts at an event that failed: doubling from `retryBaseMs` to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Longest wait before starting a reactor again that failed to start or stopped (doubling from 1 s). */
  restartMaxMs?: number;
  /** How often an active reactor looks for parked events someone asked to be tried again. */
  parkedPollMs?: number;
  /**
   * Where `sentinel_reactor_parked_events_total`, `sentinel_reactor_parked_events` and `sentinel_reactor_lag_events`
   * and `_seconds` are registered, when given.
   */
  registry?: Registry;
  /** How often the lag of each reactor is sampled for the metrics (10 s when not given). */
  lagSampleMs?: number;
}

/** How far a reactor trails the log: events of its types after its checkpoint, and the age of the oldest. */
export type ReactorLag = Lag;

const PARKED = 'sentinel_reactor_parked';

/** An event set aside because handling it failed in a way no retry heals. */
export interface ParkedEvent {
  id: number;
  reactor: string;
  eventId: string;
  stream: string;
  type: string;
  position: Position;
  kind: Exclude<FailureKind, 'transient'>;
  error: string;
  failures: number;
  parkedAt: string;
  retryRequestedAt: string | null;
}

interface ParkedRow {
  id: number | string;
  reactor: string;
  event_id: string;
  event_stream: string;
  event_type: string;
  event_position: string;
  kind: ParkedEvent['kind'];
  error: string;
  failures: number;
  parked_at: Date | string;
  retry_requested_at: Date | string | null;
}

/** How many events each reactor has parked, and how many of them for a bug; reactors with none are left out. */
export async function parkedCounts(knex: Knex): Promise<Map<string, { parked: number; bugs: number }>> {
  const rows = (await knex(PARKED)
    .select('reactor')
    .count({ parked: '*' })
    .select(knex.raw("count(*) filter (where kind = 'bug') as bugs"))
    .groupBy('reactor')) as { reactor: string; parked: number | string; bugs: number | string }[];
  return new Map(rows.map((row) => [row.reactor, { parked: Number(row.parked), bugs: Number(row.bugs) }]));
}

/** The newest `limit` parked events, of one reactor or of all, newest first, and how many there are in all. */
export async function newestParked(knex: Knex, limit: number, reactor?: string): Promise<{ items: ParkedEvent[]; total: number }> {
  const of = () => (reactor === undefined ? knex(PARKED) : knex(PARKED).where({ reactor }));
  const [rows, [count]] = await Promise.all([
    of().orderBy('id', 'desc').limit(limit).select('*') as Promise<ParkedRow[]>,
    of().count({ total: '*' }) as unknown as Promise<{ total: number | string }[]>,
  ]);
  return { items: rows.map(toParked), total: Number(count?.total ?? 0) };
}

/** Every parked event, of one reactor or of all, oldest first. */
export async function listParked(knex: Knex, reactor?: string): Promise<ParkedEvent[]> {
  const query = knex(PARKED).orderBy('id');
  if (reactor !== undefined) query.where({ reactor });
  return ((await query.select('*')) as ParkedRow[]).map(toParked);
}

/**
 * Asks the reactor that parked this event to try it once more; its running instance does so within
 * `parkedPollMs`. Resolves to the parked event, or undefined when no parked event has this id.
 */
export async function requestRetry(knex: Knex, id: number): Promise<ParkedEvent | undefined> {
  const [row] = (await knex(PARKED).where({ id }).update({ retry_requested_at: knex.fn.now() }).returning('*')) as ParkedRow[];
  return row && toParked(row);
}

function toParked(row: ParkedRow): ParkedEvent {
  const time = (value: Date | string) => new Date(value).toISOString();
  return {
    id: Number(row.id),
    reactor: row.reactor,
    eventId: row.event_id,
    stream: row.event_stream,
    type: row.event_type,
    position: row.event_position,
    kind: row.kind,
    error: row.error,
    failures: row.failures,
    parkedAt: time(row.parked_at),
    retryRequestedAt: row.retry_requested_at === null ? null : time(row.retry_requested_at),
  };
}

/**
 * The runtime's Prometheus series: events parked since start, those parked now (read from the table on scrape), and
 * how far each reactor trails the log (sampled).
 */
class RuntimeMetrics {
  private readonly parked: Counter<'reactor' | 'kind'>;
  private readonly lagEvents: Gauge<'reactor'>;
  private readonly lagSeconds: Gauge<'reactor'>;

  constructor(registry: Registry, knex: Knex, logger: Logger) {
    this.parked = new Counter({
      name: 'sentinel_reactor_parked_events_total',
      help: 'Events a reactor parked, by reactor and kind of failure (permanent, bug): each needs someone to look at it',
      labelNames: ['reactor', 'kind'],
      registers: [registry],
    });
    new Gauge({
      name: 'sentinel_reactor_parked_events',
      help: 'Events parked now, waiting to be tried again (sentinel reactors parked), by reactor and kind of failure',
      labelNames: ['reactor', 'kind'],
      registers: [registry],
      async collect() {
        try {
          const rows = (await knex(PARKED).select('reactor', 'kind').count({ parked: '*' }).groupBy('reactor', 'kind')) as {
            reactor: string;
            kind: string;
            parked: number | string;
          }[];
          this.reset();
          for (const row of rows) this.set({ reactor: row.reactor, kind: row.kind }, Number(row.parked));
        } catch (error) {
          logger.warn({ err: error }, 'cannot count parked reactor events');
        }
      },
    });
    this.lagEvents = new Gauge({
      name: 'sentinel_reactor_lag_events',
      help: 'Events of the types a reactor handles that lie after its checkpoint (counted up to 10000), as of the last sample',
      labelNames: ['reactor'],
      registers: [registry],
    });
    this.lagSeconds = new Gauge({
      name: 'sentinel_reactor_lag_seconds',
      help: 'Age of the oldest event a reactor has not moved its checkpoint past yet; 0 when caught up',
      labelNames: ['reactor'],
      registers: [registry],
    });
  }

  park(reactor: string, kind: ParkedEvent['kind']): void {
    this.parked.inc({ reactor, kind });
  }

  lag(reactor: string, lag: ReactorLag): void {
    this.lagEvents.set({ reactor }, lag.events);
    this.lagSeconds.set({ reactor }, lag.seconds);
  }

  /** A reactor taken out of the runtime (its cluster deregistered): its series go with it. */
  removed(reactor: string): void {
    this.lagEvents.remove({ reactor });
    this.lagSeconds.remove({ reactor });
  }
}

/** One reactor in the runtime: its own stop signal (which also closes its subscription), and its loop. */
interface Running {
  reactor: Reactor;
  abort: AbortController;
  done: Promise<void>;
}

export class ReactorRuntime {
  private readonly abort = new AbortController();
  private readonly running = new Map<string, Running>();
  private readonly active = new Set<string>();
  private readonly metrics: RuntimeMetrics | undefined;
  private readonly lagTimer: NodeJS.Timeout | undefined;
  /** The lag sample under way, if any: a slow one is not overtaken by the next. */
  private sampling: Promise<void> | undefined;

  constructor(
    private readonly knex: Knex,
    private readonly store: EventStore,
    private readonly options: ReactorRuntimeOptions,
  ) {
    this.metrics = options.registry && new RuntimeMetrics(options.registry, knex, options.logger);
    // Lag is measured against the log, so it is sampled rather than kept up on every event. Every instance samples
    // every reactor it runs, the standbys too: a reactor whose active instance stopped shows its lag growing.
    if (this.metrics) {
      this.lagTimer = setInterval(() => {
        this.sampling ??= this.sampleLag().finally(() => (this.sampling = undefined));
      }, options.lagSampleMs ?? 10_000).unref();
    }
  }

  /** Starts following the log with this reactor; it may be added while others run. One reactor of a name at a time. */
  add(reactor: Reactor): void {
    if (this.running.has(reactor.name)) throw new Error(`reactor ${reactor.name} is already running`);
    const abort = new AbortController();
    // Every lane in flight waits on this one signal (each try and each backoff listens to it): no bound is right.
    setMaxListeners(0, abort.signal);
    if (this.abort.signal.aborted) abort.abort();
    const entry: Running = { reactor, abort, done: Promise.resolve() };
    entry.done = this.loop(entry).finally(() => {
      if (this.running.get(reactor.name) !== entry) return;
      this.running.delete(reactor.name);
      this.metrics?.removed(reactor.name);
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
    await entry.done;
  }

  /** Whether this process holds the reactor's lease and is acting on it. */
  isActive(name: string): boolean {
    return this.active.has(name);
  }

  /** The event types a reactor this runtime runs reads; undefined for one it does not run. */
  eventTypesOf(name: string): readonly string[] | undefined {
    return this.running.get(name)?.reactor.eventTypes;
  }

  async checkpoint(name: string): Promise<Position | undefined> {
    return reactorCheckpoint(this.knex, name);
  }

  /**
   * How far a reactor of this runtime trails the log, from its checkpoint; undefined when none of that name runs here.
   * Counted by the store, never by reading the events; the age takes the one oldest event past the checkpoint.
   */
  async lag(name: string): Promise<ReactorLag | undefined> {
    const reactor = this.running.get(name)?.reactor;
    if (!reactor) return undefined;
    return lagAfter(this.store, await this.checkpoint(name), { types: [...reactor.eventTypes] });
  }

  private async sampleLag(): Promise<void> {
    for (const name of [...this.running.keys()]) {
      try {
        const lag = await this.lag(name);
        // Taken out while it was measured: its series are gone and stay gone.
        if (lag && this.running.has(name)) this.metrics?.lag(name, lag);
      } catch (error) {
        this.options.logger.warn({ err: error, reactor: name }, 'cannot measure how far the reactor trails the log; its lag metrics keep their last value');
        return;
      }
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.lagTimer);
    await this.sampling;
    this.abort.abort();
    const entries = [...this.running.values()];
    for (const entry of entries) entry.abort.abort();
    await Promise.allSettled(entries.map((entry) => entry.done));
  }

  /**
   * Reacts under the reactor's lease, a standby until it is held. A reactor that fails to start or stops is
   * stopped, lets go of its lease, and starts again with backoff, saying so once per cause.
   */
  private loop(entry: Running): Promise<void> {
    const { logger } = this.options;
    const { reactor } = entry;
    const signal = entry.abort.signal;
    let failures = 0;
    let lastFailure: string | undefined;
    return followUnderLease({
      lease: this.options.lease,
      name: `reactor:${reactor.name}`,
      signal,
      standbyRetryMs: this.options.standbyRetryMs,
      follow: async (held) => {
        this.active.add(reactor.name);
        if (failures === 0) logger.info({ reactor: reactor.name }, 'reacting');
        await reactor.start?.(signal);
        if (signal.aborted) return;
        if (failures > 0) logger.info({ reactor: reactor.name, failures }, 'reacting again');
        failures = 0;
        lastFailure = undefined;
        await this.follow(reactor, held, signal);
      },
      failed: (error) => {
        failures += 1;
        const failure = error instanceof Error ? error.message : String(error);
        const delay = backoffDelay(failures, { baseMs: 1000, maxMs: this.options.restartMaxMs ?? 30_000 });
        if (failure === lastFailure) logger.debug({ err: error, reactor: reactor.name, failures, retryInMs: Math.round(delay) }, 'reactor still failing; starting again');
        else logger.error({ err: error, reactor: reactor.name, failures, retryInMs: Math.round(delay) }, 'reactor stopped; starting again');
        lastFailure = failure;
        return delay;
      },
      letGo: async () => {
        this.active.delete(reactor.name);
        await reactor.stop?.().catch((error: unknown) => logger.error({ err: error, reactor: reactor.name }, 'reactor did not stop cleanly'));
      },
    });
  }

  private async follow(reactor: Reactor, held: Held, signal: AbortSignal): Promise<void> {
    const subscription = held.subscribe(this.store, { after: await this.checkpoint(reactor.name), filter: { types: [...reactor.eventTypes] } });
    const lanes = new Lanes(reactor.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    const retries = this.retryWhenAsked(reactor, signal);
    try {
      if (reactor.handleBatch) {
        for await (const batch of batchesOf(subscription, reactor.maxBatch ?? DEFAULT_MAX_BATCH)) {
          await this.reactToBatch(reactor, batch, signal);
          if (signal.aborted) return;
          await this.saveCheckpoint(reactor, held, batch.at(-1)!.position);
        }
        return;
      }
      for await (const event of subscription) {
        if (!reactor.keyOf) {
          await this.react(reactor, event, signal);
          if (signal.aborted) return;
          await this.saveCheckpoint(reactor, held, event.position);
          continue;
        }
        // Events of one key in log order, different keys side by side; the checkpoint only passes an event
        // once it and every event before it are handled, so a restart never skips one.
        await lanes.run(reactor.keyOf(event), event.position, () => this.react(reactor, event, signal), async (handled) => {
          if (!signal.aborted) await this.saveCheckpoint(reactor, held, handled);
        });
        if (signal.aborted) return;
      }
    } finally {
      await retries.stop();
      await subscription.close();
      await lanes.settled();
    }
  }

  private async saveCheckpoint(reactor: Reactor, held: Held, position: Position): Promise<void> {
    await saveReactorCheckpoint(this.knex, reactor.name, position);
    await held.confirm();
  }

  /**
   * Handles a batch: a transient failure tries the whole batch again, with backoff, until it succeeds or the
   * reactor stops. After any other failure the batch's events are handled one at a time (see `react`), so only
   * the event that fails is parked and the others are handled. Resolves once the checkpoint may pass the batch.
   */
  private async reactToBatch(reactor: Reactor, batch: readonly RecordedEvent[], signal: AbortSignal): Promise<void> {
    const { logger } = this.options;
    const traceparents = batch.map((event) => event.metadata.traceparent);
    const attributes = { 'sentinel.reactor': reactor.name, 'sentinel.events': batch.length, 'sentinel.position': batch.at(-1)!.position };
    try {
      // One span for the batch: it continues the first event's trace and links the others', as a projector's does.
      const failure = (error: unknown) => !(error instanceof RetryAborted);
      await inSpan('react batch', { kind: SpanKind.CONSUMER, parent: batchParent(traceparents), attributes, failure }, async (span) => {
        linkBatch(span, traceparents);
        await retrying(() => reactor.handleBatch!(batch, signal), {
          backoff: { baseMs: this.options.retryBaseMs ?? 200, maxMs: this.options.retryMaxMs ?? 30_000 },
          retryable: (error) => classifyFailure(error) === 'transient',
          signal,
          onRetry: ({ error, attempt, delayMs }) => {
            span.addEvent('retry', { attempt, 'retry_in_ms': delayMs, 'error': error instanceof Error ? error.message : String(error) });
            logger.warn({ err: error, reactor: reactor.name, events: batch.length, from: batch[0]!.position, attempt, retryInMs: delayMs }, 'batch reaction failed; trying again');
          },
        });
      });
    } catch (error) {
      if (error instanceof RetryAborted || signal.aborted) return;
      logger.warn({ err: error, reactor: reactor.name, events: batch.length, from: batch[0]!.position }, 'batch reaction failed for good; handling its events one at a time');
      for (const event of batch) {
        await this.react(reactor, event, signal);
        if (signal.aborted) return;
      }
    }
  }

  /**
   * Handles the event: a transient failure is tried again, with backoff, until it succeeds or the reactor stops;
   * any other failure parks the event. Resolves once the event is handled or parked, so the checkpoint may pass it.
   */
  private async react(reactor: Reactor, event: RecordedEvent, signal: AbortSignal): Promise<void> {
    const { logger } = this.options;
    await reaction(reactor, event, async (span) => {
      try {
        await retrying(() => reactor.handle(event, signal), {
          backoff: { baseMs: this.options.retryBaseMs ?? 200, maxMs: this.options.retryMaxMs ?? 30_000 },
          retryable: (error) => classifyFailure(error) === 'transient',
          signal,
          onRetry: ({ error, attempt, delayMs }) => {
            span.addEvent('retry', { attempt, 'retry_in_ms': delayMs, 'error': error instanceof Error ? error.message : String(error) });
            logger.warn({ err: error, reactor: reactor.name, event: event.id, type: event.type, attempt, retryInMs: delayMs }, 'reaction failed; trying again');
          },
        });
      } catch (error) {
        if (error instanceof RetryAborted || signal.aborted) return;
        failed(span, error);
        await this.park(reactor, event, error);
      }
    });
  }

  /** Sets the event aside, says so (a bug with its stack), and counts it; a failure to park fails the reactor, which starts again from its checkpoint. */
  private async park(reactor: Reactor, event: RecordedEvent, error: unknown): Promise<void> {
    const kind = classifyFailure(error) === 'bug' ? 'bug' : 'permanent';
    const message = error instanceof Error ? error.message : String(error);
    await this.knex(PARKED)
      .insert({
        reactor: reactor.name,
        event_id: event.id,
        event_stream: event.stream,
        event_type: event.type,
        event_position: event.position,
        kind,
        error: message,
      })
      .onConflict(['reactor', 'event_id'])
      .merge({ kind, error: message, failures: this.knex.raw(`${PARKED}.failures + 1`), retry_requested_at: null });
    const fields = { reactor: reactor.name, event: event.id, type: event.type, stream: event.stream, kind };
    if (kind === 'bug') this.options.logger.error({ ...fields, err: error, stack: error instanceof Error ? error.stack : undefined }, 'reaction failed on a bug; event parked');
    else this.options.logger.warn({ ...fields, err: error }, 'reaction failed for good; event parked');
    this.metrics?.park(reactor.name, kind);
  }

  /** While the reactor follows the log: tries again, once each, the parked events someone asked to be retried. */
  private retryWhenAsked(reactor: Reactor, signal: AbortSignal): { stop(): Promise<void> } {
    let round: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      round = round.then(() => this.retryRequested(reactor, signal)).catch((error: unknown) =>
        this.options.logger.warn({ err: error, reactor: reactor.name }, 'cannot retry parked events; trying again later'),
      );
    }, this.options.parkedPollMs ?? 5000);
    timer.unref();
    return {
      async stop() {
        clearInterval(timer);
        await round;
      },
    };
  }

  private async retryRequested(reactor: Reactor, signal: AbortSignal): Promise<void> {
    const asked = ((await this.knex(PARKED).where({ reactor: reactor.name }).whereNotNull('retry_requested_at').orderBy('id').select('*')) as ParkedRow[]).map(toParked);
    for (const parked of asked) {
      if (signal.aborted) return;
      const event = (await this.store.readStream(parked.stream)).find((candidate) => candidate.id === parked.eventId);
      try {
        if (!event) throw new PermanentFailure(`event ${parked.eventId} is no longer in stream ${parked.stream}`);
        await reaction(reactor, event, () => reactor.handle(event, signal));
        await this.knex(PARKED).where({ id: parked.id }).delete();
        this.options.logger.info({ reactor: reactor.name, event: parked.eventId, parked: parked.id }, 'parked event handled on retry');
      } catch (error) {
        if (signal.aborted) return;
        const kind = classifyFailure(error) === 'bug' ? 'bug' : parked.kind;
        const message = error instanceof Error ? error.message : String(error);
        await this.knex(PARKED)
          .where({ id: parked.id })
          .update({ kind, error: message, failures: this.knex.raw('failures + 1'), retry_requested_at: null });
        this.options.logger.warn({ err: error, reactor: reactor.name, event: parked.eventId, parked: parked.id, kind }, 'parked event failed again on retry');
      }
    }
  }
}

/**
 * A reactor's handling of one event, in a span that continues the event's trace: the span of the command that
 * appended it. What the reaction does (Kubernetes calls, the commands it sends) is traced under it.
 */
function reaction(reactor: Reactor, event: RecordedEvent, work: (span: Span) => Promise<void>): Promise<void> {
  return inSpan(`react ${event.type}`, {
    kind: SpanKind.CONSUMER,
    parent: contextFrom(event.metadata.traceparent),
    attributes: {
      'sentinel.reactor': reactor.name,
      'sentinel.event.id': event.id,
      'sentinel.event.type': event.type,
      'sentinel.stream': event.stream,
      'sentinel.position': event.position,
    },
  }, work);
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
const DEFAULT_MAX_BATCH = 500;

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
