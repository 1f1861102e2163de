// sentinel_plan_duration_seconds: the plan reactor times each plan once, when it ends, from its submission to its end as
// the log recorded them, labelled by how it ended; a shadow plan is not timed, and neither is a later end of a plan
// already timed (a failed plan rolled back by hand) nor an end delivered twice.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry, type MetricValueWithName } from 'prom-client';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { prometheusPlanMetrics } from '../../adapters/prometheus/plan-metrics.js';
import { actionPlans } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { NodeDrainCommands } from '../../commands/cluster-commands.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { ActionPlanCommand } from '../../domain/action-plan.js';
import { comparePositions, type RecordedEvent } from '../../domain/event-store.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { ClusterError } from '../../reactors/cluster-driver.js';
import { PlanReactor } from '../../reactors/plan-reactor.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { eventually } from '../support/eventually.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const alice = { id: 'alice', kind: 'user' } as const;
/** How long a plan may take to be carried out, or the reactor to pass an event: far more than either needs. */
const PATIENCE_MS = 15_000;
const byTest = (): CommandContext => ({ actor: alice, correlationId: randomUUID(), causationId: randomUUID() });

describe('plan duration metric', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;
  let handler: CommandHandler;
  let registry: Registry;
  let reactor: PlanReactor;
  let runtime: ReactorRuntime;

  beforeEach(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    handler = new CommandHandler(store);
    const policy = new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth });
    registry = new Registry();
    reactor = new PlanReactor(
      {
        handler,
        deployments: new DeploymentCommands(handler, systemClock, policy),
        drains: new NodeDrainCommands(handler, systemClock, policy),
        clock: systemClock,
        driverFor: (clusterId) => Promise.reject(new ClusterError(`no cluster ${clusterId} in this test`, undefined, false)),
      },
      { logger, actionTimeoutMs: 5_000, evictionTimeoutMs: 1_000, metrics: prometheusPlanMetrics(registry) },
    );
    runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, retryBaseMs: 5 });
    runtime.add(reactor);
  });

  afterEach(async () => {
    await runtime.stop();
    await store.close();
    await db.close();
  });

  /** A plan restarting a deployment that does not exist, submitted now and taken as far as `upTo`. */
  async function plan(upTo: 'Pending' | 'Approved', options: { shadow?: boolean; ttlSeconds?: number } = {}): Promise<string> {
    const planId = randomUUID();
    const now = Date.now();
    const commands: ActionPlanCommand[] = [
      {
        type: 'SubmitActionPlan',
        planId,
        source: 'user',
        actor: alice,
        reason: 'restart a server',
        actions: [{ kind: 'restart', deploymentId: randomUUID() }],
        submittedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + (options.ttlSeconds ?? 600) * 1000).toISOString(),
        shadow: options.shadow ?? false,
      },
      ...(upTo === 'Approved' ? [{ type: 'StartPlanValidation' as const, planId }, { type: 'ApprovePlan' as const, planId }] : []),
    ];
    for (const command of commands) await handler.execute(actionPlans, planId, command, byTest());
    return planId;
  }

  const send = (planId: string, command: ActionPlanCommand) => handler.execute(actionPlans, planId, command, byTest());
  const planEvents = (planId: string) => store.readStream(`plan-${planId}`);
  const statusOf = async (planId: string) => (await handler.loadState(actionPlans, planId)).state.status;

  /** The histogram's count and sum for one outcome, 0 when it has no series. */
  async function observed(outcome: string): Promise<{ count: number; sum: number }> {
    const { values } = await registry.getSingleMetric('sentinel_plan_duration_seconds')!.get();
    const value = (name: string) => (values as MetricValueWithName<string>[]).find((v) => v.metricName === name && v.labels['outcome'] === outcome)?.value ?? 0;
    return { count: value('sentinel_plan_duration_seconds_count'), sum: value('sentinel_plan_duration_seconds_sum') };
  }

  /** Seconds between the plan's submission and the event of `type`, as the log recorded them. */
  const recordedSeconds = (events: RecordedEvent[], type: string) =>
    (events.find((event) => event.type === type)!.recordedAt.getTime() - events.find((event) => event.type === 'ActionPlanSubmitted')!.recordedAt.getTime()) / 1000;

  /** Waits until the plan reactor's checkpoint has passed every event of the plan. */
  async function handled(planId: string): Promise<void> {
    const last = (await planEvents(planId)).at(-1)!;
    await eventually(`the plan reactor past ${last.type} of plan ${planId}`, () => runtime.checkpoint(reactor.name), (checkpoint) =>
      checkpoint !== undefined && comparePositions(checkpoint, last.position) >= 0, PATIENCE_MS,
    );
  }

  it('given an approved plan whose action fails, when the reactor has carried it out, then it is timed once as failed, from submission to ActionPlanFailed', async () => {
    const planId = await plan('Approved');
    await eventually(`plan ${planId} Failed`, () => statusOf(planId), (status) => status === 'Failed', PATIENCE_MS);
    await handled(planId);
    const events = await planEvents(planId);
    expect(await observed('failed')).to.deep.equal({ count: 1, sum: recordedSeconds(events, 'ActionPlanFailed') });

    // Rolled back by hand later: the plan was timed when it failed, and is not timed again.
    await send(planId, { type: 'StartPlanRollback', planId, cause: 'by hand' });
    await send(planId, { type: 'CompletePlanRollback', planId });
    await handled(planId);
    expect(await statusOf(planId)).to.equal('RolledBack');
    expect(await observed('rolled_back')).to.deep.equal({ count: 0, sum: 0 });
    expect((await observed('failed')).count).to.equal(1);
  });

  it('given a plan cancelled before it ran, then it is timed as cancelled, and an end delivered again is not timed twice', async () => {
    const planId = await plan('Pending');
    await send(planId, { type: 'CancelPlan', planId, actor: alice, reason: 'changed my mind' });
    await handled(planId);
    const events = await planEvents(planId);
    const cancelled = events.find((event) => event.type === 'ActionPlanCancelled')!;
    expect(await observed('cancelled')).to.deep.equal({ count: 1, sum: recordedSeconds(events, 'ActionPlanCancelled') });

    // At least once: the same end, delivered again (after the reactor started again, say).
    await reactor.handle(cancelled, new AbortController().signal);
    expect((await observed('cancelled')).count).to.equal(1);
  });

  it('given a shadow plan and a plan to carry out, when both expire, then only the second is timed: a shadow plan is never carried out', async () => {
    const shadow = await plan('Approved', { shadow: true, ttlSeconds: 1 });
    const waiting = await plan('Pending', { ttlSeconds: 1 });
    const at = new Date(Date.now() + 1000).toISOString();
    for (const planId of [shadow, waiting]) {
      await send(planId, { type: 'ExpirePlan', planId, at });
      await handled(planId);
      expect(await statusOf(planId)).to.equal('Expired');
    }
    expect(await observed('expired')).to.deep.equal({ count: 1, sum: recordedSeconds(await planEvents(waiting), 'ActionPlanExpired') });
  });
});
