// Cluster credentials are data, not code, and cluster replies are summarised, not stored: the attacks of the security
// review replayed through the real HTTP API, with the reactors connected to the built-in cluster simulator.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { servingCertificate } from '../../adapters/kubernetes/simulator/tls.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';
import { eventually as waitFor } from '../support/eventually.js';

const RUN = randomBytes(3).toString('hex');
const PATIENCE_MS = 15_000;
/** How long a reactor that was not let go would take to show itself (a watch reconnects within a second). */
const QUIET_MS = 1_500;
const PAGE = '<html><body>INTERNAL-ADMIN-PAGE token=s3cr3t-value</body></html>';

const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean) => waitFor(what, probe, done, PATIENCE_MS);

interface Problem {
  status: number;
  detail: string;
  errors?: { path: string; message: string }[];
}

interface DeploymentView {
  status: string;
  lastCause: string | null;
}

/** How many times the plugin script has run (one line per run), 0 before the first. */
async function runs(log: string): Promise<number> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).length;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

describe('cluster credentials and cluster replies, through the HTTP API', function () {
  this.timeout(90_000);
  let root: string;
  let kubeconfigs: string;
  let plugin: string;
  let api: TestApi;
  let sim: ClusterSimulator;
  let names = 0;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'sentinel-credentials-')));
    kubeconfigs = join(root, 'kubeconfigs');
    await mkdir(kubeconfigs);
    await mkdir(join(root, 'outside'));
    // The allowed plugin: logs each run with its arguments, and prints an already expired credential, so that
    // every request to the cluster runs it again and the log counts them.
    plugin = join(root, 'bin', 'sim-token');
    await mkdir(join(root, 'bin'));
    await writeFile(
      plugin,
      '#!/bin/sh\nprintf \'%s|\' "$@" >> "$RUN_LOG"\necho >> "$RUN_LOG"\n' +
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"2000-01-01T00:00:00Z"}}\' "$SIM_TOKEN"\n',
    );
    await chmod(plugin, 0o755);
    api = await startTestApi(undefined, {
      SENTINEL_ROLE: 'api,projector,reactor',
      SENTINEL_CLUSTER_SIMULATOR: 'on',
      SENTINEL_KUBECONFIG_DIR: kubeconfigs,
      SENTINEL_KUBECONFIG_EXEC_ALLOW: plugin,
      SENTINEL_PROGRESS_DEADLINE_SECONDS: '5',
    });
    const simulator = api.sentinel.reactors?.simulator;
    if (!simulator) throw new Error('the reactor role did not start the cluster simulator');
    sim = simulator;
  });
  afterEach(async () => {
    sim?.faults.clear();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  after(async () => {
    await api?.stop();
    await rm(root, { recursive: true, force: true });
  });

  // ---- helpers ------------------------------------------------------------------------------------------

  /** A kubeconfig (JSON, which is YAML) for a server with the given CA, and one user. */
  function kubeconfig(user: Record<string, unknown>, server = sim.url, caPem = sim.caPem, cluster: Record<string, unknown> = {}): string {
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'target', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64'), ...cluster } }],
      users: [{ name: 'sentinel', user }],
      contexts: [{ name: 'target', context: { cluster: 'target', user: 'sentinel' } }],
      'current-context': 'target',
    });
  }

  const inline = (text: string) => ({ source: 'kubeconfig-base64', data: Buffer.from(text).toString('base64') });

  /** The allowed plugin for the simulator, logging its runs to `log`. */
  const pluginUser = (log: string, args: string[] = []) => ({
    exec: {
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      command: plugin,
      args,
      env: [
        { name: 'RUN_LOG', value: log },
        { name: 'SIM_TOKEN', value: sim.token },
      ],
    },
  });

  function clusterBody(credentials: unknown, apiServer = sim.url) {
    names += 1;
    return { name: `cred-${RUN}-${names}`, apiServer, credentials, region: 'local', gpuSkus: [] };
  }

  async function register(credentials: unknown, apiServer = sim.url): Promise<string> {
    const reply = await api.request<{ id: string }>('post', '/clusters', { body: clusterBody(credentials, apiServer) });
    expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
    return reply.body.id;
  }

  /** Registers the request and expects a 422 naming `path`, with nothing appended; answers the messages for `path`. */
  async function refused(method: 'post' | 'patch', route: string, body: unknown, path: string): Promise<string[]> {
    const head = await api.head();
    const reply = await api.request<Problem>(method, route, { body });
    expect(reply.status, JSON.stringify(reply.body)).to.equal(422);
    expect(reply.headers.get('content-type')).to.match(/^application\/problem\+json/);
    const messages = (reply.body.errors ?? []).filter((error) => error.path === path).map((error) => error.message);
    expect(messages.length, JSON.stringify(reply.body)).to.be.above(0);
    // Reactors go on reporting on the clusters earlier tests registered (whether each can be reached); the request itself appends nothing.
    const appended = (await api.eventsSince(head)).filter((event) => !event.metadata.source?.startsWith('reactor:'));
    expect(appended.map((event) => event.type), 'a refused request appended events').to.deep.equal([]);
    return messages;
  }

  const isFollowed = (clusterId: string) => api.sentinel.reactors!.runtime.isActive(`cluster-${clusterId}`);

  /** Registers a cluster reached through the plugin and waits until its reactor follows it (the plugin has run). */
  async function connected(log: string, args: string[] = []): Promise<string> {
    const clusterId = await register(inline(kubeconfig(pluginUser(log, args))));
    await eventually(`cluster ${clusterId} followed through its plugin`, async () => ({ followed: isFollowed(clusterId), runs: await runs(log) }), (seen) => seen.followed && seen.runs > 0);
    return clusterId;
  }

  /** A workload and a deployment of it on the cluster; answers the deployment's id. */
  async function deploy(clusterId: string, slug: string): Promise<string> {
    const workload = await api.request<{ id: string }>('post', '/workloads', {
      body: { name: `${slug}-${RUN}`, namespace: `cred-${RUN}-${slug}`, type: 'inference', image: 'registry.example/cred/server:1', resources: { cpu: '100m', memory: '128Mi' } },
    });
    expect(workload.status, JSON.stringify(workload.body)).to.equal(201);
    const deployment = await api.request<{ id: string }>('post', '/deployments', { body: { workloadId: workload.body.id, clusterId, replicas: 1 } });
    expect(deployment.status, JSON.stringify(deployment.body)).to.be.oneOf([201, 202]);
    return deployment.body.id;
  }

  const deployment = async (id: string) => (await api.request<DeploymentView>('get', `/deployments/${id}`, { as: 'viewer' })).body;

  // ---- finding 1: credentials are data, not code -----------------------------------------------------------

  describe('exec and auth-provider users', () => {
    it('refuses the reproduction (an exec kubeconfig running /bin/sh) with 422 naming credentials.data, and the command never runs', async () => {
      const marker = join(root, 'pwned');
      const credential = '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"x"}}';
      const attack = inline(kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: '/bin/sh', args: ['-c', `id > ${marker}; echo '${credential}'`] } }));
      const [message] = await refused('post', '/clusters', clusterBody(attack), 'credentials.data');
      expect(message).to.match(/^users\[0\]\.user\.exec: command \/bin\/sh( \(\S+\))? is not in SENTINEL_KUBECONFIG_EXEC_ALLOW$/);
      // Nor through a change of an existing cluster's credentials.
      const clusterId = await register(inline(kubeconfig({ token: sim.token })));
      await refused('patch', `/clusters/${clusterId}`, { credentials: attack }, 'credentials.data');
      await sleep(QUIET_MS);
      expect(await exists(marker), 'the command of the refused kubeconfig ran').to.equal(false);
    });

    it('refuses auth-provider users outright', async () => {
      const [message] = await refused('post', '/clusters', clusterBody(inline(kubeconfig({ 'auth-provider': { name: 'gcp', config: {} } }))), 'credentials.data');
      expect(message).to.match(/^users\[0\]\.user\.auth-provider: auth-provider plugins \(gcp, azure, oidc\) are not supported/);
    });

    it('runs an allowed plugin without a shell, and its token reaches the cluster', async () => {
      const log = join(root, 'allowed.log');
      const marker = join(root, 'shell-ran');
      const args = [`$(touch ${marker})`, `; touch ${marker}`];
      const clusterId = await connected(log, args);
      const deploymentId = await deploy(clusterId, 'allowed');
      await eventually(`deployment ${deploymentId} Available through the plugin's token`, () => deployment(deploymentId), (view) => view.status === 'Available');
      const lines = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
      expect(new Set(lines)).to.deep.equal(new Set([`${args.join('|')}|`]));
      expect(await exists(marker), 'a shell ran the arguments').to.equal(false);
    });
  });

  describe('kubeconfig files', () => {
    it('refuses paths outside SENTINEL_KUBECONFIG_DIR, with "..", relative, or through a link out of it, naming credentials.path', async () => {
      const outside = join(root, 'outside', 'config');
      await writeFile(outside, kubeconfig({ token: 'token-in-a-file-outside' }));
      await symlink(outside, join(kubeconfigs, 'link-out'));
      const paths = {
        [outside]: `${outside} is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})`,
        '/etc/shadow': `/etc/shadow is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})`,
        [`${kubeconfigs}/../outside/config`]: `${kubeconfigs}/../outside/config must not contain ".."`,
        'kubeconfigs/config': 'kubeconfigs/config is not an absolute path',
        [join(kubeconfigs, 'link-out')]: `${join(kubeconfigs, 'link-out')} is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})`,
      };
      for (const [path, expected] of Object.entries(paths)) {
        expect(await refused('post', '/clusters', clusterBody({ source: 'kubeconfig-file', path }), 'credentials.path')).to.deep.equal([expected]);
      }
    });

    it('checks what a file in the directory says: an exec user there is refused as credentials.path, and none of the file is quoted', async () => {
      const path = join(kubeconfigs, 'exec');
      await writeFile(path, kubeconfig({ token: 'token-in-the-file', exec: { command: '/bin/sh', args: ['-c', 'id'] } }));
      const reply = await api.request<Problem>('post', '/clusters', { body: clusterBody({ source: 'kubeconfig-file', path }) });
      expect(reply.status).to.equal(422);
      expect(reply.body.errors?.map((error) => error.path)).to.deep.equal(['credentials.path']);
      expect(JSON.stringify(reply.body)).not.to.include('token-in-the-file');
    });

    it('accepts a file in the directory, and its cluster is followed', async () => {
      const path = join(kubeconfigs, 'good');
      await writeFile(path, kubeconfig({ token: sim.token }));
      const clusterId = await register({ source: 'kubeconfig-file', path });
      await eventually(`cluster ${clusterId} followed`, async () => isFollowed(clusterId), Boolean);
    });

    it('follows the built-in simulator, whose kubeconfig is https with its own CA and needs no allowance', async () => {
      await eventually('the simulated cluster followed', async () => isFollowed(SIMULATED_CLUSTER_ID), Boolean);
    });
  });

  describe('plain http and unverified TLS', () => {
    it('refuses an http:// apiServer, an http:// kubeconfig server and insecure-skip-tls-verify unless SENTINEL_ALLOW_INSECURE_CLUSTERS is on', async () => {
      const plain = 'http://10.0.0.1:8080';
      const insecure = inline(kubeconfig({ token: 'x' }, plain, sim.caPem, { 'insecure-skip-tls-verify': true }));
      expect(await refused('post', '/clusters', clusterBody(inline(kubeconfig({ token: 'x' })), plain), 'apiServer')).to.deep.equal([
        'a plain http:// server is refused: use https, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true',
      ]);
      expect(await refused('post', '/clusters', clusterBody(insecure), 'credentials.data')).to.deep.equal([
        'clusters[0].cluster.server: a plain http:// server is refused: use https, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true',
        "clusters[0].cluster.insecure-skip-tls-verify: refused: give the cluster's CA, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true",
      ]);

      const allowing = await startTestApi(undefined, { SENTINEL_ALLOW_INSECURE_CLUSTERS: 'true' });
      try {
        const reply = await allowing.request('post', '/clusters', { body: clusterBody(insecure, plain) });
        expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
      } finally {
        await allowing.stop();
      }
    });
  });

  describe('letting go of a cluster', () => {
    it('stops the reactor, the watches and the plugin of a deregistered cluster', async () => {
      const log = join(root, 'deregistered.log');
      const clusterId = await connected(log);
      expect((await api.request('delete', `/clusters/${clusterId}`, { body: { reason: 'decommissioned' } })).status).to.equal(202);
      await eventually(`cluster ${clusterId} no longer followed`, async () => isFollowed(clusterId), (followed) => !followed);
      const before = await runs(log);
      // A watch that was still open would reconnect now, and run the plugin to do it.
      sim.faults.dropWatches();
      await sleep(QUIET_MS);
      expect(await runs(log), 'the plugin ran after the cluster was deregistered').to.equal(before);
    });

    it('connects again with the new credentials when they change, and lets go of the old ones', async () => {
      const oldLog = join(root, 'old.log');
      const newLog = join(root, 'new.log');
      const clusterId = await connected(oldLog);
      const patched = await api.request('patch', `/clusters/${clusterId}`, { body: { credentials: inline(kubeconfig(pluginUser(newLog))) } });
      expect(patched.status, JSON.stringify(patched.body)).to.equal(202);
      await eventually('the new credentials in use', () => runs(newLog), (count) => count > 0);
      const before = { old: await runs(oldLog), new: await runs(newLog) };
      sim.faults.dropWatches();
      await eventually('the watches back on the new credentials', () => runs(newLog), (count) => count > before.new);
      await sleep(QUIET_MS);
      expect(await runs(oldLog), 'the old credentials were used after the change').to.equal(before.old);
      expect(isFollowed(clusterId)).to.equal(true);
    });
  });

  describe('a cluster Sentinel cannot reach', () => {
    interface ClusterView {
      connection: { state: string; since: string | null; cause: string | null };
    }
    const clusterView = async (id: string) => (await api.request<ClusterView>('get', `/clusters/${id}`, { as: 'viewer' })).body;

    it('shows it unreachable with the cause, its deployments say what they wait for, and new credentials take effect without a restart', async () => {
      const clusterId = await register(inline(kubeconfig({ token: 'not-the-token' })));
      const unreachable = await eventually('the cluster unreachable', () => clusterView(clusterId), (view) => view.connection.state === 'unreachable');
      expect(unreachable.connection.cause).to.match(/401|Unauthorized/);
      expect(Number.isNaN(Date.parse(unreachable.connection.since!)), 'since is a time').to.equal(false);
      const deploymentId = await deploy(clusterId, 'unreachable');
      const waiting = await eventually('the deployment waiting', () => deployment(deploymentId), (view) => typeof (view as { waitingFor?: string }).waitingFor === 'string');
      expect((waiting as { waitingFor?: string }).waitingFor).to.match(/^cluster cred-.* is unreachable since .*: .*(401|Unauthorized)/);

      // However long it stays so, the log records it once.
      const recorded = async () => (await api.stream(`cluster-${clusterId}`)).filter((event) => /^Cluster(Connected|Unreachable)$/.test(event.type));
      await sleep(QUIET_MS);
      expect((await recorded()).map((event) => event.type)).to.deep.equal(['ClusterUnreachable']);

      const patched = await api.request('patch', `/clusters/${clusterId}`, { body: { credentials: inline(kubeconfig({ token: sim.token })) } });
      expect(patched.status, JSON.stringify(patched.body)).to.equal(202);
      await eventually('the cluster connected', () => clusterView(clusterId), (view) => view.connection.state === 'connected');
      const available = await eventually(`deployment ${deploymentId} Available`, () => deployment(deploymentId), (view) => view.status === 'Available');
      expect(available).to.not.have.property('waitingFor');
      expect((await recorded()).map((event) => event.type)).to.deep.equal(['ClusterUnreachable', 'ClusterConnected']);
    });
  });

  // ---- finding 2: cluster replies are summarised, not stored ------------------------------------------------

  describe('what the cluster answered', () => {
    /** An https server in front of the simulator that answers every write to a Deployment with an HTML page. */
    async function htmlProxy(): Promise<{ url: string; caPem: string }> {
      const certificate = await servingCertificate();
      const server: Server = createServer({ key: certificate.keyPem, cert: certificate.certPem }, (req, res) => {
        if (req.method === 'PATCH' && /\/deployments\//.test(req.url ?? '')) {
          res.writeHead(404, { 'content-type': 'text/html' });
          res.end(PAGE);
          return;
        }
        const upstream = request(new URL(req.url ?? '/', sim.url), { method: req.method, headers: req.headers, ca: sim.caPem }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        upstream.on('error', () => res.destroy());
        req.pipe(upstream);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.push(async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      });
      return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caPem: certificate.certPem };
    }

    it('records an HTML 404 by its status, type and size: its text reaches neither the event nor the API', async () => {
      const proxy = await htmlProxy();
      const clusterId = await register(inline(kubeconfig({ token: sim.token }, proxy.url, proxy.caPem)), proxy.url);
      await eventually(`cluster ${clusterId} followed`, async () => isFollowed(clusterId), Boolean);
      const deploymentId = await deploy(clusterId, 'html');
      const view = await eventually(`deployment ${deploymentId} Failed`, () => deployment(deploymentId), (seen) => seen.status === 'Failed');
      expect(view.lastCause).to.match(new RegExp(`^the cluster refused revision 1: apply Deployment \\S+: HTTP 404 \\(text/html, ${PAGE.length} bytes\\)$`));
      const events = await api.stream(`deployment-${deploymentId}`);
      const failed = events.find((event) => event.type === 'DeploymentRolloutFailed');
      expect(failed?.data['cause']).to.equal(view.lastCause);
      expect(JSON.stringify(events)).not.to.match(/INTERNAL-ADMIN-PAGE|s3cr3t/);
      expect(JSON.stringify(await api.request('get', `/deployments/${deploymentId}`, { as: 'viewer' }))).not.to.match(/INTERNAL-ADMIN-PAGE|s3cr3t/);
    });

    it("records a Kubernetes Status by the Status's own message", async () => {
      const clusterId = await register(inline(kubeconfig({ token: sim.token })));
      await eventually(`cluster ${clusterId} followed`, async () => isFollowed(clusterId), Boolean);
      sim.faults.failNext(1, 422, { method: 'PATCH', path: /\/deployments\// });
      const deploymentId = await deploy(clusterId, 'status');
      const view = await eventually(`deployment ${deploymentId} Failed`, () => deployment(deploymentId), (seen) => seen.status === 'Failed');
      expect(view.lastCause).to.match(/^the cluster refused revision 1: apply Deployment \S+: \w+, HTTP 422: injected fault: PATCH \/apis\/apps\/v1\/namespaces\/\S+ answers 422$/);
    });
  });
});
