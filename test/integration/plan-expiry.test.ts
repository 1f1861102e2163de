// Plan expiry through a durable timer: a plan still waiting at its expiry is expired; one whose execution started is
// left to the plan reactor; plans submitted before the expiry reactor first ran get their timer when it starts.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { actionPlans } from '../../commands/aggregates.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import type { ActionPlanCommand } from '../../domain/action-plan.js';
import { comparePositions } from '../../domain/event-store.js';
import { expiryTimerId, PlanExpiry } from '../../reactors/plan-expiry.js';
import { listParked, ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { TimerService } from '../../reactors/timers.js';
import { eventually } from '../support/eventually.js';
import { ManualClock } from '../support/timers.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const START = Date.parse('2026-03-01T12:00:00.000Z');
const at = (seconds: number) => new Date(START + seconds * 1000).toISOString();
const alice = { id: 'alice', kind: 'user' } as const;

function byTest(): CommandContext {
  return { actor: alice, correlationId: randomUUID(), causationId: randomUUID() };
}

describe('plan expiry by durable timer', function () {
  this.timeout(60_000);
  let db: Database;
  let store: PostgresEventStore;
  let handler: CommandHandler;

  beforeEach(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    handler = new CommandHandler(store);
  });
  afterEach(async () => {
    await store.close();
    await db.close();
  });

  /** A plan taken to `Approved` (a shadow plan stays there), or on to `Executing`, expiring after `ttl` seconds. */
  async function plan(ttl: number, upTo: 'Approved' | 'Executing'): Promise<string> {
    const planId = randomUUID();
    const commands: ActionPlanCommand[] = [
      {
        type: 'SubmitActionPlan',
        planId,
        source: 'inframind',
        actor: alice,
        reason: 'free idle GPUs',
        actions: [{ kind: 'restart', deploymentId: randomUUID() }],
        submittedAt: at(0),
        expiresAt: at(ttl),
        shadow: upTo === 'Approved',
      },
      { type: 'StartPlanValidation', planId },
      { type: 'ApprovePlan', planId },
      ...(upTo === 'Executing' ? [{ type: 'StartPlanExecution' as const, planId, at: at(1) }] : []),
    ];
    for (const command of commands) await handler.execute(actionPlans, planId, command, byTest());
    return planId;
  }

  const statusOf = async (planId: string) => (await handler.loadState(actionPlans, planId)).state.status;

  it('given plans submitted before it ran, when it starts and their expiry passes, then the waiting one expires and the executing one is left alone', async () => {
    const waiting = await plan(60, 'Approved');
    const executing = await plan(60, 'Executing');
    const clock = new ManualClock(new Date(START));
    const timers = new TimerService(handler, { logger, clock });
    const expiry = new PlanExpiry(handler, timers);
    const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, retryBaseMs: 5 });
    runtime.add(timers);
    runtime.add(expiry);
    try {
      await eventually('the waiting plan has its timer', async () => timers.pending(), (n) => n === 1, 15_000);
      expect(await store.readStream(`timer-${expiryTimerId(waiting)}`)).to.have.length(1);
      expect(await store.readStream(`timer-${expiryTimerId(executing)}`), 'no timer for a plan already executing').to.have.length(0);

      clock.advance(59);
      expect(await statusOf(waiting)).to.equal('Approved');
      clock.advance(2);
      await eventually('the waiting plan expired', () => statusOf(waiting), (status) => status === 'Expired', 15_000);
      expect((await store.readStream(`plan-${waiting}`)).at(-1)).to.deep.include({ type: 'ActionPlanExpired', data: { planId: waiting, at: at(61) } });
      expect(await statusOf(executing)).to.equal('Executing');
      expect(await listParked(db.knex)).to.deep.equal([]);
    } finally {
      await runtime.stop();
    }
  });

  it('given a plan submitted while it runs, when it is cancelled before its expiry, then the firing changes nothing', async () => {
    const clock = new ManualClock(new Date(START));
    const timers = new TimerService(handler, { logger, clock });
    const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, retryBaseMs: 5 });
    runtime.add(timers);
    runtime.add(new PlanExpiry(handler, timers));
    try {
      const planId = await plan(60, 'Approved');
      await eventually('the plan has its timer', async () => timers.pending(), (n) => n === 1, 15_000);
      await handler.execute(actionPlans, planId, { type: 'CancelPlan', planId, actor: alice, reason: 'changed my mind' }, byTest());
      clock.advance(61);
      const [, fired] = await eventually('the timer fired', () => store.readStream(`timer-${expiryTimerId(planId)}`), (events) => events.length === 2, 15_000);
      await eventually('the firing handled', () => runtime.checkpoint('timers'), (position) => position !== undefined && comparePositions(position, fired!.position) >= 0, 15_000);
      expect(await statusOf(planId)).to.equal('Cancelled');
      expect(await listParked(db.knex)).to.deep.equal([]);
    } finally {
      await runtime.stop();
    }
  });
});
