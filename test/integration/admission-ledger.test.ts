// The admission ledger takes turns within a process and stores what was admitted many to an append; two processes
// on one store still never both admit on the same ledger. On PGlite.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { AdmissionLedger, snapshotInterval } from '../../commands/admission-ledger.js';
import type { CommandContext } from '../../commands/command-handler.js';
import { fold } from '../../domain/decider.js';
import { ConcurrencyConflict, type EventStore, type StreamAppend } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
import { rejection } from '../support/rejection.js';
import { LEDGER_STREAM, ledgerDecider, ledgerEvents, type Admission, type Ledger } from '../../domain/ledger.js';

const context: CommandContext = { correlationId: 'c', causationId: 'c', actor: { id: 'alice', kind: 'user' } };

const admission = (targetId: string, replicas: number): Admission => ({
  at: '2026-12-06T10:00:00.000Z',
  action: 'scale',
  targetId,
  actorId: 'alice',
  placement: {
    clusterId: 'west',
    namespace: 'serving',
    footprint: { replicas, cpuMillicores: 0, memoryBytes: 0, gpus: replicas, gpuSku: 'nvidia-l4' },
    hourlyUsd: replicas,
  },
});

const gpusPlaced = (ledger: Ledger) => Object.values(ledger.placements).reduce((sum, placed) => sum + placed.footprint.gpus, 0);

/** The change an admission is for: one event in the target's own stream, appended with it. */
const changeOf = (targetId: string, expected: StreamAppend['expected'] = 'any'): StreamAppend => ({
  stream: `target-${targetId}`,
  events: [{ id: randomUUID(), type: 'Changed', data: { targetId } }],
  expected,
});

/** Counts the ledger's appends. */
class CountingStore extends ForwardingEventStore {
  appends = 0;
  override appendMany(...args: Parameters<EventStore['appendMany']>): ReturnType<EventStore['appendMany']> {
    this.appends += 1;
    return super.appendMany(...args);
  }
}

describe('admission ledger (PGlite)', function () {
  this.timeout(60_000);
  let db: Database;
  let store: PostgresEventStore;

  beforeEach(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
  });
  afterEach(async () => {
    await store.close();
    await db.close();
  });

  /** Judges like a quota of `limit` GPUs: admits one more GPU for `targetId` when it fits, else lets go. */
  async function admitWithin(ledger: AdmissionLedger, targetId: string, limit: number): Promise<'admitted' | 'refused'> {
    const turn = await ledger.turn();
    if (gpusPlaced(turn.ledger) + 1 > limit) {
      turn.release();
      return 'refused';
    }
    await turn.admit(admission(targetId, 1), context, changeOf(targetId));
    return 'admitted';
  }

  it('given 40 concurrent admissions in one process, when judged against a quota of 25, then exactly 25 are admitted, none conflict, in fewer appends than admissions', async () => {
    const counting = new CountingStore(store);
    const ledger = new AdmissionLedger(counting);
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => admitWithin(ledger, `d-${i}`, 25)));

    expect(outcomes.filter((o) => o === 'admitted')).to.have.length(25);
    const stored = await store.readStream(LEDGER_STREAM);
    expect(stored.filter((e) => e.type === 'ChangeAdmitted')).to.have.length(25);
    expect(counting.appends).to.be.below(25);
    const folded = fold(ledgerDecider, stored.map((e) => ledgerEvents.parse(e.type, e.schemaVersion, e.data)));
    expect(gpusPlaced(folded)).to.equal(25);
    expect(gpusPlaced((await ledger.current()).state)).to.equal(25);
  });

  it('given two processes admitting at once, when each judges against a quota of 10, then the ledger never holds more than 10 and the losers fail with a conflict', async () => {
    const first = new AdmissionLedger(store);
    const second = new AdmissionLedger(store);
    const attempt = async (ledger: AdmissionLedger, targetId: string) => {
      for (;;) {
        try {
          return await admitWithin(ledger, targetId, 10);
        } catch (error) {
          expect(error).to.be.instanceOf(ConcurrencyConflict);
        }
      }
    };
    const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => attempt(i % 2 === 0 ? first : second, `d-${i}`)));

    expect(outcomes.filter((o) => o === 'admitted')).to.have.length(10);
    const stored = await store.readStream(LEDGER_STREAM);
    const folded = fold(ledgerDecider, stored.map((e) => ledgerEvents.parse(e.type, e.schemaVersion, e.data)));
    expect(gpusPlaced(folded)).to.equal(10);
  });

  it('given a change whose stream moved on, when it is admitted in one append with others, then it alone fails, nothing of it is stored, and the others are', async () => {
    const ledger = new AdmissionLedger(store);
    await store.append('target-moved', [{ id: randomUUID(), type: 'Changed', data: {} }]);
    const admit = async (targetId: string, expected: StreamAppend['expected']) => {
      const turn = await ledger.turn();
      return turn.admit(admission(targetId, 1), context, changeOf(targetId, expected));
    };

    const outcomes = await Promise.allSettled([admit('a', 'no_stream'), admit('moved', 'no_stream'), admit('b', 'no_stream')]);

    expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    const lost = (outcomes[1] as PromiseRejectedResult).reason as ConcurrencyConflict;
    expect(lost).to.be.instanceOf(ConcurrencyConflict);
    expect(lost.stream).to.equal('target-moved');
    const stored = await store.readStream(LEDGER_STREAM);
    expect(stored.map((e) => (e.data as Admission).targetId)).to.have.members(['a', 'b']);
    expect(await store.readStream('target-moved')).to.have.length(1);
    expect(await store.readStream('target-a')).to.have.length(1);
    expect(Object.keys((await new AdmissionLedger(store).current()).state.placements)).to.have.members(['a', 'b']);
    expect(Object.keys((await ledger.turn()).ledger.placements)).to.have.members(['a', 'b']);
  });

  it('given a store that fails the append, then neither the admission nor its change is stored', async () => {
    const failing = new (class extends ForwardingEventStore {
      override appendMany(): ReturnType<EventStore['appendMany']> {
        return Promise.reject(new Error('connection lost'));
      }
    })(store);
    const turn = await new AdmissionLedger(failing).turn();

    let failure: unknown;
    await turn.admit(admission('a', 1), context, changeOf('a')).catch((error: unknown) => (failure = error));

    expect((failure as Error).message).to.equal('connection lost');
    expect(await store.readStream(LEDGER_STREAM)).to.deep.equal([]);
    expect(await store.readStream('target-a')).to.deep.equal([]);
  });

  it('given a turn that is released without admitting, then the next judgement proceeds and nothing is stored', async () => {
    const ledger = new AdmissionLedger(store);
    const turn = await ledger.turn();
    const next = ledger.turn();
    turn.release();
    turn.release();
    (await next).release();
    expect(await store.readStream(LEDGER_STREAM)).to.deep.equal([]);
  });

  it('given an admission judged before the policy set changed, when the change of the policy set is stored first, then the admission conflicts and stores nothing, and its retry is judged on a fresh ledger', async () => {
    const ledger = new AdmissionLedger(store);
    expect(await admitWithin(ledger, 'd-0', 10)).to.equal('admitted');
    // Judged now, against the policy set as it stands (say, no freeze)…
    const judgedBefore = await ledger.turn();
    // …which changes (a freeze switched on) before the admission is stored.
    const policyChange: StreamAppend = { stream: 'policyset-global', events: [{ id: randomUUID(), type: 'PolicyUpdated', data: { policyId: 'freeze' } }], expected: 'any' };
    await ledger.storePolicyChange(policyChange, 0, context);

    const error = await rejection(judgedBefore.admit(admission('d-1', 1), context, changeOf('d-1')));

    expect(error).to.be.instanceOf(ConcurrencyConflict);
    expect((error as ConcurrencyConflict).stream).to.equal(LEDGER_STREAM);
    expect(await store.readStream('target-d-1'), 'the change was not stored either').to.deep.equal([]);
    // Its command runs again: the next turn reads the ledger with the policy change, and its append expects it.
    expect(await admitWithin(ledger, 'd-1', 10)).to.equal('admitted');
    expect((await store.readStream(LEDGER_STREAM)).map((event) => event.type)).to.deep.equal(['ChangeAdmitted', 'PolicySetChanged', 'ChangeAdmitted']);
    expect((await store.readStream('policyset-global')).map((event) => event.type)).to.deep.equal(['PolicyUpdated']);
  });

  it('given more than 200 admissions in batches, then a snapshot closes the append that crosses 200 and folding from it equals folding everything', async () => {
    const ledger = new AdmissionLedger(store);
    await Promise.all(Array.from({ length: 230 }, (_, i) => admitWithin(ledger, `d-${i % 50}`, 10_000)));
    const stored = await store.readStream(LEDGER_STREAM);
    const snapshots = stored.filter((e) => e.type === 'LedgerSnapshotted');
    expect(snapshots).to.have.length(1);
    expect(snapshots[0]!.revision).to.be.at.least(200);

    const fresh = new AdmissionLedger(store);
    const everything = fold(ledgerDecider, stored.filter((e) => e.type === 'ChangeAdmitted').map((e) => ledgerEvents.parse(e.type, e.schemaVersion, e.data)));
    expect((await fresh.current()).state.placements).to.deep.equal(everything.placements);
  });

  it('given a ledger holding far more than 200 entries, then snapshots come every half as many events as it holds, and what they write per admission stays flat', async () => {
    const ledger = new AdmissionLedger(store);
    const admissions = 2400;
    for (let i = 0; i < admissions; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => admitWithin(ledger, `d-${(i + j) % 50}`, 100_000)));
    }
    const stored = await store.readStream(LEDGER_STREAM);
    const snapshots = stored.filter((e) => e.type === 'LedgerSnapshotted');
    const entries = (event: (typeof stored)[number]) => {
      const state = ledgerEvents.parse(event.type, event.schemaVersion, event.data).data as Ledger;
      return { state, count: state.history.length + Object.keys(state.placements).length };
    };
    let previous = -1;
    for (const snapshot of snapshots) {
      const { state } = entries(snapshot);
      expect(snapshot.revision - 1 - previous, `events before the snapshot at ${snapshot.revision}`).to.be.at.least(snapshotInterval(state));
      previous = snapshot.revision;
    }
    // Every 200 events, as before, the snapshots would have written the history about 6.5 times over.
    const written = snapshots.reduce((sum, snapshot) => sum + entries(snapshot).count, 0);
    expect(written / admissions, `${written} entries in ${snapshots.length} snapshots`).to.be.below(3);

    const fresh = new AdmissionLedger(store);
    const everything = fold(ledgerDecider, stored.filter((e) => e.type === 'ChangeAdmitted').map((e) => ledgerEvents.parse(e.type, e.schemaVersion, e.data)));
    expect((await fresh.current()).state).to.deep.equal(everything);
  });
});
