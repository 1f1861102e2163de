import { expect } from 'chai';
import { decodePosition, encodePosition } from '../../adapters/event-store/position.js';
import { InvalidEventStoreRequest, comparePositions } from '../../domain/event-store.js';

describe('positions', () => {
  it('round-trip through their string form', () => {
    for (const [a, b] of [
      [0n, 0n],
      [754n, 3n],
      [(1n << 64n) - 1n, (1n << 64n) - 1n],
    ] as const) {
      expect(decodePosition(encodePosition(a, b))).to.deep.equal([a, b]);
    }
  });

  it('compare as strings in the order of their parts', () => {
    const ordered = [
      [1n, 900n],
      [2n, 1n],
      [2n, 10n],
      [16n, 0n],
      [255n, 7n],
      [4096n, 2n],
    ].map(([a, b]) => encodePosition(a!, b!));
    const shuffled = [...ordered].reverse().sort(comparePositions);
    expect(shuffled).to.deep.equal(ordered);
  });

  for (const bad of ['', 'garbage', '00000000000002f1', '00000000000002F1-0000000000000004', '1-2', 'a-b-c']) {
    it(`refuses ${JSON.stringify(bad)} as a position`, () => {
      expect(() => decodePosition(bad)).to.throw(InvalidEventStoreRequest, /invalid position/);
    });
  }
});
