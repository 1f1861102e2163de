// Deployment uptime: the interval arithmetic given/when/then, then the read model fed real readiness events by the
// projection runtime on PGlite (and PostgreSQL when TEST_DATABASE_URL is set), and GET /deployments/:id/health.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { clusters, deployments, workloads } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import type { DeploymentCommand } from '../../domain/deployment.js';
import { deploymentBody } from '../../domain/deployment.js';
import { NotFound } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import { queryRoutes } from '../../projections/http/query-routes.js';
import type { Projector } from '../../projections/projector.js';
import {
  deploymentUptime,
  observe,
  observedUptimes,
  UNOBSERVED,
  uptimeByWindow,
  uptimeOf,
  uptimeOver,
  type Observed,
  type StatusInterval,
} from '../../projections/read-models/deployment-uptime.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { backends, type Backend } from '../support/projection-backends.js';

const HOUR = 3_600_000;
const NOW = new Date('2026-03-31T00:00:00Z');
const ago = (hours: number) => new Date(NOW.getTime() - hours * HOUR);
const interval = (status: StatusInterval['status'], fromHoursAgo: number, toHoursAgo?: number): StatusInterval => ({
  status,
  start: ago(fromHoursAgo),
  end: toHoursAgo === undefined ? null : ago(toHoursAgo),
});

describe('deployment uptime', () => {
  describe('folding readiness into intervals', () => {
    /** Given where a deployment stands, when readiness is seen at a time, then where it stands and what closed. */
    const given = (current: Observed) => ({ when: (seen: 'up' | 'down' | 'deleted', hoursAgo: number) => observe(current, seen, ago(hoursAgo)) });

    it('starts observing at the first readiness seen, closing nothing', () => {
      expect(given(UNOBSERVED).when('up', 10)).to.deep.equal({ next: { status: 'up', since: ago(10) } });
    });

    it('closes the open interval when readiness changes, and opens the next where it ended', () => {
      expect(given({ status: 'up', since: ago(10) }).when('down', 4)).to.deep.equal({
        next: { status: 'down', since: ago(4) },
        closed: interval('up', 10, 4),
      });
    });

    it('changes nothing when the same readiness is seen again, or anything after a deletion', () => {
      const up: Observed = { status: 'up', since: ago(10) };
      expect(given(up).when('up', 2)).to.deep.equal({ next: up });
      const deleted: Observed = { status: 'deleted', since: ago(3) };
      expect(given(deleted).when('up', 1)).to.deep.equal({ next: deleted });
      expect(given(up).when('deleted', 3)).to.deep.equal({ next: deleted, closed: interval('up', 10, 3) });
    });

    it('never ends an interval before it began when clocks disagree', () => {
      expect(given({ status: 'up', since: ago(1) }).when('down', 2).closed).to.deep.equal(interval('up', 1, 1));
    });
  });

  describe('uptime over a window', () => {
    it('is the share of the observed time in the window that was up, the open interval lasting until now', () => {
      // Up 24 h ago to 12 h ago, down for 6 h, up again since.
      const intervals = [interval('up', 24, 12), interval('down', 12, 6), interval('up', 6)];
      expect(uptimeOver(intervals, 1, NOW)).to.equal(0.75);
      // All of the history lies inside the last day, so every window sees the same.
      expect(uptimeByWindow(intervals, [1, 7, 30], NOW)).to.deep.equal({ '1': 0.75, '7': 0.75, '30': 0.75 });
    });

    it('counts only the part of an interval inside the window, and time never observed not at all', () => {
      // Down for 2 days ending 20 h ago, then up: the last day saw 4 h down and 20 h up.
      const intervals = [interval('down', 68, 20), interval('up', 20)];
      expect(uptimeOver(intervals, 1, NOW)).to.be.closeTo(20 / 24, 1e-12);
      expect(uptimeOver(intervals, 7, NOW)).to.be.closeTo(20 / 68, 1e-12);
    });

    it('is unknown for a window that holds no observation', () => {
      expect(uptimeOver([interval('down', 100, 50)], 1, NOW)).to.equal(undefined);
      expect(uptimeOver([], 30, NOW)).to.equal(undefined);
      expect(uptimeByWindow([interval('up', 100, 50)], [1, 7], NOW)).to.deep.equal({ '1': null, '7': 1 });
    });
  });

  for (const backend of backends) {
    describe(`the read model on ${backend.name}`, function () {
      this.timeout(30_000);
      let opened: Awaited<ReturnType<Backend['open']>>;
      let store: PostgresEventStore;
      let handler: CommandHandler;
      let commands: DeploymentCommands;
      let runtime: ProjectionRuntime;
      let clusterId: string;
      let last: string;
      const projector = deploymentUptime.projector as Projector;
      const context = (): CommandContext => ({ actor: { id: 'cluster-reactor', kind: 'system' }, correlationId: randomUUID(), causationId: randomUUID() });

      /** Records what the cluster reactor would have observed. */
      const record = async (command: DeploymentCommand) => {
        last = (await handler.execute(deployments, command.deploymentId, command, context())).position!;
      };
      /** A deployment of a workload of its own: a workload runs once per cluster. */
      const deploy = async () => {
        const id = randomUUID();
        const workloadId = randomUUID();
        await handler.execute(workloads, workloadId, {
          type: 'RegisterWorkload',
          workloadId,
          spec: { name: `chat-${workloadId.slice(0, 8)}`, namespace: 'ml', type: 'inference', image: 'vllm/vllm-openai:v0.6.0', resources: { cpu: '1', memory: '1Gi' }, labels: { team: 'ml' } },
        }, context());
        last = (await commands.create(id, deploymentBody.parse({ workloadId, clusterId, replicas: 1 }), context())).position!;
        return id;
      };
      const caughtUp = async () => expect(await runtime.waitFor(last, [projector.name], 20_000)).to.equal(true);
      const tables = () => runtime.tables(deploymentUptime.projector);
      /** The recorded readiness events of a deployment, for the times the read model should have used. */
      const eventsOf = async (id: string, types: string[]): Promise<RecordedEvent[]> =>
        (await store.readStream(`deployment-${id}`)).filter((event) => types.includes(event.type));

      before(async function () {
        if (backend.skip) {
          console.log(`      skipped: ${backend.skip}`);
          this.skip();
        }
        opened = await backend.open();
        store = await PostgresEventStore.open(opened.db);
        await migrateSentinel(opened.db.knex);
        handler = new CommandHandler(store);
        commands = new DeploymentCommands(handler, systemClock, new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth }));
        clusterId = randomUUID();
        await handler.execute(clusters, clusterId, {
          type: 'RegisterCluster',
          clusterId,
          spec: { name: 'gpu-east', apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' }, region: 'us-east-1', labels: {}, gpuSkus: [] },
        }, context());
        runtime = new ProjectionRuntime(opened.db.knex, store, [projector], { logger: pino({ level: 'silent' }), lease: opened.lease(), batchSize: 3 });
        await runtime.start();
      });

      after(async () => {
        await runtime?.stop();
        await store?.close();
        await opened?.close();
      });

      it('records up and down from what the reactor observed, and a requested change as no observation', async () => {
        const id = await deploy();
        await record({ type: 'RecordApplying', deploymentId: id, revision: 1 });
        await record({ type: 'RecordAvailable', deploymentId: id, revision: 1, readyReplicas: 1 });
        await record({ type: 'RecordDegraded', deploymentId: id, revision: 1, cause: 'MinimumReplicasUnavailable: 0 of 1 ready' });
        await record({ type: 'RecordAvailable', deploymentId: id, revision: 1, readyReplicas: 1 });
        last = (await commands.scale(id, 2, context())).position!;
        await caughtUp();

        const [available, degraded, recovered] = await eventsOf(id, ['DeploymentAvailable', 'DeploymentDegraded']);
        const { knex } = opened.db;
        const names = await tables();
        const closed = await knex(names.deployment_status_intervals).where({ deployment_id: id }).orderBy('started_at');
        expect(closed.map((row: { status: string; started_at: Date; ended_at: Date }) => [row.status, new Date(row.started_at), new Date(row.ended_at)])).to.deep.equal([
          ['up', available!.recordedAt, degraded!.recordedAt],
          ['down', degraded!.recordedAt, recovered!.recordedAt],
        ]);
        expect(await deploymentUptime.get!(knex, names, id)).to.deep.include({ status: 'up', since: recovered!.recordedAt.toISOString(), workloadType: 'inference' });

        const now = new Date(recovered!.recordedAt.getTime() + HOUR);
        const expected = uptimeByWindow(
          [
            { status: 'up', start: available!.recordedAt, end: degraded!.recordedAt },
            { status: 'down', start: degraded!.recordedAt, end: recovered!.recordedAt },
            { status: 'up', start: recovered!.recordedAt, end: null },
          ],
          [1, 7, 30],
          now,
        );
        expect(await uptimeOf(knex, names, id, now)).to.deep.equal({ uptime: expected });
        const observed = (await observedUptimes(knex, names, now, [1, 7, 30], 1000)).find((one) => one.deploymentId === id);
        expect(observed).to.deep.equal({ deploymentId: id, workloadType: 'inference', uptime: expected });
      });

      it('knows a deployment not yet observed, forgets none it never knew, and stops observing a deleted one', async () => {
        const { knex } = opened.db;
        const pending = await deploy();
        const gone = await deploy();
        await record({ type: 'RecordAvailable', deploymentId: gone, revision: 1, readyReplicas: 1 });
        last = (await commands.delete(gone, undefined, context())).position!;
        await caughtUp();
        const names = await tables();
        expect(await uptimeOf(knex, names, pending, NOW)).to.deep.equal({ uptime: { '1': null, '7': null, '30': null } });
        expect(await uptimeOf(knex, names, randomUUID(), NOW)).to.equal(undefined);
        expect((await deploymentUptime.get!(knex, names, gone)) as { status: string }).to.deep.include({ status: 'deleted' });
        const ids = (await observedUptimes(knex, names, new Date(), [1], 1000)).map((one) => one.deploymentId);
        expect(ids).not.to.include(pending).and.not.to.include(gone);
        const listed = await deploymentUptime.list(knex, names, { limit: 500, filters: { status: 'deleted' } });
        expect(listed.items.map((item) => (item as { deploymentId: string }).deploymentId)).to.include(gone);
      });

      it('answers GET /deployments/:id/health from the read model, and 404 for an unknown deployment', async () => {
        const id = await deploy();
        await record({ type: 'RecordAvailable', deploymentId: id, revision: 1, readyReplicas: 1 });
        await caughtUp();
        const [available] = await eventsOf(id, ['DeploymentAvailable']);
        const at = new Date(available!.recordedAt.getTime() + 60_000);
        const health = queryRoutes({ knex: opened.db.knex, runtime, telemetry: {} as never, now: () => at }).find((r) => r.path === '/deployments/:id/health')!;
        const ask = (deploymentId: string) => health.handle({ params: { id: deploymentId }, query: {} } as never);
        expect(await ask(id)).to.deep.equal({
          status: 200,
          body: {
            deploymentId: id,
            uptime: { '1': 1, '7': 1, '30': 1 },
            latencyP99Ms: null,
            successRate: null,
            source: { uptime: 'observed', latency: 'none' },
            observedAt: at.toISOString(),
          },
        });
        const unknown = await ask(randomUUID()).catch((error: unknown) => error);
        expect(unknown).to.be.instanceOf(NotFound);
      });
    });
  }
});
