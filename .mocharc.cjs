// Mocha's settings for `npm test`: every test file, run in two worker processes side by side. Much of the suite's
// time is spent waiting (on servers, child processes, PostgreSQL, Kafka, Chromium), so two files at a time nearly
// halve it; more workers than the two cores starve the tests that start Sentinel in child processes.
// Files can run side by side because each makes its own: scratch databases, ports from the kernel, Kafka topic
// prefixes, temporary directories; none changes what another process sees.
const { readdirSync } = require('node:fs');
const path = require('node:path');

const TEST_DIRECTORIES = ['test/unit', 'test/contract', 'test/integration', 'test/e2e'];

/**
 * The files that take longest, handed to the workers before the rest, so that no worker starts one of them near the
 * end while the others sit idle. Those that start Sentinel or its CLI in child processes (much CPU while each child
 * loads) alternate with those that run in-process, so that the first workers do not all start children at once.
 * A name that no longer exists is ignored.
 */
const LONGEST_FIRST = [
  'test/e2e/start.test.ts',
  'test/integration/command-fuzz.test.ts',
  'test/contract/event-store.test.ts',
  'test/e2e/cli-http.test.ts',
  'test/integration/policy-engine.test.ts',
  'test/integration/users-cli.test.ts',
  'test/integration/projector-kill.test.ts',
  'test/integration/rollout-kill.test.ts',
  'test/integration/projection-rebuild.test.ts',
  'test/integration/durable-timers.test.ts',
];

/** Every `*.test.ts` under the test directories, in the order of the directories, then by name. */
function testFiles() {
  return TEST_DIRECTORIES.flatMap((directory) =>
    readdirSync(directory, { recursive: true })
      .filter((name) => name.endsWith('.test.ts'))
      .map((name) => path.join(directory, name))
      .sort(),
  );
}

function longestFirst(files) {
  const longest = LONGEST_FIRST.filter((file) => files.includes(file));
  return [...longest, ...files.filter((file) => !longest.includes(file))];
}

module.exports = {
  'node-option': ['import=tsx'],
  // Bundles the entry points tests start in child processes, once, before the workers start.
  require: ['test/support/child-bundles.cjs'],
  spec: longestFirst(testFiles()),
  extension: ['ts'],
  timeout: 30000,
  reporter: 'test/support/summary-reporter.cjs',
  parallel: true,
  jobs: 2,
};
