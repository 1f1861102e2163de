// quota: resources held in a namespace, team or cluster must stay within limits, unless the change does not add to them.
import { cpuMillicores, memoryBytes } from '../quantity.js';
import { NO_FOOTPRINT, type ParametersOf, type Rule, type Usage } from '../policy.js';
import { cores, count, gib } from './format.js';

type Print = (n: number, unit?: string) => string;
const gpus: Print = (n) => `${count(n)} ${n === 1 ? 'GPU' : 'GPUs'}`;
const replicas: Print = (n) => `${count(n)} ${n === 1 ? 'replica' : 'replicas'}`;
const skuGpus: Print = (n, sku) => `${count(n)} ${sku} ${n === 1 ? 'GPU' : 'GPUs'}`;

/** One limit of a quota, with the two ways a message ends on it printed once. */
interface Limit {
  limit: number;
  /** " of 8 GPUs" */
  of: string;
  /** " over the limit of 8 GPUs" */
  overTheLimitOf: string;
}

/** A quota's fixed limits, quantities parsed and printed: the same in every decision of a policy-set revision. */
interface Limits {
  replicas?: Limit;
  cpu?: Limit;
  memory?: Limit;
  gpus?: Limit;
  /** The GPU limit of each SKU, prepared as the changes judged name the SKU. */
  gpusBySku: Map<string, Limit>;
}

const limit = (value: number, printed: string): Limit => ({ limit: value, of: ` of ${printed}`, overTheLimitOf: ` over the limit of ${printed}` });

// Keyed by the policy's own parameters, so a policy-set revision prepares each quota once, whatever judges it.
const prepared = new WeakMap<ParametersOf<'quota'>['limits'], Limits>();

function limitsOf(limits: ParametersOf<'quota'>['limits']): Limits {
  let found = prepared.get(limits);
  if (!found) {
    found = { gpusBySku: new Map() };
    if (limits.replicas !== undefined) found.replicas = limit(limits.replicas, replicas(limits.replicas));
    // A quantity the schema let through but that reads as no number limits nothing.
    const cpu = limits.cpu === undefined ? undefined : cpuMillicores(limits.cpu);
    if (cpu !== undefined) found.cpu = limit(cpu, cores(cpu));
    const memory = limits.memory === undefined ? undefined : memoryBytes(limits.memory);
    if (memory !== undefined) found.memory = limit(memory, gib(memory));
    if (limits.gpus !== undefined) found.gpus = limit(limits.gpus, gpus(limits.gpus));
    prepared.set(limits, found);
  }
  return found;
}

function skuLimitOf(set: Limits, limits: ParametersOf<'quota'>['limits'], sku: string): Limit | undefined {
  let found = set.gpusBySku.get(sku);
  if (!found) {
    const value = limits.gpusBySku?.[sku];
    if (value === undefined) return undefined;
    found = limit(value, skuGpus(value, sku));
    set.gpusBySku.set(sku, found);
  }
  return found;
}

/** Where each limit that is set lands: exceeded by a change that adds to it, already over, or within. */
type Lists = [exceeded: string, alreadyOver: string, within: string];

/** Files one limit: `total` is what the scope would hold with the change, printed as `printed`. */
function judgeLimit(lists: Lists, bound: Limit, total: number, targetAfter: number, targetBefore: number, printed: string): void {
  const list = total <= bound.limit ? 2 : targetAfter > targetBefore ? 0 : 1;
  const text = `${printed}${list === 2 ? bound.of : bound.overTheLimitOf}`;
  lists[list] = lists[list] ? `${lists[list]}, ${text}` : text;
}

export const quota: Rule<'quota'> = ({ per, limits }, change, inputs) => {
  const after = change.after;
  if (!after) return { outcome: 'not_applicable', message: `${change.action} moves no resources, so no quota applies` };
  let scope: string;
  let usage: Usage;
  if (per === 'namespace') {
    if (!change.namespace) return { outcome: 'not_applicable', message: 'the change has no namespace, so no namespace quota applies' };
    scope = `namespace ${change.namespace}`;
    usage = inputs.usage.namespace;
  } else if (per === 'team') {
    if (!change.labels.team) return { outcome: 'not_applicable', message: 'the workload has no team label, so no team quota applies' };
    scope = `team ${change.labels.team}`;
    usage = inputs.usage.team;
  } else if (per === 'cluster') {
    scope = `cluster ${change.clusterId}`;
    usage = inputs.usage.cluster;
  } else {
    return { outcome: 'not_applicable', message: `quotas are counted per namespace, team or cluster, not per ${per}` };
  }
  const before = change.before ?? NO_FOOTPRINT;

  // Each limit that is set lands in one of three lists; only an exceeded limit the change adds to fails.
  const lists: Lists = ['', '', ''];
  const set = limitsOf(limits);
  if (set.replicas) {
    const total = usage.replicas + after.replicas;
    judgeLimit(lists, set.replicas, total, after.replicas, before.replicas, replicas(total));
  }
  if (set.cpu) {
    const total = usage.cpuMillicores + after.cpuMillicores;
    judgeLimit(lists, set.cpu, total, after.cpuMillicores, before.cpuMillicores, `cpu ${cores(total)}`);
  }
  if (set.memory) {
    const total = usage.memoryBytes + after.memoryBytes;
    judgeLimit(lists, set.memory, total, after.memoryBytes, before.memoryBytes, `memory ${gib(total)}`);
  }
  if (set.gpus) {
    const total = usage.gpus + after.gpus;
    judgeLimit(lists, set.gpus, total, after.gpus, before.gpus, gpus(total));
  }
  // Only the SKU the target runs on after the change can grow, so it is the only one worth counting.
  const sku = after.gpuSku;
  const skuLimit = sku === undefined ? undefined : skuLimitOf(set, limits, sku);
  if (sku !== undefined && skuLimit !== undefined) {
    const total = (usage.gpusBySku[sku] ?? 0) + after.gpus;
    const skuBefore = before.gpuSku === sku ? before.gpus : 0;
    judgeLimit(lists, skuLimit, total, after.gpus, skuBefore, skuGpus(total, sku));
  }
  const [exceeded, alreadyOver, within] = lists;

  if (exceeded) return { outcome: 'fail', message: `${scope} would exceed its quota: ${exceeded}` };
  if (!alreadyOver) {
    const message = within ? `${scope} would stay within its quota: ${within}` : `${scope}: this change adds nothing its quota limits`;
    return { outcome: 'pass', message };
  }
  const message = within
    ? `${scope} would stay within its quota: ${within}; already over, but not raised by this change: ${alreadyOver}`
    : `${scope} is over its quota, but this change does not raise it: ${alreadyOver}`;
  return { outcome: 'pass', message };
};
