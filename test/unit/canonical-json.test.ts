// Canonical JSON gives, for any JSON value, the same text as the replacer-based form that stored audit chains were
// hashed over, and that text does not depend on key order.
import { expect } from 'chai';
import fc from 'fast-check';
import { canonicalJson } from '../../projections/canonical-json.js';

/** The first form, kept here as the oracle: a hash chain stays verifiable only while the text stays the same. */
function replacerCanonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, member: unknown) => {
    if (member === null || typeof member !== 'object' || Array.isArray(member)) return member;
    const sorted = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(member).sort()) sorted[key] = (member as Record<string, unknown>)[key];
    return sorted;
  });
}

/** Keys that sort awkwardly: array indexes (listed first by every object), near-indexes, "__proto__", astral and escaped text. */
const awkwardKey = fc.constantFrom(
  '0', '1', '9', '10', '4294967294', '4294967295', '01', '-1', '1.5', '1e3', '', ' ', '__proto__', 'constructor', 'toString',
  'a', 'A', 'b', 'ab', 'a\u0000', '\u{1F600}', '\uffff', 'é', 'e\u0301', '"', '\\', '\n', 'content', 'Content',
);
const key = fc.oneof(awkwardKey, fc.string(), fc.string({ unit: 'binary' }));

/** JSON values with awkward keys and text, undefined members, and dates (written through toJSON). */
const value = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue({ maxDepth: 2 }),
    fc.string({ unit: 'binary' }),
    fc.constantFrom(undefined, -0, 1e21, 5e-324, Number.MAX_SAFE_INTEGER, new Date(0)),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(key, tie('value'), { maxKeys: 6, noNullPrototype: false }),
  ),
})).value;

/** The same members inserted in another order, as jsonb hands them back. */
function reordered(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || input instanceof Date) return input;
  if (Array.isArray(input)) return input.map(reordered);
  const copy = Object.create(null) as Record<string, unknown>;
  for (const name of Object.keys(input).reverse()) copy[name] = reordered((input as Record<string, unknown>)[name]);
  return copy;
}

describe('canonical JSON', () => {
  it('gives the text of the replacer-based form for any JSON value', () => {
    fc.assert(
      fc.property(value, (input) => {
        expect(canonicalJson(input)).to.equal(replacerCanonicalJson(input));
      }),
      { numRuns: 2000 },
    );
  });

  it('gives the same text whatever order the keys were inserted in', () => {
    fc.assert(
      fc.property(value, (input) => {
        expect(canonicalJson(reordered(input))).to.equal(canonicalJson(input));
      }),
      { numRuns: 500 },
    );
  });

  it('writes array indexes first, by value, then the other keys sorted', () => {
    const input = { b: 1, '10': 2, '9': 3, '4294967295': 4, '01': 5, a: { z: [undefined, () => 0], y: undefined, x: new Date(0) } };
    expect(canonicalJson(input)).to.equal('{"9":3,"10":2,"01":5,"4294967295":4,"a":{"x":"1970-01-01T00:00:00.000Z","z":[null,null]},"b":1}');
  });

  it('keeps a "__proto__" key as an ordinary member', () => {
    const input = JSON.parse('{"z":1,"__proto__":{"b":2,"a":1}}') as unknown;
    expect(canonicalJson(input)).to.equal('{"__proto__":{"a":1,"b":2},"z":1}');
  });

  it('leaves out what JSON cannot write, as JSON.stringify does', () => {
    expect(canonicalJson(undefined)).to.equal(undefined);
    expect(canonicalJson({ a: undefined, b: Symbol('s'), c: () => 1 })).to.equal('{}');
    expect(() => canonicalJson({ big: 1n })).to.throw(TypeError);
  });

  it('writes any other kind of object as its own members, as the first form did', () => {
    class Point {
      y = 2;
      x = 1;
    }
    const others: unknown[] = [new String('ab'), new Number(1), new Map([[1, 2]]), new Point(), [new Point()]];
    for (const other of others) expect(canonicalJson({ other })).to.equal(replacerCanonicalJson({ other }));
    expect(canonicalJson(new Point())).to.equal('{"x":1,"y":2}');
  });

  it('does not change its input', () => {
    fc.assert(
      fc.property(value, (input) => {
        const before = replacerCanonicalJson(input);
        const keysBefore = JSON.stringify(input);
        canonicalJson(input);
        expect(replacerCanonicalJson(input)).to.equal(before);
        expect(JSON.stringify(input)).to.equal(keysBefore);
      }),
      { numRuns: 200 },
    );
  });
});
