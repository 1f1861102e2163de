// `audit verify --file` reads the export a megabyte at a time: the same verdicts as verifying the lines in memory,
// whatever chunk a line falls across, with CR LF line ends too; and `writeAll` writes what `page` writes.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { AuditExportWriter, verifyExport, verifyExportFile } from '../../commands/audit-export.js';
import { auditRowHash, canonicalJson, GENESIS_HASH } from '../../projections/audit-trail.js';
import { type AuditChainRow } from '../../projections/audit-chain-read.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');

/** A chain of rows whose contents are about a kilobyte each, so that 3,000 of them span several megabytes. */
function chain(count: number): AuditChainRow[] {
  const rows: AuditChainRow[] = [];
  let prevHash = GENESIS_HASH;
  for (let i = 1; i <= count; i++) {
    const eventId = `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`;
    const record = {
      position: `${i.toString(16).padStart(16, '0')}-0000000000000001`,
      eventId,
      stream: `deployment-${i % 7}`,
      type: 'DeploymentScaled',
      revision: i,
      recordedAt: new Date(Date.UTC(2026, 2, 1, 14, 0, 0, i)).toISOString(),
      actorId: 'operator-1',
      actorKind: 'user',
      action: 'deployment scaled',
      correlationId: `corr-${i}`,
      causationId: null,
      summary: `scaled to ${i} ✓`,
    };
    const content = canonicalJson({ data: { replicas: i, note: 'x'.repeat(900 + (i % 50)) }, id: eventId });
    const hash = auditRowHash(prevHash, record, content);
    rows.push({ record, content, prevHash, hash });
    prevHash = hash;
  }
  return rows;
}

/** A piece `writeAll` wrote, as text. */
const textOf = (piece: string | Uint8Array) => (typeof piece === 'string' ? piece : Buffer.from(piece).toString('utf8'));

async function* pagesOf(rows: AuditChainRow[], size: number): AsyncGenerator<AuditChainRow[]> {
  for (let at = 0; at < rows.length; at += size) yield rows.slice(at, at + size);
}

describe('audit export files', function () {
  this.timeout(30_000);
  let dir: string;
  const rows = chain(3000);
  let text: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sentinel-audit-file-'));
    const writer = new AuditExportWriter(privateKey, { from: null, to: null }, () => new Date('2026-03-02T00:00:00.000Z'));
    const written: string[] = [];
    const count = await writer.writeAll(pagesOf(rows, 700), async (piece) => void written.push(textOf(piece)), () => Promise.reject(new Error('not empty')));
    expect(count).to.equal(rows.length);
    text = written.join('');
  });

  after(() => rm(dir, { recursive: true, force: true }));

  it('given what writeAll wrote, then it is the header, the pages and the checkpoint that page by page writes', () => {
    const writer = new AuditExportWriter(privateKey, { from: null, to: null }, () => new Date('2026-03-02T00:00:00.000Z'));
    const byPage = writer.header(GENESIS_HASH) + writer.page(rows.slice(0, 1500)) + writer.page(rows.slice(1500));
    expect(text.startsWith(byPage)).to.equal(true);
    expect(JSON.parse(text.slice(byPage.length))).to.deep.include({ kind: 'checkpoint', rows: 3000, lastHash: rows.at(-1)!.hash });
  });

  it('given a window without rows, then writeAll links the header to the hash it is given', async () => {
    const writer = new AuditExportWriter(privateKey, { from: null, to: null });
    const written: string[] = [];
    expect(await writer.writeAll(pagesOf([], 10), async (piece) => void written.push(textOf(piece)), () => Promise.resolve('ab'.repeat(32)))).to.equal(0);
    expect(JSON.parse(written[0]!)).to.deep.include({ kind: 'header', prevHash: 'ab'.repeat(32) });
    expect(verifyExport(written.join('').split('\n').filter((line) => line !== ''), publicKey)).to.deep.include({ ok: true, rows: 0 });
  });

  it('given the export in a file of several megabytes, then the file verifies as its lines do in memory', async () => {
    const file = path.join(dir, 'whole.jsonl');
    await writeFile(file, text);
    expect(text.length).to.be.greaterThan(3 << 20);
    const inMemory = verifyExport(text.split('\n').filter((line) => line !== ''), publicKey);
    expect(inMemory).to.deep.include({ ok: true, rows: 3000 });
    expect(await verifyExportFile(file, publicKey)).to.deep.equal(inMemory);
  });

  it('given CR LF line ends, or no line end after the checkpoint, then the file still verifies', async () => {
    const crlf = path.join(dir, 'crlf.jsonl');
    await writeFile(crlf, text.replaceAll('\n', '\r\n'));
    expect(await verifyExportFile(crlf, publicKey)).to.deep.include({ ok: true, rows: 3000 });
    const unterminated = path.join(dir, 'unterminated.jsonl');
    await writeFile(unterminated, text.trimEnd());
    expect(await verifyExportFile(unterminated, publicKey)).to.deep.include({ ok: true, rows: 3000 });
  });

  it('given a row edited past the first megabyte, then the file names its line, as the lines in memory do', async () => {
    const lines = text.split('\n');
    const at = 2000;
    const row = JSON.parse(lines[at]!) as { summary: string; position: string };
    lines[at] = JSON.stringify({ ...row, summary: 'edited' });
    const file = path.join(dir, 'edited.jsonl');
    await writeFile(file, lines.join('\n'));
    const result = await verifyExportFile(file, publicKey);
    expect(result).to.deep.equal(verifyExport(lines.filter((line) => line !== ''), publicKey));
    expect(result).to.deep.include({ ok: false, rows: at - 1 });
    expect(result).to.have.nested.property('problem.line', at + 1);
    expect(result).to.have.nested.property('problem.position', row.position);
  });

  describe('hashed in worker threads', () => {
    /** The same file hashed on this thread alone: the verdict the threaded reading must give. */
    const alone = (file: string) => verifyExportFile(file, publicKey, { threads: 1 });

    it('given the export whole, then the threads find every row, whatever the stretches they are sent', async () => {
      const file = path.join(dir, 'threaded.jsonl');
      await writeFile(file, text);
      for (const [threads, chunkBytes] of [[2, 777], [3, 4096], [2, 100_000], [4, 1 << 20]] as const) {
        expect(await verifyExportFile(file, publicKey, { threads, chunkBytes })).to.deep.equal(await alone(file));
      }
      expect(await alone(file)).to.deep.include({ ok: true, rows: 3000 });
    });

    // Each case changes the lines of the export one way; the threaded verdict (and the problem it names) must be the
    // one the single thread gives, for stretches of any size and any number of threads.
    const changes: Record<string, (lines: string[], at: number) => string> = {
      'a row edited through JSON': (lines, at) => {
        lines[at] = JSON.stringify({ ...(JSON.parse(lines[at]!) as object), summary: 'edited' });
        return lines.join('\n');
      },
      'a byte of a content changed in place': (lines, at) => {
        lines[at] = lines[at]!.replace('"note":"x', '"note":"y');
        return lines.join('\n');
      },
      'a row deleted': (lines, at) => lines.filter((_, i) => i !== at).join('\n'),
      'two rows swapped': (lines, at) => {
        [lines[at], lines[at + 1]] = [lines[at + 1]!, lines[at]!];
        return lines.join('\n');
      },
      'a row repeated': (lines, at) => [...lines.slice(0, at + 1), lines[at]!, ...lines.slice(at + 1)].join('\n'),
      'a blank line among the rows': (lines, at) => [...lines.slice(0, at), '', ...lines.slice(at)].join('\n'),
      'CR LF line ends': (lines) => lines.join('\r\n'),
      'the checkpoint cut off': (lines) => lines.slice(0, -2).join('\n'),
      'a header among the rows': (lines, at) => [...lines.slice(0, at), lines[0]!, ...lines.slice(at)].join('\n'),
    };
    let seed = 19;
    /** A number below `n`, from a fixed sequence, so that a failure repeats. */
    const below = (n: number) => {
      seed = (seed * 48_271) % 2_147_483_647;
      return seed % n;
    };

    for (const [change, apply] of Object.entries(changes)) {
      it(`given ${change}, then the threads give the verdict the single thread gives`, async () => {
        const file = path.join(dir, 'changed.jsonl');
        for (let round = 0; round < 3; round++) {
          const at = 1 + below(2998);
          await writeFile(file, apply(text.split('\n'), at));
          const expected = await alone(file);
          // Only line ends and blank lines leave the chain whole.
          expect(expected.ok, change).to.equal(change === 'CR LF line ends' || change === 'a blank line among the rows');
          const reading = { threads: 2 + below(3), chunkBytes: 500 + below(300_000) };
          expect(await verifyExportFile(file, publicKey, reading), `row ${at}, ${JSON.stringify(reading)}`).to.deep.equal(expected);
        }
      });
    }
  });

  it('given a file that cannot be read, then it throws rather than answering', async () => {
    let thrown: unknown;
    await verifyExportFile(path.join(dir, 'missing.jsonl'), publicKey).catch((error: unknown) => (thrown = error));
    expect(thrown).to.have.property('code', 'ENOENT');
  });
});
