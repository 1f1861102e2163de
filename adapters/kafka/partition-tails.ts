// Reads the last message of Kafka partitions, to learn the last event position a publisher stored in each.
import { randomUUID } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import type { Position } from '../../domain/event-store.js';
import { positionOf } from './cloudevents.js';

/** A partition as `<topic>:<partition>`; topic names cannot hold `:`. */
export type PartitionName = string;

export function partitionName(topic: string, partition: number): PartitionName {
  return `${topic}:${partition}`;
}

export function parsePartitionName(name: PartitionName): { topic: string; partition: number } {
  const colon = name.lastIndexOf(':');
  const partition = Number(name.slice(colon + 1));
  if (colon <= 0 || !Number.isSafeInteger(partition) || partition < 0) {
    throw new Error(`${JSON.stringify(name)} is not a Kafka partition named <topic>:<partition>`);
  }
  return { topic: name.slice(0, colon), partition };
}

/** How long the tail read may take before it fails (and the publisher's start is tried again). */
const TAIL_READ_TIMEOUT_MS = 60_000;

/**
 * The `sentinel_position` of the last message of every partition of `topics` that holds any (filtered to
 * `only` when given). Kafka has no "read the last message" call: this looks up each partition's end offset,
 * then reads the one message before it with a consumer of its own, in a group of its own that commits nothing.
 * Joining that group can take seconds: when `signal` aborts (the publisher is stopping), the read fails at once and
 * its consumer is disconnected, rather than the stop waiting for it.
 */
export async function readLastPositions(
  kafka: Kafka,
  admin: Admin,
  topics: string[],
  only?: ReadonlySet<PartitionName>,
  signal?: AbortSignal,
): Promise<Map<PartitionName, Position>> {
  const stoppedError = () => new Error("the read of the Kafka partitions' last messages was stopped");
  if (signal?.aborted) throw stoppedError();
  const lastOffsets = await lastOffsetsOf(admin, topics, only);
  if (lastOffsets.size === 0) return new Map();
  const consumer = kafka.consumer({ groupId: `sentinel-partition-tails-${randomUUID()}`, maxWaitTimeInMs: 100 });
  const found = new Map<PartitionName, Position>();
  let timer: NodeJS.Timeout | undefined;
  let stopped: (() => void) | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [...new Set([...lastOffsets.keys()].map((name) => parsePartitionName(name).topic))] });
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`read the last message of ${found.size} of ${lastOffsets.size} Kafka partitions within ${TAIL_READ_TIMEOUT_MS} ms`)),
        TAIL_READ_TIMEOUT_MS,
      );
      stopped = () => reject(stoppedError());
      if (signal?.aborted) return stopped();
      signal?.addEventListener('abort', stopped, { once: true });
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ topic, partition, message }) => {
            const name = partitionName(topic, partition);
            const last = lastOffsets.get(name);
            if (last === undefined || found.has(name) || BigInt(message.offset) < last) return;
            const position = positionOf(message.headers);
            if (position === undefined) {
              reject(new Error(`the message at offset ${message.offset} of ${name} has no sentinel_position header: only Sentinel's publisher may write to its topics`));
              return;
            }
            found.set(name, position);
            if (found.size === lastOffsets.size) resolve();
          },
        })
        .then(() => {
          // A seek throws when the consumer stopped meanwhile (it crashed, or the read ended): the read fails with
          // that, rather than the throw going unhandled (which ends the process).
          try {
            for (const [name, offset] of lastOffsets) {
              const { topic, partition } = parsePartitionName(name);
              consumer.seek({ topic, partition, offset: offset.toString() });
            }
          } catch (error) {
            reject(error);
          }
        }, reject);
    });
    return found;
  } finally {
    clearTimeout(timer);
    if (stopped) signal?.removeEventListener('abort', stopped);
    await consumer.disconnect();
  }
}

/** The offset of the last message of each partition that holds any. */
async function lastOffsetsOf(admin: Admin, topics: string[], only: ReadonlySet<PartitionName> | undefined): Promise<Map<PartitionName, bigint>> {
  const lastOffsets = new Map<PartitionName, bigint>();
  for (const topic of topics) {
    for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
      const name = partitionName(topic, partition);
      if (only && !only.has(name)) continue;
      if (BigInt(high) > BigInt(low)) lastOffsets.set(name, BigInt(high) - 1n);
    }
  }
  return lastOffsets;
}
