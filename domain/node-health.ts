// GPU health facts from telemetry samples: what became true or stopped being true on a node's GPUs, edge-triggered.
//
// Pure functions over what is known of a node's GPUs (their conditions, folded from the facts already recorded) and
// one batch's samples. A fact is produced when a condition starts or ends, never at every sample, so a GPU that is
// throttled for a day is two facts, not thousands.
import { z } from 'zod';
import type { DomainEvent } from './decider.js';
import { timestamp } from './schemas.js';

// ---- samples ------------------------------------------------------------------------------------------

/** The DCGM-exporter (and agent) metrics health facts are derived from; every other sample is ignored. */
export const HEALTH_METRICS = {
  xid: 'DCGM_FI_DEV_XID_ERRORS',
  eccDbeVolatile: 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL',
  eccDbeAggregate: 'DCGM_FI_DEV_ECC_DBE_AGG_TOTAL',
  throttleReasons: 'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS',
  gpuLost: 'sentinel_gpu_lost',
} as const;
export type HealthMetric = (typeof HEALTH_METRICS)[keyof typeof HEALTH_METRICS];

const healthMetricNames: ReadonlySet<string> = new Set(Object.values(HEALTH_METRICS));

/** A sample as an agent sends it (the shape of the telemetry contract's `Sample`). */
export interface RawSample {
  metric: string;
  labels: Record<string, string>;
  value: number;
  timestampUnixMs: number;
}

/** A health-relevant sample, trimmed to what facts are derived from: the GPU it is about, its value and its time. */
export const healthSample = z.object({
  metric: z.enum(Object.values(HEALTH_METRICS) as [HealthMetric, ...HealthMetric[]]),
  gpu: z.string().min(1),
  value: z.number(),
  at: timestamp,
});
export type HealthSample = z.infer<typeof healthSample>;

/**
 * The GPU a sample is about: its `UUID` label when present (stable across reboots and slot changes), else its
 * `pci_bus_id` (what `sentinel_gpu_lost` carries, since a GPU off the bus has no readable UUID), else its `gpu`
 * index. Undefined when the sample names no GPU.
 */
export function gpuIdentity(labels: Record<string, string>): string | undefined {
  return nonEmpty(labels['UUID']) ?? nonEmpty(labels['pci_bus_id']) ?? nonEmpty(labels['gpu']);
}

/**
 * The health-relevant samples of a batch, trimmed. A sample's time is its own timestamp; one sent without a
 * timestamp (0) takes the time the batch was received. Samples that name no GPU or carry no number are dropped.
 */
export function healthSamples(samples: readonly RawSample[], receivedAt: Date): HealthSample[] {
  const trimmed: HealthSample[] = [];
  for (const sample of samples) {
    if (!healthMetricNames.has(sample.metric) || !Number.isFinite(sample.value)) continue;
    const gpu = gpuIdentity(sample.labels);
    if (gpu === undefined) continue;
    const at = sample.timestampUnixMs > 0 ? new Date(sample.timestampUnixMs) : receivedAt;
    trimmed.push({ metric: sample.metric as HealthMetric, gpu, value: sample.value, at: at.toISOString() });
  }
  return trimmed;
}

// ---- XID table ----------------------------------------------------------------------------------------

/**
 * XID errors after which a node should not run work until its GPU is reset or repaired (NVIDIA's XID catalogue:
 * each needs a GPU reset or node reboot to recover). Other XIDs, such as 13, 31 or 43 (a program's fault), are
 * recorded but leave the node fit.
 */
export const UNFIT_XIDS: Readonly<Record<number, string>> = {
  48: 'double-bit ECC error',
  62: 'internal micro-controller halt',
  63: 'ECC page retirement or row remapping event',
  64: 'ECC page retirement or row remapping failure',
  74: 'NVLink error',
  79: 'GPU has fallen off the bus',
  94: 'contained ECC error',
  95: 'uncontained ECC error',
  119: 'GSP RPC timeout',
  120: 'GSP error',
  140: 'unrecovered ECC error',
};

export function isUnfitXid(xid: number): boolean {
  return Object.hasOwn(UNFIT_XIDS, xid);
}

// ---- throttling ---------------------------------------------------------------------------------------

/** `DCGM_FI_DEV_CLOCK_THROTTLE_REASONS` bits (NVML's clocks-throttle reasons). */
export const THROTTLE_BITS = {
  swPowerCap: 0x4,
  hwSlowdown: 0x8,
  swThermal: 0x20,
  hwThermal: 0x40,
  hwPowerBrake: 0x80,
} as const;

export type ThrottleCause = 'thermal' | 'power';

/**
 * The causes a throttle-reasons mask names. HW slowdown (0x8) is raised for heat and for a power brake alike;
 * drivers that say which set 0x40 or 0x80 with it, so 0x8 alone is counted as thermal, the commoner cause.
 */
export function throttleCauses(mask: number): Set<ThrottleCause> {
  const causes = new Set<ThrottleCause>();
  const bits = Math.trunc(mask);
  const { swPowerCap, hwSlowdown, swThermal, hwThermal, hwPowerBrake } = THROTTLE_BITS;
  if (bits & (swThermal | hwThermal)) causes.add('thermal');
  if (bits & (swPowerCap | hwPowerBrake)) causes.add('power');
  if (bits & hwSlowdown && !(bits & (hwThermal | hwPowerBrake))) causes.add('thermal');
  return causes;
}

// ---- facts --------------------------------------------------------------------------------------------

const gpu = z.string().min(1);
const count = z.number().int().min(0);

/** The data of each GPU health fact; the node aggregate records them as events of these names. */
export const gpuFactSchemas = {
  /** `unfit`: the XID is in `UNFIT_XIDS`. */
  GpuXidErrorObserved: z.object({ gpu, xid: z.number().int(), observedAt: timestamp, unfit: z.boolean() }),
  /** `counter`: which DCGM counter grew (aggregate never resets; volatile resets when the driver reloads). */
  GpuEccDoubleBitErrorsGrew: z.object({ gpu, counter: z.enum(['aggregate', 'volatile']), from: count, to: count, observedAt: timestamp }),
  GpuThrottlingBegan: z.object({ gpu, cause: z.enum(['thermal', 'power']), reasons: count, at: timestamp }),
  GpuThrottlingEnded: z.object({ gpu, cause: z.enum(['thermal', 'power']), reasons: count, at: timestamp }),
  GpuFellOffBus: z.object({ gpu, at: timestamp }),
  GpuBackOnBus: z.object({ gpu, at: timestamp }),
};
type GpuFactSchemas = typeof gpuFactSchemas;
export type GpuFact = { [T in keyof GpuFactSchemas]: DomainEvent<T, z.infer<GpuFactSchemas[T]>> }[keyof GpuFactSchemas];
export type GpuFactType = GpuFact['type'];

/** Why a fact makes its node unfit to run work, or undefined when it does not. */
export function unfitReason(fact: GpuFact): string | undefined {
  switch (fact.type) {
    case 'GpuXidErrorObserved':
      return fact.data.unfit ? `XID ${fact.data.xid} (${UNFIT_XIDS[fact.data.xid]}) on GPU ${fact.data.gpu}` : undefined;
    case 'GpuEccDoubleBitErrorsGrew':
      return `double-bit ECC errors on GPU ${fact.data.gpu} grew from ${fact.data.from} to ${fact.data.to}`;
    case 'GpuFellOffBus':
      return `GPU ${fact.data.gpu} fell off the bus`;
    default:
      return undefined;
  }
}

// ---- conditions ---------------------------------------------------------------------------------------

/** A condition that is on or off, and when it last changed. */
export interface Edge {
  active: boolean;
  at: string;
  reasons?: number;
}

/** What is known of one GPU, folded from its facts. */
export interface GpuCondition {
  thermal?: Edge;
  power?: Edge;
  offBus?: Edge;
  /** The last XID occurrence time, and every code recorded at that time. */
  xid?: { at: string; codes: number[] };
  /** The last recorded double-bit ECC count of each counter. */
  eccDbe?: { aggregate?: number; volatile?: number };
}

export type GpuConditions = Readonly<Record<string, GpuCondition>>;

/** The conditions after a fact. */
export function applyGpuFact(conditions: GpuConditions, fact: GpuFact): GpuConditions {
  const current = conditions[fact.data.gpu] ?? {};
  return { ...conditions, [fact.data.gpu]: withFact(current, fact) };
}

function withFact(condition: GpuCondition, fact: GpuFact): GpuCondition {
  switch (fact.type) {
    case 'GpuXidErrorObserved': {
      const { xid, observedAt } = fact.data;
      const sameTime = condition.xid !== undefined && sameInstant(condition.xid.at, observedAt);
      return { ...condition, xid: { at: observedAt, codes: sameTime ? [...condition.xid!.codes, xid] : [xid] } };
    }
    case 'GpuEccDoubleBitErrorsGrew':
      return { ...condition, eccDbe: { ...condition.eccDbe, [fact.data.counter]: fact.data.to } };
    case 'GpuThrottlingBegan':
    case 'GpuThrottlingEnded':
      return {
        ...condition,
        [fact.data.cause]: { active: fact.type === 'GpuThrottlingBegan', at: fact.data.at, reasons: fact.data.reasons },
      };
    case 'GpuFellOffBus':
    case 'GpuBackOnBus':
      return { ...condition, offBus: { active: fact.type === 'GpuFellOffBus', at: fact.data.at } };
  }
}

/**
 * The facts one batch's samples establish, given the conditions known before it, in the order they happened.
 *
 * - XID: `DCGM_FI_DEV_XID_ERRORS` holds the code of the GPU's most recent XID, stamped with the time the driver
 *   recorded it (DCGM's own field timestamp), so a gauge read again and again repeats the same code and time. An
 *   occurrence is a non-zero code at a time later than the last recorded occurrence, or at that same time with a
 *   code not yet recorded for it. A code at an earlier time, a repeat, and 0 (no XID) are not news.
 * - ECC: a double-bit count above the last recorded count of its counter has grown (a GPU first seen with errors
 *   already counted grew from 0: nothing says they are old). The aggregate counter is used when the batch has it
 *   for the GPU, since the volatile one resets when the driver reloads and then only counts again once past its
 *   old value.
 * - Throttling and the bus: a change of state at a time after the condition's last change. A sample at or before
 *   it (a resent or reordered batch) is not news.
 */
export function deriveGpuFacts(conditions: GpuConditions, samples: readonly HealthSample[]): GpuFact[] {
  const facts: GpuFact[] = [];
  let known = conditions;
  const aggregateReported = new Set(samples.filter((s) => s.metric === HEALTH_METRICS.eccDbeAggregate).map((s) => s.gpu));
  for (const sample of inTimeOrder(samples)) {
    if (sample.metric === HEALTH_METRICS.eccDbeVolatile && aggregateReported.has(sample.gpu)) continue;
    for (const fact of factsOf(known[sample.gpu] ?? {}, sample)) {
      facts.push(fact);
      known = applyGpuFact(known, fact);
    }
  }
  return facts;
}

function factsOf(condition: GpuCondition, sample: HealthSample): GpuFact[] {
  const { gpu, value, at } = sample;
  switch (sample.metric) {
    case HEALTH_METRICS.xid:
      return isNewXid(condition, Math.trunc(value), at)
        ? [{ type: 'GpuXidErrorObserved', data: { gpu, xid: Math.trunc(value), observedAt: at, unfit: isUnfitXid(Math.trunc(value)) } }]
        : [];
    case HEALTH_METRICS.eccDbeAggregate:
    case HEALTH_METRICS.eccDbeVolatile: {
      const counter = sample.metric === HEALTH_METRICS.eccDbeAggregate ? 'aggregate' : 'volatile';
      const from = condition.eccDbe?.[counter] ?? 0;
      const to = Math.trunc(value);
      return to > from ? [{ type: 'GpuEccDoubleBitErrorsGrew', data: { gpu, counter, from, to, observedAt: at } }] : [];
    }
    case HEALTH_METRICS.throttleReasons:
      return throttleFacts(condition, sample);
    case HEALTH_METRICS.gpuLost: {
      const lost = value >= 1;
      if (!changes(condition.offBus, lost, at)) return [];
      return [{ type: lost ? 'GpuFellOffBus' : 'GpuBackOnBus', data: { gpu, at } }];
    }
  }
}

function throttleFacts(condition: GpuCondition, sample: HealthSample): GpuFact[] {
  const reasons = Math.max(0, Math.trunc(sample.value));
  const causes = throttleCauses(reasons);
  const facts: GpuFact[] = [];
  for (const cause of ['thermal', 'power'] as const) {
    const throttled = causes.has(cause);
    if (!changes(condition[cause], throttled, sample.at)) continue;
    const type = throttled ? 'GpuThrottlingBegan' : 'GpuThrottlingEnded';
    facts.push({ type, data: { gpu: sample.gpu, cause, reasons, at: sample.at } });
  }
  return facts;
}

/** Whether a sample at `at` saying `active` changes an on/off condition (one never recorded is off). */
function changes(edge: Edge | undefined, active: boolean, at: string): boolean {
  if (!edge) return active;
  return edge.active !== active && Date.parse(at) > Date.parse(edge.at);
}

function isNewXid(condition: GpuCondition, xid: number, at: string): boolean {
  if (xid === 0) return false;
  if (!condition.xid) return true;
  const [then, now] = [Date.parse(condition.xid.at), Date.parse(at)];
  return now > then || (now === then && !condition.xid.codes.includes(xid));
}

function inTimeOrder(samples: readonly HealthSample[]): HealthSample[] {
  return samples.map((sample, index) => ({ sample, index, ms: Date.parse(sample.at) })).sort((a, b) => a.ms - b.ms || a.index - b.index).map((s) => s.sample);
}

function sameInstant(a: string, b: string): boolean {
  return Date.parse(a) === Date.parse(b);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}
