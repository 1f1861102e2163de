// The checks the router makes before a route runs: JSON depth and width from raw bytes, unstorable text,
// unacceptable parameters.
import { expect } from 'chai';
import fc from 'fast-check';
import { jsonLimitBroken, MAX_JSON_DEPTH, MAX_JSON_MEMBERS, unacceptableParameter, unstorableText } from '../../commands/http/request-checks.js';

const bytes = (text: string) => new TextEncoder().encode(text);

/** Depth and widest container of a parsed value, the slow and obvious way. */
function shapeOf(value: unknown): { depth: number; widest: number } {
  if (value === null || typeof value !== 'object') return { depth: 0, widest: 0 };
  const children = Array.isArray(value) ? value : Object.values(value);
  const inner = children.map(shapeOf);
  return { depth: 1 + Math.max(0, ...inner.map((s) => s.depth)), widest: Math.max(children.length, ...inner.map((s) => s.widest)) };
}

describe('request checks', () => {
  describe('jsonLimitBroken', () => {
    it('agrees with the parsed value on any JSON, brackets, commas, quotes and escapes inside strings included', () => {
      const tricky = fc.string({ unit: fc.constantFrom('[', ']', '{', '}', ',', '"', '\\', 'a', 'é', '\u2028', '😀'), maxLength: 20 });
      const value = fc.letrec((tie) => ({
        node: fc.oneof({ depthSize: 'small' }, tricky, fc.integer(), fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(tricky, tie('node'), { maxKeys: 4 })),
      })).node;
      fc.assert(
        fc.property(value, (v) => {
          const { depth, widest } = shapeOf(v);
          const expected = depth > MAX_JSON_DEPTH ? 'depth' : widest > MAX_JSON_MEMBERS ? 'members' : undefined;
          expect(jsonLimitBroken(bytes(JSON.stringify(v)))).to.equal(expected);
        }),
        { numRuns: 300 },
      );
    });

    it('finds depth past 64 and width past 1000, however the body is built', () => {
      expect(jsonLimitBroken(bytes('['.repeat(64) + ']'.repeat(64)))).to.equal(undefined);
      expect(jsonLimitBroken(bytes('['.repeat(65) + ']'.repeat(65)))).to.equal('depth');
      expect(jsonLimitBroken(bytes('['.repeat(400_000)))).to.equal('depth');
      expect(jsonLimitBroken(bytes(`{"a":"${'['.repeat(100)}"}`))).to.equal(undefined);
      expect(jsonLimitBroken(bytes(`["\\"${'['.repeat(100)}"]`))).to.equal(undefined);
      expect(jsonLimitBroken(bytes(JSON.stringify(Array(1000).fill(0))))).to.equal(undefined);
      expect(jsonLimitBroken(bytes(JSON.stringify(Array(1001).fill(0))))).to.equal('members');
      // Members are counted per container: many small ones are fine.
      expect(jsonLimitBroken(bytes(JSON.stringify(Array(500).fill(Array(500).fill(0)))))).to.equal(undefined);
      // Closing more than was opened (not JSON; the parser refuses it) does not confuse the count.
      expect(jsonLimitBroken(bytes(']]]]' + '['.repeat(64)))).to.equal(undefined);
    });
  });

  describe('unstorableText', () => {
    it('names the path of a NUL or an unpaired surrogate in a key or a value, at any depth, without recursion', () => {
      expect(unstorableText({ a: [{ b: 'ok' }, { c: 'x\u0000' }] })).to.deep.equal(['a', '1', 'c']);
      expect(unstorableText({ a: { 'k\ud800': 1 } })).to.deep.equal(['a', 'k\ud800']);
      expect(unstorableText('\udc00')).to.deep.equal([]);
      expect(unstorableText({ ok: '😀', list: ['é', 1, null, true] })).to.equal(undefined);
      let deep: unknown = '\u0000';
      for (let i = 0; i < 100_000; i++) deep = [deep];
      expect(unstorableText(deep)).to.have.length(100_000);
    });
  });

  describe('unacceptableParameter', () => {
    it('refuses control characters and unpaired surrogates in names and values, and nothing else', () => {
      expect(unacceptableParameter({ id: 'a\u0000' }, {})).to.deep.equal({ name: 'id', in: 'path' });
      expect(unacceptableParameter({}, { namespace: ['ok', '\u0085'] })).to.deep.equal({ name: 'namespace', in: 'query' });
      expect(unacceptableParameter({}, { 'a\u0007': 'x' })).to.deep.equal({ name: 'a\u0007', in: 'query' });
      expect(unacceptableParameter({}, { a: '\ud800' })).to.deep.equal({ name: 'a', in: 'query' });
      expect(unacceptableParameter({ id: 'é😀 ' }, { q: 'a b+c/%', r: ['1', '2'] })).to.equal(undefined);
    });
  });
});
