// quota: resources held in a namespace, team or cluster must stay within limits, unless the change does not add to them.
import { cpuMillicores, memoryBytes } from '../quantity.js';
import { NO_FOOTPRINT, type Rule, type Usage } from '../policy.js';
import { cores, count, gib } from './format.js';

type Print = (n: number, unit?: string) => string;
const gpus: Print = (n) => `${count(n)} ${n === 1 ? 'GPU' : 'GPUs'}`;
const replicas: Print = (n) => `${count(n)} ${n === 1 ? 'replica' : 'replicas'}`;
const skuGpus: Print = (n, sku) => `${count(n)} ${sku} ${n === 1 ? 'GPU' : 'GPUs'}`;

// Limits are quantity strings; a large policy set repeats a handful of them, so each is parsed once.
const CPU = { parse: cpuMillicores, parsed: new Map<string, number | undefined>() };
const MEMORY = { parse: memoryBytes, parsed: new Map<string, number | undefined>() };
function limitOf(kind: typeof CPU, text: string): number | undefined {
  let value = kind.parsed.get(text);
  if (value === undefined && !kind.parsed.has(text)) {
    if (kind.parsed.size > 10_000) kind.parsed.clear();
    value = kind.parse(text);
    kind.parsed.set(text, value);
  }
  return value;
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
  // Numbers are printed only once the verdict says which list they belong in.
  const lists: [exceeded: string, alreadyOver: string, within: string] = ['', '', ''];
  const limitsTo = (what: string, limit: number, used: number, targetAfter: number, targetBefore: number, print: Print, unit?: string): void => {
    const total = used + targetAfter;
    const list = total <= limit ? 2 : targetAfter > targetBefore ? 0 : 1;
    const text = `${what}${print(total, unit)}${list === 2 ? ' of ' : ' over the limit of '}${print(limit, unit)}`;
    lists[list] = lists[list] ? `${lists[list]}, ${text}` : text;
  };

  if (limits.replicas !== undefined) limitsTo('', limits.replicas, usage.replicas, after.replicas, before.replicas, replicas);
  if (limits.cpu !== undefined) {
    const limit = limitOf(CPU, limits.cpu);
    if (limit !== undefined) limitsTo('cpu ', limit, usage.cpuMillicores, after.cpuMillicores, before.cpuMillicores, cores);
  }
  if (limits.memory !== undefined) {
    const limit = limitOf(MEMORY, limits.memory);
    if (limit !== undefined) limitsTo('memory ', limit, usage.memoryBytes, after.memoryBytes, before.memoryBytes, gib);
  }
  if (limits.gpus !== undefined) limitsTo('', limits.gpus, usage.gpus, after.gpus, before.gpus, gpus);
  // Only the SKU the target runs on after the change can grow, so it is the only one worth counting.
  const sku = after.gpuSku;
  const skuLimit = sku === undefined ? undefined : limits.gpusBySku?.[sku];
  if (sku !== undefined && skuLimit !== undefined) {
    const skuBefore = before.gpuSku === sku ? before.gpus : 0;
    limitsTo('', skuLimit, usage.gpusBySku[sku] ?? 0, after.gpus, skuBefore, skuGpus, sku);
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
