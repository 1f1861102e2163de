// A real Prometheus for tests: started on a free loopback port with a config and data directory of its own,
// killed and cleaned up afterwards. The Debian package's binaries (/usr/bin/prometheus, /usr/bin/promtool).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { eventually } from './eventually.js';
import { freePort } from './ports.js';

/** Why Prometheus tests cannot run here, or undefined when both binaries answer. */
export const PROMETHEUS_SKIP_REASON = missingBinary('prometheus') ?? missingBinary('promtool');

export interface RunningPrometheus {
  /** Base URL, e.g. `http://127.0.0.1:40123/`. */
  url: string;
  /** Everything Prometheus wrote on stdout and stderr so far, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export interface PromtoolResult {
  code: number | null;
  output: string;
}

/** Runs promtool with the given arguments and returns its exit code and everything it printed. */
export function promtool(args: string[], cwd?: string): PromtoolResult {
  const run = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (run.error) throw run.error;
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

/**
 * Starts Prometheus with `config` (an object written as YAML) and resolves once it is ready to answer queries.
 * Rule files in the config should be absolute paths: the config lives in a temporary directory.
 */
export async function startPrometheus(config: unknown): Promise<RunningPrometheus> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sentinel-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, stringify(config));
  const check = promtool(['check', 'config', configFile]);
  if (check.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`promtool check config refused the test config:\n${check.output}`);
  }
  const port = await freePort();
  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}/`;
  const stop = async () => {
    await kill(child, exited);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await eventually(
      `Prometheus ready on ${url}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${output}`);
        return (await fetch(new URL('-/ready', url))).status;
      },
      (status) => status === 200,
      20_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, log: () => output, stop };
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await exited;
}


function missingBinary(name: string): string | undefined {
  const run = spawnSync(name, ['--version']);
  return run.error === undefined ? undefined : `${name} is not installed (apt-get install -y prometheus)`;
}
