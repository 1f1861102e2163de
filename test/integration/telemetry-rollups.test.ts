// Rollups accumulated in the ingest process and flushed apart from the batches: they equal the aggregate of the
// stored samples after several agents' batches, after a process is killed with rollups not flushed, after an agent
// moves to another process, and after an agent goes silent; migration 010 carries an existing database over.
// Real stores on PGlite, and PostgreSQL when TEST_DATABASE_URL is set; the ingest through real gRPC.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { telemetryClient, type Batch, type Hello, type IngestMessage, type Sample, type TelemetryClient } from '../../adapters/grpc/telemetry-proto.js';
import type { Database } from '../../adapters/postgres/database.js';
import * as rollups010 from '../../adapters/postgres/migrations/010-telemetry-rollups-off-batch.js';
import { migrateSentinel, sentinelMigrationsBefore } from '../../adapters/postgres/schema.js';
import { AgentNotHeld, startTelemetryIngest } from '../../telemetry/ingest-server.js';
import { SampleStore, SILENT_AGENT_MS } from '../../telemetry/sample-store.js';
import { databases } from '../support/databases.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const MINUTE = 60_000;
const at = (iso: string) => Date.parse(iso);

function helloOf(agentId: string): Hello {
  return { agentId, nodeName: `node-${agentId}`, clusterId: 'cluster-r', agentVersion: '1' };
}

/**
 * `count` samples over 4 series spread across the two minutes before `atMs`, values in halves (sums are exact), the
 * labels of every other series in another key order.
 */
function samplesOf(sequence: number, count: number, atMs: number): Sample[] {
  return Array.from({ length: count }, (_, i) => {
    const gpu = String(i % 4);
    const labels = i % 2 === 0 ? { gpu, modelName: 'H100' } : { modelName: 'H100', gpu };
    return { metric: 'DCGM_FI_DEV_GPU_UTIL', labels, value: ((sequence * 31 + i * 7) % 200) / 2, timestampUnixMs: atMs - ((sequence * 997 + i * 4_001) % (2 * MINUTE)) };
  });
}

function batchOf(agentId: string, sequence: number, atMs = Date.now()): Batch {
  return { ...helloOf(agentId), sequence, samples: samplesOf(sequence, 12, atMs), droppedSamples: 0, sentAtUnixMs: atMs };
}

/** The rollups of nodes `node-<prefix>...`, and the same aggregated from their stored samples: they must be equal. */
async function rollupsAndSamples(db: Database, prefix: string): Promise<{ rollups: string[]; samples: string[] }> {
  const like = `node-${prefix}%`;
  const line = (row: Record<string, unknown>) =>
    `${String(row.node_name)} ${String(row.labels_key)} ${new Date(row.minute as string).toISOString()} count=${Number(row.count)} sum=${Number(row.sum)} ` +
    `min=${Number(row.min)} max=${Number(row.max)} last=${Number(row.last_value)}@${new Date(row.last_time as string).toISOString()}`;
  const rollups = await db.query<Record<string, unknown>>(
    `select node_name, labels_key, minute, count, sum, min, max, last_value, last_time from telemetry_rollups_1m
      where node_name like $1 order by node_name, labels_key, minute`,
    [like],
  );
  const samples = await db.query<Record<string, unknown>>(
    `select node_name, labels::text as labels_key, to_timestamp(floor(extract(epoch from time)::double precision / 60) * 60) as minute,
            count(*) as count, sum(value) as sum, min(value) as min, max(value) as max,
            (max(array[extract(epoch from time)::double precision, value]))[2] as last_value, max(time) as last_time
       from telemetry_sample_rows where node_name like $1
      group by node_name, labels::text, minute order by node_name, labels_key, minute`,
    [like],
  );
  return { rollups: rollups.map(line), samples: samples.map(line) };
}

async function expectRollupsOfSamples(db: Database, prefix: string, samples: number): Promise<void> {
  const both = await rollupsAndSamples(db, prefix);
  expect(both.rollups).to.deep.equal(both.samples);
  const [stored] = await db.query<{ count: string | number }>('select count(*) from telemetry_sample_rows where node_name like $1', [`node-${prefix}%`]);
  expect(Number(stored!.count)).to.equal(samples);
  expect(both.rollups.reduce((sum, line) => sum + Number(/count=(\d+)/.exec(line)![1]), 0)).to.equal(samples);
}

async function agentRow(db: Database, agentId: string) {
  const [row] = await db.query<{ high_water: string | number; rolled_up_through: string | number; owner: string | null }>(
    'select high_water, rolled_up_through, owner from telemetry_agents where agent_id = $1',
    [agentId],
  );
  return { highWater: Number(row!.high_water), rolledUpThrough: Number(row!.rolled_up_through), owner: row!.owner };
}

/** A database migrated to just before `migration`, opened before the tests of the describe block it is called in. */
function migratedBefore(database: (typeof databases)[number], migration: string): () => Database {
  let db: Database | undefined;
  let drop: (() => Promise<void>) | undefined;
  before(async function () {
    if (database.skipReason) this.skip();
    ({ db, drop } = await database.open());
    await sentinelMigrationsBefore(migration).latest(db.knex);
  });
  after(async () => {
    await db?.close();
    await drop?.();
  });
  return () => db!;
}

for (const database of databases) {
  describe(`telemetry rollups flushed apart from the batches on ${database.name}`, function () {
    this.timeout(60_000);
    let db: Database;
    let drop: () => Promise<void>;

    before(async function () {
      if (database.skipReason) {
        console.log(`      SKIP: ${database.skipReason}`);
        this.skip();
      }
      ({ db, drop } = await database.open());
      await migrateSentinel(db.knex);
    });
    after(async () => {
      await db?.close();
      await drop?.();
    });

    it('given batches of several agents pushed over gRPC, when the ingest stops, then the rollups equal the aggregate of the stored samples', async () => {
      const store = new SampleStore(db);
      // A flush interval far longer than the test: the rollups are written by stop().
      const ingest = await startTelemetryIngest({ host: '127.0.0.1', port: 0, store, authenticate: async () => ({ id: 'sa', kind: 'service', name: 'agents', role: 'system' }), metrics: new Registry(), logger, rollupFlushMs: 3_600_000 });
      const client = telemetryClient(`127.0.0.1:${ingest.port}`);
      try {
        await Promise.all(['several-a', 'several-b', 'several-c'].map((agentId) => push(client, agentId, [1, 2, 3, 4, 5])));
        expect((await rollupsAndSamples(db, 'several-')).rollups).to.deep.equal([]);
      } finally {
        client.close();
        await ingest.stop();
      }
      await expectRollupsOfSamples(db, 'several-', 3 * 5 * 12);
      for (const agentId of ['several-a', 'several-b', 'several-c']) expect(await agentRow(db, agentId)).to.deep.equal({ highWater: 5, rolledUpThrough: 5, owner: store.ownerId });
    });

    it('given a process killed with rollups not flushed, when the agent says hello to a new one, then it rolls them up from the samples, nothing doubled', async () => {
      const killed = new SampleStore(db);
      await killed.hello(helloOf('crash'), new Date());
      await killed.store(batchOf('crash', 1), new Date());
      await killed.store(batchOf('crash', 2), new Date());
      await killed.flushRollups();
      await killed.store(batchOf('crash', 3), new Date());
      await killed.store(batchOf('crash', 4), new Date());
      // Killed here: what it accumulated of batches 3 and 4 is gone with it.
      expect(await agentRow(db, 'crash')).to.deep.include({ highWater: 4, rolledUpThrough: 2 });

      const next = new SampleStore(db);
      expect(await next.hello(helloOf('crash'), new Date())).to.equal(4);
      expect(await agentRow(db, 'crash')).to.deep.equal({ highWater: 4, rolledUpThrough: 4, owner: next.ownerId });
      await expectRollupsOfSamples(db, 'crash', 4 * 12);

      await next.store(batchOf('crash', 5), new Date());
      await next.flushRollups();
      await expectRollupsOfSamples(db, 'crash', 5 * 12);
    });

    it('given an agent that moves to a second process while the first holds its rollups, then the first is refused them and its late batch, and nothing is doubled', async () => {
      const first = new SampleStore(db);
      const second = new SampleStore(db);
      await first.hello(helloOf('moved'), new Date());
      await first.store(batchOf('moved', 1), new Date());
      await first.flushRollups();
      await first.store(batchOf('moved', 2), new Date());
      await first.store(batchOf('moved', 3), new Date());
      // An agent that stays with the first process: its rollups go in by the same flush that is refused the other's.
      await first.hello(helloOf('moved-not'), new Date());
      await first.store(batchOf('moved-not', 1), new Date());

      expect(await second.hello(helloOf('moved'), new Date())).to.equal(3);
      await second.store(batchOf('moved', 4), new Date());
      // The old stream's batch, arriving after the move: refused, and the agent resends it on its new stream.
      try {
        await first.store(batchOf('moved', 5), new Date());
        expect.fail('the first process stored a batch of an agent it no longer holds');
      } catch (error) {
        expect(error).to.be.instanceOf(AgentNotHeld);
      }
      await first.flushRollups();
      expect(await agentRow(db, 'moved')).to.deep.equal({ highWater: 4, rolledUpThrough: 3, owner: second.ownerId });
      expect(await agentRow(db, 'moved-not')).to.deep.equal({ highWater: 1, rolledUpThrough: 1, owner: first.ownerId });
      await expectRollupsOfSamples(db, 'moved-not', 12);
      await second.store(batchOf('moved', 5), new Date());
      await second.flushRollups();
      expect(await agentRow(db, 'moved')).to.deep.equal({ highWater: 5, rolledUpThrough: 5, owner: second.ownerId });
      await expectRollupsOfSamples(db, 'moved', 5 * 12 + 12);
    });

    it('given an agent that moves over gRPC, then its old stream ends ABORTED and the new one stores on', async () => {
      const authenticate = async () => ({ id: 'sa', kind: 'service' as const, name: 'agents', role: 'system' as const });
      const firstStore = new SampleStore(db);
      const secondStore = new SampleStore(db);
      const first = await startTelemetryIngest({ host: '127.0.0.1', port: 0, store: firstStore, authenticate, metrics: new Registry(), logger });
      const second = await startTelemetryIngest({ host: '127.0.0.1', port: 0, store: secondStore, authenticate, metrics: new Registry(), logger });
      const firstClient = telemetryClient(`127.0.0.1:${first.port}`);
      const secondClient = telemetryClient(`127.0.0.1:${second.port}`);
      try {
        const old = openStream(firstClient, 'hopper');
        expect(await old.next()).to.equal(0);
        old.call.write({ batch: batchOf('hopper', 1) });
        expect(await old.next()).to.equal(1);
        await push(secondClient, 'hopper', [2, 3]);
        old.call.write({ batch: batchOf('hopper', 4) });
        expect(await old.ended).to.include({ code: grpc.status.ABORTED });
      } finally {
        firstClient.close();
        secondClient.close();
        await first.stop();
        await second.stop();
      }
      expect(await agentRow(db, 'hopper')).to.deep.equal({ highWater: 3, rolledUpThrough: 3, owner: secondStore.ownerId });
      await expectRollupsOfSamples(db, 'hopper', 3 * 12);
    });

    it('given an agent silent with batches not rolled up (its process gone), when maintenance runs, then they are rolled up and the agent released', async () => {
      const gone = new SampleStore(db);
      await gone.hello(helloOf('silent'), new Date());
      await gone.store(batchOf('silent', 1), new Date());
      await gone.store(batchOf('silent', 2), new Date());
      const maintainer = new SampleStore(db);
      expect((await maintainer.maintain(new Date())).recovered).not.to.include('silent');
      const report = await maintainer.maintain(new Date(Date.now() + SILENT_AGENT_MS + MINUTE));
      expect(report.recovered).to.deep.equal(['silent']);
      expect(await agentRow(db, 'silent')).to.deep.equal({ highWater: 2, rolledUpThrough: 2, owner: null });
      await expectRollupsOfSamples(db, 'silent', 2 * 12);
      // Its process, had it lived on, could neither flush nor store for it.
      await gone.flushRollups();
      await expectRollupsOfSamples(db, 'silent', 2 * 12);
    });
  });

  describe(`migration 010, rollups apart from batches, on ${database.name}`, function () {
    this.timeout(60_000);
    const opened = migratedBefore(database, '010-telemetry-rollups-off-batch');

    it('given agents and samples stored at 009, when 010 runs, then each agent is rolled up through its high-water mark and stores on', async () => {
      const db = opened();
      const { knex } = db;
      await knex.raw(`create table telemetry_samples_p20300101 partition of telemetry_samples for values from ('2030-01-01 00:00:00+00') to ('2030-01-02 00:00:00+00')`);
      await knex('telemetry_agents').insert([
        { agent_id: 'old-a', node_name: 'node-old-a', cluster_id: 'c', agent_version: '1', high_water: 7, last_hello_at: new Date('2030-01-01T00:00:00Z') },
        { agent_id: 'old-b', node_name: 'node-old-b', cluster_id: 'c', agent_version: '1', high_water: 0, last_hello_at: new Date('2030-01-01T00:00:00Z') },
      ]);
      await knex('telemetry_samples').insert({ cluster_id: 'c', node_name: 'node-old-a', agent_id: 'old-a', metric: 'm', labels: {}, value: 1, time: new Date('2030-01-01T00:00:01Z') });

      await migrateSentinel(knex);

      const agents = await db.query<{ agent_id: string; rolled_up_through: string | number; owner: string | null; unrolled_since: Date | null }>(
        'select agent_id, rolled_up_through, owner, unrolled_since from telemetry_agents order by agent_id',
      );
      expect(agents.map((row) => ({ ...row, rolled_up_through: Number(row.rolled_up_through) }))).to.deep.equal([
        { agent_id: 'old-a', rolled_up_through: 7, owner: null, unrolled_since: null },
        { agent_id: 'old-b', rolled_up_through: 0, owner: null, unrolled_since: null },
      ]);
      const [sample] = await db.query<{ sequence: unknown }>("select sequence from telemetry_samples where agent_id = 'old-a'");
      expect(sample!.sequence).to.equal(null);

      // Its next hello recovers nothing (everything was rolled up with its batch), and it stores on from 7.
      const store = new SampleStore(db);
      expect(await store.hello({ ...helloOf('old-a'), nodeName: 'node-old-a' }, new Date())).to.equal(7);
      const [rollups] = await db.query<{ count: string | number }>("select count(*) from telemetry_rollups_1m where node_name = 'node-old-a'");
      expect(Number(rollups!.count)).to.equal(0);
      expect(await store.store({ ...batchOf('old-a', 8), nodeName: 'node-old-a' }, new Date())).to.include({ stored: true, acknowledged: 8 });
    });

    it('given 010 applied, when it is undone, then the columns it added are gone', async () => {
      const db = opened();
      // The view of migration 011 reads the column 010 added.
      await db.query('drop view telemetry_sample_rows');
      await rollups010.down(db.knex);
      expect(await db.knex.schema.hasColumn('telemetry_agents', 'rolled_up_through')).to.equal(false);
      expect(await db.knex.schema.hasColumn('telemetry_samples', 'sequence')).to.equal(false);
      await rollups010.up(db.knex);
    });
  });

  describe(`migration 011, samples one row per batch and day, on ${database.name}`, function () {
    this.timeout(60_000);
    const opened = migratedBefore(database, '011-telemetry-sample-batches');

    it('given batches stored one row a sample at 010 and not rolled up, when 011 runs, then they are read beside the new ones and rolled up once', async () => {
      const db = opened();
      const { knex } = db;
      const atMs = at('2030-01-01T12:00:00Z');
      for (const table of ['telemetry_samples', 'telemetry_rollups_1m']) {
        await knex.raw(`create table ${table}_p20300101 partition of ${table} for values from ('2030-01-01 00:00:00+00') to ('2030-01-02 00:00:00+00')`);
      }
      // Its process stopped after storing batches 1 and 2, before folding their rollups in.
      await knex('telemetry_samples').insert([...sampleRowsOf('legacy', 1, atMs), ...sampleRowsOf('legacy', 2, atMs)]);
      await knex('telemetry_agents').insert({
        agent_id: 'legacy', node_name: 'node-legacy', cluster_id: 'cluster-r', agent_version: '1', high_water: 2, rolled_up_through: 0,
        owner: 'a-process-that-stopped', unrolled_since: new Date(atMs - 2 * MINUTE), last_hello_at: new Date(atMs), last_batch_at: new Date(atMs),
      });

      await migrateSentinel(knex);

      const store = new SampleStore(db);
      expect(await store.hello(helloOf('legacy'), new Date(atMs))).to.equal(2);
      expect(await store.store(batchOf('legacy', 3, atMs), new Date(atMs))).to.include({ stored: true, acknowledged: 3 });
      await store.flushRollups();
      const [legacyRows] = await db.query<{ count: string | number }>("select count(*) from telemetry_samples where agent_id = 'legacy'");
      expect(Number(legacyRows!.count)).to.equal(2 * 12);
      await expectRollupsOfSamples(db, 'legacy', 3 * 12);
    });
  });
}

/** The 12 samples of batchOf(agentId, sequence, atMs) as rows of telemetry_samples, as the store wrote them before migration 011. */
function sampleRowsOf(agentId: string, sequence: number, atMs: number) {
  return samplesOf(sequence, 12, atMs).map(({ metric, labels, value, timestampUnixMs }) => ({
    cluster_id: 'cluster-r', node_name: `node-${agentId}`, agent_id: agentId, metric, labels, value, time: new Date(timestampUnixMs), sequence,
  }));
}

/** An agent's stream: hello, then what the test writes; its acks in order and how it ended. */
function openStream(client: TelemetryClient, agentId: string) {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', 'Bearer agent-token');
  const call = client.push(metadata);
  const acks: number[] = [];
  const waiting: ((ack: number) => void)[] = [];
  call.on('data', (message: IngestMessage) => {
    const next = waiting.shift();
    if (next) next(message.ack.acknowledgedSequence);
    else acks.push(message.ack.acknowledgedSequence);
  });
  call.on('error', () => undefined);
  const ended = new Promise<{ code: grpc.status; details: string }>((resolve) => call.on('status', (status: grpc.StatusObject) => resolve({ code: status.code, details: status.details })));
  call.write({ hello: helloOf(agentId) });
  return {
    call,
    ended,
    next: (): Promise<number> => (acks.length > 0 ? Promise.resolve(acks.shift()!) : new Promise((resolve) => waiting.push(resolve))),
  };
}

/** Says hello and pushes the given batches on one stream, each acknowledged before the stream ends OK. */
async function push(client: TelemetryClient, agentId: string, sequences: number[]): Promise<void> {
  const stream = openStream(client, agentId);
  await stream.next();
  for (const sequence of sequences) stream.call.write({ batch: batchOf(agentId, sequence) });
  for (const sequence of sequences) expect(await stream.next()).to.equal(sequence);
  stream.call.end();
  expect(await stream.ended).to.include({ code: grpc.status.OK });
}
