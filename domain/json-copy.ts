// A value as it reads back from JSON, made without writing and parsing the text: what is recorded (a policy
// decision, an admission) is kept in memory as the store will give it back, and the round trip through text cost a
// command more than anything else in its decision.

/**
 * `JSON.parse(JSON.stringify(value))`, the same value for every input: plain objects and arrays of strings, numbers,
 * booleans and null are copied directly; a value holding anything else (a `toJSON`, a class instance, a bigint, a
 * `__proto__` key, nesting deep enough to be a cycle) takes the round trip through text, whole, so that the answer
 * (or the error) never differs.
 */
export function jsonCopy<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    try {
      return copied(value, 0) as T;
    } catch (error) {
      if (error !== UNUSUAL) throw error;
    }
  }
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Thrown from anywhere in the copy: the value holds something only the round trip gets exactly right. */
const UNUSUAL = Symbol('unusual');

/** Deeper than this, the round trip decides (and reports a cycle as JSON does). */
const MAX_DEPTH = 64;

function copied(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      // JSON writes NaN and the infinities as null, and -0 as 0.
      return Number.isFinite(value) ? value + 0 : null;
    case 'object':
      break;
    default:
      throw UNUSUAL;
  }
  if (value === null) return null;
  if (depth >= MAX_DEPTH) throw UNUSUAL;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) throw UNUSUAL;
    const out: unknown[] = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i += 1) {
      const item: unknown = value[i];
      // In an array, what JSON cannot write becomes null.
      out[i] = item === undefined || typeof item === 'function' || typeof item === 'symbol' ? null : copied(item, depth + 1);
    }
    return out;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if ((prototype !== Object.prototype && prototype !== null) || 'toJSON' in value) throw UNUSUAL;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (key === '__proto__') throw UNUSUAL;
    const item: unknown = (value as Record<string, unknown>)[key];
    // In an object, a member JSON cannot write is left out.
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    out[key] = copied(item, depth + 1);
  }
  return out;
}
