// bench:policy — pure policy evaluation (no I/O): decisions per second and p50/p99 per evaluation with 10, 100
// and 1,000 active policies of all seven types, each with its own parameters. Two sets of each size:
//   targeted — policies aimed at one of 40 namespaces and some actions, a tenth fleet-wide, as real sets are;
//   all-apply — the worst case: every policy's selector matches the change judged.
// Besides wall-clock time, each evaluation's CPU time (the process's, GC threads included): on a shared machine a
// decision that the scheduler sets aside for a few milliseconds shows in the wall-clock tail, not in its CPU time.
import { randomUUID } from 'node:crypto';
import { compilePolicies, evaluate, rateLimitReadingsFor } from '../domain/policy-evaluation.js';
import type { Change, PastAction, Policy, PolicyInputs } from '../domain/policy.js';

const ITERATIONS = Number(process.env['BENCH_POLICY_ITERATIONS'] ?? 20_000);
const WARMUP = Math.min(5_000, ITERATIONS);

const clusterId = randomUUID();
const deploymentId = randomUUID();
const now = '2026-11-20T14:30:00.000Z';

const ACTIONS = [['scale', 'update'], ['restart', 'rollback', 'delete'], ['create', 'scale']] as const;

/** The nth policy: the seven types in turn, each with parameters of its own that pass, and mixed modes. */
function policy(n: number, targeted: boolean): Policy {
  const selector =
    !targeted ? { labels: { team: 'vision' } }
    : n % 10 === 0 ? { actions: [...ACTIONS[n % 3]!] }
    : { namespaces: [`ns-${n % 40}`], actions: [...ACTIONS[n % 3]!] };
  const common = {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    name: `policy-${n}`,
    mode: (['enforce', 'dry_run', 'audit'] as const)[n % 3]!,
    priority: n % 50,
    enabled: true,
    selector,
  };
  switch (n % 7) {
    case 0:
      return { ...common, type: 'cost_ceiling', parameters: { maxHourlyUsd: 10_000 + n } };
    case 1:
      return {
        ...common,
        type: 'quota',
        parameters: {
          per: (['namespace', 'team', 'cluster'] as const)[n % 3]!,
          limits: { replicas: 500 + n, cpu: `${2000 + n}`, memory: `${8 + (n % 5)}Ti`, gpus: 256 + n, gpusBySku: { 'nvidia-a100-80gb': 128 + n } },
        },
      };
    case 2:
      return { ...common, type: 'sla', parameters: { minUptime: 0.99 - (n % 10) / 1000, windowDays: 30 } };
    case 3:
      return { ...common, type: 'slo', parameters: { latencyP99Ms: 400 + n, successRate: 0.99 } };
    case 4:
      return {
        ...common,
        type: 'rate_limit',
        parameters: { maxActions: 50 + n, windowSeconds: 600 + (n % 6) * 600, per: (['target', 'actor', 'target_and_actor'] as const)[n % 3]!, stabilizationSeconds: 60 },
      };
    case 5:
      return {
        ...common,
        type: 'change_freeze',
        parameters: {
          windows: [{ start: '2026-12-24T00:00:00Z', end: '2026-12-27T00:00:00Z' }],
          recurring: [{ timeZone: 'Europe/Berlin', days: ['sat', 'sun'], start: '00:00', end: '24:00' }],
        },
      };
    default:
      return { ...common, type: 'budget', parameters: { monthlyUsd: 500_000 + n } };
  }
}

const change: Change = {
  action: 'scale',
  at: now,
  actor: { id: randomUUID(), kind: 'user' },
  target: { kind: 'deployment', id: deploymentId },
  clusterId,
  namespace: 'ns-7',
  workloadType: 'inference',
  labels: { team: 'vision', tier: 'gold' },
  before: { replicas: 4, cpuMillicores: 16_000, memoryBytes: 64 * 2 ** 30, gpus: 4, gpuSku: 'nvidia-a100-80gb' },
  after: { replicas: 6, cpuMillicores: 24_000, memoryBytes: 96 * 2 ** 30, gpus: 6, gpuSku: 'nvidia-a100-80gb' },
};

const history: PastAction[] = Array.from({ length: 40 }, (_, i) => ({
  at: new Date(Date.parse(now) - (i + 1) * 90_000).toISOString(),
  action: i % 4 === 0 ? 'restart' : 'scale',
  targetId: i % 3 === 0 ? deploymentId : randomUUID(),
  actorId: change.actor.id,
  ...(i % 4 === 0 ? {} : { direction: 'up' as const }),
}));

const usage = { replicas: 120, cpuMillicores: 480_000, memoryBytes: 2 * 2 ** 40, gpus: 60, gpusBySku: { 'nvidia-a100-80gb': 60 } };
/** What a decision reads besides the rate limits' summary of the history, which depends on the policy set. */
const common: Omit<PolicyInputs, 'rateLimits'> = {
  usage: { namespace: usage, team: usage, cluster: usage },
  cost: {
    fleetHourlyUsd: 2_400,
    teamHourlyUsd: 300,
    targetHourlyUsdBefore: 15.96,
    targetHourlyUsdAfter: 23.94,
    teamMonthToDateUsd: 140_000,
    hoursLeftInMonth: 225.5,
  },
  health: { uptime: { '30': 0.9991 }, latencyP99Ms: 210, successRate: 0.997 },
  slo: { latencyP99Ms: 300, successRate: 0.995 },
};

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

const figures: Record<string, number> = {};
for (const [scenario, targeted] of [['targeted', true], ['all-apply', false]] as const)
for (const count of [10, 100, 1000]) {
  const set = compilePolicies(Array.from({ length: count }, (_, n) => policy(n, targeted)), 1);
  // Read from the history once per decision, as the policy engine does, not by every rule.
  const inputs: PolicyInputs = { ...common, rateLimits: rateLimitReadingsFor(set, change, history) };
  let applied = 0;
  for (let i = 0; i < WARMUP; i += 1) applied = evaluate(set, change, inputs).results.length;

  const samples = new Float64Array(ITERATIONS);
  const cpuSamples = new Float64Array(ITERATIONS);
  const started = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i += 1) {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    evaluate(set, change, inputs);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    cpuSamples[i] = cpu.user + cpu.system;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  samples.sort();
  cpuSamples.sort();
  const p50 = percentile(samples, 0.5);
  const p99 = percentile(samples, 0.99);
  const cpuP99 = percentile(cpuSamples, 0.99);
  const perSecond = Math.round(ITERATIONS / seconds);
  console.log(
    `${scenario.padEnd(9)} ${String(count).padStart(5)} policies (${String(applied).padStart(4)} apply): ${perSecond} decisions/s, p50 ${p50.toFixed(1)} µs, p99 ${p99.toFixed(1)} µs, max ${samples[samples.length - 1]!.toFixed(1)} µs; CPU p50 ${percentile(cpuSamples, 0.5).toFixed(0)} µs, p99 ${cpuP99.toFixed(0)} µs`,
  );
  const prefix = targeted ? '' : 'all_apply_';
  figures[`${prefix}decisions_per_s_${count}`] = perSecond;
  figures[`${prefix}p50_us_${count}`] = Number(p50.toFixed(1));
  figures[`${prefix}p99_us_${count}`] = Number(p99.toFixed(1));
  figures[`${prefix}cpu_p99_us_${count}`] = Math.round(cpuP99);
  figures[`${prefix}applied_${count}`] = applied;
}

console.log(JSON.stringify({ bench: 'policy', iterations: ITERATIONS, ...figures }));
