// Simulated node agents for bench/telemetry.ts, in their own process so that the ingest's figures do not include
// the agents' CPU. Each agent says hello, then sends batches of BATCH samples in one of two modes:
//   max:   the next batch as soon as the previous one is acknowledged (what the ingest sustains at most);
//   paced: one batch every BATCH / (RATE / AGENTS) seconds without waiting for acks, as real agents do, so that ack
//          latency is measured at a given load rather than in the queue that a saturating load builds.
// After the warm-up every ack's latency is recorded. Prints one JSON line at the end.
//   TELEMETRY_ADDRESS=127.0.0.1:port TELEMETRY_TOKEN=... BENCH_TELEMETRY_MODE=max|paced tsx bench/telemetry-agents.ts
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { telemetryClient, type Batch, type Hello, type IngestMessage, type Sample } from '../adapters/grpc/telemetry-proto.js';

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
  const series = seriesOf(hello.nodeName);
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  const client = telemetryClient(address);
  const call = client.push(metadata);
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

  call.write({ hello });
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
    const batch: Batch = { ...hello, sequence: ++sequence, samples: samplesOf(series), droppedSamples: 0, sentAtUnixMs: Date.now() };
    inFlight.set(batch.sequence, performance.now());
    call.write({ batch });
    if (MODE === 'max') await allAcked();
  }
  if (inFlight.size > 0) await allAcked();
  call.end();
  client.close();
  return figures;
}

/** One sample per series per second, the newest at the current time, as a real agent's scrapes would be. */
function samplesOf(series: Series[]): Sample[] {
  const samples: Sample[] = [];
  const now = Date.now();
  const rounds = Math.ceil(BATCH / series.length);
  for (let i = 0; samples.length < BATCH; i++) {
    const s = series[i % series.length]!;
    const round = Math.floor(i / series.length);
    samples.push({ metric: s.metric, labels: s.labels, value: (i * 7919) % 1000, timestampUnixMs: now - (rounds - 1 - round) * 1000 });
  }
  return samples;
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
