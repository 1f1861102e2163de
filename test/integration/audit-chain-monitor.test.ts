// The audit chain check: its gauges say 0 while the chain holds, 1 once a row of the audit table is edited, and 0
// again once the row is put back; a check that cannot read the table leaves what was reported and counts a failure.
// Most checks walk only the rows appended since the last one, from the head it found whole; every few, one walks the
// whole chain again, so that an old row edited in between is still found.
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { prometheusAuditChainMetrics } from '../../adapters/prometheus/audit-chain-metrics.js';
import { AuditChainMonitor, DEFAULT_FULL_EVERY } from '../../projections/audit-chain-monitor.js';
import { auditProjector, auditRowHash } from '../../projections/audit-trail.js';
import { readAuditChain, verifyAuditTrail, type AuditChainRow } from '../../projections/audit-chain-read.js';
import { tableNames } from '../../projections/projector.js';
import { events, uniqueStream } from '../support/events.js';

const NOW = new Date('2026-05-01T10:00:00Z');
const silent = pino({ level: 'silent' });

describe('audit chain monitor', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;
  let generation = 0;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await store.append(uniqueStream('deployment'), events(7, 'DeploymentScaled'), { expected: 'no_stream' });
    await store.append(uniqueStream('cluster'), events(5, 'ClusterRegistered'), { expected: 'no_stream' });
  });

  after(async () => {
    await store?.close();
    await db?.close();
  });

  /** An audit table of its own holding the 12 events above, and a monitor over it with its own registry. */
  async function trail(options: { fullEvery?: number } = {}) {
    generation += 1;
    const tables = tableNames(auditProjector, generation);
    const recorded = (await store.readAll({ limit: 12 })).events;
    await db.knex.transaction(async (trx) => {
      await auditProjector.createTables(trx, tables);
      await auditProjector.apply(recorded, trx, tables);
    });
    const registry = new Registry();
    const monitor = new AuditChainMonitor({
      knex: db.knex,
      table: async () => tables.audit,
      metrics: prometheusAuditChainMetrics(registry),
      logger: silent,
      intervalSeconds: 3600,
      now: () => NOW,
      ...options,
    });
    const gauge = async (name: string, labels = ''): Promise<number> => {
      const series = `${name}${labels}`;
      const line = (await registry.getSingleMetricAsString(name)).split('\n').find((text) => text.startsWith(`${series} `));
      return Number(line!.slice(series.length + 1));
    };
    /** The rows as stored, in log order. */
    const rows = async (): Promise<AuditChainRow[]> => {
      const all: AuditChainRow[] = [];
      for await (const page of readAuditChain(db.knex, tables.audit, {})) all.push(...page);
      return all;
    };
    /** Appends `count` events to the log and their rows to this trail, as the audit projector would. */
    const append = async (count: number) => {
      const { position } = await store.append(uniqueStream('deployment'), events(count, 'DeploymentScaled'));
      const newest = (await store.readAll({ after: (await rows()).at(-1)!.record.position, limit: 100 })).events;
      expect(newest.at(-1)!.position).to.equal(position);
      await db.knex.transaction((trx) => auditProjector.apply(newest, trx, tables));
    };
    return { table: tables.audit, monitor, gauge, rows, append };
  }

  it('given a chain that holds, when it is checked, then it walks it all and reports broken 0, the rows and when', async () => {
    const { monitor, gauge } = await trail();
    expect(await monitor.check()).to.deep.equal({ ok: true, rows: 12, walk: 'full', walked: 12 });
    expect(await gauge('sentinel_audit_chain_broken')).to.equal(0);
    expect(await gauge('sentinel_audit_chain_rows')).to.equal(12);
    expect(await gauge('sentinel_audit_chain_rows_walked')).to.equal(12);
    expect(await gauge('sentinel_audit_chain_last_verified_timestamp_seconds')).to.equal(NOW.getTime() / 1000);
    expect(await gauge('sentinel_audit_chain_verifications_total', '{walk="full",result="ok"}')).to.equal(1);
  });

  it('given a chain checked whole, when rows are appended, then the next check reads only from the last verified row on', async () => {
    const { monitor, gauge, append } = await trail();
    await monitor.check();
    await append(3);
    // The head found whole before, read again, and the three new rows.
    expect(await monitor.check()).to.deep.equal({ ok: true, rows: 15, walk: 'incremental', walked: 4 });
    expect(await monitor.check()).to.deep.equal({ ok: true, rows: 15, walk: 'incremental', walked: 1 });
    expect(await gauge('sentinel_audit_chain_rows')).to.equal(15);
    expect(await gauge('sentinel_audit_chain_rows_walked')).to.equal(1);
    expect(await gauge('sentinel_audit_chain_verifications_total', '{walk="incremental",result="ok"}')).to.equal(2);
  });

  it('given an old row edited after a full walk, when the incremental walks pass it by, then the next full walk finds it', async () => {
    const { table, monitor, gauge, rows } = await trail({ fullEvery: 3 });
    expect(await monitor.check()).to.include({ ok: true, walk: 'full' });
    const third = (await rows())[2]!;
    await db.knex(table).where({ position: third.record.position }).update({ summary: 'nothing happened here' });

    // Two incremental walks (the second and third of every three) read from the head, behind which the edit lies.
    expect(await monitor.check()).to.include({ ok: true, walk: 'incremental' });
    expect(await monitor.check()).to.include({ ok: true, walk: 'incremental' });
    const found = await monitor.check();
    expect(found).to.deep.include({ ok: false, rows: 3, walk: 'full', brokenAt: { id: third.record.eventId, position: third.record.position } });
    expect(await gauge('sentinel_audit_chain_broken')).to.equal(1);

    // Once broken, every walk is full until the chain holds again.
    expect(await monitor.check()).to.include({ ok: false, walk: 'full' });
    await db.knex(table).where({ position: third.record.position }).update({ summary: third.record.summary });
    expect(await monitor.check()).to.deep.equal({ ok: true, rows: 12, walk: 'full', walked: 12 });
    expect(await gauge('sentinel_audit_chain_broken')).to.equal(0);
  });

  it('given a tail rewritten with hashes that link up, when the next incremental walk reads the head, then it finds the change', async () => {
    const { table, monitor, gauge, rows } = await trail();
    await monitor.check();
    const stored = await rows();
    // Rows 9 to 12 rewritten, each hash taken again over the new contents: the chain links up from the first row.
    let prevHash = stored[7]!.hash;
    for (const row of stored.slice(8)) {
      const record = { ...row.record, summary: `${row.record.summary} (amended)` };
      const hash = auditRowHash(prevHash, record, row.content);
      await db.knex(table).where({ position: record.position }).update({ summary: record.summary, prev_hash: prevHash, hash });
      prevHash = hash;
    }
    expect(await verifyAuditTrail(db.knex, table)).to.deep.equal({ ok: true, rows: 12 });

    const head = stored.at(-1)!.record;
    const found = await monitor.check();
    expect(found).to.deep.include({ ok: false, rows: 12, walk: 'incremental', brokenAt: { id: head.eventId, position: head.position } });
    expect(found).to.have.property('reason').that.matches(/rewritten/);
    expect(await gauge('sentinel_audit_chain_broken')).to.equal(1);
    // A full walk, next, still holds the chain to the head it remembers.
    expect(await monitor.check()).to.deep.include({ ok: false, rows: 12, walk: 'full', brokenAt: { id: head.eventId, position: head.position } });
  });

  it('given a verified head that was removed, when the next walk looks for it, then the chain is broken there', async () => {
    const { table, monitor, rows } = await trail();
    await monitor.check();
    const head = (await rows()).at(-1)!.record;
    await db.knex(table).where({ position: head.position }).delete();
    const found = await monitor.check();
    expect(found).to.deep.include({ ok: false, rows: 12, walk: 'incremental', brokenAt: { id: head.eventId, position: head.position } });
    expect(found).to.have.property('reason').that.matches(/gone/);
  });

  it('leaves the last result in place and counts a failure when the table cannot be read', async () => {
    const { table, monitor, gauge } = await trail();
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

  it('says its schedule once started: the interval and how often a walk is full', async () => {
    const { monitor, gauge } = await trail();
    monitor.start();
    await monitor.stop();
    expect(await gauge('sentinel_audit_chain_verify_interval_seconds')).to.equal(3600);
    expect(await gauge('sentinel_audit_chain_full_walk_every')).to.equal(DEFAULT_FULL_EVERY);
  });

  it('refuses an interval that is not a positive number of seconds, and a full-walk period that is not a whole number from 1', () => {
    const options = { knex: db.knex, table: async () => 'unused', metrics: prometheusAuditChainMetrics(new Registry()), logger: silent };
    expect(() => new AuditChainMonitor({ ...options, intervalSeconds: 0 })).to.throw(RangeError, /intervalSeconds/);
    expect(() => new AuditChainMonitor({ ...options, intervalSeconds: Number.NaN })).to.throw(RangeError, /intervalSeconds/);
    expect(() => new AuditChainMonitor({ ...options, intervalSeconds: 300, fullEvery: 0 })).to.throw(RangeError, /fullEvery/);
    expect(() => new AuditChainMonitor({ ...options, intervalSeconds: 300, fullEvery: 2.5 })).to.throw(RangeError, /fullEvery/);
  });
});
