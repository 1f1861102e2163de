// The query API through the real server: a write's position read back at once, lists, history, decisions,
// the audit trail and its verification, and projection status.
import { expect } from 'chai';
import { backends, type TestApi } from '../support/sentinel-api.js';

const cluster = {
  name: 'gpu-west',
  apiServer: 'https://10.0.0.2:6443',
  credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
  region: 'us-west-2',
  gpuSkus: ['nvidia-l4'],
};
const workload = {
  name: 'whisper',
  namespace: 'speech',
  type: 'inference',
  image: 'registry.local/whisper:3',
  resources: { cpu: '2', memory: '8Gi', gpu: { count: 1, sku: 'nvidia-l4' } },
  labels: { team: 'speech' },
};

interface Written {
  id: string;
  revision: number;
  position: string;
}

for (const backend of backends) {
  describe(`query API on ${backend.name}`, function () {
    this.timeout(60_000);
    let api: TestApi;

    before(async function () {
      if (backend.skipReason) this.skip();
      api = await backend.start();
    });
    after(async () => api?.stop());

    const write = async (method: string, path: string, body?: unknown): Promise<Written> => {
      const reply = await api.request<Written>(method, path, { body });
      expect(reply.status, JSON.stringify(reply.body)).to.be.oneOf([201, 202]);
      return reply.body;
    };

    it('reads a write back at once with ?after=, through list, get and history', async () => {
      const clusterId = (await write('post', '/clusters', cluster)).id;
      const workloadId = (await write('post', '/workloads', workload)).id;
      const created = await write('post', '/deployments', { workloadId, clusterId, replicas: 2 });
      const scaled = await write('post', `/deployments/${created.id}/scale`, { replicas: 3 });

      const deployment = await api.request('get', `/deployments/${created.id}?after=${scaled.position}`, { as: 'viewer' });
      expect(deployment.status).to.equal(200);
      expect(deployment.body).to.deep.include({ id: created.id, status: 'Pending', replicas: 3, clusterId, workloadId });

      const listed = await api.request<{ items: { id: string }[]; nextCursor: string | null }>('get', `/deployments?clusterId=${clusterId}&after=${scaled.position}`);
      expect(listed.body.items.map((item) => item.id)).to.deep.equal([created.id]);

      const clusterView = await api.request('get', `/clusters/${clusterId}?after=${scaled.position}`, { as: 'system' });
      expect(clusterView.body).to.deep.include({ name: 'gpu-west', status: 'active' });
      expect(JSON.stringify(clusterView.body)).not.to.include('secretRef');

      const history = await api.request<{ revisions: unknown[]; timeline: { type: string }[] }>('get', `/deployments/${created.id}/history?after=${scaled.position}`);
      expect(history.body.timeline.map((entry) => entry.type)).to.include.members(['DeploymentCreated', 'DeploymentScaled']);

      const decisions = await api.request<{ items: { verdict: string; command: string }[] }>(
        'get',
        `/policy-decisions?target=${created.id}&after=${scaled.position}`,
      );
      expect(decisions.body.items.map((d) => d.command)).to.deep.equal(['CreateDeployment', 'ScaleDeployment']);
    });

    it('pages lists with a cursor and refuses a bad query with 400 naming it', async () => {
      let last: Written | undefined;
      for (let i = 0; i < 5; i += 1) last = await write('post', '/workloads', { ...workload, name: `paged-${i}`, namespace: 'paging' });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const query: string = `/workloads?namespace=paging&limit=2&after=${last!.position}${cursor ? `&cursor=${cursor}` : ''}`;
        const page = await api.request<{ items: { name: string }[]; nextCursor: string | null }>('get', query);
        expect(page.status).to.equal(200);
        seen.push(...page.body.items.map((item) => item.name));
        cursor = page.body.nextCursor;
      } while (cursor);
      expect(seen).to.deep.equal(['paged-0', 'paged-1', 'paged-2', 'paged-3', 'paged-4']);

      for (const query of ['/workloads?limit=0', '/workloads?colour=blue', '/workloads?after=yesterday', '/audit?from=noon']) {
        const reply = await api.request('get', query);
        expect(reply.status, query).to.equal(400);
      }
    });

    it('keeps an audit trail that verifies, and finds a request’s events by correlation id', async () => {
      const written = await api.request<Written>('post', '/workloads', {
        body: { ...workload, name: 'audited' },
        headers: { 'x-correlation-id': `audit-${backend.name}` },
      });
      const entries = await api.request<{ items: { type: string; actor: { id: string } }[] }>(
        'get',
        `/audit?correlationId=audit-${backend.name}&after=${written.body.position}`,
      );
      expect(entries.body.items.map((e) => e.type)).to.deep.equal(['WorkloadRegistered']);
      expect(entries.body.items[0]!.actor.id).to.equal(api.principalIds.admin);

      const verified = await api.request<{ ok: boolean; rows: number }>('get', '/audit/verify', { as: 'viewer' });
      expect(verified.body.ok).to.equal(true);
      expect(verified.body.rows).to.be.greaterThan(5);
    });

    it('shows each projection with its position and lag', async () => {
      const written = await write('post', '/workloads', { ...workload, name: 'status' });
      await api.request('get', `/workloads/${written.id}?after=${written.position}`);
      const status = await api.request<{ items: { name: string; lagEvents: number; active: boolean; position: string | null }[] }>('get', '/projections');
      expect(status.body.items.map((p) => p.name)).to.include.members(['audit', 'clusters', 'deployments', 'policy-decisions', 'workloads']);
      const workloads = status.body.items.find((p) => p.name === 'workloads')!;
      expect(workloads.active).to.equal(true);
      expect(workloads.position! >= written.position).to.equal(true);
    });
  });
}
