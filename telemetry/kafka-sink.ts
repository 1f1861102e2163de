// Telemetry on Kafka: every stored batch, as one message on `<prefix>.telemetry.v1`, for consumers outside Sentinel
// (InfraMind, a data lake). Samples are not events: this is at least once, and `ce_id` (agent and sequence) lets a
// consumer drop a batch it has seen, since a batch is stored, and so sent, once per sequence.
import type { Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Batch } from '../adapters/grpc/telemetry-proto.js';
import { HEADERS } from '../adapters/kafka/cloudevents.js';
import { createKafka } from '../adapters/kafka/client.js';
import type { StoredBatchListener } from './ingest-server.js';

export interface KafkaTelemetrySinkOptions {
  brokers: string[];
  clientId: string;
  topicPrefix: string;
  logger: Logger;
}

export class KafkaTelemetrySink implements StoredBatchListener {
  readonly topic: string;
  private readonly producer: Producer;
  private connected: Promise<void> | undefined;
  /** Sends under way: close() lets them finish before it disconnects. */
  private readonly sending = new Set<Promise<void>>();
  private closed = false;

  constructor(options: KafkaTelemetrySinkOptions) {
    this.topic = `${options.topicPrefix}.telemetry.v1`;
    this.producer = createKafka({ brokers: options.brokers, clientId: options.clientId, logger: options.logger }).producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
    });
  }

  /** Sends the batch, keyed by agent so that an agent's batches stay in order; a failure is the ingest's to count. */
  batchStored(batch: Batch, receivedAt: Date): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`the Kafka telemetry sink is closed: batch ${batch.sequence} of ${batch.agentId} was not sent to ${this.topic}`));
    const sent = this.send(batch, receivedAt);
    const settled = sent.catch(() => undefined);
    this.sending.add(settled);
    void settled.then(() => this.sending.delete(settled));
    return sent;
  }

  private async send(batch: Batch, receivedAt: Date): Promise<void> {
    this.connected ??= this.producer.connect();
    await this.connected;
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: [
        {
          key: batch.agentId,
          value: JSON.stringify({
            agentId: batch.agentId,
            nodeName: batch.nodeName,
            clusterId: batch.clusterId,
            sequence: batch.sequence,
            droppedSamples: batch.droppedSamples,
            samples: batch.samples,
          }),
          timestamp: String(receivedAt.getTime()),
          headers: {
            [HEADERS.specversion]: '1.0',
            [HEADERS.id]: `${batch.agentId}/${batch.sequence}`,
            [HEADERS.type]: 'sentinel.TelemetryBatch.v1',
            [HEADERS.source]: `/sentinel/telemetry/${encodeURIComponent(batch.clusterId)}/${encodeURIComponent(batch.nodeName)}`,
            [HEADERS.time]: receivedAt.toISOString(),
            [HEADERS.contentType]: 'application/json',
          },
        },
      ],
    });
  }

  /**
   * Refuses new batches, lets the sends under way finish, then disconnects. A send cut off by the disconnect fails
   * ("Closed connection"), and one that is still queued connects the producer again after it: neither is wanted of
   * a sink that is told to close.
   */
  async close(): Promise<void> {
    this.closed = true;
    while (this.sending.size > 0) await Promise.all(this.sending);
    if (this.connected) await this.producer.disconnect();
  }
}

/** One listener that hands each batch to several, each whatever the others do; the first failure is rethrown. */
export function allListeners(...listeners: StoredBatchListener[]): StoredBatchListener {
  return {
    async batchStored(batch, receivedAt) {
      const settled = await Promise.allSettled(listeners.map((listener) => listener.batchStored(batch, receivedAt)));
      const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}
