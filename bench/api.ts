// API benchmark: scale commands through HTTP as clients send them — a bearer token checked against the store, the
// body checked by zod, 20 enforce policies judging each change, the admission ledger, the append — with 16 clients
// at once. Next to it, in the same run and on the same database, the bare store doing what each command must at the
// least (a 2-event append to the deployment's stream and a 1-event append to the ledger's): the ceiling.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:api   (a scratch database there)
//   npm run bench:api                                                             (embedded PGlite)
// BENCH_API_COMMANDS (default 4000) commands are timed after BENCH_API_WARMUP (200); BENCH_API_CLIENTS (16) at once;
// BENCH_API_POLICIES (20) enforce policies. BENCH_API_PROFILE=<file.cpuprofile> writes a CPU profile of the timed run
// alone (no setup, no ceiling).
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Session } from 'node:inspector/promises';
import { pino } from 'pino';
import { loadConfig } from '../app/config.js';
import { startSentinel } from '../app/sentinel.js';
import type { EventStore, EventToAppend } from '../domain/event-store.js';
import { adminClient } from './admin-client.js';
import { createScratchDatabase, type ScratchDatabase } from '../test/support/postgres.js';

const COMMANDS = Number(process.env['BENCH_API_COMMANDS'] ?? 4000);
const WARMUP = Number(process.env['BENCH_API_WARMUP'] ?? 200);
const CLIENTS = Number(process.env['BENCH_API_CLIENTS'] ?? 16);
/** Enforce policies judging each scale, in fives (quota, budget, rate limit, SLA, SLO); 0 for none. */
const POLICIES = Number(process.env['BENCH_API_POLICIES'] ?? 20);
/** Four for each client, each client scaling only its own. */
const DEPLOYMENTS = CLIENTS * 4;
const PASSWORD = 'bench-admin-password';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 100) / 100;
}

/** Runs `count` operations, `clients` at a time. */
async function drive(count: number, clients: number, operation: (client: number) => Promise<void>): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (next++ < count) {
        const at = performance.now();
        await operation(client);
        latencies.push(performance.now() - at);
      }
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), seconds: (performance.now() - started) / 1000 };
}

/** The twenty enforce policies: four of each kind that judges a scale, all applying to it, none refusing it. */
function policies(namespace: string): unknown[] {
  const selector = { namespaces: [namespace] };
  return Array.from({ length: Math.ceil(POLICIES / 5) }, (_, n) => [
    { name: `quota-${n}`, type: 'quota', mode: 'enforce', selector, parameters: { per: 'namespace', limits: { replicas: 100_000 + n } } },
    { name: `budget-${n}`, type: 'budget', mode: 'enforce', selector, parameters: { monthlyUsd: 10_000_000 + n } },
    { name: `rate-${n}`, type: 'rate_limit', mode: 'enforce', selector, parameters: { maxActions: 1_000_000 + n, windowSeconds: 3600 } },
    { name: `sla-${n}`, type: 'sla', mode: 'enforce', selector, parameters: { minUptime: 0.9, windowDays: 30 } },
    { name: `slo-${n}`, type: 'slo', mode: 'enforce', selector, parameters: { latencyP99Ms: 10_000 + n } },
  ])
    .flat()
    .slice(0, POLICIES);
}

/** Starts the CPU profiler when BENCH_API_PROFILE names a file; `stop` writes the profile there. */
async function startProfile(): Promise<{ stop: () => Promise<void> } | undefined> {
  const file = process.env['BENCH_API_PROFILE'];
  if (!file) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    stop: async () => {
      const { profile } = await session.post('Profiler.stop');
      await writeFile(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-bench-api-'));
const scratch: ScratchDatabase | undefined = process.env['DATABASE_URL'] ? await createScratchDatabase(process.env['DATABASE_URL']) : undefined;
// The write path alone on PostgreSQL; PGlite needs the projector in the same process.
const sentinel = await startSentinel(
  loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0',
    SENTINEL_ROLE: scratch ? 'api' : 'api,projector',
    SENTINEL_DATA_DIR: dataDir,
    ...(scratch ? { DATABASE_URL: scratch.url } : {}),
    SENTINEL_CLUSTER_SIMULATOR: 'off',
    SENTINEL_ADMIN_PASSWORD: PASSWORD,
    SENTINEL_JWT_SECRET: 'b'.repeat(48),
    LOG_LEVEL: 'warn',
  }),
  pino({ level: 'warn' }),
);

let result: Record<string, unknown> | undefined;
try {
  const { api, headers, post } = await adminClient(sentinel.port, PASSWORD);

  // ---- the fleet and the policies ---------------------------------------------------------------------------
  const namespace = 'bench';
  for (const policy of policies(namespace)) await post('/policies', policy);
  const clusterId = (
    await post('/clusters', { name: 'bench', apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' }, region: 'local', gpuSkus: [] })
  ).id;
  const deploymentIds: string[] = [];
  for (let i = 0; i < DEPLOYMENTS; i += 1) {
    const workload = await post('/workloads', { name: `bench-${i}`, namespace, type: 'inference', image: 'registry.local/model:1', resources: { cpu: '100m', memory: '128Mi' } });
    deploymentIds.push((await post('/deployments', { workloadId: workload.id, clusterId, replicas: 1 })).id);
  }
  console.log(`setup    ${POLICIES} enforce policies, ${DEPLOYMENTS} deployments, ${CLIENTS} clients`);

  // ---- scale commands through HTTP: each deployment goes 1 → 2 → 1 …, one client per deployment at a time ----------
  const replicas = new Map<string, number>(deploymentIds.map((id) => [id, 1]));
  let refused = 0;
  const refusals = new Map<string, number>();
  const turns = Array.from({ length: CLIENTS }, () => 0);
  const scale = async (client: number) => {
    // Each client has deployments of its own (client, client + CLIENTS, …), so two requests never race on one stream.
    const id = deploymentIds[(turns[client]!++ * CLIENTS + client) % DEPLOYMENTS]!;
    const to = replicas.get(id) === 1 ? 2 : 1;
    const res = await fetch(`${api}/deployments/${id}/scale`, { method: 'POST', headers, body: JSON.stringify({ replicas: to }) });
    const body = await res.text();
    if (res.status === 202) replicas.set(id, to);
    else {
      refused += 1;
      const type = res.headers.get('content-type')?.includes('json') ? ((JSON.parse(body) as { type?: string }).type ?? '') : '';
      const key = `${res.status} ${type}`.trim();
      refusals.set(key, (refusals.get(key) ?? 0) + 1);
    }
  };
  await drive(WARMUP, CLIENTS, scale);
  // Whether the process holds more the longer the load runs: RSS sampled through the timed run.
  const rss: number[] = [];
  const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 250);
  // Sentinel runs in this process, so the process's CPU over the timed run is the server's and the clients' together.
  const profiler = await startProfile();
  const cpuBefore = process.cpuUsage();
  const commands = await drive(COMMANDS, CLIENTS, scale);
  const cpu = process.cpuUsage(cpuBefore);
  await profiler?.stop();
  clearInterval(sampler);
  const mb = (bytes: number | undefined) => Math.round((bytes ?? process.memoryUsage().rss) / 1048576);
  const quarter = rss.slice(0, Math.max(1, Math.floor(rss.length / 4)));

  // ---- the ceiling: the appends every such command makes, on the bare store ---------------------------------
  const store: EventStore = sentinel.eventStore;
  const filler = 'x'.repeat(900);
  const event = (type: string): EventToAppend => ({ id: randomUUID(), type, data: { filler, at: new Date().toISOString() }, metadata: { correlationId: randomUUID() } });
  const streams = Array.from({ length: DEPLOYMENTS }, () => `benchceiling-${randomUUID()}`);
  const appendPair = async (client: number) => {
    await store.append(streams[(turns[client]!++ * CLIENTS + client) % DEPLOYMENTS]!, [event('BenchJudged'), event('BenchScaled')]);
    await store.append('benchceiling-ledger', [event('BenchAdmitted')]);
  };
  await drive(WARMUP, CLIENTS, appendPair);
  const ceiling = await drive(COMMANDS, CLIENTS, appendPair);

  const commandsPerS = Math.round(COMMANDS / commands.seconds);
  const ceilingPerS = Math.round(COMMANDS / ceiling.seconds);
  result = {
    bench: 'api',
    store: scratch ? 'postgresql' : 'pglite',
    clients: CLIENTS,
    commands: COMMANDS,
    refused,
    refusals: Object.fromEntries(refusals),
    commands_per_s: commandsPerS,
    p50_ms: percentile(commands.latencies, 0.5),
    p99_ms: percentile(commands.latencies, 0.99),
    cpu_ms_per_command: Math.round(((cpu.user + cpu.system) / 1000 / COMMANDS) * 1000) / 1000,
    ceiling_per_s: ceilingPerS,
    ceiling_p50_ms: percentile(ceiling.latencies, 0.5),
    ceiling_p99_ms: percentile(ceiling.latencies, 0.99),
    ceiling_ratio: Math.round((commandsPerS / ceilingPerS) * 100) / 100,
    rss_first_quarter_mb: mb(Math.max(...quarter)),
    rss_last_quarter_mb: mb(Math.max(...rss.slice(-quarter.length))),
    rss_peak_mb: mb(process.resourceUsage().maxRSS * 1024),
  };
  console.log(`commands ${COMMANDS} scales through HTTP: ${commandsPerS}/s, p50 ${String(result['p50_ms'])} ms, p99 ${String(result['p99_ms'])} ms (targets ≥ 1000/s, p99 < 50 ms); ${refused} refused`);
  console.log(`cpu      ${String(result['cpu_ms_per_command'])} ms of this process's CPU per command (server and clients)`);
  console.log(`ceiling  the same count of 2-event + 1-event appends on the bare store: ${ceilingPerS}/s, p50 ${String(result['ceiling_p50_ms'])} ms, p99 ${String(result['ceiling_p99_ms'])} ms`);
  console.log(`ratio    ${String(result['ceiling_ratio'])} of the ceiling`);
  console.log(`memory   RSS ${String(result['rss_first_quarter_mb'])} MB at most in the first quarter of the run, ${String(result['rss_last_quarter_mb'])} MB in the last; peak ${String(result['rss_peak_mb'])} MB`);
} finally {
  await sentinel.stop();
  await rm(dataDir, { recursive: true, force: true });
  await scratch?.drop();
}
console.log(JSON.stringify(result));
