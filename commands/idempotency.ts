// Idempotency-Key: a retried write with the same key and body gets the first answer and changes nothing.
import { createHash } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';

export interface StoredResponse {
  status: number;
  body: unknown;
}

export interface IdempotencyRecord {
  requestHash: string;
  startedAt: Date;
  /** Absent while the first request is still running (or died before answering). */
  response?: StoredResponse;
}

export interface IdempotencyStore {
  /** Claims the key for a request; returns the earlier record instead when the key was claimed before. */
  claim(principalId: string, key: string, requestHash: string): Promise<IdempotencyRecord | undefined>;
  /** Takes over a claim that has stood unanswered since `startedAt`; false when someone else moved it first. */
  takeOver(principalId: string, key: string, startedAt: Date): Promise<boolean>;
  complete(principalId: string, key: string, response: StoredResponse): Promise<void>;
  /** Forgets a claim whose request failed in a way worth retrying. */
  release(principalId: string, key: string): Promise<void>;
  /** Deletes records started before `before`; returns how many. */
  purge(before: Date): Promise<number>;
}

/** The key was used before for a different request. */
export class IdempotencyKeyReused extends Error {
  override name = 'IdempotencyKeyReused';
  constructor(readonly key: string) {
    super(`Idempotency-Key "${key}" was already used with a different request; use a new key for a new request`);
  }
}

/** The first request with this key has not answered yet. */
export class IdempotencyKeyInFlight extends Error {
  override name = 'IdempotencyKeyInFlight';
  constructor(
    readonly key: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`a request with Idempotency-Key "${key}" is still in progress; retry after it answers`);
  }
}

export interface IdempotentRequest {
  principalId: string;
  key: string;
  requestHash: string;
}

export interface IdempotencyOptions {
  /** A claim unanswered for this long is taken to belong to a request that died, and is taken over. */
  abandonedAfterMs?: number;
}

const NAMESPACE = '5c1f1e9e-6a35-4c39-9a55-3b1b7a0a8f11';

/** Ids derived from the key, so the retry of a request that died mid-way writes the very same events. */
export function derivedIds(request: IdempotentRequest) {
  const seed = `${request.principalId}\u0000${request.key}\u0000`;
  return {
    resourceId: uuidv5(`${seed}resource`, NAMESPACE),
    eventIds: (index: number) => uuidv5(`${seed}event\u0000${index}`, NAMESPACE),
  };
}

export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n${canonicalJson(body)}`).digest('hex');
}

/**
 * Runs `execute` once per key. Answers that will be the same on a retry (success, 4xx) are kept and
 * replayed; a conflict or server error releases the key so the retry runs again.
 */
export async function once(
  store: IdempotencyStore,
  request: IdempotentRequest,
  execute: () => Promise<StoredResponse>,
  options: IdempotencyOptions = {},
): Promise<StoredResponse & { replayed: boolean }> {
  const abandonedAfterMs = options.abandonedAfterMs ?? 30_000;
  const earlier = await store.claim(request.principalId, request.key, request.requestHash);
  if (earlier) {
    if (earlier.requestHash !== request.requestHash) throw new IdempotencyKeyReused(request.key);
    if (earlier.response) return { ...earlier.response, replayed: true };
    const age = Date.now() - earlier.startedAt.getTime();
    if (age < abandonedAfterMs || !(await store.takeOver(request.principalId, request.key, earlier.startedAt))) {
      throw new IdempotencyKeyInFlight(request.key, Math.max(1, Math.ceil((abandonedAfterMs - age) / 1000)));
    }
  }
  let response: StoredResponse;
  try {
    response = await execute();
  } catch (error) {
    await store.release(request.principalId, request.key);
    throw error;
  }
  if (response.status === 409 || response.status >= 500) await store.release(request.principalId, request.key);
  else await store.complete(request.principalId, request.key, response);
  return { ...response, replayed: false };
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
