// The reactor failure taxonomy: each kind of failure is known by its type, never by its name or its shape.
import { expect } from 'chai';
import { z } from 'zod';
import { ConflictAfterRetries } from '../../commands/command-handler.js';
import { ClusterError } from '../../reactors/cluster-driver.js';
import { classifyFailure, declaredTransient, PermanentFailure, TransientFailure } from '../../reactors/failures.js';

describe('reactor failure taxonomy', () => {
  it('given a TransientFailure, a transient cluster error or a stream that kept moving, then transient', () => {
    for (const error of [new TransientFailure('store away'), new ClusterError('503', 503, true), new ConflictAfterRetries('plan-1', 5, 7)]) {
      expect(classifyFailure(error), error.name).to.equal('transient');
      expect(declaredTransient(error), error.name).to.equal(true);
    }
  });

  it('given a PermanentFailure or a cluster error that will not heal, then permanent', () => {
    expect(classifyFailure(new PermanentFailure('refused'))).to.equal('permanent');
    expect(classifyFailure(new ClusterError('invalid', 422, false))).to.equal('permanent');
  });

  it('given an error only a mistake in code throws, or data that fails its schema, then a bug', () => {
    const parseFailure = z.object({ id: z.string() }).safeParse({ id: 1 });
    const errors = [new TypeError('x is undefined'), new RangeError('bad length'), new ReferenceError('y'), new SyntaxError('json')];
    if (!parseFailure.success) errors.push(parseFailure.error);
    for (const error of errors) expect(classifyFailure(error), error.name).to.equal('bug');
  });

  it('given an untyped error or a thrown value that is no error, then transient, as before, but not declared so', () => {
    expect(classifyFailure(new Error('broker away'))).to.equal('transient');
    expect(classifyFailure('a string')).to.equal('transient');
    expect(declaredTransient(new Error('broker away'))).to.equal(false);
  });

  it('given an error named like a transient one but of another type, then it is not taken for one', () => {
    const lookalike = Object.assign(new Error('moved'), { name: 'ConflictAfterRetries', transient: true });
    expect(declaredTransient(lookalike)).to.equal(false);
  });
});
