// Worker threads that find the runs of rows in stretches of an export's lines (the hashing), so that a verification
// of a long export uses more than one core; each answer comes back in the order its stretch was sent.
import { Worker } from 'node:worker_threads';
import { type RowRun } from './audit-export-rows.mjs';

/** A stretch of whole lines, back from a worker, and the leading run of rows found in it. */
export interface ScannedLines {
  bytes: Buffer;
  run: RowRun;
}

interface Waiting {
  resolve: (scanned: ScannedLines) => void;
  reject: (error: Error) => void;
}

export class RowScanners {
  private readonly workers: Worker[] = [];
  /** For each worker, the stretches sent to it and not yet answered, oldest first (a worker answers in order). */
  private readonly waiting: Waiting[][] = [];
  private next = 0;

  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      // Without this process's flags: under tsx they would load the TypeScript loader into the worker too, whose
      // module is plain JavaScript (about 0.3 s of CPU saved a worker).
      const worker = new Worker(new URL('./audit-export-worker.mjs', import.meta.url), { execArgv: [] });
      const waiting: Waiting[] = [];
      worker.on('message', ({ bytes, run }: { bytes: Uint8Array; run: RowRun }) => {
        // Nothing waits for an answer that comes after `close`.
        waiting.shift()?.resolve({ bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), run });
      });
      const fail = (error: Error) => {
        for (const each of waiting.splice(0)) each.reject(error);
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`a worker hashing the export's rows exited (${code})`)));
      this.workers.push(worker);
      this.waiting.push(waiting);
    }
  }

  /** Sends the lines to the next worker in turn; they are moved there, not copied, and come back with the answer. */
  scan(lines: Uint8Array): Promise<ScannedLines> {
    const at = this.next;
    this.next = (at + 1) % this.workers.length;
    return new Promise((resolve, reject) => {
      this.waiting[at]!.push({ resolve, reject });
      this.workers[at]!.postMessage(lines, [lines.buffer as ArrayBuffer]);
    });
  }

  /** Stops the workers; a stretch still out is never answered (nothing waits for it once its verification ended). */
  async close(): Promise<void> {
    for (const waiting of this.waiting) waiting.length = 0;
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
