// The API server's write path over the store: create, update and delete with defaulting, validation, generation,
// preconditions, quotas, field ownership and garbage collection, shared by the HTTP handlers and the controllers.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { applyDefaults, validate } from './admission.js';
import { alreadyExists, ApiError, badRequest, conflict, invalid, notFound } from './api-error.js';
import { ApplyConflictError, FieldManager } from './field-manager.js';
import { randomSuffix, timestamp } from './naming.js';
import { isTerminal, podGpus } from './pods.js';
import { apiVersionOf, NAMESPACES, PODS, RESOURCES, resourceKey, type ResourceDef } from './resources.js';
import type { ObjectStore } from './store.js';
import type { KubeObject, Pod } from './types.js';

export interface Quota {
  pods?: number;
  gpus?: number;
}

export interface WriteOptions {
  /** The field manager the write is recorded under. */
  manager: string;
  dryRun?: boolean;
  /** 'status' writes only the status; any other write keeps the stored status, unless `internal`. */
  subresource?: 'status';
  /** A controller's write: it may change status and spec together. */
  internal?: boolean;
}

export interface ApplyOptions {
  manager: string;
  force: boolean;
  dryRun?: boolean;
}

export type Propagation = 'Foreground' | 'Background' | 'Orphan';

export interface WriteResult {
  object: KubeObject;
  changed: boolean;
  created: boolean;
}

/** Fields the server owns: whatever a client sends for them is replaced by the stored values. */
function keepSystemMetadata(next: KubeObject, current: KubeObject): void {
  next.metadata.uid = current.metadata.uid;
  next.metadata.creationTimestamp = current.metadata.creationTimestamp;
  if (current.metadata.generation !== undefined) next.metadata.generation = current.metadata.generation;
  else delete next.metadata.generation;
  if (current.metadata.deletionTimestamp) next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
  else delete next.metadata.deletionTimestamp;
  delete next.metadata.managedFields;
}

/** No-op detection: equal in everything a write could have changed (all but resourceVersion and managedFields). */
function sameObject(a: KubeObject, b: KubeObject): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    if (key === 'metadata') continue;
    if (!isDeepStrictEqual(a[key], b[key])) return false;
  }
  const { resourceVersion: _a, managedFields: _am, ...metaA } = a.metadata;
  const { resourceVersion: _b, managedFields: _bm, ...metaB } = b.metadata;
  return isDeepStrictEqual(metaA, metaB);
}

export class Registry {
  private readonly quotas = new Map<string, Quota>();
  readonly fields = new FieldManager();
  /** Called after every committed write, so controllers can react sooner than their next tick. */
  onWrite: () => void = () => {};

  constructor(readonly store: ObjectStore) {}

  setQuota(namespace: string, quota: Quota): void {
    this.quotas.set(namespace, quota);
  }

  /** Reads hand out the stored, frozen objects; copy one before changing it. */
  find(def: ResourceDef, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.store.get(resourceKey(def), def.namespaced ? namespace : undefined, name);
  }

  get(def: ResourceDef, namespace: string | undefined, name: string): KubeObject {
    const found = this.find(def, namespace, name);
    if (!found) throw notFound(def, name);
    return found;
  }

  list(def: ResourceDef, namespace?: string): KubeObject[] {
    return this.store.list(resourceKey(def), def.namespaced ? namespace : undefined);
  }

  /** Namespaces exist as soon as something names them, as if an administrator had made them beforehand. */
  ensureNamespace(namespace: string): void {
    if (this.find(NAMESPACES, undefined, namespace)) return;
    const ns: KubeObject = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: namespace, uid: randomUUID(), creationTimestamp: timestamp(), labels: { 'kubernetes.io/metadata.name': namespace } },
    };
    applyDefaults(NAMESPACES, ns);
    this.store.create(resourceKey(NAMESPACES), ns);
  }

  create(def: ResourceDef, namespace: string | undefined, body: KubeObject, options: WriteOptions): WriteResult {
    const sent = structuredClone(body);
    const object = structuredClone(body);
    object.apiVersion = apiVersionOf(def);
    object.kind = def.kind;
    object.metadata = { ...object.metadata };
    if (def.namespaced) {
      if (object.metadata.namespace && object.metadata.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      object.metadata.namespace = namespace;
    } else {
      delete object.metadata.namespace;
    }
    if (!object.metadata.name && object.metadata.generateName) {
      object.metadata.name = `${object.metadata.generateName}${randomSuffix()}`;
    }
    const name = object.metadata.name ?? '';
    if (name && this.find(def, namespace, name)) throw alreadyExists(def, name);
    delete object.metadata.resourceVersion;
    delete object.metadata.managedFields;
    delete object.metadata.deletionTimestamp;
    object.metadata.uid = randomUUID();
    object.metadata.creationTimestamp = timestamp();
    if (def.tracksGeneration) object.metadata.generation = 1;
    else delete object.metadata.generation;
    if (!options.internal) {
      // Status is the controllers' to write; a client's create cannot set it.
      delete object.status;
      if (def === PODS) object.status = { phase: 'Pending' };
    }
    if (!name) throw invalid(def, name, [{ field: 'metadata.name', message: 'Required value: name or generateName is required', type: 'FieldValueRequired' }]);
    applyDefaults(def, object);
    validate(def, object, undefined, sent);
    if (def === PODS) this.admitPod(object as Pod);
    if (options.dryRun) return { object, changed: false, created: true };
    if (def.namespaced) this.ensureNamespace(namespace!);
    const stored = this.store.create(resourceKey(def), object);
    this.fields.recordUpdate(stored.metadata.uid!, options.manager, undefined, stored);
    this.onWrite();
    return { object: stored, changed: true, created: true };
  }

  /**
   * Writes `next` over the stored object. A write that changes nothing is not stored and keeps the resourceVersion;
   * a `metadata.resourceVersion` in `next` that is not the stored one is a 409 Conflict.
   */
  update(def: ResourceDef, namespace: string | undefined, name: string, next: KubeObject, options: WriteOptions): WriteResult {
    const current = this.get(def, namespace, name);
    // Controllers resync every pass; most of their writes change nothing and need no further work.
    if (options.internal && sameObject(next, current)) return { object: current, changed: false, created: false };
    const object = this.prepareUpdate(def, current, next, options);
    return this.commitUpdate(def, current, object, options, () =>
      this.fields.recordUpdate(current.metadata.uid!, options.manager, current, object),
    );
  }

  /** Server-side apply: merges `applied` into the stored object (creating it if absent) as field manager `manager`. */
  apply(def: ResourceDef, namespace: string | undefined, name: string, applied: KubeObject, options: ApplyOptions): WriteResult {
    if (applied.metadata?.name !== undefined && applied.metadata.name !== name) {
      throw badRequest(`the name of the object (${applied.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (def.namespaced && applied.metadata?.namespace !== undefined && applied.metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const body = { ...applied, metadata: { ...applied.metadata, name } };
    const current = this.find(def, namespace, name);
    if (!current) {
      const merged = this.fields.apply(undefined, options.manager, undefined, body, options.force);
      const created = this.create(def, namespace, merged, { manager: options.manager, ...(options.dryRun ? { dryRun: true } : {}) });
      if (!options.dryRun) this.fields.recordApply(created.object.metadata.uid!, options.manager, undefined, created.object, body);
      return created;
    }
    const merged = this.applyOver(def, name, current, body, options);
    const object = this.prepareUpdate(def, current, merged, { manager: options.manager });
    return this.commitUpdate(def, current, object, { manager: options.manager, ...(options.dryRun ? { dryRun: true } : {}) }, () =>
      this.fields.recordApply(current.metadata.uid!, options.manager, current, object, body),
    );
  }

  /** The apply merge over the live object; a conflict with another manager is 409 Conflict, one cause per field. */
  private applyOver(def: ResourceDef, name: string, current: KubeObject, body: KubeObject, options: ApplyOptions): KubeObject {
    try {
      return this.fields.apply(current.metadata.uid, options.manager, current, body, options.force);
    } catch (error) {
      if (!(error instanceof ApplyConflictError)) throw error;
      throw new ApiError(409, error.message, 'Conflict', {
        name,
        group: def.group,
        kind: def.plural,
        causes: error.conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}"`, field: c.field })),
      });
    }
  }

  private prepareUpdate(def: ResourceDef, current: KubeObject, next: KubeObject, options: WriteOptions): KubeObject {
    const name = current.metadata.name!;
    if (next.metadata?.name !== undefined && next.metadata.name !== name) {
      throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (def.namespaced && next.metadata?.namespace && next.metadata.namespace !== current.metadata.namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const wanted = next.metadata?.resourceVersion;
    if (wanted !== undefined && wanted !== '' && wanted !== current.metadata.resourceVersion) throw conflict(def, name);
    let object: KubeObject;
    if (options.subresource === 'status') {
      object = { ...structuredClone(current), status: structuredClone(next.status) };
    } else {
      object = structuredClone(next);
      object.metadata = { ...object.metadata, name, ...(def.namespaced ? { namespace: current.metadata.namespace } : {}) };
      if (!options.internal) {
        if (current.status === undefined) delete object.status;
        else object.status = structuredClone(current.status);
      }
    }
    object.apiVersion = apiVersionOf(def);
    object.kind = def.kind;
    keepSystemMetadata(object, current);
    applyDefaults(def, object);
    validate(def, object, current);
    if (def.tracksGeneration && !isDeepStrictEqual(current.spec, object.spec)) {
      object.metadata.generation = (current.metadata.generation ?? 0) + 1;
    }
    return object;
  }

  private commitUpdate(def: ResourceDef, current: KubeObject, object: KubeObject, options: WriteOptions, record: () => void): WriteResult {
    if (sameObject(object, current)) {
      // Nothing to store, but an apply of the same values still takes (shared) ownership of them.
      if (!options.dryRun) record();
      return { object: current, changed: false, created: false };
    }
    if (options.dryRun) return { object: { ...object, metadata: { ...object.metadata, resourceVersion: current.metadata.resourceVersion } }, changed: true, created: false };
    const stored = this.store.update(resourceKey(def), object);
    record();
    this.onWrite();
    return { object: stored, changed: true, created: false };
  }

  /**
   * Deletes an object. Dependents (pods owned through ownerReferences) are deleted with it, before it for Foreground
   * and right after it for Background; Orphan strips their ownerReferences instead.
   */
  delete(def: ResourceDef, namespace: string | undefined, name: string, propagation: Propagation = 'Background', dryRun = false): KubeObject {
    const current = this.get(def, namespace, name);
    if (dryRun) return current;
    const uid = current.metadata.uid!;
    if (propagation === 'Orphan') this.orphanDependents(uid);
    if (propagation === 'Foreground') this.deleteDependents(uid);
    const gone = this.store.delete(resourceKey(def), def.namespaced ? namespace : undefined, name)!;
    this.fields.forget(uid);
    if (propagation === 'Background') this.deleteDependents(uid);
    if (def === NAMESPACES) this.deleteNamespaceContents(name);
    this.onWrite();
    return gone;
  }

  /** The garbage collector's pass: deletes objects whose controlling owner no longer exists. */
  collectGarbage(): void {
    const live = new Set<string>();
    for (const def of RESOURCES) for (const o of this.list(def)) live.add(o.metadata.uid!);
    for (const pod of this.list(PODS)) {
      const owners = pod.metadata.ownerReferences ?? [];
      if (owners.length > 0 && owners.every((o) => !live.has(o.uid))) {
        this.delete(PODS, pod.metadata.namespace, pod.metadata.name!);
      }
    }
  }

  private dependents(uid: string): KubeObject[] {
    return this.list(PODS).filter((p) => p.metadata.ownerReferences?.some((o) => o.uid === uid));
  }

  private deleteDependents(uid: string): void {
    for (const pod of this.dependents(uid)) {
      if (this.find(PODS, pod.metadata.namespace, pod.metadata.name!)) this.delete(PODS, pod.metadata.namespace, pod.metadata.name!);
    }
  }

  private orphanDependents(uid: string): void {
    for (const pod of this.dependents(uid)) {
      const next = structuredClone(pod);
      next.metadata.ownerReferences = (next.metadata.ownerReferences ?? []).filter((o) => o.uid !== uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      this.update(PODS, pod.metadata.namespace, pod.metadata.name!, next, { manager: 'garbage-collector', internal: true });
    }
  }

  private deleteNamespaceContents(namespace: string): void {
    for (const def of RESOURCES) {
      if (!def.namespaced) continue;
      for (const o of this.list(def, namespace)) {
        if (this.find(def, namespace, o.metadata.name!)) this.delete(def, namespace, o.metadata.name!);
      }
    }
  }

  /** The ResourceQuota admission check: refuses a pod that would take the namespace past its quota (403 Forbidden). */
  private admitPod(pod: Pod): void {
    const namespace = pod.metadata.namespace!;
    const quota = this.quotas.get(namespace);
    if (!quota) return;
    const active = (this.list(PODS, namespace) as Pod[]).filter((p) => !isTerminal(p));
    const refuse = (resource: string, requested: number, used: number, limit: number) =>
      new ApiError(
        403,
        `pods "${pod.metadata.name}" is forbidden: exceeded quota: sim-quota, requested: ${resource}=${requested}, used: ${resource}=${used}, limited: ${resource}=${limit}`,
        'Forbidden',
        { name: pod.metadata.name!, kind: 'pods' },
      );
    if (quota.pods !== undefined && active.length + 1 > quota.pods) throw refuse('pods', 1, active.length, quota.pods);
    const gpus = podGpus(pod);
    if (quota.gpus !== undefined && gpus > 0) {
      const used = active.reduce((sum, p) => sum + podGpus(p), 0);
      if (used + gpus > quota.gpus) throw refuse('requests.nvidia.com/gpu', gpus, used, quota.gpus);
    }
  }
}
