// Unit tests of the KurrentDB event store adapter against an in-memory stand-in for the KurrentDB client.
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import {
  StreamDeletedError,
  StreamNotFoundError,
  StreamTombstonedError,
  TransactionMaxSizeExceededError,
  UnknownError,
  WrongExpectedVersionError,
  type AppendStreamRequest,
  type AppendStreamState,
  type EventData,
  type Filter,
  type Position as KurrentPosition,
  type ReadPosition,
  type ReadRevision,
  type StreamMetadata as KurrentStreamMetadata,
  type StreamState,
} from '@kurrent/kurrentdb-client';
import {
  APPEND_ID_KEY,
  CALLER_METADATA_KEY,
  KurrentDbEventStore,
  SCHEMA_VERSION_KEY,
  type KurrentClientLike,
} from '../../adapters/event-store/kurrentdb/kurrentdb-event-store.js';
import { encodePosition } from '../../adapters/event-store/position.js';
import {
  ConcurrencyConflict,
  DuplicateEventConflict,
  EventStoreError,
  InvalidEventStoreRequest,
  StreamDeleted,
  type EventToAppend,
  type RecordedEvent,
} from '../../domain/event-store.js';
import { rejection } from '../support/rejection.js';

// ---- an in-memory KurrentDB client ---------------------------------------------------------------------

interface StoredEvent {
  streamId: string;
  id: string;
  type: string;
  isJson: boolean;
  data: unknown;
  metadata: unknown;
  revision: bigint;
  created: Date;
  position: KurrentPosition;
}

interface Call {
  method: string;
  args: unknown[];
}

type FakeSubscription = PassThrough & {
  unsubscribed: boolean;
  unsubscribe(): Promise<void>;
  matches(event: StoredEvent): boolean;
};

/** Int64.MaxValue as a JSON number reads in JavaScript. */
const INT64_MAX = Number(2n ** 63n - 1n);

function comparePosition(a: KurrentPosition, b: KurrentPosition): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

function matchesFilter(filter: Filter | undefined, event: StoredEvent): boolean {
  if (filter === undefined) return true;
  const subject = filter.filterOn === 'eventType' ? event.type : event.streamId;
  if ('regex' in filter) return new RegExp(filter.regex).test(subject);
  return filter.prefixes.some((p) => subject.startsWith(p));
}

function resolved(event: StoredEvent) {
  return { event: { ...event }, commitPosition: event.position.commit };
}

/** Behaves like a single KurrentDB node for the calls the adapter makes, including idempotent appends. */
class FakeKurrentClient {
  readonly log: StoredEvent[] = [];
  readonly calls: Call[] = [];
  readonly metadata = new Map<string, KurrentStreamMetadata>();
  readonly subscriptions: FakeSubscription[] = [];
  /** The next call of that method fails with this error. */
  readonly failNext = new Map<string, unknown>();
  disposed = false;
  private nextOffset = 1000n;
  private clock = Date.parse('2025-03-01T10:00:00.000Z');

  asClient(): KurrentClientLike {
    return this as unknown as KurrentClientLike;
  }

  callsTo(method: string): Call[] {
    return this.calls.filter((c) => c.method === method);
  }

  private enter(method: string, args: unknown[]): void {
    this.calls.push({ method, args });
    const failure = this.failNext.get(method);
    if (failure !== undefined) {
      this.failNext.delete(method);
      throw failure;
    }
  }

  streamEvents(streamId: string): StoredEvent[] {
    return this.log.filter((e) => e.streamId === streamId);
  }

  private visible(streamId: string): StoredEvent[] {
    const tb = this.metadata.get(streamId)?.truncateBefore;
    return this.streamEvents(streamId).filter((e) => typeof tb !== 'number' || Number(e.revision) >= tb);
  }

  private currentRevision(streamId: string): bigint | 'no_stream' {
    const events = this.streamEvents(streamId);
    const last = events[events.length - 1];
    return last === undefined ? 'no_stream' : last.revision;
  }

  /** Writes events as one transaction: they share the commit position, each has its own prepare position. */
  write(streamId: string, events: Omit<StoredEvent, 'streamId' | 'revision' | 'created' | 'position'>[]): StoredEvent[] {
    const current = this.currentRevision(streamId);
    const commit = this.nextOffset + BigInt(events.length) * 100n;
    const written = events.map((e, i) => {
      const stored: StoredEvent = {
        ...e,
        streamId,
        revision: (current === 'no_stream' ? -1n : current) + BigInt(i) + 1n,
        created: new Date((this.clock += 1000)),
        position: { commit, prepare: this.nextOffset + BigInt(i) * 100n },
      };
      this.log.push(stored);
      return stored;
    });
    this.nextOffset = commit + 100n;
    for (const subscription of this.subscriptions) {
      for (const event of written) if (subscription.matches(event)) subscription.write(resolved(event));
    }
    return written;
  }

  writeSystemEvent(streamId: string, type: string): StoredEvent {
    const [event] = this.write(streamId, [{ id: randomUUID(), type, isJson: true, data: {}, metadata: undefined }]);
    return event!;
  }

  async appendToStream(
    streamName: string,
    events: EventData[],
    options: { streamState?: AppendStreamState } = {},
  ) {
    this.enter('appendToStream', [streamName, events, options]);
    const state = options.streamState ?? 'any';
    const current = this.currentRevision(streamName);
    const existing = this.streamEvents(streamName);
    const known = events.map((e) => existing.find((s) => s.id === e.id));
    if (known.every((k) => k !== undefined)) {
      // The server acknowledges a replay by ids alone, whatever the content.
      const last = known[known.length - 1]!;
      return { success: true, nextExpectedRevision: last.revision, position: last.position };
    }
    const ok =
      known.every((k) => k === undefined) &&
      (state === 'any' ||
        (state === 'no_stream' && current === 'no_stream') ||
        (state === 'stream_exists' && current !== 'no_stream') ||
        state === current);
    if (!ok) {
      throw new WrongExpectedVersionError(undefined, { streamName, expected: state, current });
    }
    const written = this.write(
      streamName,
      events.map((e) => ({
        id: e.id,
        type: e.type,
        isJson: true,
        data: JSON.parse(JSON.stringify(e.data)),
        metadata: e.metadata === undefined ? undefined : JSON.parse(JSON.stringify(e.metadata)),
      })),
    );
    const first = written[0]!;
    const last = written[written.length - 1]!;
    // Like the server: the position of the transaction, which is not the last event's own position.
    return { success: true, nextExpectedRevision: last.revision, position: { ...first.position } };
  }

  /**
   * Like a KurrentDB 25.1 node: every stream's expected state is checked before anything is written, and a
   * stream whose event ids are all stored already is a replay, as for appendToStream. The client itself refuses
   * metadata that is not all strings, before sending anything.
   */
  async multiStreamAppend(requests: AppendStreamRequest[]) {
    for (const request of requests) {
      for (const e of request.events) {
        if (e.metadata != null && Object.values(e.metadata).some((value) => typeof value !== 'string')) {
          throw new Error('multiStreamAppend requires metadata to be a plain object with string keys and string values.');
        }
      }
    }
    this.enter('multiStreamAppend', [requests]);
    const decided = requests.map(({ streamName, events, expectedState }): { streamName: string; replayed: bigint } | { streamName: string; events: EventData[] } => {
      const current = this.currentRevision(streamName);
      const known = events.map((e) => this.streamEvents(streamName).find((s) => s.id === e.id));
      if (known.every((k) => k !== undefined)) return { streamName, replayed: known.at(-1)!.revision };
      const ok =
        known.every((k) => k === undefined) &&
        (expectedState === 'any' ||
          (expectedState === 'no_stream' && current === 'no_stream') ||
          (expectedState === 'stream_exists' && current !== 'no_stream') ||
          expectedState === current);
      if (!ok) throw new WrongExpectedVersionError(undefined, { streamName, expected: expectedState, current });
      return { streamName, events };
    });
    let position = 0n;
    const responses = decided.map((d) => {
      if (!('events' in d)) return { streamName: d.streamName, revision: d.replayed };
      const written = this.write(
        d.streamName,
        d.events.map((e) => ({ id: e.id, type: e.type, isJson: true, data: JSON.parse(JSON.stringify(e.data)), metadata: e.metadata })),
      );
      position = written.at(-1)!.position.commit;
      return { streamName: d.streamName, revision: written.at(-1)!.revision };
    });
    return { position, responses };
  }

  async *readStream(
    streamName: string,
    options: { fromRevision?: ReadRevision; direction?: string; maxCount?: number | bigint } = {},
  ) {
    this.enter('readStream', [streamName, options]);
    const events = this.visible(streamName);
    if (events.length === 0) throw new StreamNotFoundError(undefined, streamName);
    const from = options.fromRevision ?? 'start';
    const max = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
    const selected =
      options.direction === 'backwards'
        ? events.filter((e) => from === 'end' || from === 'start' || e.revision <= from).reverse()
        : events.filter((e) => from === 'start' || (from !== 'end' && e.revision >= from));
    for (const event of selected.slice(0, max)) yield resolved(event);
  }

  async *readAll(options: { fromPosition?: ReadPosition; direction?: string; maxCount?: number | bigint; filter?: Filter } = {}) {
    this.enter('readAll', [options]);
    const from = options.fromPosition ?? 'start';
    const max = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
    const ordered = options.direction === 'backwards' ? [...this.log].reverse() : this.log;
    const selected = ordered.filter(
      (e) =>
        matchesFilter(options.filter, e) &&
        (typeof from === 'string' || (options.direction === 'backwards' ? comparePosition(e.position, from) <= 0 : comparePosition(e.position, from) >= 0)),
    );
    for (const event of selected.slice(0, max)) yield resolved(event);
  }

  subscribeToAll(options: { fromPosition?: ReadPosition; filter?: Filter } = {}, readableOptions: object = {}) {
    this.enter('subscribeToAll', [options, readableOptions]);
    const from = options.fromPosition ?? 'start';
    const subscription = Object.assign(new PassThrough({ objectMode: true }), {
      unsubscribed: false,
      async unsubscribe(this: FakeSubscription) {
        this.unsubscribed = true;
      },
      matches: (event: StoredEvent) => matchesFilter(options.filter, event),
    }) as FakeSubscription;
    this.subscriptions.push(subscription);
    for (const event of this.log) {
      // Like a read, the start position itself is included.
      if (from === 'end') break;
      if (from !== 'start' && comparePosition(event.position, from) < 0) continue;
      if (subscription.matches(event)) subscription.write(resolved(event));
    }
    return subscription;
  }

  async getStreamMetadata(streamName: string) {
    this.enter('getStreamMetadata', [streamName]);
    const metadata = this.metadata.get(streamName);
    return metadata === undefined ? { streamName } : { streamName, metadata: { ...metadata } };
  }

  async setStreamMetadata(streamName: string, metadata: KurrentStreamMetadata, options: object = {}) {
    this.enter('setStreamMetadata', [streamName, metadata, options]);
    this.metadata.set(streamName, { ...metadata });
    const event = this.writeSystemEvent(`$$${streamName}`, '$metadata');
    return { success: true, nextExpectedRevision: event.revision, position: event.position };
  }

  async deleteStream(streamName: string, options: { expectedRevision?: StreamState } = {}) {
    this.enter('deleteStream', [streamName, options]);
    const state = options.expectedRevision ?? 'any';
    const current = this.currentRevision(streamName);
    const ok = state === 'any' || (state === 'no_stream' && current === 'no_stream') || state === current;
    if (!ok) throw new WrongExpectedVersionError(undefined, { streamName, expected: state, current });
    // A soft delete hides everything through truncate-before = Int64.MaxValue.
    this.metadata.set(streamName, { ...this.metadata.get(streamName), truncateBefore: INT64_MAX });
    return {};
  }

  dispose = async (): Promise<void> => {
    this.disposed = true;
  };
}

// ---- helpers -------------------------------------------------------------------------------------------

function event(type = 'DeploymentRequested', data: Record<string, unknown> = { replicas: 1 }): EventToAppend {
  return { id: randomUUID(), type, data };
}

/** What gRPC hands the client when a call fails; the client's errors keep its code and message. */
function serviceError(code: number) {
  return { code, message: `${code} failed`, details: 'failed' } as never;
}

function positionOf(stored: StoredEvent): string {
  return encodePosition(stored.position.commit, stored.position.prepare);
}

function setup(pageSize?: number) {
  const fake = new FakeKurrentClient();
  const store = new KurrentDbEventStore(fake.asClient(), pageSize === undefined ? {} : { pageSize });
  return { fake, store };
}

async function take(iterator: AsyncIterator<RecordedEvent>, count: number): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  while (events.length < count) {
    const next = await iterator.next();
    if (next.done) break;
    events.push(next.value);
  }
  return events;
}

// ---- tests ---------------------------------------------------------------------------------------------

describe('KurrentDbEventStore', () => {
  describe('append', () => {
    const cases: [string, Parameters<KurrentDbEventStore['append']>[2], unknown][] = [
      ['any', { expected: 'any' }, 'any'],
      ['no_stream', { expected: 'no_stream' }, 'no_stream'],
      ['stream_exists', { expected: 'stream_exists' }, 'stream_exists'],
      ['an exact revision', { expected: 0 }, 0n],
      ['nothing', undefined, 'any'],
    ];
    for (const [name, options, state] of cases) {
      it(`given expected ${name}, then the client is asked for stream state ${String(state)}`, async () => {
        const { fake, store } = setup();
        if (state === 'stream_exists' || state === 0n) await store.append('deployment-1', [event()]);
        await store.append('deployment-1', [event()], options);
        const [, , sent] = fake.callsTo('appendToStream').at(-1)!.args as [string, EventData[], { streamState: unknown }];
        expect(sent.streamState).to.equal(state);
      });
    }

    it('given a new stream, when two events are appended, then the result names the last event', async () => {
      const { fake, store } = setup();
      const result = await store.append('deployment-1', [event(), event()], { expected: 'no_stream' });
      const last = fake.streamEvents('deployment-1')[1]!;
      expect(result).to.deep.equal({ revision: 1, position: positionOf(last), duplicate: false });
    });

    it('then the schema version travels in the event metadata, defaulting to 1', async () => {
      const { fake, store } = setup();
      const first = event();
      const second = { ...event(), schemaVersion: 3, metadata: { correlationId: 'c-1' } };
      await store.append('deployment-1', [first, second]);
      const [, sent] = fake.callsTo('appendToStream')[0]!.args as [string, EventData[]];
      expect(sent.map((e) => [e.id, e.type, e.contentType])).to.deep.equal([
        [first.id, first.type, 'application/json'],
        [second.id, second.type, 'application/json'],
      ]);
      expect(sent[0]!.metadata).to.include({ [SCHEMA_VERSION_KEY]: 1 });
      expect(sent[1]!.metadata).to.include({ [SCHEMA_VERSION_KEY]: 3, correlationId: 'c-1' });
    });

    it('then reading it back gives the schema version, the recorded time and the caller metadata only', async () => {
      const { fake, store } = setup();
      const appended = { ...event(), schemaVersion: 2, metadata: { correlationId: 'c-1', actor: { id: 'u', kind: 'user' as const } } };
      const result = await store.append('deployment-1', [appended]);
      const [read] = await store.readStream('deployment-1');
      const stored = fake.streamEvents('deployment-1')[0]!;
      expect(read).to.deep.equal({
        id: appended.id,
        stream: 'deployment-1',
        type: appended.type,
        schemaVersion: 2,
        revision: 0,
        position: result.position,
        recordedAt: stored.created,
        data: { replicas: 1 },
        metadata: { correlationId: 'c-1', actor: { id: 'u', kind: 'user' } },
      });
      expect(read!.recordedAt).to.be.instanceOf(Date);
    });

    it('given an event stored by another writer without a schema version, then it reads as version 1', async () => {
      const { fake, store } = setup();
      fake.write('deployment-1', [{ id: randomUUID(), type: 'DeploymentRequested', isJson: true, data: {}, metadata: { source: 'x' } }]);
      const [read] = await store.readStream('deployment-1');
      expect(read!.schemaVersion).to.equal(1);
      expect(read!.metadata).to.deep.equal({ source: 'x' });
    });

    it('given a stream at revision 1, when appending at expected 0, then ConcurrencyConflict names both revisions', async () => {
      const { store } = setup();
      await store.append('deployment-1', [event(), event()]);
      const error = await rejection(store.append('deployment-1', [event()], { expected: 0 }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ stream: 'deployment-1', expected: 0, actual: 1 });
    });

    it('given no stream, when appending with stream_exists, then ConcurrencyConflict says there is no stream', async () => {
      const { store } = setup();
      const error = await rejection(store.append('deployment-1', [event()], { expected: 'stream_exists' }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ stream: 'deployment-1', expected: 'stream_exists', actual: 'no_stream' });
    });

    it('given the server reports an exact expectation on a missing stream, then actual is no_stream', async () => {
      const { fake, store } = setup();
      fake.failNext.set(
        'appendToStream',
        new WrongExpectedVersionError(undefined, { streamName: 'deployment-1', expected: 4n, current: 'no_stream' }),
      );
      const error = await rejection(store.append('deployment-1', [event()], { expected: 4 }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ expected: 4, actual: 'no_stream' });
    });

    it('given a tombstoned stream, when appending, then StreamDeleted', async () => {
      const { fake, store } = setup();
      fake.failNext.set('appendToStream', StreamDeletedError.fromStreamName('deployment-1'));
      const error = await rejection(store.append('deployment-1', [event()]));
      expect(error).to.be.instanceOf(StreamDeleted);
      expect(error).to.include({ stream: 'deployment-1' });
    });

    it('given an error the adapter does not know, then it reaches the caller unchanged', async () => {
      const { fake, store } = setup();
      const failure = new Error('connection refused');
      fake.failNext.set('appendToStream', failure);
      expect(await rejection(store.append('deployment-1', [event()]))).to.equal(failure);
    });

    it('given events already appended, when the same append comes again, then it is a duplicate with the original result', async () => {
      const { fake, store } = setup();
      const batch = [event(), { ...event(), schemaVersion: 2, metadata: { correlationId: 'c-1', at: undefined } }];
      const original = await store.append('deployment-1', batch, { expected: 'no_stream' });
      await store.append('deployment-1', [event()]);
      const again = await store.append('deployment-1', batch, { expected: 'no_stream' });
      expect(again).to.deep.equal({ ...original, duplicate: true });
      expect(fake.streamEvents('deployment-1')).to.have.length(3);
    });

    it('given a replay of events that truncate-before now hides, then it is a duplicate at their position', async () => {
      const { fake, store } = setup();
      const batch = [event()];
      const original = await store.append('deployment-1', batch);
      await store.append('deployment-1', [event()]);
      await store.setStreamMetadata('deployment-1', { truncateBefore: 1 });
      const again = await store.append('deployment-1', batch);
      expect(again).to.deep.equal({ ...original, duplicate: true });
      expect(fake.streamEvents('deployment-1')).to.have.length(2);
    });

    it('given an event id already stored, when it comes with different content, then DuplicateEventConflict', async () => {
      const { fake, store } = setup();
      const first = event('DeploymentRequested', { replicas: 1 });
      await store.append('deployment-1', [first]);
      const error = await rejection(store.append('deployment-1', [{ ...first, data: { replicas: 2 } }]));
      expect(error).to.be.instanceOf(DuplicateEventConflict);
      expect(error).to.deep.include({ stream: 'deployment-1', eventIds: [first.id] });
      expect(fake.streamEvents('deployment-1')).to.have.length(1);
    });

    it('given an event id already stored, when it comes with another schema version, then DuplicateEventConflict', async () => {
      const { store } = setup();
      const first = event();
      await store.append('deployment-1', [first]);
      const error = await rejection(store.append('deployment-1', [{ ...first, schemaVersion: 2 }]));
      expect(error).to.be.instanceOf(DuplicateEventConflict);
    });

    it('given part of a batch already stored, when the batch comes again, then DuplicateEventConflict names the stored ids', async () => {
      const { fake, store } = setup();
      const stored = event();
      await store.append('deployment-1', [stored], { expected: 'no_stream' });
      const error = await rejection(store.append('deployment-1', [stored, event()], { expected: 'no_stream' }));
      expect(error).to.be.instanceOf(DuplicateEventConflict);
      expect(error).to.deep.include({ eventIds: [stored.id] });
      expect(fake.streamEvents('deployment-1')).to.have.length(1);
    });

    describe('given a request the port rejects, then nothing reaches the client', () => {
      const bad: [string, () => [string, EventToAppend[], Parameters<KurrentDbEventStore['append']>[2]]][] = [
        ['an event id that is not a UUID', () => ['deployment-1', [{ ...event(), id: 'not-a-uuid' }], {}]],
        ['no events', () => ['deployment-1', [], {}]],
        ['a stream name reserved by the store', () => ['$deployment-1', [event()], {}]],
        ['a negative expected revision', () => ['deployment-1', [event()], { expected: -1 }]],
        ['an event type with a space', () => ['deployment-1', [event('Deployment Requested')], {}]],
      ];
      for (const [name, request] of bad) {
        it(name, async () => {
          const { fake, store } = setup();
          const error = await rejection(store.append(...request()));
          expect(error).to.be.instanceOf(InvalidEventStoreRequest);
          expect(fake.calls).to.deep.equal([]);
        });
      }
    });
  });

  describe('appendMany', () => {
    it('given two streams, then one multiStreamAppend carries both, with metadata of strings only, and the results name each last event', async () => {
      const { fake, store } = setup();
      await store.append('quota-global', [event()]);
      const scaled = { ...event('DeploymentScaled'), schemaVersion: 2, metadata: { correlationId: 'c-1', actor: { id: 'u', kind: 'user' as const } } };
      const results = await store.appendMany([
        { stream: 'deployment-1', events: [event(), scaled], expected: 'no_stream' },
        { stream: 'quota-global', events: [event('ChangeAdmitted')], expected: 0 },
      ]);

      const [requests] = fake.callsTo('multiStreamAppend')[0]!.args as [AppendStreamRequest[]];
      expect(requests.map((r) => [r.streamName, r.expectedState])).to.deep.equal([['deployment-1', 'no_stream'], ['quota-global', 0n]]);
      expect(requests[0]!.events[1]!.metadata).to.deep.include({
        [CALLER_METADATA_KEY]: JSON.stringify(scaled.metadata),
        [SCHEMA_VERSION_KEY]: '2',
      });
      const [deployment, quota] = [fake.streamEvents('deployment-1'), fake.streamEvents('quota-global')];
      expect(results).to.deep.equal([
        { revision: 1, position: positionOf(deployment[1]!), duplicate: false },
        { revision: 1, position: positionOf(quota[1]!), duplicate: false },
      ]);
    });

    it('then its events read back with the caller metadata and schema version they were appended with', async () => {
      const { store } = setup();
      const scaled = { ...event('DeploymentScaled'), schemaVersion: 2, metadata: { correlationId: 'c-1', actor: { id: 'u', kind: 'user' as const } } };
      await store.appendMany([{ stream: 'deployment-1', events: [scaled] }, { stream: 'quota-global', events: [event()] }]);
      const [read] = await store.readStream('deployment-1');
      expect(read).to.deep.include({ schemaVersion: 2, metadata: scaled.metadata, data: scaled.data });
      const { events } = await store.readAll();
      expect(events.map((e) => [e.stream, e.schemaVersion, e.metadata])).to.deep.equal([
        ['deployment-1', 2, scaled.metadata],
        ['quota-global', 1, {}],
      ]);
    });

    it('given one stream not in its expected state, then ConcurrencyConflict names it and no stream is written', async () => {
      const { fake, store } = setup();
      await store.append('quota-global', [event(), event()]);
      const error = await rejection(
        store.appendMany([
          { stream: 'deployment-1', events: [event()], expected: 'no_stream' },
          { stream: 'quota-global', events: [event()], expected: 0 },
        ]),
      );
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ stream: 'quota-global', expected: 0, actual: 1 });
      expect(fake.streamEvents('deployment-1')).to.deep.equal([]);
    });

    it('given a call already stored, when it comes again with exact expectations, then each append is a duplicate of the original', async () => {
      const { fake, store } = setup();
      const call = [
        { stream: 'deployment-1', events: [event(), event()], expected: 'no_stream' as const },
        { stream: 'quota-global', events: [event()], expected: 'no_stream' as const },
      ];
      const original = await store.appendMany(call);
      await store.append('quota-global', [event()]);
      expect(await store.appendMany(call)).to.deep.equal(original.map((r) => ({ ...r, duplicate: true })));
      expect(fake.log).to.have.length(4);
    });

    it('given a call already stored, when the server replays it by ids, then each append is a duplicate of the original', async () => {
      const { fake, store } = setup();
      const call = [{ stream: 'deployment-1', events: [event()] }, { stream: 'quota-global', events: [event()] }];
      const original = await store.appendMany(call);
      expect(await store.appendMany(call)).to.deep.equal(original.map((r) => ({ ...r, duplicate: true })));
      expect(fake.log).to.have.length(2);
    });

    it('given part of an append already stored, then DuplicateEventConflict names the stored ids and no stream is written', async () => {
      const { fake, store } = setup();
      const stored = event();
      await store.append('deployment-1', [stored]);
      const error = await rejection(
        store.appendMany([
          { stream: 'quota-global', events: [event()] },
          { stream: 'deployment-1', events: [stored, event()], expected: 'no_stream' },
        ]),
      );
      expect(error).to.be.instanceOf(DuplicateEventConflict);
      expect(error).to.deep.include({ stream: 'deployment-1', eventIds: [stored.id] });
      expect(fake.streamEvents('quota-global')).to.deep.equal([]);
    });

    it('given the server replays one append by its ids and writes another, then the results say which was written', async () => {
      const { fake, store } = setup();
      const stored = event();
      const original = await store.append('deployment-1', [stored]);
      const results = await store.appendMany([
        { stream: 'deployment-1', events: [stored] },
        { stream: 'quota-global', events: [event()] },
      ]);
      expect(results[0]).to.deep.equal({ ...original, duplicate: true });
      expect(results[1]).to.deep.equal({ revision: 0, position: positionOf(fake.streamEvents('quota-global')[0]!), duplicate: false });
    });

    it('given a stored event id with other content in a retried call, then DuplicateEventConflict', async () => {
      const { store } = setup();
      const first = event('DeploymentRequested', { replicas: 1 });
      const call = [{ stream: 'deployment-1', events: [first], expected: 'no_stream' as const }, { stream: 'quota-global', events: [event()] }];
      await store.appendMany(call);
      const changed = [{ ...call[0]!, events: [{ ...first, data: { replicas: 2 } }] }, call[1]!];
      expect(await rejection(store.appendMany(changed))).to.be.instanceOf(DuplicateEventConflict).and.deep.include({ eventIds: [first.id] });
    });

    const refusals: [string, () => unknown, (error: unknown) => void][] = [
      [
        'a tombstoned stream, then StreamDeleted names it',
        () => new StreamTombstonedError(serviceError(9), { stream: 'deployment-1' }),
        (error) => expect(error).to.be.instanceOf(StreamDeleted).and.include({ stream: 'deployment-1' }),
      ],
      [
        'a transaction larger than the server takes, then InvalidEventStoreRequest',
        () => new TransactionMaxSizeExceededError(serviceError(10), { size: 5_000_000, maxSize: 4_194_304 }),
        (error) => expect(error).to.be.instanceOf(InvalidEventStoreRequest).and.have.property('message').that.matches(/^invalid .*4194304/),
      ],
      [
        'a server older than 25.1, then an error that says what the server lacks',
        () => new UnknownError(serviceError(12)),
        (error) => expect(error).to.be.instanceOf(EventStoreError).and.have.property('message').that.matches(/25\.1/),
      ],
    ];
    for (const [name, failure, check] of refusals) {
      it(`given ${name}`, async () => {
        const { fake, store } = setup();
        fake.failNext.set('multiStreamAppend', failure());
        check(await rejection(store.appendMany([{ stream: 'deployment-1', events: [event()] }, { stream: 'quota-global', events: [event()] }])));
      });
    }

    it('given a request the port rejects, then nothing reaches the client', async () => {
      const { fake, store } = setup();
      const error = await rejection(store.appendMany([{ stream: 'deployment-1', events: [event()] }, { stream: 'deployment-1', events: [event()] }]));
      expect(error).to.be.instanceOf(InvalidEventStoreRequest);
      expect(fake.calls).to.deep.equal([]);
    });
  });

  describe('countAfter', () => {
    async function mixedLog(pageSize?: number) {
      const { fake, store } = setup(pageSize);
      const first = await store.append('deployment-1', [event('DeploymentRequested'), event('DeploymentScaled')]);
      fake.writeSystemEvent('$stats-127.0.0.1:2113', '$statsCollected');
      fake.write('deployment-1', [{ id: randomUUID(), type: 'Blob', isJson: false, data: new Uint8Array([1]), metadata: undefined }]);
      await store.append('workload-1', [event('WorkloadRegistered')]);
      await store.append('deployment-2', [event('DeploymentRequested'), event('DeploymentScaled'), event('DeploymentScaled')]);
      return { fake, store, first };
    }

    it('given user, system and binary events, then it counts what readAll returns, with and without filters', async () => {
      const { store } = await mixedLog();
      expect(await store.countAfter(undefined)).to.equal((await store.readAll()).events.length).and.equal(6);
      expect(await store.countAfter(undefined, { filter: { types: ['DeploymentScaled'] } })).to.equal(3);
      expect(await store.countAfter(undefined, { filter: { streamPrefixes: ['deployment-'] } })).to.equal(5);
      expect(await store.countAfter(undefined, { filter: { types: ['DeploymentScaled'], streamPrefixes: ['deployment-2'] } })).to.equal(2);
    });

    it('given a position, then the event at it and those before are not counted', async () => {
      const { store, first } = await mixedLog();
      expect(await store.countAfter(first.position)).to.equal(4);
    });

    it('given a limit and a small page size, then it stops reading once the limit is reached', async () => {
      const { fake, store } = await mixedLog(2);
      const before = fake.callsTo('readAll').length;
      expect(await store.countAfter(undefined, { limit: 3 })).to.equal(3);
      expect(fake.callsTo('readAll').length - before).to.equal(2);
      expect(await store.countAfter(undefined)).to.equal(6);
    });

    it('given a bad position or limit, then InvalidEventStoreRequest and no read', async () => {
      const { fake, store } = setup();
      expect(await rejection(store.countAfter('42'))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(await rejection(store.countAfter(undefined, { limit: 0 }))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(fake.calls).to.deep.equal([]);
    });
  });

  describe('readStream', () => {
    async function streamOf(count: number) {
      const { fake, store } = setup();
      await store.append('deployment-1', Array.from({ length: count }, (_, i) => event('DeploymentScaled', { step: i })));
      return { fake, store };
    }

    it('given no stream, then the read is empty', async () => {
      const { store } = setup();
      expect(await store.readStream('deployment-404')).to.deep.equal([]);
    });

    it('given five events, when reading from 1 to 3, then revisions 1 to 3 come in order', async () => {
      const { fake, store } = await streamOf(5);
      const read = await store.readStream('deployment-1', { from: 1, to: 3 });
      expect(read.map((e) => e.revision)).to.deep.equal([1, 2, 3]);
      const [, options] = fake.callsTo('readStream').at(-1)!.args as [string, { fromRevision: unknown; direction: unknown }];
      expect(options).to.include({ fromRevision: 1n, direction: 'forwards' });
    });

    it('when reading backwards with a limit, then the newest events come first', async () => {
      const { fake, store } = await streamOf(5);
      const read = await store.readStream('deployment-1', { direction: 'backwards', limit: 2 });
      expect(read.map((e) => e.revision)).to.deep.equal([4, 3]);
      const [, options] = fake.callsTo('readStream').at(-1)!.args as [string, object];
      expect(options).to.include({ fromRevision: 'end', direction: 'backwards', maxCount: 2 });
    });

    it('when reading backwards from 3 to 1, then revisions 3 down to 1 come', async () => {
      const { store } = await streamOf(5);
      const read = await store.readStream('deployment-1', { direction: 'backwards', from: 3, to: 1 });
      expect(read.map((e) => e.revision)).to.deep.equal([3, 2, 1]);
    });

    it('given a binary event written by another tool, then reads leave it out', async () => {
      const { fake, store } = await streamOf(1);
      fake.write('deployment-1', [{ id: randomUUID(), type: 'Blob', isJson: false, data: new Uint8Array([1]), metadata: undefined }]);
      await store.append('deployment-1', [event()]);
      expect((await store.readStream('deployment-1')).map((e) => e.revision)).to.deep.equal([0, 2]);
    });

    it('given a soft-deleted stream, then the read is empty', async () => {
      const { store } = await streamOf(2);
      await store.deleteStream('deployment-1');
      expect(await store.readStream('deployment-1')).to.deep.equal([]);
    });

    it('given a tombstoned stream, then StreamDeleted', async () => {
      const { fake, store } = await streamOf(1);
      fake.failNext.set('readStream', StreamDeletedError.fromStreamName('deployment-1'));
      expect(await rejection(store.readStream('deployment-1'))).to.be.instanceOf(StreamDeleted);
    });

    it('given a bad range, then InvalidEventStoreRequest and no read', async () => {
      const { fake, store } = setup();
      expect(await rejection(store.readStream('deployment-1', { from: -1 }))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(fake.calls).to.deep.equal([]);
    });
  });

  describe('readAll', () => {
    async function mixedLog(pageSize?: number) {
      const { fake, store } = setup(pageSize);
      await store.append('deployment-1', [event('DeploymentRequested'), event('DeploymentScaled')]);
      fake.writeSystemEvent('$stats-127.0.0.1:2113', '$statsCollected');
      await store.append('workload-1', [event('WorkloadRegistered')]);
      await store.append('deployment-2', [event('DeploymentRequested')]);
      await store.setStreamMetadata('deployment-2', { maxAge: 60 });
      return { fake, store };
    }

    it('given user and system events, then every user event comes in log order and no system event', async () => {
      const { store } = await mixedLog();
      const { events, checkpoint } = await store.readAll();
      expect(events.map((e) => `${e.stream}:${e.type}`)).to.deep.equal([
        'deployment-1:DeploymentRequested',
        'deployment-1:DeploymentScaled',
        'workload-1:WorkloadRegistered',
        'deployment-2:DeploymentRequested',
      ]);
      const positions = events.map((e) => e.position);
      expect([...positions].sort()).to.deep.equal(positions);
      expect(checkpoint! >= events.at(-1)!.position).to.equal(true);
    });

    it('given a checkpoint, then the event at it is not read again', async () => {
      const { store } = await mixedLog();
      const first = await store.readAll({ limit: 2 });
      expect(first.checkpoint).to.equal(first.events[1]!.position);
      const rest = await store.readAll({ after: first.checkpoint });
      expect(rest.events.map((e) => e.type)).to.deep.equal(['WorkloadRegistered', 'DeploymentRequested']);
    });

    it('given a type filter, then the server filters on an anchored pattern and only those types come', async () => {
      const { fake, store } = await mixedLog();
      const { events } = await store.readAll({ filter: { types: ['DeploymentRequested', 'Workload.Registered'] } });
      expect(events.map((e) => e.stream)).to.deep.equal(['deployment-1', 'deployment-2']);
      const [options] = fake.callsTo('readAll').at(-1)!.args as [{ filter: Filter }];
      expect(options.filter).to.deep.include({
        filterOn: 'eventType',
        regex: '^(?:DeploymentRequested|Workload\\.Registered)$',
      });
    });

    it('given a filter that matches nothing after the last match, then the checkpoint lies past the last match', async () => {
      const { fake, store } = await mixedLog();
      const { events, checkpoint } = await store.readAll({ filter: { types: ['WorkloadRegistered'] } });
      expect(events).to.have.length(1);
      expect(checkpoint).to.equal(positionOf(fake.log.at(-1)!));
      expect((await store.readAll({ after: checkpoint, filter: { types: ['WorkloadRegistered'] } })).events).to.deep.equal([]);
    });

    it('given stream prefixes, then the server filters on stream names', async () => {
      const { fake, store } = await mixedLog();
      const { events } = await store.readAll({ filter: { streamPrefixes: ['workload-'] } });
      expect(events.map((e) => e.type)).to.deep.equal(['WorkloadRegistered']);
      const [options] = fake.callsTo('readAll').at(-1)!.args as [{ filter: Filter }];
      expect(options.filter).to.deep.include({ filterOn: 'streamName', prefixes: ['workload-'] });
    });

    it('given both types and prefixes, then an event must match both', async () => {
      const { store } = await mixedLog();
      const { events } = await store.readAll({
        filter: { types: ['DeploymentRequested'], streamPrefixes: ['deployment-2'] },
      });
      expect(events.map((e) => e.stream)).to.deep.equal(['deployment-2']);
    });

    it('given a filter on a system type, then nothing comes', async () => {
      const { store } = await mixedLog();
      expect((await store.readAll({ filter: { types: ['$metadata'] } })).events).to.deep.equal([]);
    });

    it('given a small page size, then a long scan still returns each event once, in order', async () => {
      const { store } = setup(2);
      const appended = Array.from({ length: 7 }, (_, i) => event(i % 2 === 0 ? 'A' : 'B'));
      for (const e of appended) await store.append(`deployment-${e.id}`, [e]);
      const all = await store.readAll();
      expect(all.events.map((e) => e.id)).to.deep.equal(appended.map((e) => e.id));
      const limited = await store.readAll({ limit: 3, filter: { types: ['A'] } });
      expect(limited.events.map((e) => e.id)).to.deep.equal([appended[0]!.id, appended[2]!.id, appended[4]!.id]);
      expect(limited.checkpoint).to.equal(limited.events[2]!.position);
    });

    it('given an empty store, then no events and no checkpoint; given a checkpoint and nothing new, then the same checkpoint', async () => {
      const { store } = setup();
      expect(await store.readAll()).to.deep.equal({ events: [], checkpoint: undefined });
      const { position } = await store.append('deployment-1', [event()]);
      expect(await store.readAll({ after: position })).to.deep.equal({ events: [], checkpoint: position });
    });

    it('given a checkpoint that is not a position, then InvalidEventStoreRequest and no read', async () => {
      const { fake, store } = setup();
      expect(await rejection(store.readAll({ after: '42' }))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(await rejection(store.readAll({ filter: { types: [''] } }))).to.be.instanceOf(InvalidEventStoreRequest);
      expect(fake.calls).to.deep.equal([]);
    });
  });

  describe('subscribe', () => {
    it('given stored events, then it catches up after the checkpoint and goes on with live events in order', async () => {
      const { store } = setup();
      const first = await store.append('deployment-1', [event('DeploymentRequested')]);
      await store.append('deployment-1', [event('DeploymentScaled')]);
      const subscription = store.subscribe({ after: first.position });
      const iterator = subscription[Symbol.asyncIterator]();
      const caughtUp = await take(iterator, 1);
      await store.append('deployment-2', [event('DeploymentRequested')]);
      const live = await take(iterator, 1);
      expect([...caughtUp, ...live].map((e) => `${e.stream}:${e.revision}`)).to.deep.equal([
        'deployment-1:1',
        'deployment-2:0',
      ]);
      await subscription.close();
    });

    it('given a type filter, then only those types come and system events never do', async () => {
      const { fake, store } = setup();
      await store.append('deployment-1', [event('DeploymentRequested'), event('DeploymentScaled')]);
      const subscription = store.subscribe({ filter: { types: ['DeploymentScaled'] } });
      fake.writeSystemEvent('$stats-1', '$statsCollected');
      await store.append('deployment-1', [event('DeploymentScaled')]);
      const events = await take(subscription[Symbol.asyncIterator](), 2);
      expect(events.map((e) => e.revision)).to.deep.equal([1, 2]);
      await subscription.close();
    });

    it('given prefixes and types, then the server filters on types and the prefixes are checked here', async () => {
      const { fake, store } = setup();
      await store.append('workload-1', [event('DeploymentScaled')]);
      await store.append('deployment-1', [event('DeploymentScaled')]);
      const subscription = store.subscribe({ filter: { types: ['DeploymentScaled'], streamPrefixes: ['deployment-'] }, batchSize: 10 });
      const [received] = await take(subscription[Symbol.asyncIterator](), 1);
      expect(received!.stream).to.equal('deployment-1');
      const [options, readable] = fake.callsTo('subscribeToAll')[0]!.args as [{ filter: Filter }, object];
      expect(options.filter).to.deep.include({ filterOn: 'eventType' });
      expect(readable).to.deep.equal({ highWaterMark: 10 });
      await subscription.close();
    });

    it('when close() is called while waiting, then the wait ends and the server subscription is cancelled', async () => {
      const { fake, store } = setup();
      const subscription = store.subscribe();
      const iterator = subscription[Symbol.asyncIterator]();
      const waiting = iterator.next();
      await subscription.close();
      expect(await waiting).to.deep.equal({ done: true, value: undefined });
      expect(fake.subscriptions[0]!.unsubscribed).to.equal(true);
    });

    it('when the consumer breaks out of for await, then the server subscription is cancelled', async () => {
      const { fake, store } = setup();
      await store.append('deployment-1', [event(), event()]);
      const subscription = store.subscribe();
      const seen: number[] = [];
      for await (const e of subscription) {
        seen.push(e.revision);
        break;
      }
      expect(seen).to.deep.equal([0]);
      expect(fake.subscriptions[0]!.unsubscribed).to.equal(true);
    });

    it('given the subscription fails, then the error reaches the consumer', async () => {
      const { fake, store } = setup();
      const subscription = store.subscribe();
      const failure = new Error('connection lost');
      const waiting = subscription[Symbol.asyncIterator]().next();
      fake.subscriptions[0]!.destroy(failure);
      expect(await rejection(waiting)).to.equal(failure);
      expect(fake.subscriptions[0]!.unsubscribed).to.equal(true);
    });

    it('given the subscription fails before anyone iterates, then the first iteration gets the error', async () => {
      const { fake, store } = setup();
      const subscription = store.subscribe();
      const failure = new Error('access denied');
      fake.subscriptions[0]!.emit('error', failure);
      expect(await rejection(subscription[Symbol.asyncIterator]().next())).to.equal(failure);
      expect(fake.subscriptions[0]!.unsubscribed).to.equal(true);
    });

    it('given a bad checkpoint, then it throws before subscribing', () => {
      const { fake, store } = setup();
      expect(() => store.subscribe({ after: 'nowhere' })).to.throw(InvalidEventStoreRequest);
      expect(fake.calls).to.deep.equal([]);
    });
  });

  describe('stream metadata', () => {
    it('given metadata set through the port, then KurrentDB gets its own keys and the custom ones beside them', async () => {
      const { fake, store } = setup();
      await store.setStreamMetadata('deployment-1', { maxAge: 3600, maxCount: 10, truncateBefore: 2, custom: { owner: 'team-a' } });
      const [, sent] = fake.callsTo('setStreamMetadata')[0]!.args as [string, KurrentStreamMetadata];
      expect(sent).to.deep.equal({ owner: 'team-a', maxAge: 3600, maxCount: 10, truncateBefore: 2 });
      expect(await store.getStreamMetadata('deployment-1')).to.deep.equal({
        maxAge: 3600,
        maxCount: 10,
        truncateBefore: 2,
        custom: { owner: 'team-a' },
      });
    });

    it('given no metadata, then an empty object', async () => {
      const { store } = setup();
      expect(await store.getStreamMetadata('deployment-1')).to.deep.equal({});
    });

    it('given an access list set outside Sentinel, then writing metadata keeps it', async () => {
      const { fake, store } = setup();
      fake.metadata.set('deployment-1', { acl: { readRoles: ['$admins'] }, maxAge: 5 });
      await store.setStreamMetadata('deployment-1', { maxCount: 3 });
      expect(fake.metadata.get('deployment-1')).to.deep.equal({ acl: { readRoles: ['$admins'] }, maxCount: 3 });
      expect(await store.getStreamMetadata('deployment-1')).to.deep.equal({ maxCount: 3 });
    });

    it('given a custom key that KurrentDB owns, then InvalidEventStoreRequest names it and nothing is written', async () => {
      const { fake, store } = setup();
      const error = await rejection(store.setStreamMetadata('deployment-1', { custom: { maxAge: 1, $tb: 2 } }));
      expect(error).to.be.instanceOf(InvalidEventStoreRequest);
      expect((error as InvalidEventStoreRequest).issues.map((i) => i.path)).to.deep.equal(['custom.maxAge', 'custom.$tb']);
      expect(fake.calls).to.deep.equal([]);
    });

    it('given a soft-deleted stream, then truncate-before reads as the largest safe integer', async () => {
      const { store } = setup();
      await store.append('deployment-1', [event()]);
      await store.deleteStream('deployment-1');
      expect(await store.getStreamMetadata('deployment-1')).to.deep.equal({ truncateBefore: Number.MAX_SAFE_INTEGER });
    });
  });

  describe('deleteStream', () => {
    const cases: [string, Parameters<KurrentDbEventStore['deleteStream']>[1], unknown][] = [
      ['any', { expected: 'any' }, 'any'],
      ['nothing', undefined, 'any'],
      ['an exact revision', { expected: 1 }, 1n],
    ];
    for (const [name, options, state] of cases) {
      it(`given expected ${name}, then the client deletes with ${String(state)}`, async () => {
        const { fake, store } = setup();
        await store.append('deployment-1', [event(), event()]);
        await store.deleteStream('deployment-1', options);
        const [, sent] = fake.callsTo('deleteStream')[0]!.args as [string, { expectedRevision: unknown }];
        expect(sent.expectedRevision).to.equal(state);
      });
    }

    it('given expected no_stream on a missing stream, then the client deletes with no_stream', async () => {
      const { fake, store } = setup();
      await store.deleteStream('deployment-1', { expected: 'no_stream' });
      const [, sent] = fake.callsTo('deleteStream')[0]!.args as [string, { expectedRevision: unknown }];
      expect(sent.expectedRevision).to.equal('no_stream');
    });

    it('given expected stream_exists, then it deletes at the revision the stream is at', async () => {
      const { fake, store } = setup();
      await store.append('deployment-1', [event(), event(), event()]);
      await store.deleteStream('deployment-1', { expected: 'stream_exists' });
      const [, sent] = fake.callsTo('deleteStream')[0]!.args as [string, { expectedRevision: unknown }];
      expect(sent.expectedRevision).to.equal(2n);
    });

    it('given expected stream_exists and no stream, then ConcurrencyConflict and no delete', async () => {
      const { fake, store } = setup();
      const error = await rejection(store.deleteStream('deployment-1', { expected: 'stream_exists' }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ expected: 'stream_exists', actual: 'no_stream' });
      expect(fake.callsTo('deleteStream')).to.deep.equal([]);
    });

    it('given the stream moved on, then ConcurrencyConflict with the actual revision', async () => {
      const { store } = setup();
      await store.append('deployment-1', [event(), event()]);
      const error = await rejection(store.deleteStream('deployment-1', { expected: 0 }));
      expect(error).to.be.instanceOf(ConcurrencyConflict);
      expect(error).to.include({ expected: 0, actual: 1 });
    });

    it('given a soft-deleted stream, when appending again, then revisions go on', async () => {
      const { store } = setup();
      await store.append('deployment-1', [event(), event()]);
      await store.deleteStream('deployment-1');
      const result = await store.append('deployment-1', [event()]);
      expect(result.revision).to.equal(2);
    });
  });

  describe('ping and close', () => {
    it('ping reads the head of the log and passes failures on', async () => {
      const { fake, store } = setup();
      await store.ping();
      const [options] = fake.callsTo('readAll')[0]!.args as [object];
      expect(options).to.include({ fromPosition: 'end', direction: 'backwards', maxCount: 1 });
      const failure = new Error('unreachable');
      fake.failNext.set('readAll', failure);
      expect(await rejection(store.ping())).to.equal(failure);
    });

    it('close disposes the client', async () => {
      const { fake, store } = setup();
      await store.close();
      expect(fake.disposed).to.equal(true);
    });

    it('connect builds a store on a real client without reaching the server', async () => {
      const store = KurrentDbEventStore.connect('kurrentdb://127.0.0.1:1?tls=false');
      expect(store).to.be.instanceOf(KurrentDbEventStore);
      await store.close();
    });
  });

  it('keeps its own metadata keys out of what readers see', async () => {
    const { fake, store } = setup();
    await store.append('deployment-1', [event()]);
    expect(fake.streamEvents('deployment-1')[0]!.metadata).to.have.keys(SCHEMA_VERSION_KEY, APPEND_ID_KEY);
    const { events } = await store.readAll();
    expect(events[0]!.metadata).to.deep.equal({});
  });
});
