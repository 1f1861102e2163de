// Durable timers on PGlite and PostgreSQL: timers fire once, in due order and never early; a cancel recorded first
// wins; timers that fell due while no service ran fire at start; two instances record each firing once and the
// handler's command once; and across a kill -9, with the real clock, each timer fires exactly once.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { InvalidTransition } from '../../domain/decider.js';
import type { EventStore } from '../../domain/event-store.js';
import { timerEvents } from '../../domain/timer.js';
import { TransientFailure } from '../../reactors/failures.js';
import { listParked, ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { TimerService, type TimerClock } from '../../reactors/timers.js';
import { eventually } from '../support/eventually.js';
import { nodeArgsFor } from '../support/entry-points.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL } from '../support/postgres.js';
import { backends, type Backend } from '../support/projection-backends.js';
import { ManualClock, PROBE_OWNER, probeHandler, type ProbeHooks } from '../support/timers.js';
import { allVisible } from '../support/events.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const WAIT_MS = 15_000;
const START = Date.parse('2026-03-01T12:00:00.000Z');
const at = (seconds: number) => new Date(START + seconds * 1000);

function byTest(): CommandContext {
  return { actor: { id: 'durable-timers-test', kind: 'system' }, correlationId: randomUUID(), causationId: randomUUID() };
}

/** The types of a timer's events, its firing, and how many times its probe rang. */
async function history(store: EventStore, timerId: string): Promise<{ types: string[]; rings: number; firedAt?: string }> {
  const timer = await store.readStream(`timer-${timerId}`);
  const rings = (await store.readStream(`timerprobe-${timerId}`)).length;
  const fired = timer.map((event) => timerEvents.parse(event.type, event.schemaVersion, event.data)).find((event) => event.type === 'TimerFired');
  return { types: timer.map((event) => event.type), rings, ...(fired ? { firedAt: fired.data.firedAt } : {}) };
}

/** The timers that fired, in the order their firings were recorded. */
async function firedOrder(store: PostgresEventStore): Promise<string[]> {
  await allVisible(store);
  const { events } = await store.readAll({ filter: { types: ['TimerFired'] } });
  return events.map((event) => timerEvents.parse(event.type, event.schemaVersion, event.data).data.timerId);
}

/** A timer service with the probe owner registered, and the runtime it runs in, on one database. */
function instance(db: Database, store: PostgresEventStore, clock: TimerClock, hooks: ProbeHooks = {}) {
  const handler = new CommandHandler(store);
  const service = new TimerService(handler, { logger, clock, retryBaseMs: 5, retryMaxMs: 50 });
  const delivered: string[] = [];
  const probe = service.register(
    PROBE_OWNER,
    probeHandler(handler, {
      ...hooks,
      async delivered(timer) {
        await hooks.delivered?.(timer);
        delivered.push(timer.timerId);
      },
    }),
  );
  // Every instance active at once, as two are during a lease handover.
  const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, retryBaseMs: 5, retryMaxMs: 50, parkedPollMs: 50 });
  return { handler, service, probe, delivered, start: () => runtime.add(service), stop: () => runtime.stop() };
}

for (const backend of backends) {
  describe(`durable timers on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;

    before(function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
    });
    // A database of its own for each test: a timer service starts from every timer the log holds.
    beforeEach(async () => {
      opened = await backend.open();
      store = await PostgresEventStore.open(opened.db);
      await migrateSentinel(opened.db.knex);
    });
    afterEach(async () => {
      await store?.close();
      await opened?.close();
    });

    it('given timers scheduled out of order, when the clock passes each, then each fires once, in due order, never early; a cancel recorded first wins', async () => {
      const clock = new ManualClock(at(0));
      const one = instance(opened.db, store, clock);
      one.start();
      try {
        for (const [timerId, seconds] of [['a', 30], ['b', 10], ['c', 20], ['x', 15]] as const) {
          await one.probe.schedule({ timerId, dueAt: at(seconds), payload: { note: timerId } }, byTest());
        }
        await eventually('four timers pending', async () => one.service.pending(), (n) => n === 4, WAIT_MS);
        expect(await one.probe.cancel('x', 'no longer needed', byTest())).to.equal('Cancelled');

        clock.advance(12);
        await eventually('b delivered', async () => one.delivered, (seen) => seen.includes('b'), WAIT_MS);
        // The round that fired b looked at c next, which was not due: nothing else fired.
        expect(await firedOrder(store)).to.deep.equal(['b']);
        expect((await history(store, 'b')).firedAt).to.equal(at(12).toISOString());

        clock.advance(48);
        await eventually('a and c delivered', async () => one.delivered, (seen) => seen.length === 3, WAIT_MS);
        expect(await firedOrder(store)).to.deep.equal(['b', 'c', 'a']);
        for (const timerId of ['a', 'b', 'c']) {
          expect(await history(store, timerId)).to.deep.include({ types: ['TimerScheduled', 'TimerFired'], rings: 1 });
        }
        expect(await history(store, 'x')).to.deep.include({ types: ['TimerScheduled', 'TimerCancelled'], rings: 0 });
        expect(one.service.pending()).to.equal(0);

        expect(await one.probe.cancel('b', 'too late', byTest())).to.equal('Fired');
        const again = await one.probe.schedule({ timerId: 'b', dueAt: at(10), payload: { note: 'b' } }, byTest());
        expect(again.appended, 'scheduling the same timer again records nothing').to.equal(0);
        let moved: unknown;
        await one.probe.schedule({ timerId: 'b', dueAt: at(99), payload: { note: 'b' } }, byTest()).catch((error: unknown) => (moved = error));
        expect(moved).to.be.instanceOf(InvalidTransition);
      } finally {
        await one.stop();
      }
    });

    it('given timers that fell due while no service ran, when a service starts, then they fire at once, and the rest at their time', async () => {
      const clock = new ManualClock(at(0));
      const before = instance(opened.db, store, clock);
      before.start();
      await before.probe.schedule({ timerId: 'missed', dueAt: at(10), payload: { note: 'due while down' } }, byTest());
      await before.probe.schedule({ timerId: 'later', dueAt: at(60), payload: { note: 'due after the start' } }, byTest());
      await eventually('two timers pending', async () => before.service.pending(), (n) => n === 2, WAIT_MS);
      await before.stop();
      // Scheduled while no service runs at all.
      await before.probe.schedule({ timerId: 'offline', dueAt: at(5), payload: { note: 'scheduled while down' } }, byTest());
      // Long before the start, as the scenario has it: a service starting sooner than a transaction open elsewhere on
      // the server lets the newest schedule be read would fire `missed` before it knew of `offline`.
      await allVisible(store);

      clock.advance(30);
      const after = instance(opened.db, store, clock);
      after.start();
      try {
        await eventually('missed timers delivered', async () => after.delivered, (seen) => seen.length === 2, WAIT_MS);
        expect(after.delivered).to.have.members(['missed', 'offline']);
        expect(await firedOrder(store), 'in due order').to.deep.equal(['offline', 'missed']);
        expect((await history(store, 'missed')).firedAt).to.equal(at(30).toISOString());
        expect(after.service.pending()).to.equal(1);

        clock.advance(30);
        await eventually('later delivered', async () => after.delivered, (seen) => seen.includes('later'), WAIT_MS);
        for (const timerId of ['missed', 'offline', 'later']) expect(await history(store, timerId)).to.deep.include({ types: ['TimerScheduled', 'TimerFired'], rings: 1 });
      } finally {
        await after.stop();
      }
    });

    it('given two active instances (a lease handover), when timers fall due, then each firing and the command it sends are recorded once', async () => {
      const clock = new ManualClock(at(0));
      const [one, two] = [instance(opened.db, store, clock), instance(opened.db, store, clock)];
      one.start();
      two.start();
      try {
        const ids = Array.from({ length: 20 }, (_, i) => `race-${i}`);
        for (const [i, timerId] of ids.entries()) await one.probe.schedule({ timerId, dueAt: at(i + 1), payload: { note: 'raced' } }, byTest());
        await eventually('both instances wait on every timer', async () => [one.service.pending(), two.service.pending()], (n) => n[0] === 20 && n[1] === 20, WAIT_MS);

        clock.advance(30);
        // Each instance's runtime hands every firing to its own handler: at-least-once delivery, twice here.
        await eventually('every firing delivered by both', async () => [one.delivered.length, two.delivered.length], (n) => n[0]! >= 20 && n[1]! >= 20, WAIT_MS);
        for (const timerId of ids) expect(await history(store, timerId), timerId).to.deep.include({ types: ['TimerScheduled', 'TimerFired'], rings: 1 });
      } finally {
        await Promise.all([one.stop(), two.stop()]);
      }
    });

    it('given a handler that fails after its effect, then it is called again and the effect stays single; a firing nobody handles is parked', async () => {
      const clock = new ManualClock(at(0));
      let failures = 1;
      const one = instance(opened.db, store, clock, {
        delivered() {
          if (failures-- > 0) throw new TransientFailure('lost the answer after ringing');
        },
      });
      // Another process registered an owner this one does not know: its firing cannot be handled here.
      const elsewhere = new TimerService(one.handler, { logger, clock });
      const orphans = elsewhere.register('orphan', { payload: probeHandler(one.handler).payload, fire: async () => undefined });
      one.start();
      try {
        await one.probe.schedule({ timerId: 'flaky', dueAt: at(1), payload: { note: 'fails once' } }, byTest());
        await orphans.schedule({ timerId: 'orphaned', dueAt: at(1), payload: { note: 'no handler here' } }, byTest());
        await eventually('two timers pending', async () => one.service.pending(), (n) => n === 2, WAIT_MS);
        clock.advance(5);

        await eventually('flaky delivered', async () => one.delivered, (seen) => seen.includes('flaky'), WAIT_MS);
        expect(failures).to.equal(-1);
        expect(await history(store, 'flaky')).to.deep.include({ types: ['TimerScheduled', 'TimerFired'], rings: 1 });

        const [parked] = await eventually('the orphan firing parked', () => listParked(opened.db.knex, 'timers'), (rows) => rows.length === 1, WAIT_MS);
        expect(parked).to.deep.include({ stream: 'timer-orphaned', type: 'TimerFired', kind: 'permanent' });
        expect(parked!.error).to.equal('timer orphaned fired for orphan, which registered no handler in this process');
      } finally {
        await one.stop();
      }
    });
  });
}

const CHILD = path.resolve('test/support/timers-until-killed.ts');

/** A child process running the timer service, with the lines it printed. */
function startChild(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, nodeArgsFor(CHILD), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exit.then(() => (exited = true));
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  return {
    lines,
    async printed(line: string, timeoutMs = 30_000): Promise<void> {
      await eventually(`the child printing "${line}"`, async () => ({ lines, exited }), (seen) => seen.lines.includes(line) || seen.exited, timeoutMs);
      if (!lines.includes(line)) throw new Error(`the child exited without printing "${line}"; it printed: ${lines.join(' | ')}`);
    },
    async kill(): Promise<void> {
      child.kill('SIGKILL');
      await exit;
    },
  };
}

/**
 * Process one schedules four timers and is killed while handling a firing whose effect it has recorded but not yet
 * reported done (its handler stalls there); one timer falls due while no process runs; process two hands the
 * interrupted firing over again, fires the missed timer at start and the last one at its time. Each timer fires once,
 * and each effect is recorded once although the interrupted handler ran twice.
 */
async function killedAndRestarted(env: NodeJS.ProcessEnv, open: () => Promise<Database>): Promise<void> {
  const first = startChild({
    ...env,
    TIMERS_SCHEDULE: JSON.stringify([
      { timerId: 'interrupted', inMs: 0 },
      { timerId: 'cancelled', inMs: 1000, cancel: true },
      { timerId: 'missed', inMs: 5000 },
      { timerId: 'later', inMs: 8000 },
    ]),
    TIMERS_STALL: 'interrupted',
  });
  await first.printed('ready');
  await first.printed('delivered interrupted');
  await first.kill();
  const killedAt = Date.now();
  const missedDue = Date.parse(first.lines.find((line) => line.startsWith('scheduled missed '))!.split(' ')[2]!);
  expect(killedAt, 'killed before the missed timer was due').to.be.below(missedDue);
  // Down until the missed timer is due.
  await new Promise((resolve) => setTimeout(resolve, missedDue - Date.now() + 200));

  const second = startChild(env);
  try {
    for (const timerId of ['interrupted', 'missed', 'later']) await second.printed(`delivered ${timerId}`);
  } finally {
    await second.kill();
  }
  expect(first.lines.filter((line) => line.startsWith('delivering ')), 'the first process handled only the interrupted firing').to.deep.equal([
    'delivering interrupted',
  ]);

  const db = await open();
  try {
    const store = await PostgresEventStore.open(db);
    for (const timerId of ['interrupted', 'missed', 'later']) {
      expect(await history(store, timerId), timerId).to.deep.include({ types: ['TimerScheduled', 'TimerFired'], rings: 1 });
    }
    expect(await history(store, 'cancelled')).to.deep.include({ types: ['TimerScheduled', 'TimerCancelled'], rings: 0 });
    const firedAt = Date.parse((await history(store, 'missed')).firedAt!);
    expect(firedAt, 'the missed timer fired after the downtime, by the second process').to.be.at.least(Math.max(killedAt, missedDue));
    await store.close();
  } finally {
    await db.close();
  }
}

describe('durable timers across kill -9 (real clock)', function () {
  this.timeout(120_000);

  it('PGlite: each timer fires exactly once across a kill and a restart', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-timers-'));
    try {
      await killedAndRestarted({ TIMERS_PGLITE_DIR: dataDir }, () => openPglite(dataDir));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: each timer fires exactly once across a kill and a restart', async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    const scratch = await createScratchDatabase();
    try {
      await killedAndRestarted({ TIMERS_DATABASE_URL: scratch.url }, async () => openPostgres(scratch.url));
    } finally {
      await scratch.drop();
    }
  });
});
