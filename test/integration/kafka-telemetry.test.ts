// Stored telemetry batches on Kafka: one message per batch on <prefix>.telemetry.v1, keyed by agent, with CloudEvents
// headers a consumer can drop a repeat by; and the listener that hands a batch to several. Real broker.
import { expect } from 'chai';
import { pino } from 'pino';
import type { Batch } from '../../adapters/grpc/telemetry-proto.js';
import { parseBrokers } from '../../adapters/kafka/client.js';
import { allListeners, KafkaTelemetrySink } from '../../telemetry/kafka-sink.js';
import { KAFKA_BROKERS, readTopics, SKIP_KAFKA_REASON, testKafka, uniqueTopicPrefix } from '../support/kafka.js';

const batch = (sequence: number): Batch => ({
  agentId: 'cluster-a/gpu-node-1',
  nodeName: 'gpu-node-1',
  clusterId: 'cluster-a',
  sequence,
  samples: [{ metric: 'DCGM_FI_DEV_GPU_UTIL', labels: { gpu: '0' }, value: 40 + sequence, timestampUnixMs: 1_796_550_000_000 + sequence }],
  droppedSamples: 0,
  sentAtUnixMs: 1_796_550_000_000,
});

describe('the listener that hands a stored batch to several', () => {
  it('given one listener that fails, then the others still get the batch and the failure is rethrown', async () => {
    const seen: number[] = [];
    const failing = { batchStored: async () => Promise.reject(new Error('broker away')) };
    const recording = { batchStored: async (stored: Batch) => void seen.push(stored.sequence) };
    let thrown: unknown;
    try {
      await allListeners(failing, recording).batchStored(batch(1), new Date());
    } catch (error) {
      thrown = error;
    }
    expect((thrown as Error).message).to.equal('broker away');
    expect(seen).to.deep.equal([1]);
  });
});

describe('telemetry batches on Kafka (real broker)', function () {
  this.timeout(60_000);
  before(function () {
    if (!KAFKA_BROKERS) {
      console.log(`      skipped: ${SKIP_KAFKA_REASON}`);
      this.skip();
    }
  });

  it('given two stored batches, then two messages keyed by agent, in order, with the samples and ce_id agent/sequence', async () => {
    const sink = new KafkaTelemetrySink({ brokers: parseBrokers(KAFKA_BROKERS!), clientId: 'sentinel-test', topicPrefix: uniqueTopicPrefix(), logger: pino({ level: 'silent' }) });
    try {
      await sink.batchStored(batch(1), new Date('2026-12-06T10:00:00Z'));
      await sink.batchStored(batch(2), new Date('2026-12-06T10:00:01Z'));
    } finally {
      await sink.close();
    }
    const messages = await readTopics(testKafka(), [sink.topic]);
    expect(messages.map((message) => message.key)).to.deep.equal(['cluster-a/gpu-node-1', 'cluster-a/gpu-node-1']);
    expect(messages.map((message) => message.headers['ce_id'])).to.deep.equal(['cluster-a/gpu-node-1/1', 'cluster-a/gpu-node-1/2']);
    expect(messages[0]!.headers).to.deep.include({ ce_type: 'sentinel.TelemetryBatch.v1', ce_specversion: '1.0', 'content-type': 'application/json' });
    const value = JSON.parse(messages[1]!.value!) as { sequence: number; samples: { value: number }[] };
    expect(value.sequence).to.equal(2);
    expect(value.samples[0]!.value).to.equal(42);
  });

  it('given a batch being sent, when the sink closes, then the close waits for it, the batch is on the topic, and a later batch is refused', async () => {
    const sink = new KafkaTelemetrySink({ brokers: parseBrokers(KAFKA_BROKERS!), clientId: 'sentinel-test', topicPrefix: uniqueTopicPrefix(), logger: pino({ level: 'silent' }) });
    let sent = false;
    const sending = sink.batchStored(batch(1), new Date('2026-12-06T10:00:00Z')).then(() => (sent = true));
    await sink.close();
    // Before, the close disconnected at once: the send then failed ("Closed connection"), or connected the producer
    // again after the close.
    expect(sent, 'the send had finished when the close resolved').to.equal(true);
    await sending;
    let refused: unknown;
    await sink.batchStored(batch(2), new Date('2026-12-06T10:00:01Z')).catch((error: unknown) => (refused = error));
    expect((refused as Error | undefined)?.message).to.match(/closed: batch 2 of cluster-a\/gpu-node-1 was not sent/);
    const messages = await readTopics(testKafka(), [sink.topic]);
    expect(messages.map((message) => message.headers['ce_id'])).to.deep.equal(['cluster-a/gpu-node-1/1']);
  });
});
