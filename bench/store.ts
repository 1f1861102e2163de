// Event store benchmark on PostgreSQL: Sentinel's appends against bare pg INSERTs, and subscription catch-up.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:store
// Works in a scratch database it creates on that server and drops afterwards. BENCH_APPEND_STATEMENTS sets the
// store's `appendStatements` (single-stream appends running at once before the rest are grouped).
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { PostgresEventStore } from '../adapters/event-store/postgres/postgres-event-store.js';
import { openPostgres } from '../adapters/postgres/database.js';
import type { EventToAppend } from '../domain/event-store.js';
import { createScratchDatabase } from '../test/support/postgres.js';

const serverUrl = process.env.DATABASE_URL;
if (!serverUrl) {
  process.stderr.write('bench:store needs DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres\n');
  process.exit(2);
}

const POOL = 16;
const STREAMS = 1000;
const SEQUENTIAL_APPENDS = Number(process.env.BENCH_SEQ_APPENDS ?? 5000);
const CONCURRENT_APPENDS = Number(process.env.BENCH_CONCURRENT_APPENDS ?? 20000);
const BATCH_APPENDS = Number(process.env.BENCH_BATCH_APPENDS ?? 4000);
const CATCHUP_EVENTS = Number(process.env.BENCH_CATCHUP_EVENTS ?? 100_000);

interface Figures {
  eps: number;
  p50_ms: number;
  p99_ms: number;
}

/** Runs `total` operations with `inFlight` at a time; each writes `eventsPer` events. */
async function measure(total: number, inFlight: number, eventsPer: number, op: (i: number) => Promise<unknown>): Promise<Figures> {
  const latencies = new Float64Array(total);
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        await op(i);
        latencies[i] = performance.now() - t0;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  if (process.env.BENCH_DEBUG) console.log(`  client cpu per op ${Math.round((used.user + used.system) / total)} us`);
  latencies.sort();
  const pct = (p: number) => round(latencies[Math.min(total - 1, Math.floor(p * total))]!);
  return { eps: Math.round((total * eventsPer) / seconds), p50_ms: pct(0.5), p99_ms: pct(0.99) };
}

function median(rounds: Figures[]): Figures {
  return [...rounds].sort((a, b) => a.eps - b.eps)[Math.floor(rounds.length / 2)]!;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function event(i: number): EventToAppend {
  return {
    id: randomUUID(),
    type: 'ReplicasScaled',
    data: { deploymentId: `d-${i % STREAMS}`, replicas: i % 17, reason: 'bench' },
    metadata: { correlationId: randomUUID(), actor: { id: 'bench', kind: 'system' } },
  };
}

const BARE_TABLE = `
  create table bare_events (
    tx_id xid8 not null default pg_current_xact_id(),
    seq bigserial not null,
    id uuid not null, stream text not null, revision bigint not null, type text not null,
    schema_version integer not null, data jsonb not null, metadata jsonb not null,
    recorded_at timestamptz not null default clock_timestamp(),
    primary key (tx_id, seq), unique (stream, revision), unique (stream, id));
  create index on bare_events (type, tx_id, seq);`;

/** The same rows into a table with the same columns and indexes, as plain INSERTs with client-side revisions. */
function bareAppender(pool: pg.Pool) {
  const revisions = new Map<string, number>();
  return (stream: string, events: EventToAppend[]) => {
    const base = revisions.get(stream) ?? -1;
    revisions.set(stream, base + events.length);
    const values: unknown[] = [];
    const rows = events.map((e, k) => {
      values.push(e.id, stream, base + 1 + k, e.type, 1, JSON.stringify(e.data), JSON.stringify(e.metadata));
      const o = k * 7;
      return `($${o + 1}, $${o + 2}, $${o + 3}, $${o + 4}, $${o + 5}, $${o + 6}, $${o + 7})`;
    });
    return pool.query(
      `insert into bare_events (id, stream, revision, type, schema_version, data, metadata) values ${rows.join(', ')}`,
      values,
    );
  };
}

const scratch = await createScratchDatabase(serverUrl);
const db = openPostgres(scratch.url, { poolMax: POOL });
const bare = new pg.Pool({ connectionString: scratch.url, max: POOL });
try {
  const appendStatements = process.env.BENCH_APPEND_STATEMENTS ? Number(process.env.BENCH_APPEND_STATEMENTS) : undefined;
  const store = await PostgresEventStore.open(db, appendStatements === undefined ? {} : { appendStatements });
  await bare.query(BARE_TABLE);
  const bareAppend = bareAppender(bare);
  const sentinelAppend = (stream: string, events: EventToAppend[]) => store.append(stream, events);
  const streamOf = (i: number) => `deployment-${i % STREAMS}`;

  const workloads = {
    seq: { total: SEQUENTIAL_APPENDS, inFlight: 1, size: 1 },
    append16: { total: CONCURRENT_APPENDS, inFlight: 16, size: 1 },
    batch10: { total: BATCH_APPENDS, inFlight: 16, size: 10 },
  };
  const results: Record<string, { sentinel: Figures; bare: Figures; ratio: number }> = {};
  const ROUNDS = 5;
  for (const [name, w] of Object.entries(workloads)) {
    const run = (append: typeof bareAppend | typeof sentinelAppend, prefix: string, total: number) =>
      measure(total, w.inFlight, w.size, (i) =>
        append(`${prefix}${streamOf(i)}`, Array.from({ length: w.size }, (_, k) => event(i * w.size + k))),
      );
    // Warm both paths (connections, plans), then alternate rounds so neither side gets the quieter moments
    // (checkpoints, autovacuum); each side's figure is its median round.
    await run(sentinelAppend, `warm-${name}-`, Math.ceil(w.total / 10));
    await run(bareAppend, `warm-${name}-`, Math.ceil(w.total / 10));
    const sentinelRounds: Figures[] = [];
    const bareRounds: Figures[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await bare.query('checkpoint').catch(() => undefined);
      sentinelRounds.push(await run(sentinelAppend, `${name}-${round}-`, Math.ceil(w.total / ROUNDS)));
      await bare.query('checkpoint').catch(() => undefined);
      bareRounds.push(await run(bareAppend, `${name}-${round}-`, Math.ceil(w.total / ROUNDS)));
    }
    const sentinel = median(sentinelRounds);
    const bareFigures = median(bareRounds);
    results[name] = { sentinel, bare: bareFigures, ratio: round(sentinel.eps / bareFigures.eps) };
    console.log(
      `${name.padEnd(9)} sentinel ${String(sentinel.eps).padStart(7)} ev/s p50 ${sentinel.p50_ms} ms p99 ${sentinel.p99_ms} ms | ` +
        `bare pg ${String(bareFigures.eps).padStart(7)} ev/s p50 ${bareFigures.p50_ms} ms p99 ${bareFigures.p99_ms} ms | ratio ${results[name]!.ratio}`,
    );
  }

  // Top the log up to CATCHUP_EVENTS more events, then time a subscription from the start of the log.
  const [{ count }] = (await db.query<{ count: string }>('select count(*) from sentinel_events')) as [{ count: string }];
  const existing = Number(count);
  for (let written = 0; written < CATCHUP_EVENTS; ) {
    const n = Math.min(100, CATCHUP_EVENTS - written);
    await store.append(`catchup-${written % STREAMS}`, Array.from({ length: n }, (_, k) => event(written + k)));
    written += n;
  }
  const target = existing + CATCHUP_EVENTS;
  const started = performance.now();
  let received = 0;
  const subscription = store.subscribe({ batchSize: 1000 });
  for await (const _ of subscription) {
    if (++received >= target) break;
  }
  const catchupSeconds = (performance.now() - started) / 1000;
  const catchupEps = Math.round(received / catchupSeconds);
  console.log(`catch-up  ${received} events in ${round(catchupSeconds)} s: ${catchupEps} ev/s`);
  await store.close();

  console.log(
    JSON.stringify({
      bench: 'store',
      append_seq_eps: results.seq!.sentinel.eps,
      append_seq_p50_ms: results.seq!.sentinel.p50_ms,
      append_seq_p99_ms: results.seq!.sentinel.p99_ms,
      append_seq_bare_eps: results.seq!.bare.eps,
      append_seq_ratio: results.seq!.ratio,
      append16_eps: results.append16!.sentinel.eps,
      append16_p50_ms: results.append16!.sentinel.p50_ms,
      append16_p99_ms: results.append16!.sentinel.p99_ms,
      append16_bare_eps: results.append16!.bare.eps,
      append16_ratio: results.append16!.ratio,
      append_batch10_eps: results.batch10!.sentinel.eps,
      append_batch10_p50_ms: results.batch10!.sentinel.p50_ms,
      append_batch10_p99_ms: results.batch10!.sentinel.p99_ms,
      append_batch10_bare_eps: results.batch10!.bare.eps,
      append_batch10_ratio: results.batch10!.ratio,
      catchup_events: received,
      catchup_eps: catchupEps,
    }),
  );
} finally {
  await bare.end();
  await db.close();
  await scratch.drop();
}
