// bench:console — the console in Chromium on loopback, against one Sentinel (PGlite, reactors, simulated cluster)
// holding BENCH_CONSOLE_DEPLOYMENTS deployments (default 1,000; replicas 0, so the simulator schedules nothing):
//   first_interactive_ms: from navigation to the deployments page until its table is on screen (median of 5 loads,
//     signed in already; the shell, the script, the live stream's start and the first page of the list);
//   event_to_screen_p99_ms: from sending a scale to the deployment's page showing the new replica count, over
//     BENCH_CONSOLE_CHANGES changes (default 100); the path is API → log → live stream → re-read through the
//     query API (`?after=`, which waits for the read side) → DOM.
// Decisions (the 100,000) are not seeded: the pages read them a page at a time (limit 200) through an index.
//   npm run bench:console
import { performance } from 'node:perf_hooks';
import { SIMULATED_CLUSTER_ID } from '../app/reactors.js';
import { chromiumPresent, launchChromium, SKIP_CHROMIUM_REASON } from '../test/support/console-browser.js';
import { startTestApi, type TestApi } from '../test/support/sentinel-api.js';

const DEPLOYMENTS = Number(process.env['BENCH_CONSOLE_DEPLOYMENTS'] ?? 1000);
const CHANGES = Number(process.env['BENCH_CONSOLE_CHANGES'] ?? 100);
const LOADS = 5;
const PARALLEL = 8;

async function seed(api: TestApi): Promise<string[]> {
  const ids: string[] = [];
  const one = async (n: number) => {
    const workload = await api.request<{ id: string }>('post', '/workloads', {
      body: { name: `bench-${n}`, namespace: `bench-${n % 50}`, type: 'batch', image: 'registry.local/bench:1', resources: { cpu: '100m', memory: '64Mi' } },
    });
    const deployment = await api.request<{ id: string }>('post', '/deployments', { body: { workloadId: workload.body.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 0 } });
    if (deployment.status !== 201 && deployment.status !== 202) throw new Error(`deployment ${n}: ${deployment.status} ${JSON.stringify(deployment.body)}`);
    ids.push(deployment.body.id);
  };
  for (let n = 0; n < DEPLOYMENTS; n += PARALLEL) {
    await Promise.all(Array.from({ length: Math.min(PARALLEL, DEPLOYMENTS - n) }, (_, i) => one(n + i)));
  }
  return ids;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

async function main(): Promise<void> {
  if (!chromiumPresent()) {
    console.log(`bench:console not run: ${SKIP_CHROMIUM_REASON}`);
    console.log(JSON.stringify({ bench: 'console', first_interactive_ms: null, event_to_screen_p99_ms: null, skipped: SKIP_CHROMIUM_REASON }));
    return;
  }
  const api = await startTestApi(undefined, { SENTINEL_ROLE: 'api,projector,reactor', SENTINEL_CLUSTER_SIMULATOR: 'on' });
  const browser = await launchChromium();
  try {
    const origin = api.url.replace(/\/api\/v1$/, '');
    const started = performance.now();
    const ids = await seed(api);
    console.log(`seeded ${ids.length} deployments in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const context = await browser.newContext();
    // Signed in as the login page would leave it.
    await context.addInitScript(
      (token: string) => (globalThis as unknown as { sessionStorage: { setItem(key: string, value: string): void } }).sessionStorage.setItem('sentinel.accessToken', token),
      api.tokens.admin,
    );
    const page = await context.newPage();

    const loads: number[] = [];
    for (let i = 0; i <= LOADS; i += 1) {
      const from = performance.now();
      await page.goto(`${origin}/deployments`);
      await page.waitForSelector('#deployments tbody tr a');
      // The first load warms the server's caches and the browser's; it is not counted.
      if (i > 0) loads.push(performance.now() - from);
    }
    console.log(`first interactive (ms): ${loads.map((ms) => ms.toFixed(0)).join(', ')}`);

    const target = ids[0]!;
    await page.goto(`${origin}/deployments/${target}`);
    await page.waitForSelector('#deployment-replicas');
    await page.waitForSelector('#live:text("Live")');
    const changes: number[] = [];
    for (let i = 1; i <= CHANGES; i += 1) {
      const replicas = i % 2 === 1 ? 1 : 0;
      const from = performance.now();
      const reply = await api.request('post', `/deployments/${target}/scale`, { as: 'operator', body: { replicas } });
      if (reply.status >= 300) throw new Error(`scale: ${reply.status} ${JSON.stringify(reply.body)}`);
      await page.waitForFunction(
        (want: string) => {
          const shown = (globalThis as unknown as { document: { getElementById(id: string): { textContent: string | null } | null } }).document;
          return shown.getElementById('deployment-replicas')?.textContent?.endsWith(want) ?? false;
        },
        `of ${replicas}`,
        { polling: 'raf' },
      );
      changes.push(performance.now() - from);
    }
    const p50 = percentile(changes, 50);
    const p99 = percentile(changes, 99);
    console.log(`event to screen (ms): p50 ${p50.toFixed(0)}, p99 ${p99.toFixed(0)}, max ${Math.max(...changes).toFixed(0)} over ${changes.length} changes`);
    console.log(JSON.stringify({ bench: 'console', first_interactive_ms: Math.round(percentile(loads, 50)), event_to_screen_p99_ms: Math.round(p99) }));
  } finally {
    await browser.close();
    await api.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
