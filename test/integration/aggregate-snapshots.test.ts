// The aggregate cache and snapshots are invisible to behaviour: random deployment command sequences decide the
// same events with them on and off, across a restart, at several snapshot intervals; snapshots of another
// version or that do not parse are ignored; every snapshot is kept, and a read at or below a revision, position or
// time, and an as-of fold, start from the newest one there; handlers sharing a stream still settle conflicts.
// PGlite and PostgreSQL.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import * as snapshotHistory from '../../adapters/postgres/migrations/009-snapshot-history.js';
import { SENTINEL_MIGRATIONS_TABLE, migrateSentinel } from '../../adapters/postgres/schema.js';
import { PostgresEventLocator, PostgresSnapshotStore } from '../../adapters/postgres/snapshot-store.js';
import type { AggregateStateMetrics, SnapshotStore } from '../../commands/aggregate-cache.js';
import { deployments } from '../../commands/aggregates.js';
import {
  CommandHandler,
  ConflictAfterRetries,
  streamOf,
  type CommandContext,
  type CommandHandlerOptions,
} from '../../commands/command-handler.js';
import type { ClusterFacts, DeploymentCommand, Strategy, WorkloadFacts } from '../../domain/deployment.js';
import { ConcurrencyConflict, type EventStore, type RecordedEvent } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
import { stateAsOf, within, type AsOf } from '../../projections/time-travel.js';
import { SKIP_POSTGRES_REASON, TEST_DATABASE_URL, createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';

// ---- deployment commands, drawn at random ----------------------------------------------------------------

const sku = 'nvidia-a100-80gb';
const specs: Record<number, Record<string, unknown>> = {
  1: { image: 'registry.local/llm:1.0' },
  2: { image: 'registry.local/llm:1.1' },
  3: { image: 'registry.local/llm:2.0' },
};
const workload = (specRevision: number): WorkloadFacts => ({
  id: '0a0a0a0a-3333-4c4c-8c8c-000000000002',
  status: 'active',
  specRevision,
  spec: specs[specRevision]!,
  gpu: { count: 1, sku },
});
const cluster: ClusterFacts = { id: '0b4c1d1e-1111-4a4a-8a8a-000000000001', status: 'active', gpuSkus: [sku] };
const rolling: Strategy = { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' };

/** A command without its deployment id, which each run fills in with a stream of its own. */
type Step = (deploymentId: string) => DeploymentCommand;

const revision = fc.integer({ min: 1, max: 4 });
const replicas = fc.integer({ min: 0, max: 5 });
const reason = fc.option(fc.constantFrom('drain', 'load', 'oncall'), { nil: undefined });
const weighted = (weight: number, arbitrary: fc.Arbitrary<Step>) => ({ weight, arbitrary });
/** Weighted towards commands a live deployment takes, so that sequences grow long streams. */
const step: fc.Arbitrary<Step> = fc.oneof(
  weighted(1, replicas.map((n): Step => (deploymentId) => ({ type: 'CreateDeployment', deploymentId, workload: workload(1), cluster, replicas: n, strategy: rolling, driftPolicy: 'revert' }))),
  weighted(6, replicas.map((n): Step => (deploymentId) => ({ type: 'ScaleDeployment', deploymentId, replicas: n, cluster: { status: 'active' } }))),
  weighted(2, fc.integer({ min: 1, max: 3 }).map((n): Step => (deploymentId) => ({ type: 'UpdateDeployment', deploymentId, workload: workload(n) }))),
  weighted(1, fc.option(revision, { nil: undefined }).map((to): Step => (deploymentId) => ({ type: 'RollbackDeployment', deploymentId, toRevision: to, reason: 'bad' }))),
  weighted(4, fc.integer({ min: 0, max: 1000 }).map((s): Step => (deploymentId) => ({ type: 'RestartDeployment', deploymentId, at: new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString() }))),
  weighted(2, reason.map((r): Step => (deploymentId) => ({ type: 'PauseDeployment', deploymentId, reason: r }))),
  weighted(2, reason.map((r): Step => (deploymentId) => ({ type: 'ResumeDeployment', deploymentId, reason: r }))),
  weighted(1, fc.constant<Step>((deploymentId) => ({ type: 'DeleteDeployment', deploymentId }))),
  weighted(2, revision.map((r): Step => (deploymentId) => ({ type: 'RecordApplying', deploymentId, revision: r }))),
  weighted(2, revision.map((r): Step => (deploymentId) => ({ type: 'RecordApplied', deploymentId, revision: r }))),
  weighted(2, fc.tuple(revision, replicas).map(([r, n]): Step => (deploymentId) => ({ type: 'RecordRolloutProgress', deploymentId, revision: r, readyReplicas: n, updatedReplicas: n }))),
  weighted(3, fc.tuple(revision, replicas).map(([r, n]): Step => (deploymentId) => ({ type: 'RecordAvailable', deploymentId, revision: r, readyReplicas: n }))),
  weighted(1, revision.map((r): Step => (deploymentId) => ({ type: 'RecordDegraded', deploymentId, revision: r, cause: 'pods lost' }))),
  weighted(1, revision.map((r): Step => (deploymentId) => ({ type: 'RecordRolloutFailed', deploymentId, revision: r, cause: 'ImagePullBackOff' }))),
  weighted(1, fc.tuple(revision, revision).map(([r, to]): Step => (deploymentId) => ({ type: 'RecordRolledBack', deploymentId, revision: r, toRevision: to, cause: 'failed' }))),
  weighted(
    1,
    fc.tuple(revision, replicas).map(([r, n]): Step => (deploymentId) => ({
      type: 'RecordDrift',
      deploymentId,
      revision: r,
      differences: [{ field: 'replicas', expected: 1, actual: n }],
      observedVersion: String(n),
    })),
  ),
);
/** Mostly a created deployment, so that most commands have something to act on. */
const sequence = fc.tuple(replicas, fc.array(step, { minLength: 10, maxLength: 40, size: 'max' })).map(([n, steps]): Step[] => [
  (deploymentId) => ({ type: 'CreateDeployment', deploymentId, workload: workload(1), cluster, replicas: n, strategy: rolling, driftPolicy: 'revert' }),
  ...steps,
]);

const context = (): CommandContext => ({ actor: { id: 'user-1', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() });

/** What a run decided, with its deployment id taken out so runs on different streams compare. */
interface Run {
  outcomes: string[];
  events: string[];
  state: string;
}

/**
 * Runs the steps on a fresh stream. `handlerFor(i)` gives the handler for step i (a new one is a restart);
 * the state comes from the last handler's `loadState`, and the events from a plain read of the stream.
 */
async function run(store: EventStore, steps: Step[], handlerFor: (index: number) => Promise<CommandHandler>): Promise<Run> {
  const id = randomUUID();
  const anonymous = (text: string) => text.replaceAll(id, '<id>');
  const outcomes: string[] = [];
  let handler: CommandHandler | undefined;
  for (const [index, make] of steps.entries()) {
    handler = await handlerFor(index);
    try {
      const result = await handler.execute(deployments, id, make(id), context());
      outcomes.push(`ok revision ${result.revision} appended ${result.appended}`);
    } catch (error) {
      outcomes.push(anonymous(`${(error as Error).name}: ${(error as Error).message}`));
    }
  }
  const events = (await store.readStream(streamOf(deployments, id))).map((e) => anonymous(JSON.stringify([e.revision, e.type, e.data])));
  const { state } = await handler!.loadState(deployments, id);
  return { outcomes, events, state: anonymous(JSON.stringify(state)) };
}

function counting(): AggregateStateMetrics & { loads: Record<string, number>; snapshots: Record<string, number> } {
  const loads: Record<string, number> = {};
  const snapshots: Record<string, number> = {};
  return {
    loads,
    snapshots,
    loaded: (_category, from) => void (loads[from] = (loads[from] ?? 0) + 1),
    snapshot: (_category, outcome) => void (snapshots[outcome] = (snapshots[outcome] ?? 0) + 1),
  };
}

function warnings() {
  const seen: { fields: Record<string, unknown>; message: string }[] = [];
  return { seen, logger: { warn: (fields: Record<string, unknown>, message: string) => void seen.push({ fields, message }) } };
}

// ---- the suite, on each database -----------------------------------------------------------------------

function aggregateStateSuite(open: () => Promise<{ db: Database; done: () => Promise<void> }>) {
  let db: Database;
  let done: () => Promise<void>;
  let store: PostgresEventStore;
  let snapshots: PostgresSnapshotStore;

  before(async () => {
    ({ db, done } = await open());
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    snapshots = new PostgresSnapshotStore(db);
  });
  after(async () => {
    await store?.close();
    await done?.();
  });

  const withState = (options: CommandHandlerOptions = {}) =>
    new CommandHandler(store, { snapshots, eventLocator: new PostgresEventLocator(db), ...options });

  describe('given random deployment command sequences', () => {
    it('then the cache and snapshots decide the same events as reading the whole stream, with snapshots every 1, 2 and 7 events and across restarts', async () => {
      await fc.assert(
        fc.asyncProperty(sequence, fc.constantFrom(1, 2, 7), fc.nat(), async (steps, every, cut) => {
          const bare = new CommandHandler(store, { cacheSize: 0 });
          const expected = await run(store, steps, async () => bare);

          const cached = withState({ snapshotEvery: every });
          expect(await run(store, steps, async () => cached)).to.deep.equal(expected);

          // A restart part-way: a new handler on the same store, with no memory, starts from the snapshot written.
          const restartAt = cut % steps.length;
          const before = withState({ snapshotEvery: every });
          let after: CommandHandler | undefined;
          const restarted = await run(store, steps, async (index) => {
            if (index < restartAt) return before;
            if (!after) {
              await before.snapshotsWritten();
              after = withState({ snapshotEvery: every });
            }
            return after;
          });
          expect(restarted).to.deep.equal(expected);

          // Snapshots with no cache: every load starts from the latest snapshot.
          const snapshotsOnly = withState({ snapshotEvery: every, cacheSize: 0 });
          const fromSnapshots = await run(store, steps, async () => {
            await snapshotsOnly.snapshotsWritten();
            return snapshotsOnly;
          });
          expect(fromSnapshots).to.deep.equal(expected);
        }),
        { numRuns: 15 },
      );
    });
  });

  describe('snapshots', () => {
    async function deploymentWith(handler: CommandHandler, events: number): Promise<string> {
      const id = randomUUID();
      await handler.execute(deployments, id, { type: 'CreateDeployment', deploymentId: id, workload: workload(1), cluster, replicas: 1, strategy: rolling, driftPolicy: 'revert' }, context());
      for (let n = 2; n <= events; n += 1) {
        await handler.execute(deployments, id, { type: 'ScaleDeployment', deploymentId: id, replicas: n, cluster: { status: 'active' } }, context());
      }
      await handler.snapshotsWritten();
      return id;
    }

    it('given a stream of 12 events and a snapshot every 5, then one is stored at revision 9 and a new process starts from it', async () => {
      const id = await deploymentWith(withState({ snapshotEvery: 5 }), 12);
      const stored = await snapshots.read(streamOf(deployments, id));
      expect(stored).to.include({ revision: 9, version: deployments.snapshotVersion });

      const metrics = counting();
      const fresh = withState({ snapshotEvery: 5, stateMetrics: metrics });
      const state = await fresh.loadState(deployments, id);
      expect(metrics.loads).to.deep.equal({ snapshot: 1 });
      expect(state).to.deep.equal(await bareLoad(id));
    });

    it('given a snapshot written by another version of the aggregate, then it is ignored and the stream is folded from its start', async () => {
      const id = await deploymentWith(withState({ snapshotEvery: 3 }), 4);
      const stream = streamOf(deployments, id);
      // What an older build left: a state this version would misread.
      await snapshots.write({ stream, revision: 3, position: null, version: deployments.snapshotVersion! + 1, state: JSON.stringify({ status: 'absent' }) });
      const metrics = counting();

      const state = await withState({ stateMetrics: metrics }).loadState(deployments, id);

      expect(metrics.snapshots).to.deep.equal({ other_version: 1 });
      expect(metrics.loads).to.deep.equal({ stream: 1 });
      expect(state).to.deep.equal(await bareLoad(id));
    });

    it('given a snapshot that does not parse, then it is ignored with a warning and the stream is folded from its start', async () => {
      const id = await deploymentWith(withState({ snapshotEvery: 100 }), 3);
      const stream = streamOf(deployments, id);
      await snapshots.write({ stream, revision: 2, position: null, version: deployments.snapshotVersion!, state: '{"status": "Avail' });
      const metrics = counting();
      const { seen, logger } = warnings();

      const state = await withState({ stateMetrics: metrics, logger }).loadState(deployments, id);

      expect(state).to.deep.equal(await bareLoad(id));
      expect(metrics.snapshots).to.deep.equal({ corrupt: 1 });
      expect(seen).to.have.length(1);
      expect(seen[0]!.fields).to.include({ stream });
      expect(seen[0]!.message).to.match(/unreadable/);
    });

    it('given snapshot writes that fail, then every command still lands, and each failure is counted and reported', async () => {
      const failing: SnapshotStore = {
        read: async () => undefined,
        readAtOrBelow: async () => ({ snapshot: undefined, nextRevision: undefined }),
        write: async () => {
          throw new Error('disk full');
        },
      };
      const metrics = counting();
      const { seen, logger } = warnings();
      const handler = new CommandHandler(store, { snapshots: failing, snapshotEvery: 2, stateMetrics: metrics, logger });

      const id = await deploymentWith(handler, 5);

      expect((await handler.loadState(deployments, id)).revision).to.equal(4);
      expect(metrics.snapshots['write_failed']).to.be.at.least(1);
      expect(seen.map((s) => s.fields['err'])).to.include('disk full');
    });

    it('given a stream deleted after its snapshot, then a new process ignores the snapshot, as a full read would', async () => {
      const id = await deploymentWith(withState({ snapshotEvery: 2 }), 4);
      const stream = streamOf(deployments, id);
      await store.deleteStream(stream);
      const metrics = counting();

      const state = await withState({ stateMetrics: metrics }).loadState(deployments, id);

      expect(state).to.deep.equal({ state: { status: 'absent' }, revision: -1, position: null });
      expect(metrics.snapshots).to.deep.equal({ truncated_stream: 1 });
    });
  });

  describe('the snapshot history', () => {
    /** A deployment of `events` events with a snapshot every `every`, its events, and the revisions snapshots were kept at. */
    async function history(events: number, every: number) {
      const id = randomUUID();
      const handler = withState({ snapshotEvery: every });
      await handler.execute(deployments, id, { type: 'CreateDeployment', deploymentId: id, workload: workload(1), cluster, replicas: 1, strategy: rolling, driftPolicy: 'revert' }, context());
      for (let n = 2; n <= events; n += 1) {
        await handler.execute(deployments, id, { type: 'ScaleDeployment', deploymentId: id, replicas: n, cluster: { status: 'active' } }, context());
      }
      await handler.snapshotsWritten();
      const stream = streamOf(deployments, id);
      const recorded = await store.readStream(stream);
      const rows = await db.query<{ revision: string | number }>(
        'select revision from sentinel_aggregate_snapshot_history where stream = $1 and version = $2 order by revision',
        [stream, deployments.snapshotVersion],
      );
      return { id, stream, events: recorded, kept: rows.map((row) => Number(row.revision)) };
    }

    /** The newest kept revision whose event lies at or below the point, and the oldest past it. */
    function expected(kept: number[], events: RecordedEvent[], point: AsOf) {
      const below = kept.filter((revision) => within(events[revision]!, point));
      return { revision: below.at(-1), next: kept.find((revision) => !within(events[revision]!, point)) };
    }

    it('given a stream of 23 events and a snapshot every 5, then every snapshot is kept with its event\'s position and time, and the latest is still the one read', async () => {
      const { stream, events, kept } = await history(23, 5);
      expect(kept.length).to.be.at.least(4);
      expect((await snapshots.read(stream))?.revision).to.equal(kept.at(-1));
      for (const revision of kept) {
        const { snapshot } = await snapshots.readAtOrBelow(stream, deployments.snapshotVersion!, { revision });
        expect(snapshot).to.include({ revision, position: events[revision]!.position, version: deployments.snapshotVersion });
        expect(snapshot?.recordedAt?.getTime()).to.equal(events[revision]!.recordedAt.getTime());
      }
    });

    it('given a stream of 23 events and a snapshot every 5, then a read at or below a revision, a position or a time picks the newest snapshot there and names the next', async () => {
      const { stream, events, kept } = await history(23, 5);
      const version = deployments.snapshotVersion!;
      for (const event of events) {
        const byRevision = await snapshots.readAtOrBelow(stream, version, { revision: event.revision });
        const below = kept.filter((revision) => revision <= event.revision);
        expect({ revision: byRevision.snapshot?.revision, next: byRevision.nextRevision }).to.deep.equal({
          revision: below.at(-1),
          next: kept.find((revision) => revision > event.revision),
        });
        for (const point of [{ position: event.position }, { at: event.recordedAt }] satisfies AsOf[]) {
          const found = await snapshots.readAtOrBelow(stream, version, 'position' in point ? point : { recordedAt: point.at });
          expect({ revision: found.snapshot?.revision, next: found.nextRevision }, JSON.stringify(point)).to.deep.equal(expected(kept, events, point));
        }
      }
      expect((await snapshots.readAtOrBelow(stream, version + 1, { revision: 22 })).snapshot).to.equal(undefined);
      expect((await snapshots.readAtOrBelow(stream, version, { revision: -1 })).snapshot).to.equal(undefined);
    });

    it('given a stream of 23 events and a snapshot every 5, then an as-of at a position and at a time folds from the newest snapshot at or below it, and equals a fold from the first event', async () => {
      const { id, events, kept } = await history(23, 5);
      for (const event of events) {
        for (const point of [{ position: event.position }, { at: event.recordedAt }] satisfies AsOf[]) {
          const from = expected(kept, events, point).revision;
          const answer = await stateAsOf(store, deployments, id, point, { snapshots });
          const whole = await stateAsOf(store, deployments, id, point);
          expect(answer?.asOf.fromSnapshot, JSON.stringify(point)).to.equal(from ?? null);
          expect(answer?.asOf.eventsFolded).to.equal(answer!.asOf.revision - (from ?? -1));
          expect(answer?.asOf.eventsFolded).to.be.at.most(5);
          expect({ ...answer, asOf: { ...answer!.asOf, eventsFolded: 0, fromSnapshot: null } }).to.deep.equal({ ...whole, asOf: { ...whole!.asOf, eventsFolded: 0 } });
        }
      }
    });

    it('given a snapshot row whose recorded time puts it before its event, then the as-of checks the event, folds from the snapshot below it, and stops before that event', async () => {
      const { id, stream, events, kept } = await history(23, 5);
      const bogus = kept.at(-1)! + 1;
      const point = { at: events[kept[1]! + 1]!.recordedAt };
      // Written as a writer whose clock ran behind the database's would have kept it.
      await db.query(
        `insert into sentinel_aggregate_snapshot_history (stream, revision, position, recorded_at, version, state) values ($1, $2, $3, $4, $5, $6)`,
        [stream, bogus, events[bogus]!.position, point.at, deployments.snapshotVersion!, '{"status":"absent"}'],
      );

      const answer = await stateAsOf(store, deployments, id, point, { snapshots });

      expect(answer?.asOf.fromSnapshot).to.equal(expected(kept, events, point).revision);
      expect(answer?.state).to.deep.equal((await stateAsOf(store, deployments, id, point))?.state);
    });

    it('given snapshots kept apart from the events (as with KurrentDB), then each keeps a time no earlier than its event\'s, and an as-of at a time folds from one and equals a fold from the first event', async () => {
      const apart = await openPglite();
      try {
        await migrateSentinel(apart.knex);
        const keptApart = new PostgresSnapshotStore(apart);
        const id = randomUUID();
        const handler = new CommandHandler(store, { snapshots: keptApart, snapshotEvery: 5 });
        await handler.execute(deployments, id, { type: 'CreateDeployment', deploymentId: id, workload: workload(1), cluster, replicas: 1, strategy: rolling, driftPolicy: 'revert' }, context());
        for (let n = 2; n <= 23; n += 1) {
          await handler.execute(deployments, id, { type: 'ScaleDeployment', deploymentId: id, replicas: n, cluster: { status: 'active' } }, context());
        }
        await handler.snapshotsWritten();
        const stream = streamOf(deployments, id);
        const events = await store.readStream(stream);
        const rows = await apart.query<{ revision: string | number; recorded_at: Date | string }>(
          'select revision, recorded_at from sentinel_aggregate_snapshot_history where stream = $1 order by revision',
          [stream],
        );
        expect(rows.length).to.be.at.least(4);
        for (const row of rows) expect(new Date(row.recorded_at).getTime()).to.be.at.least(events[Number(row.revision)]!.recordedAt.getTime());

        let folds = 0;
        for (const event of events) {
          const point = { at: event.recordedAt };
          const answer = await stateAsOf(store, deployments, id, point, { snapshots: keptApart });
          const whole = await stateAsOf(store, deployments, id, point);
          expect({ revision: answer?.asOf.revision, state: answer?.state }).to.deep.equal({ revision: whole?.asOf.revision, state: whole?.state });
          if (answer?.asOf.fromSnapshot !== null) folds += 1;
        }
        expect(folds).to.be.greaterThan(events.length / 2);
      } finally {
        await apart.close();
      }
    });

    it('given a database whose snapshots were written before the history, then migrating keeps each as the first of its history, with its event\'s time', async () => {
      const { stream, events } = await history(7, 100);
      await snapshotHistory.down(db.knex);
      await db.query(`delete from ${SENTINEL_MIGRATIONS_TABLE} where name = '009-snapshot-history'`);
      await db.query('insert into sentinel_aggregate_snapshots (stream, revision, position, version, state) values ($1, 5, $2, $3, $4)', [
        stream,
        events[5]!.position,
        deployments.snapshotVersion,
        '{"status":"absent"}',
      ]);

      await migrateSentinel(db.knex);

      const { snapshot } = await snapshots.readAtOrBelow(stream, deployments.snapshotVersion!, { recordedAt: events[6]!.recordedAt });
      expect(snapshot).to.include({ revision: 5, position: events[5]!.position });
      expect(snapshot?.recordedAt?.getTime()).to.equal(events[5]!.recordedAt.getTime());
    });
  });

  describe('handlers sharing a stream', () => {
    it('given another handler appends between a load and an append, then a conflict, and the retry decides on the fresh state', async () => {
      const id = randomUUID();
      const rival = withState();
      const stream = streamOf(deployments, id);
      await rival.execute(deployments, id, { type: 'CreateDeployment', deploymentId: id, workload: workload(1), cluster, replicas: 1, strategy: rolling, driftPolicy: 'revert' }, context());
      const raced = new RacingStore(store, async (call) => {
        if (call === 1) await rival.execute(deployments, id, { type: 'ScaleDeployment', deploymentId: id, replicas: 7, cluster: { status: 'active' } }, context());
      });
      const handler = new CommandHandler(raced, { snapshots, eventLocator: new PostgresEventLocator(db) });
      // Warm: the handler holds the state before the rival's scale.
      await handler.loadState(deployments, id);
      const seen: number[] = [];

      const result = await handler.execute(
        deployments,
        id,
        async (state): Promise<DeploymentCommand> => {
          seen.push(state.status === 'absent' ? -1 : state.replicas);
          return { type: 'ScaleDeployment', deploymentId: id, replicas: state.status === 'absent' ? 0 : state.replicas + 1, cluster: { status: 'active' } };
        },
        context(),
      );

      expect(seen).to.deep.equal([1, 7]);
      expect(raced.conflicts).to.equal(1);
      expect(result).to.include({ revision: 2, appended: 1 });
      const events = await store.readStream(stream);
      expect(events.map((e) => e.data['replicas'])).to.deep.equal([1, 7, 8]);
      // Both handlers now read the stream as it is.
      expect((await rival.loadState(deployments, id)).state).to.deep.include({ replicas: 8 });
      expect((await handler.loadState(deployments, id)).state).to.deep.include({ replicas: 8 });
    });

    it('given two handlers scaling one deployment at once, then every ok is one event, the rest ConflictAfterRetries, and both agree with a full read', async () => {
      const id = randomUUID();
      const a = withState({ snapshotEvery: 3 });
      const b = withState({ snapshotEvery: 3 });
      await a.execute(deployments, id, { type: 'CreateDeployment', deploymentId: id, workload: workload(1), cluster, replicas: 0, strategy: rolling, driftPolicy: 'revert' }, context());
      const increment = async (state: Awaited<ReturnType<CommandHandler['loadState']>>['state']): Promise<DeploymentCommand> => ({
        type: 'ScaleDeployment',
        deploymentId: id,
        replicas: (state as { replicas?: number }).replicas! + 1,
        cluster: { status: 'active' },
      });

      const settled = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).execute(deployments, id, (s) => increment(s), context())),
      );

      const ok = settled.filter((s) => s.status === 'fulfilled');
      for (const s of settled) if (s.status === 'rejected') expect(s.reason).to.be.instanceOf(ConflictAfterRetries);
      const events = await store.readStream(streamOf(deployments, id));
      expect(events).to.have.length(1 + ok.length);
      // Each scale was decided on the state just before it: the counts run 0, 1, 2, ... with no repeat.
      expect(events.map((e) => e.data['replicas'])).to.deep.equal(events.map((_, i) => i));
      const full = await bareLoad(id);
      expect(await a.loadState(deployments, id)).to.deep.equal(full);
      expect(await b.loadState(deployments, id)).to.deep.equal(full);
    });
  });

  describe('replays through derived event ids, with the event locator', () => {
    it('given a command that landed before the stream moved on, then a retry with its ids is answered from the stream', async () => {
      const id = randomUUID();
      const handler = withState();
      const ids = [randomUUID(), randomUUID()];
      const keyed = { ...context(), eventIds: (i: number) => ids[i] ?? randomUUID() };
      const create: DeploymentCommand = { type: 'CreateDeployment', deploymentId: id, workload: workload(1), cluster, replicas: 1, strategy: rolling, driftPolicy: 'revert' };
      const first = await handler.execute(deployments, id, create, keyed);
      await handler.execute(deployments, id, { type: 'ScaleDeployment', deploymentId: id, replicas: 3, cluster: { status: 'active' } }, context());

      const again = await withState().execute(deployments, id, create, keyed);

      expect(again).to.deep.equal({ ...first, appended: 0 });
      expect(await store.readStream(streamOf(deployments, id))).to.have.length(2);
    });
  });

  async function bareLoad(id: string) {
    const { state, revision, position } = await new CommandHandler(store, { cacheSize: 0 }).load(deployments, id);
    return { state, revision, position };
  }
}

/** Delegates to a real store; `beforeAppend` runs first (and may write in the way). Counts the conflicts it passes on. */
class RacingStore extends ForwardingEventStore {
  private calls = 0;
  conflicts = 0;
  constructor(
    inner: EventStore,
    private readonly beforeAppend: (call: number) => Promise<void>,
  ) {
    super(inner);
  }
  override async append(...args: Parameters<EventStore['append']>) {
    this.calls += 1;
    await this.beforeAppend(this.calls);
    try {
      return await this.inner.append(...args);
    } catch (error) {
      if (error instanceof ConcurrencyConflict) this.conflicts += 1;
      throw error;
    }
  }
  override async close() {}
}

describe('aggregate cache and snapshots on the postgres event store (PGlite)', function () {
  this.timeout(300_000);
  aggregateStateSuite(async () => {
    const db = await openPglite();
    return { db, done: () => db.close() };
  });
});

describe('aggregate cache and snapshots on the postgres event store (PostgreSQL)', function () {
  this.timeout(300_000);
  let scratch: ScratchDatabase | undefined;
  before(function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      this.skip();
    }
  });
  aggregateStateSuite(async () => {
    scratch = await createScratchDatabase();
    const db = openPostgres(scratch.url, { poolMax: 10 });
    return {
      db,
      done: async () => {
        await db.close();
        await scratch?.drop();
      },
    };
  });
});
