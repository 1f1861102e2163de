// The audit projector's version 2 (the content stored as its canonical text, where version 1 stored jsonb): a trail
// written by version 1 keeps verifying while it serves, and the rebuild at version 2 gives it back with the same
// hashes and the same content, on PGlite and on PostgreSQL.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Knex } from 'knex';
import pino from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { AuditExportWriter, verifyExport } from '../../commands/audit-export.js';
import type { EventToAppend } from '../../domain/event-store.js';
import { auditProjector, canonicalJson } from '../../projections/audit-trail.js';
import { readAuditChain, verifyAuditTrail } from '../../projections/audit-chain-read.js';
import { tableNames, type Projector } from '../../projections/projector.js';
import { projectionRow } from '../../adapters/postgres/checkpoints.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { eventually } from '../support/eventually.js';
import { allVisible } from '../support/events.js';
import { backends, type Backend } from '../support/projection-backends.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

/**
 * Version 1 as it wrote its table: the same rows, the content column jsonb. Version 1 sent the canonical text for
 * jsonb to parse, which is what casting the text column to jsonb does.
 */
const versionOne: Projector<'audit'> = {
  ...auditProjector,
  version: 1,
  async apply(events, trx, tables) {
    await trx.raw('alter table ?? alter column content type text', [tables.audit]);
    await auditProjector.apply(events, trx, tables);
    await trx.raw('alter table ?? alter column content type jsonb using content::jsonb', [tables.audit]);
  },
};

function event(type: string, data: Record<string, unknown>, actor: { id: string; kind: 'user' | 'service' } = { id: 'alice', kind: 'user' }): EventToAppend {
  return { id: randomUUID(), type, data, metadata: { actor, correlationId: randomUUID(), source: 'test' } };
}

interface StoredRow {
  position: string;
  prev_hash: string;
  hash: string;
  content: unknown;
}

async function rowsOf(knex: Knex, table: string): Promise<StoredRow[]> {
  return (await knex(table).select('position', 'prev_hash', 'hash', 'content').orderBy('position')) as StoredRow[];
}

async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  await eventually(what, done, (holds) => holds, 30_000);
}

for (const backend of backends) {
  describe(`audit trail upgrade from version 1 (jsonb content) on ${backend.name}`, function () {
    this.timeout(120_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      await migrateSentinel(opened.db.knex);
      store = await PostgresEventStore.open(opened.db);
      // Text that jsonb stores in its own way: key order, escapes, numbers, astral characters.
      await store.append(`deployment-${randomUUID()}`, [
        event('DeploymentScaled', { deploymentId: 'd-1', replicas: 4, previousReplicas: 2, z: { b: 1, a: [1.5e-7, 1e21, -0, 123456789012345] } }),
        event('SomethingOdd', { '10': 'ten', '9': 'nine', ü: 'ünïcode \u{1F600} \u2028', quoted: '"content":{}', long_key_first: true, a: null }),
        event('DeploymentScaled', { deploymentId: 'd-1', replicas: 5, previousReplicas: 4, reason: 'line\nbreak\ttab "q" \\' }, { id: 'svc', kind: 'service' }),
      ]);
      for (let i = 0; i < 40; i++) await store.append(`cluster-${randomUUID()}`, [event('ClusterConnected', { clusterId: `c-${i}`, n: i })]);
    });
    after(async () => {
      await store?.close();
      await opened?.close();
    });

    it('given a trail version 1 wrote, when version 2 starts, then it rebuilds with the same hashes and content, and the old trail verified while it served', async () => {
      const { knex } = opened.db;
      await allVisible(store);
      const head = (await store.readAll({ limit: 1000 })).events.at(-1)!.position;

      const old = new ProjectionRuntime(knex, store, [versionOne], { logger, lease: opened.lease(), batchSize: 7 });
      await old.start();
      await until(async () => (await projectionRow(knex, 'audit'))?.position === head, 'version 1 to catch up');
      await old.stop();
      const oldRow = (await projectionRow(knex, 'audit'))!;
      expect(oldRow.version).to.equal(1);
      const oldTable = tableNames(auditProjector, oldRow.generation).audit;
      const oldRows = await rowsOf(knex, oldTable);
      expect(oldRows).to.have.length(43);
      const [{ type }] = (await knex(oldTable).select(knex.raw('pg_typeof(content)::text as type')).limit(1)) as [{ type: string }];
      expect(type).to.equal('jsonb');

      // The version 1 table, read by this build (it serves until the rebuild swaps): it still holds, and exports.
      expect(await verifyAuditTrail(knex, oldTable, { batchSize: 5 })).to.deep.equal({ ok: true, rows: 43 });
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const exportOf = async (table: string) => {
        const writer = new AuditExportWriter(privateKey, { from: null, to: null }, () => new Date('2026-03-02T00:00:00.000Z'));
        let text = '';
        for await (const page of readAuditChain(knex, table, {}, 10)) {
          if (text === '') text += writer.header(page[0]!.prevHash);
          text += writer.page(page);
        }
        return text + writer.checkpoint();
      };
      const oldExport = await exportOf(oldTable);

      const upgraded = new ProjectionRuntime(knex, store, [auditProjector], { logger, lease: opened.lease(), batchSize: 5 });
      await upgraded.start();
      try {
        await until(async () => {
          const row = await projectionRow(knex, 'audit');
          return row?.version === 2 && row.position === head;
        }, 'version 2 to be rebuilt and swapped in');
      } finally {
        await upgraded.stop();
      }
      const newRow = (await projectionRow(knex, 'audit'))!;
      expect(newRow.generation).to.be.above(oldRow.generation);
      const newTable = tableNames(auditProjector, newRow.generation).audit;
      const newRows = await rowsOf(knex, newTable);

      expect(newRows.map((r) => [r.position, r.prev_hash, r.hash])).to.deep.equal(oldRows.map((r) => [r.position, r.prev_hash, r.hash]));
      newRows.forEach((row, i) => {
        expect(row.content).to.be.a('string');
        // The text version 2 stores is the canonical text of the value version 1 stored.
        const oldContent = oldRows[i]!.content;
        expect(row.content).to.equal(canonicalJson(typeof oldContent === 'string' ? JSON.parse(oldContent) : oldContent));
      });
      expect(await verifyAuditTrail(knex, newTable, { batchSize: 5 })).to.deep.equal({ ok: true, rows: 43 });
      // The export of the rebuilt trail is the same file, byte for byte, and verifies offline.
      const newExport = await exportOf(newTable);
      expect(newExport).to.equal(oldExport);
      expect(verifyExport(newExport.split('\n').filter((line) => line !== ''), publicKey)).to.deep.include({ ok: true, rows: 43 });
    });
  });
}
