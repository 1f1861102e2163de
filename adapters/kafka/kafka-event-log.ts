// Kafka as the publisher's partitioned log: a topic per stream category, the stream as key, one idempotent producer.
import { Partitioners, type Admin, type Kafka, type Message, type PartitionMetadata, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Position, RecordedEvent } from '../../domain/event-store.js';
import type { PartitionedEvent, PartitionedEventLog } from '../../reactors/kafka-publisher.js';
import { currentOr, inSpan, linkBatch, SpanKind, traceparentOf } from '../tracing.js';
import { toEventMessage } from './cloudevents.js';
import { createKafka } from './client.js';
import { parsePartitionName, partitionName, readLastPositions, type PartitionName } from './partition-tails.js';
import { DEFAULT_TOPIC_PREFIX, isEventTopic, topicOf } from './topics.js';

export interface KafkaEventLogOptions {
  brokers: string[];
  /** Default `sentinel`. */
  clientId?: string;
  /** Topics are `<topicPrefix>.<category>s.v1`; default `sentinel`. */
  topicPrefix?: string;
  /** Partitions of a topic this log creates; the broker's `num.partitions` when absent. */
  partitions?: number;
  logger?: Logger;
}

export class KafkaEventLog implements PartitionedEventLog {
  private readonly kafka: Kafka;
  private readonly prefix: string;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  /** Partition metadata per topic, looked up (and the topic created) the first time an event goes to it. */
  private readonly topics = new Map<string, Promise<PartitionMetadata[]>>();
  /** Kafka's default partitioner (murmur2 of the key, as the Java client), so Java consumers agree on placement. */
  private readonly partitioner = Partitioners.DefaultPartitioner();

  constructor(private readonly options: KafkaEventLogOptions) {
    this.kafka = createKafka({ brokers: options.brokers, clientId: options.clientId ?? 'sentinel', ...(options.logger ? { logger: options.logger } : {}) });
    this.prefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
  }

  async partitionOf(event: RecordedEvent): Promise<PartitionName> {
    const topic = topicOf(event.stream, this.prefix);
    const partitionMetadata = await this.partitionsOf(topic);
    return partitionName(topic, this.partitioner({ topic, partitionMetadata, message: { key: event.stream, value: null } }));
  }

  async lastPositions(partitions?: ReadonlySet<PartitionName>, signal?: AbortSignal): Promise<Map<PartitionName, Position>> {
    const admin = this.connected().admin;
    const topics = partitions
      ? [...new Set([...partitions].map((name) => parsePartitionName(name).topic))]
      : (await admin.listTopics()).filter((topic) => isEventTopic(topic, this.prefix));
    return readLastPositions(this.kafka, admin, topics, partitions, signal);
  }

  /**
   * The partition is chosen here, not by the producer, so that the partition the publisher compared positions in
   * is the one the event goes to. `acks: -1`: the write is durable on every in-sync replica before it counts.
   */
  private async publishOne(event: RecordedEvent, partition: PartitionName): Promise<void> {
    const { topic, partition: index } = parsePartitionName(partition);
    const producer = this.connected().producer;
    // The message's traceparent is this send's span (OpenTelemetry's messaging conventions): a consumer's trace goes
    // on from the publish, which goes on from the event (through the publisher's reaction to it, when there is one).
    const span = { kind: SpanKind.PRODUCER, parent: currentOr(event.metadata.traceparent), attributes: sendAttributes(event, topic, index) };
    await inSpan(`send ${topic}`, span, async (sending) => {
      const message = toEventMessage(event, traceparentOf(sending));
      await producer.send({ topic, acks: -1, messages: [{ ...message, partition: index }] });
    });
  }

  /**
   * A batch of events in one producer request, each to the partition the publisher chose, in the order given
   * within each partition. The send's span continues the first event's trace and links the others'; each
   * message's traceparent is that span, or its event's own when nothing records spans. The span is named after the
   * topic (`send <topic>`, as a lone event's is) when the batch goes to one, `send batch` otherwise.
   */
  async publishAll(events: readonly PartitionedEvent[]): Promise<void> {
    if (events.length === 1) return this.publishOne(events[0]!.event, events[0]!.partition);
    const producer = this.connected().producer;
    const traceparents = events.map(({ event }) => event.metadata.traceparent);
    const byTopic = new Map<string, { event: RecordedEvent; partition: number }[]>();
    for (const { event, partition } of events) {
      const { topic, partition: index } = parsePartitionName(partition);
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), { event, partition: index }]);
    }
    const [only] = byTopic.size === 1 ? [...byTopic.keys()] : [];
    const span = {
      kind: SpanKind.PRODUCER,
      parent: currentOr(traceparents.find((traceparent) => traceparent !== undefined)),
      attributes: {
        'messaging.system': 'kafka',
        'messaging.operation.type': 'send',
        'messaging.batch.message_count': events.length,
        ...(only ? { 'messaging.destination.name': only } : {}),
      },
    };
    await inSpan(only ? `send ${only}` : 'send batch', span, async (sending) => {
      linkBatch(sending, traceparents);
      const traceparent = traceparentOf(sending);
      const topicMessages = [...byTopic].map(([topic, sends]): { topic: string; messages: Message[] } => ({
        topic,
        messages: sends.map(({ event, partition }) => ({ ...toEventMessage(event, traceparent), partition })),
      }));
      await producer.sendBatch({ acks: -1, topicMessages });
    });
  }

  /**
   * An idempotent producer with one request in flight: retries inside the producer neither duplicate nor
   * reorder a partition's messages, which the publisher's "last position" rule depends on.
   */
  async connect(): Promise<void> {
    await this.close();
    const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    const admin = this.kafka.admin();
    this.producer = producer;
    this.admin = admin;
    await Promise.all([producer.connect(), admin.connect()]);
  }

  async close(): Promise<void> {
    const { producer, admin } = this;
    this.producer = undefined;
    this.admin = undefined;
    this.topics.clear();
    await Promise.all([producer?.disconnect(), admin?.disconnect()]);
  }

  private connected(): { producer: Producer; admin: Admin } {
    if (!this.producer || !this.admin) throw new Error('the Kafka event log is not connected: call connect() first');
    return { producer: this.producer, admin: this.admin };
  }

  private partitionsOf(topic: string): Promise<PartitionMetadata[]> {
    let metadata = this.topics.get(topic);
    if (!metadata) {
      metadata = this.createIfMissing(topic);
      this.topics.set(topic, metadata);
      metadata.catch(() => this.topics.delete(topic));
    }
    return metadata;
  }

  /** Creates the topic (a no-op when it exists) and returns its partitions, ordered by id. */
  private async createIfMissing(topic: string): Promise<PartitionMetadata[]> {
    const { admin } = this.connected();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, ...(this.options.partitions ? { numPartitions: this.options.partitions } : {}) }] });
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = topics[0]?.partitions ?? [];
    if (partitions.length === 0) throw new Error(`Kafka reports no partitions for topic ${topic}`);
    return [...partitions].sort((a, b) => a.partitionId - b.partitionId);
  }
}

/** A publish's span attributes, as OpenTelemetry's messaging conventions name them for Kafka. */
function sendAttributes(event: RecordedEvent, topic: string, partition: number) {
  return {
    'messaging.system': 'kafka',
    'messaging.operation.type': 'send',
    'messaging.destination.name': topic,
    'messaging.destination.partition.id': String(partition),
    'messaging.kafka.message.key': event.stream,
    'messaging.message.id': event.id,
  };
}
