// The InfraMind link and the Kafka publisher continue each event's trace: the message carries the traceparent of the
// span that sent it, and that span's parent is the span recorded in the event. Also the link's gRPC RED metrics.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { inframindClient, type InfraMindClient, type LinkEvent, type SentinelMessage } from '../../adapters/grpc/inframind-proto.js';
import { parseBrokers } from '../../adapters/kafka/client.js';
import { KafkaEventLog } from '../../adapters/kafka/kafka-event-log.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { grpcServerMetrics } from '../../adapters/prometheus/grpc-metrics.js';
import { recordSpansInMemory, type SpansInMemory } from '../../app/tracing.js';
import { ActionPlanCommands } from '../../commands/action-plan-commands.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler } from '../../commands/command-handler.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { Principal } from '../../domain/access.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { startInframindLink, type RunningInframindLink } from '../../reactors/inframind/link.js';
import { PlanIntake } from '../../reactors/inframind/plan-intake.js';
import { KafkaPublisher } from '../../reactors/kafka-publisher.js';
import { anEvent } from '../support/events.js';
import { deleteEventTopics, KAFKA_BROKERS, readEventTopics, SKIP_KAFKA_REASON, testKafka, uniqueTopicPrefix } from '../support/kafka.js';

const SERVICE_ACCOUNT: Principal = { id: 'sa-inframind', kind: 'service', name: 'inframind', role: 'system' };
/** The span of the command that appended an event, as a request's trace leaves it in the event's metadata. */
const COMMAND_TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

const parsed = (traceparent: string) => {
  const [, traceId, spanId] = traceparent.split('-');
  return { traceId: traceId!, spanId: spanId! };
};

/** The one finished span that `traceparent` names. */
function spanNamed(spans: SpansInMemory, traceparent: string): ReadableSpan {
  const { traceId, spanId } = parsed(traceparent);
  const found = spans.exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId && span.spanContext().spanId === spanId);
  expect(found, `a finished span ${spanId} in trace ${traceId}`).to.have.length(1);
  return found[0]!;
}

describe('traces through the InfraMind link and the Kafka publisher', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });

  describe('the InfraMind link', () => {
    let link: RunningInframindLink;
    let client: InfraMindClient;
    let registry: Registry;
    /** Streams opened by linkEventOf, each ended by InfraMind half-closing it. */
    let sessions = 0;

    before(async () => {
      registry = new Registry();
      const handler = new CommandHandler(store);
      const policy = new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth });
      const plans = new ActionPlanCommands(handler, systemClock, policy, new FleetFacts(handler), { defaultTtlSeconds: 600 });
      link = await startInframindLink({
        host: '127.0.0.1',
        port: 0,
        store,
        intake: new PlanIntake(plans, handler),
        handler,
        authenticate: async (token) => {
          if (token !== 'inframind-token') throw new Error('unknown token');
          return SERVICE_ACCOUNT;
        },
        maxUnacknowledged: 16,
        interceptors: [grpcServerMetrics(registry)],
        logger,
      });
      client = inframindClient(`127.0.0.1:${link.port}`);
    });
    after(async () => {
      client?.close();
      await link?.stop();
    });

    /** Connects, resumes right before `event`, and answers the first event that comes down; the stream is then ended. */
    async function linkEventOf(event: RecordedEvent, resumeAfter: string): Promise<LinkEvent> {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', 'Bearer inframind-token');
      const call = client.connect(metadata);
      const ended = new Promise<void>((resolve) => call.on('status', () => resolve()));
      call.on('error', () => undefined);
      const received = new Promise<LinkEvent>((resolve) =>
        call.on('data', (message: SentinelMessage) => {
          if (message.body === 'event') resolve(message.event);
        }),
      );
      sessions++;
      call.write({ hello: { inframindId: `tracing-${randomUUID()}`, version: 'test', resumeAfter } });
      const linkEvent = await received;
      call.end();
      await ended;
      expect(linkEvent.id).to.equal(event.id);
      return linkEvent;
    }

    /** Appends one event to a linked stream and returns it with the position just before it. */
    async function appended(traceparent?: string): Promise<{ event: RecordedEvent; before: string }> {
      const before = (await store.readAll({ limit: 10_000 })).events.at(-1)?.position ?? '';
      const stream = `cluster-${randomUUID()}`;
      await store.append(stream, [{ ...anEvent('ClusterRegistered', { name: 'traced' }), metadata: traceparent ? { traceparent } : {} }]);
      const [event] = await store.readStream(stream);
      return { event: event!, before };
    }

    it('with tracing off, sends an event with the traceparent it was recorded with, and one without with none', async () => {
      const traced = await appended(COMMAND_TRACEPARENT);
      expect((await linkEventOf(traced.event, traced.before)).traceparent).to.equal(COMMAND_TRACEPARENT);
      const untraced = await appended();
      expect((await linkEventOf(untraced.event, untraced.before)).traceparent).to.equal('');
    });

    describe('with spans recorded in memory', () => {
      let spans: SpansInMemory;
      before(async () => (spans = await recordSpansInMemory()));
      after(async () => spans?.stop());

      it("sends each event in a span whose parent is the event's span, and names that span in the message", async () => {
        const { event, before } = await appended(COMMAND_TRACEPARENT);
        const linkEvent = await linkEventOf(event, before);
        expect(parsed(linkEvent.traceparent).traceId).to.equal(parsed(COMMAND_TRACEPARENT).traceId);
        const send = spanNamed(spans, linkEvent.traceparent);
        expect(send.name).to.equal('inframind send ClusterRegistered');
        expect(send.parentSpanContext?.spanId).to.equal(parsed(COMMAND_TRACEPARENT).spanId);
      });
    });

    it('counts its calls by service, method and code', async () => {
      const refused = client.connect(new grpc.Metadata());
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        refused.on('status', resolve);
        refused.on('error', () => undefined);
        refused.write({ hello: { inframindId: 'nobody', version: 'test', resumeAfter: '' } });
      });
      expect(status.code).to.equal(grpc.status.UNAUTHENTICATED);
      const text = await registry.getSingleMetricAsString('sentinel_grpc_server_handled_total');
      expect(text).to.include('sentinel_grpc_server_handled_total{service="sentinel.inframind.v1.InfraMind",method="Connect",code="UNAUTHENTICATED"} 1');
      expect(text).to.include(`sentinel_grpc_server_handled_total{service="sentinel.inframind.v1.InfraMind",method="Connect",code="OK"} ${sessions}`);
    });
  });

  describe('the Kafka publisher, on a real broker', () => {
    const prefix = uniqueTopicPrefix();
    let spans: SpansInMemory;

    before(async function () {
      if (!KAFKA_BROKERS) {
        console.log(`      SKIP: ${SKIP_KAFKA_REASON}`);
        this.skip();
      }
      spans = await recordSpansInMemory();
    });
    after(async () => {
      await spans?.stop();
      if (KAFKA_BROKERS) await deleteEventTopics(testKafka(), prefix);
    });

    it("publishes an event in a span whose parent is the event's span, named by the message's traceparent header", async () => {
      const stream = `deployment-${randomUUID()}`;
      await store.append(stream, [{ ...anEvent('DeploymentScaled', { replicas: 3 }), metadata: { traceparent: COMMAND_TRACEPARENT } }]);
      const [event] = await store.readStream(stream);
      const publisher = new KafkaPublisher(new KafkaEventLog({ brokers: parseBrokers(KAFKA_BROKERS!), topicPrefix: prefix, partitions: 1, logger }));
      await publisher.start();
      try {
        await publisher.handle(event!);
      } finally {
        await publisher.stop();
      }
      const [message] = await readEventTopics(testKafka(), prefix);
      expect(message?.headers['ce_id']).to.equal(event!.id);
      const header = message!.headers['traceparent']!;
      expect(parsed(header).traceId).to.equal(parsed(COMMAND_TRACEPARENT).traceId);
      const send = spanNamed(spans, header);
      expect(send.name).to.equal(`send ${message!.topic}`);
      expect(send.parentSpanContext?.spanId).to.equal(parsed(COMMAND_TRACEPARENT).spanId);
    });
  });
});
