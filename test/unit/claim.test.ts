import { expect } from 'chai';
import { claimDecider, ClaimHeld } from '../../domain/claim.js';
import { given } from '../support/decider.js';

const key = 'workload:ml/llama';
const at = '2026-12-06T08:00:00.000Z';
const taken = { type: 'ClaimTaken', data: { key, ownerId: 'w-1', takenAt: at } } as const;

describe('Claim decider', () => {
  it('given nothing, when taken, then ClaimTaken', () => {
    given(claimDecider).when({ type: 'TakeClaim', key, ownerId: 'w-1', at }).then([taken]);
  });
  it('given a claim, when its owner takes it again, then nothing (a retry)', () => {
    given(claimDecider, [taken]).when({ type: 'TakeClaim', key, ownerId: 'w-1', at }).then([]);
  });
  it('given a claim, when another takes it, then ClaimHeld naming the holder', () => {
    const { state } = given(claimDecider, [taken]);
    expect(() => claimDecider.decide({ type: 'TakeClaim', key, ownerId: 'w-2', at }, state)).to.throw(ClaimHeld, /held by w-1/);
  });
  it('given a claim whose holder is gone, when another takes it naming that holder, then ClaimTaken with the previous owner', () => {
    given(claimDecider, [taken])
      .when({ type: 'TakeClaim', key, ownerId: 'w-2', at, goneHolder: 'w-1' })
      .then([{ type: 'ClaimTaken', data: { key, ownerId: 'w-2', takenAt: at, previousOwnerId: 'w-1' } }]);
  });
  it('given a claim taken over since, when taken naming the old holder as gone, then ClaimHeld: only the holder checked is taken over', () => {
    const over = { type: 'ClaimTaken', data: { key, ownerId: 'w-2', takenAt: at, previousOwnerId: 'w-1' } } as const;
    const { state } = given(claimDecider, [taken, over]);
    expect(() => claimDecider.decide({ type: 'TakeClaim', key, ownerId: 'w-3', at, goneHolder: 'w-1' }, state)).to.throw(ClaimHeld, /held by w-2/);
  });
});
