// Simulated node agents for bench/telemetry.ts, in their own process so that the ingest's figures do not include
// the agents' CPU. Each agent says hello, then sends batches of BATCH samples in one of two modes:
//   max:   the next batch as soon as the previous one is acknowledged (what the ingest sustains at most);
//   paced: one batch every BATCH / (RATE / AGENTS) seconds without waiting for acks, as real agents do, so that ack
//          latency is measured at a given load rather than in the queue that a saturating load builds.
// After the warm-up every ack's latency is recorded. Prints one JSON line at the end.
// Messages are written in protobuf wire format by hand, each series' metric and labels encoded once: on a machine of
// a few cores the simulator shares the CPU with the ingest and PostgreSQL, and protobufjs encoding a thousand sample
// objects per batch took more CPU than the ingest spent storing them. The bytes are the ones protobufjs writes for the
// same messages, so the ingest decodes, validates and stores exactly what it does for real agents.
//   TELEMETRY_ADDRESS=127.0.0.1:port TELEMETRY_TOKEN=... BENCH_TELEMETRY_MODE=max|paced tsx bench/telemetry-agents.ts
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { telemetryService, type Hello, type IngestMessage } from '../adapters/grpc/telemetry-proto.js';
import { varintLength } from '../agent/message-encoder.js';

const address = required('TELEMETRY_ADDRESS');
const token = required('TELEMETRY_TOKEN');
const AGENTS = Number(process.env.BENCH_TELEMETRY_AGENTS ?? 20);
const SECONDS = Number(process.env.BENCH_TELEMETRY_SECONDS ?? 20);
const WARMUP_SECONDS = Number(process.env.BENCH_TELEMETRY_WARMUP_SECONDS ?? 3);
const BATCH = Number(process.env.BENCH_TELEMETRY_BATCH ?? 1000);
const MODE = process.env.BENCH_TELEMETRY_MODE === 'paced' ? 'paced' : 'max';
/** Samples per second offered by all agents together in paced mode. */
const RATE = Number(process.env.BENCH_TELEMETRY_RATE ?? 25_000);

/** What a DCGM exporter reports per GPU, and a few node_exporter series per node. */
const GPU_METRICS = [
  'DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_MEM_COPY_UTIL', 'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_GPU_TEMP',
  'DCGM_FI_DEV_MEMORY_TEMP', 'DCGM_FI_DEV_POWER_USAGE', 'DCGM_FI_DEV_SM_CLOCK', 'DCGM_FI_DEV_MEM_CLOCK', 'DCGM_FI_DEV_XID_ERRORS',
  'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 'DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 'DCGM_FI_PROF_GR_ENGINE_ACTIVE',
  'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE', 'DCGM_FI_PROF_DRAM_ACTIVE', 'DCGM_FI_PROF_PCIE_TX_BYTES', 'DCGM_FI_PROF_PCIE_RX_BYTES',
  'DCGM_FI_PROF_NVLINK_TX_BYTES', 'DCGM_FI_PROF_NVLINK_RX_BYTES', 'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', 'DCGM_FI_DEV_ENC_UTIL',
  'DCGM_FI_DEV_DEC_UTIL', 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
];
const GPUS = 8;

interface Series {
  metric: string;
  labels: Record<string, string>;
}

function seriesOf(node: string): Series[] {
  const series: Series[] = [];
  for (let gpu = 0; gpu < GPUS; gpu++) {
    const labels = { gpu: String(gpu), UUID: `GPU-${node}-${gpu}`, device: `nvidia${gpu}`, modelName: 'NVIDIA H100 80GB HBM3', Hostname: node };
    for (const metric of GPU_METRICS) series.push({ metric, labels });
  }
  for (const mode of ['user', 'system', 'idle', 'iowait']) series.push({ metric: 'node_cpu_seconds_total', labels: { cpu: '0', mode } });
  series.push({ metric: 'node_memory_MemAvailable_bytes', labels: {} });
  return series;
}

interface AgentFigures {
  batches: number;
  samples: number;
  latenciesMs: number[];
}

async function runAgent(index: number, measureFrom: number, until: number): Promise<AgentFigures> {
  const hello: Hello = { agentId: `bench-agent-${index}`, nodeName: `gpu-node-${index}`, clusterId: 'bench', agentVersion: 'bench' };
  const series = seriesOf(hello.nodeName).map(encodeSeries);
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest<Buffer, IngestMessage>(push.path, (bytes) => bytes, push.responseDeserialize, metadata);
  const figures: AgentFigures = { batches: 0, samples: 0, latenciesMs: [] };
  /** Send times of the batches not yet acknowledged, by sequence. */
  const inFlight = new Map<number, number>();
  let acked: (() => void) | undefined;
  let helloAck: ((sequence: number) => void) | undefined;
  call.on('data', (message: IngestMessage) => {
    const sequence = message.ack.acknowledgedSequence;
    if (helloAck) return helloAck(sequence);
    const now = performance.now();
    for (const [sent, at] of inFlight) {
      if (sent > sequence) break;
      inFlight.delete(sent);
      if (at >= measureFrom) {
        figures.batches++;
        figures.samples += BATCH;
        figures.latenciesMs.push(now - at);
      }
    }
    acked?.();
  });
  const failed = new Promise<never>((_, reject) => call.on('error', (error) => reject(error)));
  const allAcked = () => Promise.race([new Promise<void>((resolve) => (acked = () => inFlight.size === 0 && resolve())), failed]);

  call.write(encodeHello(hello));
  let sequence = await Promise.race([new Promise<number>((resolve) => (helloAck = resolve)), failed]);
  helloAck = undefined;
  const intervalMs = (BATCH / (RATE / AGENTS)) * 1000;
  // Paced agents start spread over one interval, as independent nodes would.
  let due = performance.now() + (intervalMs * index) / AGENTS;
  while (performance.now() < until) {
    if (MODE === 'paced') {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
      due += intervalMs;
    }
    inFlight.set(++sequence, performance.now());
    call.write(encodeBatch(hello, sequence, series));
    if (MODE === 'max') await allAcked();
  }
  if (inFlight.size > 0) await allAcked();
  call.end();
  client.close();
  return figures;
}

const push = telemetryService['Push']!;

/** A series' metric and labels as the leading fields of a Sample message (fields 1 and 2), encoded once. */
function encodeSeries({ metric, labels }: Series): Buffer {
  const parts = [field(1, Buffer.from(metric))];
  for (const [name, value] of Object.entries(labels)) parts.push(field(2, Buffer.concat([field(1, Buffer.from(name)), field(2, Buffer.from(value))])));
  return Buffer.concat(parts);
}

function encodeHello(hello: Hello): Buffer {
  const body = Buffer.concat([hello.agentId, hello.nodeName, hello.clusterId, hello.agentVersion].map((text, i) => field(i + 1, Buffer.from(text))));
  return field(1, body);
}

/**
 * An AgentMessage holding a batch of BATCH samples: one sample per series per second, the newest at the current
 * time, as a real agent's scrapes would be. Fields in field-number order, as protobufjs writes them.
 */
function encodeBatch(hello: Hello, sequence: number, series: Buffer[]): Buffer {
  const now = Date.now();
  const rounds = Math.ceil(BATCH / series.length);
  const head = Buffer.concat([...[hello.agentId, hello.nodeName, hello.clusterId].map((text, i) => field(i + 1, Buffer.from(text))), varintField(4, sequence)]);
  const tail = Buffer.concat([varintField(6, 0), varintField(7, now)]);
  const timeOf = (i: number) => now - (rounds - 1 - Math.floor(i / series.length)) * 1000;
  let size = head.length + tail.length;
  for (let i = 0; i < BATCH; i++) {
    const sample = sampleLength(series[i % series.length]!, timeOf(i));
    size += 1 + varintLength(sample) + sample;
  }
  const body = Buffer.allocUnsafe(size);
  let at = head.copy(body, 0);
  for (let i = 0; i < BATCH; i++) {
    const prefix = series[i % series.length]!;
    const time = timeOf(i);
    at = writeVarint(body, at, (5 << 3) | 2);
    at = writeVarint(body, at, sampleLength(prefix, time));
    at += prefix.copy(body, at);
    body[at++] = (3 << 3) | 1;
    at = body.writeDoubleLE((i * 7919) % 1000, at);
    body[at++] = 4 << 3;
    at = writeVarint(body, at, time);
  }
  tail.copy(body, at);
  return field(2, body);
}

/** A Sample's length: its series prefix, the value (tag and 8 bytes) and the time (tag and varint). */
function sampleLength(prefix: Buffer, time: number): number {
  return prefix.length + 9 + 1 + varintLength(time);
}

function field(number: number, bytes: Buffer): Buffer {
  const head = Buffer.allocUnsafe(10);
  let at = writeVarint(head, 0, (number << 3) | 2);
  at = writeVarint(head, at, bytes.length);
  return Buffer.concat([head.subarray(0, at), bytes]);
}

function varintField(number: number, value: number): Buffer {
  const bytes = Buffer.allocUnsafe(11);
  return bytes.subarray(0, writeVarint(bytes, writeVarint(bytes, 0, number << 3), value));
}

/** Writes a non-negative integer below 2^53 as a varint; answers the offset after it. */
function writeVarint(buffer: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    buffer[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  buffer[at++] = value;
  return at;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (bench/telemetry.ts sets it)`);
  return value;
}

const start = performance.now();
const measureFrom = start + WARMUP_SECONDS * 1000;
const until = measureFrom + SECONDS * 1000;
const results = await Promise.all(Array.from({ length: AGENTS }, (_, i) => runAgent(i, measureFrom, until)));
const cpu = process.cpuUsage();
process.stdout.write(
  `${JSON.stringify({
    batches: results.reduce((sum, r) => sum + r.batches, 0),
    samples: results.reduce((sum, r) => sum + r.samples, 0),
    seconds: (performance.now() - measureFrom) / 1000,
    latenciesMs: results.flatMap((r) => r.latenciesMs),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  })}\n`,
);
