// The agent's push against a real gRPC server that keeps the protocol: acks, a server killed and restarted, overflow, restarts, refusals.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { telemetryService, type AgentMessage, type Batch, type IngestMessage } from '../../adapters/grpc/telemetry-proto.js';
import type { Sample } from '../../agent/collector.js';
import { AgentMetrics } from '../../agent/metrics.js';
import { TelemetryPush } from '../../agent/push.js';
import { eventually } from '../support/eventually.js';

const TOKEN = 'agent-test-token';
const WAIT_MS = 10_000;

/**
 * A small ingest that keeps the protocol as Sentinel's does: a high-water mark per agent, a batch stored only above
 * it, every batch acknowledged with the mark. What it stored outlives a stop, as a database would.
 */
class FakeIngest {
  readonly stored = new Map<string, Batch[]>();
  /** Every sequence received, stored or not, in order. */
  readonly received: number[] = [];
  port = 0;
  private server: grpc.Server | undefined;
  /** Dies (without acknowledging) right after storing this many batches in all, once. */
  dieAfterStoring: number | undefined;
  /** Batches it refuses with INVALID_ARGUMENT, as the ingest refuses an invalid one. */
  refuse: (batch: Batch) => boolean = () => false;
  /** Streams refused for their token. */
  unauthenticated = 0;

  highWater(agentId: string): number {
    return this.stored.get(agentId)?.at(-1)?.sequence ?? 0;
  }

  storedSamples(agentId: string): number[] {
    return (this.stored.get(agentId) ?? []).flatMap((batch) => batch.samples.map((s) => s.value));
  }

  async start(): Promise<void> {
    const server = new grpc.Server();
    server.addService(telemetryService, { push: (call: grpc.ServerDuplexStream<AgentMessage, IngestMessage>) => this.serve(call) });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.port}`, grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
    );
    this.server = server;
  }

  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  private serve(call: grpc.ServerDuplexStream<AgentMessage, IngestMessage>): void {
    if (call.metadata.get('authorization')[0] !== `Bearer ${TOKEN}`) {
      this.unauthenticated += 1;
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'unknown token' });
      return;
    }
    let agentId = '';
    call.on('data', (message: AgentMessage) => {
      if (!this.running) return;
      if (message.body === 'hello') {
        agentId = message.hello.agentId;
        call.write({ body: 'ack', ack: { agentId, acknowledgedSequence: this.highWater(agentId) } });
        return;
      }
      const { batch } = message;
      this.received.push(batch.sequence);
      if (this.refuse(batch)) {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `batch ${batch.sequence}: metric "bad" is not allowed` });
        return;
      }
      if (batch.sequence > this.highWater(agentId)) {
        this.stored.set(agentId, [...(this.stored.get(agentId) ?? []), batch]);
        const total = [...this.stored.values()].reduce((sum, batches) => sum + batches.length, 0);
        if (total === this.dieAfterStoring) {
          this.dieAfterStoring = undefined;
          this.stop();
          return;
        }
      }
      call.write({ body: 'ack', ack: { agentId, acknowledgedSequence: this.highWater(agentId) } });
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  }
}

const samples = (from: number, count: number, metric = 'node_load1'): Sample[] =>
  Array.from({ length: count }, (_, i) => ({ metric, labels: { cpu: '0' }, value: from + i, timestampUnixMs: 1_700_000_000_000 + i }));
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
const valueOf = async (metric: { get(): Promise<{ values: { value: number }[] }> }) => (await metric.get()).values[0]?.value ?? 0;

describe('agent push to the telemetry ingest', function () {
  const logger = pino({ level: 'silent' });
  let ingest: FakeIngest;
  const agents: TelemetryPush[] = [];

  function agent(options: { agentId?: string; bufferSamples?: number; token?: string; batchMaxSeconds?: number } = {}) {
    const metrics = new AgentMetrics(new Registry());
    const push = new TelemetryPush({
      address: `127.0.0.1:${ingest.port}`,
      credentials: grpc.credentials.createInsecure(),
      token: async () => options.token ?? TOKEN,
      agentId: options.agentId ?? 'c1/node-a',
      nodeName: 'node-a',
      clusterId: 'c1',
      agentVersion: 'test',
      bufferSamples: options.bufferSamples ?? 10_000,
      batchMaxSamples: 10,
      batchMaxSeconds: options.batchMaxSeconds ?? 3600,
      metrics,
      logger,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    agents.push(push);
    return { push, metrics };
  }

  beforeEach(async () => {
    ingest = new FakeIngest();
    await ingest.start();
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((push) => push.stop()));
    ingest.stop();
  });

  it('given acknowledgements, then acknowledged batches leave the buffer', async () => {
    const { push, metrics } = agent();
    push.start();
    push.add(samples(0, 30));
    await eventually('three batches acknowledged', () => valueOf(metrics.batchesAcknowledged), (n) => n === 3, WAIT_MS);
    expect(ingest.stored.get('c1/node-a')?.map((b) => b.sequence)).to.deep.equal([1, 2, 3]);
    expect(await valueOf(metrics.bufferedSamples)).to.equal(0);
    expect(await valueOf(metrics.connected)).to.equal(1);
  });

  it('given fewer samples than a batch holds, then the batch closes when it is batchMaxSeconds old', async () => {
    const { push } = agent({ batchMaxSeconds: 0.05 });
    push.start();
    push.add(samples(0, 3));
    await eventually('the partial batch stored', async () => ingest.storedSamples('c1/node-a'), (stored) => stored.length === 3, WAIT_MS);
    expect(ingest.stored.get('c1/node-a')?.map((b) => b.sequence)).to.deep.equal([1]);
  });

  it('given the server killed mid-stream and restarted, then everything unacknowledged is resent in order, stored once, nothing lost', async () => {
    ingest.dieAfterStoring = 3;
    const { push, metrics } = agent();
    push.start();
    push.add(samples(0, 50));
    await eventually('the ingest to die after storing three batches', async () => ingest.running, (running) => !running, WAIT_MS);
    await eventually('the agent to notice', () => valueOf(metrics.connected), (connected) => connected === 0, WAIT_MS);

    await ingest.start();
    await eventually('everything acknowledged', () => valueOf(metrics.bufferedSamples), (n) => n === 0 && ingest.highWater('c1/node-a') === 5, WAIT_MS);
    push.add(samples(50, 10));
    await eventually('the next batch stored', async () => ingest.highWater('c1/node-a'), (high) => high === 6, WAIT_MS);

    expect(ingest.stored.get('c1/node-a')?.map((b) => b.sequence)).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect(ingest.storedSamples('c1/node-a')).to.deep.equal(range(0, 60));
    // 4 and 5 went out on the first stream (the dead server never answered) and again after the restart's greeting.
    expect(ingest.received.filter((sequence) => sequence >= 4 && sequence <= 5)).to.have.length.within(2, 4);
    expect(await valueOf(metrics.batchesSent)).to.equal(8);
    expect(await valueOf(metrics.droppedSamples)).to.equal(0);
  });

  it('given Sentinel away while the buffer overflows, then the oldest samples are dropped, counted, and reported on every batch', async () => {
    ingest.stop();
    const { push, metrics } = agent({ bufferSamples: 25 });
    push.start();
    push.add(samples(0, 40));
    expect(await valueOf(metrics.droppedSamples)).to.equal(15);
    expect(await valueOf(metrics.bufferedSamples)).to.equal(25);

    await ingest.start();
    await eventually('the buffer delivered', () => valueOf(metrics.bufferedSamples), (n) => n === 0 && ingest.highWater('c1/node-a') === 3, WAIT_MS);
    // The first batch went whole, the second lost its first five samples: every sample is stored or counted.
    expect(ingest.storedSamples('c1/node-a')).to.deep.equal(range(15, 25));
    expect(ingest.stored.get('c1/node-a')?.map((b) => [b.samples.length, b.droppedSamples])).to.deep.equal([
      [5, 15],
      [10, 15],
      [10, 15],
    ]);
  });

  it('given a restarted agent, then it numbers its batches above what the server stored for it', async () => {
    const first = agent();
    first.push.start();
    first.push.add(samples(0, 20));
    await eventually('two batches stored', async () => ingest.highWater('c1/node-a'), (high) => high === 2, WAIT_MS);
    await first.push.stop();

    const second = agent();
    second.push.start();
    second.push.add(samples(20, 10));
    await eventually('the restarted agent\'s batch stored', async () => ingest.highWater('c1/node-a'), (high) => high === 3, WAIT_MS);
    expect(ingest.stored.get('c1/node-a')?.map((b) => b.sequence)).to.deep.equal([1, 2, 3]);
    expect(ingest.storedSamples('c1/node-a')).to.deep.equal(range(0, 30));
  });

  it('given a batch the server refuses as invalid, then it is dropped and counted, and the batches after it are stored', async () => {
    ingest.refuse = (batch) => batch.samples.some((s) => s.metric === 'bad');
    const { push, metrics } = agent();
    push.start();
    push.add([...samples(0, 10), ...samples(10, 10, 'bad'), ...samples(20, 10)]);
    await eventually('the batch after the refused one stored', async () => ingest.highWater('c1/node-a'), (high) => high === 3, WAIT_MS);

    expect(ingest.stored.get('c1/node-a')?.map((b) => [b.sequence, b.droppedSamples])).to.deep.equal([
      [1, 0],
      [3, 10],
    ]);
    expect(ingest.received.filter((sequence) => sequence === 2)).to.have.length(1);
    expect(await valueOf(metrics.batchesRefused)).to.equal(1);
    expect(await valueOf(metrics.droppedSamples)).to.equal(10);
  });

  it('given a token the server does not know, then nothing is stored and the agent stays disconnected, keeping its samples', async () => {
    const { push, metrics } = agent({ token: 'wrong' });
    push.start();
    push.add(samples(0, 10));
    await eventually('three refused connects, with a backoff between them', async () => ingest.unauthenticated, (refused) => refused >= 3, WAIT_MS);
    expect(ingest.received).to.deep.equal([]);
    expect(await valueOf(metrics.connected)).to.equal(0);
    expect(await valueOf(metrics.bufferedSamples)).to.equal(10);
  });
});
