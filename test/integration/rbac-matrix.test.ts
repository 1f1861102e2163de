// Who may call what: every route of the API against every kind of caller, checked through the real server
// against a table written out by hand, so that a change to a route's `access` cannot pass unnoticed.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { commandRoutes } from '../../commands/http/api.js';
import { queryRoutes } from '../../projections/http/query-routes.js';
import { startTestApi, type Caller, type TestApi } from '../support/sentinel-api.js';

type Verdict = 'allow' | 'deny';
const CALLERS = ['anonymous', 'viewer', 'operator', 'admin', 'system'] as const satisfies readonly Caller[];

/**
 * The intended policy. Deny means 401 for anonymous and 403 for a signed-in principal of another role; allow
 * means neither of those and never a 5xx. Do not build this from the routes' `access` fields.
 */
// prettier-ignore
const MATRIX: Record<string, readonly [anonymous: Verdict, viewer: Verdict, operator: Verdict, admin: Verdict, system: Verdict]> = {
  //                                   anonymous viewer   operator admin    system
  'POST /auth/login':                 ['allow', 'allow', 'allow', 'allow', 'allow'],
  'POST /auth/refresh':               ['allow', 'allow', 'allow', 'allow', 'allow'],
  'GET /auth/me':                     ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /users':                       ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /users':                      ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'PATCH /users/:id':                 ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /service-accounts':            ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /service-accounts':           ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'DELETE /service-accounts/:id':     ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /clusters':                   ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'PATCH /clusters/:id':              ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /clusters/:id/cordon':        ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /clusters/:id/uncordon':      ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'DELETE /clusters/:id':             ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /workloads':                  ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'PATCH /workloads/:id':             ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'DELETE /workloads/:id':            ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments':                ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments/:id/scale':      ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments/:id/rollback':   ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments/:id/restart':    ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments/:id/pause':      ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments/:id/resume':     ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments/:id/promote':    ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /deployments/:id/abort':      ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'PATCH /deployments/:id':           ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'DELETE /deployments/:id':          ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'POST /action-plans':               ['deny',  'deny',  'allow', 'allow', 'allow'],
  'POST /action-plans/:id/cancel':    ['deny',  'deny',  'allow', 'allow', 'allow'],
  'POST /policies':                   ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'PATCH /policies/:id':              ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'DELETE /policies/:id':             ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /policies/evaluate':          ['deny',  'deny',  'allow', 'allow', 'allow'],
  'POST /policies/impact':            ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /autonomy/pause':             ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'POST /autonomy/resume':            ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /policy-decisions/:id/replay': ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /clusters':                    ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /clusters/:id':                ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /workloads':                   ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /workloads/:id':               ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /deployments':                 ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /deployments/:id':             ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /deployments/:id/history':     ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /deployments/:id/rollout':     ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /action-plans':                ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /action-plans/:id':            ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /policies':                    ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /policies/:id':                ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /policy-decisions':            ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /deployments/:id/health':      ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /nodes':                       ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /nodes/:id':                   ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /fleet/cost':                  ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /fleet/gpus':                  ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /audit':                       ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /audit/verify':                ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /projections':                 ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /reactors':                    ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /reactors/parked':             ['deny',  'deny',  'allow', 'allow', 'deny' ],
  'GET /timeline':                    ['deny',  'allow', 'allow', 'allow', 'allow'],
  'POST /forensics/snapshots':                              ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id':                           ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'DELETE /forensics/snapshots/:id':                        ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/clusters':                  ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/workloads':                 ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/deployments':               ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/action-plans':              ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/policies':                  ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/policy-decisions':          ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/nodes':                     ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/deployment-uptime':         ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /forensics/snapshots/:id/fleet-cost':                ['deny',  'deny',  'deny',  'allow', 'deny' ],
  'GET /events/stream':               ['deny',  'allow', 'allow', 'allow', 'allow'],
  'GET /openapi.json':                ['allow', 'allow', 'allow', 'allow', 'allow'],
};

/** A plausible body per route; only the access verdict matters, so a 400, 404 or 422 is as good as a 2xx. */
const BODIES: Record<string, (api: TestApi, caller: Caller) => unknown> = {
  'POST /auth/login': () => ({ username: 'viewer', password: 'viewer-password-for-tests' }),
  // A refresh token is used up by one call, so each call logs in for a fresh one.
  'POST /auth/refresh': async (api) => {
    const login = await api.request<{ refreshToken: string }>('post', '/auth/login', {
      as: 'anonymous',
      body: { username: 'viewer', password: 'viewer-password-for-tests' },
    });
    expect(login.status, 'logging in for a refresh token').to.equal(200);
    return { refreshToken: login.body.refreshToken };
  },
  'POST /users': (_api, caller) => ({ username: `rbac-${caller}-${unique()}`, password: 'rbac-password-1234', role: 'viewer' }),
  'PATCH /users/:id': () => ({ role: 'viewer' }),
  'POST /service-accounts': (_api, caller) => ({ name: `rbac-${caller}-${unique()}` }),
  'POST /clusters': (_api, caller) => ({
    name: `rbac-${caller}-${unique()}`,
    apiServer: 'https://10.0.0.1:6443',
    credentials: { source: 'in-cluster' },
    region: 'us-east-1',
  }),
  'PATCH /clusters/:id': () => ({ region: 'us-west-2' }),
  'POST /clusters/:id/cordon': () => ({ reason: 'rbac matrix' }),
  'DELETE /clusters/:id': () => ({ reason: 'rbac matrix' }),
  'POST /workloads': (_api, caller) => ({
    name: `rbac-${caller}-${unique()}`,
    namespace: 'ml',
    type: 'batch',
    image: 'registry.local/job:1.0',
    resources: { cpu: '1', memory: '1Gi' },
  }),
  'PATCH /workloads/:id': () => ({ image: 'registry.local/job:1.1' }),
  'DELETE /workloads/:id': () => ({ reason: 'rbac matrix' }),
  'POST /deployments': () => ({ workloadId: randomUUID(), clusterId: randomUUID(), replicas: 1 }),
  'POST /deployments/:id/scale': () => ({ replicas: 2 }),
  'POST /deployments/:id/rollback': () => ({ toRevision: 1 }),
  'POST /deployments/:id/restart': () => ({ reason: 'rbac matrix' }),
  'POST /deployments/:id/pause': () => ({ reason: 'rbac matrix' }),
  'POST /deployments/:id/resume': () => ({ reason: 'rbac matrix' }),
  'POST /deployments/:id/promote': () => ({ full: true }),
  'POST /deployments/:id/abort': () => ({ reason: 'rbac matrix' }),
  'PATCH /deployments/:id': () => ({ workloadRevision: 1 }),
  'DELETE /deployments/:id': () => ({ reason: 'rbac matrix' }),
  'POST /action-plans': () => ({ reason: 'rbac matrix', actions: [{ kind: 'restart', deploymentId: randomUUID() }], ttlSeconds: 600 }),
  'POST /action-plans/:id/cancel': () => ({ reason: 'rbac matrix' }),
  'POST /policies': (_api, caller) => ({
    name: `rbac-${caller}-${unique()}`,
    type: 'quota',
    mode: 'audit',
    selector: { namespaces: ['rbac-nowhere'] },
    parameters: { limits: { replicas: 10 } },
  }),
  'PATCH /policies/:id': () => ({ priority: 5 }),
  'POST /policies/evaluate': () => ({ change: { kind: 'restart', deploymentId: randomUUID() } }),
  'POST /policies/impact': () => ({
    policy: { name: 'rbac-draft', type: 'quota', mode: 'enforce', parameters: { limits: { replicas: 1 } } },
    from: '2026-01-01T00:00:00Z',
    to: '2026-01-02T00:00:00Z',
  }),
  'POST /autonomy/pause': () => ({ reason: 'rbac matrix' }),
  'POST /autonomy/resume': () => ({ reason: 'rbac matrix' }),
  'POST /forensics/snapshots': () => ({ at: '2026-01-01T00:00:00Z' }),
};

let counter = 0;
const unique = () => `${process.pid}-${++counter}`;

/** `GET /openapi.json` and the live event stream are mounted beside the command routes, not among them. */
const OUTSIDE_THE_ROUTE_TABLE = ['GET /openapi.json', 'GET /events/stream'];

/** Routes whose answer is a stream that does not end: only the status and headers are read, then it is closed. */
const STREAMING = new Set(['GET /events/stream']);

async function openStream(api: TestApi, path: string, caller: Caller) {
  const abort = new AbortController();
  const headers: Record<string, string> = caller === 'anonymous' ? {} : { authorization: `Bearer ${api.tokens[caller]}` };
  const response = await fetch(api.url + path, { headers, signal: abort.signal });
  const body = response.ok ? {} : ((await response.json()) as Record<string, unknown>);
  abort.abort();
  return { status: response.status, headers: response.headers, body };
}

/** The rows `commandApi` mounts; their handlers never run here, so the services behind them can be stand-ins. */
function routeRows() {
  return [
    ...commandRoutes({ handler: {} as never, policy: {} as never, access: {} as never, secrets: {} as never, clock: {} as never, planTtlSeconds: 60 }),
    ...queryRoutes({ knex: {} as never, runtime: {} as never, telemetry: {} as never }),
  ];
}
const keyOf = (route: { method: string; path: string }) => `${route.method.toUpperCase()} ${route.path}`;

describe('RBAC matrix: every route × every caller', function () {
  this.timeout(60_000);
  let api: TestApi;

  before(async () => {
    api = await startTestApi();
  });
  after(async () => api?.stop());

  it('has exactly one row for every route the API serves', async () => {
    const served = [...routeRows().map(keyOf), ...OUTSIDE_THE_ROUTE_TABLE];
    expect(new Set(served).size, 'a route served twice').to.equal(served.length);
    expect(Object.keys(MATRIX).sort()).to.deep.equal([...served].sort());

    // The published document lists the same routes and the stream, so a client sees no route the table misses.
    const document = await api.request<{ paths: Record<string, Record<string, unknown>> }>('get', '/openapi.json', { as: 'anonymous' });
    expect(document.status).to.equal(200);
    const documented = Object.entries(document.body.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect(documented.sort()).to.deep.equal([...routeRows().map(keyOf), 'GET /events/stream'].sort());
  });

  it('has a body for every route that takes one', () => {
    const needed = routeRows().filter((route) => route.body).map(keyOf);
    expect(needed.filter((key) => !(key in BODIES))).to.deep.equal([]);
  });

  for (const [key, verdicts] of Object.entries(MATRIX)) {
    const [method, path] = key.split(' ') as [string, string];
    CALLERS.forEach((caller, column) => {
      const verdict = verdicts[column]!;
      const expected = verdict === 'allow' ? 'allowed' : caller === 'anonymous' ? 'denied with 401' : 'denied with 403';

      it(`${key} as ${caller}: ${expected}`, async () => {
        const body = await BODIES[key]?.(api, caller);
        const head = await api.head();
        const reply = STREAMING.has(key)
          ? await openStream(api, path, caller)
          : await api.request(method.toLowerCase(), path.replaceAll(':id', randomUUID()), { as: caller, body });
        const said = `${reply.status} ${JSON.stringify(reply.body)?.slice(0, 300)}`;

        if (verdict === 'allow') {
          expect(reply.status, said).not.to.be.oneOf([401, 403]);
          expect(reply.status, said).to.be.below(500);
          // The fallback 404 of an unknown path would look allowed; make sure the route itself answered.
          expect(String(reply.body?.['detail'] ?? ''), said).not.to.match(/^no route for/);
          return;
        }
        expect(reply.status, said).to.equal(caller === 'anonymous' ? 401 : 403);
        expect(reply.headers.get('content-type'), said).to.match(/^application\/problem\+json/);
        if (caller === 'anonymous') expect(reply.headers.get('www-authenticate'), said).to.match(/^Bearer /);
        else expect(reply.body['type'], said).to.equal('urn:sentinel:problem:forbidden');
        expect(await api.head(), 'a refused request appended events').to.equal(head);
      });
    });
  }
});
