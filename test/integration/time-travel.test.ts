// Time travel through the real server: during a recorded run, what the read model answered after each step is kept,
// and `?asOf=` at that step's time and at its position must answer the same (in the AsOf shape: the folded state),
// from a snapshot where one lies at or below the point; a bad asOf is a 400 naming it, a time before the entity a 404.
import { expect } from 'chai';
import { backends, type TestApi } from '../support/sentinel-api.js';

interface Written {
  id: string;
  revision: number;
  position: string;
}

interface AsOfAnswer {
  id: string;
  stream: string;
  asOf: { revision: number; position: string; recordedAt: string; eventsFolded: number; fromSnapshot: number | null };
  state: Record<string, unknown> & { status: string };
}

type Kind = 'clusters' | 'workloads' | 'deployments' | 'action-plans';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, read field by field
type Json = Record<string, any>;

/** What the read model shows and the folded state holds alike, per kind: the comparison at each step. */
const FROM_READ_MODEL: Record<Kind, (item: Json) => unknown> = {
  clusters: (c) => ({ status: c.status, name: c.name, region: c.region, labels: c.labels, gpuSkus: c.gpuSkus, cordonReason: c.cordonReason ?? null }),
  workloads: (w) => ({ status: w.status, specRevision: w.specRevision, spec: w.spec }),
  deployments: (d) => ({ status: d.status, replicas: d.replicas, paused: d.paused, currentRevision: d.currentRevision, strategy: d.strategy }),
  'action-plans': (p) => ({ status: p.status, reason: p.reason, actions: (p.actions as { status: string }[]).map((a) => a.status) }),
};
const FROM_STATE: Record<Kind, (state: Json) => unknown> = {
  clusters: (s) => ({
    status: s.status,
    name: s.spec.name,
    region: s.spec.region,
    labels: s.spec.labels,
    gpuSkus: s.spec.gpuSkus,
    cordonReason: s.cordonReason ?? null,
  }),
  workloads: (s) => ({ status: s.status, specRevision: s.specRevision, spec: s.spec }),
  deployments: (s) => ({ status: s.status, replicas: s.replicas, paused: s.paused, currentRevision: s.currentRevision, strategy: s.strategy }),
  'action-plans': (s) => ({ status: s.status, reason: s.reason, actions: (s.actions as { status: string }[]).map((a) => a.status) }),
};

interface Seen {
  kind: Kind;
  id: string;
  /** The position the step's write answered with, and a time after it and before the next step's first event. */
  position: string;
  at: string;
  answer: Record<string, unknown>;
}

const cluster = {
  name: 'time-travel',
  apiServer: 'https://10.0.0.9:6443',
  credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
  region: 'eu-west-1',
  gpuSkus: ['nvidia-l4'],
};
const workload = {
  name: 'ranker',
  namespace: 'time-travel',
  type: 'inference',
  image: 'registry.local/ranker:1',
  resources: { cpu: '1', memory: '2Gi' },
  labels: { team: 'search' },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const backend of backends) {
  describe(`time travel (?asOf=) on ${backend.name}`, function () {
    this.timeout(120_000);
    let api: TestApi | undefined;
    const seen: Seen[] = [];
    let beforeAll: string;
    const ids = { cluster: '', workload: '', deployment: '', plan: '' };

    /** A write, then the read model's answer for the entity once it has caught up, kept with the point it held at. */
    async function step(method: string, route: string, body: unknown, kind: Kind, id?: string): Promise<string> {
      const reply = await api!.request<Written>(method, route, { body });
      expect(reply.status, `${route}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
      const entity = id ?? reply.body.id;
      const read = await api!.request(`get`, `/${kind}/${entity}?after=${reply.body.position}`);
      expect(read.status, JSON.stringify(read.body)).to.equal(200);
      // Every event of this step is recorded before `at`, every event of the next after it.
      await sleep(3);
      const at = new Date().toISOString();
      await sleep(3);
      seen.push({ kind, id: entity, position: reply.body.position, at, answer: read.body });
      return entity;
    }

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        return this.skip();
      }
      // A snapshot every two events: later points fold from one, earlier ones (below it) from the first event.
      api = await backend.start({ SENTINEL_SNAPSHOT_EVERY: '2' });
      beforeAll = new Date().toISOString();
      await sleep(3);
      ids.cluster = await step('post', '/clusters', cluster, 'clusters');
      ids.workload = await step('post', '/workloads', workload, 'workloads');
      ids.deployment = await step('post', '/deployments', { workloadId: ids.workload, clusterId: ids.cluster, replicas: 2 }, 'deployments');
      await step('post', `/deployments/${ids.deployment}/scale`, { replicas: 3 }, 'deployments', ids.deployment);
      await step('patch', `/workloads/${ids.workload}`, { image: 'registry.local/ranker:2' }, 'workloads', ids.workload);
      await step('post', `/clusters/${ids.cluster}/cordon`, { reason: 'maintenance window' }, 'clusters', ids.cluster);
      await step('post', `/deployments/${ids.deployment}/pause`, {}, 'deployments', ids.deployment);
      ids.plan = await step('post', '/action-plans', { reason: 'time travel', actions: [{ kind: 'restart', deploymentId: ids.deployment }], ttlSeconds: 600 }, 'action-plans');
      await step('post', `/action-plans/${ids.plan}/cancel`, {}, 'action-plans', ids.plan);
      await step('post', `/deployments/${ids.deployment}/scale`, { replicas: 1 }, 'deployments', ids.deployment);
      await step('post', `/clusters/${ids.cluster}/uncordon`, undefined, 'clusters', ids.cluster);
      await step('patch', `/workloads/${ids.workload}`, { image: 'registry.local/ranker:3' }, 'workloads', ids.workload);
    });
    after(async () => api?.stop());

    async function asOf(kind: Kind, id: string, point: string) {
      return api!.request<AsOfAnswer>('get', `/${kind}/${id}?asOf=${encodeURIComponent(point)}`);
    }

    it('answers, at each step’s time and at its position, what the read model answered then', async () => {
      let fromSnapshot = 0;
      let fromStart = 0;
      for (const [i, point] of seen.entries()) {
        for (const at of [point.at, point.position]) {
          const reply = await asOf(point.kind, point.id, at);
          const said = `step ${i} (${point.kind}) as of ${at}: ${JSON.stringify(reply.body)}`;
          expect(reply.status, said).to.equal(200);
          expect(reply.body.id, said).to.equal(point.id);
          expect(FROM_STATE[point.kind](reply.body.state), said).to.deep.equal(FROM_READ_MODEL[point.kind](point.answer));
          expect(reply.body.asOf.revision, said).to.equal((point.answer as { revision: number }).revision);
          if (reply.body.asOf.fromSnapshot === null) fromStart += 1;
          else fromSnapshot += 1;
        }
      }
      expect(fromSnapshot, 'answers folded from a snapshot').to.be.greaterThan(0);
      expect(fromStart, 'answers folded from the first event').to.be.greaterThan(0);
    });

    it('differs from the entity now where the entity changed since', async () => {
      const first = seen.find((s) => s.kind === 'deployments')!;
      const then = await asOf('deployments', ids.deployment, first.at);
      const now = await api!.request('get', `/deployments/${ids.deployment}`);
      expect(then.body.state['replicas']).to.equal(2);
      expect(now.body['replicas']).to.equal(1);
    });

    it('answers 404 for a time before the entity existed, and for an entity that never did', async () => {
      for (const [kind, id] of [['clusters', ids.cluster], ['workloads', ids.workload], ['deployments', ids.deployment], ['action-plans', ids.plan]] as const) {
        const reply = await asOf(kind, id, beforeAll);
        expect(reply.status, `${kind} ${JSON.stringify(reply.body)}`).to.equal(404);
      }
      const never = await asOf('clusters', '00000000-0000-4000-8000-000000000000', new Date().toISOString());
      expect(never.status).to.equal(404);
    });

    it('refuses a bad asOf with a 400 naming the parameter', async () => {
      for (const bad of ['yesterday', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-03-01T12:00:00', '2026-03-01', '12', '0000000000000302-000000000000000g', '']) {
        const reply = await api!.request('get', `/deployments/${ids.deployment}?asOf=${encodeURIComponent(bad)}`);
        const said = `${bad}: ${JSON.stringify(reply.body)}`;
        expect(reply.status, said).to.equal(400);
        expect(reply.headers.get('content-type'), said).to.match(/^application\/problem\+json/);
        expect((reply.body['errors'] as { path: string }[]).map((e) => e.path), said).to.include('asOf');
      }
    });
  });
}
