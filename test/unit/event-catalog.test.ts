import { expect } from 'chai';
import { z } from 'zod';
import { changedFields, defineEvents, UnknownEvent } from '../../domain/decider.js';

// A catalogue whose event gained a field in version 2 and renamed one in version 3.
const catalog = defineEvents({
  ThingHappened: {
    version: 3,
    schema: z.object({ name: z.string(), weight: z.number() }),
    upcast: {
      1: (data) => ({ ...(data as object), grams: 0 }),
      2: (data) => {
        const { grams, ...rest } = data as { grams: number };
        return { ...rest, weight: grams };
      },
    },
  },
  OtherThing: { version: 2, schema: z.object({ ok: z.boolean() }) },
});

describe('event catalogues', () => {
  it('given a version 1 event, when read, then it is upcast through every version to the current schema', () => {
    expect(catalog.parse('ThingHappened', 1, { name: 'a' })).to.deep.equal({ type: 'ThingHappened', data: { name: 'a', weight: 0 } });
    expect(catalog.parse('ThingHappened', 2, { name: 'a', grams: 5 })).to.deep.equal({ type: 'ThingHappened', data: { name: 'a', weight: 5 } });
    expect(catalog.parse('ThingHappened', 3, { name: 'a', weight: 7 }).data).to.deep.equal({ name: 'a', weight: 7 });
  });

  it('refuses a version with no upcaster, a future version, an unknown type, and data that does not fit', () => {
    expect(() => catalog.parse('OtherThing', 1, { ok: true })).to.throw(UnknownEvent, /no upcaster from schema version 1/);
    expect(() => catalog.parse('ThingHappened', 4, {})).to.throw(UnknownEvent, /no schema version 4/);
    expect(() => catalog.parse('toString', 1, {})).to.throw(UnknownEvent, /unknown event type/);
    expect(() => catalog.parse('ThingHappened', 3, { name: 1 })).to.throw(UnknownEvent, /does not match its schema/);
  });

  it('names its types and current versions', () => {
    expect(catalog.types).to.deep.equal(['ThingHappened', 'OtherThing']);
    expect(catalog.version('ThingHappened')).to.equal(3);
  });

  it('changedFields keeps only values that differ, by deep equality', () => {
    const current = { a: 1, labels: { x: '1', y: '2' }, list: [1, 2] };
    expect(changedFields(current, { a: 1, labels: { y: '2', x: '1' }, list: [1, 2] })).to.deep.equal({});
    expect(changedFields(current, { a: 2, list: [2, 1], labels: undefined })).to.deep.equal({ a: 2, list: [2, 1] });
  });
});
