// `npm start` as a newcomer runs it: the real entry point in a child process, probed over HTTP.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { nodeArgsFor } from '../support/entry-points.js';
import { freePort } from '../support/ports.js';

const MAIN = path.resolve('app/main.ts');
/** `npm start`'s own command line: the source through tsx, with the tracing preload. */
const NPM_START = ['--import', 'tsx', '--import', './app/tracing-preload.ts', MAIN];


/** Starts Sentinel's entry point: by default as the test run built it (test/support/entry-points.ts). */
function startSentinel(
  env: NodeJS.ProcessEnv,
  args: string[] = nodeArgsFor(MAIN),
): { child: ChildProcess; output: () => string; stdout: () => string; stderr: () => string } {
  const child = spawn(process.execPath, args, {
    // Any free ports for the gRPC servers (telemetry, InfraMind), so that starts in a row never wait for one another's.
    // Where the tests have a Kafka broker (KAFKA_BROKERS), each Sentinel publishes to topics of its own: the default
    // ones are shared by every Sentinel started here, each with its own log, whose positions mean nothing to the others.
    env: { ...process.env, LOG_LEVEL: 'info', TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0', KAFKA_TOPIC_PREFIX: `e2e-${randomUUID().slice(0, 8)}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => ((output += chunk.toString()), (stdout += chunk.toString())));
  child.stderr!.on('data', (chunk: Buffer) => ((output += chunk.toString()), (stderr += chunk.toString())));
  return { child, output: () => output, stdout: () => stdout, stderr: () => stderr };
}

/** Resolves once the process has logged that start-up is complete (the first admin is created just before). */
async function listening(sentinel: { child: ChildProcess; output: () => string }, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!sentinel.output().includes('sentinel is listening')) {
    if (sentinel.child.exitCode !== null) throw new Error(`sentinel exited with ${sentinel.child.exitCode}:\n${sentinel.output()}`);
    if (Date.now() > deadline) throw new Error(`sentinel did not finish starting:\n${sentinel.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

async function waitForHttp(url: string, timeoutMs = 60_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fetch(url);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

describe('npm start (the all role on embedded defaults)', function () {
  this.timeout(90_000);
  let dataDir: string;
  let port: number;
  let sentinel: ReturnType<typeof startSentinel>;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-e2e-'));
    port = await freePort();
    sentinel = startSentinel({ PORT: String(port), HOST: '127.0.0.1', SENTINEL_DATA_DIR: dataDir, SENTINEL_ADMIN_PASSWORD: 'e2e-admin-password' });
  });

  after(async () => {
    if (sentinel.child.exitCode === null) sentinel.child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('answers /healthz', async () => {
    const res = await waitForHttp(`http://127.0.0.1:${port}/healthz`);
    // The first admin is created once the port is bound: the tests below log in as it.
    await listening(sentinel);
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ status: 'ok' });
  });

  it('is ready once the store is reachable and migrated', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ status: 'ready' });
  });

  it('exports default and sentinel_ metrics', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).to.equal(200);
    const body = await res.text();
    expect(body).to.include('process_cpu_seconds_total');
    expect(body).to.include('sentinel_event_store_append_duration_seconds');
    expect(body).to.include('sentinel_event_store_appends_total');
    expect(body).to.match(/^sentinel_event_store_visibility_lag_seconds \d/m);
    expect(body).to.match(/^sentinel_event_store_unsettled_events \d/m);
  });

  it('answers unknown routes with problem+json', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/nowhere`);
    expect(res.status).to.equal(404);
    expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(await res.json()).to.include({ status: 404, title: 'Not Found' });
  });

  /** The API as the admin: GET and POST that answer the parsed body. */
  async function asAdmin() {
    const api = `http://127.0.0.1:${port}/api/v1`;
    const login = await fetch(`${api}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'e2e-admin-password' }),
    });
    const { accessToken } = (await login.json()) as { accessToken: string };
    const headers = { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' };
    return {
      get: async (url: string) => (await fetch(`${api}${url}`, { headers })).json() as Promise<Record<string, unknown>>,
      post: async (url: string, body: unknown) => {
        const res = await fetch(`${api}${url}`, { method: 'POST', headers, body: JSON.stringify(body) });
        expect(res.status, JSON.stringify(await res.clone().json())).to.be.oneOf([201, 202]);
        return (await res.json()) as { id: string; position: string };
      },
    };
  }

  it('registers the simulated cluster, and a deployment on it rolls out to Available', async () => {
    const { get, post } = await asAdmin();

    let cluster: { id: string; name: string } | undefined;
    for (const deadline = Date.now() + 30_000; !cluster && Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const { items } = (await get('/clusters')) as { items: { id: string; name: string }[] };
      cluster = items.find((item) => item.name === 'simulated');
    }
    expect(cluster, 'the simulated cluster is registered').to.not.equal(undefined);

    const workload = await post('/workloads', { name: 'hello', namespace: 'default', type: 'inference', image: 'registry.local/hello:1', resources: { cpu: '1', memory: '1Gi' } });
    const deployment = await post('/deployments', { workloadId: workload.id, clusterId: cluster!.id, replicas: 2 });
    let status: unknown;
    for (const deadline = Date.now() + 30_000; status !== 'Available' && Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      status = (await get(`/deployments/${deployment.id}`))['status'];
    }
    expect(status).to.equal('Available');
  });

  it('shows the simulated GPU fleet within a minute, and a GPU deployment raises its utilisation', async () => {
    const { get, post } = await asAdmin();
    const fleet = async () => (await get('/fleet/gpus')) as { total: { gpus: number; allocated: number; utilisationPct: number | null } };

    let total = (await fleet()).total;
    for (const deadline = Date.now() + 60_000; total.gpus < 16 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) total = (await fleet()).total;
    expect(total).to.deep.include({ gpus: 16, allocated: 0, utilisationPct: 0 });
    const { items: nodes } = (await get('/nodes')) as { items: { name: string; status: string }[] };
    expect(nodes.map((node) => [node.name, node.status])).to.have.deep.members([['sim-gpu-1', 'reporting'], ['sim-gpu-2', 'reporting']]);

    const { items: clusters } = (await get('/clusters')) as { items: { id: string; name: string }[] };
    const clusterId = clusters.find((item) => item.name === 'simulated')!.id;
    const workload = await post('/workloads', {
      name: 'llm',
      namespace: 'default',
      type: 'inference',
      image: 'registry.local/llm:1',
      resources: { cpu: '1', memory: '4Gi', gpu: { count: 1, sku: 'nvidia-a100-80gb' } },
    });
    await post('/deployments', { workloadId: workload.id, clusterId, replicas: 3 });
    for (const deadline = Date.now() + 40_000; !(total.allocated === 3 && (total.utilisationPct ?? 0) > 5) && Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      total = (await fleet()).total;
    }
    expect(total.allocated).to.equal(3);
    expect(total.utilisationPct).to.be.above(5);
  });

  it('logs JSON and shuts down cleanly on SIGTERM', async () => {
    const exited = once(sentinel.child, 'exit');
    sentinel.child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).to.equal(0);
    const lines = sentinel
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'));
    const messages = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).to.include.members(['sentinel is listening', 'shutting down', 'stopped']);
  });
});

describe('npm start, first run and restart', function () {
  this.timeout(120_000);

  it('prints a one-time admin password once; it, the data and the signing key survive a restart', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-e2e-'));
    const port = await freePort();
    const env = { PORT: String(port), HOST: '127.0.0.1', SENTINEL_DATA_DIR: dataDir, SENTINEL_ADMIN_PASSWORD: '' };
    const api = `http://127.0.0.1:${port}/api/v1`;
    const stop = async (sentinel: ReturnType<typeof startSentinel>) => {
      const exited = once(sentinel.child, 'exit');
      sentinel.child.kill('SIGTERM');
      expect((await exited)[0], sentinel.output()).to.equal(0);
    };
    const started: ChildProcess[] = [];
    // This one runs exactly what `npm start` runs.
    const start = () => {
      const sentinel = startSentinel(env, NPM_START);
      started.push(sentinel.child);
      return sentinel;
    };
    try {
      const first = start();
      await listening(first);
      const password = /one-time password\n\n\s+(\S+)\n/.exec(first.output())?.[1];
      expect(password, first.output()).to.be.a('string');
      const login = await fetch(`${api}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password }),
      });
      expect(login.status).to.equal(200);
      const { accessToken } = (await login.json()) as { accessToken: string };
      const workload = await fetch(`${api}/workloads`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
        body: JSON.stringify({ name: 'w', namespace: 'ml', type: 'batch', image: 'busybox', resources: { cpu: '1', memory: '1Gi' } }),
      });
      expect(workload.status).to.equal(201);
      const { id } = (await workload.json()) as { id: string };
      await stop(first);

      const second = start();
      await listening(second);
      expect(second.output()).not.to.include('one-time password');
      // The token issued before the restart is still good, and the workload is still there to change.
      const patch = await fetch(`${api}/workloads/${id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
        body: JSON.stringify({ image: 'busybox:1.36' }),
      });
      expect(patch.status).to.equal(202);
      expect(await patch.json()).to.include({ revision: 1 });
      await stop(second);
    } finally {
      // A check that failed leaves its Sentinel running: it goes first, or it writes on while its data directory is
      // removed, and the removal's error (ENOTEMPTY) hides the one that failed.
      for (const child of started) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('npm start, when start-up fails or the data directory is taken', function () {
  this.timeout(120_000);
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-e2e-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('a first start that fails (port in use) uses up no one-time password: the next start prints it', async () => {
    const blocker = createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as { port: number }).port;
    const env = { PORT: String(port), HOST: '127.0.0.1', SENTINEL_DATA_DIR: dataDir, SENTINEL_ADMIN_PASSWORD: '' };
    try {
      const failed = startSentinel(env);
      expect(await exitOf(failed.child)).to.equal(1);
      expect(failed.output()).to.include('EADDRINUSE');
      expect(failed.output()).not.to.include('one-time password');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    const next = startSentinel(env);
    try {
      await listening(next);
      const password = /one-time password\n\n\s+(\S+)\n/.exec(next.output())?.[1];
      expect(password, next.output()).to.be.a('string');
      const login = await fetch(`http://127.0.0.1:${port}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password }),
      });
      expect(login.status).to.equal(200);
    } finally {
      next.child.kill('SIGKILL');
    }
  });

  it('a second npm start on the same data directory refuses, naming the process that holds it', async () => {
    const first = startSentinel({ PORT: String(await freePort()), HOST: '127.0.0.1', SENTINEL_DATA_DIR: dataDir, SENTINEL_ADMIN_PASSWORD: 'e2e-admin-password' });
    try {
      await listening(first);
      const second = startSentinel({ PORT: String(await freePort()), HOST: '127.0.0.1', SENTINEL_DATA_DIR: dataDir, SENTINEL_ADMIN_PASSWORD: 'e2e-admin-password' });
      expect(await exitOf(second.child)).to.equal(1);
      expect(second.output()).to.include(`in use by process ${first.child.pid}`);
      // The first is unharmed.
      expect(first.child.exitCode).to.equal(null);
    } finally {
      const exited = once(first.child, 'exit');
      first.child.kill('SIGTERM');
      expect((await exited)[0]).to.equal(0);
    }
    // Released on a clean stop: the directory can be opened again.
    const again = startSentinel({ PORT: String(await freePort()), HOST: '127.0.0.1', SENTINEL_DATA_DIR: dataDir, SENTINEL_ADMIN_PASSWORD: 'e2e-admin-password' });
    try {
      await listening(again);
    } finally {
      again.child.kill('SIGKILL');
    }
  });
});

describe('npm start with bad configuration', function () {
  this.timeout(30_000);
  let parent: string;
  let dataDir: string;
  beforeEach(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'sentinel-e2e-config-'));
    // Not created here: a refused start must not create it either.
    dataDir = path.join(parent, 'data');
  });
  afterEach(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  /** Starts with `env`; expects exit status 2, `said` on stderr, nothing logged, and no data directory. */
  async function refused(env: NodeJS.ProcessEnv, ...said: string[]): Promise<void> {
    const sentinel = startSentinel({ HOST: '127.0.0.1', PORT: '0', SENTINEL_DATA_DIR: dataDir, SENTINEL_ADMIN_PASSWORD: 'e2e-admin-password', ...env });
    expect(await exitOf(sentinel.child), sentinel.output()).to.equal(2);
    expect(sentinel.stderr()).to.match(/^sentinel: invalid configuration:\n/);
    for (const text of said) expect(sentinel.stderr()).to.include(text);
    expect(sentinel.stdout(), 'nothing was started, so nothing was logged').to.equal('');
    const created = await access(dataDir).then(
      () => true,
      () => false,
    );
    expect(created, 'the data directory was created').to.equal(false);
  }

  it('exits non-zero naming the variable and what it accepts', async () => {
    await refused({ PORT: 'eighty', DATABASE_URL: 'mysql://nope' }, 'PORT: an integer from 0 to 65535 (got "eighty")', 'DATABASE_URL: a PostgreSQL connection URL');
  });

  it('refuses an empty PORT rather than listening on a random port', async () => {
    await refused({ PORT: '' }, 'PORT: an integer from 0 to 65535 (got an empty value; unset PORT for its default)');
  });

  it('refuses a PORT that is not decimal digits', async () => {
    await refused({ PORT: '0x50' }, 'PORT: an integer from 0 to 65535 (got "0x50")');
  });

  it('refuses a HOST that is not an address of this machine', async () => {
    await refused({ HOST: 'not-a-host' }, 'HOST: an address of this machine to listen on', '(got "not-a-host": ');
  });

  it('refuses a JWT secret file that does not exist, before opening the database', async () => {
    await refused({ SENTINEL_JWT_SECRET_FILE: '/nonexistent' }, 'SENTINEL_JWT_SECRET_FILE: a readable file holding a secret of at least 32 characters', '(got "/nonexistent": no such file)');
  });

  it('refuses a prices file that is not JSON and a health file off its schema, both at once', async () => {
    const prices = path.join(parent, 'prices.json');
    const health = path.join(parent, 'health.json');
    await writeFile(prices, 'gpuHourlyUsd: 3');
    await writeFile(health, JSON.stringify({ 'deployment-1': { successRate: 'high' } }));
    await refused(
      { SENTINEL_PRICES_FILE: prices, SENTINEL_HEALTH_FILE: health },
      `SENTINEL_PRICES_FILE: a JSON file of hourly US dollar prices`,
      `(got ${JSON.stringify(prices)}: not JSON: `,
      `SENTINEL_HEALTH_FILE: a JSON file of health by deployment id`,
      `(got ${JSON.stringify(health)}: deployment-1.successRate: `,
    );
  });
});

describe('npm start with DATABASE_URL (PostgreSQL)', function () {
  this.timeout(90_000);

  it('migrates the database, reports ready, and stops on SIGINT', async function () {
    const { TEST_DATABASE_URL, SKIP_POSTGRES_REASON, createScratchDatabase } = await import('../support/postgres.js');
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    const scratch = await createScratchDatabase();
    const port = await freePort();
    const sentinel = startSentinel({ PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: scratch.url });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/healthz`);
      await listening(sentinel);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).to.equal(200);
      const exited = once(sentinel.child, 'exit');
      sentinel.child.kill('SIGINT');
      expect((await exited)[0]).to.equal(0);
    } finally {
      if (sentinel.child.exitCode === null) sentinel.child.kill('SIGKILL');
      await scratch.drop();
    }
  });
});
