// The four PATCH flavours: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902) and the merge behind server-side apply.
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { ApiError, badRequest } from './api-error.js';
import { isRecord } from './types.js';

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

/**
 * The lists Kubernetes merges item by item in a strategic merge patch, by field name and the key that identifies an
 * item (the `patchMergeKey` of the Go types). Every other list is replaced whole, as the API does for atomic lists.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  imagePullSecrets: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  ports: 'containerPort',
  conditions: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
};

/** Lists of plain values that a strategic merge patch unions instead of replacing. */
const MERGED_PRIMITIVE_LISTS = new Set(['finalizers']);

export function mergeKeyFor(field: string | undefined): string | undefined {
  return field === undefined ? undefined : MERGE_KEYS[field];
}

/** RFC 7386: objects merge key by key, null deletes, everything else (lists included) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** Drops `$patch`, `$retainKeys`, `$setElementOrder/...` and other directives from what ends up stored. */
function withoutDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => !(isRecord(v) && Object.keys(v).every((k) => k.startsWith('$')))).map(withoutDirectives);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) if (!key.startsWith('$')) out[key] = withoutDirectives(v);
  return out;
}

/**
 * Strategic merge patch: a merge patch in which the lists named in MERGE_KEYS merge by their key, `$patch: delete`
 * removes an item or a map, `$patch: replace` replaces a map or a list, and finalizers are unioned.
 */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') return withoutDirectives(patch);
  const result: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) {
      delete result[key];
    } else if (Array.isArray(value) && mergeKeyFor(key)) {
      result[key] = mergeKeyedList(result[key], value, mergeKeyFor(key)!);
    } else if (Array.isArray(value) && MERGED_PRIMITIVE_LISTS.has(key)) {
      const existing = Array.isArray(result[key]) ? (result[key] as unknown[]) : [];
      result[key] = [...existing, ...value.filter((v) => !existing.includes(v))];
    } else if (isRecord(value)) {
      if (value.$patch === 'delete') delete result[key];
      else result[key] = strategicMergePatch(result[key], value);
    } else {
      result[key] = structuredClone(value);
    }
  }
  return result;
}

function mergeKeyedList(target: unknown, patch: unknown[], key: string): unknown[] {
  if (patch.some((item) => isRecord(item) && item.$patch === 'replace')) {
    return withoutDirectives(patch) as unknown[];
  }
  const out = Array.isArray(target) ? [...(target as unknown[])] : [];
  for (const item of patch) {
    if (!isRecord(item) || item[key] === undefined) {
      out.push(structuredClone(item));
      continue;
    }
    const index = out.findIndex((existing) => isRecord(existing) && existing[key] === item[key]);
    if (item.$patch === 'delete') {
      if (index >= 0) out.splice(index, 1);
    } else if (index >= 0) {
      out[index] = strategicMergePatch(out[index], item);
    } else {
      out.push(withoutDirectives(item));
    }
  }
  return out;
}

/** RFC 6902 through fast-json-patch; a malformed patch is 400, one that does not apply is 422 as in the API server. */
export function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw badRequest('json patch must be a list of operations');
  try {
    return jsonpatch.applyPatch(structuredClone(target), patch as Operation[], true, false).newDocument;
  } catch (error) {
    if (error instanceof jsonpatch.JsonPatchError) {
      const malformed = ['SEQUENCE_NOT_AN_ARRAY', 'OPERATION_NOT_AN_OBJECT', 'OPERATION_OP_INVALID', 'OPERATION_PATH_INVALID', 'OPERATION_FROM_REQUIRED', 'OPERATION_VALUE_REQUIRED'];
      if (malformed.includes(error.name)) throw badRequest(`invalid json patch: ${error.message.split('\n')[0]}`);
      throw new ApiError(422, `the server rejected our request due to an error in our request: ${error.message.split('\n')[0]}`, 'Invalid');
    }
    throw error;
  }
}

/** One step of a field path: a map key, or the item of a keyed list that has `key` equal to `value`. */
export type PathSegment = string | { key: string; value: string };

export function formatPath(path: PathSegment[]): string {
  return path.map((s) => (typeof s === 'string' ? `.${s}` : `[${s.key}=${JSON.stringify(s.value)}]`)).join('');
}

/**
 * The merge behind server-side apply: the applied configuration is laid over the live object, keyed lists merge by
 * key, and what this manager applied last time but leaves out now is removed, unless another manager also owns it.
 */
export function applyMerge(
  live: unknown,
  applied: unknown,
  lastApplied: unknown,
  path: PathSegment[],
  ownedByOthers: (path: PathSegment[]) => boolean,
): unknown {
  if (isRecord(applied)) {
    const result: Record<string, unknown> = isRecord(live) ? { ...live } : {};
    const last = isRecord(lastApplied) ? lastApplied : {};
    for (const [key, value] of Object.entries(applied)) {
      result[key] = applyMerge(result[key], value, last[key], [...path, key], ownedByOthers);
    }
    for (const key of Object.keys(last)) {
      if (!(key in applied) && !ownedByOthers([...path, key])) delete result[key];
    }
    return result;
  }
  const field = typeof path[path.length - 1] === 'string' ? (path[path.length - 1] as string) : undefined;
  const key = mergeKeyFor(field);
  if (Array.isArray(applied) && key && applied.every((item) => isRecord(item) && typeof item[key] !== 'undefined')) {
    const liveItems = Array.isArray(live) ? (live as unknown[]) : [];
    const lastItems = Array.isArray(lastApplied) ? (lastApplied as unknown[]) : [];
    const idOf = (item: unknown) => (isRecord(item) ? String(item[key]) : undefined);
    const result: unknown[] = [];
    for (const item of applied) {
      const id = idOf(item)!;
      const liveItem = liveItems.find((l) => idOf(l) === id);
      const lastItem = lastItems.find((l) => idOf(l) === id);
      result.push(applyMerge(liveItem, item, lastItem, [...path, { key, value: id }], ownedByOthers));
    }
    for (const liveItem of liveItems) {
      const id = idOf(liveItem);
      if (id === undefined || applied.some((a) => idOf(a) === id)) continue;
      const wasApplied = lastItems.some((l) => idOf(l) === id);
      if (!wasApplied || ownedByOthers([...path, { key, value: id }])) result.push(liveItem);
    }
    return result;
  }
  return structuredClone(applied);
}
