// Fleet cost through the real server: deployments created, scaled, restarted and deleted over HTTP admit changes
// to the ledger, and `GET /fleet/cost` prices what is placed by team, cluster and GPU SKU at the default prices;
// across a ledger snapshot, real or synthetic, and a rebuild that writes its rows in another order, the answer
// stays the same to the micro-dollar.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { fold } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { ledgerDecider, ledgerEvents, totalHourlyUsd, type LedgerEvent, type Placement } from '../../domain/ledger.js';
import { DEFAULT_PRICES, fromMicroUsd, hourlyCost, toMicroUsd } from '../../domain/pricing.js';
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

const GIB = 2 ** 30;
/** Micro-dollars per hour of one replica of each workload at the default prices: A100 $3.67, L4 $0.80, vCPU $0.04, GiB $0.005. */
const perReplica = {
  train: 2 * 3_670_000 + 4 * 40_000 + 16 * 5_000,
  serve: 1 * 800_000 + 2 * 40_000 + 8 * 5_000,
  batch: 2 * 40_000 + 2 * 5_000,
};
/** What the API answers for micro-dollars per hour. */
const usd = fromMicroUsd;

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
      const replica = (cpuMillicores: number, memoryGib: number, gpus: number, gpuSku?: string) =>
        hourlyCost({ replicas: 1, cpuMillicores, memoryBytes: memoryGib * GIB, gpus, ...(gpuSku ? { gpuSku } : {}) }, 'any', DEFAULT_PRICES);
      expect([replica(4000, 16, 2, 'nvidia-a100-80gb'), replica(2000, 8, 1, 'nvidia-l4'), replica(2000, 2, 0)]).to.deep.equal([
        usd(perReplica.train),
        usd(perReplica.serve),
        usd(perReplica.batch),
      ]);
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
        hourlyUsd: usd(train + serve + batch),
        byTeam: [
          { team: 'research', hourlyUsd: usd(train), gpus: 4 },
          { team: 'speech', hourlyUsd: usd(serve), gpus: 3 },
          { team: '(none)', hourlyUsd: usd(batch), gpus: 0 },
        ],
        byCluster: [
          { clusterId: east, hourlyUsd: usd(train + batch), gpus: 4 },
          { clusterId: west, hourlyUsd: usd(serve), gpus: 3 },
        ],
        byGpuSku: [
          { sku: 'nvidia-a100-80gb', gpus: 4, hourlyUsd: usd(train) },
          { sku: 'nvidia-l4', gpus: 3, hourlyUsd: usd(serve) },
        ],
        deployments: 3,
      };
      expect(expected.hourlyUsd).to.equal(18.01);
      expect(await cost('viewer')).to.deep.equal(expected);
      expect(await cost('system')).to.deep.equal(expected);
    });

    it('when scaled and restarted, follows the replicas, and a restart holds its surge pod while it rolls out', async () => {
      await write('post', `/deployments/${deployment.serve}/scale`, { replicas: 5 });
      await write('post', `/deployments/${deployment.batch}/restart`, { reason: 'new config' });

      // The restart replaces the one pod by a rolling update (maxSurge 25%, rounded up: one more pod meanwhile); no
      // cluster reactor runs here to see it complete and give the surge back.
      const [train, serve, batch] = [2 * perReplica.train, 5 * perReplica.serve, 2 * perReplica.batch];
      const answer = await cost();
      expect(answer.hourlyUsd).to.equal(usd(train + serve + batch));
      expect(answer.byTeam).to.deep.equal([
        { team: 'research', hourlyUsd: usd(train), gpus: 4 },
        { team: 'speech', hourlyUsd: usd(serve), gpus: 5 },
        { team: '(none)', hourlyUsd: usd(batch), gpus: 0 },
      ]);
      expect(answer.byGpuSku).to.deep.equal([
        { sku: 'nvidia-a100-80gb', gpus: 4, hourlyUsd: usd(train) },
        { sku: 'nvidia-l4', gpus: 5, hourlyUsd: usd(serve) },
      ]);
      expect(answer.deployments).to.equal(3);
    });

    it('when a deployment is deleted, drops its cost', async () => {
      await write('delete', `/deployments/${deployment.train}`, { reason: 'training done' });

      const [serve, batch] = [5 * perReplica.serve, 2 * perReplica.batch];
      settled = await cost();
      expect(settled).to.deep.equal({
        hourlyUsd: usd(serve + batch),
        byTeam: [
          { team: 'speech', hourlyUsd: usd(serve), gpus: 5 },
          { team: '(none)', hourlyUsd: usd(batch), gpus: 0 },
        ],
        byCluster: [
          { clusterId: west, hourlyUsd: usd(serve), gpus: 5 },
          { clusterId: east, hourlyUsd: usd(batch), gpus: 0 },
        ],
        byGpuSku: [{ sku: 'nvidia-l4', gpus: 5, hourlyUsd: usd(serve) }],
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

    describe('money summed exactly', () => {
      let own: Awaited<ReturnType<typeof openOwn>>;

      before(async function () {
        if (backend.skipReason) this.skip();
        own = await openOwn(backend.name);
      });
      after(async () => own?.close());

      /**
       * 200 placements cycling through these figures cost exactly $152.375/h, a half cent: added as floats, cheapest
       * first they come to 152.37500000000003 and dearest first to 152.37499999999912, so a float column's cent
       * depends on the order its rows are read in. `0.1 + 0.2` is how an older event, priced before rounding at the
       * source, may carry 0.3.
       */
      const FIGURES = [0.1, 0.2, 0.7, 1.1, 0.1 + 0.2, 2.675, 0.015, 1.005];
      const placed = Array.from({ length: 200 }, (_, i): [string, Placement] => [
        `dep-${String(i).padStart(3, '0')}`,
        {
          clusterId: i % 2 ? 'cluster-east' : 'cluster-west',
          namespace: 'ml',
          ...(i % 3 ? { team: `team-${i % 3}` } : {}),
          footprint: { replicas: 1, cpuMillicores: 1000, memoryBytes: GIB, gpus: i % 4, gpuSku: 'nvidia-l4' },
          hourlyUsd: FIGURES[i % FIGURES.length]!,
        },
      ]);
      const cheapestFirst = [...placed].sort(([, a], [, b]) => a.hourlyUsd - b.hourlyUsd);
      const dearestFirst = [...cheapestFirst].reverse();
      const floatCents = (order: [string, Placement][]) => Math.round(order.reduce((total, [, p]) => total + p.hourlyUsd, 0) * 100);

      let revision = 0;
      const recorded = (event: LedgerEvent): RecordedEvent => {
        revision += 1;
        return {
          id: randomUUID(),
          stream: LEDGER_STREAM,
          type: event.type,
          schemaVersion: ledgerEvents.version(event.type),
          revision,
          position: `${String(revision).padStart(16, '0')}-${'0'.repeat(16)}`,
          recordedAt: new Date('2026-03-10T12:00:00Z'),
          data: JSON.parse(JSON.stringify(event.data)) as Record<string, unknown>,
          metadata: {},
        };
      };
      const admitted = ([targetId, placement]: [string, Placement], action: 'create' | 'scale') =>
        recorded({ type: 'ChangeAdmitted', data: { at: '2026-03-10T12:00:00Z', action, targetId, actorId: 'alice', placement } });
      /** Created at no replicas cheapest first, then scaled up dearest first: each scale rewrites its row. */
      const log = [
        ...cheapestFirst.map(([id, p]) => admitted([id, { ...p, footprint: { ...p.footprint, replicas: 0 }, hourlyUsd: 0 }], 'create')),
        ...dearestFirst.map((entry) => admitted(entry, 'scale')),
      ];

      const generation = async (n: number, batches: RecordedEvent[][]) => {
        const tables = tableNames(fleetCostProjector, n);
        await own.db.knex.transaction((trx) => fleetCostProjector.createTables(trx, tables));
        for (const batch of batches) await own.db.knex.transaction((trx) => fleetCostProjector.apply(batch, trx, tables));
        return fleetCost(own.db.knex, tables);
      };

      it('given figures whose float sum depends on order, then live, rebuilt and snapshotted tables answer the same exact figure', async () => {
        expect(floatCents(cheapestFirst), 'the figures are order-sensitive as floats').not.to.equal(floatCents(dearestFirst));

        // Live: the creates, then the scales a few at a time, as a running projector meets them.
        const scales = log.slice(placed.length);
        const live = await generation(11, [log.slice(0, placed.length), ...Array.from({ length: 10 }, (_, i) => scales.slice(i * 20, i * 20 + 20))]);
        // Rebuilt: the whole log in one batch, so each row is written once, in the order the placements were created.
        const rebuilt = await generation(12, [log]);
        // From a snapshot whose placements are listed the other way round.
        const state = fold(ledgerDecider, log.map((event) => ledgerEvents.parse(event.type, event.schemaVersion, event.data)));
        const reversed = Object.fromEntries(Object.entries(state.placements).reverse());
        const snapshotted = await generation(13, [[recorded({ type: 'LedgerSnapshotted', data: { ...state, placements: reversed } })]]);

        expect(live.hourlyUsd).to.equal(152.375);
        expect(live.hourlyUsd).to.equal(totalHourlyUsd(Object.values(state.placements)));
        expect(live.deployments).to.equal(200);
        expect(rebuilt).to.deep.equal(live);
        expect(snapshotted).to.deep.equal(live);
        // Every breakdown is exact too: its parts add up to the total to the micro-dollar.
        for (const parts of [live.byTeam, live.byCluster]) {
          expect(parts.reduce((total, part) => total + toMicroUsd(part.hourlyUsd), 0)).to.equal(152_375_000);
        }
      });

      it('given an older event whose hourly cost is an unrounded float, then its row holds the nearest micro-dollar', async () => {
        const [id, p] = placed[0]!;
        const answer = await generation(14, [[admitted([id, { ...p, hourlyUsd: 1 / 3 }], 'create'), admitted(['dep-next', { ...p, hourlyUsd: 0.1 + 0.2 }], 'create')]]);
        expect(answer.hourlyUsd).to.equal(0.633333);
      });

      it('given the previous version’s float8 table, still serving while the new version rebuilds, then the query answers from it', async () => {
        const { fleet_placements: table } = tableNames(fleetCostProjector, 15);
        // Version 1's columns that the query reads.
        await own.db.knex.schema.createTable(table, (t) => {
          t.text('deployment_id').primary();
          t.text('cluster_id').notNullable();
          t.text('team');
          t.text('gpu_sku');
          t.double('gpus').notNullable();
          t.double('hourly_usd').notNullable();
        });
        const row = { cluster_id: 'cluster-east', team: 'ml', gpu_sku: null, gpus: 0 };
        await own.db.knex(table).insert([0.1, 0.2].map((hourly_usd, i) => ({ ...row, deployment_id: `dep-${i}`, hourly_usd })));
        expect((await fleetCost(own.db.knex, { fleet_placements: table })).hourlyUsd).to.equal(0.3);
      });
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
          [deployment.batch, 2],
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
