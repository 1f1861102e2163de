// The anchored audit export, offline: a chain written with a signed checkpoint verifies whole; an edited, deleted or
// reordered row is caught and named; a tail rewritten with recomputed hashes, or a file cut short, is caught by the
// checkpoint; a checkpoint signed with another key, or altered, does not verify; a stored chain that is already
// broken is refused, never signed.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { AuditExportWriter, signingKeyFrom, SigningKeyError, verifyExport, type ExportVerification } from '../../commands/audit-export.js';
import { auditRowHash, canonicalJson, GENESIS_HASH, type AuditRecord } from '../../projections/audit-trail.js';
import { type AuditChainRow } from '../../projections/audit-chain-read.js';

const position = (i: number) => `${i.toString(16).padStart(16, '0')}-0000000000000001`;

function record(i: number): AuditRecord {
  const eventId = `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`;
  return {
    position: position(i),
    eventId,
    stream: `deployment-${i % 3}`,
    type: 'DeploymentScaled',
    revision: i,
    recordedAt: new Date(Date.UTC(2026, 2, 1, 14, 0, i)).toISOString(),
    actorId: 'operator-1',
    actorKind: 'user',
    action: 'deployment.scale',
    correlationId: `corr-${i}`,
    causationId: null,
    summary: `scaled to ${i}`,
    content: { data: { replicas: i }, id: eventId, type: 'DeploymentScaled' },
  };
}

/** A stored chain of `count` rows after `prevHash`. */
function chain(count: number, prevHash = GENESIS_HASH, start = 1): AuditChainRow[] {
  const rows: AuditChainRow[] = [];
  let prev = prevHash;
  for (let i = start; i < start + count; i++) {
    const { content, ...head } = record(i);
    const text = canonicalJson(content);
    const hash = auditRowHash(prev, head, text);
    rows.push({ record: head, content: text, prevHash: prev, hash });
    prev = hash;
  }
  return rows;
}

function exportOf(rows: AuditChainRow[], key: KeyObject, prevHash = GENESIS_HASH): string[] {
  const writer = new AuditExportWriter(key, { from: '2026-03-01T00:00:00Z', to: null });
  const text = writer.header(prevHash) + writer.page(rows.slice(0, 2)) + writer.page(rows.slice(2)) + writer.checkpoint();
  return text.split('\n').filter((line) => line !== '');
}

const failed = (result: ExportVerification) => {
  expect(result.ok, JSON.stringify(result)).to.equal(false);
  return (result as Extract<ExportVerification, { ok: false }>).problem;
};

/** Recomputes every row's hash from line `from` on, as someone rewriting the tail would. */
function rehash(lines: string[], from: number): string[] {
  const out = [...lines];
  let prev = (JSON.parse(out[from - 1]!) as { hash?: string; prevHash: string }).hash ?? (JSON.parse(out[from - 1]!) as { prevHash: string }).prevHash;
  for (let i = from; i < out.length - 1; i++) {
    const { kind: _kind, prevHash: _prev, hash: _hash, ...rest } = JSON.parse(out[i]!) as AuditRecord & { kind: string; prevHash: string; hash: string };
    const hash = auditRowHash(prev, rest);
    out[i] = JSON.stringify({ kind: 'row', ...rest, prevHash: prev, hash });
    prev = hash;
  }
  return out;
}

describe('audit export: signed checkpoint and offline verification', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const rows = chain(6);
  const lines = exportOf(rows, privateKey);

  it('given an untouched export, then it verifies with the signer’s public key and with the key it names', () => {
    expect(lines).to.have.length(8);
    const given = verifyExport(lines, publicKey);
    expect(given).to.deep.include({ ok: true, rows: 6, lastHash: rows[5]!.hash, key: 'given', firstPosition: position(1), lastPosition: position(6) });
    expect(verifyExport(lines)).to.deep.include({ ok: true, rows: 6, key: 'embedded' });
  });

  it('given a window that starts mid-chain, then its first row links to the hash the header and checkpoint carry', () => {
    const later = chain(3, rows[5]!.hash, 7);
    expect(verifyExport(exportOf(later, privateKey, rows[5]!.hash), publicKey)).to.deep.include({ ok: true, rows: 3 });
  });

  it('when a row is edited, then that row is named', () => {
    const edited = [...lines];
    edited[3] = edited[3]!.replace('"scaled to 3"', '"scaled to 30"');
    expect(failed(verifyExport(edited, publicKey))).to.deep.include({ line: 4, position: position(3), reason: 'does not match its hash (the row was edited)' });
  });

  it('when a row is deleted, then the row after the gap is named', () => {
    const deleted = lines.filter((_, i) => i !== 3);
    const problem = failed(verifyExport(deleted, publicKey));
    expect(problem).to.include({ line: 4, position: position(4) });
    expect(problem.reason).to.match(/does not link to the row before it/);
  });

  it('when two rows are swapped, then the first row out of its place is named', () => {
    const reordered = [...lines];
    [reordered[2], reordered[3]] = [reordered[3]!, reordered[2]!];
    const problem = failed(verifyExport(reordered, publicKey));
    expect(problem).to.include({ line: 3, position: position(3) });
    expect(problem.reason).to.match(/does not link to the row before it \(a row before it was deleted, inserted or moved\)/);
  });

  it('when a row is moved back with its link intact, then its position names it out of log order', () => {
    // Row 1 repeated after row 2 with row 2's hash as its link: only the order of positions shows the move.
    const moved = [...lines];
    const row2 = JSON.parse(lines[2]!) as { hash: string };
    const { kind: _kind, prevHash: _prev, hash: _hash, ...first } = JSON.parse(lines[1]!) as AuditRecord & { kind: string; prevHash: string; hash: string };
    moved.splice(3, 0, JSON.stringify({ kind: 'row', ...first, prevHash: row2.hash, hash: auditRowHash(row2.hash, first) }));
    const problem = failed(verifyExport(moved, publicKey));
    expect(problem).to.include({ line: 4, position: position(1) });
    expect(problem.reason).to.match(/out of log order/);
  });

  it('when the tail is rewritten and its hashes recomputed, then the chain holds but the signed checkpoint catches it', () => {
    const tampered = [...lines];
    tampered[4] = tampered[4]!.replace('"scaled to 4"', '"scaled to 40"');
    const rewritten = rehash(tampered, 4);
    const problem = failed(verifyExport(rewritten, publicKey));
    expect(problem.reason).to.match(/last hash is not the one the checkpoint signed/);
    expect(problem.line).to.equal(8);
  });

  it('when the last rows are cut off (or the checkpoint with them), then it is caught', () => {
    const cut = [...lines.slice(0, 6), lines[7]!];
    expect(failed(verifyExport(cut, publicKey)).reason).to.match(/checkpoint signed 6 rows .* the file holds 5/);
    expect(failed(verifyExport(lines.slice(0, 7), publicKey)).reason).to.match(/no signed checkpoint/);
  });

  it('when the checkpoint is altered, or re-signed with another key, then it does not verify against the signer’s key', () => {
    const altered = [...lines];
    altered[7] = altered[7]!.replace(/"rows":6/, '"rows":5');
    expect(failed(verifyExport(altered, publicKey)).reason).to.match(/signature does not verify/);
    const forged = exportOf(chain(6), other.privateKey);
    expect(failed(verifyExport(forged, publicKey)).reason).to.match(/signed with key .* not the key given/);
  });

  it('refuses to sign a stored chain that is already broken, naming the row', () => {
    const broken = chain(3);
    broken[1] = { ...broken[1]!, record: { ...broken[1]!.record, summary: 'edited in the table' } };
    const writer = new AuditExportWriter(privateKey, { from: null, to: null });
    writer.header(GENESIS_HASH);
    expect(() => writer.page(broken)).to.throw(/position 0000000000000002-0000000000000001 .* does not match its hash/);
  });

  it('refuses stored content whose text is not the canonical text it was hashed over, even as the same JSON value', () => {
    for (const content of [(text: string) => text.replace('{', '{ '), (text: string) => text.replace('"data":{"replicas":2},', '') + ',"data":{"replicas":2}']) {
      const stored = chain(3);
      stored[1] = { ...stored[1]!, content: content(stored[1]!.content) };
      const writer = new AuditExportWriter(privateKey, { from: null, to: null });
      writer.header(GENESIS_HASH);
      expect(() => writer.page(stored)).to.throw(/position 0000000000000002-0000000000000001 .* does not match its hash/);
    }
  });

  describe('given an export written before the content was stored as text (test/fixtures/audit/export-v1.jsonl)', () => {
    // The fixture's signer: an Ed25519 key from a fixed seed (PKCS#8 DER is a fixed prefix and the 32-byte seed).
    const seed = createHash('sha256').update('sentinel audit export fixture').digest();
    const fixtureKey = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
    const fixture = readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/audit/export-v1.jsonl'), 'utf8');
    const fixtureLines = fixture.split('\n').filter((line) => line !== '');

    it('then it still verifies, with the signer’s key', () => {
      expect(verifyExport(fixtureLines, createPublicKey(fixtureKey))).to.deep.include({ ok: true, rows: 3, key: 'given' });
    });

    it('then the rows it holds, read back as stored text, are written again as version 2: the same members, verified', () => {
      const rows: AuditChainRow[] = fixtureLines.slice(1, -1).map((line) => {
        const { kind: _kind, prevHash, hash, content, ...head } = JSON.parse(line) as AuditRecord & { kind: string; prevHash: string; hash: string };
        return { record: head, content: canonicalJson(content), prevHash, hash };
      });
      const writer = new AuditExportWriter(fixtureKey, { from: '2026-03-01T00:00:00Z', to: null }, () => new Date('2026-03-02T00:00:00.000Z'));
      const lines = (writer.header(GENESIS_HASH) + writer.page(rows.slice(0, 2)) + writer.page(rows.slice(2)) + writer.checkpoint()).split('\n').filter((line) => line !== '');
      expect(JSON.parse(lines[0]!)).to.deep.include({ version: 2 });
      expect(lines.slice(1, -1).map((line) => JSON.parse(line) as unknown)).to.deep.equal(fixtureLines.slice(1, -1).map((line) => JSON.parse(line) as unknown));
      expect(lines.slice(1, -1)).to.not.deep.equal(fixtureLines.slice(1, -1));
      expect(verifyExport(lines, createPublicKey(fixtureKey))).to.deep.include({ ok: true, rows: 3, key: 'given' });
    });
  });

  it('refuses a signing key that is not an Ed25519 private key, saying which', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => signingKeyFrom(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'key.pem')).to.throw(SigningKeyError, /rsa key.*Ed25519/);
    expect(() => signingKeyFrom('not a key', 'key.pem')).to.throw(SigningKeyError, /key\.pem holds no private key/);
  });
});
