// Fleet snapshots at a time: during a run of the real write side, every read model's rows are copied at a moment T
// (and at the position then reached); more happens; a snapshot at T, and one at that position, must hold exactly the
// copied rows, while the live read models have moved on. Snapshots are dropped on request and when they expire.
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { pino } from 'pino';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { ActionPlanCommands } from '../../commands/action-plan-commands.js';
import { clusters as clusterAggregate, policySets, workloads as workloadAggregate } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { Principal } from '../../domain/access.js';
import { actionPlanBody } from '../../domain/action-plan.js';
import { deploymentBody } from '../../domain/deployment.js';
import { policyBody, type PolicyBody } from '../../domain/policy.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { fleetCost, fleetCostProjector } from '../../projections/fleet-cost.js';
import {
  createSnapshot,
  dropExpiredSnapshots,
  dropSnapshot,
  FleetSnapshots,
  listSnapshot,
  projectSnapshot,
  schemaOf,
  snapshotFleetCost,
  snapshotStatus,
  SNAPSHOT_READ_MODELS,
  SnapshotUnavailable,
} from '../../projections/fleet-snapshot.js';
import { READ_MODEL_PROJECTORS, type PageOf } from '../../projections/read-models.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { parseAsOf } from '../../projections/time-travel.js';
import { runCli } from '../support/cli.js';
import { backends, type Backend } from '../support/projection-backends.js';
import { eventually } from '../support/eventually.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const alice: Principal = { id: 'alice', kind: 'user', name: 'alice', role: 'operator' };
const contextOf = (): CommandContext => ({ actor: { id: alice.id, kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() });
const policy = (body: Record<string, unknown>) => policyBody.parse(body) as PolicyBody;

/** Every read model's rows, page by page (small pages, so paging is part of what is compared), and the fleet's cost. */
type Rows = Record<string, unknown>;

async function allPages(read: (cursor: string | undefined) => Promise<PageOf>): Promise<unknown[]> {
  const items: unknown[] = [];
  for (let cursor: string | undefined; ; ) {
    const page = await read(cursor);
    items.push(...page.items);
    if (page.nextCursor === null) return items;
    cursor = page.nextCursor;
  }
}

for (const backend of backends) {
  describe(`fleet snapshot at a time on ${backend.name}`, function () {
    this.timeout(120_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let knex: Knex;
    let store: PostgresEventStore;
    let runtime: ProjectionRuntime;
    let handler: CommandHandler;
    let deploymentCommands: DeploymentCommands;
    let planCommands: ActionPlanCommands;
    /** The moment T, the position reached by then, and what every read model showed at T. */
    let at: string;
    let position: string;
    let copied: Rows;

    /**
     * The log's last event once every append made so far can be read: on a shared server, a transaction in another
     * database holds the visible horizon back, and a read right after an append may not see it yet.
     */
    async function visibleHead(): Promise<string> {
      await eventually('every append visible', () => store.unsettled(), (unsettled) => unsettled.events === 0, 10_000);
      return (await store.readAll({ limit: 100_000 })).events.at(-1)!.position;
    }

    /** What the live read models show, once the runtime has applied everything up to the log's head. */
    async function liveRows(): Promise<Rows> {
      const head = await visibleHead();
      expect(await runtime.waitFor(head, READ_MODEL_PROJECTORS.map((p) => p.name), 30_000), 'the read side caught up').to.equal(true);
      const rows: Rows = {};
      for (const [name, model] of Object.entries(SNAPSHOT_READ_MODELS)) {
        const tables = await runtime.tables(model.projector);
        rows[name] = await allPages((cursor) => model.list(knex, tables, { limit: 2, cursor, filters: {} }));
      }
      rows['fleet-cost'] = await fleetCost(knex, await runtime.tables(fleetCostProjector));
      return rows;
    }

    async function snapshotRows(id: string): Promise<Rows> {
      const rows: Rows = {};
      for (const name of Object.keys(SNAPSHOT_READ_MODELS)) rows[name] = await allPages((cursor) => listSnapshot(knex, id, name, { limit: 2, cursor, filters: {} }));
      rows['fleet-cost'] = await snapshotFleetCost(knex, id);
      return rows;
    }

    async function snapshotAt(point: string): Promise<string> {
      const id = randomUUID();
      await createSnapshot(knex, { id, at: point, ttlSeconds: 3600 });
      await projectSnapshot(knex, store, id, parseAsOf(point)!, { batchSize: 7 });
      return id;
    }

    async function registerCluster(name: string): Promise<string> {
      const clusterId = randomUUID();
      const spec = { name, apiServer: 'https://10.0.0.1:6443', region: 'eu-west-1', labels: {}, gpuSkus: ['nvidia-l4'], credentials: { source: 'in-cluster' as const } };
      await handler.execute(clusterAggregate, clusterId, { type: 'RegisterCluster', clusterId, spec }, contextOf());
      return clusterId;
    }

    async function registerWorkload(name: string): Promise<string> {
      const workloadId = randomUUID();
      const spec = { name, namespace: 'snapshots', type: 'inference' as const, image: `registry.local/${name}:1`, resources: { cpu: '1', memory: '1Gi' }, labels: { team: 'search' } };
      await handler.execute(workloadAggregate, workloadId, { type: 'RegisterWorkload', workloadId, spec }, contextOf());
      return workloadId;
    }

    async function createDeployment(workloadId: string, clusterId: string, replicas: number): Promise<string> {
      const deploymentId = randomUUID();
      await deploymentCommands.create(deploymentId, deploymentBody.parse({ workloadId, clusterId, replicas }), contextOf());
      return deploymentId;
    }

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        return this.skip();
      }
      opened = await backend.open();
      knex = opened.db.knex;
      store = await PostgresEventStore.open(opened.db);
      await migrateSentinel(knex);
      handler = new CommandHandler(store);
      const engine = new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth });
      deploymentCommands = new DeploymentCommands(handler, systemClock, engine);
      planCommands = new ActionPlanCommands(handler, systemClock, engine, new FleetFacts(handler), { defaultTtlSeconds: 3600 });
      runtime = new ProjectionRuntime(knex, store, READ_MODEL_PROJECTORS, { logger, lease: opened.lease(), batchSize: 5 });
      await runtime.start();

      // Up to T: policies, two clusters, workloads, deployments, a scale and a plan.
      const quota = randomUUID();
      await handler.execute(policySets, 'global', { type: 'CreatePolicy', policyId: quota, policy: policy({ name: 'snapshot quota', type: 'quota', mode: 'enforce', selector: { namespaces: ['snapshots'] }, parameters: { limits: { replicas: 20 } } }) }, contextOf());
      const east = await registerCluster('east');
      const west = await registerCluster('west');
      const ranker = await registerWorkload('ranker');
      const embedder = await registerWorkload('embedder');
      const first = await createDeployment(ranker, east, 2);
      const second = await createDeployment(embedder, west, 1);
      await deploymentCommands.scale(first, 3, contextOf());
      const plan = randomUUID();
      await planCommands.submit(plan, actionPlanBody.parse({ reason: 'before T', actions: [{ kind: 'restart', deploymentId: second }] }), alice, contextOf());

      copied = await liveRows();
      position = await visibleHead();
      // Every event so far is recorded before T, every later one after it.
      await sleep(5);
      at = new Date().toISOString();
      await sleep(5);

      // After T: the fleet changes in every read model the run touched.
      await planCommands.cancel(plan, 'after T', contextOf());
      await deploymentCommands.scale(first, 5, contextOf());
      await deploymentCommands.delete(second, 'after T', contextOf());
      await handler.execute(clusterAggregate, west, { type: 'CordonCluster', clusterId: west, reason: 'after T' }, contextOf());
      await createDeployment(await registerWorkload('reranker'), await registerCluster('north'), 1);
      await handler.execute(policySets, 'global', { type: 'UpdatePolicy', policyId: quota, patch: { parameters: { limits: { replicas: 30 } } } }, contextOf());
    });

    after(async () => {
      await runtime?.stop();
      await store?.close();
      await opened?.close();
    });

    it('has read models that moved on since T (so that the comparisons below can fail)', async () => {
      const now = await liveRows();
      for (const name of ['clusters', 'workloads', 'deployments', 'action-plans', 'policies', 'policy-decisions', 'fleet-cost']) {
        expect(now[name], name).to.not.deep.equal(copied[name]);
      }
    });

    it('holds at T exactly the rows every read model showed at T', async () => {
      const id = await snapshotAt(at);
      const status = await snapshotStatus(knex, id);
      expect(status).to.include({ id, at, status: 'ready', position });
      expect(await snapshotRows(id)).to.deep.equal(copied);
      await dropSnapshot(knex, id);
    });

    it('holds at the position reached at T the same rows', async () => {
      const id = await snapshotAt(position);
      expect((await snapshotStatus(knex, id))?.position).to.equal(position);
      expect(await snapshotRows(id)).to.deep.equal(copied);
      await dropSnapshot(knex, id);
    });

    it('holds nothing before the first event, and the live rows at the head', async () => {
      const empty = await snapshotAt('2000-01-01T00:00:00Z');
      const rows = await snapshotRows(empty);
      for (const name of Object.keys(SNAPSHOT_READ_MODELS)) expect(rows[name], name).to.deep.equal([]);
      expect((await snapshotStatus(knex, empty))?.position).to.equal(null);
      const head = await snapshotAt(new Date(Date.now() + 60_000).toISOString());
      expect(await snapshotRows(head)).to.deep.equal(await liveRows());
      await Promise.all([dropSnapshot(knex, empty), dropSnapshot(knex, head)]);
    });

    it('is gone, schema and all, once dropped; reading it then names the snapshot', async () => {
      const id = await snapshotAt(at);
      expect(await dropSnapshot(knex, id)).to.equal(true);
      expect(await snapshotStatus(knex, id)).to.equal(undefined);
      expect(await knex('pg_namespace').where('nspname', schemaOf(id)).first()).to.equal(undefined);
      expect(await dropSnapshot(knex, id)).to.equal(false);
      const error = await listSnapshot(knex, id, 'deployments', { limit: 10, filters: {} }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).to.be.instanceOf(SnapshotUnavailable);
      expect((error as SnapshotUnavailable).message).to.contain(id);
    });

    it('drops expired snapshots and keeps the others', async () => {
      const expiring = randomUUID();
      const kept = randomUUID();
      await createSnapshot(knex, { id: expiring, at, ttlSeconds: 0 });
      await createSnapshot(knex, { id: kept, at, ttlSeconds: 3600 });
      await sleep(5);
      expect(await dropExpiredSnapshots(knex)).to.deep.equal([expiring]);
      expect(await snapshotStatus(knex, expiring)).to.equal(undefined);
      expect((await snapshotStatus(knex, kept))?.status).to.equal('projecting');
      await dropSnapshot(knex, kept);
    });

    it('refuses the rows of a snapshot still being projected, saying so', async () => {
      const id = randomUUID();
      await createSnapshot(knex, { id, at, ttlSeconds: 3600 });
      const error = await listSnapshot(knex, id, 'clusters', { limit: 10, filters: {} }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).to.be.instanceOf(SnapshotUnavailable);
      expect((error as SnapshotUnavailable).reason).to.equal('projecting');
      await dropSnapshot(knex, id);
    });

    it('is written by `sentinel forensics snapshot --at T --out file` as JSON lines, and dropped after', async function () {
      if (opened.url === undefined) {
        console.log('      skipped: the CLI opens its own database, and this PGlite lives in the test process');
        return this.skip();
      }
      const dir = await mkdtemp(path.join(tmpdir(), 'sentinel-snapshot-'));
      try {
        const file = path.join(dir, 'fleet.jsonl');
        const result = await runCli(['forensics', 'snapshot', '--at', at, '--out', file], { DATABASE_URL: opened.url, LOG_LEVEL: 'warn' });
        expect(result.code, result.stderr).to.equal(0);
        expect(result.stderr).to.contain(`up to position ${position}`);
        const [header, ...lines] = (await readFile(file, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(header).to.deep.equal({ kind: 'snapshot', at, position, events: header!['events'], contents: Object.keys(copied) });
        const written: Rows = Object.fromEntries(Object.keys(SNAPSHOT_READ_MODELS).map((name) => [name, [] as unknown[]]));
        for (const line of lines) {
          expect(line['kind']).to.equal('row');
          const name = line['readModel'] as string;
          if (name === 'fleet-cost') written[name] = line['row'];
          else (written[name] as unknown[]).push(line['row']);
        }
        expect(written).to.deep.equal(JSON.parse(JSON.stringify(copied)));
        const left = await knex('pg_namespace').where('nspname', 'like', 'sentinel_snapshot_%').select('nspname');
        expect(left, 'the CLI dropped its scratch snapshot').to.deep.equal([]);
        const again = await runCli(['forensics', 'snapshot', '--at', at, '--out', file], { DATABASE_URL: opened.url, LOG_LEVEL: 'warn' });
        expect(again.code).to.equal(2);
        expect(again.stderr).to.contain('never overwrites');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('projects in the background for the API, then serves its rows', async () => {
      const snapshots = new FleetSnapshots(knex, store, { ttlSeconds: 3600, logger, batchSize: 3 });
      try {
        const id = randomUUID();
        const created = await snapshots.create(id, at, parseAsOf(at)!);
        expect(created.status).to.equal('projecting');
        const ready = await eventually('the snapshot is ready', () => snapshots.status(id), (status) => status?.status !== 'projecting', 30_000);
        expect(ready?.status).to.equal('ready');
        expect(await snapshots.list(id, 'deployments', { limit: 500, filters: {} })).to.deep.equal({ items: copied['deployments'], nextCursor: null });
        expect(await snapshots.fleetCost(id)).to.deep.equal(copied['fleet-cost']);
        expect(await snapshots.remove(id)).to.equal(true);
      } finally {
        await snapshots.stop();
      }
    });
  });
}
