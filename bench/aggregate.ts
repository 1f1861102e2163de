// Command latency against a long stream and a short one, with the aggregate cache and snapshots on, and off
// (every command reads and folds its whole stream: the bare baseline, measured in the same run).
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:aggregate   (a scratch database there)
//   npm run bench:aggregate                                                            (embedded PGlite)
// BENCH_AGGREGATE_OPS commands are measured per case (default 300), one at a time.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { PostgresEventStore } from '../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, openPostgres, type Database } from '../adapters/postgres/database.js';
import { migrateSentinel } from '../adapters/postgres/schema.js';
import { PostgresEventLocator, PostgresSnapshotStore } from '../adapters/postgres/snapshot-store.js';
import { deployments } from '../commands/aggregates.js';
import { CommandHandler, streamOf, type CommandContext, type CommandHandlerOptions } from '../commands/command-handler.js';
import { fold } from '../domain/decider.js';
import { deploymentDecider, deploymentEvents, type Deployment, type DeploymentCommand } from '../domain/deployment.js';
import type { EventToAppend } from '../domain/event-store.js';
import { createScratchDatabase, type ScratchDatabase } from '../test/support/postgres.js';

const LONG = 10_000;
const SHORT = 10;
/** Short streams are taken in turn, so that each grows by only a few events over the run. */
const SHORT_STREAMS = 50;
const OPS = Number(process.env.BENCH_AGGREGATE_OPS ?? 300);
const WARMUP = 20;

const serverUrl = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
const scratch: ScratchDatabase | undefined = serverUrl ? await createScratchDatabase(serverUrl) : undefined;
const db: Database = scratch ? openPostgres(scratch.url, { poolMax: 10 }) : await openPglite();
const store = await PostgresEventStore.open(db);
await migrateSentinel(db.knex);
const snapshots = new PostgresSnapshotStore(db);

const context = (): CommandContext => ({ actor: { id: 'bench', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() });
const cluster = { id: randomUUID(), status: 'active' as const, gpuSkus: ['nvidia-a100-80gb'] };
const workload = { id: randomUUID(), status: 'active' as const, specRevision: 1, spec: { image: 'registry.local/llm:1.0' }, gpu: { count: 1, sku: 'nvidia-a100-80gb' } };
const scale = (deploymentId: string, replicas: number): DeploymentCommand => ({ type: 'ScaleDeployment', deploymentId, replicas, cluster: { status: 'active' } });

/** A deployment stream of `length` events (a creation, then scales), decided by the decider and appended in batches. */
async function seed(length: number): Promise<string> {
  const id = randomUUID();
  let state: Deployment = deploymentDecider.initialState;
  let batch: EventToAppend[] = [];
  let revision = -1;
  const decide = (command: DeploymentCommand) => {
    for (const event of deploymentDecider.decide(command, state)) {
      state = fold(deploymentDecider, [event], state);
      batch.push({ id: randomUUID(), type: event.type, schemaVersion: deploymentEvents.version(event.type), data: event.data as Record<string, unknown> });
    }
  };
  const flush = async () => {
    if (batch.length === 0) return;
    revision = (await store.append(streamOf(deployments, id), batch, { expected: revision === -1 ? 'no_stream' : revision })).revision;
    batch = [];
  };
  decide({ type: 'CreateDeployment', deploymentId: id, workload, cluster, replicas: 1, strategy: { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' }, driftPolicy: 'revert' });
  for (let n = 1; n < length; n += 1) {
    decide(scale(id, (n % 7) + 2));
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return id;
}

interface Figures {
  p50_ms: number;
  p99_ms: number;
}

/** One kind of command to time: which handler, on which streams (taken in turn), with derived event ids or not. */
interface Case {
  handler: CommandHandler;
  ids: string[];
  ops: number;
  /** Each command carries derived event ids, as a reactor's do, so the handler also looks for them. */
  keyed?: boolean;
}

/**
 * Runs the cases' scale commands one at a time, taking the cases in turn (so that a slow spell of a shared machine
 * falls on all of them alike); the first `WARMUP` of each are not counted.
 */
async function measure(cases: Case[]): Promise<Figures[]> {
  const latencies = cases.map((): number[] => []);
  const rounds = Math.max(...cases.map((c) => c.ops)) + WARMUP;
  for (let i = 0; i < rounds; i += 1) {
    for (const [k, { handler, ids, ops, keyed }] of cases.entries()) {
      if (i >= ops + WARMUP) continue;
      const id = ids[i % ids.length]!;
      const derived: string[] = [];
      const ctx = keyed ? { ...context(), eventIds: (index: number) => (derived[index] ??= randomUUID()) } : context();
      const t0 = performance.now();
      await handler.execute(deployments, id, (state) => Promise.resolve(scale(id, state.status === 'absent' ? 1 : (state.replicas % 7) + 2)), ctx);
      if (i >= WARMUP) latencies[k]!.push(performance.now() - t0);
    }
  }
  await Promise.all(cases.map((c) => c.handler.snapshotsWritten()));
  return latencies.map((sorted) => {
    sorted.sort((a, b) => a - b);
    const pct = (p: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!);
    return { p50_ms: pct(0.5), p99_ms: pct(0.99) };
  });
}

async function coldLoad(options: CommandHandlerOptions, id: string): Promise<number> {
  const t0 = performance.now();
  await new CommandHandler(store, options).loadState(deployments, id);
  return round(performance.now() - t0);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

const database = scratch ? 'postgres' : 'pglite';
try {
  const t0 = performance.now();
  const long = await seed(LONG);
  const shorts: string[] = [];
  for (let i = 0; i < SHORT_STREAMS; i += 1) shorts.push(await seed(SHORT));
  console.log(`setup    ${database}: one stream of ${LONG} events, ${SHORT_STREAMS} of ${SHORT}, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const on = new CommandHandler(store, { snapshots, eventLocator: new PostgresEventLocator(db) });
  const off = new CommandHandler(store, { cacheSize: 0 });
  const [onShort, onLong, onLongKeyed] = (await measure([
    { handler: on, ids: shorts, ops: OPS },
    { handler: on, ids: [long], ops: OPS },
    { handler: on, ids: [long], ops: OPS, keyed: true },
  ])) as [Figures, Figures, Figures];
  // Without the cache a command on the long stream takes a read of all of it: fewer of those.
  const [offShort, offLong] = (await measure([
    { handler: off, ids: shorts, ops: OPS },
    { handler: off, ids: [long], ops: Math.min(OPS, 100) },
  ])) as [Figures, Figures];
  // A process that has not seen the stream: from the snapshot the runs above left, or from the first event.
  const coldSnapshot = await coldLoad({ snapshots }, long);
  const coldFull = await coldLoad({}, long);

  const line = (name: string, f: Figures) => console.log(`${name.padEnd(34)} p50 ${String(f.p50_ms).padStart(9)} ms   p99 ${String(f.p99_ms).padStart(9)} ms`);
  line(`cache on,  ${SHORT} events`, onShort);
  line(`cache on,  ${LONG} events`, onLong);
  line(`cache on,  ${LONG} events, keyed`, onLongKeyed);
  line(`cache off, ${SHORT} events`, offShort);
  line(`cache off, ${LONG} events`, offLong);
  console.log(`cold load of ${LONG} events: from snapshot ${coldSnapshot} ms, from the first event ${coldFull} ms`);
  const ratio = round(onLong.p99_ms / onShort.p99_ms);
  console.log(`p99 ${LONG} / p99 ${SHORT} with the cache: ${ratio} (target <= 1.3); without: ${round(offLong.p99_ms / offShort.p99_ms)}`);
  console.log(
    JSON.stringify({
      bench: 'aggregate',
      database,
      ops: OPS,
      events_long: LONG,
      events_short: SHORT,
      on: { short: onShort, long: onLong, long_keyed: onLongKeyed },
      off: { short: offShort, long: offLong },
      cold_load_ms: { snapshot: coldSnapshot, full: coldFull },
      p99_ratio_long_short_off: round(offLong.p99_ms / offShort.p99_ms),
      p99_ratio_long_short: ratio,
      // The target by its name: p99 of a command on a stream of 10,000 events within 1.3× of one on a stream of 10.
      p99_ratio_10k_vs_10: ratio,
    }),
  );
} finally {
  await store.close();
  await db.close();
  await scratch?.drop();
}
