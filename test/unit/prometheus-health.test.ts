// Observed health from its parts: the Prometheus API client's numbers and errors, the PromQL templates, and the
// health source that answers the rules from memory, with the override file and stale answers.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { PrometheusApi, PrometheusError, sampleNumber, type VectorSample } from '../../adapters/prometheus/prometheus-api.js';
import { DEFAULT_DEPLOYMENT_LABEL, PrometheusHealth, renderTemplate } from '../../adapters/prometheus/prometheus-health.js';
import { healthReport, ObservedHealthSource, type LatencyReader, type ObservedUptime, type UptimeReader } from '../../commands/observed-health.js';
import type { HealthSource } from '../../commands/policy-engine.js';

const SERVING = '5b7e0c1e-0000-4000-8000-000000000001';
const TRAINING = '5b7e0c1e-0000-4000-8000-000000000002';

/** A tiny HTTP server answering every request with what `answer` says; it records what it was sent. */
async function fakePrometheus(answer: (body: string) => { status: number; body: string } | 'hang') {
  const seen: { url: string; body: string; authorization?: string }[] = [];
  const server: Server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      seen.push({ url: request.url ?? '', body, ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}) });
      const reply = answer(body);
      if (reply === 'hang') return;
      response.writeHead(reply.status, { 'content-type': 'application/json' }).end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const vector = (result: { metric: Record<string, string>; value: [number, string] }[]) =>
  JSON.stringify({ status: 'success', data: { resultType: 'vector', result } });

describe('observed health', () => {
  describe('the Prometheus API client', () => {
    it('reads NaN and infinities as Prometheus writes them', () => {
      expect(Number.isNaN(sampleNumber('NaN'))).to.equal(true);
      expect(sampleNumber('+Inf')).to.equal(Infinity);
      expect(sampleNumber('-Inf')).to.equal(-Infinity);
      expect(sampleNumber('0.25')).to.equal(0.25);
    });

    it('answers a vector with its labels and values, NaN kept, and an empty answer as an empty list', async () => {
      const answers = [
        vector([
          { metric: { job: 'a' }, value: [1700000000, '0.5'] },
          { metric: { job: 'b' }, value: [1700000000, 'NaN'] },
        ]),
        vector([]),
      ];
      const server = await fakePrometheus(() => ({ status: 200, body: answers.shift()! }));
      try {
        const api = new PrometheusApi(`http://user:s3cret@127.0.0.1:${server.port}`);
        const samples: VectorSample[] = await api.instantQuery('up', new Date(1700000000000));
        expect(samples.map((s) => s.labels['job'])).to.deep.equal(['a', 'b']);
        expect(samples[0]!.value).to.equal(0.5);
        expect(Number.isNaN(samples[1]!.value)).to.equal(true);
        expect(samples[0]!.at.getTime()).to.equal(1700000000000);
        expect(await api.instantQuery('absent_metric')).to.deep.equal([]);
        expect(server.seen[0]!.url).to.equal('/api/v1/query');
        expect(new URLSearchParams(server.seen[0]!.body).get('query')).to.equal('up');
        expect(server.seen[0]!.authorization).to.equal(`Basic ${Buffer.from('user:s3cret').toString('base64')}`);
      } finally {
        await server.close();
      }
    });

    it('names the URL and the status of a refused query, never the password', async () => {
      const server = await fakePrometheus(() => ({
        status: 400,
        body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 3' }),
      }));
      try {
        const api = new PrometheusApi(`http://user:s3cret@127.0.0.1:${server.port}/prom`);
        const error = await api.instantQuery('up{').then(
          () => undefined,
          (e: unknown) => e as PrometheusError,
        );
        expect(error).to.be.instanceOf(PrometheusError);
        expect(error!.status).to.equal(400);
        expect(error!.message).to.include(`http://127.0.0.1:${server.port}/prom/api/v1/query`).and.include('400').and.include('parse error');
        expect(error!.message).not.to.include('s3cret');
      } finally {
        await server.close();
      }
    });

    it('gives up after its timeout, saying so', async () => {
      const server = await fakePrometheus(() => 'hang');
      try {
        const error = await new PrometheusApi(`http://127.0.0.1:${server.port}`, { timeoutMs: 50 }).instantQuery('up').catch((e: unknown) => e as Error);
        expect((error as Error).message).to.include('no answer within 50 ms');
      } finally {
        await server.close();
      }
    });

    it('refuses a URL that is not http(s)', () => {
      expect(() => new PrometheusApi('ftp://prometheus')).to.throw(PrometheusError, /http or https/);
      expect(() => new PrometheusApi('prometheus:9090:x')).to.throw(PrometheusError);
    });
  });

  describe('the PromQL templates', () => {
    it('fills in the deployment label and the window', () => {
      expect(renderTemplate('rate(x{$label!=""}[$window]) by ($label)', 'dep', '1m')).to.equal('rate(x{dep!=""}[1m]) by (dep)');
      const health = new PrometheusHealth({ instantQuery: async () => [] });
      expect(health.query('inference', 'latencyP99Seconds')).to.equal(
        `histogram_quantile(0.99, sum by (le, ${DEFAULT_DEPLOYMENT_LABEL}) (rate(vllm:e2e_request_latency_seconds_bucket{${DEFAULT_DEPLOYMENT_LABEL}!=""}[5m])))`,
      );
      expect(health.query('training', 'latencyP99Seconds')).to.equal(undefined);
    });

    it('refuses a label or window PromQL would not take', () => {
      expect(() => new PrometheusHealth({ instantQuery: async () => [] }, { deploymentLabel: 'sentinel.io/deployment-id' })).to.throw(/label name/);
      expect(() => new PrometheusHealth({ instantQuery: async () => [] }, { window: '5 minutes' })).to.throw(/PromQL duration/);
    });

    it('given answers per deployment, takes each by its workload type, in milliseconds, and NaN as unknown', async () => {
      const at = new Date();
      const sent: string[] = [];
      const health = new PrometheusHealth({
        instantQuery: async (promql: string) => {
          sent.push(promql);
          const label = DEFAULT_DEPLOYMENT_LABEL;
          if (promql.includes('vllm:e2e_request_latency_seconds_bucket')) {
            return [
              { labels: { [label]: SERVING }, value: 0.25, at },
              { labels: { [label]: TRAINING }, value: 9, at },
            ];
          }
          return [{ labels: { [label]: SERVING }, value: NaN, at }];
        },
      });
      const observed = await health.observe([
        { deploymentId: SERVING, workloadType: 'inference' },
        { deploymentId: TRAINING, workloadType: 'training' },
      ]);
      expect(sent).to.have.length(2);
      expect(Object.fromEntries(observed)).to.deep.equal({ [SERVING]: { latencyP99Ms: 250 } });
    });
  });

  describe('the health source', () => {
    function source(options: { uptimes?: ObservedUptime[]; latency?: LatencyReader; file?: HealthSource; now?: () => Date } = {}) {
      const reads: Date[] = [];
      const uptime: UptimeReader = {
        observedUptimes: async (now) => {
          reads.push(now);
          return options.uptimes ?? [{ deploymentId: SERVING, workloadType: 'inference', uptime: { '1': 0.99, '30': 0.999 } }];
        },
      };
      return { reads, health: new ObservedHealthSource({ uptime, refreshSeconds: 15, ...options }) };
    }
    const prometheus = (answer: () => Promise<Map<string, { latencyP99Ms?: number; successRate?: number }>>): LatencyReader => ({ observe: answer });

    it('knows nothing before its first refresh, and answers from memory after it, naming the sources', async () => {
      const { health, reads } = source({ latency: prometheus(async () => new Map([[SERVING, { latencyP99Ms: 180, successRate: 0.998 }]])) });
      expect(await health.health(SERVING)).to.equal(undefined);
      await health.refresh();
      expect(await health.health(SERVING)).to.deep.equal({
        uptime: { '1': 0.99, '30': 0.999 },
        latencyP99Ms: 180,
        successRate: 0.998,
        source: { uptime: 'observed', latency: 'prometheus' },
      });
      expect(await health.health(TRAINING)).to.equal(undefined);
      // Asking reads nothing: only the refresh does.
      expect(reads).to.have.length(1);
    });

    it('keeps uptime when Prometheus fails, and the last latency until it is too old', async () => {
      let clock = new Date('2026-03-01T12:00:00Z');
      let answer: () => Promise<Map<string, { latencyP99Ms?: number }>> = async () => new Map([[SERVING, { latencyP99Ms: 120 }]]);
      const warnings: string[] = [];
      const health = new ObservedHealthSource({
        uptime: { observedUptimes: async () => [{ deploymentId: SERVING, uptime: { '7': 1 } }] },
        latency: prometheus(() => answer()),
        now: () => clock,
        refreshSeconds: 15,
        logger: { warn: (_fields, message) => warnings.push(message) },
      });
      await health.refresh();
      answer = async () => {
        throw new Error('connection refused');
      };
      clock = new Date(clock.getTime() + 30_000);
      await health.refresh();
      expect(warnings).to.have.length(1);
      expect((await health.health(SERVING))?.latencyP99Ms).to.equal(120);
      // Four refreshes (60 s) after the last answer it is too old to judge on; the uptime read since stays.
      clock = new Date(clock.getTime() + 31_000);
      await health.refresh();
      expect(await health.health(SERVING)).to.deep.equal({ uptime: { '7': 1 }, source: { uptime: 'observed', latency: 'none' } });
    });

    it('takes each part the file gives from the file, the rest from observations', async () => {
      const file: HealthSource = { health: async (id) => (id === SERVING ? { latencyP99Ms: 999 } : undefined) };
      const { health } = source({ file, latency: prometheus(async () => new Map([[SERVING, { latencyP99Ms: 100, successRate: 0.9 }]])) });
      await health.refresh();
      expect(await health.health(SERVING)).to.deep.equal({
        uptime: { '1': 0.99, '30': 0.999 },
        latencyP99Ms: 999,
        source: { uptime: 'observed', latency: 'file' },
      });
      const report = healthReport(SERVING, { '1': 0.5, '7': null, '30': null }, await health.latest(SERVING), new Date('2026-03-01T00:00:00Z'));
      expect(report).to.deep.equal({
        deploymentId: SERVING,
        uptime: { '1': 0.5, '7': null, '30': null },
        latencyP99Ms: 999,
        successRate: null,
        source: { uptime: 'observed', latency: 'file' },
        observedAt: '2026-03-01T00:00:00.000Z',
      });
    });

    it('holds no more deployments than it is allowed', async () => {
      const uptimes = Array.from({ length: 50 }, (_, i) => ({ deploymentId: `d-${i}`, uptime: { '1': 1 } }));
      const health = new ObservedHealthSource({
        uptime: { observedUptimes: async (_now, _windows, limit) => uptimes.slice(0, limit) },
        maxDeployments: 10,
      });
      await health.refresh();
      expect(health.size).to.equal(10);
    });
  });
});
