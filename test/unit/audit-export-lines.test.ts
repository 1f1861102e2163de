// The export's row lines, written without JSON.stringify where no member needs escaping and read back without parsing
// where the line is laid out as written: the same bytes and the same verdicts as writing and reading them whole.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { AuditExportWriter, verifyExport } from '../../commands/audit-export.js';
import { auditRowHash, canonicalJson, chainText, GENESIS_HASH, type AuditRecordHead, type AuditRecordTexts } from '../../projections/audit-trail.js';
import { type AuditChainRow } from '../../projections/audit-chain-read.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');

function head(i: number, members: Partial<AuditRecordHead> = {}): AuditRecordHead {
  return {
    position: `${i.toString(16).padStart(16, '0')}-0000000000000001`,
    eventId: `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`,
    stream: 'deployment-d-1',
    type: 'DeploymentScaled',
    revision: i,
    recordedAt: '2026-03-01T14:00:00.000Z',
    actorId: 'alice',
    actorKind: 'user',
    action: 'deployment scaled',
    correlationId: 'realcorr',
    causationId: null,
    summary: `row ${i}`,
    ...members,
  };
}

/** Rows chained from the genesis hash, each with its content text as given. */
function chain(rows: { record: AuditRecordHead; content: string }[]): AuditChainRow[] {
  let prevHash = GENESIS_HASH;
  return rows.map(({ record, content }) => {
    const hash = auditRowHash(prevHash, record, content);
    const row = { record, content, prevHash, hash };
    prevHash = hash;
    return row;
  });
}

/** A row's line as version 2 lays it out: its hashes, then the record's canonical JSON after its opening brace. */
function lineOf({ record, content, prevHash, hash }: AuditChainRow): string {
  return `${JSON.stringify({ kind: 'row', prevHash, hash }).slice(0, -1)},${canonicalJson({ ...record, content: JSON.parse(content) as unknown })!.slice(1)}`;
}

function exported(rows: AuditChainRow[]): string[] {
  const writer = new AuditExportWriter(privateKey, { from: null, to: null });
  const text = writer.header(GENESIS_HASH) + writer.page(rows) + writer.checkpoint();
  return text.split('\n').filter((line) => line !== '');
}

describe('audit export row lines', () => {
  it('given each member’s JSON text, then the text the fast paths hash is the one the chain’s hash is taken over', () => {
    const record = head(7, { actorId: null, summary: 'scaled from 2 to 3' });
    const content = '{"from":2,"to":3}';
    const texts = Object.fromEntries(Object.entries(record).map(([name, value]) => [name, JSON.stringify(value)])) as AuditRecordTexts;
    const hashed = createHash('sha256').update(chainText(GENESIS_HASH, texts, content)).digest('hex');
    expect(hashed).to.equal(auditRowHash(GENESIS_HASH, record, content));
  });

  it('given members JSON escapes (a lone surrogate, a control character, a line separator), then each line holds the record’s canonical JSON and verifies', () => {
    const rows = chain([
      { record: head(1, { summary: 'half a pair \ud83d here' }), content: '{"n":1}' },
      { record: head(2, { actorId: 'tab\there', correlationId: '\u2028' }), content: '{"n":2}' },
      { record: head(3, { stream: 'deployment-\u{1F600}', causationId: 'c' }), content: '{"n":3}' },
    ]);
    const lines = exported(rows);
    expect(lines.slice(1, -1)).to.deep.equal(rows.map(lineOf));
    expect(verifyExport(lines, publicKey)).to.deep.include({ ok: true, rows: 3 });
  });

  it('refuses stored members edited so that a quote moves text between them and the content, even when their texts run together as the hashed text did', () => {
    const [row] = chain([{ record: head(1), content: '{"a":1,"correlationId":"q"}' }]);
    // Written between quotes as they stand, the edited correlation id and content make the very text hashed before.
    const edited: AuditChainRow = { ...row!, record: { ...row!.record, correlationId: 'q"},"correlationId":"realcorr' }, content: '{"a":1' };
    const writer = new AuditExportWriter(privateKey, { from: null, to: null });
    writer.header(GENESIS_HASH);
    expect(() => writer.page([edited])).to.throw(/position 0000000000000001-0000000000000001 .* does not match its hash/);
  });

  it('given a line whose members are written with other escapes than JSON.stringify uses, then it still verifies, and an edit to it is still caught', () => {
    const rows = chain([
      { record: head(1), content: '{"n":1}' },
      { record: head(2, { summary: 'said "no"' }), content: '{"n":2}' },
    ]);
    const lines = exported(rows);
    const escaped = [...lines];
    escaped[1] = lines[1]!.replace('"actorId":"alice"', '"actorId":"\\u0061lice"');
    escaped[2] = lines[2]!.replace('"summary":"said \\"no\\""', '"summary":"said \\u0022no\\u0022"');
    expect(escaped).to.not.deep.equal(lines);
    expect(verifyExport(escaped, publicKey)).to.deep.include({ ok: true, rows: 2 });
    const edited = [...escaped];
    edited[2] = escaped[2]!.replace('\\u0022no\\u0022', '\\u0022yes\\u0022');
    expect(verifyExport(edited, publicKey)).to.deep.include({ ok: false });
    expect((verifyExport(edited, publicKey) as { problem: { line: number; reason: string } }).problem).to.include({ line: 3, reason: 'does not match its hash (the row was edited)' });
  });
});
