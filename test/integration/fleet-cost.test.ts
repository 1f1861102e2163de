// Fleet cost through the real server: deployments created, scaled, restarted and deleted over HTTP admit changes
// to the ledger, and `GET /fleet/cost` prices what is placed by team, cluster and GPU SKU at the default prices;
// across a ledger snapshot, real or synthetic, the answer stays the same.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { fold } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { ledgerDecider, ledgerEvents } from '../../domain/ledger.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { fleetCost, fleetCostProjector, type FleetCost } from '../../projections/fleet-cost.js';
import { tableNames } from '../../projections/projector.js';
import { createScratchDatabase } from '../support/postgres.js';
import { backends, type TestApi } from '../support/sentinel-api.js';

const LEDGER_STREAM = 'quota-global';

const cluster = (name: string, gpuSkus: string[]) => ({
  name,
  apiServer: 'https://10.0.0.3:6443',
  credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
  region: 'us-east-1',
  gpuSkus,
});

const workloads = {
  train: {
    name: 'llm-train',
    namespace: 'ml',
    type: 'training',
    image: 'registry.local/train:1',
    resources: { cpu: '4', memory: '16Gi', gpu: { count: 2, sku: 'nvidia-a100-80gb' } },
    labels: { team: 'research' },
  },
  serve: {
    name: 'whisper',
    namespace: 'speech',
    type: 'inference',
    image: 'registry.local/whisper:3',
    resources: { cpu: '2', memory: '8Gi', gpu: { count: 1, sku: 'nvidia-l4' } },
    labels: { team: 'speech' },
  },
  batch: {
    name: 'etl',
    namespace: 'data',
    type: 'batch',
    image: 'registry.local/etl:7',
    resources: { cpu: '2', memory: '2Gi' },
  },
};

/** $/hour of one replica of each workload at the default prices. */
const P = DEFAULT_PRICES;
const perReplica = {
  train: 2 * P.gpuHourlyUsd['nvidia-a100-80gb']! + 4 * P.vcpuHourlyUsd + 16 * P.memoryGibHourlyUsd,
  serve: 1 * P.gpuHourlyUsd['nvidia-l4']! + 2 * P.vcpuHourlyUsd + 8 * P.memoryGibHourlyUsd,
  batch: 2 * P.vcpuHourlyUsd + 2 * P.memoryGibHourlyUsd,
};
const cents = (usd: number) => Math.round(usd * 100) / 100;

interface Written {
  id: string;
  revision: number;
  position: string;
}

/** A database of the test's own, for driving the projector by hand beside the server's. */
async function openOwn(backend: string): Promise<{ db: Database; close(): Promise<void> }> {
  if (backend === 'PGlite') {
    const db = await openPglite();
    return { db, close: () => db.close() };
  }
  const scratch = await createScratchDatabase();
  const db = openPostgres(scratch.url);
  return { db, close: async () => (await db.close(), await scratch.drop()) };
}

for (const backend of backends) {
  describe(`fleet cost on ${backend.name}`, function () {
    this.timeout(120_000);
    let api: TestApi;
    let east: string;
    let west: string;
    const deployment: Record<keyof typeof workloads, string> = { train: '', serve: '', batch: '' };
    /** The answer once the fleet has settled, before the ledger is snapshotted. */
    let settled: FleetCost;
    let last: Written;

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        this.skip();
      }
      api = await backend.start();
    });
    after(async () => api?.stop());

    const write = async (method: string, path: string, body?: unknown): Promise<Written> => {
      const reply = await api.request<Written>(method, path, { body });
      expect(reply.status, `${method} ${path}: ${JSON.stringify(reply.body)}`).to.be.oneOf([200, 201, 202]);
      last = reply.body;
      return reply.body;
    };

    const cost = async (as: 'viewer' | 'system' = 'viewer'): Promise<FleetCost> => {
      const reply = await api.request<FleetCost>('get', `/fleet/cost?after=${last.position}`, { as });
      expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
      return reply.body;
    };

    it('prices the default table as expected', () => {
      expect([cents(perReplica.train), cents(perReplica.serve), cents(perReplica.batch)]).to.deep.equal([7.58, 0.92, 0.09]);
    });

    it('answers nothing placed for an empty fleet', async () => {
      const reply = await api.request<FleetCost>('get', '/fleet/cost', { as: 'viewer' });
      expect(reply.status).to.equal(200);
      expect(reply.body).to.deep.equal({ hourlyUsd: 0, byTeam: [], byCluster: [], byGpuSku: [], deployments: 0 });
    });

    it('given deployments of three teams on two clusters, prices them by team, cluster and GPU SKU', async () => {
      east = (await write('post', '/clusters', cluster('gpu-east', ['nvidia-a100-80gb']))).id;
      west = (await write('post', '/clusters', cluster('gpu-west', ['nvidia-l4']))).id;
      const workloadIds = {
        train: (await write('post', '/workloads', workloads.train)).id,
        serve: (await write('post', '/workloads', workloads.serve)).id,
        batch: (await write('post', '/workloads', workloads.batch)).id,
      };
      deployment.train = (await write('post', '/deployments', { workloadId: workloadIds.train, clusterId: east, replicas: 2 })).id;
      deployment.serve = (await write('post', '/deployments', { workloadId: workloadIds.serve, clusterId: west, replicas: 3 })).id;
      deployment.batch = (await write('post', '/deployments', { workloadId: workloadIds.batch, clusterId: east, replicas: 1 })).id;

      const [train, serve, batch] = [2 * perReplica.train, 3 * perReplica.serve, perReplica.batch];
      const expected: FleetCost = {
        hourlyUsd: cents(train + serve + batch),
        byTeam: [
          { team: 'research', hourlyUsd: cents(train), gpus: 4 },
          { team: 'speech', hourlyUsd: cents(serve), gpus: 3 },
          { team: '(none)', hourlyUsd: cents(batch), gpus: 0 },
        ],
        byCluster: [
          { clusterId: east, hourlyUsd: cents(train + batch), gpus: 4 },
          { clusterId: west, hourlyUsd: cents(serve), gpus: 3 },
        ],
        byGpuSku: [
          { sku: 'nvidia-a100-80gb', gpus: 4, hourlyUsd: cents(train) },
          { sku: 'nvidia-l4', gpus: 3, hourlyUsd: cents(serve) },
        ],
        deployments: 3,
      };
      expect(expected.hourlyUsd).to.equal(18.01);
      expect(await cost('viewer')).to.deep.equal(expected);
      expect(await cost('system')).to.deep.equal(expected);
    });

    it('when scaled and restarted, follows the replicas and leaves a restart alone', async () => {
      await write('post', `/deployments/${deployment.serve}/scale`, { replicas: 5 });
      await write('post', `/deployments/${deployment.batch}/restart`, { reason: 'new config' });

      const [train, serve, batch] = [2 * perReplica.train, 5 * perReplica.serve, perReplica.batch];
      const answer = await cost();
      expect(answer.hourlyUsd).to.equal(cents(train + serve + batch));
      expect(answer.byTeam).to.deep.equal([
        { team: 'research', hourlyUsd: cents(train), gpus: 4 },
        { team: 'speech', hourlyUsd: cents(serve), gpus: 5 },
        { team: '(none)', hourlyUsd: cents(batch), gpus: 0 },
      ]);
      expect(answer.byGpuSku).to.deep.equal([
        { sku: 'nvidia-a100-80gb', gpus: 4, hourlyUsd: cents(train) },
        { sku: 'nvidia-l4', gpus: 5, hourlyUsd: cents(serve) },
      ]);
      expect(answer.deployments).to.equal(3);
    });

    it('when a deployment is deleted, drops its cost', async () => {
      await write('delete', `/deployments/${deployment.train}`, { reason: 'training done' });

      const [serve, batch] = [5 * perReplica.serve, perReplica.batch];
      settled = await cost();
      expect(settled).to.deep.equal({
        hourlyUsd: cents(serve + batch),
        byTeam: [
          { team: 'speech', hourlyUsd: cents(serve), gpus: 5 },
          { team: '(none)', hourlyUsd: cents(batch), gpus: 0 },
        ],
        byCluster: [
          { clusterId: west, hourlyUsd: cents(serve), gpus: 5 },
          { clusterId: east, hourlyUsd: cents(batch), gpus: 0 },
        ],
        byGpuSku: [{ sku: 'nvidia-l4', gpus: 5, hourlyUsd: cents(serve) }],
        deployments: 2,
      });
    });

    it('when the ledger is snapshotted (every 200 events), gives the same answer', async () => {
      const snapshotted = async () => (await api.stream(LEDGER_STREAM)).some((event) => event.type === 'LedgerSnapshotted');
      for (let i = 0; !(await snapshotted()); i += 1) {
        expect(i, 'scales until the ledger snapshots').to.be.below(300);
        for (let j = 0; j < 10; j += 1) await write('post', `/deployments/${deployment.serve}/scale`, { replicas: j % 2 === 0 ? 4 : 5 });
      }
      // Admissions after the snapshot apply on top of it.
      await write('post', `/deployments/${deployment.serve}/scale`, { replicas: 4 });
      await write('post', `/deployments/${deployment.serve}/scale`, { replicas: 5 });
      const ledger = await api.stream(LEDGER_STREAM);
      expect(ledger.at(-1)!.type).to.equal('ChangeAdmitted');

      expect(await cost()).to.deep.equal(settled);
    });

    describe('the projector driven by hand with the ledger the server wrote', () => {
      let own: Awaited<ReturnType<typeof openOwn>>;
      let ledger: RecordedEvent[];

      before(async function () {
        if (backend.skipReason) this.skip();
        own = await openOwn(backend.name);
        ledger = await api.stream(LEDGER_STREAM);
      });
      after(async () => own?.close());

      const generation = async (n: number) => {
        const tables = tableNames(fleetCostProjector, n);
        await own.db.knex.transaction((trx) => fleetCostProjector.createTables(trx, tables));
        return tables;
      };

      it('given the whole ledger in small batches, answers as the server does', async () => {
        const tables = await generation(1);
        for (let i = 0; i < ledger.length; i += 7) {
          await own.db.knex.transaction((trx) => fleetCostProjector.apply(ledger.slice(i, i + 7), trx, tables));
        }
        expect(await fleetCost(own.db.knex, tables)).to.deep.equal(settled);
      });

      it('given an out-of-date table, when a synthetic snapshot is applied, then it holds the snapshot’s placements alone', async () => {
        const tables = await generation(2);
        // The three creates: the deleted training run is still there, the speech service at 3 replicas.
        const creates = ledger.filter((event) => event.type === 'ChangeAdmitted' && (event.data['action'] as string) === 'create');
        await own.db.knex.transaction((trx) => fleetCostProjector.apply(creates, trx, tables));
        expect((await fleetCost(own.db.knex, tables)).deployments).to.equal(3);

        const state = fold(
          ledgerDecider,
          ledger.map((event) => ledgerEvents.parse(event.type, event.schemaVersion, event.data)),
        );
        const end = ledger.at(-1)!;
        const snapshot: RecordedEvent = {
          id: randomUUID(),
          stream: LEDGER_STREAM,
          type: 'LedgerSnapshotted',
          schemaVersion: ledgerEvents.version('LedgerSnapshotted'),
          revision: end.revision + 1,
          position: end.position,
          recordedAt: new Date(),
          data: JSON.parse(JSON.stringify(state)) as Record<string, unknown>,
          metadata: {},
        };
        await own.db.knex.transaction((trx) => fleetCostProjector.apply([snapshot], trx, tables));

        expect(await fleetCost(own.db.knex, tables)).to.deep.equal(settled);
        const rows = (await own.db.knex(tables.fleet_placements).orderBy('deployment_id')) as { deployment_id: string; replicas: number }[];
        expect(rows.map((row) => [row.deployment_id, row.replicas])).to.have.deep.members([
          [deployment.serve, 5],
          [deployment.batch, 1],
        ]);
      });

      it('ignores ledger events of another stream', async () => {
        const tables = await generation(3);
        const elsewhere = ledger.map((event) => ({ ...event, stream: 'quota-other' }));
        await own.db.knex.transaction((trx) => fleetCostProjector.apply(elsewhere, trx, tables));
        expect((await fleetCost(own.db.knex, tables)).deployments).to.equal(0);
      });
    });
  });
}
