// Canonical JSON: the one text of a JSON value that the audit trail's hash chain is taken over.

/**
 * JSON with every object's keys sorted (recursively) and undefined members dropped: one text per value.
 *
 * The text is exactly `JSON.stringify` of the value with each object's members re-inserted in sorted key order,
 * which is how stored chains were hashed, so it must never change (see `canonicalOrder` for what "sorted" then
 * means). The value is first put in canonical order and then written by `JSON.stringify` itself, rather than
 * through a replacer that runs for every member and copies every object: the audit trail writes every event it
 * records. Only the objects (and the arrays holding them) whose order changes are copied.
 *
 * Like `JSON.stringify`, it returns undefined for a top-level undefined, function or symbol and throws a
 * TypeError for a BigInt. Takes JSON data (acyclic).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(inCanonicalOrder(value, ''));
}

/**
 * The value with every object's members in canonical order: the value itself where that order holds already,
 * else a copy. `key` is where the value sits in its parent, as `toJSON` (a Date's) is told.
 */
function inCanonicalOrder(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return inCanonicalOrder((value as { toJSON(key: string): unknown }).toJSON(key), key);
  return Array.isArray(value) ? arrayInOrder(value) : objectInOrder(value as Record<string, unknown>);
}

function arrayInOrder(array: readonly unknown[]): readonly unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < array.length; i++) {
    const element: unknown = array[i];
    const ordered = inCanonicalOrder(element, String(i));
    if (copy === undefined && ordered !== element) copy = array.slice(0, i);
    copy?.push(ordered);
  }
  return copy ?? array;
}

function objectInOrder(object: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(object);
  const order = canonicalOrder(keys);
  const prototype: unknown = Object.getPrototypeOf(object);
  // A Date, a boxed string or any other kind of object is written as its own members, like a plain object.
  const plain = prototype === Object.prototype || prototype === null;
  let copy: Record<string, unknown> | undefined = order === keys && plain ? undefined : {};
  for (let i = 0; i < order.length; i++) {
    const member = object[order[i]!];
    const ordered = inCanonicalOrder(member, order[i]!);
    if (copy === undefined && ordered !== member) {
      copy = {};
      for (const earlier of order.slice(0, i)) define(copy, earlier, object[earlier]);
    }
    if (copy !== undefined) define(copy, order[i]!, ordered);
  }
  return copy ?? object;
}

/** Adds a member; a "__proto__" key becomes an ordinary member, not the copy's prototype. */
function define(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  else object[key] = value;
}

/**
 * The keys sorted by UTF-16 code units, or `keys` itself when they already are. Canonical order is the order in
 * which an object lists keys inserted sorted, which is what the chain was first hashed over: a JavaScript object
 * lists array-index keys ("9", "10") first, by value, then the others in insertion order. The copy is made by
 * inserting in this order, so it lists its keys exactly so; an object whose own listing is already sorted lists
 * them the same way and is kept.
 */
function canonicalOrder(keys: string[]): string[] {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return [...keys].sort();
  return keys;
}
