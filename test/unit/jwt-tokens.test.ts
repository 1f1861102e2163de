// JwtTokens: what it issues verifies, and every forged, foreign, expired or incomplete token is Unauthenticated.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { decodeJwt, decodeProtectedHeader, SignJWT, UnsecuredJWT, type JWTPayload } from 'jose';
import { JwtTokens } from '../../adapters/auth/jwt-tokens.js';
import { Unauthenticated, type TokenType } from '../../commands/access.js';
import { rejection } from '../support/rejection.js';

const secret = new TextEncoder().encode('a-test-signing-secret-of-at-least-32-bytes!');
const otherSecret = new TextEncoder().encode('another-signing-secret-of-at-least-32-bytes');
const tokens = new JwtTokens({ secret, accessTtlSeconds: 900, refreshTtlSeconds: 7 * 86_400 });

const now = () => Math.floor(Date.now() / 1000);
const USER = randomUUID();
const TOKEN = randomUUID();
const FAMILY = randomUUID();
const session = { epoch: 3, family: FAMILY };

/** A token signed the way Sentinel signs, with every claim open to change. */
function forged(payload: JWTPayload, options: { alg?: string; key?: Uint8Array; issuer?: string; audience?: string } = {}) {
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: options.alg ?? 'HS256', typ: 'JWT' }).setIssuedAt();
  if (options.issuer !== '') jwt.setIssuer(options.issuer ?? 'sentinel');
  if (options.audience !== '') jwt.setAudience(options.audience ?? 'sentinel-api');
  return jwt.sign(options.key ?? secret);
}

async function refused(token: string | Promise<string>, message?: RegExp): Promise<Unauthenticated> {
  const error = await rejection(tokens.verify(await token));
  expect(error).to.be.instanceOf(Unauthenticated);
  if (message) expect((error as Error).message).to.match(message);
  return error as Unauthenticated;
}

describe('JwtTokens', () => {
  describe('issue and verify', () => {
    for (const type of ['access', 'refresh'] as TokenType[]) {
      it(`given an issued ${type} token, when verified, then its type, subject, token id and session come back`, async () => {
        const subject = randomUUID();
        const tokenId = randomUUID();
        const token = await tokens.issue(type, subject, tokenId, session);
        expect(await tokens.verify(token)).to.deep.equal({ type, subject, tokenId, session });
      });
    }

    it('given an issued service token, when verified, then its type, subject and token id come back, without a session', async () => {
      const subject = randomUUID();
      const tokenId = randomUUID();
      expect(await tokens.verify(await tokens.issue('service', subject, tokenId))).to.deep.equal({ type: 'service', subject, tokenId });
    });

    it('given an access or refresh token to issue without a session, then it is refused', async () => {
      expect(((await rejection(tokens.issue('access', USER, TOKEN))) as Error).message).to.match(/need a session/);
      expect(((await rejection(tokens.issue('refresh', USER, TOKEN))) as Error).message).to.match(/need a session/);
    });

    it('given an access token, then it is HS256, from sentinel for sentinel-api, carries epoch and family, and expires after the access TTL', async () => {
      const token = await tokens.issue('access', USER, TOKEN, session);
      expect(decodeProtectedHeader(token)).to.include({ alg: 'HS256' });
      const claims = decodeJwt(token);
      expect(claims).to.include({ iss: 'sentinel', aud: 'sentinel-api', sub: USER, jti: TOKEN, typ: 'access', ep: 3, fam: FAMILY });
      expect(claims.exp! - claims.iat!).to.equal(900);
      expect(claims.iat).to.be.closeTo(now(), 5);
    });

    it('given a refresh token, then it expires after the refresh TTL', async () => {
      const claims = decodeJwt(await tokens.issue('refresh', USER, TOKEN, session));
      expect(claims.exp! - claims.iat!).to.equal(7 * 86_400);
    });

    it('given a service-account token, then it has no expiry and still verifies', async () => {
      const token = await tokens.issue('service', USER, TOKEN);
      expect(decodeJwt(token)).to.not.have.property('exp');
      expect(await tokens.verify(token)).to.deep.equal({ type: 'service', subject: USER, tokenId: TOKEN });
    });

    it('given another instance with the same secret, then it verifies the token too', async () => {
      const token = await tokens.issue('access', USER, TOKEN, session);
      const restarted = new JwtTokens({ secret: new Uint8Array(secret), accessTtlSeconds: 60, refreshTtlSeconds: 120 });
      expect(await restarted.verify(token)).to.deep.equal({ type: 'access', subject: USER, tokenId: TOKEN, session });
      expect(restarted).to.include({ accessTtlSeconds: 60, refreshTtlSeconds: 120 });
    });
  });

  describe('refusals', () => {
    const claims = () => ({ typ: 'access', sub: USER, jti: randomUUID(), exp: now() + 600, ep: 0, fam: FAMILY });

    it('given an unsigned token (alg: none), then Unauthenticated', async () => {
      const token = new UnsecuredJWT(claims()).setIssuer('sentinel').setAudience('sentinel-api').setIssuedAt().encode();
      expect(decodeProtectedHeader(token)).to.include({ alg: 'none' });
      await refused(token, /not valid/);
    });

    it('given a token signed with another secret, then Unauthenticated', async () => {
      await refused(forged(claims(), { key: otherSecret }), /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
    });

    it('given an HS512 token signed with the same secret, then Unauthenticated: the algorithm is pinned', async () => {
      await refused(forged(claims(), { alg: 'HS512' }), /ERR_JOSE_ALG_NOT_ALLOWED/);
    });

    it('given a token that expired, then Unauthenticated saying so', async () => {
      await refused(forged({ ...claims(), exp: now() - 60 }), /expired/);
    });

    it('given a token not yet valid, then Unauthenticated', async () => {
      await refused(forged({ ...claims(), nbf: now() + 3600 }));
    });

    it('given another issuer, or none, then Unauthenticated', async () => {
      await refused(forged(claims(), { issuer: 'someone-else' }));
      await refused(forged(claims(), { issuer: '' }));
    });

    it('given another audience, or none, then Unauthenticated', async () => {
      await refused(forged(claims(), { audience: 'other-api' }));
      await refused(forged(claims(), { audience: '' }));
    });

    it('given a token without typ, or with an unknown typ, then Unauthenticated', async () => {
      const { typ: _typ, ...untyped } = claims();
      await refused(forged(untyped), /lacks its claims/);
      await refused(forged({ ...claims(), typ: 'admin' }), /lacks its claims/);
    });

    it('given a token without sub, then Unauthenticated', async () => {
      const { sub: _sub, ...rest } = claims();
      await refused(forged(rest), /lacks its claims/);
    });

    it('given a correctly signed token whose sub or jti is not a UUID, then Unauthenticated (never a query with it)', async () => {
      for (const sub of ['admin', 'u-1', "1' or '1'='1", '00000000-0000-0000-0000-00000000000g', '']) {
        await refused(forged({ ...claims(), sub }), /lacks its claims/);
        await refused(forged({ ...claims(), typ: 'service', sub }), /lacks its claims/);
      }
      await refused(forged({ ...claims(), jti: 't-1' }), /lacks its claims/);
      await refused(forged({ ...claims(), sub: 42 } as unknown as JWTPayload));
    });

    it('given an access or refresh token without a usable epoch or family, then Unauthenticated', async () => {
      for (const typ of ['access', 'refresh']) {
        const { ep: _ep, ...noEpoch } = claims();
        const { fam: _fam, ...noFamily } = claims();
        await refused(forged({ ...noEpoch, typ }), /lacks its claims/);
        await refused(forged({ ...noFamily, typ }), /lacks its claims/);
        for (const ep of [-1, 1.5, '1', null]) await refused(forged({ ...claims(), typ, ep }), /lacks its claims/);
        await refused(forged({ ...claims(), typ, fam: 'family' }), /lacks its claims/);
      }
    });

    it('given a token without jti, then Unauthenticated', async () => {
      const { jti: _jti, ...rest } = claims();
      await refused(forged(rest), /lacks its claims/);
    });

    it('given an access or refresh token without exp, then Unauthenticated', async () => {
      const { exp: _exp, ...rest } = claims();
      await refused(forged(rest), /no expiry/);
      await refused(forged({ ...rest, typ: 'refresh' }), /no expiry/);
    });

    it('given a valid token with a tampered payload, then Unauthenticated', async () => {
      const [header, , signature] = (await tokens.issue('access', USER, TOKEN, session)).split('.');
      const payload = Buffer.from(JSON.stringify({ ...claims(), sub: randomUUID(), iss: 'sentinel', aud: 'sentinel-api' })).toString('base64url');
      await refused(`${header}.${payload}.${signature}`);
    });

    for (const garbage of ['', 'not-a-token', 'a.b.c', 'Bearer x.y.z', '...', 'eyJhbGciOiJIUzI1NiJ9.e30', '\u0000\u0001']) {
      it(`given the string ${JSON.stringify(garbage)}, then Unauthenticated`, async () => {
        await refused(garbage);
      });
    }
  });

  describe('verified tokens kept', () => {
    it('given a token verified before, when it has expired since, then it is refused as expired, however often it was sent', async () => {
      let clock = Date.now();
      const timed = new JwtTokens({ secret, accessTtlSeconds: 60, refreshTtlSeconds: 120, now: () => clock });
      const token = await timed.issue('access', USER, TOKEN, session);
      for (let i = 0; i < 3; i++) expect(await timed.verify(token)).to.deep.equal({ type: 'access', subject: USER, tokenId: TOKEN, session });
      clock += 61_000;
      const error = await rejection(timed.verify(token));
      expect(error).to.be.instanceOf(Unauthenticated);
      expect((error as Error).message).to.match(/expired/);
    });

    it('given a token verified before, when one differing from it only in its signature is sent, then that one is refused', async () => {
      const token = await tokens.issue('access', USER, TOKEN, session);
      await tokens.verify(token);
      const [header, payload, signature] = token.split('.');
      const flipped = `${header}.${payload}.${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;
      await refused(flipped, /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
    });

    it('given the claims of a kept token, then they cannot be changed by whoever is handed them', async () => {
      const token = await tokens.issue('access', USER, TOKEN, session);
      const claims = await tokens.verify(token);
      expect(() => ((claims as { subject: string }).subject = randomUUID())).to.throw(TypeError);
      expect(await tokens.verify(token)).to.deep.include({ subject: USER });
    });

    it('given no room to keep any, then every verification checks the token, and expiry still holds', async () => {
      let clock = Date.now();
      const none = new JwtTokens({ secret, accessTtlSeconds: 60, refreshTtlSeconds: 120, verifiedCacheSize: 0, now: () => clock });
      const token = await none.issue('access', USER, TOKEN, session);
      expect(await none.verify(token)).to.deep.include({ subject: USER });
      clock += 61_000;
      expect(await rejection(none.verify(token))).to.be.instanceOf(Unauthenticated);
    });
  });

  describe('construction', () => {
    it('given a secret shorter than 32 bytes, then it is refused', () => {
      expect(() => new JwtTokens({ secret: new Uint8Array(31), accessTtlSeconds: 900, refreshTtlSeconds: 3600 })).to.throw(/at least 32 bytes/);
    });

    it('given a secret of exactly 32 bytes, then it is accepted', () => {
      expect(() => new JwtTokens({ secret: new Uint8Array(32).fill(7), accessTtlSeconds: 900, refreshTtlSeconds: 3600 })).to.not.throw();
    });
  });
});
