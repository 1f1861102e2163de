// Durable timers for every reactor: a timer is scheduled as a `TimerScheduled` event in its own stream; the one active
// timer service keeps the pending ones in memory, earliest first, records `TimerFired` when each falls due, and hands
// each firing to the handler its owner registered, through the reactor runtime.
//
// What is guaranteed, precisely:
// - A timer is recorded as fired at most once, never before its due time, and never once a cancel is recorded: the
//   firing is appended at the revision it was decided on, with an id derived from the schedule, so two instances (or a
//   firing and a cancel) are told apart by the store and a retried append recognises itself.
// - It fires when the active service sees it due: at its due time, or, when it fell due while no service ran, as soon
//   as one starts (late by the downtime; `sentinel_timer_lateness_seconds` says by how much).
// - The handler is called at least once per firing: the runtime hands it the `TimerFired` event and moves its
//   checkpoint only after the handler returns, so a crash in between, a transient failure or a lease handover calls it
//   again. A handler that sends its commands with `reactionTo(owner, cause, step)` gets event ids derived from the
//   firing, so a second call appends nothing: the effect is recorded exactly once. Effects outside the log (a cluster
//   call) must be idempotent in themselves.
// - A cancel wins only when it is recorded before the firing; `cancel` says which came first.
import type { Logger } from 'pino';
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { z } from 'zod';
import { RetryAborted, retrying } from '../adapters/retry.js';
import { systemClock, type Clock } from '../commands/clock.js';
import type { Aggregate, CommandContext, CommandHandler, WriteResult } from '../commands/command-handler.js';
import { DomainError, InvalidTransition, RuleViolation } from '../domain/decider.js';
import { comparePositions, type Position, type RecordedEvent } from '../domain/event-store.js';
import { timerDecider, timerEvents, timerOwner, type Timer, type TimerCommand, type TimerEvent } from '../domain/timer.js';
import { classifyFailure, PermanentFailure } from './failures.js';
import { reactionTo } from './reaction-context.js';
import { everyEventOf, type Reactor } from './reactor-runtime.js';

/** The timer with id X lives in stream `timer-X`. */
export const timers: Aggregate<TimerCommand, TimerEvent, Timer> = { category: 'timer', decider: timerDecider, events: timerEvents };

/** The timer service's name in the reactor runtime: its checkpoint, its lease, and the source of its firings. */
export const TIMER_SERVICE = 'timers';

/** Time as the timer service reads it. Tests pass a clock they move by hand. */
export interface TimerClock extends Clock {
  /**
   * Calls `wake` once, at `at` or soon after (at once when `at` has passed); returns what cancels the call. It may
   * also come early (a wait longer than a timeout can be): the service looks at the time again when woken.
   */
  wakeAt(at: Date, wake: () => void): () => void;
}

/** The longest delay `setTimeout` takes; a later wake-up comes early, and the service waits again. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemTimerClock: TimerClock = {
  now: () => systemClock.now(),
  wakeAt(at, wake) {
    const timeout = setTimeout(wake, Math.min(Math.max(0, at.getTime() - Date.now()), MAX_TIMEOUT_MS));
    // The service's stop() cancels it; a pending wake-up alone keeps no process alive.
    timeout.unref();
    return () => clearTimeout(timeout);
  },
};

/** A timer that fired, as its owner's handler gets it. */
export interface FiredTimer<Payload> {
  timerId: string;
  owner: string;
  dueAt: string;
  firedAt: string;
  payload: Payload;
}

/** What an owner registers: the shape of what its timers carry, and what to do when one fires. */
export interface TimerHandler<Payload> {
  /** Checked when a timer is scheduled and again when it fires. */
  payload: z.ZodType<Payload>;
  /**
   * Called at least once for each firing, in the active instance; `cause` is the `TimerFired` event, for
   * `reactionTo`. It should send its commands and return: a firing waits in its lane (as a reactor's event does) until
   * it returns. What it throws is judged as any reactor failure is: a transient failure is tried again, any other
   * parks the firing, to be retried by hand.
   */
  fire(timer: FiredTimer<Payload>, cause: RecordedEvent, signal: AbortSignal): Promise<void>;
}

/** One owner's timers: what a reactor schedules and cancels through. */
export interface OwnedTimers<Payload> {
  /**
   * Scheduling the same timer again records nothing; another due time or payload under the same id is refused
   * (`InvalidTransition`). A due time already past fires at once.
   */
  schedule(timer: { timerId: string; dueAt: Date; payload: Payload }, context: CommandContext): Promise<WriteResult>;
  /**
   * `Cancelled`, or `Fired` when the firing was recorded first (its handler runs, or has run). Throws `NotFound` for
   * a timer never scheduled, and `RuleViolation` for another owner's.
   */
  cancel(timerId: string, reason: string | undefined, context: CommandContext): Promise<'Cancelled' | 'Fired'>;
}

export interface TimerServiceOptions {
  logger: Logger;
  /** The system clock when absent. */
  clock?: TimerClock;
  /** Where `sentinel_timers_pending` and `sentinel_timer_lateness_seconds` are registered, when given. */
  registry?: Registry;
  /** Backoff between attempts at recording a firing the store refused: doubling from base to max. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/** A scheduled timer the service waits on. */
interface Pending {
  timerId: string;
  owner: string;
  /** Epoch milliseconds. */
  due: number;
  /** The `TimerScheduled` event: what the firing's ids are derived from, and its position orders equal due times. */
  scheduled: RecordedEvent;
}

export class TimerService implements Reactor {
  readonly name = TIMER_SERVICE;
  readonly eventTypes = timerEvents.types;
  private readonly owners = new Map<string, TimerHandler<unknown>>();
  private readonly queue = new DueQueue();
  private readonly clock: TimerClock;
  private readonly lateness: Histogram<'owner'> | undefined;
  /** The last event the scan at start folded in: `handle` gets those again from the runtime's checkpoint on. */
  private scannedTo: Position | undefined;
  /** Ends this instance's firing on `stop()`, also when the runtime's signal stays live (a lost lease). */
  private lifetime = new AbortController();
  private signal: AbortSignal = this.lifetime.signal;
  private disarm: (() => void) | undefined;
  /** The timer the clock will wake the service for. */
  private armedFor: Pending | undefined;
  /** Firing rounds, one after another. */
  private firing: Promise<void> = Promise.resolve();

  constructor(
    private readonly handler: CommandHandler,
    private readonly options: TimerServiceOptions,
  ) {
    this.clock = options.clock ?? systemTimerClock;
    if (options.registry) {
      const queue = this.queue;
      new Gauge({
        name: 'sentinel_timers_pending',
        help: 'Timers this instance waits on (scheduled, neither fired nor cancelled); 0 on a standby',
        registers: [options.registry],
        collect() {
          this.set(queue.size);
        },
      });
      this.lateness = new Histogram({
        name: 'sentinel_timer_lateness_seconds',
        help: 'How long after its due time a timer was recorded as fired, by owner: large after a downtime',
        labelNames: ['owner'],
        buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600],
        registers: [options.registry],
      });
    }
  }

  /**
   * Registers the handler of `owner`'s timers, and answers what schedules them. Register every owner before the
   * service is added to the runtime: a firing for an owner with no handler is parked.
   */
  register<Payload extends Record<string, unknown>>(owner: string, handler: TimerHandler<Payload>): OwnedTimers<Payload> {
    const name = timerOwner.safeParse(owner);
    if (!name.success) throw new Error(`timer owner ${JSON.stringify(owner)} is not a valid name: ${name.error.issues[0]!.message}`);
    if (this.owners.has(owner)) throw new Error(`timer owner ${owner} is already registered`);
    this.owners.set(owner, handler as TimerHandler<unknown>);
    return {
      schedule: async ({ timerId, dueAt, payload }, context) => {
        if (Number.isNaN(dueAt.getTime())) throw new RuleViolation(`timer ${timerId}: dueAt is not a date`, [{ path: 'dueAt', message: 'a valid Date' }]);
        // Compared with what is stored when scheduled again, so as it reads back: checked, then as JSON.
        const stored = JSON.parse(JSON.stringify(handler.payload.parse(payload))) as Record<string, unknown>;
        const command: TimerCommand = { type: 'ScheduleTimer', timerId, owner, dueAt: dueAt.toISOString(), payload: stored, at: this.now() };
        return this.handler.execute(timers, timerId, command, context);
      },
      cancel: async (timerId, reason, context) => {
        const command: TimerCommand = { type: 'CancelTimer', timerId, owner, at: this.now(), ...(reason === undefined ? {} : { reason }) };
        try {
          await this.handler.execute(timers, timerId, command, context);
          return 'Cancelled';
        } catch (error) {
          if (error instanceof InvalidTransition && error.status === 'Fired') return 'Fired';
          throw error;
        }
      },
    };
  }

  /** Timers this instance waits on now. */
  pending(): number {
    return this.queue.size;
  }

  /** Events of one timer in order; different timers side by side, so a slow handler holds up only its own. */
  keyOf(event: RecordedEvent): string {
    return event.stream;
  }

  /** Once the lease is held: every timer still scheduled, from the whole log, and the first wake-up. */
  async start(signal: AbortSignal): Promise<void> {
    this.lifetime = new AbortController();
    this.signal = AbortSignal.any([signal, this.lifetime.signal]);
    this.queue.clear();
    this.scannedTo = undefined;
    // A timer's events come in its stream's order, so scheduled-then-settled folds to nothing left.
    for await (const event of everyEventOf(this.handler.store, [...timerEvents.types])) {
      this.follow(event);
      this.scannedTo = event.position;
    }
    this.options.logger.info({ pending: this.queue.size }, 'timers pending');
    this.arm();
  }

  async handle(event: RecordedEvent, signal: AbortSignal): Promise<void> {
    const folded = this.scannedTo !== undefined && comparePositions(event.position, this.scannedTo) <= 0;
    if (!folded) {
      this.follow(event);
      this.arm();
    }
    if (event.type === 'TimerFired') await this.deliver(event, signal);
  }

  async stop(): Promise<void> {
    this.lifetime.abort();
    this.disarm?.();
    this.disarm = undefined;
    this.armedFor = undefined;
    await this.firing;
    this.queue.clear();
  }

  /** Keeps the queue in step with one timer event. */
  private follow(event: RecordedEvent): void {
    const parsed = timerEvents.parse(event.type, event.schemaVersion, event.data);
    if (parsed.type !== 'TimerScheduled') {
      this.queue.remove(parsed.data.timerId);
      return;
    }
    const { timerId, owner, dueAt } = parsed.data;
    this.queue.add({ timerId, owner, due: Date.parse(dueAt), scheduled: event });
  }

  /** Waits for the earliest pending timer, unless that is what it waits for already. */
  private arm(): void {
    const next = this.queue.first();
    if (next === this.armedFor && next !== undefined) return;
    this.disarm?.();
    this.disarm = undefined;
    this.armedFor = undefined;
    if (!next || this.signal.aborted) return;
    this.armedFor = next;
    this.disarm = this.clock.wakeAt(new Date(next.due), () => {
      this.armedFor = undefined;
      this.firing = this.firing
        .then(() => this.fireDue())
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'timer firing round failed; due timers wait for the next timer event or a restart'));
    });
  }

  /** Fires every timer that is due, earliest first, then waits for the next one. */
  private async fireDue(): Promise<void> {
    for (let next = this.queue.first(); next && next.due <= this.clock.now().getTime(); next = this.queue.first()) {
      if (this.signal.aborted) return;
      try {
        await this.fire(next);
      } catch (error) {
        if (error instanceof RetryAborted || this.signal.aborted) return;
        // It stays scheduled in the log, and the next start tries it again.
        this.options.logger.error({ err: error, timerId: next.timerId, owner: next.owner }, 'timer cannot be fired; it is left scheduled');
      }
      this.queue.remove(next.timerId);
    }
    this.arm();
  }

  /** Records the firing, trying again while the store refuses; recording nothing means a cancel or another instance came first. */
  private async fire(timer: Pending): Promise<void> {
    const context = reactionTo(TIMER_SERVICE, timer.scheduled, 'fire');
    const { logger } = this.options;
    const written = await retrying(
      () => this.handler.execute(timers, timer.timerId, { type: 'FireTimer', timerId: timer.timerId, at: this.now() }, context),
      {
        backoff: { baseMs: this.options.retryBaseMs ?? 200, maxMs: this.options.retryMaxMs ?? 30_000 },
        // A domain error (the timer's stream was deleted) or a bug would fail the same way again.
        retryable: (error) => !(error instanceof DomainError) && classifyFailure(error) === 'transient',
        signal: this.signal,
        onRetry: ({ error, attempt, delayMs }) => logger.warn({ err: error, timerId: timer.timerId, attempt, retryInMs: delayMs }, 'timer firing not recorded; trying again'),
      },
    );
    if (written.appended > 0) this.lateness?.observe({ owner: timer.owner }, Math.max(0, this.clock.now().getTime() - timer.due) / 1000);
  }

  /** Hands a firing to its owner's handler, with the timer as its stream holds it. */
  private async deliver(event: RecordedEvent, signal: AbortSignal): Promise<void> {
    const { timerId } = timerEvents.parse(event.type, event.schemaVersion, event.data).data;
    const { state } = await this.handler.loadState(timers, timerId);
    if (state.status !== 'Fired') throw new PermanentFailure(`timer ${timerId} fired (event ${event.id}), but its stream reads ${state.status}`);
    const registered = this.owners.get(state.owner);
    if (!registered) throw new PermanentFailure(`timer ${timerId} fired for ${state.owner}, which registered no handler in this process`);
    const payload = registered.payload.parse(state.payload);
    await registered.fire({ timerId, owner: state.owner, dueAt: state.dueAt, firedAt: state.firedAt, payload }, event, signal);
  }

  private now(): string {
    return this.clock.now().toISOString();
  }
}

/** The pending timers, earliest due first, equal due times in the order they were scheduled; one entry per timer. */
class DueQueue {
  private readonly byId = new Map<string, Pending>();
  private readonly ordered: Pending[] = [];

  get size(): number {
    return this.ordered.length;
  }

  first(): Pending | undefined {
    return this.ordered[0];
  }

  add(timer: Pending): void {
    if (this.byId.has(timer.timerId)) return;
    this.byId.set(timer.timerId, timer);
    this.ordered.splice(this.placeOf(timer), 0, timer);
  }

  remove(timerId: string): void {
    const timer = this.byId.get(timerId);
    if (!timer) return;
    this.byId.delete(timerId);
    this.ordered.splice(this.placeOf(timer), 1);
  }

  clear(): void {
    this.byId.clear();
    this.ordered.length = 0;
  }

  /** The index of the first timer not due before `timer`: where it is, or where it goes. */
  private placeOf(timer: Pending): number {
    let low = 0;
    let high = this.ordered.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (dueBefore(this.ordered[middle]!, timer)) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

function dueBefore(a: Pending, b: Pending): boolean {
  return a.due < b.due || (a.due === b.due && comparePositions(a.scheduled.position, b.scheduled.position) < 0);
}
