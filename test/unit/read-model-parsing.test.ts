// A recorded event read by several read models in one batch is upcast and checked by its catalogue once.
import { expect } from 'chai';
import type { DomainEvent, EventCatalog } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { parse, parseEach } from '../../projections/read-models/projecting.js';

type Counted = DomainEvent<'Counted', { n: number }>;

/** A catalogue that counts its parses. */
function countingCatalog(): EventCatalog<Counted> & { parses: number } {
  return {
    parses: 0,
    types: ['Counted'],
    version: () => 1,
    parse(type, _version, data) {
      this.parses += 1;
      return { type: type as 'Counted', data: { n: (data as { n: number }).n } };
    },
  };
}

const recorded = (n: number): RecordedEvent =>
  ({ id: `e${n}`, stream: 's-1', type: 'Counted', schemaVersion: 1, revision: n, position: `p${n}`, recordedAt: new Date(0), data: { n }, metadata: {} }) as unknown as RecordedEvent;

describe('read-model parsing', () => {
  it('given a batch that two read models parse with one catalogue, then each event is parsed once and both get the same event', () => {
    const catalog = countingCatalog();
    const batch = [recorded(1), recorded(2), recorded(3)];
    const first = parseEach(catalog, batch);
    const second = parseEach(catalog, batch.filter((event) => event.revision > 1));
    expect(catalog.parses).to.equal(3);
    expect(second.map(({ e }) => e)).to.deep.equal([first[1]!.e, first[2]!.e]);
    expect(second[0]!.e).to.equal(first[1]!.e);
  });

  it('given the same event parsed with two catalogues, then each catalogue parses it', () => {
    const one = countingCatalog();
    const other = countingCatalog();
    const event = recorded(1);
    parse(one, event);
    parse(other, event);
    parse(one, event);
    expect([one.parses, other.parses]).to.deep.equal([1, 1]);
  });

  it('given a new read of the same event (another object), then it is parsed again', () => {
    const catalog = countingCatalog();
    parse(catalog, recorded(1));
    parse(catalog, recorded(1));
    expect(catalog.parses).to.equal(2);
  });
});
