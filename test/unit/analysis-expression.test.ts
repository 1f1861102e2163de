// The analysis condition language: what parses, what it evaluates to, how NaN and missing values behave, and errors.
import { expect } from 'chai';
import fc from 'fast-check';
import { ExpressionSyntaxError, ExpressionTypeError, parseExpression, type Value } from '../../domain/analysis/expression.js';

const evaluate = (source: string, variables: Record<string, Value> = {}) => parseExpression(source).evaluate(variables);

function syntaxError(source: string): ExpressionSyntaxError {
  try {
    parseExpression(source);
  } catch (error) {
    if (error instanceof ExpressionSyntaxError) return error;
    throw error;
  }
  throw new Error(`\`${source}\` parsed`);
}

function typeError(source: string, variables: Record<string, Value>): ExpressionTypeError {
  try {
    evaluate(source, variables);
  } catch (error) {
    if (error instanceof ExpressionTypeError) return error;
    throw error;
  }
  throw new Error(`\`${source}\` evaluated`);
}

describe('analysis expressions', () => {
  describe('conditions as templates write them', () => {
    it('compares a reading with a bound', () => {
      expect(evaluate('result < 0.5', { result: 0.2 })).to.equal(true);
      expect(evaluate('result < 0.5', { result: 0.7 })).to.equal(false);
    });
    it('indexes a list and joins comparisons with && and ||', () => {
      expect(evaluate('result[0] >= 0.99 && result[0] <= 1', { result: [0.995] })).to.equal(true);
      expect(evaluate('result[1] > 2 || result[0] > 2', { result: [1, 3] })).to.equal(true);
    });
    it('compares with a baseline through arithmetic', () => {
      expect(evaluate('result > baseline * 0.9', { result: 95, baseline: 100 })).to.equal(true);
      expect(evaluate('result > baseline * 0.9', { result: 85, baseline: 100 })).to.equal(false);
    });
    it('asks whether a reading is empty or NaN', () => {
      expect(evaluate('len(result) == 0', { result: [] })).to.equal(true);
      expect(evaluate('isNaN(result)', { result: Number.NaN })).to.equal(true);
      expect(evaluate('isNaN(result)', { result: [1, Number.NaN] })).to.equal(true);
      expect(evaluate('isNaN(result)', { result: undefined })).to.equal(true);
      expect(evaluate('isNaN(result)', { result: 3 })).to.equal(false);
    });
  });

  describe('operators', () => {
    it('binds * before +, comparison before &&, && before ||', () => {
      expect(evaluate('1 + 2 * 3')).to.equal(7);
      expect(evaluate('(1 + 2) * 3')).to.equal(9);
      expect(evaluate('true || false && false')).to.equal(true);
      expect(evaluate('1 < 2 == true')).to.equal(true);
      expect(evaluate('10 - 4 - 3')).to.equal(3);
      expect(evaluate('7 % 4 / 2')).to.equal(1.5);
    });
    it('negates numbers and booleans', () => {
      expect(evaluate('-result + 1', { result: 3 })).to.equal(-2);
      expect(evaluate('!(result > 1)', { result: 3 })).to.equal(false);
      expect(evaluate('!!true')).to.equal(true);
    });
    it('reads numbers with decimals and exponents', () => {
      expect(evaluate('.5 + 1.25e2 + 2E-1')).to.equal(125.7);
    });
    it('reduces lists with min, max, avg, sum, and takes abs', () => {
      const result = [3, 1, 2];
      expect(evaluate('min(result)', { result })).to.equal(1);
      expect(evaluate('max(result)', { result })).to.equal(3);
      expect(evaluate('avg(result)', { result })).to.equal(2);
      expect(evaluate('sum(result)', { result })).to.equal(6);
      expect(evaluate('abs(1 - 3)')).to.equal(2);
      expect(evaluate('len(result)', { result })).to.equal(3);
    });
    it('reads a number and a list of one alike', () => {
      expect(evaluate('result[0] < 1', { result: 0.5 })).to.equal(true);
      expect(evaluate('result < 1', { result: [0.5] })).to.equal(true);
      expect(evaluate('len(result)', { result: 0.5 })).to.equal(1);
      expect(evaluate('min(result)', { result: 0.5 })).to.equal(0.5);
    });
    it('short-circuits && and ||, so the right side is not evaluated', () => {
      expect(evaluate('len(result) > 0 && result[0] > 1', { result: [] })).to.equal(false);
      expect(evaluate('true || result', { result: [1, 2] })).to.equal(true);
    });
  });

  describe('NaN and missing values never throw', () => {
    it('compares NaN as IEEE 754 does: false, except !=', () => {
      for (const source of ['result < 1', 'result <= 1', 'result > 1', 'result >= 1', 'result == result']) {
        expect(evaluate(source, { result: Number.NaN }), source).to.equal(false);
      }
      expect(evaluate('result != 1', { result: Number.NaN })).to.equal(true);
    });
    it('reads missing, an empty list and an index past the end as NaN in arithmetic and comparison', () => {
      expect(Number.isNaN(evaluate('result + 1', { result: undefined }))).to.equal(true);
      expect(evaluate('result < 1', { result: [] })).to.equal(false);
      expect(evaluate('result[5] < 1', { result: [0] })).to.equal(false);
      expect(evaluate('result[0] < 1', { result: undefined })).to.equal(false);
    });
    it('reduces missing and empty to NaN, and counts them as 0 long', () => {
      expect(Number.isNaN(evaluate('min(result)', { result: [] }))).to.equal(true);
      expect(Number.isNaN(evaluate('avg(result)', { result: undefined }))).to.equal(true);
      expect(evaluate('len(result)', { result: undefined })).to.equal(0);
    });
    it('never throws for any number or list of numbers in a comparison, however strange', () => {
      const number = fc.oneof(fc.double(), fc.constant(Number.NaN), fc.constant(Infinity));
      const reading = fc.oneof(number, fc.array(number, { maxLength: 1 }), fc.constant(undefined));
      fc.assert(
        fc.property(reading, number, (result, baseline) => {
          const value = evaluate('result > baseline * 0.9 && !isNaN(result) || result / baseline < 1', { result, baseline });
          expect(value).to.be.a('boolean');
        }),
      );
    });
  });

  describe('mistakes', () => {
    it('names the position of a syntax error', () => {
      expect(syntaxError('result < ').message).to.equal('expression ends too early at position 9 of `result < `');
      expect(syntaxError('result # 1').position).to.equal(7);
      expect(syntaxError('(result < 1').message).to.match(/expected '\)' to close the parenthesis, found 'end of expression' at position 11/);
      expect(syntaxError('result 1').message).to.match(/unexpected '1' after a complete expression at position 7/);
      expect(syntaxError('').message).to.match(/empty expression/);
      expect(syntaxError('result[0').message).to.match(/expected '\]' to close the index/);
    });
    it('rejects unknown functions and wrong arities when parsing', () => {
      expect(syntaxError('median(result)').message).to.match(/unknown function 'median' \(known: isNaN, len, min, max, sum, avg, abs\) at position 0/);
      expect(syntaxError('min(result, 1)').message).to.match(/'min' takes 1 argument, got 2/);
    });
    it('never evaluates JavaScript, nor reaches what objects inherit', () => {
      expect(typeError('__proto__ > 1', { result: 1 }).message).to.match(/unknown name '__proto__'/);
      expect(syntaxError('constructor(result)').message).to.match(/unknown function 'constructor'/);
      expect(syntaxError('toString(result)').message).to.match(/unknown function 'toString'/);
      expect(syntaxError('result == "1"').message).to.match(/unexpected character '"'/);
      expect(syntaxError('process.exit(1)').message).to.match(/unexpected character '\.'/);
    });
    it('lists the names an expression reads', () => {
      expect([...parseExpression('result > baseline * 0.9 && len(result) > 0').names]).to.deep.equal(['result', 'baseline']);
    });
    it('names the position of a type error when evaluating', () => {
      const error = typeError('result < 1', { result: [1, 2] });
      expect(error.message).to.equal('the left side of \'<\' must be a number, got a list of 2 numbers: index it (x[0]) or reduce it (min(x), max(x), avg(x)) at position 0 of `result < 1`');
      expect(typeError('result && true', { result: 1 }).message).to.match(/the left side of '&&' must be a boolean, got the number 1/);
      expect(typeError('!result', { result: 1 }).message).to.match(/the operand of '!' must be a boolean/);
      expect(typeError('result == true', { result: 1 }).message).to.match(/'==' compares two numbers or two booleans/);
      expect(typeError('other > 1', { result: 1 }).message).to.match(/unknown name 'other' \(known: result\)/);
      expect(typeError('result[0.5]', { result: [1] }).message).to.match(/an index must be a whole number/);
      expect(typeError('min(true)', {}).message).to.match(/'min' takes a number or a list/);
    });
  });
});
