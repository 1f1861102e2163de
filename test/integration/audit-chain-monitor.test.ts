// The audit chain check: its gauges say 0 while the chain holds, 1 once a row of the audit table is edited, and 0
// again once the row is put back; a check that cannot read the table leaves what was reported and counts a failure.
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { prometheusAuditChainMetrics } from '../../adapters/prometheus/audit-chain-metrics.js';
import { AuditChainMonitor } from '../../projections/audit-chain-monitor.js';
import { auditProjector } from '../../projections/audit-trail.js';
import { tableNames } from '../../projections/projector.js';
import { events, uniqueStream } from '../support/events.js';

const NOW = new Date('2026-05-01T10:00:00Z');

describe('audit chain monitor', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;
  let registry: Registry;
  let monitor: AuditChainMonitor;
  const table = tableNames(auditProjector, 1).audit;

  const gauge = async (name: string): Promise<number> => {
    const line = (await registry.getSingleMetricAsString(name)).split('\n').find((text) => text.startsWith(`${name} `));
    return Number(line!.slice(name.length + 1));
  };

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await store.append(uniqueStream('deployment'), events(7, 'DeploymentScaled'), { expected: 'no_stream' });
    await store.append(uniqueStream('cluster'), events(5, 'ClusterRegistered'), { expected: 'no_stream' });
    const recorded = (await store.readAll({ limit: 100 })).events;
    await db.knex.transaction(async (trx) => {
      await auditProjector.createTables(trx, tableNames(auditProjector, 1));
      await auditProjector.apply(recorded, trx, tableNames(auditProjector, 1));
    });
    registry = new Registry();
    monitor = new AuditChainMonitor({
      knex: db.knex,
      table: async () => table,
      metrics: prometheusAuditChainMetrics(registry),
      logger: pino({ level: 'silent' }),
      intervalSeconds: 3600,
      now: () => NOW,
    });
  });

  after(async () => {
    await monitor?.stop();
    await store?.close();
    await db?.close();
  });

  it('reports a chain that holds: broken 0, the rows walked and when', async () => {
    expect(await monitor.check()).to.deep.equal({ ok: true, rows: 12 });
    expect(await gauge('sentinel_audit_chain_broken')).to.equal(0);
    expect(await gauge('sentinel_audit_chain_rows')).to.equal(12);
    expect(await gauge('sentinel_audit_chain_last_verified_timestamp_seconds')).to.equal(NOW.getTime() / 1000);
  });

  it('turns broken to 1 when a row of the audit table is edited, and back to 0 once it is put back', async () => {
    const [, , third] = (await db.knex(table).select('position', 'summary').orderBy('position')) as { position: string; summary: string }[];
    await db.knex(table).where({ position: third!.position }).update({ summary: 'nothing happened here' });
    const found = await monitor.check();
    expect(found).to.include({ ok: false, rows: 3 });
    expect(await gauge('sentinel_audit_chain_broken')).to.equal(1);

    await db.knex(table).where({ position: third!.position }).update({ summary: third!.summary });
    expect(await monitor.check()).to.deep.equal({ ok: true, rows: 12 });
    expect(await gauge('sentinel_audit_chain_broken')).to.equal(0);
  });

  it('leaves the last result in place and counts a failure when the table cannot be read', async () => {
    await db.knex(table).update({ hash: db.knex.raw("'0' || hash") });
    expect(await monitor.check()).to.include({ ok: false });
    // The table is gone (renamed away): broken stays 1, and the failure is counted.
    await db.knex.schema.renameTable(table, `${table}_moved`);
    try {
      expect(await monitor.check()).to.equal(undefined);
      expect(await gauge('sentinel_audit_chain_broken')).to.equal(1);
      expect(await gauge('sentinel_audit_chain_verify_failures_total')).to.equal(1);
    } finally {
      await db.knex.schema.renameTable(`${table}_moved`, table);
    }
  });

  it('refuses an interval that is not a positive number of seconds', () => {
    const options = { knex: db.knex, table: async () => table, metrics: prometheusAuditChainMetrics(new Registry()), logger: pino({ level: 'silent' }) };
    expect(() => new AuditChainMonitor({ ...options, intervalSeconds: 0 })).to.throw(RangeError, /intervalSeconds/);
    expect(() => new AuditChainMonitor({ ...options, intervalSeconds: Number.NaN })).to.throw(RangeError, /intervalSeconds/);
  });
});
