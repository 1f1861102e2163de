// A row's hash is SHA-256 of the previous hash, a line break and the canonical JSON of its record, whatever text its
// members hold: the shortcut that writes the members one by one must give exactly those bytes.
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { auditRowHash, canonicalJson, GENESIS_HASH, type AuditRecord } from '../../projections/audit-trail.js';

/** The definition, written out: what stored chains were hashed over. */
function definedHash(prevHash: string, record: AuditRecord): string {
  return createHash('sha256').update(`${prevHash}\n${canonicalJson(record)}`).digest('hex');
}

/** Text that JSON escapes or that sorts awkwardly: quotes, backslashes, controls, lone and paired surrogates. */
const awkward = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('"', '\\', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udfff', '\u{1F600}', 'tab\there', 'é'),
);
const orNull = fc.option(awkward, { nil: null });

const record: fc.Arbitrary<AuditRecord> = fc.record({
  position: awkward,
  eventId: awkward,
  stream: awkward,
  type: awkward,
  revision: fc.oneof(fc.integer(), fc.double(), awkward),
  recordedAt: awkward,
  actorId: orNull,
  actorKind: orNull,
  action: awkward,
  correlationId: orNull,
  causationId: orNull,
  summary: awkward,
  content: fc.jsonValue({ maxDepth: 2 }),
});

describe('audit row hash', () => {
  it('given any record, then the hash is SHA-256 of the previous hash and the canonical JSON of the record', () => {
    fc.assert(
      fc.property(record, (given) => {
        expect(auditRowHash(GENESIS_HASH, given)).to.equal(definedHash(GENESIS_HASH, given));
        const { content, ...head } = given;
        expect(auditRowHash('f'.repeat(64), head, canonicalJson(content))).to.equal(definedHash('f'.repeat(64), given));
      }),
      { numRuns: 1000 },
    );
  });
});
