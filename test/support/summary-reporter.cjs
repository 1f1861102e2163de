// Mocha's spec reporter, plus the slowest test files (where the suite's time goes; ten, or TEST_SLOWEST_FILES) and
// one closing line "N passed, N failed, N skipped" that CI tooling can read.
const path = require('node:path');
const Mocha = require('mocha');

const { Spec } = Mocha.reporters;
const { EVENT_RUN_END, EVENT_TEST_END, EVENT_HOOK_END } = Mocha.Runner.constants;

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    /** Milliseconds spent in each file's tests and hooks. */
    const byFile = new Map();
    const count = (runnable) => {
      if (!runnable.file || typeof runnable.duration !== 'number') return;
      const file = path.relative(process.cwd(), runnable.file);
      byFile.set(file, (byFile.get(file) ?? 0) + runnable.duration);
    };
    runner.on(EVENT_TEST_END, count);
    runner.on(EVENT_HOOK_END, count);
    runner.once(EVENT_RUN_END, () => {
      const slowest = [...byFile].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TEST_SLOWEST_FILES ?? 10));
      if (slowest.length > 0) {
        console.log('slowest files (tests and hooks):');
        for (const [file, ms] of slowest) console.log(`  ${(ms / 1000).toFixed(1).padStart(7)} s  ${file}`);
      }
      const { passes, failures, pending } = runner.stats;
      console.log(`${passes} passed, ${failures} failed, ${pending} skipped`);
    });
  }
}

module.exports = SummaryReporter;
