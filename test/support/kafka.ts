// The Kafka broker for tests (infra/kafka/broker.sh start prints its address), and a reader of whole topics.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { createKafka, parseBrokers } from '../../adapters/kafka/client.js';
import { isEventTopic } from '../../adapters/kafka/topics.js';

export const KAFKA_BROKERS = process.env.KAFKA_BROKERS;

export const SKIP_KAFKA_REASON = 'KAFKA_BROKERS is not set (no Kafka broker for this run)';

export function testKafka(): Kafka {
  if (!KAFKA_BROKERS) throw new Error(SKIP_KAFKA_REASON);
  return createKafka({ brokers: parseBrokers(KAFKA_BROKERS), clientId: 'sentinel-test' });
}

/** A topic prefix of its own for one test, so that runs sharing the broker never read each other's events. */
export function uniqueTopicPrefix(): string {
  return `test-${randomBytes(6).toString('hex')}.sentinel`;
}

export interface ReadMessage {
  topic: string;
  partition: number;
  offset: bigint;
  key: string | undefined;
  value: string | undefined;
  headers: Record<string, string>;
}

/**
 * Every message of the Sentinel event topics under `prefix`, from the beginning up to the end each partition had
 * when the call began: everything already published, read without waiting for a quiet spell.
 */
export async function readEventTopics(kafka: Kafka, prefix: string): Promise<ReadMessage[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((topic) => isEventTopic(topic, prefix));
    return await readTopics(kafka, topics);
  } finally {
    await admin.disconnect();
  }
}

/** Every message of `topics` from the beginning up to each partition's end offset as of the call, in offset order per partition. */
export async function readTopics(kafka: Kafka, topics: string[]): Promise<ReadMessage[]> {
  const ends = await endOffsets(kafka, topics);
  const remaining = new Set([...ends].filter(([, end]) => end > 0n).map(([name]) => name));
  const messages: ReadMessage[] = [];
  if (remaining.size === 0) return messages;
  const consumer = kafka.consumer({ groupId: `sentinel-test-reader-${randomUUID()}`, maxWaitTimeInMs: 100 });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ topic, partition, message }) => {
            const name = `${topic}:${partition}`;
            const offset = BigInt(message.offset);
            if (offset >= ends.get(name)!) return;
            messages.push({
              topic,
              partition,
              offset,
              key: message.key?.toString(),
              value: message.value?.toString(),
              headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([header, value]) => [header, String(value)])),
            });
            if (offset === ends.get(name)! - 1n) remaining.delete(name);
            if (remaining.size === 0) resolve();
          },
        })
        .catch(reject);
    });
    return messages;
  } finally {
    await consumer.disconnect();
  }
}

/** The end offset (one past the last message) of every partition of `topics`, by `<topic>:<partition>`. */
async function endOffsets(kafka: Kafka, topics: string[]): Promise<Map<string, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = new Map<string, bigint>();
    for (const topic of topics) {
      for (const { partition, high } of await admin.fetchTopicOffsets(topic)) ends.set(`${topic}:${partition}`, BigInt(high));
    }
    return ends;
  } finally {
    await admin.disconnect();
  }
}

/** Deletes the event topics a test created under its prefix. */
export async function deleteEventTopics(kafka: Kafka, prefix: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((topic) => isEventTopic(topic, prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}
