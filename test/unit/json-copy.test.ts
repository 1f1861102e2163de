import { expect } from 'chai';
import fc from 'fast-check';
import { jsonCopy } from '../../domain/json-copy.js';

// A copy as JSON reads it back must be exactly the round trip through text, whatever the value holds.

const roundTrip = (value: unknown): unknown => JSON.parse(JSON.stringify(value)) as unknown;

/** Same keys in the same order, same values, and -0 told apart from 0. */
function expectSame(actual: unknown, expected: unknown): void {
  expect(JSON.stringify(actual)).to.equal(JSON.stringify(expected));
  expect(actual).to.deep.equal(expected);
  if (typeof expected === 'number') expect(Object.is(actual, expected)).to.equal(true);
  if (expected !== null && typeof expected === 'object') {
    expect(Object.getPrototypeOf(actual)).to.equal(Object.getPrototypeOf(expected));
    expect(Object.keys(actual as object)).to.deep.equal(Object.keys(expected));
    for (const key of Object.keys(expected)) expectSame((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key]);
  }
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

const odd = fc.constantFrom<unknown>(undefined, -0, NaN, Infinity, -Infinity, new Date(0), () => 1, Symbol('s'), new Point(1, 2), new Map([[1, 2]]), { toJSON: (key: string) => `as ${key}` });

describe('jsonCopy', () => {
  it('equals the round trip through JSON text for any value a decision or an admission may hold', () => {
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), odd),
      node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.string(), tie('node'), { maxKeys: 4 })),
    })).node;
    fc.assert(
      fc.property(fc.dictionary(fc.string(), value), (object) => {
        expectSame(jsonCopy(object), roundTrip(object));
      }),
      { numRuns: 500 },
    );
  });

  it('keeps a "__proto__" member as a member, as JSON.parse does', () => {
    const object = JSON.parse('{"a":1,"__proto__":{"b":2}}') as Record<string, unknown>;
    expectSame(jsonCopy(object), roundTrip(object));
    expect(Object.getPrototypeOf(jsonCopy(object))).to.equal(Object.prototype);
  });

  it('writes holes and unwritable items of an array as null, and leaves unwritable members out', () => {
    // eslint-disable-next-line no-sparse-arrays -- the hole is the point
    const value = { list: [1, , undefined, () => 2, -0], gone: undefined, kept: 'yes' };
    expect(jsonCopy(value)).to.deep.equal({ list: [1, null, null, null, 0], kept: 'yes' });
  });

  it('throws as the round trip does for what JSON cannot write', () => {
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    expect(() => jsonCopy(cycle)).to.throw(TypeError);
    expect(() => jsonCopy({ big: 1n })).to.throw(TypeError);
  });
});
