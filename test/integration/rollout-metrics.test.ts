// The rollout outcome metrics: every (strategy, outcome) series from the start at 0, and one count and one duration
// for each rollout the reactor ends, promoted or aborted.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { rollouts } from '../../commands/deployment-commands.js';
import type { RolloutCommand } from '../../domain/rollout.js';
import { ClusterError } from '../../reactors/cluster-driver.js';
import { RolloutReactor } from '../../reactors/rollout-reactor.js';
import { TimerService } from '../../reactors/timers.js';

const logger = pino({ level: 'silent' });
const context = (): CommandContext => ({ actor: { id: 'metrics-test', kind: 'system' }, correlationId: randomUUID(), causationId: randomUUID() });

describe('rollout outcome metrics', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;
  let handler: CommandHandler;
  let registry: Registry;
  let reactor: RolloutReactor;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    handler = new CommandHandler(store);
    registry = new Registry();
    reactor = new RolloutReactor(handler, new TimerService(handler, { logger }), {
      logger,
      // Neither rollout's deployment exists: nothing is carried out on a cluster, so none is needed.
      driverFor: () => Promise.reject(new ClusterError('no cluster in this test', undefined, true)),
      providers: {},
      progressDeadlineSeconds: 10,
      registry,
    });
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });

  const series = async (name: string) => (await registry.getSingleMetricAsString(name)).split('\n').filter((line) => !line.startsWith('#'));

  /** Sends the commands to a new rollout, then hands the reactor the event that ended it. */
  async function ended(blueGreen: boolean, ...commands: ((rolloutId: string) => RolloutCommand)[]): Promise<void> {
    const deploymentId = randomUUID();
    const rolloutId = `${deploymentId}.2`;
    const start: RolloutCommand = {
      type: 'StartRollout',
      rolloutId,
      deploymentId,
      revision: 2,
      stableRevision: 1,
      replicas: 2,
      steps: blueGreen ? [] : [{ weight: 100 }],
      ...(blueGreen ? { blueGreen: { type: 'blue_green' as const, autoPromote: false, scaleDownDelaySeconds: 30 } } : {}),
      at: '2026-01-01T00:00:00.000Z',
    };
    for (const command of [() => start, ...commands]) await handler.execute(rollouts, rolloutId, command(rolloutId), context());
    const { recorded } = await handler.load(rollouts, rolloutId);
    await reactor.handle(recorded.at(-1)!, new AbortController().signal);
  }

  it('starts every strategy and outcome at 0', async () => {
    expect(await series('sentinel_rollouts_total')).to.include.members([
      'sentinel_rollouts_total{strategy="canary",outcome="promoted"} 0',
      'sentinel_rollouts_total{strategy="canary",outcome="aborted"} 0',
      'sentinel_rollouts_total{strategy="blue_green",outcome="promoted"} 0',
      'sentinel_rollouts_total{strategy="blue_green",outcome="aborted"} 0',
    ]);
  });

  it('counts a canary promoted and a blue/green aborted once each, with the time from start to end', async () => {
    const advance = (step: number) => (rolloutId: string): RolloutCommand => ({ type: 'AdvanceRollout', rolloutId, replicas: 2, runId: randomUUID(), step, at: '2026-01-01T00:01:00.000Z' });
    await ended(false, advance(0), advance(1));
    await ended(true, (rolloutId) => ({ type: 'AbortRollout', rolloutId, cause: 'replaced by revision 3', superseded: true, at: '2026-01-01T00:00:30.000Z' }));

    const counts = await series('sentinel_rollouts_total');
    expect(counts).to.include.members([
      'sentinel_rollouts_total{strategy="canary",outcome="promoted"} 1',
      'sentinel_rollouts_total{strategy="blue_green",outcome="aborted"} 1',
      'sentinel_rollouts_total{strategy="canary",outcome="aborted"} 0',
    ]);
    const durations = await series('sentinel_rollout_duration_seconds');
    expect(durations).to.include.members([
      'sentinel_rollout_duration_seconds_sum{strategy="canary",outcome="promoted"} 60',
      'sentinel_rollout_duration_seconds_count{strategy="canary",outcome="promoted"} 1',
      'sentinel_rollout_duration_seconds_sum{strategy="blue_green",outcome="aborted"} 30',
      'sentinel_rollout_duration_seconds_count{strategy="blue_green",outcome="aborted"} 1',
    ]);
  });
});
