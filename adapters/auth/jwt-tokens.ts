// Signed JWTs (HS256, jose) for access, refresh and service-account tokens.
import { errors, jwtVerify, SignJWT } from 'jose';
import { Unauthenticated, type TokenClaims, type TokenService, type TokenSession, type TokenType } from '../../commands/access.js';

const ISSUER = 'sentinel';
const AUDIENCE = 'sentinel-api';
const TYPES: readonly TokenType[] = ['access', 'refresh', 'service'];
/** Principals and tokens are named by UUIDs; a claim that is not one never reaches a query. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface JwtTokenOptions {
  /** At least 32 bytes. */
  secret: Uint8Array;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  /** How many verified tokens' claims are kept, so a token sent again is not checked again; 0 keeps none. */
  verifiedCacheSize?: number;
  /** Milliseconds since the epoch; the system clock unless given. */
  now?: () => number;
}

/** Claims of a verified token, and the instant (ms) from which the token has expired. */
interface Verified {
  claims: TokenClaims;
  expiresAtMs: number;
}

export class JwtTokens implements TokenService {
  readonly accessTtlSeconds: number;
  readonly refreshTtlSeconds: number;
  private readonly secret: Uint8Array;
  /**
   * A token's claims depend only on its bytes and the secret, until it expires: a client sends the same access token
   * with every request, and checking its signature each time was a tenth of a command's CPU. Whether its principal
   * and session are still live is not kept here; the access service asks the store on every request.
   */
  private readonly verified = new Map<string, Verified>();
  private readonly verifiedCacheSize: number;
  private readonly now: () => number;

  constructor(options: JwtTokenOptions) {
    if (options.secret.byteLength < 32) throw new Error('the JWT signing secret must be at least 32 bytes');
    this.secret = options.secret;
    this.accessTtlSeconds = options.accessTtlSeconds;
    this.refreshTtlSeconds = options.refreshTtlSeconds;
    this.verifiedCacheSize = options.verifiedCacheSize ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  async issue(type: TokenType, subject: string, tokenId: string, session?: TokenSession): Promise<string> {
    if (type !== 'service' && !session) throw new Error(`${type} tokens need a session (token epoch and family)`);
    // `ep`: the user's token epoch; `fam`: the family of tokens descending from one login.
    const jwt = new SignJWT(type === 'service' ? { typ: type } : { typ: type, ep: session!.epoch, fam: session!.family })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(subject)
      .setJti(tokenId)
      .setIssuedAt();
    // Service-account tokens are long-lived by design: they end when the account is revoked.
    if (type === 'access') jwt.setExpirationTime(`${this.accessTtlSeconds}s`);
    if (type === 'refresh') jwt.setExpirationTime(`${this.refreshTtlSeconds}s`);
    return jwt.sign(this.secret);
  }

  async verify(token: string): Promise<TokenClaims> {
    const known = this.verified.get(token);
    if (known && this.now() < known.expiresAtMs) return known.claims;
    // Expired since it was kept: forgotten, and refused by the full check below.
    if (known) this.verified.delete(token);
    const verified = await this.check(token);
    this.keep(token, verified);
    return verified.claims;
  }

  private keep(token: string, verified: Verified): void {
    if (this.verifiedCacheSize <= 0) return;
    // Shared by every request that sends the token: nobody may change them.
    Object.freeze(verified.claims.session);
    Object.freeze(verified.claims);
    // Oldest first out: a Map iterates in insertion order.
    if (this.verified.size >= this.verifiedCacheSize) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, verified);
  }

  private async check(token: string): Promise<Verified> {
    try {
      // Pinning the algorithm refuses `alg: none` and any key confusion.
      const { payload } = await jwtVerify(token, this.secret, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        audience: AUDIENCE,
        currentDate: new Date(this.now()),
      });
      const type = payload['typ'];
      if (!TYPES.includes(type as TokenType) || !isUuid(payload.sub) || !isUuid(payload.jti)) throw new Unauthenticated('the token lacks its claims');
      if (type === 'service') return { claims: { type, subject: payload.sub, tokenId: payload.jti }, expiresAtMs: payload.exp === undefined ? Infinity : payload.exp * 1000 };
      if (payload.exp === undefined) throw new Unauthenticated('the token has no expiry');
      const epoch = payload['ep'];
      const family = payload['fam'];
      if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0 || !isUuid(family)) {
        throw new Unauthenticated('the token lacks its claims');
      }
      return { claims: { type: type as TokenType, subject: payload.sub, tokenId: payload.jti, session: { epoch, family } }, expiresAtMs: payload.exp * 1000 };
    } catch (error) {
      if (error instanceof Unauthenticated) throw error;
      if (error instanceof errors.JWTExpired) throw new Unauthenticated('the token has expired');
      if (error instanceof errors.JOSEError) throw new Unauthenticated(`the token is not valid: ${error.code}`);
      throw error;
    }
  }
}

function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}
