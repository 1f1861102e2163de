// What the router refuses before a route runs, each in time linear in the request and without recursion:
// JSON nested too deep, text no store could keep, control characters in query and path parameters.

/** Deepest nesting of arrays and objects a JSON body may have; no Sentinel body comes near it. */
export const MAX_JSON_DEPTH = 64;
/** Most members one array or object of a JSON body may have; no Sentinel body comes near it either. */
export const MAX_JSON_MEMBERS = 1000;

const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

/**
 * Which limit UTF-8 JSON bytes break, if any, found by one pass over the bytes before `JSON.parse`: a body
 * nested too deep, or with so many members that validating them all would take long, is refused before it is
 * parsed or walked. In UTF-8 no byte of a multi-byte character is ASCII, so brackets and commas inside strings
 * are told apart by the quotes alone. Malformed JSON is left for the parser to refuse.
 */
export function jsonLimitBroken(bytes: Uint8Array): 'depth' | 'members' | undefined {
  const commas = new Uint32Array(MAX_JSON_DEPTH + 1);
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === COMMA) {
      if (++commas[depth]! >= MAX_JSON_MEMBERS) return 'members';
    } else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
      if (++depth > MAX_JSON_DEPTH) return 'depth';
      commas[depth] = 0;
    } else if ((byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) && depth > 0) {
      depth--;
    }
  }
  return undefined;
}

// NUL and unpaired surrogates are valid in a JSON string but not in PostgreSQL text or jsonb.
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The path of a string (key or value) that no store could keep, if there is one; walks with its own stack. */
export function unstorableText(root: unknown): string[] | undefined {
  interface Visit {
    value: object;
    key: string | number;
    parent: Visit | undefined;
  }
  const pathOf = (visit: Visit, last: string | number): string[] => {
    const path = [String(last)];
    for (let at: Visit | undefined = visit; at.parent !== undefined; at = at.parent) path.push(String(at.key));
    return path.reverse();
  };
  if (typeof root === 'string') return UNSTORABLE.test(root) ? [] : undefined;
  if (root === null || typeof root !== 'object') return undefined;
  const pending: Visit[] = [{ value: root, key: '', parent: undefined }];
  // Strings are looked at where they are found, and only objects are queued: a wide array costs no allocations.
  const look = (visit: Visit, key: string | number, inner: unknown): string[] | undefined => {
    if (typeof inner === 'string') return UNSTORABLE.test(inner) ? pathOf(visit, key) : undefined;
    if (inner !== null && typeof inner === 'object') pending.push({ value: inner, key, parent: visit });
    return undefined;
  };
  while (pending.length > 0) {
    const visit = pending.pop()!;
    const { value } = visit;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const found = look(visit, i, value[i]);
        if (found) return found;
      }
      continue;
    }
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      if (UNSTORABLE.test(key)) return pathOf(visit, key);
      const found = look(visit, key, (value as Record<string, unknown>)[key]);
      if (found) return found;
    }
  }
  return undefined;
}

/** Control characters (C0, DEL, C1) and unpaired surrogates: nothing a query or path parameter means. */
const UNACCEPTABLE_PARAMETER = /[\p{Cc}\p{Cs}]/u;

/**
 * The first query or path parameter whose name or value holds a control character or an unpaired surrogate,
 * if any; `in` says where it was, for the message.
 */
export function unacceptableParameter(
  params: Record<string, unknown>,
  query: Record<string, unknown>,
): { name: string; in: 'path' | 'query' } | undefined {
  for (const [name, value] of Object.entries(params)) {
    if (!acceptable(value)) return { name, in: 'path' };
  }
  for (const [name, value] of Object.entries(query)) {
    if (UNACCEPTABLE_PARAMETER.test(name) || !acceptable(value)) return { name, in: 'query' };
  }
  return undefined;
}

/** A parameter's value as the query parser leaves it: a string, a list of them, or (extended parsers) an object. */
function acceptable(value: unknown): boolean {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next === 'string') {
      if (UNACCEPTABLE_PARAMETER.test(next)) return false;
    } else if (next !== null && typeof next === 'object') {
      for (const [key, inner] of Object.entries(next)) {
        if (UNACCEPTABLE_PARAMETER.test(key)) return false;
        pending.push(inner);
      }
    }
  }
  return true;
}
