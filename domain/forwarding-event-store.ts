// An event store that hands every call to another: the base of wrappers that change one or two calls (caches
// that must hear of deletions, tests that get in the way of an append) and pass the rest through.
import type { EventStore } from './event-store.js';

export class ForwardingEventStore implements EventStore {
  constructor(protected readonly inner: EventStore) {}

  append(...args: Parameters<EventStore['append']>): ReturnType<EventStore['append']> {
    return this.inner.append(...args);
  }
  appendMany(...args: Parameters<EventStore['appendMany']>): ReturnType<EventStore['appendMany']> {
    return this.inner.appendMany(...args);
  }
  readStream(...args: Parameters<EventStore['readStream']>): ReturnType<EventStore['readStream']> {
    return this.inner.readStream(...args);
  }
  readAll(...args: Parameters<EventStore['readAll']>): ReturnType<EventStore['readAll']> {
    return this.inner.readAll(...args);
  }
  countAfter(...args: Parameters<EventStore['countAfter']>): ReturnType<EventStore['countAfter']> {
    return this.inner.countAfter(...args);
  }
  isSettled(...args: Parameters<EventStore['isSettled']>): ReturnType<EventStore['isSettled']> {
    return this.inner.isSettled(...args);
  }
  subscribe(...args: Parameters<EventStore['subscribe']>): ReturnType<EventStore['subscribe']> {
    return this.inner.subscribe(...args);
  }
  getStreamMetadata(...args: Parameters<EventStore['getStreamMetadata']>): ReturnType<EventStore['getStreamMetadata']> {
    return this.inner.getStreamMetadata(...args);
  }
  setStreamMetadata(...args: Parameters<EventStore['setStreamMetadata']>): ReturnType<EventStore['setStreamMetadata']> {
    return this.inner.setStreamMetadata(...args);
  }
  deleteStream(...args: Parameters<EventStore['deleteStream']>): ReturnType<EventStore['deleteStream']> {
    return this.inner.deleteStream(...args);
  }
  ping(): ReturnType<EventStore['ping']> {
    return this.inner.ping();
  }
  close(): ReturnType<EventStore['close']> {
    return this.inner.close();
  }
}
