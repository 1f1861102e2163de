// The OpenAPI document agrees with the server: every query parameter a list declares is accepted, one it does
// not declare is refused with 400, and the headers and Location a route uses are declared. Also: a 500 is a
// Sentinel problem like every other.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import express from 'express';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createHttpApp, listen } from '../../adapters/http/server.js';
import { route } from '../../commands/http/route.js';
import { createCommandRouter } from '../../commands/http/router.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: { type?: string; format?: string; enum?: string[]; pattern?: string };
}
interface Operation {
  operationId: string;
  parameters?: Parameter[];
  responses: Record<string, { headers?: Record<string, unknown> }>;
}
type Paths = Record<string, Record<string, Operation>>;

describe('the OpenAPI document against the server', function () {
  this.timeout(120_000);
  let api: TestApi;
  let paths: Paths;
  let position: string;

  before(async () => {
    api = await startTestApi();
    const document = await api.request<{ paths: Paths }>('get', '/openapi.json', { as: 'anonymous' });
    expect(document.status).to.equal(200);
    paths = document.body.paths;
    const written = await api.request<{ position: string }>('post', '/workloads', {
      body: { name: 'openapi', namespace: 'docs', type: 'batch', image: 'registry.local/job:1', resources: { cpu: '1', memory: '1Gi' } },
    });
    expect(written.status).to.equal(201);
    position = written.body.position;
  });
  after(async () => api?.stop());

  const operations = () =>
    Object.entries(paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([method, operation]) => ({ path, method, operation })));
  const concrete = (path: string) => path.replace(/\{\w+\}/g, () => randomUUID());
  const queryOf = (operation: Operation) => (operation.parameters ?? []).filter((p) => p.in === 'query');

  /** A value the declared schema accepts. */
  const sample = (parameter: Parameter): string => {
    const { schema } = parameter;
    if (parameter.name === 'after') return position;
    if (parameter.name === 'cursor') return '';
    if (schema.enum) return schema.enum[0]!;
    if (schema.format === 'uuid') return randomUUID();
    if (schema.format === 'date-time') return '2026-01-31T12:00:00Z';
    if (schema.pattern === '^[0-9]{1,4}$') return '10';
    return 'x';
  };

  it('declares limit, cursor, after and order on every list, and accepts each declared query parameter of every list', async () => {
    // A fleet snapshot's lists page and filter as the live ones do, but name a snapshot that must exist and never move
    // (no `after`): test/integration/forensics-snapshot-api.test.ts reads them.
    const lists = operations().filter(
      ({ path, method, operation }) => method === 'get' && !path.startsWith('/forensics/snapshots/') && queryOf(operation).some((p) => p.name === 'limit'),
    );
    expect(lists.map(({ path }) => path)).to.include.members([
      '/clusters',
      '/workloads',
      '/deployments',
      '/action-plans',
      '/policies',
      '/policy-decisions',
      '/audit',
      '/users',
      '/service-accounts',
    ]);
    for (const { path, operation } of lists) {
      const declared = queryOf(operation).map((p) => p.name);
      expect(declared, path).to.include.members(['limit', 'cursor', 'order']);
      if (!['/users', '/service-accounts'].includes(path)) expect(declared, path).to.include('after');
      for (const parameter of queryOf(operation)) {
        const query = `${path}?${parameter.name}=${encodeURIComponent(sample(parameter))}`;
        const reply = await api.request('get', query);
        expect(reply.status, `${query}: ${JSON.stringify(reply.body)}`).to.equal(200);
      }
    }
  });

  it('refuses a query parameter an operation does not declare with a 400 naming it, on every operation', async () => {
    for (const { path, method, operation } of operations()) {
      const query = `${concrete(path)}?undeclared-${operation.operationId}=1`;
      const reply = await api.request<{ type: string; errors: { path: string }[] }>(method, query);
      expect(reply.status, `${method} ${query}: ${JSON.stringify(reply.body)}`).to.equal(400);
      expect(reply.body.type, `${method} ${query}`).to.equal('urn:sentinel:problem:validation-failed');
      expect(reply.body.errors[0]!.path, `${method} ${query}`).to.equal(`undeclared-${operation.operationId}`);
    }
  });

  it('declares the Location of POST /deployments and POST /action-plans, and the request headers the server reads', () => {
    for (const path of ['/deployments', '/action-plans']) {
      const post = paths[path]!['post']!;
      expect(Object.keys(post.responses), path).to.include('202');
      expect(post.responses['202']!.headers, path).to.have.property('Location');
    }
    expect(paths['/users']!['post']!.responses['201']!.headers).to.have.property('Location');
    const headersOf = (path: string, method: string) => (paths[path]![method]!.parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name);
    expect(headersOf('/deployments', 'post')).to.include.members(['Idempotency-Key', 'X-Correlation-Id', 'traceparent', 'X-Sentinel-Emergency']);
    expect(headersOf('/action-plans', 'post')).to.include.members(['Idempotency-Key', 'X-Correlation-Id', 'traceparent', 'X-Sentinel-Emergency']);
    expect(headersOf('/workloads', 'post')).to.include.members(['Idempotency-Key', 'X-Correlation-Id', 'traceparent']).and.not.to.include('X-Sentinel-Emergency');
    expect(headersOf('/workloads', 'get')).to.deep.equal(['X-Correlation-Id']);
    for (const { path, method, operation } of operations()) {
      expect(operation.parameters?.some((p) => p.in === 'header' && p.name === 'X-Correlation-Id'), `${method} ${path}`).to.equal(true);
    }
  });
});

describe('a fault of the server', () => {
  it('answers 500 with a Sentinel problem type, from a route and from anything else mounted', async () => {
    const logger = pino({ level: 'silent' });
    const failing = route({
      method: 'get',
      path: '/failing',
      operationId: 'fail',
      summary: 'Fail',
      tag: 'test',
      access: 'public',
      idempotent: false,
      success: { status: 200, schema: {} as never, description: 'never' },
      handle: () => Promise.reject(new Error('a fault')),
    });
    const other = express.Router();
    other.get('/other', (_req, _res, next) => next(new Error('another fault')));
    const app = createHttpApp({
      logger,
      metrics: new Registry(),
      readiness: async () => undefined,
      routers: [
        { path: '/api/v1', router: createCommandRouter({ routes: [failing], access: {} as never, idempotency: {} as never, logger }) },
        { path: '/x', router: other },
      ],
    });
    const server = await listen(app, '127.0.0.1', 0);
    try {
      for (const path of ['/api/v1/failing', '/x/other']) {
        const reply = await fetch(`http://127.0.0.1:${server.port}${path}`);
        expect(reply.status, path).to.equal(500);
        expect(reply.headers.get('content-type'), path).to.match(/^application\/problem\+json/);
        expect(((await reply.json()) as { type: string }).type, path).to.equal('urn:sentinel:problem:internal-error');
      }
    } finally {
      await server.close(1000);
    }
  });
});
