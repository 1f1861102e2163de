// The reference optimizer's side of the InfraMind link: one stream at a time, resumed from the last event processed
// after any drop, and every plan not yet acknowledged sent again under the same plan id, so nothing is doubled.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { inframindClient, type InfraMindClient, type InfraMindMessageOut, type SentinelMessage } from '../adapters/grpc/inframind-proto.js';
import { ScaleOptimizer, type OptimizerSettings, type ScaleProposal } from './optimizer.js';

export interface InframindSimOptions {
  /** host:port of Sentinel's InfraMind link. */
  address: string;
  /** A service-account token. */
  token: string;
  inframindId: string;
  settings: OptimizerSettings;
  credentials?: grpc.ChannelCredentials;
  logger: Logger;
  /** Told of every acknowledgement, for whoever watches the simulator (tests, logs). */
  onPlanAck?: (planId: string, verdict: string) => void;
  reconnect?: { initialDelayMs: number; maxDelayMs: number };
}

export interface RunningInframindSim {
  /** Positions processed so far: where the next connection resumes. */
  readonly processed: string;
  stop(): void;
}

const DEFAULT_RECONNECT = { initialDelayMs: 500, maxDelayMs: 30_000 };

export function startInframindSim(options: InframindSimOptions): RunningInframindSim {
  const sim = new SimLink(options);
  sim.connect();
  return sim;
}

class SimLink implements RunningInframindSim {
  processed = '';
  private readonly optimizer: ScaleOptimizer;
  private readonly client: InfraMindClient;
  private readonly backoff: grpc.experimental.BackoffTimeout;
  /** Plans sent and not yet acknowledged, by plan id: sent again on every new stream until answered. */
  private readonly unanswered = new Map<string, ScaleProposal>();
  private call: grpc.ClientDuplexStream<InfraMindMessageOut, SentinelMessage> | undefined;
  private stopped = false;

  constructor(private readonly options: InframindSimOptions) {
    const reconnect = options.reconnect ?? DEFAULT_RECONNECT;
    this.optimizer = new ScaleOptimizer(options.settings);
    this.client = inframindClient(options.address, options.credentials, { 'grpc.keepalive_time_ms': 60_000, 'grpc.keepalive_timeout_ms': 20_000 });
    this.backoff = new grpc.experimental.BackoffTimeout(() => this.connect(), {
      initialDelay: reconnect.initialDelayMs,
      multiplier: 2,
      jitter: 0.2,
      maxDelay: reconnect.maxDelayMs / 1.2,
    });
  }

  connect(): void {
    if (this.stopped) return;
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${this.options.token}`);
    const call = this.client.connect(metadata);
    this.call = call;
    call.on('data', (message: SentinelMessage) => this.receive(message, call));
    call.on('error', (error: grpc.ServiceError) => this.ended(call, `${grpc.status[error.code]}: ${error.details}`));
    call.on('end', () => this.ended(call, 'the stream ended'));
    call.write({ hello: { inframindId: this.options.inframindId, version: 'inframind-sim', resumeAfter: this.processed } });
  }

  stop(): void {
    this.stopped = true;
    this.backoff.stop();
    this.call?.cancel();
    this.client.close();
  }

  private receive(message: SentinelMessage, call: grpc.ClientDuplexStream<InfraMindMessageOut, SentinelMessage>): void {
    switch (message.body) {
      case 'hello':
        this.backoff.reset();
        this.options.logger.info({ session: message.hello.sessionId, resumeAfter: message.hello.resumeAfter }, 'connected to sentinel');
        for (const proposal of this.unanswered.values()) this.submit(proposal, call);
        return;
      case 'event':
        this.optimizer.applyEvent(message.event);
        this.processed = message.event.position;
        call.write({ ack: { position: message.event.position } });
        return;
      case 'observation':
        for (const proposal of this.optimizer.propose(message.observation)) {
          this.unanswered.set(proposal.planId, proposal);
          this.submit(proposal, call);
        }
        return;
      case 'planAck': {
        const { planId, verdict, violations } = message.planAck;
        this.unanswered.delete(planId);
        this.optimizer.answered(planId);
        this.options.logger.info({ planId, verdict, violations }, 'plan acknowledged');
        this.options.onPlanAck?.(planId, verdict);
        return;
      }
      case 'outcome':
        this.options.logger.info({ ...message.outcome }, 'plan outcome');
    }
  }

  /** A fresh nonce per sending; the plan id stays, so Sentinel records the plan once however often it is sent. */
  private submit(proposal: ScaleProposal, call: grpc.ClientDuplexStream<InfraMindMessageOut, SentinelMessage>): void {
    call.write({
      plan: {
        planId: proposal.planId,
        nonce: randomUUID(),
        reason: proposal.reason,
        actions: [{ scale: { deploymentId: proposal.deploymentId, replicas: proposal.replicas } }],
      },
    });
  }

  private ended(call: grpc.ClientDuplexStream<InfraMindMessageOut, SentinelMessage>, why: string): void {
    if (this.call !== call || this.stopped) return;
    this.call = undefined;
    this.options.logger.warn({ why }, 'link to sentinel dropped; reconnecting');
    this.backoff.runOnce();
  }
}
