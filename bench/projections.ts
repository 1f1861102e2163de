// Read-side benchmark on PostgreSQL: catch-up of every read model and the audit trail over a log of realistic
// events, and how soon a write accepted by the HTTP API is visible through the query API, on its own and while
// a background load of commands runs.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:projections
//   DATABASE_URL=... npm run bench:projections -- --events 20000     (a quicker run; BENCH_PROJECTION_EVENTS too)
// Other knobs: BENCH_VISIBILITY_SAMPLES (300), BENCH_LOAD_COMMANDS_PER_S (200), BENCH_CLIENTS (worker).
// The write → visible clients (the sampling one and the background load) run in a worker thread, on an event loop
// of their own as real clients elsewhere would, not on Sentinel's; BENCH_CLIENTS=in-process puts them back on
// Sentinel's loop (the figures before this choice). Sentinel itself runs every role in this process either way.
// Works in scratch databases it creates on that server and drops afterwards.
import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { PostgresEventStore } from '../adapters/event-store/postgres/postgres-event-store.js';
import { inProcessLease } from '../adapters/postgres/advisory-lease.js';
import { openPostgres } from '../adapters/postgres/database.js';
import { migrateSentinel } from '../adapters/postgres/schema.js';
import { loadConfig } from '../app/config.js';
import { startSentinel } from '../app/sentinel.js';
import { clusterDecider, clusterEvents, type ClusterEvent } from '../domain/cluster.js';
import type { DomainEvent, EventCatalog } from '../domain/decider.js';
import { fold } from '../domain/decider.js';
import { deploymentDecider, deploymentEvents, type Deployment, type DeploymentCommand } from '../domain/deployment.js';
import type { EventToAppend } from '../domain/event-store.js';
import { workloadDecider, workloadEvents, type WorkloadSpec } from '../domain/workload.js';
import { auditProjector } from '../projections/audit-trail.js';
import { READ_MODEL_PROJECTORS } from '../projections/read-models.js';
import { ProjectionRuntime, type ProjectionMetrics } from '../projections/runtime.js';
import { createScratchDatabase } from '../test/support/postgres.js';
import { runInWorker, runVisibilityClients, type PhaseListener, type VisibilityFigures } from './visibility-clients.js';

const serverUrl = process.env['DATABASE_URL'];
if (!serverUrl) {
  process.stderr.write('bench:projections needs DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres\n');
  process.exit(2);
}
const { values: flags } = parseArgs({ options: { events: { type: 'string' } } });
const CATCHUP_EVENTS = Number(flags.events ?? process.env['BENCH_PROJECTION_EVENTS'] ?? 200_000);
const VISIBILITY_SAMPLES = Number(process.env['BENCH_VISIBILITY_SAMPLES'] ?? 300);
const LOAD_COMMANDS_PER_S = Number(process.env['BENCH_LOAD_COMMANDS_PER_S'] ?? 200);
const CLIENTS_IN_WORKER = (process.env['BENCH_CLIENTS'] ?? 'worker') !== 'in-process';
const metadata = { correlationId: randomUUID(), causationId: randomUUID(), actor: { id: 'bench', kind: 'system' as const } };

function envelopes<E extends DomainEvent>(catalog: EventCatalog<E>, events: E[]): EventToAppend[] {
  return events.map((event) => ({
    id: randomUUID(),
    type: event.type,
    schemaVersion: catalog.version(event.type),
    data: JSON.parse(JSON.stringify(event.data)) as Record<string, unknown>,
    metadata,
  }));
}

/** One workload and its deployment, walked through a realistic life by the real deciders: 13 events. */
function unit(clusterId: string, n: number): { stream: string; events: EventToAppend[] }[] {
  const workloadId = randomUUID();
  const deploymentId = randomUUID();
  const spec: WorkloadSpec = {
    name: `model-${n}`,
    namespace: `team-${n % 40}`,
    type: 'inference',
    image: `registry.local/model:${n}`,
    resources: { cpu: '4', memory: '16Gi', gpu: { count: 1, sku: 'nvidia-a100-80gb' } },
    labels: { team: `team-${n % 12}` },
    slo: { latencyP99Ms: 300 },
  };
  const registered = workloadDecider.decide({ type: 'RegisterWorkload', workloadId, spec }, workloadDecider.initialState);
  let workload = fold(workloadDecider, registered);
  const updated = workloadDecider.decide({ type: 'UpdateWorkloadSpec', workloadId, changes: { image: `registry.local/model:${n}.1` } }, workload);
  workload = fold(workloadDecider, updated, workload);

  let deployment: Deployment = deploymentDecider.initialState;
  const deploymentLog: DomainEvent[] = [];
  const run = (command: DeploymentCommand) => {
    const events = deploymentDecider.decide(command, deployment);
    deployment = fold(deploymentDecider, events, deployment);
    deploymentLog.push(...events);
  };
  run({
    type: 'CreateDeployment',
    deploymentId,
    workload: { id: workloadId, status: 'active', specRevision: 2, spec: workload.status === 'absent' ? {} : workload.spec, gpu: { count: 1, sku: 'nvidia-a100-80gb' } },
    cluster: { id: clusterId, status: 'active', gpuSkus: ['nvidia-a100-80gb'] },
    replicas: 2,
    strategy: { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' },
    driftPolicy: 'revert',
  });
  for (const replicas of [2, 4]) {
    if (replicas === 4) run({ type: 'ScaleDeployment', deploymentId, replicas, cluster: { status: 'active' } });
    run({ type: 'RecordApplying', deploymentId, revision: 1 });
    run({ type: 'RecordApplied', deploymentId, revision: 1 });
    run({ type: 'RecordRolloutProgress', deploymentId, revision: 1, readyReplicas: replicas - 1, updatedReplicas: replicas });
    run({ type: 'RecordAvailable', deploymentId, revision: 1, readyReplicas: replicas });
  }
  return [
    { stream: `workload-${workloadId}`, events: envelopes(workloadEvents, [...registered, ...updated]) },
    { stream: `deployment-${deploymentId}`, events: envelopes(deploymentEvents, deploymentLog as never) },
  ];
}

async function fill(store: PostgresEventStore, total: number): Promise<number> {
  const clusterIds = Array.from({ length: 20 }, () => randomUUID());
  let appended = 0;
  for (const [i, clusterId] of clusterIds.entries()) {
    const events: ClusterEvent[] = clusterDecider.decide(
      {
        type: 'RegisterCluster',
        clusterId,
        spec: { name: `cluster-${i}`, apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' }, region: 'r', labels: {}, gpuSkus: ['nvidia-a100-80gb'] },
      },
      clusterDecider.initialState,
    );
    appended += (await store.append(`cluster-${clusterId}`, envelopes(clusterEvents, events))).revision + 1;
  }
  let n = 0;
  const worker = async () => {
    while (appended < total) {
      const streams = unit(clusterIds[n % clusterIds.length]!, n++);
      for (const { stream, events } of streams) {
        await store.append(stream, events, { expected: 'no_stream' });
        appended += events.length;
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return appended;
}

function percentile(sorted: number[], p: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 100) / 100;
}

// ---- catch-up -------------------------------------------------------------------------------------------

const catchupDb = await createScratchDatabase(serverUrl);
let catchupEps: number;
let catchupCpuUs: number;
let events: number;
try {
  const db = openPostgres(catchupDb.url, { poolMax: 16 });
  const store = await PostgresEventStore.open(db);
  await migrateSentinel(db.knex);
  const filled = performance.now();
  events = await fill(store, CATCHUP_EVENTS);
  console.log(`log      ${events} events written in ${((performance.now() - filled) / 1000).toFixed(1)} s`);

  let head: string | undefined;
  for (;;) {
    const page = await store.readAll({ after: head, limit: 5000 });
    if (page.events.length === 0) break;
    head = page.checkpoint;
  }
  const projectors = [...READ_MODEL_PROJECTORS, auditProjector];
  // Where the time goes: each projector's batches (apply and checkpoint, one transaction each), summed.
  const spent = new Map<string, { events: number; seconds: number; batches: number }>();
  const metrics: ProjectionMetrics = {
    applied(projector, count, seconds) {
      const entry = spent.get(projector) ?? { events: 0, seconds: 0, batches: 0 };
      spent.set(projector, { events: entry.events + count, seconds: entry.seconds + seconds, batches: entry.batches + 1 });
    },
    lag: () => undefined,
  };
  const runtime = new ProjectionRuntime(db.knex, store, projectors, {
    logger: pino({ level: 'warn' }),
    lease: inProcessLease,
    batchSize: 1000,
    metrics,
    lagSampleMs: 3_600_000,
  });
  const started = performance.now();
  // This process's CPU over the catch-up: on a machine shared with other work, steadier than the wall clock.
  const cpuBefore = process.cpuUsage();
  await runtime.start();
  const caughtUp = await runtime.waitFor(head!, projectors.map((p) => p.name), 900_000);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await runtime.stop();
  if (!caughtUp) throw new Error('the projectors did not catch up within 15 minutes');
  catchupEps = Math.round(events / seconds);
  catchupCpuUs = Math.round((cpu.user + cpu.system) / events);
  console.log(
    `catch-up ${events} events into ${projectors.length} projections in ${seconds.toFixed(1)} s: ${catchupEps} events/s, ${catchupCpuUs} µs of this process's CPU an event`,
  );
  for (const [name, { events: applied, seconds: busy, batches }] of [...spent].sort((a, b) => b[1].seconds - a[1].seconds)) {
    console.log(`         ${name.padEnd(17)} ${String(applied).padStart(7)} events in ${String(batches).padStart(4)} transactions, ${busy.toFixed(1)} s in them`);
  }
  await store.close();
  await db.close();
} finally {
  await catchupDb.drop();
}

// ---- write accepted → visible in a query, through HTTP ---------------------------------------------------

const visibleDb = await createScratchDatabase(serverUrl);
let figures: VisibilityFigures | undefined;
// Sentinel's event loop while the loaded samples run: how long a ready callback waits for its turn.
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
let loadedCpu = { user: 0, system: 0 };
let poolWaits: AcquireWaits | undefined;
let loadedSeconds = 0;
try {
  const sentinel = await startSentinel(
    loadConfig({ DATABASE_URL: visibleDb.url, HOST: '127.0.0.1', PORT: '0', TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0', LOG_LEVEL: 'warn', SENTINEL_ADMIN_PASSWORD: 'bench-admin-password', SENTINEL_JWT_SECRET: 'x'.repeat(48) }),
    pino({ level: 'warn' }),
  );
  const api = `http://127.0.0.1:${sentinel.port}/api/v1`;
  try {
    const login = await fetch(`${api}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'bench-admin-password' }),
    });
    const { accessToken } = (await login.json()) as { accessToken: string };
    let cpuBefore = process.cpuUsage();
    let startedAt = 0;
    const scrape = () => fetch(`http://127.0.0.1:${sentinel.port}/metrics`).then((response) => response.text());
    let poolBefore: Promise<string> = Promise.resolve('');
    let poolAfter: Promise<string> = Promise.resolve('');
    const listener: PhaseListener = {
      loadedSamples(phase) {
        if (phase === 'start') {
          loopDelay.enable();
          cpuBefore = process.cpuUsage();
          startedAt = performance.now();
          poolBefore = scrape();
        } else {
          loopDelay.disable();
          loadedCpu = process.cpuUsage(cpuBefore);
          loadedSeconds = (performance.now() - startedAt) / 1000;
          poolAfter = scrape();
        }
      },
    };
    const options = { api, accessToken, samples: VISIBILITY_SAMPLES, commandsPerSecond: LOAD_COMMANDS_PER_S };
    figures = CLIENTS_IN_WORKER ? await runInWorker(options, listener) : await runVisibilityClients(options, listener);
    poolWaits = acquireWaits(await poolBefore, await poolAfter);
  } finally {
    await sentinel.stop();
  }
} finally {
  await visibleDb.drop();
}
const { quiet, loaded, loadedReads, load } = figures;
quiet.sort((a, b) => a - b);
loaded.sort((a, b) => a - b);
loadedReads.sort((a, b) => a - b);
const p50 = percentile(quiet, 0.5);
const p99 = percentile(quiet, 0.99);
const loadedP50 = percentile(loaded, 0.5);
const loadedP99 = percentile(loaded, 0.99);
const loadRate = Math.round(load.sent / load.seconds);
console.log(`visible  ${quiet.length} writes: p50 ${p50} ms, p99 ${p99} ms, max ${percentile(quiet, 1)} ms`);
console.log(
  `visible  under ${loadRate} commands/s (${load.failed} failed ${JSON.stringify(load.statuses)}): ${loaded.length} writes: p50 ${loadedP50} ms, p99 ${loadedP99} ms, max ${percentile(loaded, 1)} ms`,
);
console.log(
  `         under load, the query that showed each write took p50 ${percentile(loadedReads, 0.5)} ms, p99 ${percentile(loadedReads, 0.99)} ms by itself; ` +
    `${poolWaits ? `statements waited for a pool connection ${poolWaits.count} times, ${poolWaits.meanMs} ms on average, p99 ≤ ${poolWaits.p99Ms} ms` : 'no pool figures'}`,
);
const loopP50 = Math.round(loopDelay.percentile(50) / 1e4) / 100;
const loopP99 = Math.round(loopDelay.percentile(99) / 1e4) / 100;
const loadedCpuRatio = Math.round(((loadedCpu.user + loadedCpu.system) / 1e6 / loadedSeconds) * 100) / 100;
console.log(
  `         clients ${CLIENTS_IN_WORKER ? 'in a worker thread of this process (BENCH_CLIENTS=in-process: on Sentinel\'s event loop, as before)' : "on Sentinel's event loop (BENCH_CLIENTS=worker: in a worker thread)"}; under load Sentinel's event loop waited p50 ${loopP50} ms, p99 ${loopP99} ms, and this process used ${loadedCpuRatio} cores`,
);
// The kernel's high-water mark for this process, which ran the catch-up and then Sentinel: no sampling to miss a peak.
const rssPeakMb = Math.round(process.resourceUsage().maxRSS / 1024);
console.log(`memory   peak RSS ${rssPeakMb} MB`);
console.log(
  JSON.stringify({
    bench: 'projections',
    events,
    catchup_eps: catchupEps,
    catchup_cpu_us_per_event: catchupCpuUs,
    visible_p50_ms: p50,
    visible_p99_ms: p99,
    samples: quiet.length,
    visible_p50_under_load_ms: loadedP50,
    visible_p99_under_load_ms: loadedP99,
    load_commands_per_s: loadRate,
    load_failed: load.failed,
    clients: CLIENTS_IN_WORKER ? 'worker' : 'in-process',
    read_p99_under_load_ms: percentile(loadedReads, 0.99),
    pool_wait_mean_under_load_ms: poolWaits?.meanMs ?? null,
    pool_wait_p99_under_load_ms: poolWaits?.p99Ms ?? null,
    loop_delay_p99_under_load_ms: loopP99,
    cpu_cores_under_load: loadedCpuRatio,
    rss_peak_mb: rssPeakMb,
  }),
);

interface AcquireWaits {
  count: number;
  meanMs: number;
  /** The upper bound of the histogram bucket the 99th percentile falls in. */
  p99Ms: number;
}

/** The pool's acquire waits between two scrapes of /metrics (sentinel_db_pool_acquire_seconds). */
function acquireWaits(before: string, after: string): AcquireWaits | undefined {
  const histogram = (text: string) => {
    const buckets = new Map<string, number>();
    let sum = 0;
    let count = 0;
    for (const line of text.split('\n')) {
      const bucket = /^sentinel_db_pool_acquire_seconds_bucket\{le="([^"]+)"\} (\S+)$/.exec(line);
      if (bucket) buckets.set(bucket[1]!, Number(bucket[2]));
      else if (line.startsWith('sentinel_db_pool_acquire_seconds_sum ')) sum = Number(line.split(' ')[1]);
      else if (line.startsWith('sentinel_db_pool_acquire_seconds_count ')) count = Number(line.split(' ')[1]);
    }
    return { buckets, sum, count };
  };
  const [first, last] = [histogram(before), histogram(after)];
  const count = last.count - first.count;
  if (count <= 0) return undefined;
  const p99 = [...last.buckets].find(([le, n]) => n - (first.buckets.get(le) ?? 0) >= count * 0.99)?.[0];
  return { count, meanMs: Math.round(((last.sum - first.sum) / count) * 1e4) / 10, p99Ms: p99 === undefined || p99 === '+Inf' ? Number.POSITIVE_INFINITY : Number(p99) * 1000 };
}
