// bench:http — what hostile request bodies cost the server: answer latency and the longest event-loop stall while
// they are refused, next to a baseline of small bodies refused by the schema, in the same run. Cases:
//   baseline      — `{}` to POST /auth/login (refused by the schema: 400)
//   deep_auth     — 400,000 nested `[` to POST /auth/login, no token needed (over the 8 KiB limit: 413)
//   deep_api      — 130,000 nested `[` (260 KB) to POST /clusters as admin (deeper than 64 levels: 400)
//   wide_api      — an array of 100,000 numbers (200 KB) to POST /clusters as admin (over 1000 members: 400)
// Each case runs BENCH_HTTP_ROUNDS times one at a time, then as many rounds three at a time.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { loadConfig } from '../app/config.js';
import { startSentinel } from '../app/sentinel.js';

const ROUNDS = Number(process.env['BENCH_HTTP_ROUNDS'] ?? 20);
const ADMIN_PASSWORD = 'bench-admin-password';

interface Case {
  name: string;
  path: string;
  body: string;
  expect: number;
  auth: boolean;
}

const CASES: Case[] = [
  { name: 'baseline', path: '/auth/login', body: '{}', expect: 400, auth: false },
  { name: 'deep_auth', path: '/auth/login', body: '['.repeat(400_000) + ']'.repeat(400_000), expect: 413, auth: false },
  { name: 'deep_api', path: '/clusters', body: '['.repeat(130_000) + ']'.repeat(130_000), expect: 400, auth: true },
  { name: 'wide_api', path: '/clusters', body: `[${Array<string>(100_000).fill('0').join(',')}]`, expect: 400, auth: true },
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-bench-http-'));
const config = loadConfig({
  HOST: '127.0.0.1',
  PORT: '0',
  TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0',
  SENTINEL_DATA_DIR: dataDir,
  SENTINEL_ROLE: 'api,projector',
  SENTINEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
  LOG_LEVEL: 'silent',
  ...(process.env['DATABASE_URL'] ? { DATABASE_URL: process.env['DATABASE_URL'] } : {}),
});
const sentinel = await startSentinel(config, pino({ level: 'silent' }));
const api = `http://127.0.0.1:${sentinel.port}/api/v1`;
const results: Record<string, number> = {};
try {
  const login = await fetch(`${api}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
  });
  const { accessToken } = (await login.json()) as { accessToken: string };

  const send = async (c: Case): Promise<number> => {
    const started = performance.now();
    const res = await fetch(`${api}${c.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(c.auth ? { authorization: `Bearer ${accessToken}` } : {}) },
      body: c.body,
    });
    await res.arrayBuffer();
    if (res.status !== c.expect) throw new Error(`${c.name}: expected ${c.expect}, got ${res.status}`);
    return performance.now() - started;
  };

  console.log(`bench:http on ${config.DATABASE_URL ? 'PostgreSQL' : 'PGlite'}, ${ROUNDS} rounds per case`);
  console.log('case         body bytes   p50 ms   max ms   3-parallel p50 ms   loop stall max ms');
  for (const c of CASES) {
    await send(c); // warm-up
    const stall = monitorEventLoopDelay({ resolution: 1 });
    stall.enable();
    const alone: number[] = [];
    for (let i = 0; i < ROUNDS; i++) alone.push(await send(c));
    const parallel: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const started = performance.now();
      await Promise.all([send(c), send(c), send(c)]);
      parallel.push(performance.now() - started);
    }
    stall.disable();
    alone.sort((a, b) => a - b);
    parallel.sort((a, b) => a - b);
    const stallMaxMs = stall.max / 1e6;
    results[`${c.name}_p50_ms`] = Number(percentile(alone, 50).toFixed(2));
    results[`${c.name}_parallel_p50_ms`] = Number(percentile(parallel, 50).toFixed(2));
    results[`${c.name}_stall_max_ms`] = Number(stallMaxMs.toFixed(2));
    console.log(
      `${c.name.padEnd(12)} ${String(Buffer.byteLength(c.body)).padStart(10)} ${percentile(alone, 50).toFixed(2).padStart(8)} ${alone.at(-1)!.toFixed(2).padStart(8)} ` +
        `${percentile(parallel, 50).toFixed(2).padStart(19)} ${stallMaxMs.toFixed(2).padStart(19)}`,
    );
  }
} finally {
  await sentinel.stop();
  await rm(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify({ bench: 'http', rounds: ROUNDS, ...results }));
