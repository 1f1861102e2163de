// Kubernetes quantities: the forms Kubernetes accepts read to base units, millicores and bytes; the rest refused.
import { expect } from 'chai';
import { cpuMillicores, memoryBytes, parseQuantity } from '../../domain/quantity.js';

describe('quantities', () => {
  describe('parseQuantity', () => {
    const good: [string, number][] = [
      ['2', 2],
      ['0', 0],
      ['500m', 0.5],
      ['0.1', 0.1],
      ['1.5', 1.5],
      ['.5', 0.5],
      ['1.', 1],
      ['+3', 3],
      ['1k', 1000],
      ['1M', 1e6],
      ['1G', 1e9],
      ['1T', 1e12],
      ['1E', 1e18],
      ['1Ki', 1024],
      ['512Mi', 512 * 2 ** 20],
      ['4Gi', 4 * 2 ** 30],
      ['1.5Gi', 1.5 * 2 ** 30],
      ['1e3', 1000],
      ['1E3', 1000],
      ['1.5e-3', 0.0015],
      ['100u', 1e-4],
      ['5n', 5e-9],
    ];
    for (const [text, value] of good) {
      it(`given "${text}", then ${value}`, () => {
        expect(parseQuantity(text)).to.be.closeTo(value, Math.abs(value) * 1e-12);
      });
    }

    const bad = ['', 'abc', '-1', '1.2.3', '1Gb', ' 1', '1 ', 'Gi', 'm', '1gi', '1K', '1mi', '1e', '1e3Gi', '1,5', '0x10', 'Infinity', 'NaN', '1e400'];
    for (const text of bad) {
      it(`given ${JSON.stringify(text)}, then undefined`, () => {
        expect(parseQuantity(text)).to.equal(undefined);
      });
    }
  });

  describe('cpuMillicores', () => {
    const cases: [string, number][] = [
      ['500m', 500],
      ['2', 2000],
      ['0.1', 100],
      ['1.5', 1500],
      ['250m', 250],
      ['0.25', 250],
      ['1e-3', 1],
      ['0', 0],
    ];
    for (const [text, millicores] of cases) {
      it(`given "${text}", then ${millicores} millicores`, () => {
        expect(cpuMillicores(text)).to.equal(millicores);
      });
    }

    it('given a fraction of a millicore, then it rounds up, as Kubernetes does', () => {
      expect(cpuMillicores('0.0001')).to.equal(1);
      expect(cpuMillicores('1.0001')).to.equal(1001);
      expect(cpuMillicores('100u')).to.equal(1);
      expect(cpuMillicores('1n')).to.equal(1);
      expect(cpuMillicores('1500001u')).to.equal(1501);
    });

    it('given binary floating point noise, then it does not round a whole millicore up', () => {
      // 0.1 + 0.2-style noise: 0.3 cores is 300m, not 301m; 0.7 is 700m.
      expect(cpuMillicores('0.3')).to.equal(300);
      expect(cpuMillicores('0.7')).to.equal(700);
      expect(cpuMillicores('2.3')).to.equal(2300);
    });

    it('given a quantity too large to count in millicores, then undefined rather than Infinity', () => {
      expect(cpuMillicores('1e300')).to.equal(undefined);
      expect(memoryBytes('1e300')).to.equal(undefined);
    });

    it('given a malformed quantity, then undefined', () => {
      expect(cpuMillicores('two')).to.equal(undefined);
      expect(cpuMillicores('-500m')).to.equal(undefined);
    });
  });

  describe('memoryBytes', () => {
    const cases: [string, number][] = [
      ['4Gi', 4 * 1024 ** 3],
      ['512Mi', 512 * 1024 ** 2],
      ['1G', 1_000_000_000],
      ['1e3', 1000],
      ['1k', 1000],
      ['1Ki', 1024],
      ['128974848', 128_974_848],
      ['129e6', 129_000_000],
      ['123Mi', 128_974_848],
    ];
    for (const [text, bytes] of cases) {
      it(`given "${text}", then ${bytes} bytes`, () => {
        expect(memoryBytes(text)).to.equal(bytes);
      });
    }

    it('given a fraction of a byte, then it rounds up', () => {
      expect(memoryBytes('0.5')).to.equal(1);
      expect(memoryBytes('1500m')).to.equal(2);
      expect(memoryBytes('1.0001k')).to.equal(1001);
    });

    it('given a malformed quantity, then undefined', () => {
      expect(memoryBytes('1Gb')).to.equal(undefined);
      expect(memoryBytes('')).to.equal(undefined);
    });
  });
});
