// Domain events on a real Kafka broker: the layout consumers see, and exactly once across kill -9 of the publisher.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import type { Admin, Kafka } from 'kafkajs';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { parseBrokers } from '../../adapters/kafka/client.js';
import { KafkaEventLog } from '../../adapters/kafka/kafka-event-log.js';
import { readLastPositions } from '../../adapters/kafka/partition-tails.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { comparePositions, type EventStore, type Position, type RecordedEvent } from '../../domain/event-store.js';
import { DOMAIN_EVENT_TYPES, KAFKA_PUBLISHER, KafkaPublisher } from '../../reactors/kafka-publisher.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { reactorCheckpoint } from '../../adapters/postgres/checkpoints.js';
import { allVisible, anEvent } from '../support/events.js';
import { nodeArgsFor } from '../support/entry-points.js';
import { eventually } from '../support/eventually.js';
import { KAFKA_BROKERS, SKIP_KAFKA_REASON, deleteEventTopics, readEventTopics, testKafka, uniqueTopicPrefix, type ReadMessage } from '../support/kafka.js';
import { SKIP_POSTGRES_REASON, TEST_DATABASE_URL, createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';

const CHILD = path.resolve('test/support/kafka-publish-until-killed.ts');
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });

/** Every event in the store, in log order. */
async function everyEvent(store: PostgresEventStore): Promise<RecordedEvent[]> {
  await allVisible(store);
  const all: RecordedEvent[] = [];
  for (let after: Position | undefined; ; ) {
    const page = await store.readAll({ after, limit: 1000 });
    all.push(...page.events);
    if (page.events.length === 0) return all;
    after = page.checkpoint;
  }
}

/** Each stored event is in Kafka once, in its category's topic, keyed by its stream, in revision order per stream. */
function expectExactlyOnceInOrder(stored: RecordedEvent[], messages: ReadMessage[], prefix: string): void {
  const byId = new Map<string, ReadMessage[]>();
  for (const message of messages) byId.set(message.headers.ce_id!, [...(byId.get(message.headers.ce_id!) ?? []), message]);
  const duplicated = [...byId].filter(([, copies]) => copies.length > 1).map(([id]) => id);
  const missing = stored.filter((event) => !byId.has(event.id)).map((event) => event.id);
  expect(duplicated, 'events published more than once').to.deep.equal([]);
  expect(missing, 'events never published').to.deep.equal([]);
  expect(messages).to.have.length(stored.length);
  for (const event of stored) {
    const message = byId.get(event.id)![0]!;
    expect(message.topic).to.equal(`${prefix}.${event.stream.split('-')[0]}s.v1`);
    expect(message.key).to.equal(event.stream);
  }
  const revisionsByStream = new Map<string, number[]>();
  for (const message of [...messages].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0))) {
    revisionsByStream.set(message.key!, [...(revisionsByStream.get(message.key!) ?? []), Number(message.headers.sentinel_revision)]);
  }
  for (const [stream, revisions] of revisionsByStream) {
    expect(revisions, `revisions of ${stream} in Kafka`).to.deep.equal(revisions.map((_, i) => i));
  }
}

describe('Kafka publisher on a real broker', function () {
  this.timeout(60_000);
  let kafka: Kafka;
  before(function () {
    if (!KAFKA_BROKERS) {
      console.log(`SKIP: ${SKIP_KAFKA_REASON}`);
      this.skip();
    }
    kafka = testKafka();
  });

  describe('from a PGlite store', () => {
    let db: Database;
    let store: PostgresEventStore;
    const prefix = uniqueTopicPrefix();

    before(async function () {
      if (!KAFKA_BROKERS) this.skip();
      db = await openPglite();
      store = await PostgresEventStore.open(db);
      await migrateSentinel(db.knex);
    });
    after(async () => {
      await store?.close();
      await db?.close();
      if (KAFKA_BROKERS) await deleteEventTopics(kafka, prefix);
    });

    it('given events of several categories, then each is in its category topic, keyed by stream, with CloudEvents headers, in stream order', async () => {
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      await store.append('deployment-d1', [anEvent('DeploymentCreated', { replicas: 1 }), anEvent('DeploymentScaled', { replicas: 3 })]);
      await store.append('cluster-c1', [anEvent('ClusterRegistered', { name: 'c1' })]);
      await store.append('deployment-d1', [{ ...anEvent('DeploymentScaled', { replicas: 5 }), metadata: { traceparent } }]);
      await store.append('plan-p1', [anEvent('ActionPlanSubmitted'), anEvent('PolicyEvaluated', { verdict: 'allow' })]);
      const last = await store.append('policyset-global', [anEvent('PolicyCreated', { name: 'gpu-quota' })]);
      await store.append('nosuchcategory-1', [anEvent('NotADomainEvent')]);

      const runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, retryBaseMs: 50 });
      runtime.add(new KafkaPublisher(new KafkaEventLog({ brokers: parseBrokers(KAFKA_BROKERS!), topicPrefix: prefix, partitions: 3, logger })));
      try {
        await eventually('the publisher checkpoint reaching the last event', () => runtime.checkpoint(KAFKA_PUBLISHER), (at) => at === last.position, 30_000);
      } finally {
        await runtime.stop();
      }

      const stored = (await everyEvent(store)).filter((event) => DOMAIN_EVENT_TYPES.includes(event.type));
      const messages = await readEventTopics(kafka, prefix);
      expectExactlyOnceInOrder(stored, messages, prefix);
      expect(new Set(messages.map((message) => message.topic))).to.deep.equal(
        new Set(['deployments', 'clusters', 'plans', 'policysets'].map((plural) => `${prefix}.${plural}.v1`)),
      );
      const scaled = stored.find((event) => event.metadata.traceparent === traceparent)!;
      const message = messages.find((m) => m.headers.ce_id === scaled.id)!;
      expect(message.headers).to.deep.equal({
        ce_specversion: '1.0',
        ce_id: scaled.id,
        ce_type: 'sentinel.DeploymentScaled.v1',
        ce_source: '/sentinel/deployment-d1',
        ce_time: scaled.recordedAt.toISOString(),
        'content-type': 'application/json',
        traceparent,
        sentinel_position: scaled.position,
        sentinel_revision: '2',
      });
      expect(JSON.parse(message.value!)).to.deep.equal({ replicas: 5 });
    });

    it('given a topic holding an event, when the read of its last position is stopped, then it fails at once; unstopped, it answers the event', async () => {
      const { position } = await store.append('cluster-tails', [anEvent('ClusterRegistered', { name: 'tails' })]);
      const [event] = (await everyEvent(store)).filter((candidate) => candidate.position === position);
      const log = new KafkaEventLog({ brokers: parseBrokers(KAFKA_BROKERS!), topicPrefix: prefix, partitions: 3, logger });
      const admin = kafka.admin();
      await Promise.all([log.connect(), admin.connect()]);
      try {
        const partition = await log.partitionOf(event!);
        await log.publishAll([{ event: event!, partition }]);
        // Stopped once the partitions' ends are known, as its consumer is about to join a group (which takes
        // seconds): the stop of a publisher that is starting does not wait for that.
        const stopping = new AbortController();
        const stoppedAfterOffsets = {
          fetchTopicOffsets: async (topic: string) => {
            const offsets = await admin.fetchTopicOffsets(topic);
            stopping.abort();
            return offsets;
          },
        } as unknown as Admin;
        const topic = `${prefix}.clusters.v1`;
        let failure: unknown;
        await readLastPositions(kafka, stoppedAfterOffsets, [topic], undefined, stopping.signal).catch((error: unknown) => (failure = error));
        expect((failure as Error | undefined)?.message).to.equal("the read of the Kafka partitions' last messages was stopped");
        expect((await log.lastPositions(new Set([partition]))).get(partition)).to.equal(position);
      } finally {
        await Promise.all([log.close(), admin.disconnect()]);
      }
    });
  });

  describe('across kill -9 of the publisher, on PostgreSQL', () => {
    let scratch: ScratchDatabase;
    let db: Database;
    let store: PostgresEventStore;
    const prefix = uniqueTopicPrefix();

    before(async function () {
      if (!TEST_DATABASE_URL) {
        console.log(`SKIP: ${SKIP_POSTGRES_REASON}`);
        this.skip();
      }
      scratch = await createScratchDatabase();
      db = openPostgres(scratch.url, { poolMax: 20 });
      store = await PostgresEventStore.open(db);
      await migrateSentinel(db.knex);
    });
    after(async () => {
      await store?.close();
      await db?.close();
      await scratch?.drop();
      if (KAFKA_BROKERS && TEST_DATABASE_URL) await deleteEventTopics(kafka, prefix);
    });

    it('given 16 writers appending and the publisher killed 4 times with events in Kafka past its checkpoint, then every event is in Kafka once, in stream order', async () => {
      let writing = true;
      const writers = Array.from({ length: 16 }, (_, writer) => appendWhile(store, writer, () => writing));
      const checkpoint = () => reactorCheckpoint(db.knex, KAFKA_PUBLISHER);
      try {
        for (const stallAfter of [15, 40, 5, 60]) {
          const child = startPublisher(scratch.url, prefix, stallAfter);
          const stalledAt = await child.stalled();
          await child.kill();
          const savedAt = (await checkpoint()) ?? '';
          expect(comparePositions(stalledAt, savedAt), 'the killed publisher left an event in Kafka past its checkpoint').to.equal(1);
        }
      } finally {
        writing = false;
        await Promise.all(writers);
      }
      const stored = await everyEvent(store);
      const final = startPublisher(scratch.url, prefix, 0);
      try {
        await eventually('the last publisher reaching the end of the log', checkpoint, (position) => position === stored.at(-1)!.position, 40_000);
      } finally {
        await final.kill();
      }

      const messages = await readEventTopics(kafka, prefix);
      expectExactlyOnceInOrder(stored, messages, prefix);
    });
  });
});

const WRITER_STREAMS = [
  ['deployment', 'DeploymentScaled'],
  ['cluster', 'ClusterUpdated'],
  ['plan', 'PlanActionStarted'],
  ['node', 'NodeRegistered'],
] as const;

/** One writer: appends one or two events at a time to streams of four categories until told to stop, at most 120 times. */
async function appendWhile(store: EventStore, writer: number, go: () => boolean): Promise<void> {
  for (let i = 0; go() && i < 120; i++) {
    const [category, type] = WRITER_STREAMS[i % WRITER_STREAMS.length]!;
    const batch = Array.from({ length: 1 + (i % 2) }, () => anEvent(type, { writer, i }));
    await store.append(`${category}-w${writer}-${i % 6}`, batch);
  }
}

interface PublisherChild {
  /** Resolves with the position of the event the child stalled on, once Kafka acknowledged it. */
  stalled(): Promise<string>;
  kill(): Promise<void>;
}

function startPublisher(databaseUrl: string, prefix: string, stallAfter: number): PublisherChild {
  const child = spawn(process.execPath, nodeArgsFor(CHILD), {
    env: { ...process.env, PUBLISHER_DATABASE_URL: databaseUrl, PUBLISHER_TOPIC_PREFIX: prefix, PUBLISHER_STALL_AFTER: String(stallAfter) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout });
  const stalled = new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.startsWith('stalled ')) resolve(line.split(' ')[1]!);
    });
    void exited.then(() => reject(new Error('the publisher child exited before it stalled')));
  });
  stalled.catch(() => undefined);
  return {
    stalled: () => stalled,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
