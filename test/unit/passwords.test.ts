// Password hashing: scrypt round trips, salts, Unicode normalisation, refusal of stored forms it cannot read.
import { expect } from 'chai';
import { hashPassword, verifyDecoy, verifyPassword } from '../../adapters/auth/passwords.js';

describe('passwords', function () {
  // Each hash or verification is one deliberately slow scrypt run.
  this.timeout(20_000);

  const password = 'correct horse battery staple';
  let stored: string;
  before(async () => {
    stored = await hashPassword(password);
  });

  it('given a hash, then it names scrypt and its parameters, a salt and a 32-byte key', () => {
    const [scheme, n, r, p, salt, key, ...rest] = stored.split('$');
    expect([scheme, n, r, p]).to.deep.equal(['scrypt', '32768', '8', '1']);
    expect(Buffer.from(salt!, 'base64')).to.have.length(16);
    expect(Buffer.from(key!, 'base64')).to.have.length(32);
    expect(rest).to.deep.equal([]);
    expect(stored).to.not.include(password);
  });

  it('given the right password, then verify is true', async () => {
    expect(await verifyPassword(password, stored)).to.equal(true);
  });

  it('given a wrong password, then verify is false', async () => {
    expect(await verifyPassword('correct horse battery stapl', stored)).to.equal(false);
    expect(await verifyPassword('', stored)).to.equal(false);
  });

  it('given the same password hashed twice, then the hashes differ (salted) and both verify', async () => {
    const again = await hashPassword(password);
    expect(again).to.not.equal(stored);
    expect(again.split('$')[4]).to.not.equal(stored.split('$')[4]);
    expect(await verifyPassword(password, again)).to.equal(true);
  });

  it('given a password with a composed é, when verified in decomposed form, then true (NFKC)', async () => {
    const composed = 'caf\u00e9-passphrase';
    const decomposed = 'cafe\u0301-passphrase';
    expect(composed).to.not.equal(decomposed);
    const hash = await hashPassword(composed);
    expect(await verifyPassword(decomposed, hash)).to.equal(true);
    // Compatibility forms fold too: the ligature "ﬁ" is "fi".
    expect(await verifyPassword('\ufb01sh', await hashPassword('fish'))).to.equal(true);
  });

  const malformed: [string, string][] = [
    ['an empty string', ''],
    ['a plain-text password', 'correct horse battery staple'],
    ['another scheme', 'bcrypt$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5'],
    ['a missing salt and key', 'scrypt$32768$8$1$$'],
    ['a missing key', 'scrypt$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA=='],
    ['a key of the wrong length', 'scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5'],
  ];
  for (const [what, hash] of malformed) {
    it(`given ${what} as the stored hash, then verify is false`, async () => {
      expect(await verifyPassword(password, hash)).to.equal(false);
    });
  }

  it('given a stored hash with parameters scrypt cannot use, then verify is false, not an exception', async () => {
    for (const hash of ['scrypt$abc$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5', 'scrypt$1000$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5']) {
      let answer: unknown;
      try {
        answer = await verifyPassword(password, hash);
      } catch (error) {
        answer = error;
      }
      expect(answer, hash).to.equal(false);
    }
  });

  it('given any password, then verifyDecoy resolves false', async () => {
    expect(await verifyDecoy(password)).to.equal(false);
    expect(await verifyDecoy('')).to.equal(false);
  });
});
