import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { InvalidEventStoreRequest, appendLooksValid, validate, type EventToAppend } from '../../domain/event-store.js';

// The allocation-free check in front of the zod schema must never let through what the schema refuses.
describe('append validation', () => {
  const good = (): EventToAppend => ({ id: randomUUID(), type: 'ReplicasScaled', data: { replicas: 2 }, metadata: {} });

  const mutations: [string, (events: Record<string, unknown>[]) => unknown][] = [
    ['id not a uuid', (e) => (e[0]!.id = 'abc')],
    ['id a number', (e) => (e[0]!.id = 42)],
    ['type empty', (e) => (e[0]!.type = '')],
    ['type with spaces', (e) => (e[0]!.type = 'Replicas Scaled')],
    ['type too long', (e) => (e[0]!.type = 'A'.repeat(201))],
    ['schemaVersion zero', (e) => (e[0]!.schemaVersion = 0)],
    ['schemaVersion fractional', (e) => (e[0]!.schemaVersion = 1.5)],
    ['data an array', (e) => (e[0]!.data = [1])],
    ['data null', (e) => (e[0]!.data = null)],
    ['data missing', (e) => delete e[0]!.data],
    ['metadata a string', (e) => (e[0]!.metadata = 'x')],
    ['an unknown field', (e) => (e[0]!.extra = true)],
    ['a repeated id', (e) => (e[1]!.id = e[0]!.id)],
  ];

  for (const [what, mutate] of mutations) {
    it(`refuses an event with ${what}, naming the field`, () => {
      const events = [good(), good()] as unknown as Record<string, unknown>[];
      mutate(events);
      expect(appendLooksValid('deployment-1', events, 'any')).to.equal(false);
      expect(() => validate.append('deployment-1', events as unknown as EventToAppend[], 'any')).to.throw(
        InvalidEventStoreRequest,
        /^invalid append: /,
      );
    });
  }

  for (const [what, stream, expected] of [
    ['an empty stream', '', 'any'],
    ['a reserved stream', '$all', 'any'],
    ['a fractional revision', 'deployment-1', 1.5],
    ['an unknown expected state', 'deployment-1', 'maybe'],
  ] as const) {
    it(`refuses ${what}`, () => {
      expect(appendLooksValid(stream, [good()], expected)).to.equal(false);
      expect(() => validate.append(stream, [good()], expected as never)).to.throw(InvalidEventStoreRequest);
    });
  }

  it('lets good appends through without the schema, for every expected state', () => {
    for (const expected of ['any', 'no_stream', 'stream_exists', 0, 17] as const) {
      expect(appendLooksValid('deployment-1', [good(), { ...good(), schemaVersion: 2 }], expected)).to.equal(true);
    }
    expect(appendLooksValid('deployment-1', Array.from({ length: 100 }, good), 'any')).to.equal(true);
  });
});
