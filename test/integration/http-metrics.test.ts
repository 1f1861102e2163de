// The HTTP RED metrics through the real app: each request shows in /metrics by its route pattern, never its path,
// and a request no route matched as route="unmatched".
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import express from 'express';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createHttpApp, listen, type RunningHttpServer } from '../../adapters/http/server.js';
import { eventually } from '../support/eventually.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

/** The value of one series in a /metrics text, or undefined when it is not there. */
function valueOf(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('HTTP RED metrics', function () {
  this.timeout(60_000);

  describe('through the running API', () => {
    let api: TestApi;
    before(async () => {
      api = await startTestApi(undefined, { SENTINEL_ROLE: 'api,projector' });
    });
    after(async () => api?.stop());

    it('counts requests to two routes and a 404 by route pattern and status class, with their latency', async () => {
      const first = randomUUID();
      const second = randomUUID();
      // Two ids of one route: one series between them.
      for (const id of [first, second]) expect((await api.request('get', `/deployments/${id}`, { as: 'viewer' })).status).to.equal(404);
      expect((await api.request('get', '/clusters', { as: 'viewer' })).status).to.equal(200);
      expect((await api.request('get', '/clusters', { as: 'anonymous' })).status).to.equal(401);
      expect((await api.request('get', `/no-such-thing/${first}`, { as: 'viewer' })).status).to.equal(404);

      const text = await (await fetch(`${api.url.replace(/\/api\/v1$/, '')}/metrics`)).text();
      expect(valueOf(text, 'sentinel_http_requests_total{method="GET",route="/api/v1/deployments/:id",status_class="4xx"}')).to.equal(2);
      expect(valueOf(text, 'sentinel_http_requests_total{method="GET",route="/api/v1/clusters",status_class="2xx"}')).to.equal(1);
      expect(valueOf(text, 'sentinel_http_requests_total{method="GET",route="/api/v1/clusters",status_class="4xx"}')).to.equal(1);
      expect(valueOf(text, 'sentinel_http_requests_total{method="GET",route="unmatched",status_class="4xx"}')).to.equal(1);
      expect(valueOf(text, 'sentinel_http_request_duration_seconds_count{method="GET",route="/api/v1/deployments/:id"}')).to.equal(2);
      expect(valueOf(text, 'sentinel_http_request_duration_seconds_count{method="GET",route="unmatched"}')).to.equal(1);
      // No path sent ever becomes a label value.
      expect(text).not.to.include(first);
      expect(text).not.to.include('no-such-thing');
    });
  });

  describe('on the bare server', () => {
    let server: RunningHttpServer;
    let root: string;
    let registry: Registry;
    let arrived: () => void;
    const slowArrived = new Promise<void>((resolve) => (arrived = resolve));
    before(async () => {
      registry = new Registry();
      const router = express.Router();
      router.get('/things/:name', (_req, res) => void res.json({}));
      // Answers nothing: the client gives up on it.
      router.get('/slow', () => arrived());
      const app = createHttpApp({ logger: pino({ level: 'silent' }), metrics: registry, readiness: async () => undefined, routers: [{ path: '/v9', router }] });
      server = await listen(app, '127.0.0.1', 0);
      root = `http://127.0.0.1:${server.port}`;
    });
    after(async () => server?.close(0));

    it('names a method no one uses "other", and a request the client abandoned "aborted"', async () => {
      expect((await fetch(`${root}/v9/things/a`)).status).to.equal(200);
      expect((await fetch(`${root}/v9/things/b`, { method: 'PROPFIND' })).status).to.equal(404);
      const controller = new AbortController();
      const abandoned = fetch(`${root}/v9/slow`, { signal: controller.signal }).catch(() => 'aborted');
      await slowArrived;
      controller.abort();
      expect(await abandoned).to.equal('aborted');
      // The server counts the request when it sees the connection close, after the client has given up.
      const text = await eventually('the abandoned request counted', () => registry.getSingleMetricAsString('sentinel_http_requests_total'), (metric) => metric.includes('status_class="aborted"'), 5_000);
      expect(valueOf(text, 'sentinel_http_requests_total{method="GET",route="/v9/things/:name",status_class="2xx"}')).to.equal(1);
      expect(valueOf(text, 'sentinel_http_requests_total{method="other",route="unmatched",status_class="4xx"}')).to.equal(1);
      expect(valueOf(text, 'sentinel_http_requests_total{method="GET",route="/v9/slow",status_class="aborted"}')).to.equal(1);
    });
  });
});
