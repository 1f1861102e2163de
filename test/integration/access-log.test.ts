// The access log: one line per request, through the process's own pino logger, with who and what but no secret.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import express from 'express';
import { pino, type DestinationStream } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../../app/config.js';
import { startSentinel, type RunningSentinel } from '../../app/sentinel.js';
import { createHttpApp, listen, type RunningHttpServer } from '../../adapters/http/server.js';

const ADMIN_PASSWORD = 'access-log-admin-password';
const JWT_SECRET = 'a-signing-secret-for-the-access-log-test';
const ACCESS_MESSAGES = ['request completed', 'request aborted'];

type Line = Record<string, unknown>;

/** A pino destination that keeps every line, and lets a test wait for the access line of one request. */
function capture(): DestinationStream & { text: () => string; lines: () => Line[]; accessLine: (requestId: string) => Promise<Line> } {
  const written: string[] = [];
  const waiting = new Map<string, (line: Line) => void>();
  const accessLines = (requestId: string) =>
    written.map((text) => JSON.parse(text) as Line).filter((line) => line['requestId'] === requestId && ACCESS_MESSAGES.includes(line['msg'] as string));
  return {
    write(text: string) {
      written.push(text);
      const line = JSON.parse(text) as Line;
      const waiter = waiting.get(line['requestId'] as string);
      if (waiter && ACCESS_MESSAGES.includes(line['msg'] as string)) {
        waiting.delete(line['requestId'] as string);
        waiter(line);
      }
    },
    text: () => written.join(''),
    lines: () => written.map((text) => JSON.parse(text) as Line),
    // The line is written when the server finishes the response, which may be just after the client has read it.
    accessLine: (requestId) => {
      const [line] = accessLines(requestId);
      if (line) return Promise.resolve(line);
      return new Promise((resolve) => waiting.set(requestId, resolve));
    },
  };
}

describe('access log through the real app', function () {
  this.timeout(120_000);
  let dataDir: string;
  let sentinel: RunningSentinel;
  let root: string;
  let output: ReturnType<typeof capture>;
  let token: string;
  let adminId: string;

  /** Sends a request and returns its answer with the one access line it wrote. */
  async function logged(pathname: string, init: RequestInit = {}): Promise<{ response: Response; line: Line; body: string }> {
    const response = await fetch(root + pathname, init);
    const body = await response.text();
    const requestId = response.headers.get('x-request-id');
    expect(requestId, `X-Request-Id on ${pathname}`).to.be.a('string');
    return { response, body, line: await output.accessLine(requestId!) };
  }

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-access-log-'));
    output = capture();
    const config = loadConfig({
      HOST: '127.0.0.1',
      PORT: '0',
      TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0',
      SENTINEL_DATA_DIR: dataDir,
      SENTINEL_ROLE: 'api,projector',
      SENTINEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      SENTINEL_JWT_SECRET: JWT_SECRET,
    });
    sentinel = await startSentinel(config, pino({ level: 'debug' }, output));
    root = `http://127.0.0.1:${sentinel.port}`;
  });

  after(async () => {
    await sentinel?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('given a login, then one info line with the route, status and ids, and neither the password nor the token', async () => {
    const { response, line, body } = await logged('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    });
    expect(response.status).to.equal(200);
    token = (JSON.parse(body) as { accessToken: string }).accessToken;
    expect(line).to.include({
      level: 30,
      msg: 'request completed',
      requestId: response.headers.get('x-request-id'),
      correlationId: response.headers.get('x-correlation-id'),
      method: 'POST',
      path: '/api/v1/auth/login',
      route: '/api/v1/auth/login',
      status: 200,
    });
    expect(line['durationMs']).to.be.a('number').and.to.be.at.least(0);
    expect(line, 'nobody is authenticated on a login').to.not.have.property('principalId');
    expect(output.text()).to.not.include(ADMIN_PASSWORD);
    expect(output.text()).to.not.include(token);
  });

  it('given an authenticated request, then exactly one line naming the principal and the route pattern, and no header or cookie', async () => {
    adminId = (JSON.parse((await logged('/api/v1/auth/me', { headers: { authorization: `Bearer ${token}` } })).body) as { id: string }).id;
    const id = randomUUID();
    const { response, line } = await logged(`/api/v1/deployments/${id}?view=full`, {
      headers: { authorization: `Bearer ${token}`, cookie: 'session=cookie-that-must-not-be-logged', 'x-correlation-id': 'trace-me-42' },
    });
    const requestId = response.headers.get('x-request-id')!;
    expect(line).to.include({
      requestId,
      correlationId: 'trace-me-42',
      principalId: adminId,
      method: 'GET',
      path: `/api/v1/deployments/${id}`,
      route: '/api/v1/deployments/:id',
      status: response.status,
      level: 30,
    });
    expect(Object.keys(line).sort()).to.deep.equal(
      ['level', 'time', 'pid', 'hostname', 'msg', 'requestId', 'correlationId', 'principalId', 'method', 'path', 'route', 'status', 'durationMs'].sort(),
    );

    // A later request's line written means this one's had every chance to be written twice.
    await logged('/healthz');
    const lines = output.lines().filter((each) => each['requestId'] === requestId && ACCESS_MESSAGES.includes(each['msg'] as string));
    expect(lines).to.have.length(1);
    const said = output.text();
    expect(said).to.not.include(token);
    expect(said).to.not.include('cookie-that-must-not-be-logged');
    expect(said).to.not.include('view=full');
    expect(said.toLowerCase()).to.not.include('authorization');
  });

  it('given the probes and /metrics, then their lines are at debug', async () => {
    for (const probe of ['/healthz', '/readyz', '/metrics']) {
      const { response, line } = await logged(probe);
      expect(response.status).to.equal(200);
      expect(line, probe).to.include({ level: 20, route: probe, path: probe, status: 200 });
    }
  });

  it('given a path no route matches, then an info line with the path and no route', async () => {
    const { response, line } = await logged('/api/v1/no-such-thing');
    expect(response.status).to.equal(404);
    expect(line).to.include({ level: 30, path: '/api/v1/no-such-thing', status: 404 });
    expect(line).to.not.have.property('route');
  });
});

describe('access log of a failing route', () => {
  let server: RunningHttpServer;
  let output: ReturnType<typeof capture>;

  before(async () => {
    output = capture();
    const failing = express.Router();
    failing.get('/:id', () => {
      throw new Error('the handler broke');
    });
    const app = createHttpApp({ logger: pino({ level: 'info' }, output), metrics: new Registry(), readiness: async () => undefined, routers: [{ path: '/broken', router: failing }] });
    server = await listen(app, '127.0.0.1', 0);
  });

  after(async () => {
    await server.close(0);
  });

  it('given a 5xx, then the line is at error, with the route pattern, beside the error logged under the same request id', async () => {
    const response = await fetch(`http://127.0.0.1:${server.port}/broken/7`);
    expect(response.status).to.equal(500);
    const requestId = response.headers.get('x-request-id')!;
    const line = await output.accessLine(requestId);
    expect(line).to.include({ level: 50, msg: 'request completed', requestId, method: 'GET', path: '/broken/7', route: '/broken/:id', status: 500 });
    const failure = output.lines().find((each) => each['msg'] === 'request failed');
    expect(failure).to.include({ requestId });
  });

  it('given a logger at info, then probe lines are not written', async () => {
    const response = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    expect(response.status).to.equal(200);
    // The next request's line is written after the probe's would have been.
    const next = await fetch(`http://127.0.0.1:${server.port}/nowhere`);
    await output.accessLine(next.headers.get('x-request-id')!);
    expect(output.lines().filter((line) => line['path'] === '/healthz')).to.deep.equal([]);
  });
});
