// What resources cost per hour: a price table per GPU SKU, vCPU and GiB, overridable per cluster.
import { z } from 'zod';
import type { Footprint } from './policy.js';

const usd = z.number({ error: 'US dollars per hour, zero or more' }).min(0, 'zero or more');
const prices = {
  gpuHourlyUsd: z.record(z.string().min(1), usd),
  /** For a SKU the table does not list. */
  defaultGpuHourlyUsd: usd,
  vcpuHourlyUsd: usd,
  memoryGibHourlyUsd: usd,
};

export const priceTable = z.strictObject({
  ...prices,
  clusters: z.record(z.string().min(1), z.strictObject(prices).partial()).default({}),
});
export type PriceTable = z.infer<typeof priceTable>;

/** On-demand list prices of the large clouds, rounded; replace them with your own. */
export const DEFAULT_PRICES: PriceTable = {
  gpuHourlyUsd: {
    'nvidia-h100-80gb': 6.98,
    'nvidia-a100-80gb': 3.67,
    'nvidia-a100-40gb': 3.06,
    'nvidia-l40s': 1.86,
    'nvidia-a10g': 1.01,
    'nvidia-l4': 0.8,
    'nvidia-t4': 0.53,
  },
  defaultGpuHourlyUsd: 3,
  vcpuHourlyUsd: 0.04,
  memoryGibHourlyUsd: 0.005,
  clusters: {},
};

/** A price file: any part of the table; what it leaves out keeps the default, GPU prices merged by SKU. */
export const priceOverrides = priceTable.partial();

export function withOverrides(base: PriceTable, overrides: z.infer<typeof priceOverrides>): PriceTable {
  return {
    ...base,
    ...overrides,
    gpuHourlyUsd: { ...base.gpuHourlyUsd, ...overrides.gpuHourlyUsd },
    clusters: { ...base.clusters, ...overrides.clusters },
  };
}

// ---- money ----------------------------------------------------------------------------------------------
// Money travels as JSON numbers of US dollars, but every figure Sentinel computes is a whole number of
// micro-dollars, and sums are taken over those integers. A float sum depends on the order of its terms (0.1 + 0.2
// + 0.3 is not 0.3 + 0.2 + 0.1), so two readers of the same placements could disagree by a cent; an integer sum
// cannot. Integers stay exact up to 2^53 micro-dollars, about nine billion dollars.

const MICRO_USD_PER_USD = 1_000_000;

/** Whole micro-dollars of a dollar figure, to the nearest one. */
export function toMicroUsd(usd: number): number {
  return Math.round(usd * MICRO_USD_PER_USD);
}

/** Dollars of whole micro-dollars: at most six decimals, and `toMicroUsd` of it gives them back exactly. */
export function fromMicroUsd(microUsd: number): number {
  return microUsd / MICRO_USD_PER_USD;
}

/** Dollars rounded to whole micro-dollars. */
export function roundUsd(usd: number): number {
  return fromMicroUsd(toMicroUsd(usd));
}

// ---- cost -----------------------------------------------------------------------------------------------

const GIB = 2 ** 30;

/** $/hour of a footprint on a cluster, rounded to whole micro-dollars. */
export function hourlyCost(footprint: Footprint | undefined, clusterId: string, table: PriceTable): number {
  if (!footprint || footprint.replicas === 0) return 0;
  const local = table.clusters[clusterId];
  const gpuPrice = footprint.gpuSku
    ? (local?.gpuHourlyUsd?.[footprint.gpuSku] ?? table.gpuHourlyUsd[footprint.gpuSku] ?? local?.defaultGpuHourlyUsd ?? table.defaultGpuHourlyUsd)
    : 0;
  // Rounded once, here at the source: every admission, decision and read model then carries the same figure.
  return roundUsd(
    footprint.gpus * gpuPrice +
      (footprint.cpuMillicores / 1000) * (local?.vcpuHourlyUsd ?? table.vcpuHourlyUsd) +
      (footprint.memoryBytes / GIB) * (local?.memoryGibHourlyUsd ?? table.memoryGibHourlyUsd),
  );
}
