// Signed JWTs (HS256, jose) for access, refresh and service-account tokens.
import { errors, jwtVerify, SignJWT } from 'jose';
import { Unauthenticated, type TokenClaims, type TokenService, type TokenType } from '../../commands/access.js';

const ISSUER = 'sentinel';
const AUDIENCE = 'sentinel-api';
const TYPES: readonly TokenType[] = ['access', 'refresh', 'service'];

export interface JwtTokenOptions {
  /** At least 32 bytes. */
  secret: Uint8Array;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
}

export class JwtTokens implements TokenService {
  readonly accessTtlSeconds: number;
  readonly refreshTtlSeconds: number;
  private readonly secret: Uint8Array;

  constructor(options: JwtTokenOptions) {
    if (options.secret.byteLength < 32) throw new Error('the JWT signing secret must be at least 32 bytes');
    this.secret = options.secret;
    this.accessTtlSeconds = options.accessTtlSeconds;
    this.refreshTtlSeconds = options.refreshTtlSeconds;
  }

  async issue(type: TokenType, subject: string, tokenId: string): Promise<string> {
    const jwt = new SignJWT({ typ: type })
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
    try {
      // Pinning the algorithm refuses `alg: none` and any key confusion.
      const { payload } = await jwtVerify(token, this.secret, { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE });
      const type = payload['typ'];
      if (!TYPES.includes(type as TokenType) || !payload.sub || !payload.jti) throw new Unauthenticated('the token lacks its claims');
      if (type !== 'service' && payload.exp === undefined) throw new Unauthenticated('the token has no expiry');
      return { type: type as TokenType, subject: payload.sub, tokenId: payload.jti };
    } catch (error) {
      if (error instanceof Unauthenticated) throw error;
      if (error instanceof errors.JWTExpired) throw new Unauthenticated('the token has expired');
      if (error instanceof errors.JOSEError) throw new Unauthenticated(`the token is not valid: ${error.code}`);
      throw error;
    }
  }
}
