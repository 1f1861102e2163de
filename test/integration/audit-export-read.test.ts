// The audit chain as the export reads and writes it, on PGlite and on PostgreSQL: stored texts that hold the characters
// PGlite's page text separates rows and columns with, empty texts beside nulls, texts JSON escapes and a revision past
// a double's integers are read back exactly, at every page size, and written to the lines `JSON.stringify` gives.
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { AuditExportWriter, verifyExport } from '../../commands/audit-export.js';
import { auditProjector, auditRowHash, canonicalJson, GENESIS_HASH, type AuditRecordHead } from '../../projections/audit-trail.js';
import { readAuditChain, type AuditChainRow } from '../../projections/audit-chain-read.js';
import { backends, type Backend } from '../support/projection-backends.js';

const table = 'audit_export_read';

/** Row heads whose texts are anything but plain. */
const heads: Omit<AuditRecordHead, 'position'>[] = [
  { eventId: '00000000-0000-4000-8000-000000000001', stream: 'deployment-d-1', type: 'DeploymentScaled', revision: 0, recordedAt: '2026-03-01T14:00:00.007Z', actorId: 'alice', actorKind: 'user', action: 'deployment scaled', correlationId: 'c-1', causationId: null, summary: 'plain' },
  { eventId: '00000000-0000-4000-8000-000000000002', stream: 'deployment-d-1', type: 'DeploymentScaled', revision: 1, recordedAt: '2026-03-01T14:00:01.000Z', actorId: '', actorKind: null, action: 'deployment scaled', correlationId: 'row\u001ecolumn\u001fend', causationId: '', summary: 'said "no" \\ twice' },
  { eventId: '00000000-0000-4000-8000-000000000003', stream: 'deployment-ü-\u{1F600}', type: 'SomethingOdd', revision: '1152921504606846976', recordedAt: '2026-03-01T14:00:02.123Z', actorId: '', actorKind: 'service', action: 'something odd', correlationId: ' ', causationId: 'bell\u0007 and \u2028', summary: '},"content":{' },
  { eventId: '00000000-0000-4000-8000-000000000004', stream: 'cluster-c-1', type: 'ClusterConnected', revision: 7, recordedAt: '2026-03-01T14:00:03.999Z', actorId: null, actorKind: null, action: 'cluster connected', correlationId: '\u001f', causationId: '\u001e', summary: 'cluster c-1 connected' },
];

function chain(): AuditChainRow[] {
  let prevHash = GENESIS_HASH;
  return heads.map((head, i) => {
    const record = { position: `${(i + 1).toString(16).padStart(16, '0')}-0000000000000001`, ...head };
    const content = canonicalJson({ data: { n: i, text: head.summary }, id: head.eventId, type: head.type });
    const row = { record, content, prevHash, hash: auditRowHash(prevHash, record, content) };
    prevHash = row.hash;
    return row;
  });
}

/** A row's line as `JSON.stringify` writes its members, the content last as its canonical text. */
/** A row's line as version 2 lays it out: its hashes, then the record's canonical JSON after its opening brace. */
function lineOf({ record, content, prevHash, hash }: AuditChainRow): string {
  return `${JSON.stringify({ kind: 'row', prevHash, hash }).slice(0, -1)},${canonicalJson({ ...record, content: JSON.parse(content) as unknown })!.slice(1)}`;
}

for (const backend of backends) {
  describe(`audit export reading the stored chain on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    const rows = chain();

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      const { knex } = opened.db;
      await knex.transaction((trx) => auditProjector.createTables(trx, { audit: table }));
      await knex(table).insert(
        rows.map(({ record: r, content, prevHash, hash }) => ({
          position: r.position,
          event_id: r.eventId,
          stream: r.stream,
          type: r.type,
          revision: String(r.revision),
          recorded_at: r.recordedAt,
          actor_id: r.actorId,
          actor_kind: r.actorKind,
          action: r.action,
          correlation_id: r.correlationId,
          causation_id: r.causationId,
          summary: r.summary,
          content,
          prev_hash: prevHash,
          hash,
        })),
      );
    });

    after(async () => {
      await opened?.close();
    });

    it('given texts holding the separators, empty texts beside nulls and a revision past 2^53, then every page size reads each row exactly', async () => {
      for (const batchSize of [1, 2, 3, 1000]) {
        const read: AuditChainRow[] = [];
        for await (const page of readAuditChain(opened.db.knex, table, {}, batchSize)) read.push(...page);
        expect(read, `pages of ${batchSize}`).to.deep.equal(rows);
      }
    });

    it('then the export writes each row’s hashes and its record’s canonical JSON, and verifies offline', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const writer = new AuditExportWriter(privateKey, { from: null, to: null });
      let text = writer.header(GENESIS_HASH);
      for await (const page of readAuditChain(opened.db.knex, table, {}, 2)) text += writer.page(page);
      text += writer.checkpoint();
      const lines = text.split('\n').filter((line) => line !== '');
      expect(lines.slice(1, -1)).to.deep.equal(rows.map(lineOf));
      expect(verifyExport(lines, publicKey)).to.deep.include({ ok: true, rows: rows.length, lastHash: rows.at(-1)!.hash });
    });
  });
}
