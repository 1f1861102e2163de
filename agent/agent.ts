// The node agent put together: collection rounds over every collector, /metrics, and the push to Sentinel.
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { asFailure, CollectorFailure, type Collector, type GpuSource, type Sample } from './collector.js';
import { readCa, readToken, type AgentConfig, type PushConfig, type TlsSetting } from './config.js';
import { hostCollectors } from './host-collectors.js';
import { AgentMetrics, agentRegistry, sampleProblem } from './metrics.js';
import { nvidiaSmiCollector } from './nvidia-smi.js';
import { TelemetryPush, type PushOptions } from './push.js';
import { xidLogCollector } from './xid-log.js';

export const AGENT_VERSION: string = packageVersion();

/** The version in the nearest package.json above this module: from agent/ in the source tree, dist/agent/ in the bundle. */
function packageVersion(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
  }
}

export interface StartAgentOptions {
  config: AgentConfig;
  logger?: Logger;
  /** What to collect; defaultCollectors(config) unless given (the embedded default passes a simulated GPU source). */
  collectors?: Collector[];
  /** The registry /metrics serves; a fresh one with the process metrics (agentRegistry) unless given. */
  registry?: Registry;
  /** Reconnect pacing of the push, for tests; 500 ms to 30 s otherwise. */
  reconnect?: PushOptions['reconnect'];
}

export interface RunningAgent {
  /** The port /metrics listens on, when it is served. */
  metricsPort?: number;
  /** Stops collecting, closes the stream and /metrics; buffered samples are not sent. */
  stop(): Promise<void>;
}

/** The node's own collectors: host, GPUs (nvidia-smi unless another source is given) and, when configured, the XID log. */
export function defaultCollectors(config: AgentConfig, gpu?: GpuSource): Collector[] {
  return [
    ...hostCollectors({ procRoot: config.procRoot, sysRoot: config.sysRoot }),
    gpu ?? nvidiaSmiCollector({ command: config.nvidiaSmi, timeoutMs: config.commandTimeoutMs, hostname: config.nodeName }),
    ...(config.xidLog ? [xidLogCollector({ file: config.xidLog, hostname: config.nodeName })] : []),
  ];
}

/**
 * Starts collecting at once and then every collectSeconds, serves /metrics and pushes to Sentinel as configured.
 * Rejects when /metrics cannot listen or the TLS CA cannot be read.
 */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const { config } = options;
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'sentinel-agent', node: config.nodeName } });
  const metrics = new AgentMetrics(options.registry ?? agentRegistry());
  const collectors = options.collectors ?? defaultCollectors(config);
  const push = config.push ? await pushTo(config.push, config, metrics, logger, options.reconnect) : undefined;
  const server = config.metrics ? await serveMetrics(metrics.registry, config.metrics) : undefined;

  const rounds = new CollectionRounds(collectors, metrics, logger, (samples) => push?.add(samples));
  push?.start();
  rounds.start(config.collectSeconds * 1000);
  logger.info(
    { agentId: config.agentId, collectors: collectors.map((c) => c.name), push: config.push?.address ?? 'off', metricsPort: server && port(server) },
    'agent started',
  );
  return {
    ...(server ? { metricsPort: port(server) } : {}),
    async stop() {
      await rounds.stop();
      await push?.stop();
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Runs every collector each interval, all at once; a round still running when the next is due (a command near
 * its timeout) is not doubled up. A failure is counted by reason, clears that collector's values from /metrics,
 * and is logged when the collector's state changes (ok → failing, one reason → another, failing → ok).
 */
class CollectionRounds {
  private readonly states = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly collectors: Collector[],
    private readonly metrics: AgentMetrics,
    private readonly logger: Logger,
    private readonly deliver: (samples: Sample[]) => void,
  ) {}

  start(intervalMs: number): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), intervalMs);
  }

  /** Stops the rounds, waiting for one in progress (bounded by the command timeout) so no command outlives the agent. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.round().finally(() => {
      this.running = undefined;
    });
  }

  private async round(): Promise<void> {
    await Promise.all(this.collectors.map((collector) => this.collectFrom(collector)));
  }

  private async collectFrom(collector: Collector): Promise<void> {
    let samples: Sample[];
    try {
      samples = await collector.collect();
      const problem = samples.map(sampleProblem).find((found) => found !== undefined);
      if (problem) throw new CollectorFailure('parse', problem);
    } catch (error) {
      const failure = asFailure(error);
      this.metrics.collectorFailures.inc({ collector: collector.name, reason: failure.reason });
      this.metrics.setLatest(collector.name, []);
      this.changeState(collector.name, failure.reason, () => this.logger.warn({ collector: collector.name, reason: failure.reason, err: failure.message }, 'collector failed'));
      return;
    }
    this.changeState(collector.name, 'ok', () => this.logger.info({ collector: collector.name }, 'collector recovered'));
    // Only a running agent delivers: a round that ends after stop() changes nothing.
    if (this.stopped) return;
    this.metrics.setLatest(collector.name, samples);
    this.deliver(samples);
  }

  private changeState(collector: string, state: string, log: () => void): void {
    const previous = this.states.get(collector) ?? 'ok';
    this.states.set(collector, state);
    if (previous !== state) log();
  }
}

async function pushTo(push: PushConfig, config: AgentConfig, metrics: AgentMetrics, logger: Logger, reconnect: PushOptions['reconnect']): Promise<TelemetryPush> {
  return new TelemetryPush({
    address: push.address,
    credentials: await credentials(push.tls),
    token: () => readToken(push.token),
    agentId: config.agentId,
    nodeName: config.nodeName,
    clusterId: config.clusterId,
    agentVersion: AGENT_VERSION,
    bufferSamples: config.bufferSamples,
    batchMaxSamples: config.batchMaxSamples,
    batchMaxSeconds: config.batchMaxSeconds,
    metrics,
    logger,
    ...(reconnect ? { reconnect } : {}),
  });
}

async function credentials(tls: TlsSetting): Promise<grpc.ChannelCredentials> {
  if (tls.mode === 'plaintext') return grpc.credentials.createInsecure();
  if (tls.mode === 'system-roots') return grpc.credentials.createSsl();
  return grpc.credentials.createSsl(await readCa(tls.caFile));
}

async function serveMetrics(registry: Registry, listen: { host: string; port: number }): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the agent serves GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics could not be gathered: ${error.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: Error) => reject(new Error(`agent /metrics could not listen on ${listen.host}:${listen.port}: ${error.message}`)));
    server.listen(listen.port, listen.host, resolve);
  });
  return server;
}

const port = (server: Server) => (server.address() as AddressInfo).port;
