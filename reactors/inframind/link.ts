// The InfraMind link (proto/inframind.proto): one authenticated gRPC stream per InfraMind identity, carrying domain
// events down from the position InfraMind names, within a bounded window of unacknowledged events, and plan
// submissions up, each answered with one acknowledgement matched by its nonce.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CallRefused, serviceAccountOf } from '../../adapters/grpc/grpc-common.js';
import { contextFrom, currentOr, inSpan, SpanKind, traceparentOf } from '../../adapters/tracing.js';
import {
  inframindService,
  type InfraMindHello,
  type InfraMindMessage,
  type LinkEvent,
  type PlanSubmission,
  type SentinelMessage,
} from '../../adapters/grpc/inframind-proto.js';
import type { CommandHandler } from '../../commands/command-handler.js';
import type { Principal } from '../../domain/access.js';
import { InvalidEventStoreRequest, type EventStore, type Position, type RecordedEvent, type Subscription } from '../../domain/event-store.js';
import { DeliveryWindow, InvalidAcknowledgement } from './delivery-window.js';
import type { Guardrails } from './guardrails.js';
import type { ObservationSource } from './observations.js';
import { planOutcome } from './outcomes.js';
import type { PlanIntake } from './plan-intake.js';

export interface InframindLinkOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  store: EventStore;
  /** Where plan submissions go (`ActionPlanCommands.submit`, source `inframind`). */
  intake: PlanIntake;
  /** Reads an ended plan's source, so outcomes go down for InfraMind's plans only. */
  handler: CommandHandler;
  /** Resolves a bearer token to its principal; rejects when the token is not valid. */
  authenticate(token: string): Promise<Principal>;
  /** Events sent and not yet acknowledged before sending stops (INFRAMIND_MAX_UNACKED). */
  maxUnacknowledged: number;
  /** Interval of HTTP/2 keepalive pings to InfraMind, so a dead peer is noticed on an idle link (default 30 s). */
  keepaliveMs?: number;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** The guardrails the intake judges with: told of every observation sent, and following every plan stream from the start. */
  guardrails?: Guardrails;
  /** Observations sent to every session every `intervalMs` (default 30 s), at most `maxPoints` (default 1,000) per message. */
  observations?: { source: ObservationSource; intervalMs?: number; maxPoints?: number };
  logger: Logger;
  /** How long stop() waits for sessions to finish the message in hand before forcing the server down (default 5 s). */
  shutdownTimeoutMs?: number;
  /** Wrapped around every call (the gRPC RED metrics of app/inframind.ts). */
  interceptors?: grpc.ServerInterceptor[];
}

export interface RunningInframindLink {
  port: number;
  /** InfraMind identities with a session now. */
  sessions(): string[];
  /** Takes an observation now and sends it to every session, as the interval does. */
  observeNow(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The streams whose events go down to InfraMind: the fleet, its workloads and changes, and decisions. Accounts,
 * claims and internal bookkeeping stay inside Sentinel.
 */
export const LINKED_STREAM_PREFIXES = ['cluster-', 'workload-', 'deployment-', 'plan-', 'node-', 'policyset-', 'autonomy-'];

/** Messages read ahead of the one being handled before reading pauses (HTTP/2 flow control then holds InfraMind). */
const READ_AHEAD = 8;
const DEFAULT_KEEPALIVE_MS = 30_000;
const DEFAULT_OBSERVATION_INTERVAL_MS = 30_000;
const DEFAULT_OBSERVATION_POINTS = 1_000;
/** How long a keepalive ping may go unanswered before the connection is closed. */
const KEEPALIVE_TIMEOUT_MS = 10_000;

export async function startInframindLink(options: InframindLinkOptions): Promise<RunningInframindLink> {
  // Checked here, so that a bad setting fails start-up rather than the first session.
  new DeliveryWindow(options.maxUnacknowledged, undefined);
  const sessions = new Map<string, Session>();
  const streams = new Set<Session>();
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    interceptors: options.interceptors ?? [],
  });
  const claim = (id: string, session: Session) => {
    const previous = sessions.get(id);
    sessions.set(id, session);
    previous?.replaced();
    void session.finished.then(() => {
      if (sessions.get(id) === session) sessions.delete(id);
    });
  };
  server.addService(inframindService, {
    connect(call: grpc.ServerDuplexStream<InfraMindMessage, SentinelMessage>) {
      const session = new Session(call, options, claim);
      streams.add(session);
      void session.finished.then(() => streams.delete(session));
    },
  });
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(options.tls.cert), private_key: Buffer.from(options.tls.key) }])
    : grpc.ServerCredentials.createInsecure();
  const port = await bind(server, `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`, credentials);
  options.logger.info({ host: options.host, port, maxUnacknowledged: options.maxUnacknowledged }, 'inframind link is listening');

  let observationSequence = 0;
  const observeNow = async () => {
    if (!options.observations) return;
    const observed = await options.observations.source.observe(new Date());
    const maxPoints = options.observations.maxPoints ?? DEFAULT_OBSERVATION_POINTS;
    const messages: SentinelMessage[] = [];
    // A large fleet goes down in several messages, each a whole observation of its own points.
    for (let from = 0; from === 0 || from < observed.points.length; from += maxPoints) {
      options.guardrails?.observed(observationSequence + 1, observed.observedAt.getTime());
      messages.push({
        body: 'observation',
        observation: {
          sequence: ++observationSequence,
          observedAtUnixMs: observed.observedAt.getTime(),
          points: observed.points.slice(from, from + maxPoints),
          fleetCostMicroUsdPerHour: observed.fleetCostMicroUsdPerHour,
        },
      });
    }
    for (const session of sessions.values()) session.observe(messages);
  };
  const observing = options.observations
    ? setInterval(() => {
        observeNow().catch((error: unknown) => options.logger.error({ err: error }, 'observing the fleet for inframind failed'));
      }, options.observations.intervalMs ?? DEFAULT_OBSERVATION_INTERVAL_MS).unref()
    : undefined;

  const plans = options.guardrails ? followPlans(options.store, options.guardrails, options.logger) : undefined;

  return {
    port,
    sessions: () => [...sessions.keys()],
    observeNow,
    async stop() {
      clearInterval(observing);
      await plans?.close();
      const timeoutMs = options.shutdownTimeoutMs ?? 5_000;
      const ended = Promise.all([...streams].map((session) => session.close()));
      if (!(await within(ended, timeoutMs))) options.logger.warn('inframind sessions did not finish in time; forcing them closed');
      const shutdown = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      if (!(await within(shutdown, timeoutMs))) server.forceShutdown();
    },
  };
}

/** A status the stream ends with. */
class StreamEnd {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {}
}

/**
 * One InfraMind connection. Incoming messages are handled strictly in order on a promise chain; events go down from
 * a subscription on their own loop, which waits for room in the delivery window and for the transport to drain.
 */
class Session {
  /** Resolves once the stream has ended, however it ended. */
  readonly finished: Promise<void>;
  private readonly id = randomUUID();
  private chain: Promise<void> = Promise.resolve();
  private waiting = 0;
  private principal: Principal | undefined;
  private hello: InfraMindHello | undefined;
  private window: DeliveryWindow | undefined;
  private subscription: Subscription | undefined;
  private closing = false;
  private ended = false;
  private resolveFinished!: () => void;
  /** The newest observation not yet sent; a newer one replaces it, so a slow InfraMind never holds a backlog of them. */
  private pendingObservation: SentinelMessage[] | undefined;
  private sendingObservation = false;

  constructor(
    private readonly call: grpc.ServerDuplexStream<InfraMindMessage, SentinelMessage>,
    private readonly context: InframindLinkOptions,
    private readonly claim: (inframindId: string, session: Session) => void,
  ) {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    void this.run(() => this.authenticate());
    call.on('data', (message: InfraMindMessage) => this.receive(message));
    call.on('end', () => void this.run(async () => this.end()));
    call.on('cancelled', () => this.end());
    call.on('error', () => this.end());
  }

  /** Sentinel is shutting down: the message in hand is finished, then the stream ends UNAVAILABLE. */
  close(): Promise<void> {
    this.closing = true;
    this.call.pause();
    void this.chain.then(() => this.end(new StreamEnd(grpc.status.UNAVAILABLE, 'sentinel is shutting down; reconnect and resume')));
    return this.finished;
  }

  /** A newer connection of the same InfraMind took over. */
  replaced(): void {
    this.end(new StreamEnd(grpc.status.ABORTED, `a newer connection of InfraMind ${this.hello?.inframindId ?? ''} replaced this one`));
  }

  /** Sends the observation once the one before it is out; one that is still waiting is replaced by it. */
  observe(messages: SentinelMessage[]): void {
    if (!this.window || this.ended) return;
    this.pendingObservation = messages;
    if (!this.sendingObservation) void this.sendObservations();
  }

  private async sendObservations(): Promise<void> {
    this.sendingObservation = true;
    for (let next = this.pendingObservation; next; next = this.pendingObservation) {
      this.pendingObservation = undefined;
      for (const message of next) await this.send(message);
    }
    this.sendingObservation = false;
  }

  private receive(message: InfraMindMessage): void {
    if (++this.waiting >= READ_AHEAD) this.call.pause();
    void this.run(async () => {
      this.waiting--;
      if (!this.closing) this.call.resume();
      await this.handle(message);
    });
  }

  private run(step: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (this.ended || this.closing) return;
      try {
        await step();
      } catch (error) {
        this.end(this.statusOf(error));
      }
    });
    return this.chain;
  }

  private async authenticate(): Promise<void> {
    try {
      this.principal = await serviceAccountOf(this.call.metadata, this.context.authenticate, 'connect as InfraMind');
    } catch (error) {
      if (error instanceof CallRefused) throw new StreamEnd(error.code, error.details);
      throw error;
    }
  }

  private async handle(message: InfraMindMessage): Promise<void> {
    if (message.body === 'hello') return this.onHello(message.hello);
    if (!this.hello || !this.window) throw new StreamEnd(grpc.status.INVALID_ARGUMENT, 'the first message must be a hello');
    if (message.body === 'ack') return this.window.acknowledge(message.ack.position);
    if (message.body === 'plan') return this.onPlan(message.plan);
    throw new StreamEnd(grpc.status.INVALID_ARGUMENT, 'a message with none of hello, plan, ack set');
  }

  /**
   * A plan submission, in a span of its own that the plan's events continue: a child of the `traceparent` InfraMind
   * sent with the stream's metadata, when it sent one.
   */
  private onPlan(plan: PlanSubmission): Promise<void> {
    const traceparent = this.call.metadata.get('traceparent')[0];
    const attributes = { 'sentinel.plan.id': plan.planId, 'sentinel.inframind.id': this.hello!.inframindId };
    return inSpan('inframind plan', { kind: SpanKind.SERVER, parent: currentOr(typeof traceparent === 'string' ? traceparent : undefined), attributes }, async (span) => {
      const ack = await this.context.intake.submit(plan, this.principal!);
      span.setAttribute('sentinel.plan.verdict', ack.verdict);
      await this.send({ body: 'planAck', planAck: ack });
    });
  }

  private async onHello(hello: InfraMindHello): Promise<void> {
    if (this.hello) throw new StreamEnd(grpc.status.INVALID_ARGUMENT, 'only the first message may be a hello');
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(hello.inframindId)) {
      throw new StreamEnd(grpc.status.INVALID_ARGUMENT, 'hello.inframindId: 1 to 128 letters, digits, ".", "_", ":" or "-", naming this InfraMind instance');
    }
    const resumeAfter: Position | undefined = hello.resumeAfter === '' ? undefined : hello.resumeAfter;
    // Opened before the hello is answered, so a position this store cannot read refuses the stream at once.
    this.subscription = this.context.store.subscribe({
      ...(resumeAfter === undefined ? {} : { after: resumeAfter }),
      filter: { streamPrefixes: LINKED_STREAM_PREFIXES },
    });
    this.hello = hello;
    this.window = new DeliveryWindow(this.context.maxUnacknowledged, resumeAfter);
    this.claim(hello.inframindId, this);
    this.context.logger.info({ inframindId: hello.inframindId, session: this.id, resumeAfter }, 'inframind connected');
    await this.send({ body: 'hello', hello: { sessionId: this.id, resumeAfter: hello.resumeAfter, maxUnacknowledged: this.context.maxUnacknowledged } });
    void this.pump(this.subscription, this.window);
  }

  /** Sends every linked event after the resume point, in order, never more than the window holds unacknowledged. */
  private async pump(subscription: Subscription, window: DeliveryWindow): Promise<void> {
    try {
      for await (const event of subscription) {
        await window.room();
        if (this.ended) return;
        window.sent(event.position);
        // A plan that ended lets go of its targets no later than InfraMind hears of it.
        this.context.guardrails?.ended(event);
        await this.deliver(event);
      }
    } catch (error) {
      this.end(this.statusOf(error));
    }
  }

  /**
   * One event down to InfraMind, and the outcome of the plan it ended: in a span that continues the event's trace,
   * and that the message names as its `traceparent` (as a Kafka message names its send span).
   */
  private deliver(event: RecordedEvent): Promise<void> {
    const attributes = { 'sentinel.event.id': event.id, 'sentinel.event.type': event.type, 'sentinel.inframind.id': this.hello!.inframindId };
    return inSpan(`inframind send ${event.type}`, { kind: SpanKind.PRODUCER, parent: contextFrom(event.metadata.traceparent), attributes }, async (span) => {
      await this.send({ body: 'event', event: toLinkEvent(event, traceparentOf(span)) });
      const outcome = await planOutcome(event, this.context.handler);
      if (outcome) await this.send({ body: 'outcome', outcome });
    });
  }

  /** Writes one message, waiting while the transport's buffer is full: nothing is queued without bound. */
  private async send(message: SentinelMessage): Promise<void> {
    if (this.ended) return;
    if (this.call.write(message)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.call.off('drain', done);
        resolve();
      };
      this.call.on('drain', done);
      void this.finished.then(done);
    });
  }

  private statusOf(error: unknown): StreamEnd {
    if (error instanceof StreamEnd) return error;
    if (error instanceof InvalidAcknowledgement) return new StreamEnd(grpc.status.INVALID_ARGUMENT, error.message);
    if (error instanceof InvalidEventStoreRequest) {
      return new StreamEnd(grpc.status.INVALID_ARGUMENT, `hello.resumeAfter: ${error.message}`);
    }
    this.context.logger.error({ err: error, inframindId: this.hello?.inframindId, session: this.id }, 'inframind session failed');
    return new StreamEnd(grpc.status.UNAVAILABLE, 'sentinel could not serve the session; reconnect and resume');
  }

  /** Ends the stream once: OK without a status, otherwise with it. */
  private end(status?: StreamEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.window?.close();
    void this.subscription?.close();
    if (status && status.code !== grpc.status.UNAVAILABLE) {
      this.context.logger.warn({ inframindId: this.hello?.inframindId, session: this.id, code: grpc.status[status.code], details: status.details }, 'inframind session ended');
    }
    if (!this.call.cancelled) {
      if (status) this.call.emit('error', { code: status.code, details: status.details });
      else this.call.end();
    }
    this.resolveFinished();
  }
}

/** Feeds every plan event, from the start of the log and then live, to the guardrails' view of plans in flight. */
function followPlans(store: EventStore, guardrails: Guardrails, logger: Logger): Subscription {
  const subscription = store.subscribe({ filter: { streamPrefixes: ['plan-'] } });
  void (async () => {
    try {
      for await (const event of subscription) guardrails.follow(event);
    } catch (error) {
      logger.error({ err: error }, 'following plans for the inframind guardrails failed; plans in flight are no longer seen');
    }
  })();
  return subscription;
}

function toLinkEvent(event: RecordedEvent, traceparent: string | undefined): LinkEvent {
  return {
    position: event.position,
    id: event.id,
    stream: event.stream,
    type: event.type,
    schemaVersion: event.schemaVersion,
    revision: event.revision,
    recordedAtUnixMs: event.recordedAt.getTime(),
    dataJson: JSON.stringify(event.data),
    correlationId: event.metadata.correlationId ?? '',
    traceparent: traceparent ?? '',
  };
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, credentials, (error, port) => (error ? reject(new Error(`inframind link cannot listen on ${address}: ${error.message}`)) : resolve(port))),
  );
}

/** True when `promise` settled within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
