// The telemetry ingest: node agents push batches over gRPC (proto/telemetry.proto); each stream is authenticated
// once, opened by a hello answered with the agent's high-water mark, and each batch is validated, stored exactly
// once and acknowledged after its commit. The store's rollups are flushed on a timer and when the ingest stops.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { CallRefused, serviceAccountOf } from '../adapters/grpc/grpc-common.js';
import { telemetryService, type Batch, type Hello, type IngestMessage, type ReceivedAgentMessage } from '../adapters/grpc/telemetry-proto.js';
import { systemClock, type Clock } from '../commands/clock.js';
import type { Principal } from '../domain/access.js';
import { InvalidTelemetry, validateBatch, validateHello } from './batch-validation.js';
import { ingestMetrics, type IngestMetrics, type RefusalReason } from './ingest-metrics.js';

/** Where batches are stored; implemented by SampleStore. */
export interface BatchStore {
  /** How old a sample may be when it arrives. */
  readonly sampleRetentionMs: number;
  /** Records the hello, takes the agent's stream for this process, and answers the highest sequence stored for it (0 when none). */
  hello(hello: Hello, at: Date): Promise<number>;
  /**
   * Stores the batch in one transaction with the raised high-water mark, unless it was stored before. Throws
   * AgentNotHeld when another process has taken the agent's stream since this one's hello.
   */
  store(batch: Batch, receivedAt: Date): Promise<StoreOutcome>;
  /** Writes what the stored batches added to the rollups since the last flush; a store that keeps no rollups in the process has none. */
  flushRollups?(): Promise<void>;
  /** Creates partitions ahead, drops expired ones, and rolls up what agents that went silent left behind. */
  maintain(now: Date): Promise<unknown>;
}

/** The agent said hello to another ingest process (or its stream here failed) after this stream's hello. */
export class AgentNotHeld extends Error {
  constructor(readonly agentId: string) {
    super(`telemetry agent ${agentId} no longer streams to this ingest process (a newer stream took it over); reconnect and say hello`);
    this.name = 'AgentNotHeld';
  }
}

export type StoreOutcome =
  | { stored: true; acknowledged: number; /** Samples the agent dropped since its previous stored batch. */ droppedIncrease: number }
  | { stored: false; /** The agent's high-water mark, at or above the batch's sequence. */ acknowledged: number };

/** Told of each newly stored batch (never of an ignored resend), after its commit and its acknowledgement. */
export interface StoredBatchListener {
  batchStored(batch: Batch, receivedAt: Date): Promise<void>;
}

export interface TelemetryIngestOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  store: BatchStore;
  /** Resolves a bearer token to its principal; rejects when the token is not valid. */
  authenticate(token: string): Promise<Principal>;
  tls?: { cert: string | Buffer; key: string | Buffer };
  listener?: StoredBatchListener;
  metrics: Registry;
  /** Wrapped around every call (the gRPC RED metrics of app/telemetry.ts). */
  interceptors?: grpc.ServerInterceptor[];
  logger: Logger;
  clock?: Clock;
  /** How long stop() waits for batches being stored before it forces the server down (default 5 s). */
  shutdownTimeoutMs?: number;
  /** How often the store's accumulated rollups are written (default 2 s): how far the rollups may trail the samples. */
  rollupFlushMs?: number;
}

export interface RunningTelemetryIngest {
  port: number;
  stop(): Promise<void>;
}

/** How often the store's partitions are created ahead and expired ones dropped. */
const MAINTENANCE_INTERVAL_MS = 3_600_000;
/** Rollups every couple of seconds: fresh enough for the fleet endpoints, and a few dozen batches of a series per upsert. */
export const DEFAULT_ROLLUP_FLUSH_MS = 2_000;
/** Batches read ahead of the one being stored on a stream, before the stream is paused (HTTP/2 flow control then holds the agent). */
const READ_AHEAD = 8;

/**
 * Starts the ingest; its store's maintenance runs once before the port opens, then hourly, and its rollups are
 * flushed every `rollupFlushMs`.
 */
export async function startTelemetryIngest(options: TelemetryIngestOptions): Promise<RunningTelemetryIngest> {
  const clock = options.clock ?? systemClock;
  const metrics = ingestMetrics(options.metrics);
  await options.store.maintain(clock.now());
  const maintenance = setInterval(() => {
    options.store.maintain(clock.now()).catch((error: unknown) => {
      options.logger.error({ err: error }, 'telemetry partition maintenance failed');
    });
  }, MAINTENANCE_INTERVAL_MS).unref();
  // A tick that finds the previous flush still running skips: flushes do not queue up behind a slow database. A
  // failed flush keeps its rollups for the next one.
  let flushing = false;
  const flushes = setInterval(() => {
    if (flushing || !options.store.flushRollups) return;
    flushing = true;
    options.store
      .flushRollups()
      .catch((error: unknown) => options.logger.error({ err: error }, 'flushing telemetry rollups failed; they are kept for the next flush'))
      .finally(() => (flushing = false));
  }, options.rollupFlushMs ?? DEFAULT_ROLLUP_FLUSH_MS).unref();
  const stopTimers = () => {
    clearInterval(maintenance);
    clearInterval(flushes);
  };

  const streams = new Set<PushStream>();
  const server = new grpc.Server({ interceptors: options.interceptors ?? [] });
  server.addService(telemetryService, {
    push(call: grpc.ServerDuplexStream<ReceivedAgentMessage, IngestMessage>) {
      const stream = new PushStream(call, { ...options, clock, metrics });
      streams.add(stream);
      void stream.finished.then(() => streams.delete(stream));
    },
  });
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(options.tls.cert), private_key: Buffer.from(options.tls.key) }])
    : grpc.ServerCredentials.createInsecure();
  let port: number;
  try {
    port = await bind(server, `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`, credentials);
  } catch (error) {
    stopTimers();
    throw error;
  }
  options.logger.info({ host: options.host, port }, 'telemetry ingest is listening');

  return {
    port,
    async stop() {
      stopTimers();
      const timeoutMs = options.shutdownTimeoutMs ?? 5_000;
      // Streams finish the batch in hand (so its acknowledgement goes out), then end UNAVAILABLE: agents reconnect.
      const ended = Promise.all([...streams].map((stream) => stream.close()));
      if (!(await within(ended, timeoutMs))) options.logger.warn('telemetry streams did not finish in time; forcing them closed');
      const shutdown = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      if (!(await within(shutdown, timeoutMs))) server.forceShutdown();
      // What is not flushed now is rolled up again from the samples by whichever process the agents go to next.
      await options.store.flushRollups?.().catch((error: unknown) => {
        options.logger.error({ err: error }, 'flushing telemetry rollups at stop failed; they will be rolled up from the samples');
      });
    },
  };
}

interface StreamContext extends Omit<TelemetryIngestOptions, 'metrics'> {
  clock: Clock;
  metrics: IngestMetrics;
}

/** A status the stream ends with, and the refusal it is counted as (none for the ingest's own failures). */
class StreamEnd {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly reason?: RefusalReason,
  ) {}
}

/**
 * One agent's stream. Messages are handled strictly one after another on a promise chain; reading pauses while
 * READ_AHEAD of them wait, so a fast agent cannot fill the ingest's memory.
 */
class PushStream {
  /** Resolves once the stream has ended, however it ended. */
  readonly finished: Promise<void>;
  private chain: Promise<void> = Promise.resolve();
  private waiting = 0;
  private hello: Hello | undefined;
  /** Set by close(): messages not yet handled are left for the agent to resend. */
  private closing = false;
  private ended = false;
  private resolveFinished!: () => void;

  constructor(
    private readonly call: grpc.ServerDuplexStream<ReceivedAgentMessage, IngestMessage>,
    private readonly context: StreamContext,
  ) {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    void this.run(() => this.authenticate());
    call.on('data', (message: ReceivedAgentMessage) => this.receive(message));
    // The agent half-closed: what it sent is handled, then the stream ends OK.
    call.on('end', () => void this.run(async () => this.end()));
    call.on('cancelled', () => this.end());
    call.on('error', () => this.end());
  }

  /** Stops taking messages; the one being handled finishes first, then the stream ends UNAVAILABLE. */
  close(): Promise<void> {
    this.closing = true;
    this.call.pause();
    void this.chain.then(() => this.end(new StreamEnd(grpc.status.UNAVAILABLE, 'the telemetry ingest is shutting down; reconnect')));
    return this.finished;
  }

  private receive(message: ReceivedAgentMessage): void {
    if (++this.waiting >= READ_AHEAD) this.call.pause();
    void this.run(async () => {
      this.waiting--;
      if (!this.closing) this.call.resume();
      await this.handle(message);
    });
  }

  /** Queues `step` after everything before it; a step that throws ends the stream with the matching status. */
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
      await serviceAccountOf(this.call.metadata, this.context.authenticate, 'push telemetry');
    } catch (error) {
      if (error instanceof CallRefused) throw new StreamEnd(error.code, error.details, error.reason);
      throw error;
    }
  }

  private async handle(message: ReceivedAgentMessage): Promise<void> {
    // Refused in its turn: the batches before it are stored and acknowledged, so an agent drops the right one.
    if (message.body === 'unreadable') {
      throw new StreamEnd(grpc.status.INVALID_ARGUMENT, `the message is not a valid AgentMessage (proto/telemetry.proto): ${message.error}`, 'protocol');
    }
    if (message.body === 'hello') return this.onHello(message.hello);
    if (!this.hello) throw new StreamEnd(grpc.status.INVALID_ARGUMENT, 'the first message must be a hello', 'protocol');
    return this.onBatch(message.batch, this.hello);
  }

  private async onHello(input: Hello): Promise<void> {
    if (this.hello) throw new StreamEnd(grpc.status.INVALID_ARGUMENT, 'only the first message may be a hello', 'protocol');
    const hello = validateHello(input);
    const acknowledged = await this.context.store.hello(hello, this.context.clock.now());
    this.hello = hello;
    this.context.metrics.agentConnected();
    this.context.logger.debug({ agentId: hello.agentId, nodeName: hello.nodeName, acknowledged }, 'telemetry agent said hello');
    this.acknowledge(hello.agentId, acknowledged);
  }

  private async onBatch(input: Batch, hello: Hello): Promise<void> {
    const { metrics, clock, store } = this.context;
    metrics.batchReceived();
    const receivedAt = clock.now();
    const batch = validateBatch(input, { hello, nowMs: receivedAt.getTime(), retentionMs: store.sampleRetentionMs });
    const started = performance.now();
    const outcome = await store.store(batch, receivedAt);
    const seconds = (performance.now() - started) / 1000;
    if (!outcome.stored) {
      metrics.batchDuplicate(seconds);
      this.acknowledge(batch.agentId, outcome.acknowledged);
      return;
    }
    metrics.batchStored(batch.samples.length, seconds);
    metrics.samplesLag(batch.samples, clock.now().getTime());
    metrics.agentDropped(outcome.droppedIncrease);
    this.acknowledge(batch.agentId, outcome.acknowledged);
    await this.tellListener(batch, receivedAt);
  }

  private async tellListener(batch: Batch, receivedAt: Date): Promise<void> {
    if (!this.context.listener) return;
    try {
      await this.context.listener.batchStored(batch, receivedAt);
    } catch (error) {
      this.context.metrics.listenerFailed();
      this.context.logger.error({ err: error, agentId: batch.agentId, sequence: batch.sequence }, 'the stored-batch listener failed');
    }
  }

  /** Not awaited: an ack on a stream that is gone is lost, and the agent resends what it did not see acknowledged. */
  private acknowledge(agentId: string, acknowledgedSequence: number): void {
    if (!this.ended) this.call.write({ body: 'ack', ack: { agentId, acknowledgedSequence } });
  }

  private statusOf(error: unknown): StreamEnd {
    if (error instanceof StreamEnd) return error;
    if (error instanceof AgentNotHeld) {
      this.context.logger.info({ agentId: error.agentId }, 'telemetry stream ended: the agent streams to another ingest process now');
      return new StreamEnd(grpc.status.ABORTED, error.message);
    }
    if (error instanceof InvalidTelemetry) {
      return new StreamEnd(grpc.status.INVALID_ARGUMENT, error.message, this.hello ? 'invalid_batch' : 'invalid_hello');
    }
    this.context.metrics.storeFailed();
    this.context.logger.error({ err: error, agentId: this.hello?.agentId }, 'storing telemetry failed');
    return new StreamEnd(grpc.status.UNAVAILABLE, 'the telemetry ingest could not store the batch; resend it later');
  }

  /** Ends the stream once: OK without a status, otherwise with it (and counts a refusal). */
  private end(status?: StreamEnd): void {
    if (this.ended) return;
    this.ended = true;
    if (this.hello) this.context.metrics.agentDisconnected();
    if (status?.reason) {
      this.context.metrics.refused(status.reason);
      this.context.logger.warn({ agentId: this.hello?.agentId, peer: this.call.getPeer(), reason: status.reason, details: status.details }, 'telemetry stream refused');
    }
    if (!this.call.cancelled) {
      if (status) this.call.emit('error', { code: status.code, details: status.details });
      else this.call.end();
    }
    this.resolveFinished();
  }
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, credentials, (error, port) => (error ? reject(new Error(`telemetry ingest cannot listen on ${address}: ${error.message}`)) : resolve(port))),
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
