// The object store: every object by resource, one global resourceVersion counter, and the bounded change history watches resume from.
import type { KubeObject } from './types.js';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One committed write. `previous` is the object before it, so a filtered watch can tell an object leaving its filter. */
export interface Change {
  revision: number;
  resource: string;
  type: ChangeType;
  object: KubeObject;
  previous?: KubeObject;
}

export type ChangeListener = (change: Change) => void;

/** Asked to resume from a revision the bounded history no longer reaches. */
export class HistoryExpired extends Error {
  constructor(
    readonly requested: number,
    readonly oldest: number,
  ) {
    super(`too old resource version: ${requested} (${oldest})`);
    this.name = 'HistoryExpired';
  }
}

/** Stored objects are frozen and handed out as they are: a reader that wants to change one copies it first. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}

export class ObjectStore {
  private revision = 0;
  /** resource → namespace ('' when cluster-scoped) → name → object. */
  private readonly objects = new Map<string, Map<string, Map<string, KubeObject>>>();
  private readonly history: Change[] = [];
  /** The newest revision that has fallen out of the history; resuming needs a revision at or after it. */
  private compactedThrough = 0;
  private readonly listeners = new Set<ChangeListener>();

  constructor(private readonly historyLimit: number) {}

  currentRevision(): number {
    return this.revision;
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(resource)?.get(namespace ?? '')?.get(name);
  }

  /** Objects of a resource, in one namespace or all, in namespace/name order. */
  list(resource: string, namespace?: string): KubeObject[] {
    const byNamespace = this.objects.get(resource);
    if (!byNamespace) return [];
    const namespaces = namespace === undefined ? [...byNamespace.keys()].sort() : [namespace];
    const out: KubeObject[] = [];
    for (const ns of namespaces) {
      const byName = byNamespace.get(ns);
      if (!byName) continue;
      for (const name of [...byName.keys()].sort()) out.push(byName.get(name)!);
    }
    return out;
  }

  /** Stores a new object under the next revision; the caller has checked it does not exist yet. */
  create(resource: string, object: KubeObject): KubeObject {
    const stored = this.stamp(object);
    this.bucket(resource, stored.metadata.namespace).set(stored.metadata.name!, stored);
    this.commit({ resource, type: 'ADDED', object: stored });
    return stored;
  }

  /** Replaces an existing object under the next revision; the caller has checked that it changed. */
  update(resource: string, object: KubeObject): KubeObject {
    const bucket = this.bucket(resource, object.metadata.namespace);
    const previous = bucket.get(object.metadata.name!);
    const stored = this.stamp(object);
    bucket.set(stored.metadata.name!, stored);
    this.commit({ resource, type: 'MODIFIED', object: stored, ...(previous ? { previous } : {}) });
    return stored;
  }

  /** Removes an object; the DELETED change carries its last state under the revision of the deletion. */
  delete(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const bucket = this.bucket(resource, namespace);
    const previous = bucket.get(name);
    if (!previous) return undefined;
    bucket.delete(name);
    const gone = this.stamp(previous);
    this.commit({ resource, type: 'DELETED', object: gone, previous });
    return gone;
  }

  /** The changes after `revision`, oldest first; HistoryExpired when some of them are no longer kept. */
  changesSince(revision: number): Change[] {
    if (revision < this.compactedThrough) {
      throw new HistoryExpired(revision, this.history[0]?.revision ?? this.revision + 1);
    }
    return this.history.filter((c) => c.revision > revision);
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private bucket(resource: string, namespace: string | undefined): Map<string, KubeObject> {
    let byNamespace = this.objects.get(resource);
    if (!byNamespace) {
      byNamespace = new Map();
      this.objects.set(resource, byNamespace);
    }
    let byName = byNamespace.get(namespace ?? '');
    if (!byName) {
      byName = new Map();
      byNamespace.set(namespace ?? '', byName);
    }
    return byName;
  }

  private stamp(object: KubeObject): KubeObject {
    this.revision += 1;
    const stamped = structuredClone(object);
    stamped.metadata.resourceVersion = String(this.revision);
    return deepFreeze(stamped);
  }

  private commit(change: Omit<Change, 'revision'>): void {
    const full: Change = { ...change, revision: Number(change.object.metadata.resourceVersion) };
    this.history.push(full);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift()!;
      this.compactedThrough = dropped.revision;
    }
    for (const listener of [...this.listeners]) listener(full);
  }
}
