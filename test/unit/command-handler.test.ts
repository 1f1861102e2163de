// The command handler against the real PostgreSQL event store on embedded PGlite: metadata, no-ops, refusals,
// replays through derived event ids, conflict retries, the state kept between commands, and the outcomes it
// reports to metrics.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { z } from 'zod';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import type { AggregateStateMetrics } from '../../commands/aggregate-cache.js';
import { clusters } from '../../commands/aggregates.js';
import {
  CommandHandler,
  ConflictAfterRetries,
  metadataOf,
  type Aggregate,
  type CommandContext,
  type CommandMetrics,
} from '../../commands/command-handler.js';
import type { Cluster, ClusterCommand, ClusterSpec } from '../../domain/cluster.js';
import { defineEvents, InvalidTransition, NotFound, type EventOf } from '../../domain/decider.js';
import { ConcurrencyConflict, type EventStore } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
import { rejection } from '../support/rejection.js';

const spec: ClusterSpec = {
  name: 'gpu-east',
  apiServer: 'https://10.0.0.1:6443',
  credentials: { source: 'in-cluster' },
  region: 'us-east-1',
  labels: { team: 'ml' },
  gpuSkus: ['nvidia-a100-80gb'],
};

const context = (extra: Partial<CommandContext> = {}): CommandContext => ({
  actor: { id: 'user-1', kind: 'user' },
  correlationId: randomUUID(),
  causationId: randomUUID(),
  ...extra,
});

/** Ids the way an Idempotency-Key derives them: the same for every run of one request. */
const fixedIds = () => {
  const ids = [randomUUID(), randomUUID(), randomUUID()];
  return (index: number) => ids[index]!;
};

const register = (clusterId: string): ClusterCommand => ({ type: 'RegisterCluster', clusterId, spec });

interface Observation {
  command: string;
  outcome: string;
}

function recordingMetrics() {
  const observed: Observation[] = [];
  const retried: string[] = [];
  const metrics: CommandMetrics = {
    observe(command, outcome, seconds) {
      expect(seconds).to.be.at.least(0);
      observed.push({ command, outcome });
    },
    conflictRetried(command) {
      retried.push(command);
    },
  };
  return { metrics, observed, retried };
}

/** Delegates to a real store; `beforeAppend` runs first and may throw or write in the way. */
class InterceptedStore extends ForwardingEventStore {
  appendCalls = 0;
  constructor(
    inner: EventStore,
    private readonly beforeAppend: (stream: string, call: number) => Promise<void>,
  ) {
    super(inner);
  }
  override async append(...args: Parameters<EventStore['append']>) {
    this.appendCalls += 1;
    await this.beforeAppend(args[0], this.appendCalls);
    return this.inner.append(...args);
  }
  override async close() {}
}

/** A store whose first `times` appends fail with a conflict that names the stream's real current revision. */
function conflicting(inner: EventStore, times: number): InterceptedStore {
  return new InterceptedStore(inner, async (stream, call) => {
    if (call > times) return;
    const last = (await inner.readStream(stream)).at(-1);
    throw new ConcurrencyConflict(stream, 'any', last?.revision ?? 'no_stream');
  });
}

// A catalogue whose event is at schema version 2, to show the handler stamps the catalogue's version.
const counterEvents = defineEvents({
  CounterIncremented: { version: 2, schema: z.object({ by: z.number() }), upcast: { 1: (data) => ({ by: 1, ...(data as object) }) } },
});
type CounterEvent = EventOf<typeof counterEvents>;
const counters: Aggregate<{ type: 'Increment'; by: number }, CounterEvent, number> = {
  category: 'counter',
  decider: {
    initialState: 0,
    evolve: (total, event) => total + event.data.by,
    decide: (command) => [{ type: 'CounterIncremented', data: { by: command.by } }],
  },
  events: counterEvents,
};

describe('CommandHandler on the postgres event store (PGlite)', () => {
  let db: Database;
  let store: PostgresEventStore;
  let handler: CommandHandler;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    handler = new CommandHandler(store);
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });

  describe('load', () => {
    it('given no stream, then the initial state at revision -1 and no position', async () => {
      const loaded = await handler.load(clusters, randomUUID());
      expect(loaded).to.deep.equal({ state: { status: 'absent' }, revision: -1, position: null, recorded: [] });
    });

    it('given a registered and cordoned cluster, then the folded state and the last revision and position', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const cordoned = await handler.execute(clusters, id, { type: 'CordonCluster', clusterId: id, reason: 'drain' }, context());
      const loaded = await handler.load(clusters, id);
      expect(loaded.state).to.deep.include({ status: 'cordoned', id, cordonReason: 'drain' });
      expect(loaded.revision).to.equal(1);
      expect(loaded.position).to.equal(cordoned.position);
      expect(loaded.recorded.map((e) => e.type)).to.deep.equal(['ClusterRegistered', 'ClusterCordoned']);
    });
  });

  describe('execute', () => {
    it('given no cluster, when registered, then one event in cluster-<id> with the command context as metadata', async () => {
      const id = randomUUID();
      const ctx = context({
        actor: { id: 'svc-ci', kind: 'service' },
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        source: 'api',
      });
      const result = await handler.execute(clusters, id, register(id), ctx);

      expect(result).to.include({ id, revision: 0, appended: 1 });
      expect(result.position).to.be.a('string');
      const [event, ...rest] = await store.readStream(`cluster-${id}`);
      expect(rest).to.deep.equal([]);
      expect(event).to.deep.include({ type: 'ClusterRegistered', schemaVersion: 1, revision: 0, position: result.position });
      expect(event!.data).to.deep.equal({ clusterId: id, spec });
      expect(event!.metadata).to.deep.equal({
        correlationId: ctx.correlationId,
        causationId: ctx.causationId,
        actor: { id: 'svc-ci', kind: 'service' },
        traceparent: ctx.traceparent,
        source: 'api',
      });
    });

    it('given no traceparent or source, then the metadata carries neither key', async () => {
      const id = randomUUID();
      const ctx = context();
      await handler.execute(clusters, id, register(id), ctx);
      const [event] = await store.readStream(`cluster-${id}`);
      expect(event!.metadata).to.deep.equal({ correlationId: ctx.correlationId, causationId: ctx.causationId, actor: ctx.actor });
    });

    it('given event ids, then the stored events carry exactly those ids', async () => {
      const id = randomUUID();
      const eventIds = fixedIds();
      await handler.execute(clusters, id, register(id), context({ eventIds }));
      const [event] = await store.readStream(`cluster-${id}`);
      expect(event!.id).to.equal(eventIds(0));
    });

    it('given an event type at schema version 2, then the event is stored with schemaVersion 2', async () => {
      const id = randomUUID();
      const result = await handler.execute(counters, id, { type: 'Increment', by: 3 }, context());
      expect(result).to.include({ revision: 0, appended: 1 });
      const [event] = await store.readStream(`counter-${id}`);
      expect(event).to.deep.include({ type: 'CounterIncremented', schemaVersion: 2, data: { by: 3 } });
      expect((await handler.load(counters, id)).state).to.equal(3);
    });

    it('given a cordoned cluster, when cordoned again, then nothing is appended and the current revision and position come back', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const cordoned = await handler.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());

      const again = await handler.execute(clusters, id, { type: 'CordonCluster', clusterId: id, reason: 'again' }, context());

      expect(again).to.deep.equal({ id, revision: 1, position: cordoned.position, appended: 0 });
      expect(await store.readStream(`cluster-${id}`)).to.have.length(2);
    });

    it('given no cluster, when updated, then NotFound propagates and nothing is appended', async () => {
      const id = randomUUID();
      const error = await rejection(handler.execute(clusters, id, { type: 'UpdateCluster', clusterId: id, changes: { region: 'eu' } }, context()));
      expect(error).to.be.instanceOf(NotFound);
      expect(await store.readStream(`cluster-${id}`)).to.deep.equal([]);
    });

    it('given a registered cluster, when registered again with fresh ids, then InvalidTransition and the stream keeps one event', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const error = await rejection(handler.execute(clusters, id, register(id), context()));
      expect(error).to.be.instanceOf(InvalidTransition);
      expect(await store.readStream(`cluster-${id}`)).to.have.length(1);
    });

    it('given a function-form command that throws, then the error propagates and nothing is appended', async () => {
      const id = randomUUID();
      const boom = new Error('facts could not be loaded');
      const error = await rejection(
        handler.execute(clusters, id, async () => {
          throw boom;
        }, context()),
      );
      expect(error).to.equal(boom);
      expect(await store.readStream(`cluster-${id}`)).to.deep.equal([]);
    });
  });

  describe('replays through derived event ids', () => {
    it('given a command that landed, when run again with the same ids, then the first result comes back instead of InvalidTransition', async () => {
      const id = randomUUID();
      const eventIds = fixedIds();
      const first = await handler.execute(clusters, id, register(id), context({ eventIds }));

      const second = await handler.execute(clusters, id, register(id), context({ eventIds }));

      expect(second).to.deep.equal({ id, revision: first.revision, position: first.position, appended: 0 });
      expect(await store.readStream(`cluster-${id}`)).to.have.length(1);
    });

    it('given the stream moved on since, when retried with the same ids, then the revision of the first answer, not the current one', async () => {
      const id = randomUUID();
      const eventIds = fixedIds();
      const first = await handler.execute(clusters, id, register(id), context({ eventIds }));
      await handler.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());

      const retried = await handler.execute(clusters, id, register(id), context({ eventIds }));

      expect(retried).to.deep.equal({ id, revision: 0, position: first.position, appended: 0 });
      expect(await store.readStream(`cluster-${id}`)).to.have.length(2);
    });

    it('given the same ids and a decision that would now differ, then the retry is still answered from the stream', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const eventIds = fixedIds();
      const update = { type: 'UpdateCluster', clusterId: id, changes: { region: 'eu-west-1' } } as const;
      const first = await handler.execute(clusters, id, update, context({ eventIds }));

      // Decided afresh, this update would now be a no-op; the replay keeps the first answer.
      const retried = await handler.execute(clusters, id, update, context({ eventIds }));

      expect(first).to.include({ revision: 1, appended: 1 });
      expect(retried).to.deep.equal({ ...first, appended: 0 });
    });
  });

  describe('concurrency conflicts', () => {
    it('given appends that conflict twice, then the third attempt lands and the command is decided three times', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const flaky = conflicting(store, 2);
      const metrics = recordingMetrics();
      const retrying = new CommandHandler(flaky, { maxAttempts: 5, metrics: metrics.metrics });
      const seen: Cluster['status'][] = [];

      const result = await retrying.execute(
        clusters,
        id,
        async (state): Promise<ClusterCommand> => {
          seen.push(state.status);
          return { type: 'CordonCluster', clusterId: id };
        },
        context(),
      );

      expect(result).to.include({ revision: 1, appended: 1 });
      expect(flaky.appendCalls).to.equal(3);
      expect(seen).to.deep.equal(['active', 'active', 'active']);
      expect(metrics.retried).to.deep.equal(['CordonCluster', 'CordonCluster']);
      expect(metrics.observed).to.deep.equal([{ command: 'CordonCluster', outcome: 'ok' }]);
      expect(await store.readStream(`cluster-${id}`)).to.have.length(2);
    });

    it('given another writer wins each of the first two races, then the function-form command sees its events before the third attempt', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      // The rival writes through the real store, so the conflicts are the store's own.
      const raced = new InterceptedStore(store, async (stream, call) => {
        if (call <= 2) await store.append(stream, [{ id: randomUUID(), type: 'ClusterUpdated', data: { clusterId: id, changes: { labels: { rival: String(call) } } } }]);
      });
      const retrying = new CommandHandler(raced, { maxAttempts: 5 });
      const seenLabels: unknown[] = [];

      const result = await retrying.execute(
        clusters,
        id,
        async (state): Promise<ClusterCommand> => {
          seenLabels.push(state.status === 'absent' ? undefined : state.spec.labels);
          return { type: 'UpdateCluster', clusterId: id, changes: { region: 'eu-central-1' } };
        },
        context(),
      );

      expect(seenLabels).to.deep.equal([{ team: 'ml' }, { rival: '1' }, { rival: '2' }]);
      expect(result).to.include({ revision: 3, appended: 1 });
      const types = (await store.readStream(`cluster-${id}`)).map((e) => e.type);
      expect(types).to.deep.equal(['ClusterRegistered', 'ClusterUpdated', 'ClusterUpdated', 'ClusterUpdated']);
    });

    /** A rival that records a label change on the cluster before each of the first `races` appends, as `kind`. */
    const rivalAs = (id: string, kind: 'system' | 'user', races: number) =>
      new InterceptedStore(store, async (stream, call) => {
        if (call > races) return;
        const change = { clusterId: id, changes: { labels: { rival: String(call) } } };
        await store.append(stream, [{ id: randomUUID(), type: 'ClusterUpdated', data: change, metadata: { actor: { id: 'r', kind } } }]);
      });

    it('given the system records events on the stream under each of more attempts than maxAttempts, then the command still lands: losing to bookkeeping only means deciding again', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const retrying = new CommandHandler(rivalAs(id, 'system', 8), { maxAttempts: 3 });

      const result = await retrying.execute(clusters, id, { type: 'UpdateCluster', clusterId: id, changes: { region: 'eu-central-1' } }, context());

      expect(result).to.include({ revision: 9, appended: 1 });
    });

    it('given another command wins each race, then ConflictAfterRetries after maxAttempts, as before', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const retrying = new CommandHandler(rivalAs(id, 'user', 8), { maxAttempts: 3 });

      const error = await rejection(retrying.execute(clusters, id, { type: 'UpdateCluster', clusterId: id, changes: { region: 'eu-central-1' } }, context()));

      expect(error).to.be.instanceOf(ConflictAfterRetries);
      expect(error).to.include({ attempts: 3 });
      expect(await store.readStream(`cluster-${id}`)).to.have.length(4);
    });

    it('given every append conflicts, then ConflictAfterRetries after maxAttempts with the current revision, and nothing appended', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      await handler.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());
      const stuck = conflicting(store, Infinity);
      const metrics = recordingMetrics();
      const retrying = new CommandHandler(stuck, { maxAttempts: 3, metrics: metrics.metrics });

      const error = await rejection(retrying.execute(clusters, id, { type: 'UncordonCluster', clusterId: id }, context()));

      expect(error).to.be.instanceOf(ConflictAfterRetries);
      expect(error).to.include({ stream: `cluster-${id}`, attempts: 3, currentRevision: 1 });
      expect((error as Error).message).to.match(/3 attempts.*revision 1/);
      expect(stuck.appendCalls).to.equal(3);
      expect(metrics.retried).to.have.length(2);
      expect(metrics.observed).to.deep.equal([{ command: 'UncordonCluster', outcome: 'conflict' }]);
      expect(await store.readStream(`cluster-${id}`)).to.have.length(2);
    });

    it('given a new stream that keeps conflicting, then ConflictAfterRetries names no_stream', async () => {
      const id = randomUUID();
      const error = await rejection(new CommandHandler(conflicting(store, Infinity), { maxAttempts: 2 }).execute(clusters, id, register(id), context()));
      expect(error).to.be.instanceOf(ConflictAfterRetries);
      expect(error).to.include({ attempts: 2, currentRevision: 'no_stream' });
    });

    it('given the default options, then five attempts', async () => {
      const id = randomUUID();
      const stuck = conflicting(store, Infinity);
      const error = await rejection(new CommandHandler(stuck).execute(clusters, id, register(id), context()));
      expect(error).to.include({ attempts: 5 });
      expect(stuck.appendCalls).to.equal(5);
    });

    it('given ten writers racing to set distinct regions on one cluster, then each ends ok or ConflictAfterRetries and every ok is one event', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const regions = Array.from({ length: 10 }, (_, i) => `region-${i}`);
      const metrics = recordingMetrics();
      const racing = new CommandHandler(store, { metrics: metrics.metrics });

      const settled = await Promise.allSettled(
        regions.map((region) => racing.execute(clusters, id, { type: 'UpdateCluster', clusterId: id, changes: { region } }, context())),
      );

      const ok = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value);
      const failed = settled.filter((s) => s.status === 'rejected').map((s) => s.reason as unknown);
      for (const reason of failed) expect(reason).to.be.instanceOf(ConflictAfterRetries);
      for (const result of ok) expect(result.appended).to.equal(1);
      expect(ok.length).to.be.at.least(1);
      // The writers really raced: some were decided again, or gave up.
      expect(metrics.retried.length + failed.length).to.be.greaterThan(0);
      expect(metrics.observed.filter((o) => o.outcome === 'ok')).to.have.length(ok.length);

      const updates = (await store.readStream(`cluster-${id}`)).slice(1);
      expect(updates).to.have.length(ok.length);
      expect(new Set(ok.map((r) => r.revision)).size).to.equal(ok.length);
      expect(updates.map((e) => e.revision).sort((a, b) => a - b)).to.deep.equal(ok.map((r) => r.revision).sort((a, b) => a - b));
      const state = (await handler.load(clusters, id)).state;
      expect(state.status !== 'absent' && state.spec.region).to.equal((updates.at(-1)!.data['changes'] as { region: string }).region);
    });
  });

  describe('the folded state kept between commands', () => {
    const loads = () => {
      const from: string[] = [];
      const stateMetrics: AggregateStateMetrics = { loaded: (_category, source) => void from.push(source), snapshot: () => undefined };
      return { from, stateMetrics };
    };

    it('given a cluster cordoned through another handler, when loaded again, then the state read forward from memory is the full fold', async () => {
      const id = randomUUID();
      const { from, stateMetrics } = loads();
      const cached = new CommandHandler(store, { stateMetrics });
      await cached.execute(clusters, id, register(id), context());
      await handler.execute(clusters, id, { type: 'CordonCluster', clusterId: id, reason: 'drain' }, context());

      const state = await cached.loadState(clusters, id);

      const full = await handler.load(clusters, id);
      expect(state).to.deep.equal({ state: full.state, revision: full.revision, position: full.position });
      expect(from).to.deep.equal(['stream', 'cache']);
    });

    it('given a cache of two streams, when a third is loaded, then the least recently used one is read from its start again', async () => {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      for (const id of [a, b, c]) await handler.execute(clusters, id, register(id), context());
      const { from, stateMetrics } = loads();
      const small = new CommandHandler(store, { cacheSize: 2, stateMetrics });

      for (const id of [a, b, a, c, a, b]) await small.loadState(clusters, id);

      // b was the least recently used when c came in.
      expect(from).to.deep.equal(['stream', 'stream', 'cache', 'stream', 'cache', 'stream']);
    });

    it('given a conflict, then the stream is read from its start for the next attempt', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const { from, stateMetrics } = loads();
      const retrying = new CommandHandler(conflicting(store, 1), { stateMetrics });
      await retrying.loadState(clusters, id);

      await retrying.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());

      expect(from).to.deep.equal(['stream', 'cache', 'stream']);
    });

    it('given a conflict on another stream (a gate admitting to its ledger), then the state stays: the next attempt reads forward from memory', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      const { from, stateMetrics } = loads();
      const retrying = new CommandHandler(store, { stateMetrics });
      await retrying.loadState(clusters, id);
      let admits = 0;

      await retrying.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context(), async ({ events }) => ({
        events,
        admit: async (append) => {
          admits += 1;
          if (admits === 1) throw new ConcurrencyConflict('quota-global', 0, 1);
          return store.append(append.stream, append.events, { expected: append.expected ?? 'any' });
        },
      }));

      expect(admits).to.equal(2);
      expect(from).to.deep.equal(['stream', 'cache', 'cache']);
    });

    it('given a stream deleted through the handler\'s store, then its state is read afresh: absent', async () => {
      const id = randomUUID();
      const cached = new CommandHandler(store);
      await cached.execute(clusters, id, register(id), context());
      expect((await cached.loadState(clusters, id)).state.status).to.equal('active');

      await cached.store.deleteStream(`cluster-${id}`);

      expect(await cached.loadState(clusters, id)).to.deep.equal({ state: { status: 'absent' }, revision: -1, position: null });
    });

    it('given a stream truncated through the handler\'s store, then the state folds only the events reads still show, as load does', async () => {
      const id = randomUUID();
      const cached = new CommandHandler(store);
      await cached.execute(counters, id, { type: 'Increment', by: 1 }, context());
      await cached.execute(counters, id, { type: 'Increment', by: 10 }, context());
      expect((await cached.loadState(counters, id)).state).to.equal(11);

      await cached.store.setStreamMetadata(`counter-${id}`, { truncateBefore: 1 });

      expect((await cached.loadState(counters, id)).state).to.equal(10);
      expect((await cached.load(counters, id)).state).to.equal(10);
    });

    it('given a long stream, then latestOf finds the last event of the types asked for, as of a revision when given', async () => {
      const id = randomUUID();
      await handler.execute(clusters, id, register(id), context());
      await handler.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());
      for (let n = 0; n < 70; n += 1) await store.append(`cluster-${id}`, [{ id: randomUUID(), type: 'ClusterUpdated', data: { clusterId: id, changes: { region: `r-${n}` } } }]);
      const cordons = new Set(['ClusterCordoned']);

      const latest = await handler.latestOf(clusters, id, cordons);
      const asOfStart = await handler.latestOf(clusters, id, cordons, 0);
      const none = await handler.latestOf(clusters, id, new Set(['ClusterDeregistered']));

      const full = await handler.load(clusters, id);
      expect(latest).to.deep.equal(full.recorded.filter((e) => e.type === 'ClusterCordoned').at(-1));
      expect(asOfStart).to.equal(undefined);
      expect(none).to.equal(undefined);
    });

    it('given the cache turned off, then every load reads the stream from its start', async () => {
      const id = randomUUID();
      const { from, stateMetrics } = loads();
      const bare = new CommandHandler(store, { cacheSize: 0, stateMetrics });
      await bare.execute(counters, id, { type: 'Increment', by: 2 }, context());
      await bare.execute(counters, id, { type: 'Increment', by: 3 }, context());

      expect((await bare.loadState(counters, id)).state).to.equal(5);
      expect(from).to.deep.equal(['stream', 'stream', 'stream']);
    });

    it('given two aggregates sharing a category, then neither is handed the other\'s state', async () => {
      const id = randomUUID();
      const doubled: typeof counters = { ...counters, decider: { ...counters.decider, evolve: (total, event) => total + 2 * event.data.by } };
      const cached = new CommandHandler(store);
      await cached.execute(counters, id, { type: 'Increment', by: 4 }, context());

      expect((await cached.loadState(counters, id)).state).to.equal(4);
      expect((await cached.loadState(doubled, id)).state).to.equal(8);
    });
  });

  describe('deciding from the state in memory', () => {
    /** Counts the reads of each stream. */
    class ReadCountingStore extends ForwardingEventStore {
      readonly reads = new Map<string, number>();
      override readStream(...args: Parameters<EventStore['readStream']>): ReturnType<EventStore['readStream']> {
        this.reads.set(args[0], (this.reads.get(args[0]) ?? 0) + 1);
        return super.readStream(...args);
      }
      override async close() {}
    }

    it('given the state in memory is current, when a command changes it, then it is appended without reading the stream, and the state is the full fold', async () => {
      const id = randomUUID();
      const counting = new ReadCountingStore(store);
      const cached = new CommandHandler(counting);
      await cached.execute(clusters, id, register(id), context());
      const before = counting.reads.get(`cluster-${id}`);

      const result = await cached.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());

      expect(result).to.include({ revision: 1, appended: 1 });
      expect(counting.reads.get(`cluster-${id}`)).to.equal(before);
      const full = await handler.load(clusters, id);
      expect(await cached.loadState(clusters, id)).to.deep.equal({ state: full.state, revision: full.revision, position: full.position });
    });

    it('given another handler moved the stream on, when by the state in memory the command changes nothing, then the stream is read and the command decided on what it holds', async () => {
      const id = randomUUID();
      const cached = new CommandHandler(store);
      await cached.execute(clusters, id, register(id), context());
      await cached.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());
      await handler.execute(clusters, id, { type: 'UncordonCluster', clusterId: id }, context());

      const result = await cached.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());

      expect(result).to.include({ revision: 3, appended: 1 });
      expect((await store.readStream(`cluster-${id}`)).map((e) => e.type)).to.deep.equal(['ClusterRegistered', 'ClusterCordoned', 'ClusterUncordoned', 'ClusterCordoned']);
    });

    it('given another handler created the stream, when by the state in memory the command is refused, then the stream is read and the command lands', async () => {
      const id = randomUUID();
      const cached = new CommandHandler(store);
      expect((await cached.loadState(clusters, id)).revision).to.equal(-1);
      await handler.execute(clusters, id, register(id), context());

      const result = await cached.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());

      expect(result).to.include({ revision: 1, appended: 1 });
    });

    it('given deciding from memory turned off, then every command reads its stream first', async () => {
      const id = randomUUID();
      const counting = new ReadCountingStore(store);
      const reading = new CommandHandler(counting, { decideFromMemory: false });
      await reading.execute(clusters, id, register(id), context());
      const before = counting.reads.get(`cluster-${id}`) ?? 0;

      await reading.execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context());

      expect(counting.reads.get(`cluster-${id}`)).to.equal(before + 1);
    });
  });

  describe('metrics', () => {
    it('reports ok, unchanged, rejected, replayed and error outcomes', async () => {
      const metrics = recordingMetrics();
      const measured = new CommandHandler(store, { metrics: metrics.metrics });
      const id = randomUUID();
      const eventIds = fixedIds();

      await measured.execute(clusters, id, register(id), context({ eventIds }));
      await measured.execute(clusters, id, { type: 'UncordonCluster', clusterId: id }, context());
      await rejection(measured.execute(clusters, randomUUID(), { type: 'CordonCluster', clusterId: 'nope' }, context()));
      await measured.execute(clusters, id, register(id), context({ eventIds }));
      const broken = new InterceptedStore(store, async () => {
        throw new Error('connection reset');
      });
      await rejection(new CommandHandler(broken, { metrics: metrics.metrics }).execute(clusters, id, { type: 'CordonCluster', clusterId: id }, context()));

      expect(metrics.observed.map((o) => o.outcome)).to.deep.equal(['ok', 'unchanged', 'rejected', 'replayed', 'error']);
      expect(metrics.observed.slice(0, 3).map((o) => o.command)).to.deep.equal(['RegisterCluster', 'UncordonCluster', 'CordonCluster']);
      expect(metrics.retried).to.deep.equal([]);
    });
  });
});

describe('metadataOf', () => {
  const actor = { id: 'u', kind: 'user' } as const;

  it('copies correlation, causation and actor', () => {
    expect(metadataOf({ actor, correlationId: 'c', causationId: 'k' })).to.deep.equal({ correlationId: 'c', causationId: 'k', actor });
  });

  it('adds traceparent and source only when they are given', () => {
    expect(metadataOf({ actor, correlationId: 'c', causationId: 'k', traceparent: 't', source: 'reactor' })).to.deep.equal({
      correlationId: 'c',
      causationId: 'k',
      actor,
      traceparent: 't',
      source: 'reactor',
    });
    const empty = metadataOf({ actor, correlationId: 'c', causationId: 'k', traceparent: '', source: undefined });
    expect(empty).to.not.have.any.keys('traceparent', 'source');
  });

  it('never carries the event ids', () => {
    expect(metadataOf({ actor, correlationId: 'c', causationId: 'k', eventIds: () => randomUUID() })).to.not.have.property('eventIds');
  });
});
