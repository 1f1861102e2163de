// Field ownership, simplified from server-side apply: which manager set each leaf field, what each applier applied last,
// and the conflicts an apply without `force` must refuse.
import { isDeepStrictEqual } from 'node:util';
import { applyMerge, formatPath, mergeKeyFor, type PathSegment } from './patch.js';
import { isRecord, type KubeObject } from './types.js';

interface Leaf {
  path: PathSegment[];
  id: string;
  value: unknown;
}

/** Top-level and metadata fields that belong to the system, not to any manager. */
const UNOWNED_TOP_LEVEL = new Set(['apiVersion', 'kind', 'metadata', 'status']);
const OWNED_METADATA = ['labels', 'annotations', 'ownerReferences', 'finalizers'];

function pathId(path: PathSegment[]): string {
  return JSON.stringify(path);
}

/** The leaf fields of an object that managers can own: lists merged by key are descended into, other lists are atomic. */
export function leaves(object: unknown): Leaf[] {
  const out: Leaf[] = [];
  const walk = (value: unknown, path: PathSegment[]) => {
    const field = typeof path[path.length - 1] === 'string' ? (path[path.length - 1] as string) : undefined;
    const key = mergeKeyFor(field);
    if (isRecord(value) && Object.keys(value).length > 0) {
      for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
    } else if (Array.isArray(value) && key && value.length > 0 && value.every((item) => isRecord(item) && item[key] !== undefined)) {
      for (const item of value as Record<string, unknown>[]) walk(item, [...path, { key, value: String(item[key]) }]);
    } else {
      out.push({ path, id: pathId(path), value });
    }
  };
  if (!isRecord(object)) return out;
  for (const [k, v] of Object.entries(object)) {
    if (!UNOWNED_TOP_LEVEL.has(k)) walk(v, [k]);
  }
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  for (const k of OWNED_METADATA) if (metadata[k] !== undefined) walk(metadata[k], ['metadata', k]);
  return out;
}

/** The part of an object managers can own; a write that leaves it alone (a status write) moves no ownership. */
function ownable(object: KubeObject): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(object)) if (!UNOWNED_TOP_LEVEL.has(k)) view[k] = v;
  const metadata = object.metadata as unknown as Record<string, unknown>;
  for (const k of OWNED_METADATA) view[`metadata.${k}`] = metadata[k];
  return view;
}

function startsWith(path: PathSegment[], prefix: PathSegment[]): boolean {
  return prefix.every((segment, i) => isDeepStrictEqual(segment, path[i]));
}

export interface ApplyConflict {
  manager: string;
  field: string;
}

export class ApplyConflictError extends Error {
  constructor(readonly conflicts: ApplyConflict[]) {
    super(
      `Apply failed with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}: ` +
        conflicts.map((c) => `conflict with "${c.manager}": ${c.field}`).join(', '),
    );
    this.name = 'ApplyConflictError';
  }
}

interface Ownership {
  /** Leaf path id → the managers that own it, with the path itself for prefix queries. */
  owners: Map<string, { path: PathSegment[]; managers: Set<string> }>;
  /** What each manager applied last, so a field it stops applying can be removed. */
  lastApplied: Map<string, unknown>;
}

export class FieldManager {
  private readonly byUid = new Map<string, Ownership>();

  private of(uid: string): Ownership {
    let entry = this.byUid.get(uid);
    if (!entry) {
      entry = { owners: new Map(), lastApplied: new Map() };
      this.byUid.set(uid, entry);
    }
    return entry;
  }

  forget(uid: string): void {
    this.byUid.delete(uid);
  }

  /**
   * The object that applying `applied` as `manager` over `live` gives (live undefined: a create). Throws
   * ApplyConflictError when, without force, it would change a field another manager owns.
   */
  apply(uid: string | undefined, manager: string, live: KubeObject | undefined, applied: KubeObject, force: boolean): KubeObject {
    const ownership = uid ? this.of(uid) : undefined;
    const others = (path: PathSegment[]) =>
      [...(ownership?.owners.values() ?? [])].some(
        (o) => startsWith(o.path, path) && [...o.managers].some((m) => m !== manager),
      );
    if (live && ownership && !force) {
      const conflicts: ApplyConflict[] = [];
      const liveLeaves = new Map(leaves(live).map((l) => [l.id, l.value]));
      for (const leaf of leaves(applied)) {
        const owners = ownership.owners.get(leaf.id);
        if (!owners || !liveLeaves.has(leaf.id) || isDeepStrictEqual(liveLeaves.get(leaf.id), leaf.value)) continue;
        for (const other of owners.managers) if (other !== manager) conflicts.push({ manager: other, field: formatPath(leaf.path) });
      }
      if (conflicts.length > 0) throw new ApplyConflictError(conflicts);
    }
    const last = ownership?.lastApplied.get(manager);
    return applyMerge(live ?? {}, applied, last, [], others) as KubeObject;
  }

  /** After a successful apply: the manager owns every field it applied, alone where it changed or forced it. */
  recordApply(uid: string, manager: string, before: KubeObject | undefined, after: KubeObject, applied: KubeObject): void {
    const ownership = this.of(uid);
    const beforeLeaves = new Map(leaves(before ?? {}).map((l) => [l.id, l.value]));
    const appliedIds = new Set<string>();
    for (const leaf of leaves(applied)) {
      appliedIds.add(leaf.id);
      const entry = ownership.owners.get(leaf.id);
      const unchanged = beforeLeaves.has(leaf.id) && isDeepStrictEqual(beforeLeaves.get(leaf.id), leaf.value);
      if (entry && unchanged) entry.managers.add(manager);
      else ownership.owners.set(leaf.id, { path: leaf.path, managers: new Set([manager]) });
    }
    for (const [id, entry] of ownership.owners) {
      if (!appliedIds.has(id)) entry.managers.delete(manager);
    }
    ownership.lastApplied.set(manager, structuredClone(applied));
    this.prune(ownership, after);
  }

  /** After any other write: the writer takes sole ownership of every field it changed. */
  recordUpdate(uid: string, manager: string, before: KubeObject | undefined, after: KubeObject): void {
    if (before && isDeepStrictEqual(ownable(before), ownable(after))) return;
    const ownership = this.of(uid);
    const beforeLeaves = new Map(leaves(before ?? {}).map((l) => [l.id, l.value]));
    for (const leaf of leaves(after)) {
      if (beforeLeaves.has(leaf.id) && isDeepStrictEqual(beforeLeaves.get(leaf.id), leaf.value)) continue;
      ownership.owners.set(leaf.id, { path: leaf.path, managers: new Set([manager]) });
    }
    this.prune(ownership, after);
  }

  /** Forgets owners of fields that are gone and entries nobody owns any more. */
  private prune(ownership: Ownership, object: KubeObject): void {
    const present = new Set(leaves(object).map((l) => l.id));
    for (const [id, entry] of ownership.owners) {
      if (!present.has(id) || entry.managers.size === 0) ownership.owners.delete(id);
    }
  }
}
