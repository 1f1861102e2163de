// The telemetry ingest over real gRPC on PGlite and PostgreSQL: hello and acks, resends stored once, a server
// stopped mid-stream and restarted, refused batches and tokens, many agents at once, and the stored-batch listener.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  telemetryClient,
  type AgentMessageOut,
  type Batch,
  type Hello,
  type IngestMessage,
  type Sample,
  type TelemetryClient,
} from '../../adapters/grpc/telemetry-proto.js';
import type { Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import type { Principal } from '../../domain/access.js';
import { startTelemetryIngest, type RunningTelemetryIngest, type StoredBatchListener } from '../../telemetry/ingest-server.js';
import { SampleStore } from '../../telemetry/sample-store.js';
import { databases } from '../support/databases.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

const PRINCIPALS: Record<string, Principal> = {
  'agent-token': { id: 'sa-1', kind: 'service', name: 'node-agents', role: 'system' },
  'viewer-token': { id: 'u-1', kind: 'user', name: 'vera', role: 'viewer' },
};

async function authenticate(token: string): Promise<Principal> {
  const principal = PRINCIPALS[token];
  if (!principal) throw new Error('unknown token');
  return principal;
}

interface Ended {
  code: grpc.status;
  details: string;
}

/** One Push stream as an agent sees it: what it writes, the acks it got, and how the stream ended. */
class AgentStream {
  readonly acks: number[] = [];
  readonly ended: Promise<Ended>;
  private readonly call: grpc.ClientDuplexStream<AgentMessageOut, IngestMessage>;
  private waiters: { sequence: number; resolve: () => void }[] = [];

  constructor(client: TelemetryClient, token: string | null) {
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    this.call = client.push(metadata);
    this.call.on('data', (message: IngestMessage) => {
      this.acks.push(message.ack.acknowledgedSequence);
      this.waiters = this.waiters.filter((waiter) => (message.ack.acknowledgedSequence >= waiter.sequence ? (waiter.resolve(), false) : true));
    });
    // A non-OK status is also emitted as 'error'; 'status' carries every ending.
    this.call.on('error', () => undefined);
    this.ended = new Promise((resolve) => this.call.on('status', (status: grpc.StatusObject) => resolve({ code: status.code, details: status.details })));
  }

  hello(hello: Hello): this {
    this.call.write({ hello });
    return this;
  }

  send(batch: Batch): this {
    this.call.write({ batch });
    return this;
  }

  /** The first ack at or above `sequence`, or the stream's end, whichever comes first. */
  async acknowledged(sequence: number): Promise<'acknowledged' | Ended> {
    if (this.acks.some((ack) => ack >= sequence)) return 'acknowledged';
    const acked = new Promise<'acknowledged'>((resolve) => this.waiters.push({ sequence, resolve: () => resolve('acknowledged') }));
    return Promise.race([acked, this.ended]);
  }

  /** The next ack, which must come. */
  async nextAck(): Promise<number> {
    const count = this.acks.length;
    const next = new Promise<number>((resolve, reject) => {
      this.call.once('data', (message: IngestMessage) => resolve(message.ack.acknowledgedSequence));
      void this.ended.then((ended) => reject(new Error(`the stream ended (${ended.code} ${ended.details}) before ack #${count + 1}`)));
    });
    return next;
  }

  finish(): Promise<Ended> {
    this.call.end();
    return this.ended;
  }
}

function helloOf(agentId: string): Hello {
  return { agentId, nodeName: `node-${agentId}`, clusterId: 'cluster-a', agentVersion: '0.1.0' };
}

function samples(count: number, atMs: number, metric = 'DCGM_FI_DEV_GPU_UTIL'): Sample[] {
  return Array.from({ length: count }, (_, i) => ({ metric, labels: { gpu: String(i), modelName: 'H100' }, value: i * 1.5, timestampUnixMs: atMs - i }));
}

function batchOf(agentId: string, sequence: number, sampleList: Sample[] = samples(3, Date.now() - sequence)): Batch {
  return { ...helloOf(agentId), sequence, samples: sampleList, droppedSamples: 0, sentAtUnixMs: Date.now() } as Batch;
}

async function count(db: Database, sql: string, params: unknown[] = []): Promise<number> {
  const [row] = await db.query<{ count: string | number }>(sql, params);
  return Number(row!.count);
}

const storedRows = (db: Database, agentId: string) => count(db, 'select count(*) from telemetry_sample_rows where agent_id = $1', [agentId]);

for (const database of databases) {
  describe(`telemetry ingest over gRPC on ${database.name}`, function () {
    this.timeout(60_000);
    let db: Database;
    let drop: () => Promise<void>;
    let store: SampleStore;
    let ingest: RunningTelemetryIngest;
    let client: TelemetryClient;
    let registry: Registry;
    const told: { agentId: string; sequence: number }[] = [];
    let failListenerOn: number | undefined;
    /** Runs when the given batch has been stored and acked, before the stream takes its next message. */
    let onStored: { agentId: string; sequence: number; run: () => void } | undefined;
    const listener: StoredBatchListener = {
      async batchStored(batch) {
        told.push({ agentId: batch.agentId, sequence: batch.sequence });
        if (onStored?.agentId === batch.agentId && onStored.sequence === batch.sequence) onStored.run();
        if (batch.sequence === failListenerOn) throw new Error('listener failed on purpose');
      },
    };

    const start = async (port = 0) => {
      registry = new Registry();
      ingest = await startTelemetryIngest({ host: '127.0.0.1', port, store, authenticate, listener, metrics: registry, logger });
      client = telemetryClient(`127.0.0.1:${ingest.port}`);
    };
    const stream = (token: string | null = 'agent-token') => new AgentStream(client, token);

    before(async function () {
      if (database.skipReason) {
        console.log(`      SKIP: ${database.skipReason}`);
        this.skip();
      }
      ({ db, drop } = await database.open());
      await migrateSentinel(db.knex);
      store = new SampleStore(db);
      await start();
    });
    after(async () => {
      client?.close();
      await ingest?.stop();
      await db?.close();
      await drop?.();
    });

    it('given a new agent, when it says hello and sends a batch, then the hello is acked with 0, the batch stored and acked', async () => {
      const agent = stream().hello(helloOf('store-and-ack'));
      expect(await agent.nextAck()).to.equal(0);
      agent.send(batchOf('store-and-ack', 1, samples(3, Date.now())));
      expect(await agent.nextAck()).to.equal(1);
      expect(await agent.finish()).to.include({ code: grpc.status.OK });
      expect(await storedRows(db, 'store-and-ack')).to.equal(3);
      const [record] = (await store.agents()).filter((a) => a.agentId === 'store-and-ack');
      expect(record).to.include({ nodeName: 'node-store-and-ack', clusterId: 'cluster-a', highWater: 1, agentVersion: '0.1.0' });
      expect(told).to.deep.include({ agentId: 'store-and-ack', sequence: 1 });
    });

    it('given stored batches, when the agent reconnects and resends them, then nothing is stored twice and each is acked again', async () => {
      const first = stream().hello(helloOf('resender'));
      expect(await first.nextAck()).to.equal(0);
      first.send(batchOf('resender', 1)).send(batchOf('resender', 2));
      expect(await first.acknowledged(2)).to.equal('acknowledged');
      await first.finish();

      const second = stream().hello(helloOf('resender'));
      expect(await second.nextAck()).to.equal(2);
      // Resent anyway (an agent that lost the ack), then a new batch whose sequence skips one.
      second.send(batchOf('resender', 1)).send(batchOf('resender', 2)).send(batchOf('resender', 4));
      expect(await second.acknowledged(4)).to.equal('acknowledged');
      expect(second.acks).to.deep.equal([2, 2, 2, 4]);
      await second.finish();

      expect(await storedRows(db, 'resender')).to.equal(9);
      expect(told.filter((t) => t.agentId === 'resender').map((t) => t.sequence)).to.deep.equal([1, 2, 4]);
      expect(await registry.getSingleMetricAsString('sentinel_telemetry_batches_duplicate_total')).to.match(/ 2$/m);
    });

    it('given a listener that fails, when a batch is stored, then the batch is still acked and the failure counted', async () => {
      failListenerOn = 7;
      try {
        const agent = stream().hello(helloOf('listener-fails'));
        expect(await agent.nextAck()).to.equal(0);
        agent.send(batchOf('listener-fails', 7)).send(batchOf('listener-fails', 8));
        expect(await agent.acknowledged(8)).to.equal('acknowledged');
        expect(await agent.finish()).to.include({ code: grpc.status.OK });
        expect(await registry.getSingleMetricAsString('sentinel_telemetry_listener_failures_total')).to.match(/ 1$/m);
      } finally {
        failListenerOn = undefined;
      }
    });

    it('given an agent streaming 200 batches, when the server is stopped mid-stream and restarted, then after reconnecting every sample is stored exactly once', async () => {
      const agentId = 'survivor';
      const batches = Array.from({ length: 200 }, (_, i) => batchOf(agentId, i + 1, samples(10, Date.now() - 1000 + i)));
      // The stop begins while batch 50 is being handled and the agent has sent all 200: later ones are in flight.
      let restarted: Promise<void> | undefined;
      onStored = {
        agentId,
        sequence: 50,
        run: () =>
          (restarted = (async () => {
            const old = client;
            await ingest.stop();
            old.close();
            await start();
          })()),
      };
      const helloAcks: number[] = [];
      // The agent: hello, send everything above the acknowledged mark, and reconnect when the stream ends early.
      while (true) {
        const agent = stream().hello(helloOf(agentId));
        const acknowledged = await agent.nextAck();
        helloAcks.push(acknowledged);
        for (const batch of batches) if (batch.sequence > acknowledged) agent.send(batch);
        const outcome = await agent.acknowledged(200);
        if (outcome === 'acknowledged') {
          await agent.finish();
          break;
        }
        expect(outcome.code).to.equal(grpc.status.UNAVAILABLE);
        await restarted;
      }
      onStored = undefined;
      expect(helloAcks).to.deep.equal([0, 50]);
      expect(await storedRows(db, agentId)).to.equal(2000);
      expect(
        await count(db, 'select count(*) from (select distinct metric, labels, time from telemetry_sample_rows where agent_id = $1) s', [agentId]),
      ).to.equal(2000);
      await store.flushRollups();
      expect(await count(db, "select coalesce(sum(count), 0) as count from telemetry_rollups_1m where node_name = 'node-survivor'")).to.equal(2000);
      expect((await store.agents()).find((a) => a.agentId === agentId)?.highWater).to.equal(200);
    });

    describe('refusals', () => {
      const refused = async (agentId: string, send: (agent: AgentStream) => void): Promise<Ended> => {
        const agent = stream().hello(helloOf(agentId));
        expect(await agent.nextAck()).to.equal(0);
        send(agent);
        return agent.ended;
      };
      const now = () => Date.now();
      const cases: { name: string; batch: (agentId: string) => Batch; field: string }[] = [
        { name: 'a value that is not a number', batch: (id) => batchOf(id, 1, [...samples(1, now()), { ...samples(1, now())[0]!, value: NaN }]), field: 'samples[1].value: a finite number' },
        { name: 'an infinite value', batch: (id) => batchOf(id, 1, [{ ...samples(1, now())[0]!, value: Infinity }]), field: 'samples[0].value' },
        { name: 'a bad metric name', batch: (id) => batchOf(id, 1, samples(2, now(), 'gpu-util')), field: 'samples[0].metric' },
        { name: 'a reserved label name', batch: (id) => batchOf(id, 1, [{ ...samples(1, now())[0]!, labels: { __name__: 'x' } }]), field: 'samples[0].labels.__name__' },
        {
          name: 'too many labels',
          batch: (id) => batchOf(id, 1, [{ ...samples(1, now())[0]!, labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`l${i}`, 'v'])) }]),
          field: 'samples[0].labels: at most 32 labels',
        },
        { name: 'a sample older than the retention', batch: (id) => batchOf(id, 1, samples(1, now() - 8 * 86_400_000)), field: 'samples[0].timestampUnixMs' },
        { name: 'a sample from the future', batch: (id) => batchOf(id, 1, samples(1, now() + 3_600_000)), field: 'samples[0].timestampUnixMs' },
        { name: 'no samples', batch: (id) => batchOf(id, 1, []), field: 'samples: at least one sample' },
        { name: 'sequence 0', batch: (id) => batchOf(id, 0), field: 'sequence: a positive integer' },
        { name: "another agent's id", batch: (id) => ({ ...batchOf(id, 1), agentId: 'someone-else' }), field: 'agentId' },
        { name: 'another node', batch: (id) => ({ ...batchOf(id, 1), nodeName: 'other-node' }), field: 'nodeName' },
      ];
      for (const [index, { name, batch, field }] of cases.entries()) {
        it(`given a batch with ${name}, then the stream ends INVALID_ARGUMENT naming ${field.split(':')[0]} and nothing is stored`, async () => {
          const agentId = `refused-${index}`;
          const ended = await refused(agentId, (agent) => agent.send(batch(agentId)));
          expect(ended.code).to.equal(grpc.status.INVALID_ARGUMENT);
          expect(ended.details).to.contain(field);
          expect(await storedRows(db, agentId)).to.equal(0);
          expect((await store.agents()).find((a) => a.agentId === agentId)?.highWater).to.equal(0);
        });
      }

      it('given a stream whose first message is a batch, then it ends INVALID_ARGUMENT and nothing is stored', async () => {
        const ended = await stream().send(batchOf('no-hello', 1)).ended;
        expect(ended).to.deep.equal({ code: grpc.status.INVALID_ARGUMENT, details: 'the first message must be a hello' });
        expect(await storedRows(db, 'no-hello')).to.equal(0);
      });

      it('given a hello with an empty node name, then the stream ends INVALID_ARGUMENT naming it', async () => {
        const ended = await stream().hello({ ...helloOf('bad-hello'), nodeName: '' }).ended;
        expect(ended).to.deep.equal({ code: grpc.status.INVALID_ARGUMENT, details: 'nodeName: must not be empty' });
      });

      for (const { name, token, code } of [
        { name: 'no token', token: null, code: grpc.status.UNAUTHENTICATED },
        { name: 'a token that is not valid', token: 'forged', code: grpc.status.UNAUTHENTICATED },
        { name: "a user's token", token: 'viewer-token', code: grpc.status.PERMISSION_DENIED },
      ]) {
        it(`given ${name}, then the stream ends ${grpc.status[code]} before any hello is answered and nothing is stored`, async () => {
          const agentId = `token-${token ?? 'none'}`;
          const agent = stream(token).hello(helloOf(agentId)).send(batchOf(agentId, 1));
          const ended = await agent.ended;
          expect(ended.code).to.equal(code);
          expect(agent.acks).to.deep.equal([]);
          expect(await storedRows(db, agentId)).to.equal(0);
        });
      }

      it('counts every refusal by reason', async () => {
        const text = await registry.getSingleMetricAsString('sentinel_telemetry_refusals_total');
        // The server was restarted by the test before; these are the refusals of this describe block.
        expect(text).to.match(/reason="invalid_batch"} 11$/m);
        expect(text).to.match(/reason="unauthenticated"} 2$/m);
        expect(text).to.match(/reason="permission_denied"} 1$/m);
        expect(text).to.match(/reason="protocol"} 1$/m);
        expect(text).to.match(/reason="invalid_hello"} 1$/m);
      });
    });

    it('given 100 agents pushing at once, then every batch of every agent is stored and acked', async () => {
      const agents = Array.from({ length: 100 }, (_, i) => `crowd-${i}`);
      await Promise.all(
        agents.map(async (agentId) => {
          const agent = stream().hello(helloOf(agentId));
          expect(await agent.nextAck()).to.equal(0);
          for (let sequence = 1; sequence <= 3; sequence++) agent.send(batchOf(agentId, sequence, samples(5, Date.now() - sequence)));
          expect(await agent.acknowledged(3)).to.equal('acknowledged');
          expect(await agent.finish()).to.include({ code: grpc.status.OK });
        }),
      );
      expect(await count(db, "select count(*) from telemetry_sample_rows where agent_id like 'crowd-%'")).to.equal(100 * 3 * 5);
      const crowd = (await store.agents()).filter((a) => a.agentId.startsWith('crowd-'));
      expect(crowd.map((a) => a.highWater)).to.deep.equal(Array(100).fill(3));
      expect(await registry.getSingleMetricAsString('sentinel_telemetry_connected_agents')).to.match(/ 0$/m);
    });
  });
}
