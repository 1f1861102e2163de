// The sample store on PGlite and PostgreSQL: batches stored once per sequence, rollups of known values, the
// latest-value and rollup reads, partitions created on demand, and retention dropping whole days.
import { expect } from 'chai';
import type { Batch, Sample } from '../../adapters/grpc/telemetry-proto.js';
import type { Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { droppedIncrease, SampleStore } from '../../telemetry/sample-store.js';
import { databases } from '../support/databases.js';

const at = (iso: string) => Date.parse(iso);
const UTIL = 'DCGM_FI_DEV_GPU_UTIL';

function sample(value: number, iso: string, labels: Record<string, string> = { gpu: '0' }, metric = UTIL): Sample {
  return { metric, labels, value, timestampUnixMs: at(iso) };
}

function batch(agentId: string, sequence: number, samples: Sample[], droppedSamples = 0): Batch {
  return { agentId, nodeName: `node-${agentId}`, clusterId: 'cluster-a', sequence, samples, droppedSamples, sentAtUnixMs: 0 };
}

for (const database of databases) {
  describe(`telemetry sample store on ${database.name}`, function () {
    this.timeout(60_000);
    let db: Database;
    let drop: () => Promise<void>;
    let store: SampleStore;
    const hello = (agentId: string) =>
      store.hello({ agentId, nodeName: `node-${agentId}`, clusterId: 'cluster-a', agentVersion: '1' }, new Date(at('2030-01-01T12:00:00Z')));

    before(async function () {
      if (database.skipReason) {
        console.log(`      SKIP: ${database.skipReason}`);
        this.skip();
      }
      ({ db, drop } = await database.open());
      await migrateSentinel(db.knex);
      store = new SampleStore(db);
    });
    after(async () => {
      await db?.close();
      await drop?.();
    });

    it('given two batches in the same minutes, then the 1-minute rollups hold their count, sum, min, max and latest value', async () => {
      expect(await hello('roller')).to.equal(0);
      const received = new Date(at('2030-01-01T12:02:00Z'));
      await store.store(
        batch('roller', 1, [
          sample(10, '2030-01-01T12:00:10Z', { gpu: '0', modelName: 'H100' }),
          sample(20, '2030-01-01T12:00:50Z', { gpu: '0', modelName: 'H100' }),
          sample(5, '2030-01-01T12:01:05Z', { gpu: '0', modelName: 'H100' }),
          sample(7, '2030-01-01T12:00:30Z', { gpu: '1', modelName: 'H100' }),
        ]),
        received,
      );
      // The same series with its labels in both orders in one batch; one sample older than the minute's latest so far.
      await store.store(
        batch('roller', 2, [sample(30, '2030-01-01T12:00:20Z', { modelName: 'H100', gpu: '0' }), sample(1, '2030-01-01T12:00:55Z', { gpu: '0', modelName: 'H100' })]),
        received,
      );
      await store.flushRollups();
      const rollups = await store.rollups({ nodeName: 'node-roller', metric: UTIL, from: new Date(at('2030-01-01T12:00:00Z')), to: new Date(at('2030-01-01T12:05:00Z')) });
      expect(rollups.map(({ labels, minute, count, sum, min, max, lastValue, lastTime }) => ({ gpu: labels.gpu, minute: minute.toISOString(), count, sum, min, max, lastValue, lastTime: lastTime.toISOString() }))).to.deep.equal([
        { gpu: '0', minute: '2030-01-01T12:00:00.000Z', count: 4, sum: 61, min: 1, max: 30, lastValue: 1, lastTime: '2030-01-01T12:00:55.000Z' },
        { gpu: '0', minute: '2030-01-01T12:01:00.000Z', count: 1, sum: 5, min: 5, max: 5, lastValue: 5, lastTime: '2030-01-01T12:01:05.000Z' },
        { gpu: '1', minute: '2030-01-01T12:00:00.000Z', count: 1, sum: 7, min: 7, max: 7, lastValue: 7, lastTime: '2030-01-01T12:00:30.000Z' },
      ]);
      expect(rollups[0]).to.include({ clusterId: 'cluster-a', nodeName: 'node-roller', metric: UTIL });
      expect(rollups[0]!.labels).to.deep.equal({ gpu: '0', modelName: 'H100' });
    });

    it('answers the latest value of each series no older than `since`, filtered by cluster, node and metric prefix', async () => {
      await hello('latest');
      await store.store(
        batch('latest', 1, [
          sample(50, '2030-01-01T13:00:10Z'),
          sample(60, '2030-01-01T13:03:10Z'),
          sample(70, '2030-01-01T13:01:00Z', { gpu: '1' }),
          sample(1e9, '2030-01-01T13:02:00Z', {}, 'node_memory_MemAvailable_bytes'),
        ]),
        new Date(at('2030-01-01T13:04:00Z')),
      );
      await store.flushRollups();
      const latest = async (query: Partial<Parameters<SampleStore['latestSamples']>[0]>) =>
        (await store.latestSamples({ nodeName: 'node-latest', since: new Date(at('2030-01-01T13:00:00Z')), ...query })).map(
          ({ metric, labels, value, time }) => `${metric}${JSON.stringify(labels)}=${value}@${time.toISOString().slice(11, 19)}`,
        );
      expect(await latest({})).to.deep.equal([
        `${UTIL}{"gpu":"0"}=60@13:03:10`,
        `${UTIL}{"gpu":"1"}=70@13:01:00`,
        'node_memory_MemAvailable_bytes{}=1000000000@13:02:00',
      ]);
      expect(await latest({ since: new Date(at('2030-01-01T13:01:30Z')) })).to.deep.equal([`${UTIL}{"gpu":"0"}=60@13:03:10`, 'node_memory_MemAvailable_bytes{}=1000000000@13:02:00']);
      expect(await latest({ metricPrefix: 'node_' })).to.deep.equal(['node_memory_MemAvailable_bytes{}=1000000000@13:02:00']);
      expect(await latest({ clusterId: 'cluster-b' })).to.deep.equal([]);
      expect(await latest({ nodeName: 'node-elsewhere' })).to.deep.equal([]);
    });

    it('given a batch at or below the high-water mark, then nothing is stored and the mark is answered', async () => {
      await hello('resend');
      const received = new Date(at('2030-01-01T12:00:00Z'));
      expect(await store.store(batch('resend', 5, [sample(1, '2030-01-01T11:59:00Z')]), received)).to.deep.equal({ stored: true, acknowledged: 5, droppedIncrease: 0 });
      expect(await store.store(batch('resend', 5, [sample(1, '2030-01-01T11:59:00Z')]), received)).to.deep.equal({ stored: false, acknowledged: 5 });
      expect(await store.store(batch('resend', 3, [sample(1, '2030-01-01T11:58:00Z')]), received)).to.deep.equal({ stored: false, acknowledged: 5 });
      const [row] = await db.query<{ count: string | number }>("select count(*) from telemetry_sample_rows where agent_id = 'resend'");
      expect(Number(row!.count)).to.equal(1);
      expect(await hello('resend')).to.equal(5);
    });

    it('given the same batch stored twice at once (two streams of one agent), then exactly one stores it', async () => {
      await hello('twice');
      const same = () => store.store(batch('twice', 1, [sample(1, '2030-01-01T12:00:00Z'), sample(2, '2030-01-01T12:00:01Z')]), new Date());
      const outcomes = await Promise.all([same(), same(), same()]);
      expect(outcomes.filter((o) => o.stored)).to.have.length(1);
      const [row] = await db.query<{ count: string | number }>("select count(*) from telemetry_sample_rows where agent_id = 'twice'");
      expect(Number(row!.count)).to.equal(2);
    });

    it("counts the increase of an agent's dropped samples, and all of them after the agent restarted", async () => {
      await hello('dropper');
      const store3 = (sequence: number, dropped: number) => store.store(batch('dropper', sequence, [sample(1, '2030-01-01T12:00:00Z')], dropped), new Date());
      expect(await store3(1, 5)).to.include({ droppedIncrease: 5 });
      expect(await store3(2, 12)).to.include({ droppedIncrease: 7 });
      expect(await store3(3, 3)).to.include({ droppedIncrease: 3 });
      expect(droppedIncrease(3, 3)).to.equal(0);
      expect((await store.agents()).find((a) => a.agentId === 'dropper')).to.include({ droppedSamples: 3, highWater: 3 });
    });

    it('given samples on a day without partitions, then its partitions are created as the batch needs them', async () => {
      await hello('late');
      await store.store(batch('late', 1, [sample(1, '2029-12-25T23:59:59Z'), sample(2, '2029-12-26T00:00:01Z')]), new Date());
      const names = await partitions('telemetry_sample_batches');
      expect(names).to.include.members(['telemetry_sample_batches_p20291225', 'telemetry_sample_batches_p20291226']);
    });

    it('given a batch of several series, then it is stored as one row holding each series once, and read back sample by sample', async () => {
      await hello('compact');
      const samples = [
        sample(1.5, '2030-01-01T12:00:00Z', { gpu: '0', modelName: 'H100' }),
        sample(2, '2030-01-01T12:00:00Z', { gpu: '1', modelName: 'H100' }),
        sample(-3, '2030-01-01T12:00:01.250Z', { gpu: '0', modelName: 'H100' }),
        sample(4e12, '2030-01-01T12:00:01.250Z', {}, 'node_memory_MemAvailable_bytes'),
      ];
      await store.store(batch('compact', 1, samples), new Date());
      const rows = await db.query<{ series: unknown[]; series_indexes: number[] }>("select series, series_indexes from telemetry_sample_batches where agent_id = 'compact'");
      expect(rows).to.have.length(1);
      expect(rows[0]!.series).to.have.length(3);
      expect(rows[0]!.series_indexes).to.deep.equal([0, 1, 0, 2]);
      expect(await storedSamples('compact')).to.deep.equal(samples.map(({ metric, labels, value, timestampUnixMs }) => ({ metric, labels, value, time: new Date(timestampUnixMs).toISOString(), sequence: 1 })));
    });

    it('given a batch across midnight, then each day holds its own samples, in the partition of that day', async () => {
      await hello('midnight');
      const samples = [
        sample(1, '2029-12-27T00:00:02Z'),
        sample(2, '2029-12-26T23:59:58.500Z'),
        sample(3, '2029-12-27T00:00:00Z', { gpu: '1' }),
        sample(4, '2029-12-26T23:59:59Z', { gpu: '1' }),
      ];
      await store.store(batch('midnight', 1, samples), new Date());
      const rows = await db.query<{ partition: string; time: Date; offsets_ms: number[]; sample_values: number[] }>(
        "select tableoid::regclass::text as partition, time, offsets_ms, sample_values from telemetry_sample_batches where agent_id = 'midnight' order by time",
      );
      expect(rows.map(({ partition, time, offsets_ms, sample_values }) => ({ partition, time: new Date(time).toISOString(), offsets_ms, sample_values }))).to.deep.equal([
        { partition: 'telemetry_sample_batches_p20291226', time: '2029-12-26T23:59:58.500Z', offsets_ms: [0, 500], sample_values: [2, 4] },
        { partition: 'telemetry_sample_batches_p20291227', time: '2029-12-27T00:00:00.000Z', offsets_ms: [2000, 0], sample_values: [1, 3] },
      ]);
      expect((await storedSamples('midnight')).map(({ value, time }) => `${value}@${time}`).sort()).to.deep.equal(
        samples.map(({ value, timestampUnixMs }) => `${value}@${new Date(timestampUnixMs).toISOString()}`).sort(),
      );
    });

    // Last: it drops every partition before its cut-off, including those of the tests above.
    it('given partitions older than the retention, when maintenance runs, then those days are detached and dropped, samples before rollups', async () => {
      const created = await store.maintain(new Date(at('2030-03-01T10:00:00Z')));
      expect(created.created).to.have.members([
        'telemetry_sample_batches_p20300301',
        'telemetry_rollups_1m_p20300301',
        'telemetry_sample_batches_p20300302',
        'telemetry_rollups_1m_p20300302',
      ]);
      // Samples stored one row each before migration 011 expire as theirs do.
      await db.query("create table telemetry_samples_p20300301 partition of telemetry_samples for values from ('2030-03-01 00:00:00+00') to ('2030-03-02 00:00:00+00')");
      await hello('retained');
      await store.store(batch('retained', 1, [sample(1, '2030-03-01T10:00:00Z')]), new Date());

      // 7 days of samples: 2030-03-01 ends at 03-02 00:00, which is at or before 03-09 00:00 − 7 days.
      const first = await store.maintain(new Date(at('2030-03-09T00:00:00Z')));
      expect(first.dropped).to.include.members(['telemetry_sample_batches_p20300301', 'telemetry_samples_p20300301']);
      expect(first.dropped).not.to.include('telemetry_sample_batches_p20300302');
      expect(first.dropped.filter((name) => name.startsWith('telemetry_rollups_1m_p2030030'))).to.deep.equal([]);
      expect(await partitions('telemetry_sample_batches')).not.to.include('telemetry_sample_batches_p20300301');
      expect(await partitions('telemetry_sample_batches')).to.include('telemetry_sample_batches_p20300302');
      expect(await tables()).not.to.include('telemetry_sample_batches_p20300301');
      expect(await tables()).not.to.include('telemetry_samples_p20300301');
      expect(await partitions('telemetry_rollups_1m')).to.include('telemetry_rollups_1m_p20300301');

      // 30 days of rollups.
      const later = await store.maintain(new Date(at('2030-04-01T00:00:00Z')));
      expect(later.dropped).to.include('telemetry_rollups_1m_p20300301');
      expect(await tables()).not.to.include('telemetry_rollups_1m_p20300301');

      // A day dropped and then written again (a late batch, still inside the retention by the writer's clock) gets new
      // partitions. The agent was silent by maintenance's clock, which released it: it says hello again first.
      await hello('retained');
      await store.store(batch('retained', 2, [sample(3, '2030-03-01T10:00:00Z')]), new Date());
      expect(await partitions('telemetry_sample_batches')).to.include('telemetry_sample_batches_p20300301');
    });

    /** The agent's samples as telemetry_sample_rows reads them, in time order (then by value). */
    async function storedSamples(agentId: string) {
      const rows = await db.query<{ metric: string; labels: Record<string, string>; value: number; time: Date; sequence: string | number }>(
        'select metric, labels, value, time, sequence from telemetry_sample_rows where agent_id = $1 order by time, value',
        [agentId],
      );
      return rows.map(({ metric, labels, value, time, sequence }) => ({ metric, labels, value: Number(value), time: new Date(time).toISOString(), sequence: Number(sequence) }));
    }

    async function partitions(parent: string): Promise<string[]> {
      const rows = await db.query<{ relname: string }>(
        'select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = $1::regclass',
        [parent],
      );
      return rows.map((row) => row.relname);
    }

    async function tables(): Promise<string[]> {
      const rows = await db.query<{ tablename: string }>("select tablename from pg_tables where tablename like 'telemetry_%'");
      return rows.map((row) => row.tablename);
    }
  });
}
