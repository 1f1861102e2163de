// The XID collector: follows a kernel log (e.g. /var/log/kern.log) for NVIDIA XID lines, reading only what was appended.
import { open, type FileHandle } from 'node:fs/promises';
import { CollectorFailure, type Collector, type Sample } from './collector.js';
import { normalBusId } from './pci-bus-id.js';

export interface XidLogOptions {
  file: string;
  /** The Hostname label, as on the GPU metrics. */
  hostname: string;
  now?: () => number;
  /** The most read in one round; a log that grew by more is caught up over the next rounds. */
  maxReadBytes?: number;
}

/** `NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.` (pid and name only on newer drivers). */
const XID_LINE = /NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): ([0-9]+),/;
const DEFAULT_MAX_READ_BYTES = 4 * 1024 * 1024;
/** How much of the file's start is remembered to tell a rewritten file from a grown one. */
const HEAD_BYTES = 256;

interface GpuXids {
  last: number;
  count: number;
}

/**
 * Reports, per GPU (by PCI bus id), the last XID code seen (DCGM_FI_DEV_XID_ERRORS, as dcgm-exporter's gauge) and
 * how many XID lines were seen (sentinel_gpu_xid_errors_total), since the agent started: a repeated XID, invisible
 * in the gauge, shows in the count. Following starts at the end of the log as it is at the first read, so a restart
 * does not report old errors as new ones. A file that was replaced or rewritten (rotation) is read from its start.
 */
export function xidLogCollector(options: XidLogOptions): Collector {
  const now = options.now ?? Date.now;
  const maxRead = options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES;
  const gpus = new Map<string, GpuXids>();
  let position: { inode: number; offset: number; head: Buffer } | undefined;

  const record = (text: string) => {
    for (const line of text.split('\n')) {
      const match = XID_LINE.exec(line);
      if (!match) continue;
      const [, bus = '', code = '0'] = match;
      const busId = normalBusId(bus) ?? bus;
      const seen = gpus.get(busId) ?? { last: 0, count: 0 };
      gpus.set(busId, { last: Number(code), count: seen.count + 1 });
    }
  };

  return {
    name: 'xid',
    async collect() {
      await io(options.file, async () => {
        const handle = await open(options.file, 'r');
        try {
          const { ino, size } = await handle.stat();
          const head = await readAt(handle, 0, Math.min(size, HEAD_BYTES));
          if (position === undefined) position = { inode: ino, offset: size, head };
          // Renamed away (a new inode), truncated, or truncated and written again past the offset (copytruncate): the
          // head of the file tells the last from more lines appended.
          if (ino !== position.inode || size < position.offset || !head.subarray(0, position.head.length).equals(position.head)) {
            position = { inode: ino, offset: 0, head };
          }
          if (position.head.length < HEAD_BYTES) position.head = head;
          if (size > position.offset) {
            const length = Math.min(size - position.offset, maxRead);
            const { text, consumed } = completeLines(await readAt(handle, position.offset, length), length === maxRead);
            record(text);
            position.offset += consumed;
          }
        } finally {
          await handle.close();
        }
      });
      const at = now();
      return [...gpus].flatMap(([busId, xids]): Sample[] => {
        const labels = { pci_bus_id: busId, Hostname: options.hostname };
        return [
          { metric: 'DCGM_FI_DEV_XID_ERRORS', labels, value: xids.last, timestampUnixMs: at },
          { metric: 'sentinel_gpu_xid_errors_total', labels, value: xids.count, timestampUnixMs: at },
        ];
      });
    },
  };
}

async function io<T>(file: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw new CollectorFailure('io', `${file} could not be read: ${(error as Error).message}`);
  }
}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, offset);
  return buffer.subarray(0, bytesRead);
}

/**
 * The complete lines in `chunk`, and how many bytes they took: a line still being written is left for the next
 * read. A full-sized chunk with no line end at all (one enormous line) is passed over whole, so that it cannot stop
 * the reading for good.
 */
function completeLines(chunk: Buffer, fullChunk: boolean): { text: string; consumed: number } {
  const end = chunk.lastIndexOf(0x0a);
  if (end < 0) return { text: '', consumed: fullChunk ? chunk.length : 0 };
  return { text: chunk.subarray(0, end).toString('utf8'), consumed: end + 1 };
}
