// Anchors of the live audit trail (PGlite, and PostgreSQL with TEST_DATABASE_URL): a signed anchor of the chain's
// head, appended to a file, holds while the chain is untouched and grows; a chain rewritten with its hashes recomputed
// verifies on its own but not against the anchor; rows removed before it, or an altered anchor, are caught too; and
// GET /audit/verify answers the same through the route table.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { anchorOf, FileAnchorLog, lastAnchor, verifyAgainstAnchor, writeAnchor, type AnchoredVerification } from '../../commands/audit-export-anchor.js';
import type { Position } from '../../domain/event-store.js';
import { auditProjector, auditRowHash } from '../../projections/audit-trail.js';
import { readAuditChain, verifyAuditTrail } from '../../projections/audit-chain-read.js';
import { queryRoutes } from '../../projections/http/query-routes.js';
import { allVisible, anEvent, settled } from '../support/events.js';
import { eventually } from '../support/eventually.js';
import { backends } from '../support/projection-backends.js';
import { startTestApi } from '../support/sentinel-api.js';

for (const backend of backends) {
  describe(`audit trail anchors on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<(typeof backends)[number]['open']>> | undefined;
    let store: PostgresEventStore;
    let dir: string;
    let file: string;
    let table: string;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');

    /** Projects every event not yet in the trail. */
    async function project(): Promise<void> {
      const { db } = opened!;
      await allVisible(store);
      const head = (await db.knex(table).orderBy('position', 'desc').first('position')) as { position: string } | undefined;
      const page = await store.readAll({ after: head?.position, limit: 1000 });
      if (page.events.length > 0) await db.knex.transaction((trx) => auditProjector.apply(page.events, trx, { audit: table }));
    }

    async function append(count: number): Promise<void> {
      let last: Position | undefined;
      for (let i = 0; i < count; i++) last = (await store.append(`deployment-${randomUUID()}`, [anEvent('DeploymentScaled', { replicas: i })])).position;
      if (last !== undefined) await settled(store, last);
      await project();
    }

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        return this.skip();
      }
      opened = await backend.open();
      store = await PostgresEventStore.open(opened.db);
      table = `audit_anchor_${randomUUID().slice(0, 8)}`;
      await opened.db.knex.transaction((trx) => auditProjector.createTables(trx, { audit: table }));
      dir = await mkdtemp(path.join(tmpdir(), 'sentinel-anchor-'));
      file = path.join(dir, 'anchors.jsonl');
    });
    after(async () => {
      await store?.close();
      await opened?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('given an empty trail, then there is nothing to anchor, and verification has no anchor to check', async () => {
      expect(await anchorOf(opened!.db.knex, table, privateKey)).to.equal(undefined);
      expect(await lastAnchor(file)).to.equal(undefined);
      expect(await verifyAgainstAnchor(opened!.db.knex, table, undefined)).to.deep.equal({ ok: true, rows: 0 });
    });

    it('given an anchor written, then the chain holds it, also after it grows', async () => {
      await append(6);
      await writeAnchor(file, (await anchorOf(opened!.db.knex, table, privateKey))!);
      await append(2);
      const anchor = (await lastAnchor(file))!;
      expect(anchor).to.include({ rows: 6 });
      const verified = await verifyAgainstAnchor(opened!.db.knex, table, anchor, publicKey);
      expect(verified).to.deep.include({ ok: true, rows: 8 });
      expect(verified.anchor).to.include({ ok: true, rows: 6, position: anchor.lastPosition });
    });

    it('when the chain is rewritten with its hashes recomputed, then it verifies alone but not against the anchor', async () => {
      const { knex } = opened!.db;
      const rows = [];
      for await (const page of readAuditChain(knex, table, {})) rows.push(...page);
      let prev = rows[1]!.prevHash;
      for (const [i, row] of rows.entries()) {
        if (i < 1) continue;
        const record = i === 1 ? { ...row.record, summary: `${row.record.summary} (rewritten)` } : row.record;
        const hash = auditRowHash(prev, record, row.content);
        await knex(table).where({ position: record.position }).update({ summary: record.summary, prev_hash: prev, hash });
        prev = hash;
      }
      expect(await verifyAuditTrail(knex, table)).to.deep.equal({ ok: true, rows: 8 });
      const verified = await verifyAgainstAnchor(knex, table, (await lastAnchor(file))!, publicKey);
      expect(verified.ok).to.equal(false);
      expect(verified.anchor!.reason).to.match(/no longer holds the anchored hash: the chain up to it was rewritten/);

      // The route answers the same, from the same file.
      const route = queryRoutes({
        knex,
        runtime: { tables: async () => ({ audit: table }) } as never,
        telemetry: {} as never,
        auditAnchors: { log: new FileAnchorLog(file), publicKey },
      }).find((r) => r.path === '/audit/verify')!;
      const reply = (await route.handle({} as never)) as { status: number; body: AnchoredVerification };
      expect(reply.status).to.equal(200);
      expect(reply.body).to.deep.include({ ok: false, rows: 8 });
      expect(reply.body.anchor!.ok).to.equal(false);
    });

    it('when rows before the anchor are removed, or the anchor is altered or signed with another key, then it is caught', async () => {
      const { knex } = opened!.db;
      const anchor = (await anchorOf(knex, table, privateKey))!;
      expect((await verifyAgainstAnchor(knex, table, anchor, publicKey)).ok).to.equal(true);

      const other = generateKeyPairSync('ed25519');
      const forged = (await anchorOf(knex, table, other.privateKey))!;
      expect((await verifyAgainstAnchor(knex, table, forged, publicKey)).anchor!.reason).to.match(/signed with key .* not the key given/);
      expect((await verifyAgainstAnchor(knex, table, { ...anchor, rows: anchor.rows + 1 }, publicKey)).anchor!.reason).to.match(/signature does not verify/);

      const first = (await knex(table).orderBy('position').first('position')) as { position: string };
      await knex(table).where({ position: first.position }).delete();
      const verified = await verifyAgainstAnchor(knex, table, anchor, publicKey);
      expect(verified.ok).to.equal(false);
      expect(verified.anchor!.reason).to.match(/7 rows lie up to .*, the anchor counted 8/);
    });

    it('reads the last of several anchors, one JSON line each', async () => {
      const before = (await readFile(file, 'utf8')).trim().split('\n').length;
      await writeFile(file, `${(await readFile(file, 'utf8')).trimEnd()}\n`);
      await writeAnchor(file, (await anchorOf(opened!.db.knex, table, privateKey))!);
      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      expect(lines).to.have.length(before + 1);
      expect((await lastAnchor(file))!.lastHash).to.equal((JSON.parse(lines.at(-1)!) as { lastHash: string }).lastHash);
    });
  });
}

describe('audit trail anchors through the server (PGlite)', function () {
  this.timeout(60_000);

  it('the projector role appends signed anchors to AUDIT_ANCHOR_FILE, and GET /audit/verify checks the chain against the last', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sentinel-anchor-api-'));
    const { privateKey } = generateKeyPairSync('ed25519');
    const keyFile = path.join(dir, 'audit-signing.pem');
    const file = path.join(dir, 'anchors.jsonl');
    await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const api = await startTestApi(undefined, { AUDIT_SIGNING_KEY_FILE: keyFile, AUDIT_ANCHOR_FILE: file, AUDIT_ANCHOR_INTERVAL_SECONDS: '1' });
    try {
      const head = await api.head();
      const anchored = await eventually('an anchor of the head', () => lastAnchor(file), (anchor) => anchor?.lastPosition === head, 15_000);
      const reply = await api.request<AnchoredVerification>('get', '/audit/verify', { as: 'viewer' });
      expect(reply.status).to.equal(200);
      expect(reply.body).to.deep.include({ ok: true });
      expect(reply.body.anchor).to.include({ ok: true, position: anchored!.lastPosition, hash: anchored!.lastHash });
    } finally {
      await api.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
