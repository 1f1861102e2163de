// The controllers' event recorder: core/v1 Events written as client-go's recorder writes them, correlated the same
// way (a burst per object then one every five minutes, similar events combined, identical ones counted), and capped.
import { timestamp } from './naming.js';
import type { Registry } from './registry.js';
import { EVENTS, NAMESPACES } from './resources.js';
import type { KubeObject } from './types.js';

export interface EventSource {
  component: string;
  /** The node, for a kubelet's events. */
  host?: string;
}

export interface EventNote {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** The part of the object the event is about, e.g. `spec.containers{main}`. */
  fieldPath?: string;
}

/** client-go's spam filter: each source may say this much about one object at once, then one event per refill. */
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 5 * 60 * 1000;
/** client-go's aggregator: this many similar events (same object and reason, other messages) within the window are combined. */
const SIMILAR_LIMIT = 10;
const SIMILAR_WINDOW_MS = 10 * 60 * 1000;
const COMBINED_PREFIX = '(combined from similar events): ';
/** The recorder's caches are LRUs of this size, as client-go's are, so a long run does not grow them without bound. */
const CACHE_SIZE = 4096;

interface Bucket {
  tokens: number;
  at: number;
}

interface Similar {
  messages: Set<string>;
  at: number;
}

/** A Map that forgets its least recently used entries beyond `size`. */
class Lru<V> {
  private readonly entries = new Map<string, V>();
  constructor(private readonly size: number) {}

  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.size) this.entries.delete(this.entries.keys().next().value!);
  }
}

export class EventRecorder {
  private readonly buckets = new Lru<Bucket>(CACHE_SIZE);
  private readonly similar = new Lru<Similar>(CACHE_SIZE);
  /** Correlation key → the stored event's namespace/name. */
  private readonly written = new Lru<{ namespace: string; name: string }>(CACHE_SIZE);
  /** Every event the recorder has stored, least recently written first, for the cap. */
  private readonly kept = new Map<string, { namespace: string; name: string }>();
  private sequence = 0;

  /** `limit`: how many events are kept at most; past it the least recently written go first. */
  constructor(
    private readonly registry: Registry,
    private readonly limit: number,
  ) {}

  /** Records that `source` saw `note` about `object`; a repeat becomes a higher count on the event already stored. */
  record(source: EventSource, object: KubeObject, note: EventNote, now: number = Date.now()): void {
    const meta = object.metadata;
    const kind = object.kind ?? '';
    const involvedObject = {
      kind,
      ...(meta.namespace ? { namespace: meta.namespace } : {}),
      name: meta.name!,
      uid: meta.uid!,
      apiVersion: object.apiVersion ?? '',
      resourceVersion: meta.resourceVersion ?? '',
      ...(note.fieldPath ? { fieldPath: note.fieldPath } : {}),
    };
    const objectKey = [source.component, source.host ?? '', kind, meta.namespace ?? '', meta.name, meta.uid, note.fieldPath ?? ''].join('\u0000');
    // The reason is part of the spam key so that one noisy decision (a refused create retried every pass) does not
    // silence the others a controller reports about the same object.
    if (!this.allow(`${objectKey}\u0000${note.reason}`, now)) return;

    const similarKey = [objectKey, note.type, note.reason].join('\u0000');
    let similar = this.similar.get(similarKey);
    if (!similar || now - similar.at > SIMILAR_WINDOW_MS) similar = { messages: new Set(), at: now };
    similar.messages.add(note.message);
    similar.at = now;
    this.similar.set(similarKey, similar);
    const combined = similar.messages.size >= SIMILAR_LIMIT;
    const message = combined ? `${COMBINED_PREFIX}${note.message}` : note.message;
    const key = combined ? similarKey : `${similarKey}\u0000${note.message}`;

    const namespace = meta.namespace || 'default';
    // The API server refuses new content in a namespace that is gone; a pod killed with its namespace reports nothing.
    if (!this.registry.find(NAMESPACES, undefined, namespace)) return;
    const at = timestamp(now);
    const previous = this.written.get(key);
    const stored = previous && this.registry.find(EVENTS, previous.namespace, previous.name);
    if (stored) {
      const next: KubeObject = { ...stored, message, count: Number(stored.count ?? 1) + 1, lastTimestamp: at, involvedObject };
      this.registry.update(EVENTS, previous.namespace, previous.name, next, { manager: source.component, internal: true });
      this.keep(previous);
      return;
    }
    const name = `${meta.name}.${(BigInt(now) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16)}`;
    const event: KubeObject = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject,
      reason: note.reason,
      message,
      source: { component: source.component, ...(source.host ? { host: source.host } : {}) },
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
      type: note.type,
      eventTime: null,
      reportingComponent: source.component,
      reportingInstance: source.host ?? '',
    };
    this.registry.create(EVENTS, namespace, event, { manager: source.component, internal: true });
    this.written.set(key, { namespace, name });
    this.keep({ namespace, name });
  }

  /** The spam filter's token bucket for one source and object. */
  private allow(key: string, now: number): boolean {
    const bucket = this.buckets.get(key) ?? { tokens: SPAM_BURST, at: now };
    bucket.tokens = Math.min(SPAM_BURST, bucket.tokens + (now - bucket.at) / SPAM_REFILL_MS);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Marks an event as just written and, past the limit, deletes the least recently written ones. */
  private keep(ref: { namespace: string; name: string }): void {
    const id = `${ref.namespace}/${ref.name}`;
    this.kept.delete(id);
    this.kept.set(id, ref);
    if (this.kept.size <= this.limit) return;
    // Events a client or a namespace deletion removed no longer count against the limit.
    for (const [key, kept] of this.kept) if (!this.registry.find(EVENTS, kept.namespace, kept.name)) this.kept.delete(key);
    while (this.kept.size > this.limit) {
      const [oldest, kept] = this.kept.entries().next().value!;
      this.kept.delete(oldest);
      this.registry.delete(EVENTS, kept.namespace, kept.name);
    }
  }
}
