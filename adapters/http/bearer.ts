// Bearer tokens on HTTP (RFC 6750): reading one from an Authorization header, and the challenge a 401 carries.

/** The token of an `Authorization: Bearer <token>` header, or undefined when the header is absent or not of that form. */
export function bearerToken(header: string | undefined): string | undefined {
  return header === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

/** Whether the header presents a bearer token at all, well-formed or not (RFC 6750 §3 answers the two apart). */
export function presentsBearerToken(header: string | undefined): boolean {
  return /^Bearer\s+\S/i.test(header ?? '');
}

/**
 * A `WWW-Authenticate` challenge (RFC 6750 §3): bare when no token was sent; with `error="invalid_token"` and
 * the reason when one was sent and refused. The reason keeps only the characters the RFC allows in it.
 */
export function bearerChallenge(refusedTokenReason?: string): string {
  if (refusedTokenReason === undefined) return 'Bearer realm="sentinel"';
  const description = refusedTokenReason.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '').slice(0, 200);
  return `Bearer realm="sentinel", error="invalid_token", error_description="${description}"`;
}
