// Runs the sentinel CLI as an operator would: a child process configured only by the variables given.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { nodeArgsFor } from './entry-points.js';

const CLI = path.resolve('app/cli.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Written to the command's stdin, which is then closed; without it stdin is empty. */
  input?: string;
}

/** Sentinel's own variables from this process's environment are left out, so a test states every one it means. */
export async function runCli(args: string[], env: Record<string, string>, options: CliOptions = {}): Promise<CliResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(DATABASE_|KURRENTDB_|SENTINEL_|PORT$|HOST$|LOG_LEVEL$)/.test(name)));
  const stdin = options.input === undefined ? 'ignore' : 'pipe';
  const child = spawn(process.execPath, [...nodeArgsFor(CLI), ...args], { env: { ...base, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
  if (options.input !== undefined) {
    // A command that exits without reading its stdin closes the pipe: what it printed says why, not EPIPE.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input);
  }
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, stdout, stderr };
}
