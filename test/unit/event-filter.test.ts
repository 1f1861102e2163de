// An event filter applied in memory, as the stores apply it where they read: types and stream prefixes both hold.
import { expect } from 'chai';
import { filterAccepts } from '../../domain/event-store.js';

describe('event filter in memory', () => {
  it('given types, prefixes, both or neither, then an event passes only where each one named holds', () => {
    const cases: [Parameters<typeof filterAccepts>[0], string, string, boolean][] = [
      [undefined, 'A', 'plan-1', true],
      [{}, 'A', 'plan-1', true],
      [{ types: [], streamPrefixes: [] }, 'A', 'plan-1', true],
      [{ types: ['A', 'B'] }, 'B', 'plan-1', true],
      [{ types: ['A'] }, 'B', 'plan-1', false],
      [{ streamPrefixes: ['plan-', 'cluster-'] }, 'A', 'cluster-9', true],
      [{ streamPrefixes: ['plan-'] }, 'A', 'workload-plan-1', false],
      [{ types: ['A'], streamPrefixes: ['plan-'] }, 'A', 'plan-1', true],
      [{ types: ['A'], streamPrefixes: ['plan-'] }, 'A', 'deployment-1', false],
      [{ types: ['A'], streamPrefixes: ['plan-'] }, 'B', 'plan-1', false],
    ];
    for (const [filter, type, stream, passes] of cases) expect(filterAccepts(filter, type, stream), JSON.stringify({ filter, type, stream })).to.equal(passes);
  });
});
