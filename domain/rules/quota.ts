// quota: resources held in a namespace, team or cluster must stay within limits, unless the change does not add to them.
import { cpuMillicores, memoryBytes } from '../quantity.js';
import { NO_FOOTPRINT, type Rule, type Usage } from '../policy.js';
import { cores, count, gib } from './format.js';

type Print = (n: number) => string;

// Limits are quantity strings; a large policy set repeats a handful of them, so each is parsed once.
const parsed = new Map<string, number | undefined>();
function limitOf(key: string, parse: () => number | undefined): number | undefined {
  if (!parsed.has(key)) {
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(key, parse());
  }
  return parsed.get(key);
}
const gpus: Print = (n) => `${count(n)} ${n === 1 ? 'GPU' : 'GPUs'}`;
const replicas: Print = (n) => `${count(n)} ${n === 1 ? 'replica' : 'replicas'}`;

export const quota: Rule<'quota'> = ({ per, limits }, change, inputs) => {
  const after = change.after;
  if (!after) return { outcome: 'not_applicable', message: `${change.action} moves no resources, so no quota applies` };
  // The schema types `per` as a plain string, so each scope is picked out by name.
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
  let exceeded = '';
  let alreadyOver = '';
  let within = '';
  /** `what` names the dimension where the printed number does not. */
  const check = (what: string, limit: number, used: number, targetAfter: number, targetBefore: number, print: Print): void => {
    const total = used + targetAfter;
    if (total <= limit) within += `${within ? ', ' : ''}${what}${print(total)} of ${print(limit)}`;
    else if (targetAfter > targetBefore) exceeded += `${exceeded ? ', ' : ''}${what}${print(total)} over the limit of ${print(limit)}`;
    else alreadyOver += `${alreadyOver ? ', ' : ''}${what}${print(total)} over the limit of ${print(limit)}`;
  };

  if (limits.replicas !== undefined) check('', limits.replicas, usage.replicas, after.replicas, before.replicas, replicas);
  if (limits.cpu !== undefined) {
    const limit = limitOf(`cpu:${limits.cpu}`, () => cpuMillicores(limits.cpu!));
    if (limit !== undefined) check('cpu ', limit, usage.cpuMillicores, after.cpuMillicores, before.cpuMillicores, cores);
  }
  if (limits.memory !== undefined) {
    const limit = limitOf(`memory:${limits.memory}`, () => memoryBytes(limits.memory!));
    if (limit !== undefined) check('memory ', limit, usage.memoryBytes, after.memoryBytes, before.memoryBytes, gib);
  }
  if (limits.gpus !== undefined) check('', limits.gpus, usage.gpus, after.gpus, before.gpus, gpus);
  // Only the SKU the target runs on after the change can grow, so it is the only one worth counting.
  const sku = after.gpuSku;
  const skuLimit = sku === undefined ? undefined : limits.gpusBySku?.[sku];
  if (sku !== undefined && skuLimit !== undefined) {
    const skuBefore = before.gpuSku === sku ? before.gpus : 0;
    const skuGpus: Print = (n) => `${count(n)} ${sku} ${n === 1 ? 'GPU' : 'GPUs'}`;
    check('', skuLimit, usage.gpusBySku[sku] ?? 0, after.gpus, skuBefore, skuGpus);
  }

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
