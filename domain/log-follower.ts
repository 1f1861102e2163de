// Follows the event log under a lease, for the projection runtime and the reactor runtime alike: one active
// instance per name across processes, standbys that try again, a restart after a failure, the lease confirmed after
// each checkpoint, and a clean stop. It lives in domain/ because it needs only ports (EventStore, Lease) and the
// clock: projections/ and reactors/ both build on it, and neither imports the other.
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventFilter, EventStore, Position, RecordedEvent, SubscribeOptions, Subscription } from './event-store.js';
import type { Lease } from './lease.js';

/** Lag counts stop at this many events: saying "more than 10,000 behind" needs no more. */
export const LAG_COUNT_LIMIT = 10_000;

/** How far a follower trails the log. */
export interface Lag {
  /** Events it reads after its checkpoint (counted up to LAG_COUNT_LIMIT). */
  events: number;
  /** Age of the oldest of them; 0 when it is caught up. */
  seconds: number;
}

/** The lease was lost while following: another instance may be following in this one's place. */
export class LeaseLost extends Error {
  override name = 'LeaseLost';
}

export interface FollowUnderLease {
  lease: Lease;
  /** The lease's name: one active follower of this name across every process. */
  name: string;
  /** Stops following: `follow` is expected to return soon after, and the loop then ends. */
  signal: AbortSignal;
  /** How often a standby tries for the lease (1 s when not given). */
  standbyRetryMs?: number;
  /**
   * Whether the lease is kept through a failure and the wait before trying again (the projection runtime, which
   * then goes on from its own checkpoint at once), or let go after each (the reactor runtime, whose reactor is
   * stopped and started again). Let go in any case when the loop ends.
   */
  keepLeaseOnFailure?: boolean;
  /** Before each try for the lease. */
  trying?(): void;
  /** When the lease is held by another instance; the next try comes after `standbyRetryMs`. */
  standby?(): void;
  /** With the lease held: follows the log until the signal aborts (resolves) or something goes wrong (throws). */
  follow(held: Held): Promise<void>;
  /** After `follow` threw (and the signal is not aborted): how long to wait before going again. */
  failed(error: unknown): number;
  /** Before the lease is let go, after holding it. */
  letGo?(): Promise<void>;
}

/** What a follower holding the lease is given. */
export interface Held {
  /** Throws LeaseLost once the lease is no longer held; called after each checkpoint moves. */
  confirm(): Promise<void>;
  /** A subscription that is closed as soon as the signal aborts, so a follower waiting on it stops at once. */
  subscribe(store: EventStore, options: SubscribeOptions): Subscription;
}

/**
 * Tries for the lease until it is held, follows the log while it is, and goes again after a failure; resolves
 * once the signal aborts and the lease is let go.
 */
export async function followUnderLease(options: FollowUnderLease): Promise<void> {
  const { lease, name, signal } = options;
  const held: Held = {
    async confirm() {
      if (!(await lease.stillHeld(name))) throw new LeaseLost(`lost the lease on ${name}`);
    },
    subscribe: (store, subscribeOptions) => closedOnAbort(store.subscribe(subscribeOptions), signal),
  };
  let holding = false;
  try {
    while (!signal.aborted) {
      try {
        options.trying?.();
        holding = await lease.tryAcquire(name);
        if (!holding) {
          options.standby?.();
          await pause(options.standbyRetryMs ?? 1000, signal);
          continue;
        }
        await options.follow(held);
      } catch (error) {
        if (signal.aborted) break;
        await pause(options.failed(error), signal);
      } finally {
        if (holding && (!options.keepLeaseOnFailure || signal.aborted)) {
          holding = false;
          await letGo(options);
        }
      }
    }
  } finally {
    if (holding) await letGo(options);
  }
}

async function letGo(options: FollowUnderLease): Promise<void> {
  await options.letGo?.();
  await options.lease.release(options.name).catch(() => undefined);
}

/** Waits `ms`, or less when the signal aborts first; never throws. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}

function closedOnAbort(subscription: Subscription, signal: AbortSignal): Subscription {
  const close = () => void subscription.close().catch(() => undefined);
  // Aborted while it was being opened: closed at once, and the loop over it ends before its first event.
  if (signal.aborted) close();
  else signal.addEventListener('abort', close, { once: true });
  return {
    [Symbol.asyncIterator]: () => subscription[Symbol.asyncIterator](),
    async close() {
      signal.removeEventListener('abort', close);
      await subscription.close();
    },
  };
}

/**
 * How far a follower at `after` trails the log. Counted by the store, never by reading the events: a follower far
 * behind on a log of large events must not load thousands of them to say so. The age takes the one oldest event.
 */
export async function lagAfter(store: EventStore, after: Position | undefined, filter: EventFilter | undefined): Promise<Lag> {
  const [events, next] = await Promise.all([
    store.countAfter(after, { filter, limit: LAG_COUNT_LIMIT }),
    store.readAll({ after, filter, limit: 1 }),
  ]);
  const oldest = events > 0 ? next.events[0] : undefined;
  return { events, seconds: oldest ? Math.max(0, (Date.now() - oldest.recordedAt.getTime()) / 1000) : 0 };
}

/** Groups a subscription's events: whatever has arrived together, up to `max`, goes in one batch. */
export async function* batchesOf(subscription: Subscription, max: number): AsyncGenerator<RecordedEvent[]> {
  const iterator = subscription[Symbol.asyncIterator]();
  const idle = Symbol('idle');
  let pending = iterator.next();
  for (;;) {
    const first = await pending;
    if (first.done) return;
    const batch = [first.value];
    pending = iterator.next();
    while (batch.length < max) {
      const next = await Promise.race([pending, new Promise<typeof idle>((resolve) => setImmediate(() => resolve(idle)))]);
      if (next === idle) break;
      if (next.done) {
        yield batch;
        return;
      }
      batch.push(next.value);
      pending = iterator.next();
    }
    yield batch;
  }
}
