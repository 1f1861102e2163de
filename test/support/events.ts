// Builders for events in tests.
import { randomUUID } from 'node:crypto';
import type { EventStore, EventToAppend, Position, RecordedEvent } from '../../domain/event-store.js';
import { eventually } from './eventually.js';

export function anEvent(type = 'SomethingHappened', data: Record<string, unknown> = {}): EventToAppend {
  return { id: randomUUID(), type, data, metadata: { correlationId: randomUUID(), actor: { id: 'test', kind: 'system' } } };
}

export function events(count: number, type = 'SomethingHappened'): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => anEvent(type, { i }));
}

export function uniqueStream(category = 'test'): string {
  return `${category}-${randomUUID()}`;
}

/** Collects from a subscription until `count` events arrived or `timeoutMs` passed. */
export async function collect(
  subscription: AsyncIterable<RecordedEvent> & { close(): Promise<void> },
  count: number,
  timeoutMs = 20_000,
): Promise<RecordedEvent[]> {
  const received: RecordedEvent[] = [];
  const timer = setTimeout(() => void subscription.close(), timeoutMs);
  try {
    if (count === 0) return received;
    for await (const event of subscription) {
      received.push(event);
      if (received.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
    await subscription.close();
  }
  return received;
}

/**
 * Waits until nothing ordered before `position` can still commit, so that reads and counts see all of it: on a
 * shared PostgreSQL server, a transaction in any other database holds the visible horizon back for a moment.
 */
export async function settled(store: Pick<EventStore, 'isSettled'>, position: Position): Promise<void> {
  await eventually('the append to settle', () => store.isSettled(position), (done) => done, 10_000);
}

/**
 * Waits until every event appended to `store` so far is visible to reads, for a test that appends and then reads the
 * log once (a projection driven by hand): a transaction open in another database on the same PostgreSQL server, such
 * as one of another test file running beside this one, would otherwise hide the newest events from that one read.
 */
export async function allVisible(store: { unsettled(): Promise<{ events: number }> }): Promise<void> {
  await eventually('every append to become visible', () => store.unsettled(), ({ events }) => events === 0, 10_000);
}
