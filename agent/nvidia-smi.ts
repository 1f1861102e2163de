// The GPU collector: one `nvidia-smi --query-gpu` per round (and `nvidia-smi mig -lgi` when MIG is on), as dcgm-exporter names and labels.
import { CollectorFailure, type GpuSource, type Sample } from './collector.js';
import { runCommand } from './command.js';
import { normalBusId } from './pci-bus-id.js';

export interface NvidiaSmiOptions {
  /** The nvidia-smi program, a name on PATH or a path. */
  command: string;
  timeoutMs: number;
  /** The Hostname label dcgm-exporter puts on every GPU metric. */
  hostname: string;
  now?: () => number;
}

/** The fields asked of nvidia-smi, in order; memory.free rather than memory.total, since DCGM reports free memory. */
export const QUERY_FIELDS = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'utilization.gpu',
  'memory.used',
  'memory.free',
  'temperature.gpu',
  'power.draw',
  'clocks.sm',
  'clocks.mem',
  'ecc.errors.corrected.volatile.total',
  'ecc.errors.uncorrected.volatile.total',
  'ecc.errors.corrected.aggregate.total',
  'ecc.errors.uncorrected.aggregate.total',
  'retired_pages.single_bit_ecc.count',
  'retired_pages.double_bit.count',
  'clocks_throttle_reasons.active',
  'mig.mode.current',
] as const;

type Field = (typeof QUERY_FIELDS)[number];

/** The numeric fields and the DCGM field each one is reported as (units as nvidia-smi prints them with nounits). */
const DCGM_METRICS: [Field, string][] = [
  ['utilization.gpu', 'DCGM_FI_DEV_GPU_UTIL'],
  ['memory.used', 'DCGM_FI_DEV_FB_USED'],
  ['memory.free', 'DCGM_FI_DEV_FB_FREE'],
  ['temperature.gpu', 'DCGM_FI_DEV_GPU_TEMP'],
  ['power.draw', 'DCGM_FI_DEV_POWER_USAGE'],
  ['clocks.sm', 'DCGM_FI_DEV_SM_CLOCK'],
  ['clocks.mem', 'DCGM_FI_DEV_MEM_CLOCK'],
  ['ecc.errors.corrected.volatile.total', 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL'],
  ['ecc.errors.uncorrected.volatile.total', 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL'],
  ['ecc.errors.corrected.aggregate.total', 'DCGM_FI_DEV_ECC_SBE_AGG_TOTAL'],
  ['ecc.errors.uncorrected.aggregate.total', 'DCGM_FI_DEV_ECC_DBE_AGG_TOTAL'],
  ['retired_pages.single_bit_ecc.count', 'DCGM_FI_DEV_RETIRED_SBE'],
  ['retired_pages.double_bit.count', 'DCGM_FI_DEV_RETIRED_DBE'],
  ['clocks_throttle_reasons.active', 'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS'],
];

/** A device handle nvidia-smi could not get: the GPU fell off the bus, or needs a reset. */
const LOST_LINE = /Unable to determine the device handle for GPU ([0-9A-Fa-f:.]+):/;
/** Values nvidia-smi prints in place of a field of a GPU it has lost. */
const LOST_VALUE = /GPU requires reset|GPU is lost/i;
/** nvidia-smi's answer (exit status 6) on a node whose driver sees no GPU. */
const NO_DEVICES = /No devices were found/;
/** `nvidia-smi mig -lgi`'s answer when MIG is on but no GPU instance was created. */
const NO_INSTANCES = /No GPU instances found/i;
/** A row of the `mig -lgi` table: `|   0  MIG 1g.5gb       19        7          0:1     |` (gpu, profile, profile id, instance id, placement). */
const INSTANCE_ROW = /^\|\s*([0-9]+)\s+MIG\s+(\S+)\s+[0-9]+\s+([0-9]+)\s+[0-9]+:[0-9]+\s*\|$/;

interface Gpu {
  labels: { gpu: string; UUID: string; device: string; modelName: string; pci_bus_id: string; Hostname: string };
  values: Map<Field, number>;
  migEnabled: boolean;
}

/** The GPU collector over nvidia-smi; a node without nvidia-smi has no GPUs, which is no failure. */
export function nvidiaSmiCollector(options: NvidiaSmiOptions): GpuSource {
  const now = options.now ?? Date.now;
  const run = (args: string[]) => runCommand(options.command, args, { timeoutMs: options.timeoutMs });
  return {
    name: 'gpu',
    async collect() {
      const output = await run([`--query-gpu=${QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits']);
      if (output === 'missing') return [];
      const at = now();
      const text = `${output.stdout}\n${output.stderr}`;
      if (NO_DEVICES.test(text)) return [];
      const { gpus, lost } = parseQuery(output.stdout, output.stderr, options.hostname);
      // nvidia-smi exits non-zero when it lost a GPU but still answers for the others.
      if (output.exitCode !== 0 && lost.length === 0) {
        throw new CollectorFailure('exit', `${options.command} exited with status ${output.exitCode}: ${firstLine(text)}`);
      }
      const samples = [...gpus.flatMap((gpu) => gpuSamples(gpu, at)), ...lost.map((labels) => ({ metric: 'sentinel_gpu_lost', labels, value: 1, timestampUnixMs: at }))];
      if (gpus.some((gpu) => gpu.migEnabled)) samples.push(...(await migInstances(await run(['mig', '-lgi']), gpus, options.command, at)));
      return samples;
    },
  };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 200) ?? '';
}

/**
 * The query's rows as healthy GPUs, and the label sets of lost ones: a "device handle" error line (nvidia-smi
 * prints it on either stream) or a row whose fields say the GPU is lost. Any other row that is not a GPU's is a
 * parse failure.
 */
function parseQuery(stdout: string, stderr: string, hostname: string): { gpus: Gpu[]; lost: Record<string, string>[] } {
  const gpus: Gpu[] = [];
  const lost: Record<string, string>[] = [];
  const lostBus = (line: string) => LOST_LINE.exec(line)?.[1];
  for (const line of stderr.split('\n')) {
    const bus = lostBus(line);
    if (bus !== undefined) lost.push({ pci_bus_id: normalBusId(bus) ?? bus, Hostname: hostname });
  }
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const bus = lostBus(line);
    const fields = line.split(',').map((field) => field.trim());
    if (bus !== undefined) lost.push({ pci_bus_id: normalBusId(bus) ?? bus, Hostname: hostname });
    else if (fields.some((field) => LOST_VALUE.test(field))) lost.push(lostLabels(fields, hostname));
    else gpus.push(gpuRow(fields, line, hostname));
  }
  return { gpus, lost };
}

function lostLabels(fields: string[], hostname: string): Record<string, string> {
  const labels: Record<string, string> = { Hostname: hostname };
  const index = fields[QUERY_FIELDS.indexOf('index')];
  const busId = normalBusId(fields[QUERY_FIELDS.indexOf('pci.bus_id')] ?? '');
  if (index !== undefined && /^[0-9]+$/.test(index)) labels.gpu = index;
  if (busId) labels.pci_bus_id = busId;
  return labels;
}

function gpuRow(fields: string[], line: string, hostname: string): Gpu {
  if (fields.length !== QUERY_FIELDS.length) {
    throw new CollectorFailure('parse', `nvidia-smi row has ${fields.length} fields, expected ${QUERY_FIELDS.length}: "${line.slice(0, 200)}"`);
  }
  const field = (name: Field) => fields[QUERY_FIELDS.indexOf(name)] ?? '';
  const index = field('index');
  if (!/^[0-9]+$/.test(index)) throw new CollectorFailure('parse', `nvidia-smi row has index "${index}", expected a number: "${line.slice(0, 200)}"`);
  const values = new Map<Field, number>();
  for (const [name] of DCGM_METRICS) {
    const value = numeric(field(name), name);
    if (value !== undefined) values.set(name, value);
  }
  return {
    labels: {
      gpu: index,
      UUID: field('uuid'),
      device: `nvidia${index}`,
      modelName: field('name'),
      pci_bus_id: normalBusId(field('pci.bus_id')) ?? field('pci.bus_id'),
      Hostname: hostname,
    },
    values,
    migEnabled: field('mig.mode.current') === 'Enabled',
  };
}

/**
 * A field's number, or undefined where nvidia-smi has none to give: `[N/A]`, `[Not Supported]` and the other
 * bracketed notes. Throttle reasons come as a hex bitmask.
 */
function numeric(text: string, name: Field): number | undefined {
  if (/^\[.*\]$/.test(text) || text === 'N/A') return undefined;
  if (/^0x[0-9a-f]+$/i.test(text)) return Number(BigInt(text));
  if (/^-?[0-9]+(\.[0-9]+)?$/.test(text)) return Number(text);
  throw new CollectorFailure('parse', `nvidia-smi field ${name} is "${text.slice(0, 80)}", expected a number`);
}

function gpuSamples(gpu: Gpu, at: number): Sample[] {
  const samples: Sample[] = [];
  for (const [field, metric] of DCGM_METRICS) {
    const value = gpu.values.get(field);
    if (value !== undefined) samples.push({ metric, labels: gpu.labels, value, timestampUnixMs: at });
  }
  samples.push({ metric: 'DCGM_FI_DEV_MIG_MODE', labels: gpu.labels, value: gpu.migEnabled ? 1 : 0, timestampUnixMs: at });
  const { pci_bus_id, gpu: index, Hostname } = gpu.labels;
  samples.push({ metric: 'sentinel_gpu_lost', labels: { pci_bus_id, gpu: index, Hostname }, value: 0, timestampUnixMs: at });
  return samples;
}

/** One sentinel_gpu_mig_instance_info sample per GPU instance, with its parent GPU's labels and dcgm-exporter's MIG labels. */
function migInstances(output: Awaited<ReturnType<typeof runCommand>>, gpus: Gpu[], command: string, at: number): Sample[] {
  if (output === 'missing') return [];
  if (NO_INSTANCES.test(`${output.stdout}\n${output.stderr}`)) return [];
  if (output.exitCode !== 0) {
    throw new CollectorFailure('exit', `${command} mig -lgi exited with status ${output.exitCode}: ${firstLine(`${output.stdout}\n${output.stderr}`)}`);
  }
  if (!/GPU instances:/.test(output.stdout)) {
    throw new CollectorFailure('parse', `${command} mig -lgi did not print its table of GPU instances: "${firstLine(output.stdout)}"`);
  }
  const samples: Sample[] = [];
  for (const line of output.stdout.split('\n')) {
    const match = INSTANCE_ROW.exec(line.trim());
    if (!match) continue;
    const [, index = '', profile = '', instance = ''] = match;
    const parent = gpus.find((gpu) => gpu.labels.gpu === index);
    if (!parent) throw new CollectorFailure('parse', `${command} mig -lgi lists GPU ${index}, which the query did not`);
    samples.push({ metric: 'sentinel_gpu_mig_instance_info', labels: { ...parent.labels, GPU_I_PROFILE: profile, GPU_I_ID: instance }, value: 1, timestampUnixMs: at });
  }
  return samples;
}
