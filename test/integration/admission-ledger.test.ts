// The admission ledger takes turns within a process and stores what was admitted many to an append; two processes
// on one store still never both admit on the same ledger. On PGlite.
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { AdmissionLedger } from '../../commands/admission-ledger.js';
import type { CommandContext } from '../../commands/command-handler.js';
import { fold } from '../../domain/decider.js';
import { ConcurrencyConflict, type EventStore } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
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

/** Counts appends, and can hold one back until let go. */
class CountingStore extends ForwardingEventStore {
  appends = 0;
  override append(...args: Parameters<EventStore['append']>): ReturnType<EventStore['append']> {
    this.appends += 1;
    return super.append(...args);
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
    await turn.admit(admission(targetId, 1), context);
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

  it('given a turn that is released without admitting, then the next judgement proceeds and nothing is stored', async () => {
    const ledger = new AdmissionLedger(store);
    const turn = await ledger.turn();
    const next = ledger.turn();
    turn.release();
    turn.release();
    (await next).release();
    expect(await store.readStream(LEDGER_STREAM)).to.deep.equal([]);
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
});
