// InfraMind link benchmark: Sentinel in-process (roles api, projector, reactor, inframind, with the built-in cluster
// simulator), InfraMind played by a real gRPC client of proto/inframind.proto under a service account. Measures:
//   ack      a scale plan sent over the stream → its acknowledgement (the plan judged and recorded)   target p99 < 30 ms
//   applied  a scale plan sent → its outcome EXECUTED back on the stream                               target p99 < 1 s
//   deliver  a domain event appended to the store → that event arriving on the stream                 target p99 < 100 ms
//   kafka    the same event appended → read from its topic by a kafkajs consumer                      target p99 < 100 ms
//   resume   a new connection whose hello names the start of the log → every event delivered       target >= 20,000 events/s
// InfraMind's client runs in this process, so its share of the CPU (decoding, acknowledging) is counted too. A plan
// the link rejects is counted in `rejected` and in the acknowledgement times, and is not sent again.
// Run:
//   npm run bench:link                                                       (embedded PGlite, no Kafka)
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:link   (a scratch database on that server)
//   export "$(infra/kafka/broker.sh start)"; npm run bench:link             (with KAFKA_BROKERS: the Kafka figure too)
// Knobs: BENCH_LINK_PLANS (200); BENCH_LINK_IN_FLIGHT (1: each plan is sent once the one before has ended; n: plans
// go round n deployments, each sent once the one before is acknowledged, so up to n are being carried out while a
// plan is judged); BENCH_LINK_EVENTS (200); BENCH_LINK_RESUME_EVENTS (100000; 0 skips the resume).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { Consumer, Kafka } from 'kafkajs';
import { pino } from 'pino';
import { inframindClient, type InfraMindClient, type InfraMindMessageOut, type Outcome, type PlanAck, type SentinelMessage } from '../adapters/grpc/inframind-proto.js';
import { HEADERS, headerText } from '../adapters/kafka/cloudevents.js';
import { createKafka, parseBrokers } from '../adapters/kafka/client.js';
import { isEventTopic, topicOf } from '../adapters/kafka/topics.js';
import { loadConfig } from '../app/config.js';
import { SIMULATED_CLUSTER_ID } from '../app/reactors.js';
import { startSentinel } from '../app/sentinel.js';
import { workloads } from '../commands/aggregates.js';
import { streamOf } from '../commands/command-handler.js';
import { comparePositions, type EventFilter, type EventStore, type EventToAppend, type Position } from '../domain/event-store.js';
import { workloadBody } from '../domain/workload.js';
import { auditProjector } from '../projections/audit-trail.js';
import { DOMAIN_EVENT_TYPES, KAFKA_PUBLISHER } from '../reactors/kafka-publisher.js';
import type { ReactorRuntime } from '../reactors/reactor-runtime.js';
import { createScratchDatabase, type ScratchDatabase } from '../test/support/postgres.js';
import { adminClient, type AdminClient } from './admin-client.js';

const PLANS = Number(process.env['BENCH_LINK_PLANS'] ?? 200);
const IN_FLIGHT = Number(process.env['BENCH_LINK_IN_FLIGHT'] ?? 1);
const EVENTS = Number(process.env['BENCH_LINK_EVENTS'] ?? 200);
const RESUME_EVENTS = Number(process.env['BENCH_LINK_RESUME_EVENTS'] ?? 100_000);
const KAFKA_BROKERS = process.env['KAFKA_BROKERS'] || undefined;
const PASSWORD = 'bench-admin-password';
/** Appended and waited for before the measured events: the Kafka consumer has read past the setup by then. */
const WARM_UP_EVENTS = 5;
/** Longest wait for any one answer before the benchmark stops, naming what did not come. */
const ANSWER_TIMEOUT_MS = 30_000;
/** Events per append while filling the log for the resume (the store takes at most 10,000 in one). */
const RESUME_BATCH = 10_000;
/**
 * The type of the events the resume replays. No projector but the audit trail, and no reactor, reads it, so the
 * replay measures the link rather than the read side or the Kafka publisher working through 100,000 events; the
 * streams are `node-` streams, which go down the link.
 */
const RESUME_EVENT_TYPE = 'LinkBenchReplayed';

function percentile(sorted: number[], p: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 10) / 10;
}

/** p50 and p99 of `values` in ms, or null when there are none. */
function summary(values: number[]): { p50: number | null; p99: number | null } {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? { p50: null, p99: null } : { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

/** `promise`, or a rejection naming `what` once `ms` have passed without it. */
async function within<T>(promise: Promise<T>, what: string, ms = ANSWER_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms / 1000} s`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** When each awaited key arrived (performance.now()), for whoever asked before it came. */
class Arrivals<T = number> {
  private readonly waiting = new Map<string, (value: T) => void>();

  expect(key: string): Promise<T> {
    return new Promise((resolve) => this.waiting.set(key, resolve));
  }

  arrived(key: string, value: T): void {
    const resolve = this.waiting.get(key);
    this.waiting.delete(key);
    resolve?.(value);
  }
}

/**
 * One InfraMind session, as a real InfraMind runs it: hello naming where it resumes, every event acknowledged (in
 * steps of a quarter of the window Sentinel announces, so the window never fills), plans matched to their
 * acknowledgement by nonce and to their outcome by plan id.
 */
class LinkSession {
  readonly events = new Arrivals();
  readonly acks = new Arrivals<{ ack: PlanAck; at: number }>();
  readonly outcomes = new Arrivals<{ outcome: Outcome; at: number }>();
  /** Events received on this session. */
  received = 0;
  /** Called with each event's id as it arrives. */
  onEvent: ((id: string) => void) | undefined;
  readonly greeted: Promise<void>;
  private readonly call: grpc.ClientDuplexStream<InfraMindMessageOut, SentinelMessage>;
  private ackEvery = 1;
  private unacknowledged = 0;
  private failure: Error | undefined;

  constructor(client: InfraMindClient, token: string, inframindId: string, resumeAfter: Position | undefined) {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    this.call = client.connect(metadata);
    let greet!: () => void;
    let refuse!: (error: Error) => void;
    this.greeted = new Promise((resolve, reject) => ((greet = resolve), (refuse = reject)));
    this.call.on('data', (message: SentinelMessage) => {
      if (message.body === 'hello') {
        this.ackEvery = Math.max(1, Math.floor(message.hello.maxUnacknowledged / 4));
        greet();
      } else this.receive(message);
    });
    this.call.on('error', (error: grpc.ServiceError) => {
      if (error.code === grpc.status.CANCELLED) return;
      this.failure = new Error(`the link ended the stream: ${grpc.status[error.code]}: ${error.details}`);
      refuse(this.failure);
    });
    this.call.write({ hello: { inframindId, version: 'bench-link', resumeAfter: resumeAfter ?? '' } });
  }

  /** Sends the plan; resolves with its acknowledgement and when it came. */
  submit(plan: { planId: string; nonce: string; reason: string; actions: { scale: { deploymentId: string; replicas: number } }[] }) {
    this.check();
    const acknowledged = this.acks.expect(plan.nonce);
    this.call.write({ plan });
    return within(acknowledged, `acknowledgement of plan ${plan.planId}`);
  }

  close(): void {
    this.call.cancel();
  }

  private receive(message: SentinelMessage): void {
    const at = performance.now();
    switch (message.body) {
      case 'event':
        this.received += 1;
        this.events.arrived(message.event.id, at);
        this.onEvent?.(message.event.id);
        if (++this.unacknowledged >= this.ackEvery) {
          this.unacknowledged = 0;
          this.call.write({ ack: { position: message.event.position } });
        }
        return;
      case 'planAck':
        this.acks.arrived(message.planAck.nonce, { ack: message.planAck, at });
        return;
      case 'outcome':
        this.outcomes.arrived(message.outcome.planId, { outcome: message.outcome, at });
        return;
      case 'observation':
        return;
    }
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }
}

/** A consumer of one event topic that tells when each event (by its `ce_id`) was read. */
async function topicReader(kafka: Kafka, topic: string): Promise<{ arrivals: Arrivals; consumer: Consumer }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    // The publisher creates the topic with the first event of its category: the setup's workloads.
    const until = Date.now() + ANSWER_TIMEOUT_MS;
    while (!(await admin.listTopics()).includes(topic)) {
      if (Date.now() > until) throw new Error(`topic ${topic} did not appear within ${ANSWER_TIMEOUT_MS / 1000} s: is the Kafka publisher running?`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await admin.disconnect();
  }
  const arrivals = new Arrivals();
  const consumer = kafka.consumer({ groupId: `bench-link-${randomUUID()}`, maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  void consumer.run({
    eachMessage: async ({ message }) => {
      const id = headerText(message.headers, HEADERS.id);
      if (id) arrivals.arrived(id, performance.now());
    },
  });
  await within(joined, `join of the Kafka consumer group for ${topic}`);
  return { arrivals, consumer };
}

/** A workload's registration as the command handler would record it, appended straight to the store. */
function workloadRegistered(n: number): { stream: string; event: EventToAppend } {
  const workloadId = randomUUID();
  const spec = workloadBody.parse({ name: `bench-event-${n}`, namespace: 'bench-link', type: 'batch', image: 'registry.local/job:1', resources: { cpu: '100m', memory: '128Mi' } });
  const [registered] = workloads.decider.decide({ type: 'RegisterWorkload', workloadId, spec }, workloads.decider.initialState);
  return {
    stream: streamOf(workloads, workloadId),
    event: {
      id: randomUUID(),
      type: registered!.type,
      schemaVersion: workloads.events.version(registered!.type),
      data: registered!.data as Record<string, unknown>,
      metadata: { correlationId: randomUUID(), actor: { id: 'bench-link', kind: 'system' }, source: 'bench:link' },
    },
  };
}

/** The position of the last event in the log that `filter` matches. */
async function lastMatching(store: EventStore, filter: EventFilter): Promise<Position | undefined> {
  let last: Position | undefined;
  for (let after: Position | undefined; ; ) {
    const page = await store.readAll({ after, filter, limit: 5000 });
    if (page.events.length === 0) return last;
    last = page.events.at(-1)!.position;
    after = page.checkpoint;
  }
}

/**
 * Waits for the Kafka publisher to have published every domain event so far: the plans leave it a backlog, which
 * would otherwise be counted in the Kafka figures.
 */
async function kafkaPublisherCaughtUp(store: EventStore, runtime: ReactorRuntime): Promise<void> {
  const last = await lastMatching(store, { types: [...DOMAIN_EVENT_TYPES] });
  for (const until = Date.now() + 600_000; last; ) {
    const at = await runtime.checkpoint(KAFKA_PUBLISHER);
    if (at && comparePositions(at, last) >= 0) return;
    if (Date.now() > until) throw new Error(`the Kafka publisher did not reach ${last} within 10 minutes (at ${at ?? 'the start'})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The store's current end, as a read returns it: where a subscription may start. */
async function headOf(store: EventStore): Promise<Position | undefined> {
  let head: Position | undefined;
  for (;;) {
    const page = await store.readAll({ after: head, limit: 5000 });
    if (page.events.length === 0) return head;
    head = page.checkpoint;
  }
}

/** What the measurements share: the running Sentinel, signed in as admin, and InfraMind's credentials. */
interface Bench {
  store: EventStore;
  api: string;
  headers: Record<string, string>;
  client: InfraMindClient;
  token: string;
}

/** IN_FLIGHT small CPU-only inference deployments of one replica on the simulated cluster, once all are available. */
async function deployTargets({ api, headers }: Bench, post: AdminClient['post']): Promise<Target[]> {
  const targets: Target[] = [];
  for (let i = 0; i < IN_FLIGHT; i += 1) {
    const workload = await post('/workloads', { name: `bench-${i}`, namespace: 'bench-link', type: 'inference', image: 'registry.local/model:1', resources: { cpu: '100m', memory: '128Mi' } });
    const { id } = await post('/deployments', { workloadId: workload.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 });
    targets.push({ id, replicas: 1, lastPlan: Promise.resolve() });
  }
  const available = async (id: string) => {
    const res = await fetch(`${api}/deployments/${id}`, { headers });
    return res.status === 200 && ((await res.json()) as { status: string }).status === 'Available';
  };
  for (const deadline = Date.now() + 120_000; !(await Promise.all(targets.map(({ id }) => available(id)))).every(Boolean); ) {
    if (Date.now() > deadline) throw new Error('the deployments did not all become available within 2 minutes');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return targets;
}

interface Target {
  id: string;
  replicas: number;
  /** Settles once the last plan sent for this deployment has ended. */
  lastPlan: Promise<void>;
}

/**
 * 1 and 2: scale plans, each sent once the one before is acknowledged, round the targets; a plan waits for the last
 * one on its target to end, since the in-flight guardrail refuses a plan for a target whose last plan has not
 * (with one target, each plan waits for the one before to end).
 * "Applied" is the outcome EXECUTED coming back down the stream: the plan reactor completes a plan once its
 * deployment is available again at the new replica count on the simulated cluster, and this is when InfraMind
 * learns of it (later than the cluster reactor's write to the simulator, DeploymentApplied).
 */
async function measurePlans(session: LinkSession, targets: Target[]): Promise<{ ackMs: number[]; appliedMs: number[]; rejected: number }> {
  const ackMs: number[] = [];
  const appliedMs: number[] = [];
  const failed: string[] = [];
  const rejected: string[] = [];
  for (let n = 0; n < PLANS; n += 1) {
    const target = targets[n % targets.length]!;
    await target.lastPlan;
    target.replicas = target.replicas === 1 ? 2 : 1;
    const planId = randomUUID();
    const outcome = session.outcomes.expect(planId);
    const sentAt = performance.now();
    const { ack, at } = await session.submit({
      planId,
      nonce: randomUUID(),
      reason: `bench:link plan ${n}`,
      actions: [{ scale: { deploymentId: target.id, replicas: target.replicas } }],
    });
    ackMs.push(at - sentAt);
    if (ack.verdict !== 'ACCEPTED') {
      rejected.push(`plan ${n}: ${ack.violations.map((violation) => `${violation.path}: ${violation.message}`).join('; ')}`);
      target.replicas = target.replicas === 1 ? 2 : 1;
      continue;
    }
    target.lastPlan = within(outcome, `outcome of plan ${planId}`).then(
      ({ outcome: ended, at: endedAt }) => {
        if (ended.result === 'EXECUTED') appliedMs.push(endedAt - sentAt);
        else failed.push(`${planId}: ${ended.result} ${ended.cause}`);
      },
      (error: Error) => void failed.push(`${planId}: ${error.message}`),
    );
  }
  await Promise.all(targets.map(({ lastPlan }) => lastPlan));
  if (rejected.length > 0) console.warn(`plans    ${rejected.length} rejected (acknowledged, not carried out): ${rejected.slice(0, 3).join(' | ')}`);
  if (failed.length > 0) console.warn(`plans    ${failed.length} did not execute: ${failed.slice(0, 5).join('; ')}`);
  return { ackMs, appliedMs, rejected: rejected.length };
}

/**
 * 3 and 4: workload registrations appended to the store one at a time, each timed from the moment its append is
 * issued (the commit is part of it: appended means stored) to its arrival on the stream and on its Kafka topic.
 */
async function measureDelivery({ store }: Bench, session: LinkSession, kafka: Arrivals | undefined): Promise<{ deliverMs: number[]; kafkaMs: number[] }> {
  const deliverMs: number[] = [];
  const kafkaMs: number[] = [];
  for (let n = -WARM_UP_EVENTS; n < EVENTS; n += 1) {
    const { stream, event } = workloadRegistered(n);
    const delivered = session.events.expect(event.id);
    const published = kafka?.expect(event.id);
    const appendedAt = performance.now();
    await store.append(stream, [event], { expected: 'no_stream' });
    const [onLink, onKafka] = await Promise.all([
      within(delivered, `delivery of event ${event.id} on the link`),
      published && within(published, `event ${event.id} on Kafka`),
    ]);
    if (n < 0) continue;
    deliverMs.push(onLink - appendedAt);
    if (onKafka !== undefined) kafkaMs.push(onKafka - appendedAt);
  }
  return { deliverMs, kafkaMs };
}

/** 5: RESUME_EVENTS more events in the log, then a new InfraMind whose hello names the start of the log. */
async function measureResume(bench: Bench): Promise<{ events: number; seconds: number; eps: number }> {
  let last: Position | undefined;
  let lastId = '';
  const fillStarted = performance.now();
  for (let done = 0; done < RESUME_EVENTS; done += RESUME_BATCH) {
    const batch = Array.from({ length: Math.min(RESUME_BATCH, RESUME_EVENTS - done) }, (_, i) => ({
      id: randomUUID(),
      type: RESUME_EVENT_TYPE,
      data: { node: `sim-gpu-${(done + i) % 2}`, sequence: done + i, gpuUtilisation: (done + i) % 100, labels: { pool: 'bench', zone: 'local-a' } },
      metadata: { correlationId: randomUUID(), actor: { id: 'bench-link', kind: 'system' as const }, source: 'bench:link' },
    }));
    lastId = batch.at(-1)!.id;
    last = (await bench.store.append(`node-bench-link-${done / RESUME_BATCH}`, batch)).position;
  }
  console.log(`fill     ${RESUME_EVENTS} events appended in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`);
  // The audit projector reads every event: the replay starts once it has caught up, as it would on a quiet Sentinel.
  for (const until = Date.now() + 600_000; !(await auditHas(bench, last!)); ) {
    if (Date.now() > until) throw new Error('the audit projector did not reach the last appended event within 10 minutes');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const started = performance.now();
  const replay = new LinkSession(bench.client, bench.token, 'bench-inframind-resume', undefined);
  try {
    const replayedAll = new Promise<void>((resolve) => (replay.onEvent = (id) => id === lastId && resolve()));
    await within(replay.greeted, 'hello from the link for the resume');
    await within(replayedAll, `replay of ${RESUME_EVENTS} events`, 600_000);
  } finally {
    replay.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { events: replay.received, seconds, eps: Math.round(replay.received / seconds) };
}

/**
 * Whether the audit projector has applied the event at `position` (GET /projections). On a connection of its own:
 * while the projector works through a large batch on PGlite the event loop can stall past the server's keep-alive
 * timeout, and a pooled connection would then be closed under the request.
 */
async function auditHas({ api, headers }: Bench, position: Position): Promise<boolean> {
  const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
    http
      .get(`${api}/projections`, { headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve([res.statusCode ?? 0, Buffer.concat(chunks).toString()]));
        res.on('error', reject);
      })
      .on('error', reject);
  });
  if (status !== 200) throw new Error(`GET /projections answered ${status}: ${body}`);
  const { items } = JSON.parse(body) as { items: { name: string; position: Position | null }[] };
  const audit = items.find((item) => item.name === auditProjector.name);
  return audit?.position != null && comparePositions(audit.position, position) >= 0;
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-bench-link-'));
const scratch: ScratchDatabase | undefined = process.env['DATABASE_URL'] ? await createScratchDatabase(process.env['DATABASE_URL']) : undefined;
/** Topics of this run only, so that a shared broker's other topics are never read or deleted. */
const topicPrefix = `bench-link-${randomBytes(4).toString('hex')}`;
const sentinel = await startSentinel(
  loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    TELEMETRY_GRPC_PORT: '0',
    INFRAMIND_GRPC_PORT: '0',
    SENTINEL_DATA_DIR: dataDir,
    ...(scratch ? { DATABASE_URL: scratch.url } : {}),
    ...(KAFKA_BROKERS ? { KAFKA_BROKERS, KAFKA_TOPIC_PREFIX: topicPrefix } : {}),
    SENTINEL_ROLE: 'api,projector,reactor,inframind',
    SENTINEL_CLUSTER_SIMULATOR: 'on',
    // The rate guardrail would refuse most of a benchmark's plans; the bench measures plans that are judged and taken.
    INFRAMIND_PLANS_PER_MINUTE: '100000',
    SENTINEL_ADMIN_PASSWORD: PASSWORD,
    SENTINEL_JWT_SECRET: 'b'.repeat(48),
    LOG_LEVEL: 'error',
  }),
  pino({ level: 'error' }),
);

let plans: { ackMs: number[]; appliedMs: number[]; rejected: number } | undefined;
let delivery: { deliverMs: number[]; kafkaMs: number[] } | undefined;
let resume: { events: number; seconds: number; eps: number } | undefined;
let kafka: { client: Kafka; consumer: Consumer; arrivals: Arrivals } | undefined;
let client: InfraMindClient | undefined;
try {
  const { api, headers, post } = await adminClient(sentinel.port, PASSWORD);
  const { token } = (await post('/service-accounts', { name: 'inframind' })) as { id: string; token: string };
  client = inframindClient(`127.0.0.1:${sentinel.inframindPort!}`);
  const bench: Bench = { store: sentinel.eventStore, api, headers, client, token };

  const targets = await deployTargets(bench, post);
  console.log(`setup    ${IN_FLIGHT} deployments available on the simulated cluster; store ${scratch ? 'postgresql' : 'pglite'}`);
  const session = new LinkSession(client, token, 'bench-inframind', await headOf(bench.store));
  await within(session.greeted, 'hello from the link');
  plans = await measurePlans(session, targets);

  if (KAFKA_BROKERS) {
    const kafkaClient = createKafka({ brokers: parseBrokers(KAFKA_BROKERS), clientId: 'bench-link' });
    // The topic every workload stream goes to.
    kafka = { client: kafkaClient, ...(await topicReader(kafkaClient, topicOf(streamOf(workloads, 'any'), topicPrefix))) };
    await kafkaPublisherCaughtUp(bench.store, sentinel.reactors!.runtime);
  } else {
    console.log('kafka    skipped: KAFKA_BROKERS is not set (kafka_p99_ms: null)');
  }
  delivery = await measureDelivery(bench, session, kafka?.arrivals);
  session.close();

  if (RESUME_EVENTS > 0) resume = await measureResume(bench);
} finally {
  client?.close();
  if (kafka) {
    await kafka.consumer.disconnect();
    const admin = kafka.client.admin();
    await admin.connect();
    const topics = (await admin.listTopics()).filter((topic) => isEventTopic(topic, topicPrefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    await admin.disconnect();
  }
  await sentinel.stop();
  await rm(dataDir, { recursive: true, force: true });
  await scratch?.drop();
}

const { ackMs, appliedMs, rejected } = plans!;
const { deliverMs, kafkaMs } = delivery!;
const ack = summary(ackMs);
const applied = summary(appliedMs);
const deliver = summary(deliverMs);
const onKafka = summary(kafkaMs);
console.log(`ack      ${ackMs.length} plans (${rejected} rejected): p50 ${ack.p50} ms, p99 ${ack.p99} ms (target p99 < 30 ms)`);
console.log(`applied  ${appliedMs.length} plans executed: p50 ${applied.p50} ms, p99 ${applied.p99} ms (target p99 < 1000 ms)`);
console.log(`deliver  ${deliverMs.length} events: p50 ${deliver.p50} ms, p99 ${deliver.p99} ms (target p99 < 100 ms)`);
if (KAFKA_BROKERS) console.log(`kafka    ${kafkaMs.length} events: p50 ${onKafka.p50} ms, p99 ${onKafka.p99} ms (target p99 < 100 ms)`);
if (resume) console.log(`resume   ${resume.events} events from the start of the log in ${resume.seconds.toFixed(2)} s: ${resume.eps} events/s (target >= 20000)`);
console.log(
  JSON.stringify({
    bench: 'link',
    store: scratch ? 'postgresql' : 'pglite',
    plans: ackMs.length,
    in_flight: IN_FLIGHT,
    rejected,
    ack_p50_ms: ack.p50,
    ack_p99_ms: ack.p99,
    applied_p50_ms: applied.p50,
    applied_p99_ms: applied.p99,
    deliver_p50_ms: deliver.p50,
    deliver_p99_ms: deliver.p99,
    kafka_p50_ms: onKafka.p50,
    kafka_p99_ms: onKafka.p99,
    resume_events: resume?.events ?? null,
    resume_eps: resume?.eps ?? null,
  }),
);
