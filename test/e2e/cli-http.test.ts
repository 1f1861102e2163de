// `sentinel` over the HTTP API as a user runs it: the real CLI in its own process, configured only by its
// environment, against one real server with the reactors and the simulated cluster.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { runCli, type CliResult } from '../support/cli.js';
import { ADMIN_PASSWORD, startTestApi, type TestApi } from '../support/sentinel-api.js';
import { freePort } from '../support/ports.js';

interface WriteAnswer {
  id: string;
  revision: number;
  position: string;
}

interface StoredCredentials {
  servers: Record<string, { username: string; accessToken: string; refreshToken: string; accessExpiresAt: string }>;
}


function succeeded(result: CliResult): CliResult {
  expect(result.code, `exit code; stderr: ${result.stderr}`).to.equal(0);
  return result;
}

describe('sentinel CLI over the HTTP API', function () {
  this.timeout(180_000);
  let api: TestApi;
  let server: string;
  let scratch: string;
  let credentialsPath: string;
  /** What every CLI run gets: the server's address and a config directory of the test's own. */
  let env: Record<string, string>;
  let deploymentId: string;

  const cli = (args: string[], input?: string, extraEnv: Record<string, string> = {}) => runCli(args, { ...env, ...extraEnv }, { input });
  const credentials = async () => JSON.parse(await readFile(credentialsPath, 'utf8')) as StoredCredentials;

  before(async () => {
    // A rollout that makes no progress fails after 2 s, so that a failing one is quick to watch.
    api = await startTestApi(undefined, { SENTINEL_ROLE: 'api,projector,reactor', SENTINEL_CLUSTER_SIMULATOR: 'on', SENTINEL_PROGRESS_DEADLINE_SECONDS: '2' });
    server = api.url.replace(/\/api\/v1$/, '');
    scratch = await mkdtemp(path.join(tmpdir(), 'sentinel-cli-http-'));
    credentialsPath = path.join(scratch, 'config', 'credentials.json');
    env = { SENTINEL_URL: server, SENTINEL_CONFIG_DIR: path.join(scratch, 'config') };
  });

  after(async () => {
    await api?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('prints its version from package.json', async () => {
    const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
    const result = succeeded(await cli(['--version']));
    expect(result.stdout.trim()).to.equal(version);
  });

  it('refuses bad credentials with the server’s reason and exit 1, and bad usage with exit 2', async () => {
    const [wrong, noUsername, unknownKind] = await Promise.all([
      cli(['login', '--username', 'admin', '--password-stdin'], 'not-the-password\n'),
      cli(['login', '--password-stdin'], `${ADMIN_PASSWORD}\n`),
      cli(['get', 'gadgets'], undefined, { SENTINEL_TOKEN: api.tokens.viewer }),
    ]);
    expect(wrong.code).to.equal(1);
    expect(wrong.stderr).to.match(/^sentinel: Unauthorized \(401\): /);
    expect(wrong.stdout).to.equal('');
    expect(noUsername.code).to.equal(2);
    expect(noUsername.stderr).to.include('--password-stdin needs --username');
    expect(unknownKind.code).to.equal(2);
    expect(unknownKind.stderr).to.include('unknown kind "gadgets": one of clusters, workloads, deployments, plans');
  });

  it('says so when the server cannot be reached', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const [login, get] = await Promise.all([
      cli(['login', '--url', nowhere, '--username', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`),
      cli(['get', 'clusters'], undefined, { SENTINEL_URL: nowhere, SENTINEL_TOKEN: 'any' }),
    ]);
    for (const result of [login, get]) {
      expect(result.code).to.equal(1);
      expect(result.stderr).to.include(`sentinel: cannot reach Sentinel at ${nowhere}: connection refused (ECONNREFUSED)`);
    }
  });

  it('logs in with --password-stdin and keeps the tokens in a file only its owner can read', async () => {
    const result = succeeded(await cli(['login', '--username', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`));
    expect(result.stdout).to.include(`logged in to ${server} as admin (admin)`);
    expect((await stat(credentialsPath)).mode & 0o777).to.equal(0o600);
    const stored = (await credentials()).servers[server];
    expect(stored?.username).to.equal('admin');
    expect(stored?.accessToken).to.be.a('string').and.not.equal('');
  });

  it('lists the simulated cluster as a table and as YAML', async () => {
    const registered = (await api.stream(`cluster-${SIMULATED_CLUSTER_ID}`)).at(-1)!;
    const [table, yaml] = await Promise.all([
      cli(['get', 'clusters', '--after', registered.position]),
      cli(['get', 'clusters', '-o', 'yaml', '--after', registered.position]),
    ]);
    const lines = succeeded(table).stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^ID\s+NAME\s+REGION\s+STATUS\s+CONNECTION\s+GPU SKUS\s+AGE$/);
    expect(lines.find((line) => line.startsWith(SIMULATED_CLUSTER_ID))).to.match(/\ssimulated\s+\S+\s+active\s+(connected|unknown)\s/);
    const items = parse(succeeded(yaml).stdout) as { id: string; name: string }[];
    expect(items.map((item) => item.name)).to.include('simulated');
  });

  it('watches a deployment created through the API until it is Available, and lists it as JSON', async () => {
    const workload = await api.request<WriteAnswer>('post', '/workloads', {
      body: { name: 'cli-hello', namespace: 'cli', type: 'inference', image: 'registry.example/cli/hello:1', resources: { cpu: '100m', memory: '128Mi' } },
    });
    expect(workload.status, JSON.stringify(workload.body)).to.equal(201);
    const created = await api.request<WriteAnswer>('post', '/deployments', { body: { workloadId: workload.body.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 } });
    expect(created.status, JSON.stringify(created.body)).to.equal(202);
    deploymentId = created.body.id;

    const watched = succeeded(await cli(['deployment', 'watch', deploymentId, '--after', created.body.position, '--interval', '0.2']));
    expect(watched.stdout.trimEnd().split('\n').at(-1)).to.match(/\d\d:\d\d:\d\d {2}Available\s+1\/1 ready/);

    const listed = JSON.parse(succeeded(await cli(['get', 'deployments', '-o', 'json', '--filter', `workloadId=${workload.body.id}`])).stdout) as {
      id: string;
      status: string;
      replicas: number;
    }[];
    expect(listed.map(({ id, status, replicas }) => ({ id, status, replicas }))).to.deep.equal([{ id: deploymentId, status: 'Available', replicas: 1 }]);
  });

  it('scales the deployment, watches the rollout, and describes its revisions and history', async () => {
    const scaled = JSON.parse(succeeded(await cli(['scale', deploymentId, '2', '-o', 'json'])).stdout) as WriteAnswer;
    expect(scaled.id).to.equal(deploymentId);
    const watched = succeeded(await cli(['deployment', 'watch', deploymentId, '--after', scaled.position, '--interval', '0.2']));
    expect(watched.stdout.trimEnd().split('\n').at(-1)).to.match(/Available\s+2\/2 ready/);

    const [table, described] = await Promise.all([cli(['get', 'deployments', deploymentId]), cli(['describe', 'deployment', deploymentId])]);
    const row = succeeded(table).stdout.trimEnd().split('\n')[1];
    expect(row).to.match(new RegExp(`^${deploymentId}\\s+cli/cli-hello\\s+simulated\\s+Available\\s+2/2\\s+1\\s`));
    const text = succeeded(described).stdout;
    expect(text).to.match(/^Workload:\s+cli\/cli-hello \(/m);
    expect(text).to.match(/^Status:\s+Available$/m);
    expect(text).to.match(/^Replicas:\s+2 desired, 2 ready$/m);
    expect(text).to.include('Revisions:');
    expect(text).to.match(/^History.*:\n(.*\n)*\s+\S+\s+DeploymentScaled\s/m);
  });

  it('rolls back and restarts with a reason; watch exits 1 when a rollout fails', async () => {
    const deployment = await api.request<{ workloadId: string }>('get', `/deployments/${deploymentId}`);
    const patched = await api.request('patch', `/workloads/${deployment.body.workloadId}`, { body: { image: 'registry.example/cli/hello:2' } });
    expect(patched.status, JSON.stringify(patched.body)).to.equal(202);
    const updated = await api.request<WriteAnswer>('patch', `/deployments/${deploymentId}`, { body: {} });
    expect(updated.status, JSON.stringify(updated.body)).to.equal(202);
    succeeded(await cli(['deployment', 'watch', deploymentId, '--after', updated.body.position, '--interval', '0.2']));

    const rolledBack = JSON.parse(succeeded(await cli(['rollback', deploymentId, '--to-revision', '1', '--reason', 'back to hello:1', '-o', 'json'])).stdout) as WriteAnswer;
    const watched = succeeded(await cli(['deployment', 'watch', deploymentId, '--after', rolledBack.position, '--interval', '0.2']));
    expect(watched.stdout.trimEnd().split('\n').at(-1)).to.match(/Available\s+2\/2 ready, revision 3$/);
    const restarted = succeeded(await cli(['restart', deploymentId, '--reason', 'fresh pods']));
    expect(restarted.stdout).to.match(new RegExp(`^deployment ${deploymentId}: restart recorded \\(revision \\d+\\)\nfollow the rollout: sentinel deployment watch ${deploymentId} --after \\S+\n$`));
    const events = await api.stream(`deployment-${deploymentId}`);
    expect(events.find((event) => event.type === 'DeploymentRollbackRequested')?.data).to.deep.include({ toRevision: 1, reason: 'back to hello:1' });
    expect(events.find((event) => event.type === 'DeploymentRestartRequested')?.data).to.deep.include({ reason: 'fresh pods' });

    api.sentinel.reactors!.simulator!.faults.neverReady(/never-ready/);
    const stuck = await api.request<WriteAnswer>('post', '/workloads', {
      body: { name: 'cli-stuck', namespace: 'cli', type: 'inference', image: 'registry.example/cli/never-ready:1', resources: { cpu: '100m', memory: '128Mi' } },
    });
    const failing = await api.request<WriteAnswer>('post', '/deployments', { body: { workloadId: stuck.body.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 } });
    expect(failing.status, JSON.stringify(failing.body)).to.equal(202);
    const failed = await cli(['deployment', 'watch', failing.body.id, '--after', failing.body.position, '--interval', '0.2']);
    expect(failed.code).to.equal(1);
    expect(failed.stdout.trimEnd().split('\n').at(-1)).to.match(/ {2}Failed\s+0\/1 ready/);
    expect(failed.stderr).to.equal(`sentinel: deployment ${failing.body.id} settled in Failed, not Available\n`);
  });

  it('prints the server’s field errors for a refused scale', async () => {
    const result = await cli(['scale', deploymentId, '5000']);
    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/^sentinel: Bad Request \(400\): the request body is not valid\n {2}replicas: /);
  });

  it('submits a plan from a YAML file and shows its actions; a plan the server refuses names the field', async () => {
    const file = path.join(scratch, 'plan.yaml');
    await writeFile(file, `reason: restart from the CLI test\nttlSeconds: 600\nactions:\n  - kind: restart\n    deploymentId: ${deploymentId}\n`);
    const submitted = JSON.parse(succeeded(await cli(['plan', 'submit', '-f', file, '-o', 'json'])).stdout) as WriteAnswer;
    const [shown, described] = await Promise.all([
      cli(['plan', 'get', submitted.id, '-o', 'json', '--after', submitted.position]),
      cli(['describe', 'plan', submitted.id, '--after', submitted.position]),
    ]);
    const plan = JSON.parse(succeeded(shown).stdout) as { reason: string; actions: { kind: string; target: { id: string } }[] };
    expect(plan.reason).to.equal('restart from the CLI test');
    expect(plan.actions.map((action) => [action.kind, action.target.id])).to.deep.equal([['restart', deploymentId]]);
    expect(succeeded(described).stdout).to.match(new RegExp(`Actions:\\n\\s+#\\s+KIND\\s+TARGET.*\\n\\s+0\\s+restart\\s+deployment ${deploymentId}`));

    const refused = await cli(['plan', 'submit', '-f', '-'], JSON.stringify({ actions: [{ kind: 'restart', deploymentId }] }));
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include('Bad Request (400): the request body is not valid\n  reason: required');
  });

  it('refreshes an expired access token, and asks for a new login once the refresh token is spent too', async () => {
    const before = await credentials();
    const expired = (refreshToken: string): StoredCredentials => ({
      servers: { [server]: { ...before.servers[server]!, refreshToken, accessExpiresAt: new Date(Date.now() - 60_000).toISOString() } },
    });
    await writeFile(credentialsPath, JSON.stringify(expired(before.servers[server]!.refreshToken)));
    // Two commands at once: one refreshes, the other waits for it and uses the new token rather than spend the old one again.
    for (const result of await Promise.all([cli(['get', 'clusters']), cli(['get', 'workloads'])])) succeeded(result);
    const refreshed = (await credentials()).servers[server]!;
    expect(refreshed.accessToken).not.to.equal(before.servers[server]!.accessToken);
    expect(refreshed.refreshToken).not.to.equal(before.servers[server]!.refreshToken);
    expect(Date.parse(refreshed.accessExpiresAt)).to.be.greaterThan(Date.now());

    // The refresh token used above is spent: presenting it again cannot get a new pair.
    await writeFile(credentialsPath, JSON.stringify(expired(before.servers[server]!.refreshToken)));
    const spent = await cli(['get', 'clusters']);
    expect(spent.code).to.equal(1);
    expect(spent.stderr).to.include(`the session of admin with ${server} has expired: run sentinel login --url ${server}`);
  });

  it('uses SENTINEL_TOKEN when it is set, says when it is refused, and logs out', async () => {
    const [withToken, badToken] = await Promise.all([
      cli(['get', 'clusters', '-o', 'json'], undefined, { SENTINEL_TOKEN: api.tokens.viewer }),
      cli(['get', 'clusters'], undefined, { SENTINEL_TOKEN: 'not-a-token' }),
    ]);
    expect((JSON.parse(succeeded(withToken).stdout) as { id: string }[]).map((item) => item.id)).to.include(SIMULATED_CLUSTER_ID);
    expect(badToken.code).to.equal(1);
    expect(badToken.stderr).to.match(/^sentinel: Unauthorized \(401\): .*\nthe token in SENTINEL_TOKEN was refused/);

    succeeded(await cli(['login', '--username', 'admin', '--password-stdin'], ADMIN_PASSWORD));
    expect(succeeded(await cli(['logout'])).stdout).to.include(`logged out of ${server}`);
    const after = await cli(['get', 'clusters']);
    expect(after.code).to.equal(1);
    expect(after.stderr).to.include(`not logged in to ${server}: run sentinel login`);
  });
});
