// A real Sentinel process for HTTP tests: the composition root in-process, on PGlite or a scratch PostgreSQL
// database, with a signed-in principal for every role.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import pg from 'pg';
import { pino } from 'pino';
import type { ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { loadConfig } from '../../app/config.js';
import { startSentinel, type RunningSentinel } from '../../app/sentinel.js';
import type { Role } from '../../domain/access.js';
import { comparePositions, type EventStore, type Position, type RecordedEvent } from '../../domain/event-store.js';
import { settled } from './events.js';
import { eventually } from './eventually.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL } from './postgres.js';

export const ADMIN_PASSWORD = 'admin-password-for-tests';
export const JWT_SECRET = 'a-test-signing-secret-of-more-than-32-chars';

export type Caller = Role | 'anonymous';

export interface Reply<Body = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: Body;
}

export interface RequestOptions {
  as?: Caller;
  /** Sent as JSON unless `raw` is given. */
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

export interface TestApi {
  url: string;
  eventStore: EventStore;
  /** Bearer tokens by role; `system` is a service account's. */
  tokens: Record<Role, string>;
  principalIds: Record<Role, string>;
  request<Body = Record<string, unknown>>(method: string, path: string, options?: RequestOptions): Promise<Reply<Body>>;
  /** Every event of a stream, or [] when it does not exist. */
  stream(name: string): Promise<RecordedEvent[]>;
  /** The log's last position, once it holds still, to check that a rejected request appended nothing. */
  head(): Promise<string | undefined>;
  /** The events after a position, once the log holds still. */
  eventsSince(after: string | undefined): Promise<RecordedEvent[]>;
  /** The running process, for tests that reach past the API (its reactors and simulated cluster). */
  sentinel: RunningSentinel;
  stop(): Promise<void>;
}

export interface Backend {
  name: string;
  skipReason?: string;
  start(extraEnv?: Record<string, string>): Promise<TestApi>;
}

export const backends: Backend[] = [
  { name: 'PGlite', start: (env) => startTestApi(undefined, env) },
  {
    name: 'PostgreSQL',
    skipReason: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON,
    start: async (env) => {
      const scratch = await createScratchDatabase();
      const api = await startTestApi(scratch.url, env);
      return { ...api, stop: async () => (await api.stop(), await scratch.drop()) };
    },
  },
];

export async function startTestApi(databaseUrl?: string, extraEnv: Record<string, string> = {}): Promise<TestApi> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-api-'));
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0',
    SENTINEL_DATA_DIR: dataDir,
    // The API and the read side; tests of the reactors start those themselves, against a cluster simulator.
    SENTINEL_ROLE: 'api,projector',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    SENTINEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
    SENTINEL_JWT_SECRET: JWT_SECRET,
    LOG_LEVEL: 'silent',
    // Tests log in (and fail to) many times from one address; tests of the throttle pass their own limits.
    SENTINEL_LOGIN_MAX_FAILURES: '1000',
    SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: '100000',
    ...extraEnv,
  });
  let sentinel: RunningSentinel;
  try {
    sentinel = await startSentinel(config, pino({ level: process.env['TEST_LOG'] ?? 'silent' }));
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const url = `http://127.0.0.1:${sentinel.port}/api/v1`;
  let lastSeen: string | undefined;
  // The newest position a command this client sent was answered with.
  let lastWritten: Position | undefined;
  // A reader sees an event only once every older transaction on the server has ended: first every write this
  // client was answered for settles, and every transaction committed before the read (on a PostgreSQL server, those
  // of other test files running beside this one hold the horizon back too); then, for what reactors append in reply,
  // the head is read until it holds still.
  const horizon = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 1 }) : undefined;
  /**
   * Waits until every transaction that committed before the call is visible: a transaction id taken now is above
   * each of theirs, and once it lies below the oldest transaction still running, all of them have ended.
   */
  const pastHorizon = async (): Promise<void> => {
    if (!horizon) return;
    const { rows } = await horizon.query<{ now: string }>('select pg_current_xact_id()::text as now');
    const passed = async () => (await horizon.query<{ passed: boolean }>('select $1::xid8 < pg_snapshot_xmin(pg_current_snapshot()) as passed', [rows[0]!.now])).rows[0]!.passed;
    await eventually('the transactions committed before now to become visible', passed, (done) => done, 10_000);
  };
  const settledHead = async (): Promise<string | undefined> => {
    if (lastWritten !== undefined) await settled(sentinel.eventStore, lastWritten);
    await pastHorizon();
    for (let previous = await readHead(), attempts = 0; ; attempts += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      const current = await readHead();
      if (current === previous || attempts > 40) return current;
      previous = current;
    }
  };
  const readHead = async () => {
    for (;;) {
      const page = await sentinel.eventStore.readAll({ after: lastSeen, limit: 1000 });
      if (page.events.length === 0) return lastSeen;
      lastSeen = page.checkpoint;
    }
  };
  const tokens = {} as Record<Role, string>;
  const principalIds = {} as Record<Role, string>;

  const request = async <Body>(method: string, route: string, options: RequestOptions = {}): Promise<Reply<Body>> => {
    const caller = options.as ?? 'admin';
    const headers: Record<string, string> = { ...options.headers };
    if (caller !== 'anonymous' && tokens[caller]) headers['authorization'] ??= `Bearer ${tokens[caller]}`;
    let body: string | undefined = options.raw;
    if (body === undefined && options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(url + route, { method: method.toUpperCase(), headers, body });
    const text = await response.text();
    const parsed = (text ? JSON.parse(text) : undefined) as Body;
    const position = (parsed as { position?: unknown } | undefined)?.position;
    if (response.ok && typeof position === 'string' && (lastWritten === undefined || comparePositions(position, lastWritten) > 0)) lastWritten = position;
    return { status: response.status, headers: response.headers, body: parsed };
  };

  const login = async (username: string, password: string) => {
    const reply = await request<{ accessToken: string }>('post', '/auth/login', { as: 'anonymous', body: { username, password } });
    if (reply.status !== 200) throw new Error(`login as ${username} failed: ${JSON.stringify(reply.body)}`);
    return reply.body.accessToken;
  };

  tokens.admin = await login('admin', ADMIN_PASSWORD);
  principalIds.admin = (await request<{ id: string }>('get', '/auth/me')).body.id;
  for (const role of ['viewer', 'operator'] as const) {
    const created = await request<{ id: string }>('post', '/users', { body: { username: role, password: `${role}-password-for-tests`, role } });
    principalIds[role] = created.body.id;
    tokens[role] = await login(role, `${role}-password-for-tests`);
  }
  const account = await request<{ id: string; token: string }>('post', '/service-accounts', { body: { name: 'inframind' } });
  principalIds.system = account.body.id;
  tokens.system = account.body.token;

  return {
    url,
    eventStore: sentinel.eventStore,
    tokens,
    principalIds,
    request,
    stream: (name) => sentinel.eventStore.readStream(name),
    head: settledHead,
    async eventsSince(after) {
      await settledHead();
      return (await sentinel.eventStore.readAll({ after, limit: 10_000 })).events;
    },
    sentinel,
    async stop() {
      await sentinel.stop();
      await horizon?.end();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface SimulatedSentinel {
  api: TestApi;
  /** The cluster simulator the reactor role started, registered as cluster `SIMULATED_CLUSTER_ID`. */
  sim: ClusterSimulator;
  /** Credentials for the simulator, for tests that look at the cluster themselves. */
  kubeConfig: KubeConfig;
}

/**
 * Sentinel in-process with its reactors and the built-in cluster simulator, for tests that follow a change from the
 * API to the cluster. Rollouts that do not become ready fail after 2 s (`SENTINEL_PROGRESS_DEADLINE_SECONDS`).
 */
export async function startWithSimulator(extraEnv: Record<string, string> = {}): Promise<SimulatedSentinel> {
  const api = await startTestApi(undefined, {
    SENTINEL_ROLE: 'api,projector,reactor',
    SENTINEL_CLUSTER_SIMULATOR: 'on',
    SENTINEL_PROGRESS_DEADLINE_SECONDS: '2',
    ...extraEnv,
  });
  const sim = api.sentinel.reactors?.simulator;
  if (!sim) {
    await api.stop();
    throw new Error('the reactor role did not start the cluster simulator');
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sim.kubeconfig());
  return { api, sim, kubeConfig };
}
