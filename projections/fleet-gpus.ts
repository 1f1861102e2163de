// The GPU fleet as the node agents last reported it: each GPU's latest readings, and the fleet summed by cluster,
// node and SKU, with how stale each node's readings are. Read from the telemetry tables, not from events: samples
// are too many to be events (the node facts that matter to decisions are, in the nodes read model).

import type { LatestSample, LatestSamples } from '../domain/telemetry.js';

/** The latest value of one series, as the telemetry store answers it. */
export type Reading = LatestSample;

/** The port the query side reads telemetry through. */
export type TelemetryReadings = LatestSamples;

/** DCGM-exporter names → what the fleet view calls them. */
const FIELDS = {
  DCGM_FI_DEV_GPU_UTIL: 'utilisationPct',
  DCGM_FI_DEV_FB_USED: 'memoryUsedMiB',
  DCGM_FI_DEV_FB_FREE: 'memoryFreeMiB',
  DCGM_FI_DEV_GPU_TEMP: 'temperatureC',
  DCGM_FI_DEV_POWER_USAGE: 'powerW',
  DCGM_FI_DEV_SM_CLOCK: 'smClockMHz',
  DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: 'eccDoubleBitVolatile',
  DCGM_FI_DEV_XID_ERRORS: 'lastXid',
} as const;
type Field = (typeof FIELDS)[keyof typeof FIELDS];

export interface GpuReading {
  clusterId: string;
  node: string;
  gpu: string;
  uuid: string | null;
  sku: string | null;
  /** The pod the GPU is allocated to, as dcgm-exporter labels it when it maps GPUs to pods; null when free. */
  pod: { namespace: string; name: string } | null;
  readings: Partial<Record<Field, number>>;
  readAt: string;
}

export interface GpuGroup {
  gpus: number;
  allocated: number;
  /** Mean utilisation of the GPUs that reported it, in percent; null when none did. */
  utilisationPct: number | null;
  memoryUsedMiB: number;
  memoryTotalMiB: number;
  powerW: number;
  temperatureMaxC: number | null;
}

export interface FleetGpus {
  at: string;
  /** Readings older than this are left out; a node whose newest reading is older than `staleAfterSeconds` is stale. */
  windowSeconds: number;
  staleAfterSeconds: number;
  total: GpuGroup;
  byCluster: (GpuGroup & { clusterId: string })[];
  byNode: (GpuGroup & { clusterId: string; node: string; lastReadingAt: string; staleSeconds: number; stale: boolean })[];
  bySku: (GpuGroup & { sku: string })[];
}

/**
 * Each GPU's latest readings, one entry per GPU (by UUID, else index), in cluster, node and GPU order. A GPU whose
 * labels changed (another pod took it) has a series per label set: each field, and the pod, come from the newest.
 */
export function gpuReadings(samples: readonly Reading[]): GpuReading[] {
  const gpus = new Map<string, { reading: GpuReading; fieldAt: Map<Field, number>; podAt: number }>();
  for (const sample of samples) {
    const field = (FIELDS as Record<string, Field | undefined>)[sample.metric];
    const gpu = sample.labels['gpu'];
    if (!field || gpu === undefined) continue;
    const uuid = sample.labels['UUID'] ?? null;
    const key = `${sample.clusterId}\u0000${sample.nodeName}\u0000${uuid ?? gpu}`;
    let entry = gpus.get(key);
    if (!entry) {
      const reading: GpuReading = { clusterId: sample.clusterId, node: sample.nodeName, gpu, uuid, sku: null, pod: null, readings: {}, readAt: sample.time.toISOString() };
      entry = { reading, fieldAt: new Map(), podAt: -Infinity };
      gpus.set(key, entry);
    }
    const at = sample.time.getTime();
    const { reading } = entry;
    reading.sku ??= sample.labels['modelName'] ?? null;
    if (at >= entry.podAt) {
      entry.podAt = at;
      const pod = sample.labels['pod'];
      reading.pod = pod ? { namespace: sample.labels['namespace'] ?? '', name: pod } : null;
    }
    if (at >= (entry.fieldAt.get(field) ?? -Infinity)) {
      entry.fieldAt.set(field, at);
      reading.readings[field] = sample.value;
    }
    if (sample.time.toISOString() > reading.readAt) reading.readAt = sample.time.toISOString();
  }
  return [...gpus.values()]
    .map((entry) => entry.reading)
    .sort((a, b) => compare(a.clusterId, b.clusterId) || compare(a.node, b.node) || Number(a.gpu) - Number(b.gpu) || compare(a.gpu, b.gpu));
}

/** The fleet summed from each GPU's latest readings. */
export function fleetGpus(samples: readonly Reading[], now: Date, windowSeconds: number, staleAfterSeconds: number): FleetGpus {
  const gpus = gpuReadings(samples);
  const grouped = <K extends string>(keyOf: (gpu: GpuReading) => K) => {
    const groups = new Map<K, GpuReading[]>();
    for (const gpu of gpus) groups.set(keyOf(gpu), [...(groups.get(keyOf(gpu)) ?? []), gpu]);
    return [...groups.entries()];
  };
  return {
    at: now.toISOString(),
    windowSeconds,
    staleAfterSeconds,
    total: summed(gpus),
    byCluster: grouped((gpu) => gpu.clusterId).map(([clusterId, members]) => ({ clusterId, ...summed(members) })),
    byNode: grouped((gpu) => `${gpu.clusterId}\u0000${gpu.node}`).map(([, members]) => {
      const lastReadingAt = members.reduce((latest, gpu) => (gpu.readAt > latest ? gpu.readAt : latest), members[0]!.readAt);
      const staleSeconds = Math.max(0, Math.round((now.getTime() - Date.parse(lastReadingAt)) / 1000));
      return { clusterId: members[0]!.clusterId, node: members[0]!.node, lastReadingAt, staleSeconds, stale: staleSeconds > staleAfterSeconds, ...summed(members) };
    }),
    bySku: grouped((gpu) => gpu.sku ?? 'unknown').map(([sku, members]) => ({ sku, ...summed(members) })),
  };
}

function summed(gpus: readonly GpuReading[]): GpuGroup {
  const utilisation = gpus.map((gpu) => gpu.readings.utilisationPct).filter((value): value is number => value !== undefined);
  const temperatures = gpus.map((gpu) => gpu.readings.temperatureC).filter((value): value is number => value !== undefined);
  const sum = (field: Field) => gpus.reduce((total, gpu) => total + (gpu.readings[field] ?? 0), 0);
  return {
    gpus: gpus.length,
    allocated: gpus.filter((gpu) => gpu.pod !== null).length,
    utilisationPct: utilisation.length === 0 ? null : round(utilisation.reduce((a, b) => a + b, 0) / utilisation.length),
    memoryUsedMiB: sum('memoryUsedMiB'),
    memoryTotalMiB: sum('memoryUsedMiB') + sum('memoryFreeMiB'),
    powerW: round(sum('powerW')),
    temperatureMaxC: temperatures.length === 0 ? null : Math.max(...temperatures),
  };
}

const round = (n: number) => Math.round(n * 10) / 10;
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
