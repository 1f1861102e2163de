// The safety of the loop as a property: random interleavings of plans, operator commands, pauses and resumes,
// drains, a change freeze switched on and off, failing rollouts and hand edits, against the simulated cluster watched
// from outside (test/support/loop-safety.ts). After every step, and every 200 ms besides, no namespace holds more
// GPUs than its enforce quota allows (but for a hand edit's own excess until it is put back); no change is admitted
// while the freeze is on; no target gets more changes than the rate limit allows; and once everything is at rest, the
// admission ledger counts no deployment below what the cluster runs. Bounded: one seed of 60 steps on each backend, a
// different one on each; `npm run bench:safety` runs the same for longer.
import { expect } from 'chai';
import { TEST_DATABASE_URL, SKIP_POSTGRES_REASON } from '../support/postgres.js';
import { runLoopSafety, type LoopSafetyReport } from '../support/loop-safety.js';

/** Different seeds take different paths through the actions; a failing one names itself. `LOOP_SAFETY_SEEDS` runs its list on both. */
const SEEDS = process.env['LOOP_SAFETY_SEEDS']?.split(',').map(Number);
const STEPS = Number(process.env['LOOP_SAFETY_STEPS'] ?? 60);

const backends = [
  { name: 'PGlite', databaseUrl: undefined, skipReason: undefined, seeds: SEEDS ?? [11] },
  { name: 'PostgreSQL', databaseUrl: TEST_DATABASE_URL, skipReason: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON, seeds: SEEDS ?? [12] },
];

/** What broke, one line each, so that a failure reads as what happened rather than as a count. */
function brokenRules(report: LoopSafetyReport): string[] {
  return [
    ...report.overQuota.map((line) => `over quota: ${line}`),
    ...report.admittedInFreeze.map((line) => `admitted in the freeze: ${line}`),
    ...report.rateLimitBreaches.map((line) => `over the rate limit: ${line}`),
    ...report.ledgerDrift.map((line) => `ledger below the cluster: ${line}`),
    ...report.notAtRest.map((line) => `never came to rest: ${line}`),
  ];
}

for (const backend of backends) {
  describe(`loop safety on the simulated cluster, ${backend.name}`, function () {
    // Each seed: about 15 s of actions, then the wait for rest and the comparison.
    this.timeout(120_000);
    before(function () {
      if (backend.skipReason) this.skip();
    });

    for (const seed of backend.seeds) {
      it(`given seed ${seed}, when ${STEPS} random actions run with hand edits, then no enforce policy is broken on the cluster and the ledger holds what runs`, async () => {
        const report = await runLoopSafety({ seed, steps: STEPS, handEdits: true, pauseMs: { min: 50, max: 150 }, ...(backend.databaseUrl ? { databaseUrl: backend.databaseUrl } : {}) });
        expect(brokenRules(report), `seed ${seed}: ${JSON.stringify(report.actions)}`).to.deep.equal([]);
        // The run did what it says: changes were admitted and refused, and the cluster was watched throughout.
        expect(report.answers['202'] ?? 0, 'changes accepted').to.be.greaterThan(0);
        expect(report.answers['422'] ?? 0, 'changes refused').to.be.greaterThan(0);
        expect(report.samples).to.be.greaterThan(STEPS);
      });
    }
  });
}
