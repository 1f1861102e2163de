// A canary's pause across a kill -9 of Sentinel itself: a child process runs Sentinel (embedded PGlite, every role)
// against a cluster simulator that lives in the test, and is killed while the rollout waits out a pause. A second
// process on the same data directory resumes the pause on the due time recorded before the kill (the time left, not
// a new pause) and completes the rollout.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AppsV1Api, KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite } from '../../adapters/postgres/database.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { eventually } from '../support/eventually.js';
import { nodeArgsFor } from '../support/entry-points.js';
import { FAST } from '../support/simulator-clients.js';
import { freePort } from '../support/ports.js';

const PASSWORD = 'rollout-kill-admin-password';
/** Long enough for a kill and a second start of Sentinel (tsx, PGlite, migrations) on a busy machine to fit inside. */
const PAUSE_SECONDS = 30;
const STABLE_IMAGE = 'registry.local/llm:1.0';
const NEXT_IMAGE = 'registry.local/llm:1.1';


interface Sentinel {
  url: string;
  process: ChildProcess;
  exited: Promise<void>;
}

/** `npm start` in a child process: every role, on the data directory given, with no simulator or agents of its own. */
async function startSentinel(dataDir: string): Promise<Sentinel> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'KAFKA_BROKERS', 'PROMETHEUS_URL', 'KURRENTDB_URL', 'SENTINEL_ROLE']) delete env[name];
  const child = spawn(process.execPath, nodeArgsFor('app/main.ts'), {
    env: {
      ...env,
      HOST: '127.0.0.1',
      PORT: String(port),
      TELEMETRY_GRPC_PORT: '0',
      INFRAMIND_GRPC_PORT: '0',
      SENTINEL_DATA_DIR: dataDir,
      SENTINEL_ADMIN_PASSWORD: PASSWORD,
      SENTINEL_JWT_SECRET: 'a-rollout-kill-test-secret-of-more-than-32-chars',
      SENTINEL_CLUSTER_SIMULATOR: 'off',
      SENTINEL_SIMULATED_AGENTS: 'off',
      // The test logs in until the first admin is projected: those refusals must not lock the account.
      SENTINEL_LOGIN_MAX_FAILURES: '1000',
      SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: '100000',
      LOG_LEVEL: process.env['TEST_LOG'] ?? 'silent',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  await eventually('Sentinel to answer /healthz', () => fetch(`${url}/healthz`).then((r) => r.status), (status) => status === 200 || child.exitCode !== null, 60_000);
  if (child.exitCode !== null) throw new Error(`Sentinel exited with ${child.exitCode} while starting`);
  return { url, process: child, exited };
}

/** A signed-in client of one Sentinel process. */
async function client(sentinel: Sentinel) {
  const api = `${sentinel.url}/api/v1`;
  const call = async <T>(method: string, route: string, body?: unknown, token?: string): Promise<{ status: number; body: T }> => {
    const response = await fetch(api + route, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  // The first admin is a user once the projector has read its creation: until then a login is refused.
  const login = await eventually(
    'the admin able to log in',
    () => call<{ accessToken: string }>('POST', '/auth/login', { username: 'admin', password: PASSWORD }),
    (reply) => reply.status === 200,
    30_000,
  );
  const token = login.body.accessToken;
  return {
    request: <T = Record<string, unknown>>(method: string, route: string, body?: unknown) => call<T>(method, route, body, token),
    async created(route: string, body: unknown): Promise<string> {
      const reply = await call<{ id: string }>('POST', route, body, token);
      if (reply.status !== 201 && reply.status !== 202) throw new Error(`POST ${route} answered ${reply.status}: ${JSON.stringify(reply.body)}`);
      return reply.body.id;
    },
  };
}

describe('a canary rollout across a kill -9 of Sentinel', function () {
  this.timeout(240_000);
  let sim: ClusterSimulator;
  let dataDir: string;
  let running: Sentinel | undefined;

  before(async () => {
    sim = await startClusterSimulator(FAST);
    dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-rollout-kill-'));
  });
  after(async () => {
    if (running && running.process.exitCode === null) {
      running.process.kill('SIGKILL');
      await running.exited;
    }
    await sim?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('resumes the pause on the due time recorded before the kill, and completes', async () => {
    running = await startSentinel(dataDir);
    let api = await client(running);
    const clusterId = await api.created('/clusters', {
      name: 'simulated',
      apiServer: sim.url,
      credentials: { source: 'kubeconfig-base64', data: Buffer.from(sim.kubeconfig()).toString('base64') },
      region: 'local',
      labels: {},
      gpuSkus: [],
    });
    const workloadId = await api.created('/workloads', { name: 'llm', namespace: 'rollout-kill', type: 'inference', image: STABLE_IMAGE, resources: { cpu: '100m', memory: '128Mi' } });
    const deploymentId = await api.created('/deployments', {
      workloadId,
      clusterId,
      replicas: 2,
      strategy: { type: 'canary', steps: [{ weight: 50 }, { pause: { seconds: PAUSE_SECONDS } }, { weight: 100 }] },
    });
    const deployment = () => api.request<{ status: string; currentRevision: number }>('GET', `/deployments/${deploymentId}`).then((r) => r.body);
    await eventually('the first revision Available', deployment, (d) => d.status === 'Available', 60_000);

    expect((await api.request('PATCH', `/workloads/${workloadId}`, { image: NEXT_IMAGE })).status).to.equal(202);
    expect((await api.request('PATCH', `/deployments/${deploymentId}`, {})).status).to.equal(202);
    const rollout = () => api.request<{ status: string; waitingFor: string | null }>('GET', `/deployments/${deploymentId}/rollout`).then((r) => r.body);
    const paused = await eventually('the canary paused at weight 50', rollout, (r) => r.status === 'Paused', 60_000);
    const until = /^the pause to end at (.+)$/.exec(paused.waitingFor ?? '')?.[1];
    expect(until, paused.waitingFor ?? 'not waiting').to.be.a('string');

    running.process.kill('SIGKILL');
    await running.exited;
    const killedAt = Date.now();
    expect(killedAt, 'killed while the pause still ran').to.be.below(Date.parse(until!));

    running = await startSentinel(dataDir);
    // Up again with time left in the pause: what follows shows it waited out that time, not a pause of its own.
    expect(Date.now(), 'the second process answering before the pause was due').to.be.below(Date.parse(until!));
    api = await client(running);
    await eventually('the rollout Completed after the restart', rollout, (r) => r.status === 'Completed', 120_000);
    await eventually('Available on revision 2', deployment, (d) => d.status === 'Available' && d.currentRevision === 2, 60_000);
    const apps = (() => {
      const kc = new KubeConfig();
      kc.loadFromString(sim.kubeconfig());
      return kc.makeApiClient(AppsV1Api);
    })();
    const objects = async () => {
      const list = await apps.listNamespacedDeployment({ namespace: 'rollout-kill' });
      return list.items.map((d) => [d.metadata!.name, d.spec!.replicas, d.spec!.template.spec!.containers[0]!.image]);
    };
    // The canary object goes last, after the deployment's own object runs the new spec.
    await eventually('the canary object gone', objects, (list) => list.length === 1, 30_000);
    expect(await objects()).to.deep.equal([['llm', 2, NEXT_IMAGE]]);

    // The log, read once the second process has let go of its data directory.
    running.process.kill('SIGTERM');
    await running.exited;
    const db = await openPglite(path.join(dataDir, 'pglite'));
    let timer: RecordedEvent[];
    let steps: RecordedEvent[];
    try {
      const store = await PostgresEventStore.open(db);
      timer = await store.readStream(`timer-rollout-${deploymentId}.2-pause-1`);
      steps = await store.readStream(`rollout-${deploymentId}.2`);
    } finally {
      await db.close();
    }
    // Scheduled once, before the kill, for the end of the pause; fired once, by the second process, at that time.
    expect(timer.map((e) => e.type)).to.deep.equal(['TimerScheduled', 'TimerFired']);
    expect(Date.parse(String(timer[0]!.data['dueAt']))).to.equal(Date.parse(until!));
    expect(timer[0]!.recordedAt.getTime()).to.be.below(killedAt);
    expect(Date.parse(String(timer[1]!.data['firedAt']))).to.be.at.least(Date.parse(until!));
    const resumed = steps.filter((e) => e.type === 'RolloutResumed');
    expect(resumed).to.have.length(1);
    expect(resumed[0]!.metadata.causationId).to.equal(timer[1]!.id);
    expect(steps.map((e) => e.type).filter((t) => t.startsWith('Rollout'))).to.deep.equal([
      'RolloutStarted',
      'RolloutWeightSet',
      'RolloutPaused',
      'RolloutResumed',
      'RolloutWeightSet',
      'RolloutCompleted',
    ]);
  });
});
