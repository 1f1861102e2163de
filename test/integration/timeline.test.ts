// The causal timeline through the real server (API, read side and reactors on the simulated cluster): a deployment's
// request as a tree by causation across streams, with the decision's policy results and trace ids; `explain` prints
// it; `audit export` signs the chain and `audit verify` checks it offline, catching an edited row.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { traceIdOf, type Timeline, type TimelineNode } from '../../projections/timeline.js';
import { runCli } from '../support/cli.js';
import { eventually } from '../support/eventually.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

const backends = [
  { name: 'PGlite', skipReason: undefined },
  { name: 'PostgreSQL', skipReason: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON },
];

function* walk(nodes: readonly TimelineNode[]): Generator<TimelineNode> {
  for (const node of nodes) {
    yield node;
    yield* walk(node.children);
  }
}

for (const backend of backends) {
  describe(`causal timeline, explain and the signed audit export on ${backend.name}`, function () {
    this.timeout(120_000);
    let api: TestApi | undefined;
    let dataDir: string;
    let scratch: ScratchDatabase | undefined;
    let deploymentId: string;
    let correlationId: string;
    let correlated: RecordedEvent[];

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        return this.skip();
      }
      dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-timeline-'));
      if (backend.name === 'PostgreSQL') scratch = await createScratchDatabase();
      api = await startTestApi(scratch?.url, {
        SENTINEL_DATA_DIR: dataDir,
        SENTINEL_ROLE: 'api,projector,reactor',
        SENTINEL_CLUSTER_SIMULATOR: 'on',
      });
      const workload = await api.request<{ id: string }>('post', '/workloads', {
        body: { name: 'explained', namespace: 'timeline', type: 'inference', image: 'registry.example/timeline:1', resources: { cpu: '100m', memory: '128Mi' } },
      });
      expect(workload.status, JSON.stringify(workload.body)).to.equal(201);
      const created = await api.request<{ id: string }>('post', '/deployments', { body: { workloadId: workload.body.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 } });
      expect(created.status, JSON.stringify(created.body)).to.be.oneOf([201, 202]);
      deploymentId = created.body.id;
      correlationId = created.headers.get('x-correlation-id')!;
      await eventually(
        'the deployment to become Available',
        () => api!.request<{ status: string }>('get', `/deployments/${deploymentId}`),
        (reply) => reply.body.status === 'Available',
        30_000,
      );
      correlated = (await api.eventsSince(undefined)).filter((event) => event.metadata.correlationId === correlationId);
    });
    after(async () => {
      await api?.stop();
      await scratch?.drop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it('answers every event of the request, once, as a tree by causation id across streams', async () => {
      const reply = await api!.request<Timeline>('get', `/timeline?correlationId=${correlationId}`, { as: 'viewer' });
      expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
      const timeline = reply.body;
      const nodes = [...walk(timeline.roots.flatMap((root) => root.events))];
      expect(timeline).to.include({ correlationId, events: correlated.length, truncated: false });
      expect(nodes.map((n) => n.id).sort()).to.deep.equal(correlated.map((e) => e.id).sort());

      // The request is the root: its decision and the change it allowed hang under it, what the reactors did under those.
      const [root] = timeline.roots;
      expect(root!.events.map((n) => n.type)).to.include.members(['PolicyEvaluated']);
      for (const node of nodes) for (const child of node.children) expect(child.causationId).to.equal(node.id);
      const byReactors = nodes.filter((n) => n.source?.startsWith('reactor:'));
      expect(byReactors.length, 'events the reactors recorded').to.be.greaterThan(0);
      expect(byReactors.every((n) => !root!.events.includes(n))).to.equal(true);

      const decision = nodes.find((n) => n.type === 'PolicyEvaluated')!;
      expect(decision.decision!.verdict).to.equal('allow');
      expect(decision.decision!.evaluations[0]!.target).to.deep.equal({ kind: 'deployment', id: deploymentId });
      expect(decision.decision!.evaluations[0]!.results).to.be.an('array');
      for (const node of nodes) {
        const event = correlated.find((e) => e.id === node.id)!;
        expect(node.traceId, node.type).to.equal(traceIdOf(event.metadata.traceparent));
        expect(node).to.include({ stream: event.stream, position: event.position, revision: event.revision });
      }
    });

    it('refuses a missing correlation id with a 400 naming it, and answers 404 for one nothing carries', async () => {
      const missing = await api!.request('get', '/timeline', { as: 'viewer' });
      expect(missing.status).to.equal(400);
      expect((missing.body['errors'] as { path: string }[]).map((e) => e.path)).to.include('correlationId');
      const control = await api!.request('get', '/timeline?correlationId=a%00b', { as: 'viewer' });
      expect(control.status, JSON.stringify(control.body)).to.equal(400);
      const unknown = await api!.request('get', '/timeline?correlationId=nobody-asked-for-this', { as: 'viewer' });
      expect(unknown.status).to.equal(404);
    });

    it('explain prints the deployment’s timelines, with the decision’s results; a bad kind is a usage error', async () => {
      const env = { SENTINEL_URL: api!.url, SENTINEL_TOKEN: api!.tokens.viewer };
      await eventually('the audit trail to hold the deployment', () => api!.request<{ items: unknown[] }>('get', `/audit?stream=deployment-${deploymentId}`), (r) => r.body.items.length > 0, 10_000);
      const printed = await runCli(['explain', 'deployment', deploymentId], env);
      expect(printed.code, printed.stderr).to.equal(0);
      expect(printed.stdout).to.contain(`correlation ${correlationId}`);
      expect(printed.stdout).to.match(/PolicyEvaluated deployment-/);
      expect(printed.stdout).to.match(/CreateDeployment: allow \(policy set/);
      const bad = await runCli(['explain', 'cluster', deploymentId], env);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.match(/explain takes plan or deployment/);
    });

    it('audit export signs the chain; audit verify accepts it offline, and names an edited row', async () => {
      const head = await api!.head();
      await eventually('the audit trail to reach the head', () => api!.request<{ items: { position: string }[] }>('get', '/audit?order=desc&limit=1'), (r) => r.body.items[0]?.position === head, 10_000);
      await api!.stop();
      api = undefined;
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const keyFile = path.join(dataDir, 'audit-signing.pem');
      const publicFile = path.join(dataDir, 'audit-signing.pub.pem');
      await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      await writeFile(publicFile, publicKey.export({ type: 'spki', format: 'pem' }));
      const out = path.join(dataDir, 'audit.jsonl');
      const env = { SENTINEL_DATA_DIR: dataDir, PORT: '0', TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0', ...(scratch ? { DATABASE_URL: scratch.url } : {}) };

      const unsigned = await runCli(['audit', 'export', '--out', out], env);
      expect(unsigned.code, unsigned.stderr).to.equal(2);
      expect(unsigned.stderr).to.contain('AUDIT_SIGNING_KEY_FILE is not set');

      const exported = await runCli(['audit', 'export', '--out', out], { ...env, AUDIT_SIGNING_KEY_FILE: keyFile });
      expect(exported.code, exported.stderr).to.equal(0);
      const lines = (await readFile(out, 'utf8')).trim().split('\n');
      expect(lines.length).to.be.greaterThan(correlated.length);
      const verified = await runCli(['audit', 'verify', '--file', out, '--public-key', publicFile], {});
      expect(verified.code, verified.stderr).to.equal(0);
      expect(verified.stdout).to.match(new RegExp(`${lines.length - 2} rows verified`));

      const edited = [...lines];
      const row = JSON.parse(edited[3]!) as { summary: string; position: string };
      edited[3] = JSON.stringify({ ...row, summary: `${row.summary} (edited)` });
      const tampered = path.join(dataDir, 'tampered.jsonl');
      await writeFile(tampered, `${edited.join('\n')}\n`);
      const caught = await runCli(['audit', 'verify', '--file', tampered, '--public-key', publicFile], {});
      expect(caught.code).to.equal(1);
      expect(caught.stderr).to.contain(`line 4 (position ${row.position}`);
      expect(caught.stderr).to.contain('does not match its hash (the row was edited)');
    });
  });
}
