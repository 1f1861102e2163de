// The gRPC RED metrics through a real server: a call to the telemetry ingest shows in the registry with its service,
// method and status code, whether it ends OK, is refused, or is cancelled by the client; with its messages each way.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { telemetryClient, telemetryService, type AgentMessageOut, type Batch, type Hello, type IngestMessage, type TelemetryClient } from '../../adapters/grpc/telemetry-proto.js';
import { grpcServerMetrics } from '../../adapters/prometheus/grpc-metrics.js';
import type { Principal } from '../../domain/access.js';
import { startTelemetryIngest, type BatchStore, type RunningTelemetryIngest } from '../../telemetry/ingest-server.js';
import { eventually } from '../support/eventually.js';

const SERVICE = 'sentinel.telemetry.v1.Telemetry';
const AGENT: Principal = { id: 'sa-1', kind: 'service', name: 'node-agents', role: 'system' };

/** Keeps each agent's high-water mark in memory: enough for the ingest to answer and acknowledge. */
class MemoryBatchStore implements BatchStore {
  readonly sampleRetentionMs = 86_400_000;
  private readonly marks = new Map<string, number>();
  async hello(hello: Hello): Promise<number> {
    return this.marks.get(hello.agentId) ?? 0;
  }
  async store(batch: Batch) {
    const mark = this.marks.get(batch.agentId) ?? 0;
    if (batch.sequence <= mark) return { stored: false as const, acknowledged: mark };
    this.marks.set(batch.agentId, batch.sequence);
    return { stored: true as const, acknowledged: batch.sequence, droppedIncrease: 0 };
  }
  async maintain(): Promise<void> {}
}

/** Opens a Push stream and resolves with its status once it has ended. */
function push(client: TelemetryClient, token: string | null, write: (call: grpc.ClientDuplexStream<AgentMessageOut, IngestMessage>) => void): Promise<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  const call = client.push(metadata);
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => undefined);
  call.on('data', () => undefined);
  write(call);
  return ended;
}

describe('gRPC RED metrics', function () {
  this.timeout(20_000);
  let registry: Registry;
  let ingest: RunningTelemetryIngest;
  let client: TelemetryClient;

  const series = async (name: string): Promise<string[]> =>
    (await registry.metrics()).split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
  const value = async (name: string, labels: string): Promise<number | undefined> => {
    const line = (await series(name)).find((candidate) => candidate.startsWith(`${name}{${labels}}`));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  before(async () => {
    registry = new Registry();
    ingest = await startTelemetryIngest({
      host: '127.0.0.1',
      port: 0,
      store: new MemoryBatchStore(),
      authenticate: async (token) => {
        if (token !== 'agent-token') throw new Error('unknown token');
        return AGENT;
      },
      metrics: registry,
      interceptors: [grpcServerMetrics(registry)],
      logger: pino({ level: 'silent' }),
    });
    client = telemetryClient(`127.0.0.1:${ingest.port}`);
  });

  after(async () => {
    client?.close();
    await ingest?.stop();
  });

  it('counts a stream that ends OK by its service, method and code, with its duration and its messages each way', async () => {
    const hello = { agentId: 'agent-1', nodeName: 'node-1', clusterId: 'cluster-a', agentVersion: '0.1.0' };
    const batch = { agentId: 'agent-1', nodeName: 'node-1', clusterId: 'cluster-a', sequence: 1, samples: [{ metric: 'DCGM_FI_DEV_GPU_UTIL', labels: { gpu: '0' }, value: 42, timestampUnixMs: Date.now() }], droppedSamples: 0, sentAtUnixMs: Date.now() };
    const status = await push(client, 'agent-token', (call) => {
      call.write({ hello });
      call.write({ batch });
      call.on('data', (message: IngestMessage) => {
        if (message.ack.acknowledgedSequence === 1) call.end();
      });
    });
    expect(status.code, status.details).to.equal(grpc.status.OK);

    const labels = `service="${SERVICE}",method="Push"`;
    expect(await value('sentinel_grpc_server_started_total', labels)).to.equal(1);
    expect(await value('sentinel_grpc_server_handled_total', `${labels},code="OK"`)).to.equal(1);
    expect(await value('sentinel_grpc_server_handling_seconds_count', labels)).to.equal(1);
    expect(await value('sentinel_grpc_server_msg_received_total', labels)).to.equal(2);
    // The hello is answered with the agent's high-water mark, the batch with its acknowledgement.
    expect(await value('sentinel_grpc_server_msg_sent_total', labels)).to.equal(2);
  });

  it('counts a refused stream with the code it was refused with', async () => {
    const status = await push(client, null, (call) => call.write({ hello: { agentId: 'agent-2', nodeName: 'node-2', clusterId: 'cluster-a', agentVersion: '0.1.0' } }));
    expect(status.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(await value('sentinel_grpc_server_handled_total', `service="${SERVICE}",method="Push",code="UNAUTHENTICATED"`)).to.equal(1);
  });

  it('counts a stream the client cancels once, with the status the ingest ended it with', async () => {
    // Cancelled once the server has the stream (its hello answered), so that there is a call for it to count.
    const status = await push(client, 'agent-token', (call) => {
      call.write({ hello: { agentId: 'agent-3', nodeName: 'node-3', clusterId: 'cluster-a', agentVersion: '0.1.0' } });
      call.once('data', () => call.cancel());
    });
    expect(status.code).to.equal(grpc.status.CANCELLED);
    // The server hears of the cancellation after the client has given up on the call; every call started is then counted once.
    const handled = await eventually(
      'the cancelled stream counted',
      async () => (await series('sentinel_grpc_server_handled_total')).reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0),
      (count) => count === 3,
      5_000,
    );
    expect(handled).to.equal(await value('sentinel_grpc_server_started_total', `service="${SERVICE}",method="Push"`));
  });

  it('counts a call the client cancels before the server answers it as CANCELLED, once', async () => {
    const own = new Registry();
    const server = new grpc.Server({ interceptors: [grpcServerMetrics(own)] });
    // A handler that never ends the stream on its own: only the client's cancellation ends it.
    server.addService(telemetryService, {
      push(call: grpc.ServerDuplexStream<AgentMessageOut, IngestMessage>) {
        call.on('data', () => call.write({ body: 'ack', ack: { agentId: 'agent-4', acknowledgedSequence: 0 } }));
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const bare = telemetryClient(`127.0.0.1:${port}`);
    try {
      const status = await push(bare, null, (call) => {
        call.write({ hello: { agentId: 'agent-4', nodeName: 'node-4', clusterId: 'cluster-a', agentVersion: '0.1.0' } });
        call.once('data', () => call.cancel());
      });
      expect(status.code).to.equal(grpc.status.CANCELLED);
      const line = `sentinel_grpc_server_handled_total{service="${SERVICE}",method="Push",code="CANCELLED"} 1`;
      const handled = await eventually('the cancelled call counted', async () => (await own.metrics()).split('\n').filter((text) => text.startsWith('sentinel_grpc_server_handled_total{')), (lines) => lines.length > 0, 5_000);
      expect(handled).to.deep.equal([line]);
    } finally {
      bare.close();
      server.forceShutdown();
    }
  });
});
