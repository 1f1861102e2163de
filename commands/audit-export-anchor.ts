// Anchors of the live audit trail: a signed checkpoint of the chain's head (counted from its first row), published
// outside the database now and then (appended to a file, sent to a Kafka topic); and the check of the live chain
// against the last one, which catches a chain rewritten whole with its hashes recomputed, as Certificate
// Transparency's signed tree heads do.
import { randomUUID, type KeyObject } from 'node:crypto';
import { appendFile, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Consumer, Producer } from 'kafkajs';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { createKafka } from '../adapters/kafka/client.js';
import { canonicalJson } from '../projections/canonical-json.js';
import { checkpointProblem, signCheckpoint, type ExportCheckpoint } from './audit-export.js';
import { GENESIS_HASH } from '../projections/audit-trail.js';
import { verifyAuditTrail } from '../projections/audit-chain-read.js';

/** An anchor: an export's checkpoint over the whole chain, from its first row to `lastPosition`. */
export type AuditAnchor = ExportCheckpoint;

export interface AnchorCheck {
  position: string | null;
  hash: string;
  rows: number;
  signedAt: string;
  ok: boolean;
  reason?: string;
}

/** `GET /audit/verify`'s answer: the chain's verification, and with an anchor, whether the chain still holds it. */
export interface AnchoredVerification {
  ok: boolean;
  rows: number;
  brokenAt?: { id: string; position: string };
  reason?: string;
  anchor?: AnchorCheck;
}

/** Signs the chain's head as it stands; undefined while the trail is empty. */
export async function anchorOf(knex: Knex, table: string, key: KeyObject, now: () => Date = () => new Date()): Promise<AuditAnchor | undefined> {
  const head = (await knex(table).orderBy('position', 'desc').first('position', 'hash')) as { position: string; hash: string } | undefined;
  if (!head) return undefined;
  const [counted] = (await knex(table)
    .where('position', '<=', head.position)
    .select(knex.raw('count(*)::text as rows'), knex.raw('min(position) as first'))) as { rows: string; first: string }[];
  return signCheckpoint(
    { rows: Number(counted!.rows), prevHash: GENESIS_HASH, firstPosition: counted!.first, lastPosition: head.position, lastHash: head.hash, signedAt: now().toISOString() },
    key,
  );
}

/** Appends the anchor to the file as one JSON line (the file is created when missing). */
export async function writeAnchor(file: string, anchor: AuditAnchor): Promise<void> {
  await appendFile(file, `${JSON.stringify(anchor)}\n`);
}

/** The file's last anchor; undefined when the file is missing or empty. */
export async function lastAnchor(file: string): Promise<AuditAnchor | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  const line = text.trimEnd().split('\n').at(-1);
  return line ? (JSON.parse(line) as AuditAnchor) : undefined;
}

// ---- where anchors are kept ----------------------------------------------------------------------------------

/** A place outside the database anchors are published to, and the last one read back from. */
export interface AnchorLog {
  /** Where it is, for log lines: a file path or a Kafka topic. */
  readonly where: string;
  append(anchor: AuditAnchor): Promise<void>;
  /** The last anchor published there (by any process); undefined before the first. */
  last(): Promise<AuditAnchor | undefined>;
  close(): Promise<void>;
}

/** Anchors as JSON lines appended to a file (`AUDIT_ANCHOR_FILE`). */
export class FileAnchorLog implements AnchorLog {
  constructor(readonly where: string) {}

  append(anchor: AuditAnchor): Promise<void> {
    return writeAnchor(this.where, anchor);
  }

  last(): Promise<AuditAnchor | undefined> {
    return lastAnchor(this.where);
  }

  async close(): Promise<void> {}
}

export const DEFAULT_ANCHOR_TOPIC = 'sentinel.audit-anchors.v1';
/** Every anchor is sent with this key, so that all of them land in one partition, in the order they were signed. */
const ANCHOR_KEY = 'audit-anchor';
/** Longest `last()` waits for the topic to be read up to its end. */
const KAFKA_CATCH_UP_MS = 15_000;

/** `AUDIT_ANCHOR_KAFKA`: `true` is the default topic, `false` (or nothing) none, anything else a topic name. */
export function anchorTopicOf(value: string | undefined): string | undefined {
  const given = value?.trim();
  if (given === undefined || given === '' || given === 'false') return undefined;
  return given === 'true' ? DEFAULT_ANCHOR_TOPIC : given;
}

export interface KafkaAnchorLogOptions {
  brokers: string[];
  topic: string;
  /** Default `sentinel-audit-anchors`. */
  clientId?: string;
  logger?: Logger;
}

/**
 * Anchors on a Kafka topic, one message each (the anchor's canonical JSON), all with one key. `last()` follows the
 * topic with a consumer of its own (a group of its own that commits nothing, started at the first call, from each
 * partition's last message), and answers once it has read up to the end the topic had when asked: the last anchor
 * published, as the last line of an anchor file is. Whoever can write to the topic can put a message last, but not
 * sign one: verification checks the signature.
 */
export class KafkaAnchorLog implements AnchorLog {
  readonly where: string;
  private readonly kafka;
  private producer: Promise<Producer> | undefined;
  private admin: Promise<Admin> | undefined;
  private consumer: Promise<Consumer> | undefined;
  private topicCreated: Promise<void> | undefined;
  /** The offset after the last message read, per partition. */
  private readonly next = new Map<number, bigint>();
  /** The last anchor of each partition, and the newest of them. */
  private readonly lastOf = new Map<number, AuditAnchor>();
  private latest: AuditAnchor | undefined;
  /** The last message that was not an anchor: it is reported, not taken for one. */
  private unreadable: string | undefined;

  constructor(private readonly options: KafkaAnchorLogOptions) {
    this.where = `Kafka topic ${options.topic}`;
    this.kafka = createKafka({ brokers: options.brokers, clientId: options.clientId ?? 'sentinel-audit-anchors', ...(options.logger ? { logger: options.logger } : {}) });
  }

  async append(anchor: AuditAnchor): Promise<void> {
    await this.ensureTopic();
    this.producer ??= connected(this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false }));
    // Durable on every in-sync replica before the anchor counts as published.
    await (await this.producer).send({ topic: this.options.topic, acks: -1, messages: [{ key: ANCHOR_KEY, value: canonicalJson(anchor)! }] });
  }

  async last(): Promise<AuditAnchor | undefined> {
    const admin = await this.adminClient();
    if (!(await admin.listTopics()).includes(this.options.topic)) return undefined;
    const ends = await admin.fetchTopicOffsets(this.options.topic);
    await this.follow(ends);
    const deadline = Date.now() + KAFKA_CATCH_UP_MS;
    const behind = () => ends.filter(({ partition, high }) => BigInt(high) > (this.next.get(partition) ?? BigInt(ends.find((end) => end.partition === partition)!.low)));
    while (behind().length > 0) {
      if (Date.now() >= deadline) {
        throw new Error(`could not read the anchors on ${this.where} up to their end within ${KAFKA_CATCH_UP_MS / 1000} s (partitions ${behind().map((end) => end.partition).join(', ')} behind)`);
      }
      await sleep(20);
    }
    if (this.unreadable !== undefined && this.latest === undefined) throw new Error(`${this.where} holds no readable anchor: ${this.unreadable}`);
    return this.latest;
  }

  async close(): Promise<void> {
    const clients = [this.consumer, this.producer, this.admin];
    this.consumer = this.producer = this.admin = undefined;
    await Promise.allSettled(clients.map(async (client) => (await client)?.disconnect()));
  }

  private adminClient(): Promise<Admin> {
    this.admin ??= connected(this.kafka.admin());
    return this.admin;
  }

  /** One partition: anchors stay in the order they were signed. Created once; a topic that exists is left as it is. */
  private ensureTopic(): Promise<void> {
    this.topicCreated ??= (async () => {
      const admin = await this.adminClient();
      if ((await admin.listTopics()).includes(this.options.topic)) return;
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: this.options.topic, numPartitions: 1 }] });
    })().catch((error: unknown) => {
      this.topicCreated = undefined;
      throw error;
    });
    return this.topicCreated;
  }

  /** Starts the consumer once, at the last message of each partition that holds any (older anchors are older). */
  private async follow(ends: { partition: number; high: string; low: string }[]): Promise<void> {
    this.consumer ??= (async () => {
      const consumer = this.kafka.consumer({ groupId: `sentinel-audit-anchors-${randomUUID()}`, maxWaitTimeInMs: 100 });
      await consumer.connect();
      await consumer.subscribe({ topics: [this.options.topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          this.next.set(partition, BigInt(message.offset) + 1n);
          this.read(partition, message.value?.toString('utf8'), `offset ${message.offset} of partition ${partition}`);
        },
      });
      for (const { partition, high, low } of ends) {
        if (BigInt(high) > BigInt(low)) consumer.seek({ topic: this.options.topic, partition, offset: (BigInt(high) - 1n).toString() });
      }
      return consumer;
    })();
    await this.consumer;
  }

  private read(partition: number, value: string | undefined, at: string): void {
    let anchor: AuditAnchor | undefined;
    try {
      const parsed = JSON.parse(value ?? '') as Partial<AuditAnchor> | null;
      if (parsed?.kind === 'checkpoint' && typeof parsed.lastPosition === 'string' && typeof parsed.lastHash === 'string') anchor = parsed as AuditAnchor;
    } catch {
      anchor = undefined;
    }
    if (anchor === undefined) {
      this.unreadable = `the message at ${at} is not an anchor`;
      this.options.logger?.warn({ topic: this.options.topic, at }, 'a message on the audit anchor topic is not an anchor; it is skipped');
      return;
    }
    this.lastOf.set(partition, anchor);
    // One partition unless the topic was made with more: then the newest of their last anchors, by the head it anchors.
    this.latest = [...this.lastOf.values()].reduce((newest, one) => (one.lastPosition! > newest.lastPosition! ? one : newest));
  }
}

async function connected<Client extends { connect(): Promise<void> }>(client: Client): Promise<Client> {
  await client.connect();
  return client;
}

/**
 * The live chain verified whole, then against the anchor: its signature (with `publicKey`, else the key it names),
 * and the row at the anchor's position must still hold the anchored hash, with as many rows up to it as anchored.
 */
export async function verifyAgainstAnchor(knex: Knex, table: string, anchor: AuditAnchor | undefined, publicKey?: KeyObject): Promise<AnchoredVerification> {
  const chain: AnchoredVerification = await verifyAuditTrail(knex, table);
  if (anchor === undefined) return chain;
  const check = { position: anchor.lastPosition, hash: anchor.lastHash, rows: anchor.rows, signedAt: anchor.signedAt };
  const reason = checkpointProblem(anchor, publicKey) ?? (await anchoredRowProblem(knex, table, anchor));
  return { ...chain, ok: chain.ok && reason === undefined, anchor: { ...check, ok: reason === undefined, ...(reason ? { reason } : {}) } };
}

async function anchoredRowProblem(knex: Knex, table: string, anchor: AuditAnchor): Promise<string | undefined> {
  if (anchor.lastPosition === null) return undefined;
  const row = (await knex(table).where({ position: anchor.lastPosition }).first('hash')) as { hash: string } | undefined;
  if (row === undefined) return `the anchored row at ${anchor.lastPosition} is gone`;
  if (row.hash !== anchor.lastHash) return `the row at ${anchor.lastPosition} no longer holds the anchored hash: the chain up to it was rewritten`;
  const [counted] = (await knex(table).where('position', '<=', anchor.lastPosition).select(knex.raw('count(*)::text as rows'))) as { rows: string }[];
  if (Number(counted!.rows) !== anchor.rows) return `${counted!.rows} rows lie up to ${anchor.lastPosition}, the anchor counted ${anchor.rows}: rows were added or removed before it`;
  return undefined;
}

/**
 * Publishes an anchor to every log every `intervalSeconds` while the head moves; a log that fails is logged and
 * tried again at the next tick, the others go on. `file` is a `FileAnchorLog` of that file.
 */
export function startAnchoring(options: {
  knex: Knex;
  table: () => Promise<string>;
  key: KeyObject;
  file?: string;
  logs?: readonly AnchorLog[];
  intervalSeconds: number;
  logger: Logger;
}): { stop(): Promise<void> } {
  const logs = [...(options.file !== undefined ? [new FileAnchorLog(options.file)] : []), ...(options.logs ?? [])];
  /** The hash each log was last given. */
  const last = new Map<AnchorLog, string>();
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = (async () => {
      let anchor: AuditAnchor | undefined;
      try {
        anchor = await anchorOf(options.knex, await options.table(), options.key);
      } catch (error) {
        options.logger.error({ err: error }, 'could not sign an anchor of the audit trail; trying again at the next interval');
        return;
      }
      if (anchor === undefined) return;
      for (const log of logs) {
        if (last.get(log) === anchor.lastHash) continue;
        try {
          await log.append(anchor);
          last.set(log, anchor.lastHash);
        } catch (error) {
          options.logger.error({ err: error, anchorLog: log.where }, 'could not publish an anchor of the audit trail; trying again at the next interval');
        }
      }
    })();
  };
  tick();
  const timer = setInterval(tick, options.intervalSeconds * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
