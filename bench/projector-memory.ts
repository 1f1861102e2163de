// Memory of a projector that catches up a large log: the process `SENTINEL_ROLE=projector npm start` runs, started on
// empty read models over a log of large decision events (the kind that once made one run out of memory), with its
// peak RSS (VmHWM) read from /proc. The bare baseline, in the same run, is the same process started on an empty log.
// The catch-up runs twice: with the heap cap the projector's manifest sets (NODE_OPTIONS=--max-old-space-size=256),
// and with V8's default, which sizes the heap from the machine's memory and lets garbage pile up towards it.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:projector-memory
// Knobs: BENCH_MEMORY_LOG_MB (1024), BENCH_MEMORY_EVENT_KB (300, the size of each decision), BENCH_MEMORY_HEAP_MB
// (256). Target: peak RSS under 512 MB. Works in scratch databases it creates on that server and drops afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { PostgresEventStore } from '../adapters/event-store/postgres/postgres-event-store.js';
import { openPostgres } from '../adapters/postgres/database.js';
import type { EventToAppend } from '../domain/event-store.js';
import { createScratchDatabase } from '../test/support/postgres.js';

const serverUrl = process.env['DATABASE_URL'];
if (!serverUrl) {
  process.stderr.write('bench:projector-memory needs DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres\n');
  process.exit(2);
}
const LOG_MB = Number(process.env['BENCH_MEMORY_LOG_MB'] ?? 1024);
const EVENT_KB = Number(process.env['BENCH_MEMORY_EVENT_KB'] ?? 300);
const HEAP_MB = Number(process.env['BENCH_MEMORY_HEAP_MB'] ?? 256);
const TARGET_MB = 512;
const metadata = { correlationId: randomUUID(), causationId: randomUUID(), actor: { id: 'bench', kind: 'user' as const } };

/**
 * A decision as version 1 recorded them: the admitted changes it read copied into `inputs.history`, which is what
 * made them large. About `kb` kilobytes of JSON.
 */
function bigDecision(deploymentId: string, kb: number): EventToAppend {
  const entry = { at: new Date().toISOString(), action: 'scale', targetId: deploymentId, actorId: randomUUID(), direction: 'up' };
  const entries = Math.max(1, Math.round((kb * 1024) / JSON.stringify(entry).length));
  const change = {
    action: 'scale',
    at: new Date().toISOString(),
    actor: { id: metadata.actor.id, kind: 'user' },
    target: { kind: 'deployment', id: deploymentId },
    clusterId: randomUUID(),
    namespace: 'bench',
    labels: {},
    before: { replicas: 1, cpuMillicores: 1000, memoryBytes: 1 << 30, gpus: 1, gpuSku: 'nvidia-l4' },
    after: { replicas: 2, cpuMillicores: 2000, memoryBytes: 2 << 30, gpus: 2, gpuSku: 'nvidia-l4' },
  };
  const usage = { replicas: 0, cpuMillicores: 0, memoryBytes: 0, gpus: 0, gpusBySku: {} };
  return {
    id: randomUUID(),
    type: 'PolicyEvaluated',
    schemaVersion: 1,
    data: {
      command: 'ScaleDeployment',
      verdict: 'allow',
      policySet: { stream: 'policyset-global', revision: -1 },
      evaluations: [
        {
          change,
          inputs: {
            usage: { namespace: usage, team: usage, cluster: usage },
            cost: { fleetHourlyUsd: 1, teamHourlyUsd: 0, targetHourlyUsdBefore: 1, targetHourlyUsdAfter: 2, teamMonthToDateUsd: 0, hoursLeftInMonth: 100 },
            history: Array.from({ length: entries }, () => entry),
          },
          verdict: 'allow',
          results: [],
        },
      ],
    },
    metadata,
  };
}

async function fill(url: string): Promise<{ events: number; bytes: number; seconds: number }> {
  const db = await openPostgres(url);
  const store = await PostgresEventStore.open(db);
  const started = performance.now();
  const sample = JSON.stringify(bigDecision(randomUUID(), EVENT_KB).data).length;
  const total = Math.ceil((LOG_MB * 1024 * 1024) / sample);
  let written = 0;
  try {
    // Ten to an append, across 100 deployments' streams.
    while (written < total) {
      const deploymentId = `bench-${written % 100}`;
      const batch = Array.from({ length: Math.min(10, total - written) }, () => bigDecision(deploymentId, EVENT_KB));
      await store.append(`deployment-${deploymentId}`, batch);
      written += batch.length;
      if (written % 500 === 0) process.stdout.write(`  filled ${written}/${total} events\r`);
    }
  } finally {
    await store.close();
    await db.close();
  }
  process.stdout.write('\n');
  return { events: written, bytes: written * sample, seconds: (performance.now() - started) / 1000 };
}

/** The projector role, as `npm start` runs it, on `url`; its /metrics on a port of its own. */
function startProjector(url: string, port: number, heapMb: number | undefined): ChildProcess {
  const { NODE_OPTIONS: _inherited, ...env } = process.env;
  return spawn(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
    env: {
      ...env,
      ...(heapMb ? { NODE_OPTIONS: `--max-old-space-size=${heapMb}` } : {}),
      SENTINEL_ROLE: 'projector',
      DATABASE_URL: url,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      SENTINEL_JWT_SECRET: 'a-bench-signing-secret-of-more-than-32-chars',
    },
    // Kept, and shown only when the projector fails: its shutdown under SIGTERM is not news.
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

async function memoryOf(pid: number): Promise<{ rssMb: number; peakMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMb: Math.round(kb('VmRSS') / 1024), peakMb: Math.round(kb('VmHWM') / 1024) };
}

/** Every projection's lag in events as the projector last sampled it, or undefined before it has. */
async function lagOf(port: number): Promise<number[] | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const lags = [...text.matchAll(/^sentinel_projection_lag_events\{[^}]*\} (\d+)/gm)].map((m) => Number(m[1]));
    return lags.length > 0 ? lags : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a projector until every projection has caught up (lag 0 twice in a row), and reports its memory. */
async function measure(url: string, port: number, heapMb?: number): Promise<{ peakMb: number; rssMb: number; seconds: number }> {
  const child = startProjector(url, port, heapMb);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const started = performance.now();
  let memory: { peakMb: number; rssMb: number };
  let zeroes = 0;
  try {
    for (;;) {
      await sleep(1000);
      if (child.exitCode !== null) throw new Error(`the projector exited with ${child.exitCode} (out of memory?):\n${stderr}`);
      memory = await memoryOf(child.pid!);
      const lags = await lagOf(port);
      zeroes = lags && lags.every((lag) => lag === 0) ? zeroes + 1 : 0;
      if (zeroes >= 2) break;
    }
    return { ...memory, seconds: (performance.now() - started) / 1000 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

const baselineDb = await createScratchDatabase(serverUrl);
const largeDb = await createScratchDatabase(serverUrl);
try {
  console.log(`filling a log of about ${LOG_MB} MB with decisions of about ${EVENT_KB} KB`);
  const log = await fill(largeDb.url);
  console.log(`log      ${log.events} events, ${Math.round(log.bytes / 1024 / 1024)} MB of event data in ${log.seconds.toFixed(1)} s`);
  const bare = await measure(baselineDb.url, 18_181, HEAP_MB);
  console.log(`baseline projector on an empty log: peak RSS ${bare.peakMb} MB`);
  const large = await measure(largeDb.url, 18_182, HEAP_MB);
  console.log(`catch-up projector on the large log, heap capped at ${HEAP_MB} MB: peak RSS ${large.peakMb} MB (target < ${TARGET_MB} MB), RSS after ${large.rssMb} MB, caught up in ${large.seconds.toFixed(1)} s`);
  // The same catch-up again, over a log of the same size on fresh read models, with V8's default heap limit.
  const again = await createScratchDatabase(serverUrl);
  let uncapped: Awaited<ReturnType<typeof measure>>;
  try {
    await fill(again.url);
    uncapped = await measure(again.url, 18_183);
  } finally {
    await again.drop();
  }
  console.log(`the same with V8's default heap limit: peak RSS ${uncapped.peakMb} MB, caught up in ${uncapped.seconds.toFixed(1)} s`);
  console.log(
    JSON.stringify({
      bench: 'projector-memory',
      log_events: log.events,
      log_mb: Math.round(log.bytes / 1024 / 1024),
      rss_peak_mb: large.peakMb,
      heap_cap_mb: HEAP_MB,
      rss_peak_uncapped_mb: uncapped.peakMb,
      baseline_rss_peak_mb: bare.peakMb,
      catch_up_s: Number(large.seconds.toFixed(1)),
      target_mb: TARGET_MB,
      met: large.peakMb < TARGET_MB,
    }),
  );
} finally {
  await baselineDb.drop();
  await largeDb.drop();
}
