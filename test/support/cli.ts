// Runs the sentinel CLI as an operator would: a child process configured only by the variables given.
import { spawn } from 'node:child_process';
import path from 'node:path';

const CLI = path.resolve('app/cli.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Sentinel's own variables from this process's environment are left out, so a test states every one it means. */
export async function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(DATABASE_|KURRENTDB_|SENTINEL_|PORT$|HOST$|LOG_LEVEL$)/.test(name)));
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, stdout, stderr };
}
