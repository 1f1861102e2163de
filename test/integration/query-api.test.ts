// The query API through the real server: a write's position read back at once, lists, history, decisions,
// the audit trail and its verification, and projection status.
import { randomUUID } from 'node:crypto';
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
      // The workload's name is claimed in the same request, just before the workload is registered.
      expect(entries.body.items.map((e) => e.type)).to.deep.equal(['ClaimTaken', 'WorkloadRegistered']);
      expect(entries.body.items.map((e) => e.actor.id)).to.deep.equal([api.principalIds.admin, api.principalIds.admin]);

      const verified = await api.request<{ ok: boolean; rows: number }>('get', '/audit/verify', { as: 'viewer' });
      expect(verified.body.ok).to.equal(true);
      expect(verified.body.rows).to.be.greaterThan(5);
    });

    describe('order, actor names and time filters', () => {
      type Listed = { items: Record<string, unknown>[]; nextCursor: string | null };
      const LISTS = ['/clusters', '/workloads', '/deployments', '/action-plans', '/policies', '/policy-decisions', '/audit'];
      const keyOf = (item: Record<string, unknown>) => String(item['id'] ?? item['eventId']);
      let last = '';

      before(async function () {
        if (backend.skipReason) this.skip();
        const clusterIds: string[] = [];
        for (const name of ['order-a', 'order-b']) clusterIds.push((await write('post', '/clusters', { ...cluster, name })).id);
        const workloadIds: string[] = [];
        for (const name of ['order-a', 'order-b']) workloadIds.push((await write('post', '/workloads', { ...workload, name, namespace: 'ordering' })).id);
        const deploymentIds: string[] = [];
        for (const [i, workloadId] of workloadIds.entries()) {
          deploymentIds.push((await write('post', '/deployments', { workloadId, clusterId: clusterIds[i], replicas: 1 })).id);
        }
        for (const deploymentId of deploymentIds) {
          const plan = await api.request<Written>('post', '/action-plans', {
            as: 'operator',
            body: { reason: 'ordering test', actions: [{ kind: 'restart', deploymentId }], ttlSeconds: 600 },
          });
          expect(plan.status, JSON.stringify(plan.body)).to.be.oneOf([202, 422]);
        }
        for (const name of ['order-a', 'order-b']) {
          await write('post', '/policies', { name, type: 'quota', mode: 'audit', selector: { namespaces: ['nowhere'] }, parameters: { limits: { replicas: 10 } } });
        }
        last = (await write('post', '/workloads', { ...workload, name: 'order-last', namespace: 'ordering' })).position;
      });

      const all = async (path: string, query: string): Promise<string[]> => {
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const reply: { status: number; body: Listed } = await api.request<Listed>('get', `${path}?${query}&limit=2&after=${last}${cursor ? `&cursor=${cursor}` : ''}`);
          expect(reply.status, `${path}?${query}: ${JSON.stringify(reply.body)}`).to.equal(200);
          seen.push(...reply.body.items.map(keyOf));
          cursor = reply.body.nextCursor;
        } while (cursor);
        return seen;
      };

      it('pages every list newest first with ?order=desc, and oldest first by default or with ?order=asc', async () => {
        for (const path of LISTS) {
          const ascending = await all(path, 'order=asc');
          expect(ascending.length, path).to.be.greaterThan(1);
          expect(await all(path, 'order=desc'), `${path} newest first`).to.deep.equal([...ascending].reverse());
          expect(await all(path, ''), `${path} by default`).to.deep.equal(ascending);
        }
      });

      it('refuses a cursor read in the other order with a 400 naming cursor', async () => {
        for (const path of ['/workloads', '/audit']) {
          const first = await api.request<Listed>('get', `${path}?order=desc&limit=1&after=${last}`);
          expect(first.body.nextCursor, path).to.be.a('string');
          const mixed = await api.request<{ errors: { path: string; message: string }[] }>('get', `${path}?order=asc&cursor=${first.body.nextCursor}`);
          expect(mixed.status, path).to.equal(400);
          expect(mixed.body.errors[0]!.path, path).to.equal('cursor');
          expect(mixed.body.errors[0]!.message, path).to.include('order=asc');
        }
      });

      it('filters the audit trail and policy decisions by a username as well as by an id', async () => {
        const operatorId = api.principalIds.operator;
        for (const path of ['/audit', '/policy-decisions']) {
          const byName = await api.request<Listed>('get', `${path}?actor=operator&limit=500&after=${last}`);
          const byId = await api.request<Listed>('get', `${path}?actor=${operatorId}&limit=500&after=${last}`);
          expect(byName.status, path).to.equal(200);
          expect(byName.body.items.length, path).to.be.greaterThan(0);
          expect(byName.body.items.map(keyOf), path).to.deep.equal(byId.body.items.map(keyOf));
        }
        const account = await api.request<Listed>('get', `/audit?actor=inframind&limit=500&after=${last}`);
        expect(account.body.items.map((item) => (item['actor'] as { id: string }).id)).to.satisfy((ids: string[]) => ids.every((id) => id === api.principalIds.system));
        const nobody = await api.request<Listed>('get', `/audit?actor=no-such-user&after=${last}`);
        expect(nobody.status).to.equal(200);
        expect(nobody.body.items).to.deep.equal([]);
      });

      it('filters deployments and action plans by creation time with from and to', async () => {
        for (const path of ['/deployments', '/action-plans']) {
          const mine = (await api.request<Listed>('get', `${path}?order=desc&limit=2&after=${last}`)).body.items;
          const [newest, older] = [mine[0]!, mine[1]!];
          const since = await api.request<Listed>('get', `${path}?from=${String(older['createdAt'])}&limit=500&after=${last}`);
          expect(since.status, path).to.equal(200);
          expect(since.body.items.map(keyOf), path).to.include.members([keyOf(newest), keyOf(older)]);
          const before = await api.request<Listed>('get', `${path}?to=${String(older['createdAt'])}&limit=500&after=${last}`);
          expect(before.body.items.map(keyOf), path).not.to.include.members([keyOf(older)]);
          expect(before.body.items.map(keyOf), path).not.to.include.members([keyOf(newest)]);
          const between = await api.request<Listed>('get', `${path}?from=${String(older['createdAt'])}&to=${String(newest['createdAt'])}&limit=500&after=${last}`);
          expect(between.body.items.map(keyOf), path).to.include(keyOf(older)).and.not.to.include(keyOf(newest));
        }
        const created = await api.request<Listed>('get', `/deployments?from=${new Date(Date.now() + 3_600_000).toISOString()}&after=${last}`);
        expect(created.body.items).to.deep.equal([]);
      });
    });

    it('refuses an unknown query parameter or a malformed value with a 400 problem naming it', async () => {
      const cases: [string, string][] = [
        ['/audit?bogus=1', 'bogus'],
        ['/audit?order=sideways', 'order'],
        ['/workloads?order=newest', 'order'],
        ['/clusters?bogus=1', 'bogus'],
        ['/deployments?clusterId=notauuid', 'clusterId'],
        ['/deployments?workloadId=1', 'workloadId'],
        ['/deployments?from=yesterday', 'from'],
        ['/action-plans?to=2026-13-01T00:00:00Z', 'to'],
        ['/action-plans?status=Sleeping', 'status'],
        ['/policies?enabled=yes', 'enabled'],
        ['/policy-decisions?from=-1', 'from'],
        ['/policy-decisions?target=x', 'target'],
        ['/policy-decisions?verdict=maybe', 'verdict'],
        ['/workloads?limit=ten', 'limit'],
        ['/workloads?limit=501', 'limit'],
        [`/workloads/${randomUUID()}?bogus=1`, 'bogus'],
        ['/fleet/cost?bogus=1', 'bogus'],
        ['/projections?bogus=1', 'bogus'],
        ['/audit/verify?bogus=1', 'bogus'],
        ['/auth/me?bogus=1', 'bogus'],
        ['/users?bogus=1', 'bogus'],
      ];
      for (const [query, name] of cases) {
        const reply = await api.request<{ type: string; detail: string; errors: { path: string; message: string }[] }>('get', query);
        expect(reply.status, query).to.equal(400);
        expect(reply.headers.get('content-type'), query).to.match(/^application\/problem\+json/);
        expect(reply.body.type, query).to.equal('urn:sentinel:problem:validation-failed');
        expect(reply.body.errors.map((e) => e.path), query).to.include(name);
        expect(reply.body.detail, query).to.include(name);
        expect(JSON.stringify(reply.body), `${query} names no SQL column`).not.to.match(/recorded_at|created_at|cluster_id/);
      }
      const unknown = await api.request<{ errors: { message: string }[] }>('get', '/audit?bogus=1');
      expect(unknown.body.errors[0]!.message).to.include('correlationId');
    });

    it('answers an unknown route with a Sentinel problem type', async () => {
      for (const [method, path] of [
        ['get', '/nothing-here'],
        ['post', '/workloads/x/y/z'],
      ] as const) {
        const reply = await api.request<{ type: string; status: number }>(method, path);
        expect(reply.status, path).to.equal(404);
        expect(reply.body.type, path).to.equal('urn:sentinel:problem:not-found');
      }
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
