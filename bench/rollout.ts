// Rollout benchmark: canaries on the cluster simulator judged by the built-in inference analysis through a real
// Prometheus, good and slow (`-slow` images) side by side. Measures, for each slow canary, the time from its first
// failing measurement to traffic fully back on the stable side (the canary object gone, the stable object ready at
// full replicas: the reactor records DeploymentRolloutFailed only then), and the share of good canaries aborted.
//   npm run bench:rollout                     (embedded PGlite)
//   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:rollout   (a scratch database there)
// BENCH_ROLLOUT_CANARIES (default 50), BENCH_ROLLOUT_SLOW_SHARE (default 0.3), BENCH_ROLLOUT_INTERVAL (default "2s").
import { randomBytes } from 'node:crypto';
import { durationMs } from '../domain/analysis/analysis.js';
import type { CanaryStep } from '../domain/deployment.js';
import type { StartedRollout } from '../domain/rollout.js';
import { PROMETHEUS_SKIP_REASON } from '../test/support/prometheus.js';
import { GOOD_IMAGE, SLOW_IMAGE, startRolloutHarness } from '../test/support/rollout-harness.js';

const CANARIES = Number(process.env['BENCH_ROLLOUT_CANARIES'] ?? 50);
const SLOW_SHARE = Number(process.env['BENCH_ROLLOUT_SLOW_SHARE'] ?? 0.3);
const INTERVAL = process.env['BENCH_ROLLOUT_INTERVAL'] ?? '2s';
const TARGET_S = durationMs(INTERVAL) / 1000 + 5;

function percentile(sorted: number[], p: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 1000) / 1000;
}

if (PROMETHEUS_SKIP_REASON) {
  console.error(`bench:rollout needs Prometheus: ${PROMETHEUS_SKIP_REASON}`);
  process.exit(1);
}

const run = randomBytes(3).toString('hex');
const steps: CanaryStep[] = [
  { weight: 50 },
  { analysis: { template: 'inference', interval: INTERVAL, count: 3, rateWindow: '2s', inconclusiveLimit: 2, initialDelay: '3s' } },
  { weight: 100 },
];
const slowCount = Math.round(CANARIES * SLOW_SHARE);
const h = await startRolloutHarness({ progressDeadlineSeconds: 120, patienceMs: 600_000 });
const started = performance.now();
try {
  console.log(`deploying ${CANARIES} stable deployments (2 replicas each) ...`);
  const ids = await Promise.all(Array.from({ length: CANARIES }, (_, i) => h.deploy(`bench-${run}-${i}`, steps)));
  const slow = new Set(ids.slice(0, slowCount));
  console.log(`rolling out ${CANARIES} canaries: ${slowCount} slow, ${CANARIES - slowCount} good; analysis every ${INTERVAL}`);
  await Promise.all(ids.map((id) => h.update(id, slow.has(id) ? SLOW_IMAGE : GOOD_IMAGE)));
  const ended = await Promise.all(
    ids.map((id) =>
      h.until(`canary ${id} ended`, () => h.rollout(id, 2), (r) => r.status === 'Completed' || r.status === 'Aborted', 600_000).then((r) => r as StartedRollout),
    ),
  );

  const abortSeconds: number[] = [];
  let falseAborts = 0;
  let missedSlow = 0;
  for (const [index, id] of ids.entries()) {
    const rollout = ended[index]!;
    if (!slow.has(id)) {
      if (rollout.status === 'Aborted') {
        falseAborts += 1;
        console.log(`false abort of good canary ${id}: ${rollout.cause}`);
      }
      continue;
    }
    if (rollout.status !== 'Aborted') {
      missedSlow += 1;
      continue;
    }
    const firstFailed = rollout.runs.flatMap((r) => r.measurements).find((m) => m.outcome === 'failed');
    const events = await h.until(`rollout failure of ${id}`, () => h.deploymentEvents(id), (e) => e.some((x) => x.type === 'DeploymentRolloutFailed'), 120_000);
    const failed = events.find((x) => x.type === 'DeploymentRolloutFailed')!;
    if (!firstFailed) throw new Error(`slow canary ${id} was aborted without a failed measurement: ${rollout.cause}`);
    abortSeconds.push((failed.recordedAt.getTime() - Date.parse(firstFailed.measuredAt)) / 1000);
  }
  abortSeconds.sort((a, b) => a - b);
  const good = CANARIES - slowCount;
  const result = {
    bench: 'rollout',
    abort_p99_s: abortSeconds.length ? percentile(abortSeconds, 0.99) : null,
    abort_p50_s: abortSeconds.length ? percentile(abortSeconds, 0.5) : null,
    false_abort_ratio: good === 0 ? 0 : Math.round((falseAborts / good) * 1000) / 1000,
    canaries: CANARIES,
    slow: slowCount,
    slow_not_aborted: missedSlow,
    analysis_interval_s: durationMs(INTERVAL) / 1000,
    wall_s: Math.round((performance.now() - started) / 100) / 10,
  };
  console.log(`abort    ${abortSeconds.length} slow canaries: first failing measurement → traffic back on stable p50 ${result.abort_p50_s} s, p99 ${result.abort_p99_s} s (target p99 < ${TARGET_S} s)`);
  console.log(`false    ${falseAborts} of ${good} good canaries aborted (ratio ${result.false_abort_ratio}, target 0); ${missedSlow} slow canaries not aborted`);
  console.log(JSON.stringify(result));
} finally {
  await h.stop();
}
