// Telemetry ingest benchmark on PostgreSQL: simulated agents (another process) push batches over gRPC to the ingest
// running here, first as fast as acks come back (the most the ingest sustains), then paced at a given rate (ack
// latency under that load); then the same number of samples as the first phase go by a bare COPY into
// telemetry_samples, one row each (the table the store wrote before it stored a row per batch), as the baseline.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:telemetry
//   BENCH_TELEMETRY_AGENTS (20), BENCH_TELEMETRY_SECONDS per phase (20), BENCH_TELEMETRY_WARMUP_SECONDS (3),
//   BENCH_TELEMETRY_BATCH (1000), BENCH_TELEMETRY_RATE samples/s of the paced phase (half of what the first phase
//   sustained: latency is measured at a load the ingest carries with room to spare, not at its limit)
//   BENCH_TELEMETRY_AGENT_SECONDS (60): how long one real agent (8 GPUs through a fake nvidia-smi, the host, every
//   10 s) is measured for its CPU share and resident set, after BENCH_TELEMETRY_AGENT_WARMUP_SECONDS (15)
// Works in a scratch database it creates on that server and drops afterwards.
// A `cpu` line says where the CPU went per 1,000 samples (the ingest process, its PostgreSQL backends, the simulated
// agents; the COPY's backend and client): on a machine shared with other work the throughput ratio swings with the
// load, CPU per sample much less. PostgreSQL's figures come from /proc, so only when the server runs on this machine.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino } from 'pino';
import { Registry, type MetricValueWithName } from 'prom-client';
import { openPostgres, type Database } from '../adapters/postgres/database.js';
import { migrateSentinel } from '../adapters/postgres/schema.js';
import { startTelemetryIngest } from '../telemetry/ingest-server.js';
import { SampleStore } from '../telemetry/sample-store.js';
import { measureAgent, type AgentFootprint } from './agent-footprint.js';
import { createScratchDatabase } from '../test/support/postgres.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TOKEN = 'bench-service-account';

interface AgentReport {
  batches: number;
  samples: number;
  seconds: number;
  latenciesMs: number[];
  cpuSeconds: number;
  maxRssBytes: number;
}

/** Runs bench/telemetry-agents.ts against the ingest and answers its report. */
function runAgents(port: number, mode: 'max' | 'paced', rate?: number): Promise<AgentReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/telemetry-agents.ts'], {
      env: { ...process.env, TELEMETRY_ADDRESS: `127.0.0.1:${port}`, TELEMETRY_TOKEN: TOKEN, BENCH_TELEMETRY_MODE: mode, ...(rate ? { BENCH_TELEMETRY_RATE: String(rate) } : {}) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`the simulated agents exited with ${code}`));
      resolve(JSON.parse(output.trim().split('\n').pop()!) as AgentReport);
    });
  });
}

/** CPU seconds used so far by a process of this machine, or undefined where /proc cannot tell. */
async function processCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in clock ticks
    // of 1/100 s (USER_HZ on Linux).
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(')').pop()!.trim().split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** CPU seconds used so far by each PostgreSQL backend connected to the bench's database, by process id. */
async function backendsCpu(db: Database): Promise<Map<number, number>> {
  const rows = await db.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database()');
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    const seconds = await processCpuSeconds(pid);
    if (seconds !== undefined) cpu.set(pid, seconds);
  }
  return cpu;
}

/** What the backends used between two readings; a backend that started in between counts from zero. */
function backendsUsed(before: Map<number, number>, after: Map<number, number>): number | undefined {
  if (after.size === 0) return undefined;
  let used = 0;
  for (const [pid, seconds] of after) used += seconds - (before.get(pid) ?? 0);
  return used;
}

interface CopyFigures {
  samplesPerS: number;
  /** CPU seconds of the COPY's backend (undefined where /proc cannot tell) and of this process while it ran. */
  serverCpuSeconds: number | undefined;
  clientCpuSeconds: number;
}

/** `count` sample rows like the agents' (a batch sequence per 1,000) in COPY text format, written into telemetry_samples by one COPY. */
async function copyBaseline(url: string, count: number): Promise<CopyFigures> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // The store no longer writes this table, so it creates no partitions of it: the days of the rows' times.
    for (const day of new Set([Date.now() - 60_000, Date.now()].map((ms) => new Date(ms).toISOString().slice(0, 10)))) {
      await client.query(
        `create table if not exists telemetry_samples_p${day.replaceAll('-', '')} partition of telemetry_samples
           for values from ('${day} 00:00:00+00') to ('${day} 00:00:00+00'::timestamptz + interval '1 day')`,
      );
    }
    const { rows: [backend] } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    const now = Date.now();
    const labels = JSON.stringify({ gpu: '0', UUID: 'GPU-copy-0', device: 'nvidia0', modelName: 'NVIDIA H100 80GB HBM3', Hostname: 'copy-node' });
    function* rows(): Generator<string> {
      const CHUNK = 1000;
      for (let written = 0; written < count; written += CHUNK) {
        let chunk = '';
        for (let i = written; i < Math.min(count, written + CHUNK); i++) {
          chunk += `bench\tcopy-node-${i % 20}\tcopy-agent-${i % 20}\tDCGM_FI_DEV_GPU_UTIL\t${labels}\t${(i * 7919) % 1000}\t${new Date(now - (i % 60_000)).toISOString()}\t${Math.floor(i / 1000) + 1}\n`;
        }
        yield chunk;
      }
    }
    const serverBefore = await processCpuSeconds(backend!.pid);
    const clientBefore = process.cpuUsage();
    const started = performance.now();
    await pipeline(Readable.from(rows()), client.query(copyFrom('copy telemetry_samples (cluster_id, node_name, agent_id, metric, labels, value, time, sequence) from stdin')));
    const seconds = (performance.now() - started) / 1000;
    const clientUsed = process.cpuUsage(clientBefore);
    const serverAfter = await processCpuSeconds(backend!.pid);
    return {
      samplesPerS: count / seconds,
      serverCpuSeconds: serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
      clientCpuSeconds: (clientUsed.user + clientUsed.system) / 1e6,
    };
  } finally {
    await client.end();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const round = (value: number, places = 1) => Math.round(value * 10 ** places) / 10 ** places;

interface Phase {
  report: AgentReport;
  samplesPerS: number;
  ackP50: number;
  ackP99: number;
  ingestCpuSeconds: number;
  /** CPU seconds of the ingest's PostgreSQL backends over the phase (undefined where /proc cannot tell). */
  serverCpuSeconds: number | undefined;
  /** Samples stored over the whole phase, its warm-up included, as the CPU figures are. */
  storedSamples: number;
  /** Mean seconds the storing statement took, as the ingest's own histogram saw it. */
  storeSeconds: number;
}

async function phase(db: Database, registry: Registry, run: () => Promise<AgentReport>): Promise<Phase> {
  registry.resetMetrics();
  const backends = await backendsCpu(db);
  const cpu = process.cpuUsage();
  const report = await run();
  const used = process.cpuUsage(cpu);
  const serverCpuSeconds = backendsUsed(backends, await backendsCpu(db));
  const latencies = [...report.latenciesMs].sort((a, b) => a - b);
  return {
    report,
    samplesPerS: report.samples / report.seconds,
    ackP50: percentile(latencies, 0.5),
    ackP99: percentile(latencies, 0.99),
    ingestCpuSeconds: (used.user + used.system) / 1e6,
    serverCpuSeconds,
    storedSamples: await storedSamples(registry),
    storeSeconds: await meanStoreSeconds(registry),
  };
}

async function meanStoreSeconds(registry: Registry): Promise<number> {
  const { values } = await registry.getSingleMetric('sentinel_telemetry_store_duration_seconds')!.get();
  const total = (suffix: string) => (values as MetricValueWithName<string>[]).find((v) => v.metricName === `sentinel_telemetry_store_duration_seconds_${suffix}`)?.value ?? NaN;
  return total('sum') / total('count');
}

async function storedSamples(registry: Registry): Promise<number> {
  const { values } = await registry.getSingleMetric('sentinel_telemetry_samples_stored_total')!.get();
  return values.reduce((sum, value) => sum + value.value, 0);
}

/** Milliseconds of CPU per 1,000 samples, or n/a. */
function perThousand(cpuSeconds: number | undefined, samples: number): string {
  return cpuSeconds === undefined ? 'n/a' : `${round((cpuSeconds * 1e6) / samples, 2)} ms`;
}

function describe({ report, samplesPerS, ackP50, ackP99, ingestCpuSeconds, storeSeconds }: Phase): string {
  return (
    `${Math.round(samplesPerS)} samples/s (${report.batches} batches, ${report.samples} samples in ${round(report.seconds)} s), ` +
    `ack p50 ${round(ackP50)} ms p99 ${round(ackP99)} ms, store ${round(storeSeconds * 1000)} ms mean; ingest process CPU ${round(ingestCpuSeconds)} s, ` +
    `agents process CPU ${round(report.cpuSeconds)} s, RSS ${Math.round(report.maxRssBytes / 2 ** 20)} MiB`
  );
}

const scratch = await createScratchDatabase(serverUrl);
const db = openPostgres(scratch.url);
try {
  await migrateSentinel(db.knex);
  const store = new SampleStore(db);
  const registry = new Registry();
  const ingest = await startTelemetryIngest({
    host: '127.0.0.1',
    port: 0,
    store,
    authenticate: async (token) => {
      if (token !== TOKEN) throw new Error('unknown token');
      return { id: 'bench', kind: 'service', name: 'bench-agents', role: 'system' };
    },
    metrics: registry,
    logger: pino({ level: 'warn' }),
  });
  let max: Phase;
  let paced: Phase;
  let pacedRate: number;
  let agent: AgentFootprint;
  try {
    max = await phase(db, registry, () => runAgents(ingest.port, 'max'));
    console.log(`max      ${describe(max)}`);
    pacedRate = Number(process.env.BENCH_TELEMETRY_RATE ?? Math.round(max.samplesPerS / 2));
    paced = await phase(db, registry, () => runAgents(ingest.port, 'paced', pacedRate));
    console.log(`paced    ${describe(paced)} (offered ${pacedRate} samples/s)`);
    agent = await measureAgent({
      ingestPort: ingest.port,
      token: TOKEN,
      warmupSeconds: Number(process.env.BENCH_TELEMETRY_AGENT_WARMUP_SECONDS ?? 15),
      seconds: Number(process.env.BENCH_TELEMETRY_AGENT_SECONDS ?? 60),
    });
    console.log(
      `agent    8 GPUs and the host every 10 s: ${round(agent.cpuPercent, 2)}% of one core over ${Math.round(agent.seconds)} s, ` +
        `RSS at most ${Math.round(agent.maxRssMiB)} MiB (targets < 1%, < 80 MB)`,
    );
  } finally {
    await ingest.stop();
  }

  await db.query('checkpoint');
  const copy = await copyBaseline(scratch.url, max.report.samples);
  const copyPerS = copy.samplesPerS;
  const ratio = max.samplesPerS / copyPerS;
  console.log(`COPY     ${Math.round(copyPerS)} samples/s for the same ${max.report.samples} rows into telemetry_samples; ratio ${round(ratio, 3)}`);
  // stop() flushed the rollups: every sample the agents stored is counted in them once. Checked after the COPY, so
  // that reading the samples back does not change what the COPY is measured against.
  const [rolledUp] = await db.query<{ samples: string; rolled_up: string }>(
    `select (select coalesce(sum(cardinality(sample_values)), 0) from telemetry_sample_batches) as samples,
            (select coalesce(sum(count), 0) from telemetry_rollups_1m where node_name not like 'copy-node-%') as rolled_up`,
  );
  console.log(`rollups  ${rolledUp!.rolled_up} samples counted in the 1-minute rollups of the ${rolledUp!.samples} the agents stored`);
  console.log(
    `cpu      per 1000 samples at max (${max.storedSamples} stored, warm-up included): ingest process ${perThousand(max.ingestCpuSeconds, max.storedSamples)}, ` +
      `its PostgreSQL backends ${perThousand(max.serverCpuSeconds, max.storedSamples)}, agents process ${perThousand(max.report.cpuSeconds, max.storedSamples)} ` +
      `(start-up included); COPY backend ${perThousand(copy.serverCpuSeconds, max.report.samples)}, COPY client ${perThousand(copy.clientCpuSeconds, max.report.samples)}`,
  );
  console.log(
    JSON.stringify({
      bench: 'telemetry',
      samples_per_s: Math.round(max.samplesPerS),
      copy_ratio: round(ratio, 3),
      ack_p50_ms: round(paced.ackP50, 2),
      ack_p99_ms: round(paced.ackP99, 2),
      paced_rate: pacedRate,
      paced_samples_per_s: Math.round(paced.samplesPerS),
      saturated_ack_p99_ms: round(max.ackP99, 2),
      agent_cpu_pct: round(agent.cpuPercent, 2),
      agent_rss_mb: Math.round(agent.maxRssMiB),
    }),
  );
} finally {
  await db.close();
  await scratch.drop();
}
