// What one node agent costs its node: the real agent as the image runs it (the bundle `npm run build:agent` makes,
// on plain node) collecting the host and 8 GPUs every 10 s through a fake `nvidia-smi`, pushing to an ingest and
// serving /metrics, measured from /proc after a warm-up: CPU as a share of one core, and the largest resident set seen.
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/support/ports.js';

export interface AgentFootprint {
  cpuPercent: number;
  maxRssMiB: number;
  seconds: number;
}

/** Eight A100 rows in the form the GPU collector asks for (MIG off, so it runs one command per round). */
function nvidiaSmiScript(): string {
  const rows = Array.from({ length: 8 }, (_, gpu) => {
    const bus = `00000000:${(0x07 + gpu * 8).toString(16).toUpperCase().padStart(2, '0')}:00.0`;
    return `${gpu}, GPU-bench-${gpu}, NVIDIA A100-SXM4-80GB, ${bus}, ${40 + gpu}, 30512, 50408, ${50 + gpu}, 312.45, 1410, 1593, 0, 0, 0, 0, 0, 0, 0x0000000000000000, Disabled`;
  });
  return `#!/bin/sh\ncat <<'EOF'\n${rows.join('\n')}\nEOF\n`;
}


/** utime + stime of a process, in seconds (clock ticks of 100 Hz, as on every Linux this runs on). */
async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
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

export async function measureAgent(options: { ingestPort: number; token: string; warmupSeconds: number; seconds: number }): Promise<AgentFootprint> {
  const dir = await mkdtemp(path.join(tmpdir(), 'agent-footprint-'));
  const nvidiaSmi = path.join(dir, 'nvidia-smi');
  await writeFile(nvidiaSmi, nvidiaSmiScript());
  await chmod(nvidiaSmi, 0o755);
  const child = spawn(process.execPath, [await buildAgent()], {
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
    const cpuBefore = await cpuSecondsOf(pid);
    const started = Date.now();
    let maxRssMiB = await rssMiBOf(pid);
    while (Date.now() - started < options.seconds * 1000) {
      await sleep(1000);
      maxRssMiB = Math.max(maxRssMiB, await rssMiBOf(pid));
    }
    const seconds = (Date.now() - started) / 1000;
    const cpuPercent = ((await cpuSecondsOf(pid)) - cpuBefore) / seconds * 100;
    return { cpuPercent, maxRssMiB, seconds };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  }
}
