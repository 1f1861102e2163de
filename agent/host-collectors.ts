// Host collectors: CPU, memory, disks and network read from /proc and /sys, under node_exporter's names and units.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CollectorFailure, type Collector, type Sample } from './collector.js';

export interface HostRoots {
  /** The host's /proc (a DaemonSet mounts it elsewhere, e.g. /host/proc). */
  procRoot: string;
  sysRoot: string;
  now?: () => number;
}

/** Clock ticks per second in /proc/stat: USER_HZ, which Linux fixes at 100 for user space on every architecture. */
const USER_HZ = 100;
/** /proc/diskstats counts 512-byte sectors whatever the device's own sector size. */
const SECTOR_BYTES = 512;
/** node_exporter's default: partitions, RAM disks, loop and floppy devices would count the same I/O twice or not at all. */
const IGNORED_DISKS = /^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$/;

/*
 * The files are read synchronously, on purpose: /proc and /sys are made by the kernel on the read, from memory, and
 * never wait on a disk, so a read takes microseconds. Read through the promise API each file cost an open, a stat, a
 * read or two and a close, each a trip through libuv's thread pool and back, which was a good part of what the agent
 * spent between rounds.
 */

/** The four host collectors, each failing on its own. */
export function hostCollectors(roots: HostRoots): Collector[] {
  const now = roots.now ?? Date.now;
  const proc = (file: string) => path.join(roots.procRoot, file);
  return [
    { name: 'cpu', collect: async () => cpuSamples(readText(proc('stat')), now()) },
    { name: 'memory', collect: async () => memorySamples(readText(proc('meminfo')), now()) },
    { name: 'disk', collect: async () => diskSamples(readText(proc('diskstats')), now()) },
    {
      name: 'network',
      collect: async () => {
        const at = now();
        return [...networkSamples(readText(proc('net/dev')), at), ...linkSamples(path.join(roots.sysRoot, 'class/net'), at)];
      },
    },
  ];
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new CollectorFailure('io', `${file} could not be read: ${(error as Error).message}`);
  }
}

const sample = (metric: string, labels: Record<string, string>, value: number, timestampUnixMs: number): Sample => ({ metric, labels, value, timestampUnixMs });

/** Whitespace-separated fields after the first `skip`, each a non-negative integer, or a parse failure naming the line. */
function counters(line: string, skip: number, file: string): number[] {
  const fields = line.trim().split(/\s+/).slice(skip);
  return fields.map((field) => {
    if (!/^[0-9]+$/.test(field)) throw new CollectorFailure('parse', `${file}: "${field}" is not a counter in line "${line.trim()}"`);
    return Number(field);
  });
}

const CPU_MODES = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;
const GUEST_MODES = ['user', 'nice'] as const;
/** Single-value lines of /proc/stat and their node_exporter names. */
const STAT_LINES: Record<string, string> = {
  ctxt: 'node_context_switches_total',
  btime: 'node_boot_time_seconds',
  processes: 'node_forks_total',
  procs_running: 'node_procs_running',
  procs_blocked: 'node_procs_blocked',
};

function cpuSamples(text: string, at: number): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const key = line.split(/\s+/, 1)[0] ?? '';
    const cpu = /^cpu([0-9]+)$/.exec(key)?.[1];
    if (cpu !== undefined) {
      const ticks = counters(line, 1, '/proc/stat');
      if (ticks.length < CPU_MODES.length) throw new CollectorFailure('parse', `/proc/stat: ${key} has ${ticks.length} fields, expected at least ${CPU_MODES.length}`);
      CPU_MODES.forEach((mode, i) => samples.push(sample('node_cpu_seconds_total', { cpu, mode }, (ticks[i] ?? 0) / USER_HZ, at)));
      GUEST_MODES.forEach((mode, i) => {
        const value = ticks[CPU_MODES.length + i];
        if (value !== undefined) samples.push(sample('node_cpu_guest_seconds_total', { cpu, mode }, value / USER_HZ, at));
      });
    } else if (key === 'intr') {
      samples.push(sample('node_intr_total', {}, counters(line, 1, '/proc/stat')[0] ?? 0, at));
    } else if (STAT_LINES[key]) {
      samples.push(sample(STAT_LINES[key], {}, counters(line, 1, '/proc/stat')[0] ?? 0, at));
    }
  }
  if (!samples.some((s) => s.metric === 'node_cpu_seconds_total')) throw new CollectorFailure('parse', '/proc/stat has no cpuN lines');
  return samples;
}

/** Every meminfo line as node_exporter names it: `Active(anon): 12 kB` is node_memory_Active_anon_bytes = 12288. */
function memorySamples(text: string, at: number): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const match = /^([A-Za-z0-9_()]+):\s+([0-9]+)(\s+kB)?\s*$/.exec(line);
    if (!match) throw new CollectorFailure('parse', `/proc/meminfo: line "${line}" is not "Name: value [kB]"`);
    const [, key = '', value = '0', kb] = match;
    const name = key.replace(/\(/g, '_').replace(/\)/g, '');
    samples.push(kb ? sample(`node_memory_${name}_bytes`, {}, Number(value) * 1024, at) : sample(`node_memory_${name}`, {}, Number(value), at));
  }
  if (!samples.some((s) => s.metric === 'node_memory_MemTotal_bytes')) throw new CollectorFailure('parse', '/proc/meminfo has no MemTotal');
  return samples;
}

/** /proc/diskstats fields after major, minor and name, in order, with node_exporter's name and the conversion to its unit. */
const count = (value: number) => value;
const sectorsToBytes = (value: number) => value * SECTOR_BYTES;
const msToSeconds = (value: number) => value / 1000;
const DISK_FIELDS: [string, (value: number) => number][] = [
  ['node_disk_reads_completed_total', count],
  ['node_disk_reads_merged_total', count],
  ['node_disk_read_bytes_total', sectorsToBytes],
  ['node_disk_read_time_seconds_total', msToSeconds],
  ['node_disk_writes_completed_total', count],
  ['node_disk_writes_merged_total', count],
  ['node_disk_written_bytes_total', sectorsToBytes],
  ['node_disk_write_time_seconds_total', msToSeconds],
  ['node_disk_io_now', count],
  ['node_disk_io_time_seconds_total', msToSeconds],
  ['node_disk_io_time_weighted_seconds_total', msToSeconds],
  // Linux 4.18 and later.
  ['node_disk_discards_completed_total', count],
  ['node_disk_discards_merged_total', count],
  ['node_disk_discarded_sectors_total', count],
  ['node_disk_discard_time_seconds_total', msToSeconds],
  // Linux 5.5 and later.
  ['node_disk_flush_requests_total', count],
  ['node_disk_flush_requests_time_seconds_total', msToSeconds],
];

function diskSamples(text: string, at: number): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const device = line.trim().split(/\s+/)[2];
    if (device === undefined) throw new CollectorFailure('parse', `/proc/diskstats: line "${line.trim()}" has no device name`);
    if (IGNORED_DISKS.test(device)) continue;
    const values = counters(line, 3, '/proc/diskstats');
    if (values.length < 11) throw new CollectorFailure('parse', `/proc/diskstats: ${device} has ${values.length} fields, expected at least 11`);
    values.forEach((value, i) => {
      const field = DISK_FIELDS[i];
      if (field) samples.push(sample(field[0], { device }, field[1](value), at));
    });
  }
  return samples;
}

/** The columns of /proc/net/dev in order, receive then transmit, as node_exporter names them. */
const NET_FIELDS = [
  ...['bytes', 'packets', 'errs', 'drop', 'fifo', 'frame', 'compressed', 'multicast'].map((f) => `node_network_receive_${f}_total`),
  ...['bytes', 'packets', 'errs', 'drop', 'fifo', 'colls', 'carrier', 'compressed'].map((f) => `node_network_transmit_${f}_total`),
];

function networkSamples(text: string, at: number): Sample[] {
  const samples: Sample[] = [];
  // The first two lines are the table's headings.
  for (const line of text.split('\n').slice(2)) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw new CollectorFailure('parse', `/proc/net/dev: line "${line.trim()}" has no "device:"`);
    const device = line.slice(0, colon).trim();
    const values = counters(line.slice(colon + 1), 0, '/proc/net/dev');
    if (values.length !== NET_FIELDS.length) throw new CollectorFailure('parse', `/proc/net/dev: ${device} has ${values.length} fields, expected ${NET_FIELDS.length}`);
    values.forEach((value, i) => samples.push(sample(NET_FIELDS[i] ?? '', { device }, value, at)));
  }
  return samples;
}

/** node_network_up from /sys/class/net/<device>/operstate: 1 only for "up", as node_exporter has it (so lo, "unknown", is 0). */
function linkSamples(classNet: string, at: number): Sample[] {
  let devices: string[];
  try {
    devices = readdirSync(classNet);
  } catch (error) {
    throw new CollectorFailure('io', `${classNet} could not be listed: ${(error as Error).message}`);
  }
  // /sys/class/net also holds plain files (bonding_masters): an entry without an operstate is not a device.
  const samples: Sample[] = [];
  for (const device of devices) {
    let state: string;
    try {
      state = readFileSync(path.join(classNet, device, 'operstate'), 'utf8');
    } catch {
      continue;
    }
    samples.push(sample('node_network_up', { device }, state.trim() === 'up' ? 1 : 0, at));
  }
  return samples;
}
