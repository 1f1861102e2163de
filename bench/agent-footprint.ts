// What one node agent costs its node: the real agent as the image runs it (the bundle `npm run build:agent` makes,
// on plain node) collecting the host and 8 GPUs every 10 s through a fake `nvidia-smi`, pushing to an ingest and
// serving /metrics, measured from /proc after a warm-up: CPU as a share of one core (user and system apart, and by
// thread), and the largest resident set seen.
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Batch, Hello } from '../adapters/grpc/telemetry-proto.js';
import { startTelemetryIngest, type BatchStore, type StoreOutcome } from '../telemetry/ingest-server.js';
import { freePort } from '../test/support/ports.js';

export interface AgentFootprint {
  /** utime + stime as a share of one core. */
  cpuPercent: number;
  /** Of which in user space (JavaScript, V8, libuv, parsing) ... */
  userPercent: number;
  /** ... and in the kernel on the agent's behalf (system calls, the fork of each command, page faults). */
  systemPercent: number;
  /** Each thread's share, largest first. */
  threads: ThreadShare[];
  maxRssMiB: number;
  seconds: number;
}

export interface ThreadShare {
  /** The name the kernel gives the thread (`comm`), with its id or "main thread". */
  name: string;
  userPercent: number;
  systemPercent: number;
}

export interface MeasureOptions {
  ingestPort: number;
  token: string;
  warmupSeconds: number;
  seconds: number;
  /** A bundle already built (e.g. an older one, to compare); the current one is built when not given. */
  bundle?: string;
  /** node's own options before the bundle; the DaemonSet's (agentNodeOptions) unless given. */
  nodeArgs?: readonly string[];
}

/** The DaemonSet that starts the agent on every node: its command says which options node gets. */
const DAEMONSET = 'infra/kubernetes/base/agent-daemonset.yaml';

/**
 * node's options before the bundle in the DaemonSet's command (`command: [node, <options>, dist/agent/main.mjs]`),
 * so that what is measured is what runs on the nodes.
 */
export async function agentNodeOptions(): Promise<string[]> {
  const manifest = await readFile(DAEMONSET, 'utf8');
  const command = /^\s*command: \[node, (?:(.*), )?dist\/agent\/main\.mjs\]\s*$/m.exec(manifest);
  if (!command) throw new Error(`${DAEMONSET} has no "command: [node, …, dist/agent/main.mjs]"`);
  return command[1] === undefined ? [] : command[1].split(',').map((option) => option.trim());
}

/** Clock ticks per second in /proc/<pid>/stat: USER_HZ, 100 on every Linux this runs on. */
const USER_HZ = 100;

/** Eight A100 rows in the form the GPU collector asks for (MIG off, so it runs one command per round). */
function nvidiaSmiScript(): string {
  const rows = Array.from({ length: 8 }, (_, gpu) => {
    const bus = `00000000:${(0x07 + gpu * 8).toString(16).toUpperCase().padStart(2, '0')}:00.0`;
    return `${gpu}, GPU-bench-${gpu}, NVIDIA A100-SXM4-80GB, ${bus}, ${40 + gpu}, 30512, 50408, ${50 + gpu}, 312.45, 1410, 1593, 0, 0, 0, 0, 0, 0, 0x0000000000000000, Disabled`;
  });
  return `#!/bin/sh\ncat <<'EOF'\n${rows.join('\n')}\nEOF\n`;
}

interface Ticks {
  user: number;
  system: number;
}

/** utime and stime from a /proc stat file (the process's, or one thread's), in clock ticks. */
function ticksOf(stat: string): Ticks {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]), system: Number(fields[12]) };
}

/** Each live thread's name and ticks; a thread that ends between the listing and the read is left out. */
async function threadTicks(pid: number): Promise<Map<string, { name: string } & Ticks>> {
  const threads = new Map<string, { name: string } & Ticks>();
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    try {
      const [stat, comm] = await Promise.all([readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'), readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8')]);
      threads.set(tid, { name: comm.trim(), ...ticksOf(stat) });
    } catch {
      // The thread ended.
    }
  }
  return threads;
}

async function rssMiBOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  return kib / 1024;
}

/** Builds the agent's bundle (dist/agent/main.mjs) as the image does, and answers its path. */
async function buildAgent(): Promise<string> {
  await new Promise<void>((resolve, reject) =>
    execFile('npm', ['run', '--silent', 'build:agent'], (error, _stdout, stderr) => (error ? reject(new Error(`npm run build:agent failed: ${stderr}`)) : resolve())),
  );
  return path.resolve('dist/agent/main.mjs');
}

/**
 * Each thread's share: the main thread (its id is the process's), then the others by id, since node leaves most of
 * its threads (V8's workers, libuv's pool, the inspector) with the name it has. Threads born during the window
 * count from zero; those that ended are lost here (and from the process's total too).
 */
function threadShares(pid: number, before: Map<string, { name: string } & Ticks>, after: Map<string, { name: string } & Ticks>, seconds: number): ThreadShare[] {
  const shares: ThreadShare[] = [];
  for (const [tid, end] of after) {
    const start = before.get(tid) ?? { user: 0, system: 0 };
    shares.push({
      name: tid === String(pid) ? `${end.name} (main thread)` : `${end.name} [${tid}]`,
      userPercent: ((end.user - start.user) / USER_HZ / seconds) * 100,
      systemPercent: ((end.system - start.system) / USER_HZ / seconds) * 100,
    });
  }
  return shares.sort((a, b) => b.userPercent + b.systemPercent - (a.userPercent + a.systemPercent));
}

export async function measureAgent(options: MeasureOptions): Promise<AgentFootprint> {
  const dir = await mkdtemp(path.join(tmpdir(), 'agent-footprint-'));
  const nvidiaSmi = path.join(dir, 'nvidia-smi');
  await writeFile(nvidiaSmi, nvidiaSmiScript());
  await chmod(nvidiaSmi, 0o755);
  const bundle = options.bundle ?? (await buildAgent());
  const child = spawn(process.execPath, [...(options.nodeArgs ?? (await agentNodeOptions())), bundle], {
    env: {
      ...process.env,
      AGENT_SENTINEL_ADDRESS: `127.0.0.1:${options.ingestPort}`,
      AGENT_TOKEN: options.token,
      AGENT_CLUSTER_ID: 'bench',
      AGENT_NODE_NAME: 'bench-gpu-node',
      AGENT_COLLECT_SECONDS: '10',
      AGENT_NVIDIA_SMI: nvidiaSmi,
      AGENT_METRICS_HOST: '127.0.0.1',
      AGENT_METRICS_PORT: String(await freePort()),
      AGENT_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const pid = child.pid!;
    await sleep(options.warmupSeconds * 1000);
    const cpuBefore = ticksOf(await readFile(`/proc/${pid}/stat`, 'utf8'));
    const threadsBefore = await threadTicks(pid);
    const started = Date.now();
    let maxRssMiB = await rssMiBOf(pid);
    while (Date.now() - started < options.seconds * 1000) {
      await sleep(1000);
      maxRssMiB = Math.max(maxRssMiB, await rssMiBOf(pid));
    }
    const cpuAfter = ticksOf(await readFile(`/proc/${pid}/stat`, 'utf8'));
    const threadsAfter = await threadTicks(pid);
    const seconds = (Date.now() - started) / 1000;
    const share = (ticks: number) => (ticks / USER_HZ / seconds) * 100;
    const userPercent = share(cpuAfter.user - cpuBefore.user);
    const systemPercent = share(cpuAfter.system - cpuBefore.system);
    return { cpuPercent: userPercent + systemPercent, userPercent, systemPercent, threads: threadShares(pid, threadsBefore, threadsAfter, seconds), maxRssMiB, seconds };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  }
}

/** One line per figure: the process's share, user and system apart, then each thread's. */
export function describeFootprint(footprint: AgentFootprint): string {
  const pct = (value: number) => `${value.toFixed(3)}%`;
  const threads = footprint.threads
    .filter((thread) => thread.userPercent + thread.systemPercent > 0)
    .map((thread) => `  ${thread.name}: user ${pct(thread.userPercent)}, system ${pct(thread.systemPercent)}`);
  return [
    `agent ${pct(footprint.cpuPercent)} of one core over ${Math.round(footprint.seconds)} s (user ${pct(footprint.userPercent)}, system ${pct(footprint.systemPercent)}), RSS at most ${Math.round(footprint.maxRssMiB)} MiB`,
    ...threads,
  ].join('\n');
}

/** The batches the agent pushes, kept in memory as a database would keep them: the protocol without PostgreSQL, whose CPU is not the agent's. */
class MemoryBatchStore implements BatchStore {
  readonly sampleRetentionMs = 7 * 24 * 3_600_000;
  private readonly highWater = new Map<string, number>();

  async hello(hello: Hello): Promise<number> {
    return this.highWater.get(hello.agentId) ?? 0;
  }

  async store(batch: Batch): Promise<StoreOutcome> {
    const mark = this.highWater.get(batch.agentId) ?? 0;
    if (batch.sequence <= mark) return { stored: false, acknowledged: mark };
    this.highWater.set(batch.agentId, batch.sequence);
    return { stored: true, acknowledged: batch.sequence, droppedIncrease: 0 };
  }

  async maintain(): Promise<void> {}
}

/**
 * The agent alone, against the real ingest on an in-memory store:
 *   tsx bench/agent-footprint.ts
 *   BENCH_AGENT_SECONDS (120), BENCH_AGENT_WARMUP_SECONDS (20); BENCH_AGENT_BUNDLE: a bundle built before (else the
 *   current code is built); BENCH_AGENT_NODE_ARGS: node's options, space-separated (else the DaemonSet's).
 */
async function main(): Promise<void> {
  const token = 'bench-agent-footprint';
  const ingest = await startTelemetryIngest({
    host: '127.0.0.1',
    port: 0,
    store: new MemoryBatchStore(),
    authenticate: async (given) => {
      if (given !== token) throw new Error('unknown token');
      return { id: 'bench', kind: 'service', name: 'bench-agent', role: 'system' };
    },
    metrics: new Registry(),
    logger: pino({ level: 'warn' }),
  });
  try {
    const nodeArgs = process.env.BENCH_AGENT_NODE_ARGS;
    const footprint = await measureAgent({
      ingestPort: ingest.port,
      token,
      warmupSeconds: Number(process.env.BENCH_AGENT_WARMUP_SECONDS ?? 20),
      seconds: Number(process.env.BENCH_AGENT_SECONDS ?? 120),
      ...(process.env.BENCH_AGENT_BUNDLE ? { bundle: path.resolve(process.env.BENCH_AGENT_BUNDLE) } : {}),
      ...(nodeArgs !== undefined ? { nodeArgs: nodeArgs.split(' ').filter((arg) => arg !== '') } : {}),
    });
    console.log(describeFootprint(footprint));
    const round = (value: number) => Math.round(value * 1000) / 1000;
    console.log(
      JSON.stringify({
        bench: 'agent-footprint',
        agent_cpu_pct: round(footprint.cpuPercent),
        agent_user_pct: round(footprint.userPercent),
        agent_system_pct: round(footprint.systemPercent),
        agent_rss_mb: Math.round(footprint.maxRssMiB),
        seconds: Math.round(footprint.seconds),
      }),
    );
  } finally {
    await ingest.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
