// The simulator's per-pod inference metrics: scraped over its HTTPS API, parsed as Prometheus text, each behaviour
// as designed; and, where a Prometheus binary is installed, scraped by a real Prometheus and judged by the built-in
// inference analysis through its HTTP API.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Watch, type V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { judgeMeasurement, renderQuery } from '../../domain/analysis/analysis.js';
import { inferenceAnalysisTemplate } from '../../domain/analysis/inference-templates.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { podBehaviour } from '../../adapters/kubernetes/simulator/pod-metrics.js';
import { createPrometheusMetricProvider, type PromSample } from '../../reactors/prometheus-metric-provider.js';
import { eventually } from '../support/eventually.js';
import { clients, FAST, type Clients } from '../support/simulator-clients.js';
import { freePort } from '../support/ports.js';

const NAMESPACE = 'serving';
const PROMETHEUS = '/usr/bin/prometheus';

interface Scraped {
  status: number;
  contentType: string;
  body: string;
}

function scrape(sim: ClusterSimulator, path: string, token: string | undefined = sim.token): Promise<Scraped> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(`${sim.url}${path}`, { ca: sim.caPem, headers: token ? { authorization: `Bearer ${token}` } : {} }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type']), body }));
    });
    request.on('error', reject);
    request.end();
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (comments skipped); label values here have no escapes. */
function parseExposition(text: string): { samples: Sample[]; types: string[] } {
  const samples: Sample[] = [];
  const types: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) types.push(line.split(' ')[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { samples, types };
}

/** Prometheus' histogram_quantile over one pod's cumulative buckets: linear within the bucket the rank falls in. */
function quantile(q: number, samples: Sample[], histogram: string, pod?: string): number {
  const buckets = samples
    .filter((s) => s.name === `${histogram}_bucket` && (pod === undefined || s.labels['pod'] === pod))
    .map((s) => ({ le: Number(s.labels['le'] === '+Inf' ? Infinity : s.labels['le']), count: s.value }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)!.count;
  const rank = q * total;
  const index = buckets.findIndex((b) => b.count >= rank);
  const lower = index === 0 ? { le: 0, count: 0 } : buckets[index - 1]!;
  const upper = buckets[index]!;
  return lower.le + (upper.le - lower.le) * ((rank - lower.count) / (upper.count - lower.count));
}

function pod(name: string, options: { image?: string; behaviour?: string }): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NAMESPACE, labels: { app: 'llm', ...(options.behaviour ? { 'sentinel.dev/sim-behaviour': options.behaviour } : {}) } },
    spec: { containers: [{ name: 'vllm', image: options.image ?? 'registry.local/llama:1.0' }] },
  };
}

const ready = (p: V1Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
const running = (p: V1Pod) => p.status?.phase === 'Running';

/** Resolves once each named pod has been seen, on a watch of the namespace, in the state its predicate asks for. */
async function whenSeen(kc: Clients['kc'], wanted: Record<string, (pod: V1Pod) => boolean>): Promise<void> {
  const waiting = new Set(Object.keys(wanted));
  let stop: AbortController | undefined;
  await new Promise<void>((resolve, reject) => {
    void new Watch(kc)
      .watch(
        `/api/v1/namespaces/${NAMESPACE}/pods`,
        {},
        (_type: string, object: V1Pod) => {
          const name = object.metadata!.name!;
          if (wanted[name]?.(object)) waiting.delete(name);
          if (waiting.size === 0) resolve();
        },
        (error: unknown) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : undefined),
      )
      .then((controller) => (stop = controller), reject);
  });
  stop?.abort();
}

describe('simulator pod metrics', function () {
  let sim: ClusterSimulator;
  let kube: Clients;

  before(async () => {
    sim = await startClusterSimulator(FAST);
    sim.faults.neverReady(/-never-ready$/);
    kube = clients(sim);
    for (const body of [
      pod('healthy', {}),
      pod('slow', { behaviour: 'slow' }),
      pod('erroring', { image: 'registry.local/llama:1.0-erroring' }),
      pod('unready', { image: 'registry.local/llama:1.0-never-ready' }),
    ]) {
      await kube.core.createNamespacedPod({ namespace: NAMESPACE, body });
    }
    await whenSeen(kube.kc, { healthy: ready, slow: ready, erroring: ready, unready: running });
  });

  after(async () => {
    await sim?.close();
  });

  it('serves every running pod on one endpoint, each vLLM family once, labelled with namespace and pod', async () => {
    const scraped = await scrape(sim, '/sim/metrics');
    expect(scraped.status).to.equal(200);
    expect(scraped.contentType).to.equal('text/plain; version=0.0.4; charset=utf-8');
    const { samples, types } = parseExposition(scraped.body);
    expect(types).to.deep.equal([
      'vllm:num_requests_running',
      'vllm:e2e_request_latency_seconds',
      'vllm:time_to_first_token_seconds',
      'vllm:request_success_total',
      'vllm:generation_tokens_total',
    ]);
    expect(new Set(samples.map((s) => s.labels['pod']))).to.deep.equal(new Set(['healthy', 'slow', 'erroring', 'unready']));
    expect(samples.every((s) => s.labels['namespace'] === NAMESPACE && s.labels['model_name'] === 'llama')).to.equal(true);
  });

  it('makes a slow pod slow: p99 latency about 5 s against about 1 s, by the buckets', async () => {
    const { samples } = parseExposition((await scrape(sim, '/sim/metrics')).body);
    const healthy = quantile(0.99, samples, 'vllm:e2e_request_latency_seconds', 'healthy');
    const slow = quantile(0.99, samples, 'vllm:e2e_request_latency_seconds', 'slow');
    expect(healthy).to.be.within(0.9, 1.0);
    expect(slow).to.be.within(4.5, 5.0);
    expect(quantile(0.99, samples, 'vllm:time_to_first_token_seconds', 'slow')).to.be.greaterThan(quantile(0.99, samples, 'vllm:time_to_first_token_seconds', 'healthy'));
  });

  it('makes an erroring pod abort 40% of its requests, and a healthy one none', async () => {
    const { samples } = parseExposition((await scrape(sim, '/sim/metrics')).body);
    const share = (podName: string) => {
      const finished = samples.filter((s) => s.name === 'vllm:request_success_total' && s.labels['pod'] === podName);
      const total = finished.reduce((sum, s) => sum + s.value, 0);
      return finished.find((s) => s.labels['finished_reason'] === 'abort')!.value / total;
    };
    expect(share('erroring')).to.be.closeTo(0.4, 1e-9);
    expect(share('healthy')).to.equal(0);
  });

  it('takes the behaviour from the label first, then the image tag, and is healthy otherwise', () => {
    const behaviour = (image: string, labels: Record<string, string> = {}) =>
      podBehaviour({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels }, spec: { containers: [{ name: 'c', image }] } });
    expect(behaviour('llama:slow')).to.equal('slow');
    expect(behaviour('registry.local:5000/llama:1.1-erroring')).to.equal('erroring');
    expect(behaviour('llama:1.0-never-ready')).to.equal('never-ready');
    expect(behaviour('llama:slow', { 'sentinel.dev/sim-behaviour': 'erroring' })).to.equal('erroring');
    expect(behaviour('llama:slow', { 'sentinel.dev/sim-behaviour': 'sluggish' })).to.equal('slow');
    expect(behaviour('registry.local:5000/llama')).to.equal('healthy');
    expect(behaviour('llama:slowish')).to.equal('healthy');
  });

  it('gives a pod that is not Ready no traffic: its counters stay at zero', async () => {
    const { samples } = parseExposition((await scrape(sim, `/sim/pods/${NAMESPACE}/unready/metrics`)).body);
    expect(samples.length).to.be.greaterThan(0);
    expect(samples.every((s) => s.value === 0)).to.equal(true);
  });

  it('serves one pod on its own path, without namespace and pod labels, with counters that only grow', async () => {
    const first = parseExposition((await scrape(sim, `/sim/pods/${NAMESPACE}/healthy/metrics`)).body).samples;
    const second = parseExposition((await scrape(sim, `/sim/pods/${NAMESPACE}/healthy/metrics`)).body).samples;
    expect(first.every((s) => s.labels['pod'] === undefined && s.labels['namespace'] === undefined)).to.equal(true);
    const count = (samples: Sample[]) => samples.find((s) => s.name === 'vllm:e2e_request_latency_seconds_count')!.value;
    expect(count(first)).to.be.greaterThan(0);
    expect(count(second)).to.be.at.least(count(first));
  });

  it('answers a pod that does not exist with a 404 Status, and any request without the token with 401', async () => {
    const missing = await scrape(sim, `/sim/pods/${NAMESPACE}/nobody/metrics`);
    expect(missing.status).to.equal(404);
    expect(JSON.parse(missing.body)).to.deep.include({ kind: 'Status', reason: 'NotFound', message: `pod ${NAMESPACE}/nobody serves no metrics: it does not exist or is not running` });
    expect((await scrape(sim, '/sim/metrics', 'wrong')).status).to.equal(401);
  });

  describe('scraped by a real Prometheus', function () {
    let prometheus: ChildProcess | undefined;
    let directory: string | undefined;
    let base = '';

    before(async function () {
      if (!existsSync(PROMETHEUS)) {
        console.log(`SKIP: ${PROMETHEUS} is not installed (apt-get install -y prometheus)`);
        this.skip();
      }
      directory = await mkdtemp(join(tmpdir(), 'sentinel-prom-'));
      const port = await freePort();
      await writeFile(join(directory, 'ca.pem'), sim.caPem);
      await writeFile(
        join(directory, 'prometheus.yml'),
        JSON.stringify({
          global: { scrape_interval: '1s', evaluation_interval: '1s' },
          scrape_configs: [
            {
              job_name: 'sentinel-simulator',
              scheme: 'https',
              metrics_path: '/sim/metrics',
              tls_config: { ca_file: join(directory, 'ca.pem') },
              authorization: { credentials: sim.token },
              static_configs: [{ targets: [new URL(sim.url).host] }],
            },
          ],
        }),
      );
      prometheus = spawn(
        PROMETHEUS,
        [`--config.file=${join(directory, 'prometheus.yml')}`, `--storage.tsdb.path=${join(directory, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
        { stdio: 'ignore' },
      );
      base = `http://127.0.0.1:${port}`;
      await eventually('Prometheus to be ready', () => fetch(`${base}/-/ready`), (r) => r.ok, 15_000);
    });

    after(async () => {
      prometheus?.kill();
      if (directory) await rm(directory, { recursive: true, force: true });
    });

    /** An instant query through the HTTP API, as the Prometheus provider's client makes it. */
    async function instant(promql: string): Promise<PromSample[]> {
      const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await response.json()) as { status: string; error?: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      if (body.status !== 'success') throw new Error(`Prometheus answered ${body.error}`);
      return body.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
    }

    it('judges a slow canary failed and a healthy one successful, through the built-in latency and error queries', async () => {
      const template = inferenceAnalysisTemplate({ slo: { latencyP99Ms: 1500 }, rateWindow: '10s' });
      const provider = createPrometheusMetricProvider(instant);
      const latency = template.metrics.find((m) => m.name === 'latency-p99')!;
      const errors = template.metrics.find((m) => m.name === 'error-rate')!;
      const read = async (metric: typeof latency, canaryPods: string) => {
        const query = renderQuery(metric.query, { namespace: NAMESPACE, canaryPods });
        return (await provider.measure(query, { runId: 'r', metric: metric.name, args: {}, at: new Date() })).value;
      };
      // rate() needs two scrapes of every pod inside its window.
      const pods = ['healthy', 'slow', 'erroring'];
      const rated = (values: unknown[]) => values.every((v) => typeof v === 'number' && !Number.isNaN(v));
      await eventually('two scrapes of every pod', () => Promise.all(pods.map((p) => read(latency, p))), rated, 15_000);
      expect(judgeMeasurement(latency, { value: await read(latency, 'healthy') }).outcome).to.equal('successful');
      expect(judgeMeasurement(latency, { value: await read(latency, 'slow') }).outcome).to.equal('failed');
      expect(judgeMeasurement(errors, { value: await read(errors, 'healthy') }).outcome).to.equal('successful');
      expect(judgeMeasurement(errors, { value: await read(errors, 'erroring') }).outcome).to.equal('failed');
      expect(judgeMeasurement(latency, { value: await read(latency, 'nobody') }).outcome).to.equal('inconclusive');
    });
  });
});

