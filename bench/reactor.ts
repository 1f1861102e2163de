// Reactor benchmark: action plans submitted through the HTTP API, carried out by the plan and cluster reactors on
// the built-in cluster simulator. Measures plan submitted → change applied on the cluster, and → plan completed.
//   npm run bench:reactor                      (embedded PGlite)
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:reactor   (a scratch database there)
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { loadConfig } from '../app/config.js';
import { SIMULATED_CLUSTER_ID } from '../app/reactors.js';
import { startSentinel } from '../app/sentinel.js';
import type { RecordedEvent } from '../domain/event-store.js';
import { adminClient } from './admin-client.js';
import { createScratchDatabase, type ScratchDatabase } from '../test/support/postgres.js';

const PLANS = Number(process.env['BENCH_REACTOR_PLANS'] ?? 1000);
const DEPLOYMENTS = Number(process.env['BENCH_REACTOR_DEPLOYMENTS'] ?? 50);
const CONCURRENCY = Number(process.env['BENCH_REACTOR_CONCURRENCY'] ?? 8);
const PASSWORD = 'bench-admin-password';

function percentile(sorted: number[], p: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 10) / 10;
}

/** `process`: the simulator runs as a separate process, as a cluster would; `in-process`: inside Sentinel, as `npm start` runs it. */
const SIMULATOR = process.env['BENCH_REACTOR_SIMULATOR'] ?? 'process';
if (SIMULATOR !== 'process' && SIMULATOR !== 'in-process') throw new Error('BENCH_REACTOR_SIMULATOR: process or in-process');

const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-bench-reactor-'));
let simulatorProcess: ChildProcess | undefined;
let external: { url: string; kubeconfig: string } | undefined;
if (SIMULATOR === 'process') {
  // Where Sentinel takes kubeconfig files from by default (SENTINEL_KUBECONFIG_DIR).
  const kubeconfigs = path.join(dataDir, 'kubeconfigs');
  await mkdir(kubeconfigs);
  simulatorProcess = spawn(process.execPath, ['--import', 'tsx', 'adapters/kubernetes/simulator/main.ts', '--kubeconfig', path.join(kubeconfigs, 'cluster.kubeconfig')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: simulatorProcess.stdout! }), 'line')) as [string];
  external = JSON.parse(line) as { url: string; kubeconfig: string };
}
const scratch: ScratchDatabase | undefined = process.env['DATABASE_URL'] ? await createScratchDatabase(process.env['DATABASE_URL']) : undefined;
const sentinel = await startSentinel(
  loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0',
    SENTINEL_DATA_DIR: dataDir,
    ...(scratch ? { DATABASE_URL: scratch.url } : {}),
    SENTINEL_CLUSTER_SIMULATOR: SIMULATOR === 'in-process' ? 'on' : 'off',
    SENTINEL_ADMIN_PASSWORD: PASSWORD,
    SENTINEL_JWT_SECRET: 'b'.repeat(48),
    LOG_LEVEL: 'warn',
  }),
  pino({ level: 'warn' }),
);

const applied: number[] = [];
const completed: number[] = [];
try {
  const { api, headers, post } = await adminClient(sentinel.port, PASSWORD);

  // ---- what the plans change: deployments on the simulated cluster, all available first ----------------
  const clusterId = external
    ? (
        await post('/clusters', {
          name: 'bench',
          apiServer: external.url,
          credentials: { source: 'kubeconfig-file', path: external.kubeconfig },
          region: 'local',
          gpuSkus: ['nvidia-a100-80gb'],
        })
      ).id
    : SIMULATED_CLUSTER_ID;
  const deploymentIds: string[] = [];
  for (let i = 0; i < DEPLOYMENTS; i += 1) {
    const workload = await post('/workloads', { name: `bench-${i}`, namespace: 'bench', type: 'inference', image: `registry.local/model:${i}`, resources: { cpu: '1', memory: '1Gi' } });
    deploymentIds.push((await post('/deployments', { workloadId: workload.id, clusterId, replicas: 1 })).id);
  }
  const available = async (id: string) => {
    const res = await fetch(`${api}/deployments/${id}`, { headers });
    return res.status === 200 && ((await res.json()) as { status: string }).status === 'Available';
  };
  for (const deadline = Date.now() + 120_000; ; ) {
    const ready = await Promise.all(deploymentIds.map(available));
    if (ready.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error('the deployments did not all become available within 2 minutes');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  console.log(`setup    ${DEPLOYMENTS} deployments available on the simulated cluster`);

  // ---- follow the log: a plan's scale → the reactor's DeploymentApplied for it → the plan completed ---------
  const submittedAt = new Map<string, number>();
  const scaleOf = new Map<string, string>();
  const waiting = new Map<string, () => void>();
  let head: string | undefined;
  for (;;) {
    const page = await sentinel.eventStore.readAll({ after: head, limit: 5000 });
    if (page.events.length === 0) break;
    head = page.checkpoint;
  }
  const subscription = sentinel.eventStore.subscribe({
    after: head,
    filter: { types: ['DeploymentScaled', 'DeploymentApplied', 'ActionPlanCompleted', 'ActionPlanFailed', 'ActionPlanRolledBack'] },
  });
  const following = (async () => {
    for await (const event of subscription as AsyncIterable<RecordedEvent>) {
      const now = performance.now();
      const source = event.metadata.source ?? '';
      if (event.type === 'DeploymentScaled' && source.startsWith('plan:')) scaleOf.set(event.id, source.slice('plan:'.length));
      else if (event.type === 'DeploymentApplied') {
        const planId = scaleOf.get(event.metadata.causationId ?? '');
        const at = planId ? submittedAt.get(planId) : undefined;
        if (planId && at !== undefined) {
          applied.push(now - at);
          scaleOf.delete(event.metadata.causationId!);
        }
      } else {
        const { planId } = event.data as { planId: string };
        const at = submittedAt.get(planId);
        if (at === undefined) continue;
        if (event.type !== 'ActionPlanCompleted') console.warn(`plan ${planId}: ${event.type} ${JSON.stringify(event.data)}`);
        else completed.push(now - at);
        submittedAt.delete(planId);
        waiting.get(planId)?.();
      }
    }
  })();

  // ---- the plans: each scales one deployment; a deployment gets its next plan when its last one is done ----
  const replicas = new Map(deploymentIds.map((id) => [id, 1]));
  let next = 0;
  const started = performance.now();
  const worker = async (lane: number) => {
    for (;;) {
      const n = next++;
      if (n >= PLANS) return;
      const deploymentId = deploymentIds[(n * CONCURRENCY + lane) % deploymentIds.length]!;
      const target = replicas.get(deploymentId) === 1 ? 2 : 1;
      replicas.set(deploymentId, target);
      const at = performance.now();
      const plan = await post('/action-plans', { reason: `bench ${n}`, actions: [{ kind: 'scale', deploymentId, replicas: target }] });
      submittedAt.set(plan.id, at);
      const done = new Promise<void>((resolve) => waiting.set(plan.id, resolve));
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      waiting.delete(plan.id);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, lane) => worker(lane)));
  const seconds = (performance.now() - started) / 1000;
  await subscription.close();
  await following.catch(() => undefined);
  console.log(`plans    ${PLANS} submitted, ${CONCURRENCY} at a time, in ${seconds.toFixed(1)} s (${(PLANS / seconds).toFixed(1)} plans/s)`);
} finally {
  await sentinel.stop();
  simulatorProcess?.kill('SIGTERM');
  await rm(dataDir, { recursive: true, force: true });
  await scratch?.drop();
}

// Flat with history: the first and the last thousand plans over the same deployments, in the order they were applied.
const WINDOW = 1000;
const sortedCopy = (values: number[]) => [...values].sort((x, y) => x - y);
const historyRatio =
  applied.length >= 2 * WINDOW
    ? {
        p99_first_ms: percentile(sortedCopy(applied.slice(0, WINDOW)), 0.99),
        p99_last_ms: percentile(sortedCopy(applied.slice(-WINDOW)), 0.99),
      }
    : undefined;
applied.sort((a, b) => a - b);
completed.sort((a, b) => a - b);
// The kernel's high-water mark for this process (Sentinel and the bench's client; a simulator run as its own
// process is not in it): no sampling to miss a peak.
const rssPeakMb = Math.round(process.resourceUsage().maxRSS / 1024);
const result = {
  bench: 'reactor',
  plans: PLANS,
  store: scratch ? 'postgresql' : 'pglite',
  simulator: SIMULATOR,
  concurrency: CONCURRENCY,
  applied: applied.length,
  applied_p50_ms: percentile(applied, 0.5),
  applied_p99_ms: percentile(applied, 0.99),
  completed: completed.length,
  completed_p50_ms: percentile(completed, 0.5),
  completed_p99_ms: percentile(completed, 0.99),
  ...(historyRatio
    ? {
        applied_p99_first_1000_ms: historyRatio.p99_first_ms,
        applied_p99_last_1000_ms: historyRatio.p99_last_ms,
        p99_ratio_last_first: Math.round((historyRatio.p99_last_ms / historyRatio.p99_first_ms) * 100) / 100,
      }
    : {}),
  rss_peak_mb: rssPeakMb,
};
console.log(`applied  ${applied.length} plans: p50 ${result.applied_p50_ms} ms, p99 ${result.applied_p99_ms} ms (target p99 < 1000 ms)`);
console.log(`complete ${completed.length} plans: p50 ${result.completed_p50_ms} ms, p99 ${result.completed_p99_ms} ms`);
if (historyRatio) {
  const ratio = historyRatio.p99_last_ms / historyRatio.p99_first_ms;
  console.log(`history  applied p99: first ${WINDOW} ${historyRatio.p99_first_ms} ms, last ${WINDOW} ${historyRatio.p99_last_ms} ms, ratio ${ratio.toFixed(2)} (target <= 1.3)`);
}
console.log(`memory   peak RSS ${rssPeakMb} MB`);
console.log(JSON.stringify(result));
