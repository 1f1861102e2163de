import { expect } from 'chai';
import { fold, UnknownEvent } from '../../domain/decider.js';
import {
  accrue,
  hoursLeftInMonth,
  HISTORY_RETENTION_MS,
  ledgerDecider,
  ledgerEvents,
  monthOf,
  teamRates,
  totalHourlyUsd,
  usageWhere,
  type Admission,
  type Ledger,
  type LedgerEvent,
  type Placement,
} from '../../domain/ledger.js';
import { fromMicroUsd, toMicroUsd } from '../../domain/pricing.js';
import { given } from '../support/decider.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-03-10T12:00:00Z');
/** The ISO time `hours` after T0. */
const at = (hours: number) => new Date(T0 + hours * HOUR).toISOString();

const gpuEast = '0b4c1d1e-1111-4a4a-8a8a-000000000001';
const gpuWest = '0b4c1d1e-1111-4a4a-8a8a-000000000002';

const placed = (overrides: Partial<Placement> = {}): Placement => ({
  clusterId: gpuEast,
  namespace: 'ml',
  team: 'ml',
  footprint: { replicas: 2, cpuMillicores: 4000, memoryBytes: 8 * 2 ** 30, gpus: 2, gpuSku: 'nvidia-a100-80gb' },
  hourlyUsd: 10,
  ...overrides,
});

/** A placement of a workload without a team label: no `team` key at all, as it reads back from JSON. */
const untagged = (overrides: Partial<Placement> = {}): Placement => {
  const { team: _team, ...rest } = placed(overrides);
  return rest;
};

const admission = (overrides: Partial<Admission> = {}): Admission => ({
  at: at(0),
  action: 'create',
  targetId: 'llm-serving',
  actorId: 'alice',
  ...overrides,
});

const admitted = (overrides: Partial<Admission> = {}): LedgerEvent => ({ type: 'ChangeAdmitted', data: admission(overrides) });

const stateOf = (events: LedgerEvent[]): Ledger => fold(ledgerDecider, events);

describe('Admission ledger', () => {
  describe('decide', () => {
    it('given nothing, when a change is admitted, then ChangeAdmitted with the admission as it came', () => {
      const change = admission({ placement: placed(), targetRevision: 0 });
      given(ledgerDecider)
        .when({ type: 'AdmitChange', admission: change })
        .then([{ type: 'ChangeAdmitted', data: change }]);
    });
    it('given admissions, when snapshotted, then LedgerSnapshotted with the whole state', () => {
      const past = [admitted({ placement: placed() }), admitted({ at: at(1), targetId: 'trainer', placement: placed({ team: 'vision' }) })];
      const { state } = given(ledgerDecider, past);
      given(ledgerDecider, past)
        .when({ type: 'SnapshotLedger' })
        .then([{ type: 'LedgerSnapshotted', data: state }]);
    });
  });

  describe('placements', () => {
    it('given nothing, when an admission carries a placement, then the target holds it', () => {
      expect(stateOf([admitted({ placement: placed() })]).placements).to.deep.equal({ 'llm-serving': placed() });
    });
    it('given a placement, when an admission carries a new one, then it replaces the old', () => {
      const bigger = placed({ footprint: { ...placed().footprint, replicas: 4 }, hourlyUsd: 20 });
      const state = stateOf([admitted({ placement: placed() }), admitted({ at: at(1), action: 'scale', placement: bigger })]);
      expect(state.placements).to.deep.equal({ 'llm-serving': bigger });
    });
    it('given a placement, when an admission carries placement null, then the target holds nothing', () => {
      const state = stateOf([
        admitted({ placement: placed() }),
        admitted({ targetId: 'trainer', placement: placed({ team: 'vision' }) }),
        admitted({ at: at(1), action: 'delete', placement: null }),
      ]);
      expect(state.placements).to.have.keys(['trainer']);
    });
    it('given a placement, when an admission carries no placement, then the target keeps what it holds', () => {
      const state = stateOf([admitted({ placement: placed() }), admitted({ at: at(1), action: 'restart' })]);
      expect(state.placements).to.deep.equal({ 'llm-serving': placed() });
    });
    it('given nothing, when an admission releases a target that holds nothing, then nothing is held', () => {
      expect(stateOf([admitted({ action: 'delete', placement: null })]).placements).to.deep.equal({});
    });
  });

  describe('history', () => {
    it('given admissions, then the history holds them oldest first, without their placements', () => {
      const state = stateOf([
        admitted({ placement: placed() }),
        admitted({ at: at(1), action: 'scale', direction: 'up', actorId: 'bob', targetRevision: 2, placement: placed() }),
        admitted({ at: at(2), action: 'restart', targetId: 'trainer' }),
      ]);
      expect(state.history).to.deep.equal([
        { at: at(0), action: 'create', targetId: 'llm-serving', actorId: 'alice' },
        { at: at(1), action: 'scale', targetId: 'llm-serving', actorId: 'bob', direction: 'up', targetRevision: 2 },
        { at: at(2), action: 'restart', targetId: 'trainer', actorId: 'alice' },
      ]);
    });
    it('given admissions, when a later one comes past the retention, then those older than the retention before it are dropped', () => {
      const retention = HISTORY_RETENTION_MS / HOUR;
      const state = stateOf([
        admitted({ at: at(0), targetId: 'a' }),
        admitted({ at: at(1), targetId: 'b' }),
        admitted({ at: at(2), targetId: 'c' }),
        admitted({ at: at(retention + 1.5), targetId: 'd' }),
      ]);
      expect(state.history.map((past) => past.targetId)).to.deep.equal(['c', 'd']);
    });
    it('given an admission a millisecond inside the retention, then it is kept; a millisecond past, dropped', () => {
      const newest = at(30);
      const justInside = new Date(Date.parse(newest) - HISTORY_RETENTION_MS + 1).toISOString();
      const justOutside = new Date(Date.parse(newest) - HISTORY_RETENTION_MS - 1).toISOString();
      const state = stateOf([
        admitted({ at: justOutside, targetId: 'out' }),
        admitted({ at: justInside, targetId: 'in' }),
        admitted({ at: newest, targetId: 'newest' }),
      ]);
      expect(state.history.map((past) => past.targetId)).to.deep.equal(['in', 'newest']);
    });
    it('given an admission, when the same target is admitted again for the same revision, then the retry replaces it', () => {
      const state = stateOf([
        admitted({ action: 'scale', targetRevision: 3, actorId: 'alice' }),
        admitted({ at: at(1), action: 'restart', targetId: 'trainer', targetRevision: 3 }),
        admitted({ at: at(2), action: 'scale', targetRevision: 3, actorId: 'bob' }),
      ]);
      expect(state.history).to.deep.equal([
        { at: at(1), action: 'restart', targetId: 'trainer', actorId: 'alice', targetRevision: 3 },
        { at: at(2), action: 'scale', targetId: 'llm-serving', actorId: 'bob', targetRevision: 3 },
      ]);
    });
    it('given an admission, when the same target is admitted for another revision, then both are kept', () => {
      const state = stateOf([admitted({ targetRevision: 3 }), admitted({ at: at(1), targetRevision: 4 })]);
      expect(state.history.map((past) => past.targetRevision)).to.deep.equal([3, 4]);
    });
    it('given admissions without a target revision, then none replaces another', () => {
      const state = stateOf([admitted(), admitted({ at: at(1) }), admitted({ at: at(2), targetRevision: 1 })]);
      expect(state.history).to.have.length(3);
    });
  });

  describe('spend', () => {
    it('given a team placed at $10/h, when the next admission comes 3 h later, then the team has spent $30', () => {
      const state = stateOf([admitted({ placement: placed({ hourlyUsd: 10 }) }), admitted({ at: at(3), targetId: 'other' })]);
      expect(state.spend).to.deep.equal({ ml: { month: '2026-03', usd: 30 } });
      expect(state.accruedTo).to.equal(at(3));
    });
    it('given nothing, when the first admission comes, then nothing is spent yet', () => {
      const state = stateOf([admitted({ placement: placed() })]);
      expect(state.spend).to.deep.equal({});
      expect(state.accruedTo).to.equal(at(0));
    });
    it('given a rate change, then each stretch accrues at the rate that held during it', () => {
      const state = stateOf([
        admitted({ placement: placed({ hourlyUsd: 10 }) }),
        admitted({ at: at(2), action: 'scale', placement: placed({ hourlyUsd: 25 }) }),
        admitted({ at: at(4), action: 'delete', placement: null }),
        admitted({ at: at(10), targetId: 'other' }),
      ]);
      // 2 h at $10 + 2 h at $25 + 6 h at nothing.
      expect(state.spend).to.deep.equal({ ml: { month: '2026-03', usd: 70 } });
    });
    it('given placements of several teams, then each team accrues at its own summed rate and untagged ones at none', () => {
      const state = stateOf([
        admitted({ targetId: 'a', placement: placed({ team: 'ml', hourlyUsd: 10 }) }),
        admitted({ targetId: 'b', placement: placed({ team: 'ml', hourlyUsd: 5 }) }),
        admitted({ targetId: 'c', placement: placed({ team: 'vision', hourlyUsd: 2 }) }),
        admitted({ targetId: 'd', placement: untagged({ hourlyUsd: 100 }) }),
        admitted({ at: at(2), targetId: 'e' }),
      ]);
      expect(state.spend).to.deep.equal({ ml: { month: '2026-03', usd: 30 }, vision: { month: '2026-03', usd: 4 } });
      expect(teamRates(state)).to.deep.equal({ ml: 15, vision: 2 });
    });
    it('given spend in one month, when an admission comes in the next, then spend restarts and accrues only from the month start (UTC)', () => {
      const state = stateOf([
        admitted({ at: '2026-03-31T20:00:00Z', placement: placed({ hourlyUsd: 10 }) }),
        admitted({ at: '2026-03-31T22:00:00Z', targetId: 'other' }),
        admitted({ at: '2026-04-01T03:00:00Z', targetId: 'other' }),
      ]);
      expect(state.spend).to.deep.equal({ ml: { month: '2026-04', usd: 30 } });
    });
    it('given a team with nothing placed any more, when the month turns, then its spend is zero for the new month', () => {
      const state = stateOf([
        admitted({ at: '2026-03-31T20:00:00Z', placement: placed({ hourlyUsd: 10 }) }),
        admitted({ at: '2026-03-31T22:00:00Z', action: 'delete', placement: null }),
        admitted({ at: '2026-04-01T03:00:00Z', targetId: 'other' }),
      ]);
      expect(state.spend).to.deep.equal({ ml: { month: '2026-04', usd: 0 } });
    });
    it('given a ledger, when accrued up to a later instant, then spend grows without an admission and the state is untouched', () => {
      const state = stateOf([admitted({ placement: placed({ hourlyUsd: 10 }) }), admitted({ at: at(1), targetId: 'other' })]);
      const before = structuredClone(state);
      expect(accrue(state, at(4))).to.deep.equal({ ml: { month: '2026-03', usd: 40 } });
      expect(state).to.deep.equal(before);
    });
    it('given an empty ledger, when accrued, then nothing is spent', () => {
      expect(accrue(ledgerDecider.initialState, at(5))).to.deep.equal({});
    });
    it('given a ledger, when accrued up to an instant before accruedTo, then nothing more is spent', () => {
      const state = stateOf([admitted({ placement: placed({ hourlyUsd: 10 }) }), admitted({ at: at(3), targetId: 'other' })]);
      expect(accrue(state, at(1))).to.deep.equal({ ml: { month: '2026-03', usd: 30 } });
    });
    it('given a clock that goes backwards, when an admission comes earlier than the last, then nothing accrues and accruedTo stays', () => {
      const state = stateOf([
        admitted({ placement: placed({ hourlyUsd: 10 }) }),
        admitted({ at: at(3), targetId: 'other' }),
        admitted({ at: at(1), targetId: 'late' }),
        admitted({ at: at(4), targetId: 'other' }),
      ]);
      expect(state.spend).to.deep.equal({ ml: { month: '2026-03', usd: 40 } });
      expect(state.accruedTo).to.equal(at(4));
    });
    it('given a clock that goes backwards across a month boundary, then the new month keeps what it has spent', () => {
      const state = stateOf([
        admitted({ at: '2026-03-31T20:00:00Z', placement: placed({ hourlyUsd: 10 }) }),
        admitted({ at: '2026-04-01T02:00:00Z', targetId: 'other' }),
        // A late writer whose clock still reads March.
        admitted({ at: '2026-03-31T23:00:00Z', targetId: 'late' }),
        admitted({ at: '2026-04-01T03:00:00Z', targetId: 'other' }),
      ]);
      // 00:00–03:00 of April at $10/h; the late admission must neither accrue nor wipe April's spend.
      expect(state.spend).to.deep.equal({ ml: { month: '2026-04', usd: 30 } });
    });
  });

  describe('money', () => {
    /** Dollars that are a whole number of micro-dollars, as every figure the ledger computes must be. */
    const wholeMicroUsd = (usd: number) => fromMicroUsd(toMicroUsd(usd)) === usd;

    it('given placements of $0.10, $0.20 and $0.30 an hour, then they total $0.60 exactly, in any order', () => {
      const figures = [0.1, 0.2, 0.3].map((hourlyUsd) => placed({ hourlyUsd }));
      // What a float sum gives instead: the reason sums are taken in micro-dollars.
      expect(0.1 + 0.2 + 0.3).to.equal(0.6000000000000001);
      for (const order of [figures, [...figures].reverse(), [figures[1]!, figures[0]!, figures[2]!]]) {
        expect(totalHourlyUsd(order)).to.equal(0.6);
      }
      expect(totalHourlyUsd([])).to.equal(0);
    });
    it('given a team of $0.10/h and $0.20/h, then its rate is $0.30/h exactly', () => {
      const state = stateOf([admitted({ targetId: 'a', placement: placed({ hourlyUsd: 0.1 }) }), admitted({ targetId: 'b', placement: placed({ hourlyUsd: 0.2 }) })]);
      expect(teamRates(state)).to.deep.equal({ ml: 0.3 });
    });
    it('given $0.10/h, when accrued every 20 minutes for an hour, then each step is rounded to the micro-dollar', () => {
      const state = stateOf([
        admitted({ placement: placed({ hourlyUsd: 0.1 }) }),
        admitted({ at: at(1 / 3), targetId: 'other' }),
        admitted({ at: at(2 / 3), targetId: 'other' }),
        admitted({ at: at(1), targetId: 'other' }),
      ]);
      // 3 × $0.0333333…, each rounded to $0.033333: the same on every fold of the same log.
      expect(state.spend).to.deep.equal({ ml: { month: '2026-03', usd: 0.099999 } });
      expect(accrue(stateOf([admitted({ placement: placed({ hourlyUsd: 0.1 }) })]), at(1))).to.deep.equal({ ml: { month: '2026-03', usd: 0.1 } });
    });
    it('given a rate of one micro-dollar an hour, when half an hour passes, then half a micro-dollar rounds up', () => {
      const state = stateOf([admitted({ placement: placed({ hourlyUsd: 0.000001 }) })]);
      expect(accrue(state, at(0.5))).to.deep.equal({ ml: { month: '2026-03', usd: 0.000001 } });
      expect(accrue(state, at(0.49))).to.deep.equal({ ml: { month: '2026-03', usd: 0 } });
    });
    it('given $7,000.000001/h, when most of a month passes, then it accrues exactly, rounded half up', () => {
      // 7,000,000,001 µ$/h × 2,520,199,999 ms is 4,900,388,887,644.4999… µ$, and the product is past 2^53: in floats it
      // comes out as …644.5 and rounds up a micro-dollar too many.
      const state = stateOf([admitted({ at: '2026-03-01T00:00:00Z', placement: placed({ hourlyUsd: 7_000.000001 }) })]);
      expect(accrue(state, '2026-03-30T04:03:19.999Z')).to.deep.equal({ ml: { month: '2026-03', usd: 4_900_388.887644 } });
    });
    it('given older events with unrounded float costs, then they fold, keep their figures, and sum and accrue in whole micro-dollars', () => {
      const state = stateOf([
        admitted({ targetId: 'a', placement: placed({ hourlyUsd: 0.1 + 0.2 }) }),
        admitted({ targetId: 'b', placement: placed({ hourlyUsd: 1 / 3 }) }),
        admitted({ at: at(3), targetId: 'other' }),
      ]);
      expect(state.placements['b']!.hourlyUsd).to.equal(1 / 3);
      expect(teamRates(state)).to.deep.equal({ ml: 0.633333 });
      expect(totalHourlyUsd(Object.values(state.placements))).to.equal(0.633333);
      expect(state.spend).to.deep.equal({ ml: { month: '2026-03', usd: 1.899999 } });
    });
    it('given an older snapshot with an unrounded spend, then accrual carries on from its nearest micro-dollar', () => {
      const older: LedgerEvent = {
        type: 'LedgerSnapshotted',
        data: { placements: { a: placed({ hourlyUsd: 10 }) }, spend: { ml: { month: '2026-03', usd: 30.000000000000004 } }, accruedTo: at(0), history: [] },
      };
      expect(accrue(stateOf([older]), at(1))).to.deep.equal({ ml: { month: '2026-03', usd: 40 } });
    });
    it('given awkward rates and gaps, then every spend accrued is a whole number of micro-dollars', () => {
      const rates = [0.1, 0.7, 1.005, 2.675, 1 / 3];
      const state = stateOf(
        Array.from({ length: 60 }, (_, i) =>
          admitted({ at: at((i * 7) / 60), action: 'scale', targetId: `dep-${i % 4}`, placement: placed({ team: i % 2 ? 'ml' : 'vision', hourlyUsd: rates[i % rates.length]! }) }),
        ),
      );
      expect(Object.keys(state.spend)).to.have.members(['ml', 'vision']);
      for (const { usd } of Object.values(state.spend)) expect(wholeMicroUsd(usd), String(usd)).to.equal(true);
    });
  });

  describe('snapshots', () => {
    /** A long, varied run: several teams, scales, removals, retries, month turns and gaps longer than the retention. */
    const run = (): LedgerEvent[] => {
      const events: LedgerEvent[] = [];
      const teams = ['ml', 'vision', 'untagged'] as const;
      let time = Date.parse('2026-02-20T00:00:00Z');
      for (let i = 0; i < 120; i++) {
        time += ((i * 7) % 11) * (HOUR / 4) + (i % 13 === 0 ? 30 * HOUR : 0) + (i === 60 ? 30 * 24 * HOUR : 0);
        const target = `dep-${i % 6}`;
        const release = i % 9 === 4;
        const unchanged = i % 5 === 2;
        const event = admitted({
          at: new Date(time).toISOString(),
          action: release ? 'delete' : unchanged ? 'restart' : 'scale',
          targetId: target,
          actorId: i % 2 ? 'alice' : 'bob',
          ...(i % 4 === 0 ? {} : { targetRevision: Math.floor(i / 12) }),
          ...(release
            ? { placement: null }
            : unchanged
              ? {}
              : {
                  direction: i % 3 ? 'up' : 'down',
                  placement: (teams[i % 3] === 'untagged' ? untagged : placed)({
                    clusterId: i % 2 ? gpuEast : gpuWest,
                    team: teams[i % 3],
                    hourlyUsd: 1 + (i % 7) * 2.5,
                    footprint: { replicas: 1 + (i % 4), cpuMillicores: 500 * (i % 5), memoryBytes: 2 ** 30 * (i % 3), gpus: i % 3 },
                  }),
                }),
        });
        events.push(event);
      }
      return events;
    };

    it('given a snapshot, then folding it restores the state exactly, as an independent copy', () => {
      const events = run();
      const state = stateOf(events);
      const [snapshot] = ledgerDecider.decide({ type: 'SnapshotLedger' }, state);
      const restored = stateOf([snapshot!]);
      expect(restored).to.deep.equal(state);
      expect(restored).not.to.equal(state);
      expect(restored.placements).not.to.equal(state.placements);
    });

    for (const midway of [0, 1, 37, 60, 119, 120]) {
      it(`given a snapshot after ${midway} events, then folding the rest from it equals folding everything from the start`, () => {
        const events = run();
        const [snapshot] = ledgerDecider.decide({ type: 'SnapshotLedger' }, stateOf(events.slice(0, midway)));
        expect(fold(ledgerDecider, events.slice(midway), stateOf([snapshot!]))).to.deep.equal(stateOf(events));
      });
    }

    it('given a snapshot stored as JSON and read back through the catalogue, then folding from it still equals folding from the start', () => {
      const events = run();
      const [snapshot] = ledgerDecider.decide({ type: 'SnapshotLedger' }, stateOf(events.slice(0, 50)));
      const read = ledgerEvents.parse('LedgerSnapshotted', 1, JSON.parse(JSON.stringify(snapshot!.data)));
      const rest = events.slice(50).map((event) => ledgerEvents.parse(event.type, 1, JSON.parse(JSON.stringify(event.data))));
      expect(fold(ledgerDecider, rest, stateOf([read]))).to.deep.equal(stateOf(events));
    });

    it('given a snapshot, when a later snapshot replaces it, then the later one wins', () => {
      const events = run();
      const early = ledgerDecider.decide({ type: 'SnapshotLedger' }, stateOf(events.slice(0, 10)));
      const late = ledgerDecider.decide({ type: 'SnapshotLedger' }, stateOf(events.slice(0, 90)));
      expect(stateOf([...early, ...events.slice(10, 20), ...late])).to.deep.equal(stateOf(events.slice(0, 90)));
    });
  });

  describe('events', () => {
    it('parses ChangeAdmitted, with a placement, with placement null and without one', () => {
      for (const data of [admission({ placement: placed(), targetRevision: 7, direction: 'up' }), admission({ placement: null }), admission()]) {
        expect(ledgerEvents.parse('ChangeAdmitted', 1, data)).to.deep.equal({ type: 'ChangeAdmitted', data });
      }
    });
    it('parses LedgerSnapshotted, of the empty ledger and of a full one', () => {
      const full = stateOf([admitted({ placement: placed() }), admitted({ at: at(2), targetId: 'b', targetRevision: 1 })]);
      for (const data of [ledgerDecider.initialState, full]) {
        expect(ledgerEvents.parse('LedgerSnapshotted', 1, data)).to.deep.equal({ type: 'LedgerSnapshotted', data });
      }
    });
    for (const [why, data] of [
      ['an unknown action', { ...admission(), action: 'explode' }],
      ['no targetId', { at: at(0), action: 'create', actorId: 'alice' }],
      ['a fractional targetRevision', admission({ targetRevision: 1.5 })],
      ['a direction that is neither up nor down', { ...admission(), direction: 'sideways' }],
      ['a placement without a footprint', { ...admission(), placement: { clusterId: gpuEast, namespace: 'ml', hourlyUsd: 1 } }],
      ['an hourly cost that is not a number', { ...admission(), placement: { ...placed(), hourlyUsd: '10' } }],
    ] as const) {
      it(`refuses ChangeAdmitted with ${why}`, () => {
        expect(() => ledgerEvents.parse('ChangeAdmitted', 1, data)).to.throw(UnknownEvent, /does not match its schema/);
      });
    }
    for (const [why, data] of [
      ['no placements', { spend: {}, history: [] }],
      ['spend without a month', { placements: {}, spend: { ml: { usd: 3 } }, history: [] }],
      ['a history entry with an unknown action', { placements: {}, spend: {}, history: [{ ...admission(), action: 'explode' }] }],
    ] as const) {
      it(`refuses LedgerSnapshotted with ${why}`, () => {
        expect(() => ledgerEvents.parse('LedgerSnapshotted', 1, data)).to.throw(UnknownEvent, /does not match its schema/);
      });
    }
    it('refuses an unknown schema version and an unknown type', () => {
      expect(() => ledgerEvents.parse('ChangeAdmitted', 2, admission())).to.throw(UnknownEvent);
      expect(() => ledgerEvents.parse('LedgerExploded', 1, {})).to.throw(UnknownEvent);
    });
  });

  describe('reading', () => {
    const state = stateOf([
      admitted({ targetId: 'a', placement: placed() }),
      admitted({ targetId: 'b', placement: placed({ namespace: 'vision', footprint: { replicas: 1, cpuMillicores: 1000, memoryBytes: 2 ** 30, gpus: 4, gpuSku: 'nvidia-h100-80gb' } }) }),
      admitted({ targetId: 'c', placement: placed({ clusterId: gpuWest, footprint: { replicas: 3, cpuMillicores: 3000, memoryBytes: 0, gpus: 1, gpuSku: 'nvidia-a100-80gb' } }) }),
      // A SKU with no GPUs counted, and GPUs with no SKU: neither lands in gpusBySku.
      admitted({ targetId: 'd', placement: placed({ footprint: { replicas: 1, cpuMillicores: 250, memoryBytes: 0, gpus: 0, gpuSku: 'nvidia-l4' } }) }),
      admitted({ targetId: 'e', placement: placed({ footprint: { replicas: 1, cpuMillicores: 0, memoryBytes: 0, gpus: 1 } }) }),
    ]);

    it('usageWhere sums every matching placement but the excluded target, with GPUs by SKU', () => {
      expect(usageWhere(state, 'e', () => true)).to.deep.equal({
        replicas: 2 + 1 + 3 + 1,
        cpuMillicores: 4000 + 1000 + 3000 + 250,
        memoryBytes: 8 * 2 ** 30 + 2 ** 30,
        gpus: 2 + 4 + 1,
        gpusBySku: { 'nvidia-a100-80gb': 3, 'nvidia-h100-80gb': 4 },
      });
    });
    it('usageWhere counts only what matches', () => {
      const usage = usageWhere(state, 'none', (p) => p.clusterId === gpuEast && p.namespace === 'ml');
      expect(usage).to.deep.equal({ replicas: 4, cpuMillicores: 4250, memoryBytes: 8 * 2 ** 30, gpus: 3, gpusBySku: { 'nvidia-a100-80gb': 2 } });
    });
    it('usageWhere over nothing is no usage, and does not share its gpusBySku between calls', () => {
      const first = usageWhere(ledgerDecider.initialState, 'x', () => true);
      expect(first).to.deep.equal({ replicas: 0, cpuMillicores: 0, memoryBytes: 0, gpus: 0, gpusBySku: {} });
      usageWhere(state, 'none', () => true);
      expect(first.gpusBySku).to.deep.equal({});
      expect(usageWhere(ledgerDecider.initialState, 'x', () => true).gpusBySku).to.deep.equal({});
    });
    it('teamRates sums the hourly cost of each team', () => {
      expect(teamRates(state)).to.deep.equal({ ml: 50 });
      expect(teamRates(ledgerDecider.initialState)).to.deep.equal({});
    });
    it('monthOf is the UTC month of an instant, from a string or a number', () => {
      expect(monthOf('2026-11-30T23:59:59.999Z')).to.equal('2026-11');
      expect(monthOf('2026-12-01T00:30:00+01:00')).to.equal('2026-11');
      expect(monthOf(Date.parse('2027-01-01T00:00:00Z'))).to.equal('2027-01');
    });
    it('hoursLeftInMonth counts to the start of the next UTC month', () => {
      expect(hoursLeftInMonth('2026-03-31T23:00:00Z')).to.equal(1);
      expect(hoursLeftInMonth('2026-12-31T23:00:00Z')).to.equal(1);
      expect(hoursLeftInMonth('2026-12-31T23:30:00Z')).to.equal(0.5);
      expect(hoursLeftInMonth('2026-04-01T00:00:00Z')).to.equal(30 * 24);
    });
    it('hoursLeftInMonth knows February of a leap year and of a common one', () => {
      expect(hoursLeftInMonth('2024-02-01T00:00:00Z')).to.equal(29 * 24);
      expect(hoursLeftInMonth('2024-02-29T23:00:00Z')).to.equal(1);
      expect(hoursLeftInMonth('2024-02-28T23:00:00Z')).to.equal(25);
      expect(hoursLeftInMonth('2026-02-01T00:00:00Z')).to.equal(28 * 24);
    });
  });
});
