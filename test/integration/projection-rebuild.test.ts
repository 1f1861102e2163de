// Rebuilding a projection while Sentinel runs: a new generation projected from the whole log as writes keep
// coming, swapped in atomically, followed by the live runtime, equal to a projection from scratch; and the CLI.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { clusters, workloads } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import { deploymentBody } from '../../domain/deployment.js';
import type { EventStore, Position, RecordedEvent } from '../../domain/event-store.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { auditProjector } from '../../projections/audit-trail.js';
import { tableNames, type Projector } from '../../projections/projector.js';
import { READ_MODELS, READ_MODEL_PROJECTORS } from '../../projections/read-models.js';
import { rebuildProjection, type RebuildProgress } from '../../projections/rebuild.js';
import { CHECKPOINT_REGISTRY, projectionRow } from '../../adapters/postgres/checkpoints.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { runCli as cli } from '../support/cli.js';
import { backends, type Backend } from '../support/projection-backends.js';
import { allVisible } from '../support/events.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const PROJECTORS: Projector[] = [...READ_MODEL_PROJECTORS, auditProjector];
const DEPLOYMENTS = READ_MODELS.deployments.projector as Projector;
const SCRATCH_GENERATION = 900;
const SEEDED = 60;

function contextOf(): CommandContext {
  return { actor: { id: 'operator', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() };
}

async function generationOf(knex: Knex, name: string): Promise<number> {
  const row = await projectionRow(knex, name);
  if (!row) throw new Error(`projection ${name} is not registered`);
  return row.generation;
}

async function tablesExist(knex: Knex, projector: Projector, generation: number): Promise<boolean[]> {
  return Promise.all(Object.values<string>(tableNames(projector, generation)).map((table) => knex.schema.hasTable(table)));
}

/** Every row of a table, each as JSON text, in one total order. */
async function rowsOf(knex: Knex, table: string): Promise<string[]> {
  const result = (await knex.raw(`select to_jsonb(t)::text as row from ${table} t order by to_jsonb(t)::text collate "C"`)) as { rows: { row: string }[] };
  return result.rows.map((r) => r.row);
}

async function wholeLog(store: PostgresEventStore): Promise<RecordedEvent[]> {
  await allVisible(store);
  const events: RecordedEvent[] = [];
  for (let after: Position | undefined; ; ) {
    const page = await store.readAll({ after, limit: 2000 });
    if (page.events.length === 0) return events;
    events.push(...page.events);
    after = page.checkpoint;
  }
}

for (const backend of backends) {
  describe(`projection rebuild on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;
    let runtime: ProjectionRuntime;
    let commands: DeploymentCommands;
    let handler: CommandHandler;
    let clusterId: string;
    let lastWrite: Position;

    /** One workload, deployed, the deployment scaled: two deployment events, each with its policy decision. */
    async function deploy(): Promise<string> {
      const deploymentId = randomUUID();
      const workloadId = randomUUID();
      await handler.execute(workloads, workloadId, {
        type: 'RegisterWorkload',
        workloadId,
        spec: { name: `trainer-${workloadId}`, namespace: 'ml', type: 'batch', image: 'busybox', resources: { cpu: '1', memory: '1Gi' }, labels: { team: 'ml' } },
      }, contextOf());
      await commands.create(deploymentId, deploymentBody.parse({ workloadId, clusterId, replicas: 1 }), contextOf());
      lastWrite = (await commands.scale(deploymentId, 2, contextOf())).position!;
      return deploymentId;
    }

    async function caughtUp(names = PROJECTORS.map((p) => p.name)): Promise<void> {
      expect(await runtime.waitFor(lastWrite, names, 30_000), 'the live runtime caught up').to.equal(true);
    }

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
      }, contextOf());
      for (let i = 0; i < SEEDED; i += 1) await deploy();
      runtime = new ProjectionRuntime(opened.db.knex, store, PROJECTORS, { logger, lease: opened.lease(), batchSize: 50 });
      await runtime.start();
      await caughtUp();
    });

    after(async () => {
      await runtime?.stop();
      await store?.close();
      await opened?.close();
    });

    it('rebuilds deployments into a new generation while writes go on, swaps it in, and the live runtime follows it', async () => {
      const { knex } = opened.db;
      const before = await generationOf(knex, 'deployments');
      expect(await tablesExist(knex, DEPLOYMENTS, before)).to.deep.equal([true, true, true]);

      // A writer keeps deploying through the whole rebuild.
      let writing = true;
      let written = 0;
      const writer = (async () => {
        while (writing) {
          await deploy();
          written += 1;
        }
      })();
      const progress: RebuildProgress[] = [];
      let writtenAtStart = -1;
      const result = await rebuildProjection(knex, store, DEPLOYMENTS, {
        batchSize: 5,
        dropAfterMs: 0,
        onProgress: (p) => {
          if (writtenAtStart < 0) writtenAtStart = written;
          progress.push(p);
        },
      });
      const writtenDuring = written - writtenAtStart;
      writing = false;
      await writer;
      // Written after the swap: only the live runtime can put it in the new generation.
      const afterSwap = await deploy();
      await caughtUp();

      expect(writtenDuring, 'deployments written while the rebuild ran').to.be.above(0);
      expect(result).to.deep.include({ name: 'deployments', previousGeneration: before, generation: before + 1, previousDropped: true });
      expect(result.events).to.be.at.least(SEEDED * 2);
      expect(await generationOf(knex, 'deployments')).to.equal(before + 1);
      expect(await tablesExist(knex, DEPLOYMENTS, before), 'the old generation is dropped').to.deep.equal([false, false, false]);
      expect(await tablesExist(knex, DEPLOYMENTS, before + 1)).to.deep.equal([true, true, true]);

      // Progress went up to what was applied, with a rate and an estimate.
      expect(progress.length).to.be.above(SEEDED / 5);
      expect(progress.map((p) => p.applied)).to.deep.equal([...progress.map((p) => p.applied)].sort((a, b) => a - b));
      expect(progress.at(-1)).to.deep.include({ applied: result.events, etaSeconds: 0 });
      expect(progress.every((p) => p.total >= p.applied)).to.equal(true);
      expect(progress.at(-1)!.eventsPerSecond).to.be.above(0);

      // The live runtime serves and applies from the new generation.
      const tables = await runtime.tables(DEPLOYMENTS);
      expect(tables).to.deep.equal(tableNames(DEPLOYMENTS, before + 1));
      expect(await knex(tables['deployments']!).where({ id: afterSwap }).first('replicas')).to.deep.equal({ replicas: 2 });
      const status = (await runtime.status()).find((s) => s.name === 'deployments')!;
      const log = await wholeLog(store);
      const deploymentEvents = log.filter((event) => DEPLOYMENTS.eventTypes!.includes(event.type));
      expect(status).to.deep.include({ generation: before + 1, lagEvents: 0, active: true, position: deploymentEvents.at(-1)!.position });
      expect(status.eventsApplied, 'every deployment event applied once to the new generation').to.equal(deploymentEvents.length);

      // Every table of every projection equals a projection of the whole log from scratch, row for row.
      for (const projector of PROJECTORS) {
        const live = await runtime.tables(projector);
        const fresh = tableNames(projector, SCRATCH_GENERATION);
        const mine = projector.eventTypes ? log.filter((event) => projector.eventTypes!.includes(event.type)) : log;
        await knex.transaction(async (trx) => {
          await projector.createTables(trx, fresh);
          for (let i = 0; i < mine.length; i += 500) await projector.apply(mine.slice(i, i + 500), trx, fresh);
        });
        try {
          for (const base of projector.tables) {
            const [liveRows, freshRows] = [await rowsOf(knex, live[base]!), await rowsOf(knex, fresh[base]!)];
            expect(liveRows.length, `${projector.name}.${base} rows`).to.equal(freshRows.length);
            expect(liveRows, `${projector.name}.${base}`).to.deep.equal(freshRows);
          }
        } finally {
          for (const table of Object.values<string>(fresh)) await knex.schema.dropTableIfExists(table);
        }
      }
    });

    it('never swaps in a generation behind the live one: when the live runtime got ahead, it catches up and swaps again', async () => {
      const { knex } = opened.db;
      const before = await generationOf(knex, 'deployments');
      const cutoff = lastWrite;
      await deploy();
      await deploy();
      await caughtUp(['deployments']);
      const live = (await runtime.status()).find((s) => s.name === 'deployments')!;

      // The rebuild reads as if the last two deployments were not visible yet, until it first tries to swap.
      let stalled = true;
      const onQuery = (query: { sql: string }) => {
        if (/for update/i.test(query.sql) && query.sql.includes(CHECKPOINT_REGISTRY)) stalled = false;
      };
      const stale: EventStore = Object.create(store) as EventStore;
      stale.readAll = async (options) => {
        const page = await store.readAll(options);
        if (!stalled) return page;
        const events = page.events.filter((event) => event.position <= cutoff);
        return { events, checkpoint: events.at(-1)?.position ?? options?.after };
      };
      knex.on('query', onQuery);
      const result = await rebuildProjection(knex, stale, DEPLOYMENTS, { batchSize: 50, dropAfterMs: 0 }).finally(() => knex.off('query', onQuery));

      expect(result.swapAttempts).to.equal(2);
      expect(result.generation).to.equal(before + 1);
      expect(result.position).to.equal(live.position);
      const row = (await projectionRow(knex, 'deployments'))!;
      expect(row.position! >= live.position!, 'the served checkpoint never goes back').to.equal(true);
      expect(row.events).to.equal(live.eventsApplied);
    });

    it('runs `sentinel projections status` and `rebuild` against the database while Sentinel projects', async function () {
      if (!opened.url) return this.skip(); // the CLI opens PGlite only from a data directory: see the PGlite CLI suite
      const { knex } = opened.db;
      const env = { DATABASE_URL: opened.url };
      const before = await generationOf(knex, 'deployments');

      const status = await cli(['projections', 'status'], env);
      expect(status.code, status.stderr).to.equal(0);
      const [header, ...lines] = status.stdout.trimEnd().split('\n');
      expect(header!.split(/\s{2,}/)).to.deep.equal(['NAME', 'VERSION', 'GENERATION', 'POSITION', 'APPLIED', 'LAG EVENTS', 'LAG SECONDS', 'UPDATED']);
      expect(lines.map((line) => line.split(/\s+/)[0]).sort()).to.deep.equal(PROJECTORS.map((p) => p.name).sort());
      const deploymentsLine = lines.find((line) => line.startsWith('deployments '))!.split(/\s+/);
      expect(deploymentsLine.slice(1, 3)).to.deep.equal(['1', String(before)]);

      const rebuilt = await cli(['projections', 'rebuild', 'deployments', '--batch-size', '20', '--drop-after', '0'], env);
      expect(rebuilt.code, rebuilt.stderr).to.equal(0);
      expect(rebuilt.stdout).to.include(`rebuilt deployments (version 1): generation ${before} → ${before + 1}`);
      expect(rebuilt.stdout).to.include(`dropped the tables of generation ${before}`);
      expect(rebuilt.stderr).to.match(/\[#{20}\] 100% [\d,]+\/[\d,]+ ev [\d,]+ ev\/s ETA 0s/);
      expect(await generationOf(knex, 'deployments')).to.equal(before + 1);
      expect(await tablesExist(knex, DEPLOYMENTS, before)).to.deep.equal([false, false, false]);
      // The runtime in this process picked the CLI's generation up.
      const id = await deploy();
      await caughtUp(['deployments']);
      expect(await knex(tableNames(DEPLOYMENTS, before + 1)['deployments']!).where({ id }).first('replicas')).to.deep.equal({ replicas: 2 });

      const unknown = await cli(['projections', 'rebuild', 'deployment'], env);
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.include('unknown projection "deployment"');
      for (const projector of PROJECTORS) expect(unknown.stderr).to.include(projector.name);
    });
  });
}

describe('sentinel CLI on embedded PGlite', function () {
  this.timeout(60_000);
  let dataDir: string;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'sentinel-cli-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses a data directory without a database, and a database Sentinel looks to have open; reads one it has not', async () => {
    const empty = await cli(['projections', 'status'], { SENTINEL_DATA_DIR: dataDir, PORT: '0' });
    expect(empty.code).to.equal(1);
    expect(empty.stderr).to.include(`no Sentinel database at ${path.join(dataDir, 'pglite')}`);

    const db = await openPglite(path.join(dataDir, 'pglite'));
    const store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    await new ProjectionRuntime(db.knex, store, PROJECTORS, { logger, lease: inProcessLease }).prepare();
    await store.close();
    await db.close();

    // Something answers where Sentinel would listen: the CLI will not open the database beside it.
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const busy = await cli(['projections', 'rebuild', 'audit'], { SENTINEL_DATA_DIR: dataDir, PORT: String(port) });
      expect(busy.code).to.equal(1);
      expect(busy.stderr).to.include('stop Sentinel first');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }

    const status = await cli(['projections', 'status'], { SENTINEL_DATA_DIR: dataDir, PORT: String(port) });
    expect(status.code, status.stderr).to.equal(0);
    // name, version, generation 1, no checkpoint yet, nothing applied, no lag
    expect(status.stdout).to.match(new RegExp(`^audit\\s+${auditProjector.version}\\s+1\\s+-\\s+0\\s+0\\s+0\\.0\\s`, 'm'));

    const badConfig = await cli(['projections', 'status'], { DATABASE_URL: 'mysql://nope' });
    expect(badConfig.code).to.equal(2);
    expect(badConfig.stderr).to.include('DATABASE_URL');
  });
});
