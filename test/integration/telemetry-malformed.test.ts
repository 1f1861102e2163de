// Bytes on a telemetry stream that are not an AgentMessage: refused in their turn, after the batches before them are
// stored and acknowledged, with a status that says what is wrong, and counted as a protocol refusal.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { telemetryService, type Batch, type Hello, type IngestMessage } from '../../adapters/grpc/telemetry-proto.js';
import type { Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { startTelemetryIngest, type RunningTelemetryIngest } from '../../telemetry/ingest-server.js';
import { SampleStore } from '../../telemetry/sample-store.js';
import { databases } from '../support/databases.js';

const push = telemetryService['Push']!;

for (const database of databases) {
  describe(`malformed telemetry messages on ${database.name}`, function () {
    this.timeout(60_000);
    let db: Database;
    let drop: () => Promise<void>;
    let registry: Registry;
    let ingest: RunningTelemetryIngest;
    let client: grpc.Client;

    before(async function () {
      if (database.skipReason) {
        console.log(`      SKIP: ${database.skipReason}`);
        this.skip();
      }
      ({ db, drop } = await database.open());
      await migrateSentinel(db.knex);
      registry = new Registry();
      ingest = await startTelemetryIngest({
        host: '127.0.0.1',
        port: 0,
        store: new SampleStore(db),
        authenticate: async () => ({ id: 'sa-1', kind: 'service', name: 'node-agents', role: 'system' }),
        metrics: registry,
        logger: pino({ level: 'silent' }),
      });
      client = new grpc.Client(`127.0.0.1:${ingest.port}`, grpc.credentials.createInsecure());
    });
    after(async () => {
      client?.close();
      await ingest?.stop();
      await db?.close();
      await drop?.();
    });

    it('given a batch and then a truncated message, when they are sent, then the batch is stored and acked and the stream ends INVALID_ARGUMENT saying the message is truncated', async () => {
      const hello: Hello = { agentId: 'garbled-1', nodeName: 'node-g', clusterId: 'cluster-a', agentVersion: '0.1.0' };
      const batch: Batch = {
        ...hello,
        sequence: 1,
        samples: [{ metric: 'DCGM_FI_DEV_GPU_UTIL', labels: { gpu: '0' }, value: 50, timestampUnixMs: Date.now() }],
        droppedSamples: 0,
        sentAtUnixMs: Date.now(),
      } as Batch;
      const metadata = new grpc.Metadata();
      metadata.set('authorization', 'Bearer agent-token');
      // Raw bytes on the wire, as a faulty agent would write them.
      const call = client.makeBidiStreamRequest<Buffer, IngestMessage>(push.path, (bytes) => bytes, push.responseDeserialize, metadata);
      const acks: number[] = [];
      call.on('data', (message: IngestMessage) => acks.push(message.ack.acknowledgedSequence));
      call.on('error', () => undefined);
      const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      const second = push.requestSerialize({ batch: { ...batch, sequence: 2 } });
      call.write(push.requestSerialize({ hello }));
      call.write(push.requestSerialize({ batch }));
      call.write(second.subarray(0, second.length - 4));
      const status = await ended;
      expect(status.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(status.details).to.match(/^the message is not a valid AgentMessage \(proto\/telemetry\.proto\): .*truncated/);
      expect(acks).to.deep.equal([0, 1]);
      const [row] = await db.query<{ count: string | number }>('select count(*) from telemetry_sample_rows where agent_id = $1', [hello.agentId]);
      expect(Number(row!.count)).to.equal(1);
      expect(await registry.getSingleMetricAsString('sentinel_telemetry_refusals_total')).to.match(/reason="protocol"} 1$/m);
    });
  });
}
