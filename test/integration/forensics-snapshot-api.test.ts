// Fleet snapshots through the real server: what the query API listed at a moment T is kept; more happens; a
// snapshot asked for at T (POST /forensics/snapshots, 202) becomes ready and lists exactly what was kept, page by
// page; it is removed on request; only admins may ask for, read or remove one; a bad point is a 400 naming it.
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { backends, type TestApi } from '../support/sentinel-api.js';
import { eventually } from '../support/eventually.js';

interface Written {
  id: string;
  position: string;
}

interface Page {
  items: Record<string, unknown>[];
  nextCursor: string | null;
}

/** The read models the query API lists, and the snapshot lists under the same names. */
const LISTS = ['clusters', 'workloads', 'deployments', 'action-plans', 'policies', 'policy-decisions', 'nodes'];

const cluster = (name: string) => ({
  name,
  apiServer: 'https://10.0.0.9:6443',
  credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
  region: 'eu-west-1',
  gpuSkus: ['nvidia-l4'],
});
const workload = (name: string) => ({ name, namespace: 'snapshots', type: 'inference', image: `registry.local/${name}:1`, resources: { cpu: '1', memory: '2Gi' }, labels: { team: 'search' } });

for (const backend of backends) {
  describe(`fleet snapshots through the API on ${backend.name}`, function () {
    this.timeout(120_000);
    let api: TestApi | undefined;
    let at: string;
    const kept: Record<string, unknown> = {};

    async function write(method: string, route: string, body?: unknown): Promise<Written> {
      const reply = await api!.request<Written>(method, route, { body });
      expect(reply.status, `${route}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
      return reply.body;
    }

    async function allPages(route: string): Promise<unknown[]> {
      const items: unknown[] = [];
      for (let cursor: string | undefined; ; ) {
        const reply = await api!.request<Page>('get', `${route}?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        expect(reply.status, `${route}: ${JSON.stringify(reply.body)}`).to.equal(200);
        items.push(...reply.body.items);
        if (reply.body.nextCursor === null) return items;
        cursor = reply.body.nextCursor;
      }
    }

    async function snapshot(point: string): Promise<string> {
      const created = await api!.request<{ id: string; status: string }>('post', '/forensics/snapshots', { body: { at: point } });
      expect(created.status, JSON.stringify(created.body)).to.equal(202);
      expect(created.headers.get('location')).to.equal(`/api/v1/forensics/snapshots/${created.body.id}`);
      const id = created.body.id;
      const ready = await eventually(
        'the snapshot is ready',
        () => api!.request<{ status: string }>('get', `/forensics/snapshots/${id}`),
        (reply) => reply.body.status !== 'projecting',
        30_000,
      );
      expect(ready.body.status, JSON.stringify(ready.body)).to.equal('ready');
      return id;
    }

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        return this.skip();
      }
      api = await backend.start();
      const east = await write('post', '/clusters', cluster('east'));
      const ranker = await write('post', '/workloads', workload('ranker'));
      const deployment = await write('post', '/deployments', { workloadId: ranker.id, clusterId: east.id, replicas: 2 });
      const scaled = await write('post', `/deployments/${deployment.id}/scale`, { replicas: 3 });
      // Read your write: every list has caught up with the last one before it is kept.
      await api.request('get', `/deployments/${deployment.id}?after=${scaled.position}`);
      for (const list of LISTS) {
        await api.request('get', `/${list}?after=${scaled.position}&limit=1`);
        kept[list] = await allPages(`/${list}`);
      }
      kept['fleet-cost'] = (await api.request('get', `/fleet/cost?after=${scaled.position}`)).body;
      await sleep(5);
      at = new Date().toISOString();
      await sleep(5);
      await write('post', `/deployments/${deployment.id}/scale`, { replicas: 1 });
      await write('post', `/clusters/${east.id}/cordon`, { reason: 'after T' });
      const west = await write('post', '/clusters', cluster('west'));
      const last = await write('post', '/deployments', { workloadId: (await write('post', '/workloads', workload('embedder'))).id, clusterId: west.id, replicas: 1 });
      await api.request('get', `/deployments/${last.id}?after=${last.position}`);
    });
    after(async () => api?.stop());

    it('lists at T exactly what the query API listed at T, while the live lists have moved on', async () => {
      const id = await snapshot(at);
      for (const list of LISTS) {
        expect(await allPages(`/forensics/snapshots/${id}/${list}`), list).to.deep.equal(kept[list]);
      }
      expect((await api!.request('get', `/forensics/snapshots/${id}/fleet-cost`)).body).to.deep.equal(kept['fleet-cost']);
      for (const list of ['clusters', 'workloads', 'deployments']) expect(await allPages(`/${list}`), list).to.not.deep.equal(kept[list]);
      const filtered = await api!.request<Page>('get', `/forensics/snapshots/${id}/deployments?status=${encodeURIComponent('no-such-status')}`);
      expect(filtered.status, 'a filter the live list refuses is refused here too').to.equal(400);
    });

    it('is removed on request, then answers 404', async () => {
      const id = await snapshot(at);
      const removed = await api!.request('delete', `/forensics/snapshots/${id}`);
      expect(removed.status).to.equal(200);
      expect(removed.body).to.deep.equal({ id, removed: true });
      expect((await api!.request('get', `/forensics/snapshots/${id}`)).status).to.equal(404);
      expect((await api!.request('get', `/forensics/snapshots/${id}/clusters`)).status).to.equal(404);
      expect((await api!.request('delete', `/forensics/snapshots/${id}`)).status).to.equal(404);
    });

    it('is for admins only', async () => {
      const id = await snapshot(at);
      for (const role of ['viewer', 'operator', 'system'] as const) {
        expect((await api!.request('post', '/forensics/snapshots', { as: role, body: { at } })).status, role).to.equal(403);
        expect((await api!.request('get', `/forensics/snapshots/${id}/deployments`, { as: role })).status, role).to.equal(403);
        expect((await api!.request('delete', `/forensics/snapshots/${id}`, { as: role })).status, role).to.equal(403);
      }
      expect((await api!.request('get', `/forensics/snapshots/${id}`, { as: 'anonymous' })).status).to.equal(401);
    });

    it('refuses a point that is neither a time with a zone nor a position, naming the field', async () => {
      for (const bad of ['yesterday', '2026-03-01T12:00:00', '12', '']) {
        const reply = await api!.request('post', '/forensics/snapshots', { body: { at: bad } });
        expect(reply.status, bad).to.equal(400);
        expect((reply.body['errors'] as { path: string }[]).map((e) => e.path), bad).to.include('at');
      }
      expect((await api!.request('post', '/forensics/snapshots', { body: { at, extra: 1 } })).status).to.equal(400);
    });
  });
}
