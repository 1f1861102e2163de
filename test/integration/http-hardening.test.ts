// The HTTP edge under attack, through the real server: bodies built to be slow to parse, oversized bodies,
// control characters in every query and path parameter, forged cursors, security headers, bearer challenges
// and the metrics token.
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import fc from 'fast-check';
import { READ_MODELS } from '../../projections/read-models.js';
import { backends, type TestApi } from '../support/sentinel-api.js';

// How long the event loop stalls on these bodies is a figure, not an assertion: `npm run bench:http` measures it next
// to a baseline in the same run. Here: each gets the right answer, and none brings the server down.

interface Sent {
  status: number;
  headers: Headers;
  text: string;
}

const problem = (sent: Sent) => JSON.parse(sent.text) as { status: number; detail: string; errors?: { path: string; message: string }[] };

for (const backend of backends) describe(`HTTP hardening on ${backend.name}`, function () {
  this.timeout(120_000);
  let api: TestApi;
  let root: string;

  const send = async (method: string, path: string, init: { body?: string | Uint8Array; headers?: Record<string, string>; as?: 'admin' | 'anonymous' } = {}): Promise<Sent> => {
    const headers: Record<string, string> = { ...init.headers };
    if ((init.as ?? 'admin') === 'admin') headers['authorization'] ??= `Bearer ${api.tokens.admin}`;
    const response = await fetch(api.url + path, { method, headers, body: init.body });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  const postJson = (path: string, body: string | Uint8Array, as: 'admin' | 'anonymous' = 'admin', headers: Record<string, string> = {}) =>
    send('POST', path, { body, as, headers: { 'content-type': 'application/json', ...headers } });

  const expectProblem = (sent: Sent, status: number, said: string) => {
    expect(sent.status, `${said}: ${sent.text.slice(0, 300)}`).to.equal(status);
    expect(sent.headers.get('content-type'), said).to.match(/^application\/problem\+json/);
  };

  before(async function () {
    if (backend.skipReason) this.skip();
    api = await backend.start();
    root = api.url.replace(/\/api\/v1$/, '');
  });
  after(async () => api?.stop());

  describe('request bodies cannot be made slow', () => {
    const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

    it('answers a 400,000-deep body to the unauthenticated login with a 4xx', async () => {
      const result = await Promise.all([1, 2, 3].map(() => postJson('/auth/login', nested(400_000), 'anonymous')));
      for (const sent of result) {
        expect(sent.status, sent.text.slice(0, 200)).to.be.oneOf([400, 413]);
        expect(sent.headers.get('content-type')).to.match(/^application\/problem\+json/);
      }
    });

    it('refuses a body nested deeper than 64 levels with a 400 that names the limit, also when it comes compressed', async () => {
      for (const [route, depth] of [['/clusters', 65], ['/clusters', 100_000], ['/workloads', 1_000]] as const) {
        for (const gzip of [false, true]) {
          const text = depth % 2 === 0 ? nested(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
          const said = `${route} depth ${depth}${gzip ? ' gzip' : ''}`;
          const sent = await postJson(route, gzip ? gzipSync(text) : text, 'admin', gzip ? { 'content-encoding': 'gzip' } : {});
          expectProblem(sent, 400, said);
          expect(problem(sent).detail, said).to.include('64');
        }
      }
      // 64 levels, and 1000 members, are read and judged by the route's schema.
      const deepest = await postJson('/clusters', nested(64));
      expectProblem(deepest, 400, '64 levels');
      expect(problem(deepest).detail).not.to.include('64');
      const widest = await postJson('/clusters', JSON.stringify({ gpuSkus: Array(1000).fill('nvidia-l4') }));
      expectProblem(widest, 400, '1000 members');
      expect(problem(widest).errors!.map((e) => e.path)).to.include('gpuSkus');
    });

    it('property: deep or wide bodies to any route get a 4xx problem, never a 5xx', async () => {
      const NESTINGS = { '[': { inner: '', close: ']' }, '{"a":': { inner: '1', close: '}' }, '{"":[': { inner: '', close: ']}' } } as const;
      type Shape =
        | { kind: 'deep'; open: keyof typeof NESTINGS; depth: number }
        | { kind: 'wide'; item: string; count: number }
        | { kind: 'keys'; value: string; count: number; at: string };
      const shape: fc.Arbitrary<Shape> = fc.oneof(
        fc.record({ kind: fc.constant('deep' as const), open: fc.constantFrom(...(Object.keys(NESTINGS) as (keyof typeof NESTINGS)[])), depth: fc.integer({ min: 1, max: 150_000 }) }),
        fc.record({ kind: fc.constant('wide' as const), item: fc.constantFrom('1', '""', '"\\u0000"', '{}', '[]', 'null'), count: fc.oneof(fc.integer({ min: 1, max: 1200 }), fc.integer({ min: 1, max: 60_000 })) }),
        fc.record({ kind: fc.constant('keys' as const), value: fc.constantFrom('1', '"v"', '{}'), count: fc.oneof(fc.integer({ min: 1, max: 1200 }), fc.integer({ min: 1, max: 20_000 })), at: fc.constantFrom('', 'labels', 'env') }),
      );
      const build = (s: Shape): string => {
        if (s.kind === 'deep') return s.open.repeat(s.depth) + NESTINGS[s.open].inner + NESTINGS[s.open].close.repeat(s.depth);
        if (s.kind === 'wide') return `[${Array(s.count).fill(s.item).join(',')}]`;
        const fields = Array.from({ length: s.count }, (_, i) => `"k${i}":${s.value}`).join(',');
        return s.at === '' ? `{${fields}}` : `{"${s.at}":{${fields}}}`;
      };
      const route = fc.constantFrom('/auth/login', '/clusters', '/workloads', '/deployments', '/action-plans', '/policies', '/policies/evaluate', '/users');
      await fc.assert(
        fc.asyncProperty(route, shape, async (path, s) => {
          const text = build(s);
          const sent = await postJson(path, text, path === '/auth/login' ? 'anonymous' : 'admin');
          const said = `${path} ${JSON.stringify(s)} (${text.length} bytes) → ${sent.status} ${sent.text.slice(0, 200)}`;
          expect(sent.status, said).to.be.within(400, 499);
          expect(sent.headers.get('content-type'), said).to.match(/^application\/problem\+json/);
        }),
        { numRuns: 60 },
      );
    });

    it('refuses an array or object of more than 1000 members with a 400 that names the limit', async () => {
      const fields = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 1]));
      for (const [route, body] of [
        ['/workloads', fields(19_000)],
        ['/workloads', { env: fields(1001) }],
        ['/clusters', { gpuSkus: Array(1001).fill('nvidia-l4') }],
        ['/action-plans', { reason: 'x', actions: Array(5000).fill({}) }],
      ] as const) {
        const sent = await postJson(route, JSON.stringify(body));
        expectProblem(sent, 400, route);
        expect(problem(sent).detail).to.include('1000');
      }
    });

    it('answers a body of many unknown fields with a short list of field errors', async () => {
      // Each unknown field's message lists every unknown field: one entry per field made the answer quadratic.
      const fields = Object.fromEntries(Array.from({ length: 999 }, (_, i) => [`unknown-field-${i}`, 1]));
      const sent = await postJson('/workloads', JSON.stringify(fields));
      expectProblem(sent, 400, '999 unknown fields');
      expect(problem(sent).errors!.length).to.be.at.most(21);
      expect(sent.text.length).to.be.below(20_000);
    });

    it('takes at most 8 KiB on /auth/* and 256 KiB elsewhere, answering 413 with the limit', async () => {
      const padded = (bytes: number) => JSON.stringify({ username: 'x', password: 'y'.repeat(bytes) });
      const login = await postJson('/auth/login', padded(9 * 1024), 'anonymous');
      expectProblem(login, 413, 'login of 9 KiB');
      expect(problem(login).detail).to.include('8192');
      const refresh = await postJson('/auth/refresh', JSON.stringify({ refreshToken: 'r'.repeat(9 * 1024) }), 'anonymous');
      expectProblem(refresh, 413, 'refresh of 9 KiB');

      const big = await postJson('/clusters', JSON.stringify({ name: 'big', description: 'd'.repeat(300 * 1024) }));
      expectProblem(big, 413, 'cluster of 300 KiB');
      expect(problem(big).detail).to.include(String(256 * 1024));
      // Under the limit, the same body gets as far as the schema.
      const under = await postJson('/clusters', JSON.stringify({ name: 'big', description: 'd'.repeat(200 * 1024) }));
      expectProblem(under, 400, 'cluster of 200 KiB');
      // A compressed body is measured as it inflates.
      const bomb = await postJson('/clusters', gzipSync(JSON.stringify({ name: 'x'.repeat(4 * 1024 * 1024) })), 'admin', { 'content-encoding': 'gzip' });
      expectProblem(bomb, 413, 'gzip of 4 MiB');
    });

    it('reads JSON only as UTF-8 (RFC 8259): another charset is 415', async () => {
      const utf16 = Buffer.from(JSON.stringify({ username: 'viewer', password: 'viewer-password-for-tests' }), 'utf16le');
      const sent = await postJson('/auth/login', utf16, 'anonymous', { 'content-type': 'application/json; charset=utf-16le' });
      expectProblem(sent, 415, 'utf-16le');
    });
  });

  describe('every query and path parameter is checked', () => {
    const AUDIT_FILTERS = ['actor', 'stream', 'type', 'correlationId', 'from', 'to'];
    const LISTS: [string, readonly string[]][] = [
      ['/clusters', READ_MODELS.clusters.filters],
      ['/workloads', READ_MODELS.workloads.filters],
      ['/deployments', READ_MODELS.deployments.filters],
      ['/action-plans', READ_MODELS.actionPlans.filters],
      ['/policies', READ_MODELS.policies.filters],
      ['/policy-decisions', READ_MODELS.policyDecisions.filters],
      ['/audit', AUDIT_FILTERS],
    ];

    it('answers a control character in any query parameter of any list with a 400 naming it', async () => {
      for (const [list, filters] of LISTS) {
        for (const name of [...filters, 'cursor', 'limit', 'after']) {
          for (const bad of ['%00', 'a%00b', '%01', '%1F', '%7F', '%C2%85']) {
            const sent = await send('GET', `${list}?${name}=${bad}`);
            const said = `${list}?${name}=${bad}`;
            expectProblem(sent, 400, said);
            expect(problem(sent).errors![0]!.path, said).to.equal(name);
          }
        }
      }
      const key = await send('GET', '/workloads?name%00=x');
      expectProblem(key, 400, 'a NUL in a parameter name');
      expect(problem(key).errors![0]!.path).to.equal('name\u0000');
      const repeated = await send('GET', '/workloads?namespace=ok&namespace=%00');
      expectProblem(repeated, 400, 'a NUL in the second of two values');
    });

    it('answers a control character in a path id with a 400 naming id, and any other non-UUID id with a 404', async () => {
      const idRoutes = [
        ['GET', '/clusters/:id'],
        ['GET', '/workloads/:id'],
        ['GET', '/deployments/:id'],
        ['GET', '/deployments/:id/history'],
        ['GET', '/deployments/:id/health'],
        ['GET', '/nodes/:id'],
        ['GET', '/action-plans/:id'],
        ['GET', '/policies/:id'],
        ['GET', '/policy-decisions/:id/replay'],
        ['POST', '/clusters/:id/uncordon'],
        ['DELETE', '/policies/:id'],
        ['DELETE', '/service-accounts/:id'],
      ] as const;
      for (const [method, route] of idRoutes) {
        const nul = await send(method, route.replace(':id', 'a%00b'));
        expectProblem(nul, 400, `${method} ${route} with a NUL`);
        expect(problem(nul).errors![0]!.path).to.equal('id');
        for (const id of ['not-a-uuid', `${randomUUID()}x`, 'x'.repeat(2000)]) {
          expectProblem(await send(method, route.replace(':id', id)), 404, `${method} ${route} with ${id.slice(0, 40)}`);
        }
        expectProblem(await send(method, route.replace(':id', '%E0%A4%A')), 400, `${method} ${route} with a bad percent-encoding`);
      }
    });

    it('answers a time filter outside the years 1 to 9999 with a 400 naming it', async () => {
      for (const list of ['/policy-decisions', '/audit']) {
        for (const name of ['from', 'to']) {
          for (const time of ['0000-01-01T00:00:00Z', '-000001-01-01T00:00:00Z', '+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00Z', '+010000-01-01T00:00:00Z']) {
            const said = `${list}?${name}=${time}`;
            const sent = await send('GET', `${list}?${name}=${encodeURIComponent(time)}`);
            expectProblem(sent, 400, said);
            expect(problem(sent).errors![0]!.path, said).to.equal(name);
          }
          expect((await send('GET', `${list}?${name}=0001-01-01T00:00:00Z`)).status).to.equal(200);
        }
      }
    });

    it('answers a cursor that decodes to NUL bytes or garbage with a 400 naming cursor', async () => {
      const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
      const forged = [
        ['/workloads', b64(JSON.stringify(['\u0000', '\u0000']))],
        ['/workloads', b64(JSON.stringify(['0000000000000001-0000000000000001', 'a\u0000']))],
        ['/workloads', b64(JSON.stringify(['\ud800', 'x']))],
        ['/policy-decisions', b64(JSON.stringify(['\u0007']))],
        ['/audit', b64('\u0000')],
        ['/audit', b64('\u0000\u0000\u0000\u0000')],
        ['/audit', b64('hello')],
        ['/audit', b64("' or 1=1 --")],
      ];
      for (const [list, cursor] of forged) {
        const sent = await send('GET', `${list}?cursor=${cursor}`);
        expectProblem(sent, 400, `${list} cursor ${cursor}`);
        expect(problem(sent).errors![0]!.path).to.equal('cursor');
      }
    });
  });

  describe('requests the HTTP parser refuses', () => {
    /** What the server answers to bytes written as they are, on a connection of their own. */
    const rawExchange = (bytes: string) =>
      new Promise<string>((resolve, reject) => {
        const { hostname, port } = new URL(root);
        const socket = connect(Number(port), hostname, () => socket.end(bytes));
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      });
    const answerOf = (raw: string) => {
      const [head = '', body = ''] = raw.split('\r\n\r\n');
      return { statusLine: head.split('\r\n')[0], head: head.toLowerCase(), body: JSON.parse(body) as { type: string; status: number; detail: string } };
    };

    it('answers a request line and headers over the limit with a 431 problem, and a request it cannot parse with a 400 problem', async () => {
      const long = answerOf(await rawExchange(`GET /api/v1/clusters?filter=${'x'.repeat(20_000)} HTTP/1.1\r\nHost: a\r\n\r\n`));
      expect(long.statusLine).to.equal('HTTP/1.1 431 Request Header Fields Too Large');
      expect(long.head).to.include('content-type: application/problem+json');
      expect(long.body).to.deep.include({ type: 'urn:sentinel:problem:headers-too-large', status: 431 });
      expect(long.body.detail).to.match(/larger than \d+ bytes/);

      const garbage = answerOf(await rawExchange('NOT HTTP AT ALL\r\n\r\n'));
      expect(garbage.statusLine).to.equal('HTTP/1.1 400 Bad Request');
      expect(garbage.body).to.deep.include({ type: 'urn:sentinel:problem:validation-failed', status: 400 });

      // The server is none the worse for either.
      expect((await send('GET', '/clusters')).status).to.equal(200);
    });
  });

  describe('headers', () => {
    const SECURITY_HEADERS = {
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'content-security-policy': "default-src 'none';frame-ancestors 'none'",
      'x-frame-options': 'DENY',
      'cache-control': 'no-store',
    };

    it('sets the security headers and no-store on every answer: probes, tokens, problems, unknown paths', async () => {
      const answers: [string, Sent][] = [
        ['/healthz', await fetch(`${root}/healthz`).then(async (r) => ({ status: r.status, headers: r.headers, text: await r.text() }))],
        ['/metrics', await fetch(`${root}/metrics`).then(async (r) => ({ status: r.status, headers: r.headers, text: await r.text() }))],
        ['login', await postJson('/auth/login', JSON.stringify({ username: 'viewer', password: 'viewer-password-for-tests' }), 'anonymous')],
        ['failed login', await postJson('/auth/login', JSON.stringify({ username: 'viewer', password: 'wrong-password-here' }), 'anonymous')],
        ['a list', await send('GET', '/workloads')],
        ['openapi', await send('GET', '/openapi.json')],
        ['unknown path', await send('GET', '/nothing-here')],
      ];
      expect(answers[2]![1].status).to.equal(200);
      for (const [what, sent] of answers) {
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(sent.headers.get(name), `${name} on ${what}`).to.equal(value);
      }
    });

    it('challenges per RFC 6750: bare without a token, error="invalid_token" with a bad one', async () => {
      const none = await send('GET', '/workloads', { as: 'anonymous' });
      expectProblem(none, 401, 'no token');
      expect(none.headers.get('www-authenticate')).to.equal('Bearer realm="sentinel"');

      const otherScheme = await send('GET', '/workloads', { as: 'anonymous', headers: { authorization: 'Basic dXNlcjpwYXNz' } });
      expectProblem(otherScheme, 401, 'Basic');
      expect(otherScheme.headers.get('www-authenticate')).to.equal('Bearer realm="sentinel"');

      for (const token of ['not-a-jwt', `${api.tokens.admin}x`, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.']) {
        const bad = await send('GET', '/workloads', { headers: { authorization: `Bearer ${token}` } });
        expectProblem(bad, 401, `token ${token.slice(0, 20)}`);
        expect(bad.headers.get('www-authenticate')).to.match(/^Bearer realm="sentinel", error="invalid_token", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]+"$/);
      }
    });

    it('keeps /metrics open without SENTINEL_METRICS_TOKEN, and behind that bearer token with it', async () => {
      expect((await fetch(`${root}/metrics`)).status).to.equal(200);
      const token = 'metrics-token-for-the-tests-0123';
      const guarded = await backend.start({ SENTINEL_METRICS_TOKEN: token });
      try {
        const metrics = `${guarded.url.replace(/\/api\/v1$/, '')}/metrics`;
        const none = await fetch(metrics);
        expect(none.status).to.equal(401);
        expect(none.headers.get('content-type')).to.match(/^application\/problem\+json/);
        expect(none.headers.get('www-authenticate')).to.equal('Bearer realm="sentinel"');
        for (const wrong of [`${token}x`, token.slice(1), 'x', guarded.tokens.admin]) {
          const refused = await fetch(metrics, { headers: { authorization: `Bearer ${wrong}` } });
          expect(refused.status).to.equal(401);
          expect(refused.headers.get('www-authenticate')).to.include('error="invalid_token"');
        }
        const allowed = await fetch(metrics, { headers: { authorization: `Bearer ${token}` } });
        expect(allowed.status).to.equal(200);
        expect(await allowed.text()).to.include('# HELP');
      } finally {
        await guarded.stop();
      }
    });
  });
});
