// Running an external command (nvidia-smi) from a collector: a hard timeout, and a hung command killed with all it started.
import { spawn } from 'node:child_process';
import { CollectorFailure } from './collector.js';

export interface CommandOutput {
  stdout: string;
  stderr: string;
  /** The exit status; a collector decides what a non-zero one means (nvidia-smi exits non-zero with a lost GPU). */
  exitCode: number;
}

export interface CommandLimits {
  timeoutMs: number;
  /** Output beyond this many bytes (stdout and stderr together) is garbage, not telemetry. */
  maxOutputBytes?: number;
}

const DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

/**
 * Runs `file args` and answers its output, or `'missing'` when there is no such program (a node without the
 * NVIDIA driver). The command runs in a process group of its own, so that on a timeout SIGKILL reaches whatever it
 * started too (a shell's children, a driver call stuck in the kernel's uninterruptible sleep still goes once it
 * returns); the answer comes only once the command has exited. Throws a CollectorFailure: `timeout` when it ran past
 * the limit, `parse` when its output was too large, `io` when it could not be started.
 */
export function runCommand(file: string, args: readonly string[], limits: CommandLimits): Promise<CommandOutput | 'missing'> {
  const maxOutput = limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outputBytes = 0;
    let killedFor: CollectorFailure | undefined;
    let exited = false;
    let settled = false;

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      if (killedFor) return reject(killedFor);
      resolve({
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        exitCode: child.exitCode ?? 128,
      });
    };
    const killGroup = (failure: CollectorFailure) => {
      if (killedFor || settled || child.pid === undefined) return;
      killedFor = failure;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // No process is left in the group: the command had exited and nothing it started remains.
      }
      // Once the command itself has exited, nothing more is waited for: a grandchild that escaped the group may
      // hold the pipes open for ever.
      if (exited) finish();
    };
    const timer = setTimeout(
      () => killGroup(new CollectorFailure('timeout', `${file} ${args.join(' ')} did not finish within ${limits.timeoutMs} ms and was killed`)),
      limits.timeoutMs,
    );
    const take = (chunks: Buffer[]) => (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (outputBytes > maxOutput) {
        killGroup(new CollectorFailure('parse', `${file} wrote more than ${maxOutput} bytes and was killed`));
        return;
      }
      chunks.push(chunk);
    };
    child.stdout.on('data', take(stdout));
    child.stderr.on('data', take(stderr));

    child.once('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error.code === 'ENOENT') resolve('missing');
      else reject(new CollectorFailure('io', `${file} could not be started: ${error.message}`));
    });
    child.once('exit', () => {
      exited = true;
      if (killedFor) finish();
    });
    // 'close' comes once the command has exited and its output has been read to the end.
    child.once('close', finish);
  });
}
