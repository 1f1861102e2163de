// Safety benchmark: the loop-safety run of test/support/loop-safety.ts for longer than the property test runs it:
// random plans, operator commands, pauses and resumes, drains, a change freeze switched on and off, failing rollouts
// and hand edits against the built-in cluster simulator, with the cluster watched on its own every 200 ms and after
// every action, and the admission ledger compared with the cluster once everything has come to rest.
//   npm run bench:safety                 (embedded PGlite)
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:safety
// Knobs: BENCH_SAFETY_SECONDS (60), BENCH_SAFETY_SEED (1), BENCH_SAFETY_HAND_EDITS (1; 0: no hand edits), LOG_LEVEL
// (Sentinel's log on stdout; error). Target:
// violations 0 (GPU quota samples, changes admitted inside the freeze, rate-limit breaches), ledger_drift 0.
// `violations_by_hand` counts a hand edit's own excess over a quota until Sentinel reverts it.
import { runLoopSafety } from '../test/support/loop-safety.js';

const seconds = Number(process.env['BENCH_SAFETY_SECONDS'] ?? 60);
const seed = Number(process.env['BENCH_SAFETY_SEED'] ?? 1);
const report = await runLoopSafety({
  seed,
  seconds,
  handEdits: process.env['BENCH_SAFETY_HAND_EDITS'] !== '0',
  logLevel: process.env['LOG_LEVEL'] ?? 'error',
  ...(process.env['DATABASE_URL'] ? { databaseUrl: process.env['DATABASE_URL'] } : {}),
});

const list = (lines: string[]) => {
  if (lines.length <= 25) return lines.length === 0 ? '' : `:\n  ${lines.join('\n  ')}`;
  return `:\n  ${[...lines.slice(0, 10), `… ${lines.length - 20} more`, ...lines.slice(-10)].join('\n  ')}`;
};
const violations = report.overQuota.length + report.admittedInFreeze.length + report.rateLimitBreaches.length;
console.log(`actions  ${report.steps} in ${seconds} s: ${JSON.stringify(report.actions)}; answers ${JSON.stringify(report.answers)}`);
console.log(`cluster  ${report.samples} samples; over a GPU quota in ${report.overQuota.length}${list(report.overQuota)}`);
console.log(`         and in ${report.overQuotaByHand} within a few seconds of a hand edit there, until its revert`);
console.log(`freeze   ${report.admittedInFreeze.length} changes admitted while the freeze was on${list(report.admittedInFreeze)}`);
console.log(`rate     ${report.rateLimitBreaches.length} targets over the rate limit${list(report.rateLimitBreaches)}`);
console.log(`ledger   ${report.ledgerDrift.length} deployments counted below what the cluster runs${list(report.ledgerDrift)}`);
if (report.notAtRest.length > 0) console.log(`rest     ${report.notAtRest.length} deployments still moving after a minute${list(report.notAtRest)}`);
console.log(
  JSON.stringify({
    bench: 'safety',
    seed,
    seconds,
    actions: report.steps,
    samples: report.samples,
    violations,
    quota_violations: report.overQuota.length,
    freeze_violations: report.admittedInFreeze.length,
    rate_limit_violations: report.rateLimitBreaches.length,
    violations_by_hand: report.overQuotaByHand,
    ledger_drift: report.ledgerDrift.length,
    not_at_rest: report.notAtRest.length,
  }),
);
