// The push to Sentinel: one `Push` stream at a time, batches written and resent until acknowledged, reconnects with backoff.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { telemetryService, type Ack, type AgentMessageOut, type IngestMessage } from '../adapters/grpc/telemetry-proto.js';
import { BatchBuffer } from './batch-buffer.js';
import type { Sample } from './collector.js';
import { encodeAgentMessage } from './message-encoder.js';
import type { AgentMetrics } from './metrics.js';

export interface PushOptions {
  /** host:port of Sentinel's telemetry service. */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** The service-account token, asked for on every connect (a token file may have been rotated). */
  token: () => Promise<string>;
  agentId: string;
  nodeName: string;
  clusterId: string;
  agentVersion: string;
  bufferSamples: number;
  batchMaxSamples: number;
  batchMaxSeconds: number;
  metrics: AgentMetrics;
  logger: Logger;
  /** Reconnect delays: from `initialDelayMs`, doubling, never above `maxDelayMs` (500 ms and 30 s unless a test says). */
  reconnect?: { initialDelayMs: number; maxDelayMs: number };
  now?: () => number;
}

const DEFAULT_RECONNECT = { initialDelayMs: 500, maxDelayMs: 30_000 };
/** Each delay varies by up to this fraction either way, so that agents restarted together do not reconnect together. */
const JITTER = 0.2;

/** The Push method: its path and the acknowledgements' decoder from the contract; the agent's messages are written by encodeAgentMessage. */
const PUSH = telemetryService['Push']!;

/** Codes that say something about this agent's setup or data, not the network: logged as errors, not warnings. */
const REFUSALS: Partial<Record<grpc.status, string>> = {
  [grpc.status.UNAUTHENTICATED]: 'Sentinel refused the token (UNAUTHENTICATED): check AGENT_TOKEN or AGENT_TOKEN_FILE',
  [grpc.status.PERMISSION_DENIED]: 'Sentinel refused this service account (PERMISSION_DENIED): it needs the system role',
  [grpc.status.INVALID_ARGUMENT]: 'Sentinel refused what the agent sent (INVALID_ARGUMENT)',
};

/**
 * Sends collected samples to Sentinel and keeps them until Sentinel says it has stored them. The protocol
 * (proto/telemetry.proto): Hello, then the server's Ack of the highest sequence it holds for this agent; the
 * agent drops what that covers, resends the rest in order with the numbers they had, then writes each batch as it
 * closes. A stream that ends for any reason is opened again after a backoff; a batch the server refuses as invalid
 * (INVALID_ARGUMENT after the greeting: the server stores in order, so it is the oldest one written and not yet
 * acknowledged) is dropped and counted, never sent again.
 */
export class TelemetryPush {
  private readonly buffer: BatchBuffer;
  private readonly client: grpc.Client;
  private readonly backoff: grpc.experimental.BackoffTimeout;
  private readonly now: () => number;
  private call: grpc.ClientDuplexStream<AgentMessageOut, IngestMessage> | undefined;
  /** Whether the current stream's Hello has been answered: only then are batches written. */
  private greeted = false;
  /** The highest sequence written on the current stream (or acknowledged by its greeting). */
  private lastWritten = 0;
  private batchTimer: NodeJS.Timeout | undefined;
  /** The last way the stream ended, so that a failure repeated at every reconnect is logged once. */
  private lastEnd: string | undefined;
  private stopped = false;

  constructor(private readonly options: PushOptions) {
    const reconnect = options.reconnect ?? DEFAULT_RECONNECT;
    this.now = options.now ?? Date.now;
    this.buffer = new BatchBuffer({ capacity: options.bufferSamples, batchMaxSamples: options.batchMaxSamples });
    // The channel's own reconnects follow the same pace: a call made while it waits fails at once (no waitForReady).
    this.client = new grpc.Client(options.address, options.credentials, {
      'grpc.initial_reconnect_backoff_ms': reconnect.initialDelayMs,
      'grpc.max_reconnect_backoff_ms': reconnect.maxDelayMs,
      // A peer gone without a FIN (a node cut off) is noticed within about a minute and a half, not TCP's quarter hour.
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_timeout_ms': 20_000,
    });
    this.backoff = new grpc.experimental.BackoffTimeout(() => void this.connect(), {
      initialDelay: reconnect.initialDelayMs,
      multiplier: 2,
      jitter: JITTER,
      // The jitter is added to the capped delay: this keeps the longest wait at maxDelayMs.
      maxDelay: reconnect.maxDelayMs / (1 + JITTER),
    });
  }

  /** Opens the first stream; later ones open by themselves. */
  start(): void {
    void this.connect();
  }

  /** Queues samples; a batch filled by them is written at once, a partial one when it is batchMaxSeconds old. */
  add(samples: readonly Sample[]): void {
    if (this.stopped || samples.length === 0) return;
    const hadOpen = this.buffer.hasOpen;
    const dropped = this.buffer.add(samples);
    if (dropped > 0) this.options.metrics.droppedSamples.inc(dropped);
    if (!hadOpen || !this.buffer.hasOpen) this.restartBatchTimer();
    this.writeClosed();
  }

  /** Closes the stream and the channel; what is buffered is not sent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.backoff.stop();
    clearTimeout(this.batchTimer);
    this.call?.cancel();
    this.call = undefined;
    this.client.close();
    this.options.metrics.connected.set(0);
  }

  private restartBatchTimer(): void {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    if (!this.buffer.hasOpen) return;
    this.batchTimer = setTimeout(() => {
      this.batchTimer = undefined;
      this.buffer.closeOpen();
      this.writeClosed();
    }, this.options.batchMaxSeconds * 1000);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let token: string;
    try {
      token = await this.options.token();
    } catch (error) {
      this.ended('no token', `no token: ${(error as Error).message}`, 'error');
      this.backoff.runOnce();
      return;
    }
    if (this.stopped) return;
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    const call = this.client.makeBidiStreamRequest<AgentMessageOut, IngestMessage>(
      PUSH.path,
      encodeAgentMessage,
      PUSH.responseDeserialize as (bytes: Buffer) => IngestMessage,
      metadata,
    );
    this.call = call;
    this.greeted = false;
    call.on('data', (message: IngestMessage) => {
      if (call === this.call) this.acknowledged(message.ack);
    });
    // Every end, an error included, also comes as 'status', handled there; an unhandled 'error' would throw.
    call.on('error', () => undefined);
    call.on('status', (status: grpc.StatusObject) => {
      if (call === this.call) this.streamEnded(status);
    });
    const { agentId, nodeName, clusterId, agentVersion } = this.options;
    call.write({ hello: { agentId, nodeName, clusterId, agentVersion } });
  }

  private acknowledged(ack: Ack): void {
    const { metrics, logger } = this.options;
    if (!this.greeted) {
      this.greeted = true;
      this.lastWritten = ack.acknowledgedSequence;
      this.backoff.reset();
      metrics.connected.set(1);
      logger.info({ address: this.options.address, acknowledgedSequence: ack.acknowledgedSequence }, 'connected to Sentinel');
      this.lastEnd = undefined;
      metrics.batchesAcknowledged.inc(this.buffer.resumeAbove(ack.acknowledgedSequence));
      this.writeClosed();
    } else {
      metrics.batchesAcknowledged.inc(this.buffer.acknowledge(ack.acknowledgedSequence));
    }
    metrics.bufferedSamples.set(this.buffer.size);
  }

  /** Writes every closed batch not yet written on this stream, once it has been greeted. */
  private writeClosed(): void {
    const { metrics } = this.options;
    metrics.bufferedSamples.set(this.buffer.size);
    if (!this.call || !this.greeted) return;
    const { agentId, nodeName, clusterId } = this.options;
    for (const batch of this.buffer.toWrite(this.lastWritten)) {
      this.call.write({
        batch: { agentId, nodeName, clusterId, sequence: batch.sequence, samples: batch.samples, droppedSamples: this.buffer.dropped, sentAtUnixMs: this.now() },
      });
      this.lastWritten = batch.sequence;
      metrics.batchesSent.inc();
    }
  }

  private streamEnded(status: grpc.StatusObject): void {
    const greeted = this.greeted;
    this.call = undefined;
    this.greeted = false;
    this.options.metrics.connected.set(0);
    if (this.stopped) return;
    if (status.code === grpc.status.INVALID_ARGUMENT && greeted) {
      const refused = this.buffer.refuseOldestWritten();
      if (refused > 0) {
        this.options.metrics.batchesRefused.inc();
        this.options.metrics.droppedSamples.inc(refused);
        this.options.metrics.bufferedSamples.set(this.buffer.size);
      }
      this.options.logger.error({ details: status.details, droppedSamples: refused }, `${REFUSALS[status.code]}: the oldest unacknowledged batch was dropped`);
    } else {
      const refusal = REFUSALS[status.code];
      const message = refusal ? `${refusal}: ${status.details}` : `stream ended (${grpc.status[status.code]}): ${status.details}`;
      this.ended(grpc.status[status.code], message, refusal ? 'error' : 'warn');
    }
    this.backoff.runOnce();
  }

  /**
   * Logs why the stream is down, once for as long as the same kind of end (`kind`: the status code's name)
   * repeats; the details differ from one try to the next (gRPC puts the time in them), so they cannot be the key.
   */
  private ended(kind: string, message: string, level: 'warn' | 'error'): void {
    if (kind === this.lastEnd) return;
    this.lastEnd = kind;
    this.options.logger[level]({ address: this.options.address }, `not connected to Sentinel: ${message}`);
  }
}
