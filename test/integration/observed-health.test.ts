// Observed health against a real Prometheus: it scrapes a tiny endpoint serving vLLM-named metrics, the health
// source reads p99 latency (histogram_quantile) and success rate through the PromQL templates, an idle
// deployment's NaN is unknown, and a policy decision through the real PolicyEngine records the source it saw.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { PrometheusApi } from '../../adapters/prometheus/prometheus-api.js';
import { DEFAULT_DEPLOYMENT_LABEL, PrometheusHealth } from '../../adapters/prometheus/prometheus-health.js';
import { policySets } from '../../commands/aggregates.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { ObservedHealthSource, type ObservedUptime } from '../../commands/observed-health.js';
import { PolicyEngine, type Judged } from '../../commands/policy-engine.js';
import { GLOBAL_POLICY_SET } from '../../domain/policy-set.js';
import { footprintOf, policyBody, type PolicyBody } from '../../domain/policy.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { freePort } from '../support/ports.js';

const SERVING = randomUUID();
const IDLE = randomUUID();
const LABEL = DEFAULT_DEPLOYMENT_LABEL;

function prometheusMissing(): string | undefined {
  const run = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  return run.error || run.status !== 0 ? 'the prometheus binary is not installed (apt-get install -y prometheus)' : undefined;
}

/**
 * vLLM's metrics for two deployments. Every scrape the serving one takes 100 more requests (50 within 0.1 s, the
 * other 50 within 0.5 s; 10 of them answered 5xx); the idle one takes none, so its rates are 0 and its p99 NaN.
 */
function vllmMetrics(): Server {
  let scrapes = 0;
  return createServer((_request, response) => {
    scrapes += 1;
    const served = (n: number) => n * scrapes;
    const series = (id: string, busy: boolean) => {
      const n = (count: number) => (busy ? served(count) : 5);
      const l = `${LABEL}="${id}",model_name="chat"`;
      return [
        `vllm:e2e_request_latency_seconds_bucket{${l},le="0.1"} ${n(50)}`,
        `vllm:e2e_request_latency_seconds_bucket{${l},le="0.5"} ${n(100)}`,
        `vllm:e2e_request_latency_seconds_bucket{${l},le="1.0"} ${n(100)}`,
        `vllm:e2e_request_latency_seconds_bucket{${l},le="+Inf"} ${n(100)}`,
        `vllm:e2e_request_latency_seconds_count{${l}} ${n(100)}`,
        `vllm:e2e_request_latency_seconds_sum{${l}} ${n(20)}`,
        `http_requests_total{${LABEL}="${id}",handler="/v1/chat/completions",method="POST",status="2xx"} ${n(90)}`,
        `http_requests_total{${LABEL}="${id}",handler="/v1/chat/completions",method="POST",status="5xx"} ${n(10)}`,
      ];
    };
    const body = [
      '# TYPE vllm:e2e_request_latency_seconds histogram',
      ...series(SERVING, true).slice(0, 6),
      ...series(IDLE, false).slice(0, 6),
      '# TYPE http_requests_total counter',
      ...series(SERVING, true).slice(6),
      ...series(IDLE, false).slice(6),
      '',
    ].join('\n');
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
  });
}


/** Asks again until `ready` says yes: Prometheus has to start, then scrape twice before a rate exists. */
async function until<T>(what: string, ask: () => Promise<T>, ready: (answer: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await ask().catch(() => undefined);
    if (answer !== undefined && ready(answer)) return answer;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('observed health from a real Prometheus', function () {
  this.timeout(60_000);
  let metrics: Server;
  let prometheus: ChildProcess;
  let dataDir: string;
  let api: PrometheusApi;
  let db: Database;
  let store: PostgresEventStore;
  let promLog = '';

  before(async function () {
    const missing = prometheusMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    metrics = vllmMetrics();
    await new Promise<void>((resolve) => metrics.listen(0, '127.0.0.1', resolve));
    const metricsPort = (metrics.address() as AddressInfo).port;
    dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-prometheus-'));
    const config = path.join(dataDir, 'prometheus.yml');
    await writeFile(
      config,
      ['global:', '  scrape_interval: 1s', 'scrape_configs:', '  - job_name: vllm', '    static_configs:', `      - targets: ['127.0.0.1:${metricsPort}']`, ''].join('\n'),
    );
    const port = await freePort();
    prometheus = spawn(
      'prometheus',
      [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dataDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr!.on('data', (chunk: Buffer) => (promLog += chunk.toString()));
    api = new PrometheusApi(`http://127.0.0.1:${port}`, { timeoutMs: 2000 });
    await until(`prometheus on port ${port} (${promLog})`, () => api.instantQuery('vector(1)'), (answer) => answer.length === 1);
    db = await openPglite();
    store = await PostgresEventStore.open(db);
  });

  after(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await exited;
    }
    await new Promise((resolve) => (metrics?.listening ? metrics.close(resolve) : resolve(undefined)));
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    await store?.close();
    await db?.close();
  });

  const deployments: ObservedUptime[] = [
    { deploymentId: SERVING, workloadType: 'inference', uptime: { '1': 1, '7': 0.9995, '30': 0.9995 } },
    { deploymentId: IDLE, workloadType: 'inference', uptime: { '1': 1 } },
  ];
  const latency = () => new PrometheusHealth(api, { window: '30s' });

  it('reads p99 latency and success rate of a vLLM server by its metric names, and an idle one as unknown', async () => {
    const observed = await until(
      'a p99 latency for the serving deployment',
      () => latency().observe(deployments),
      (answer) => answer.get(SERVING)?.latencyP99Ms !== undefined && answer.get(SERVING)?.successRate !== undefined,
    );
    // Rank 99 of 100 falls in the (0.1 s, 0.5 s] bucket, 49 of its 50: 0.1 + 0.4 × 49/50 s.
    expect(observed.get(SERVING)!.latencyP99Ms).to.be.closeTo(492, 0.5);
    expect(observed.get(SERVING)!.successRate).to.be.closeTo(0.9, 1e-9);
    expect(observed.has(IDLE)).to.equal(false);
    // What Prometheus said of the idle one: NaN, which the source takes for "no observation".
    const raw = await api.instantQuery(latency().query('inference', 'latencyP99Seconds')!);
    expect(Number.isNaN(raw.find((sample) => sample.labels[LABEL] === IDLE)?.value)).to.equal(true);
  });

  it('judges a scale-down by the observed p99 and records in the decision which source it saw', async () => {
    const health = new ObservedHealthSource({ uptime: { observedUptimes: async () => deployments }, latency: latency() });
    await until('the health source holding a latency', () => health.refresh().then(() => health.health(SERVING)), (seen) => seen?.latencyP99Ms !== undefined);
    const engine = new PolicyEngine(store, { prices: DEFAULT_PRICES, health });
    const handler = new CommandHandler(store);
    const context: CommandContext = { actor: { id: 'operator', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() };
    const policy = policyBody.parse({ name: 'chat p99', type: 'slo', mode: 'enforce', parameters: { latencyP99Ms: 200 } }) as PolicyBody;
    await handler.execute(policySets, GLOBAL_POLICY_SET, { type: 'CreatePolicy', policyId: randomUUID(), policy }, context);

    const resources = { cpu: '1', memory: '1Gi' };
    const scaleDown = (deploymentId: string): Judged => ({
      change: {
        action: 'scale',
        at: new Date().toISOString(),
        actor: context.actor,
        target: { kind: 'deployment', id: deploymentId },
        clusterId: randomUUID(),
        namespace: 'ml',
        workloadType: 'inference',
        labels: {},
        before: footprintOf(resources, 2),
        after: footprintOf(resources, 1),
      },
    });

    const judged = await engine.judge('ScaleDeployment', [scaleDown(SERVING)], context);
    expect(judged.verdict).to.equal('deny');
    expect(judged.evaluations[0]!.results.find((r) => r.type === 'slo')!.message).to.match(/p99 latency .* over the target/);
    const recorded = judged.decision.evaluations[0]!.inputs as { health?: { latencyP99Ms?: number; source?: unknown } };
    expect(recorded.health?.source).to.deep.equal({ uptime: 'observed', latency: 'prometheus' });
    expect(recorded.health?.latencyP99Ms).to.be.closeTo(492, 0.5);

    // The idle deployment: uptime observed, no latency: nothing to hold against, and the decision says so.
    const idle = await engine.judge('ScaleDeployment', [scaleDown(IDLE)], context);
    expect(idle.verdict).to.equal('allow');
    expect((idle.decision.evaluations[0]!.inputs as { health?: { source?: unknown } }).health?.source).to.deep.equal({ uptime: 'observed', latency: 'none' });
  });
});
