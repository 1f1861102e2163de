// Names, hashes and timestamps in the forms Kubernetes gives them.
import { randomInt } from 'node:crypto';

/** The alphabet Kubernetes draws generated name suffixes and template hashes from (no vowels, no look-alikes). */
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function randomSuffix(length = 5): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

/** JSON with object keys sorted, so equal objects hash equally whatever order their keys came in. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Stored templates are frozen, so a template object always hashes the same and controllers resync every pass. */
const hashes = new WeakMap<object, string>();

/** FNV-1a over the stable JSON, written in the safe alphabet: the shape of a `pod-template-hash`. */
export function templateHash(template: unknown): string {
  const cacheable = template !== null && typeof template === 'object' && Object.isFrozen(template);
  const cached = cacheable ? hashes.get(template) : undefined;
  if (cached) return cached;
  const hash = computeHash(template);
  if (cacheable) hashes.set(template, hash);
  return hash;
}

function computeHash(template: unknown): string {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(stableJson(template ?? {}))) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  let out = '';
  let rest = hash;
  do {
    out += ALPHABET[rest % ALPHABET.length];
    rest = Math.floor(rest / ALPHABET.length);
  } while (rest > 0);
  return out;
}

/** RFC 3339 with second precision, as metav1.Time serialises. */
export function timestamp(ms: number = Date.now()): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
