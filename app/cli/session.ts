// The token a command sends: SENTINEL_TOKEN when set, else the session `sentinel login` stored, refreshed with
// its refresh token once the access token has expired.
import { z } from 'zod';
import { CredentialsFile, configDir, type Session } from './credentials.js';
import { Exit, EXIT_FAILURE } from './exit.js';
import { ApiClient, DEFAULT_URL, RequestRefused, type Credentials } from './http-client.js';

/** An access token this close to its end is refreshed first, so that it does not expire on the way. */
const EXPIRY_MARGIN_MS = 30_000;

export const tokenPair = z.object({ accessToken: z.string(), refreshToken: z.string(), expiresIn: z.number() });
export type TokenPair = z.infer<typeof tokenPair>;

export function sessionOf(username: string, pair: TokenPair, now = Date.now()): Session {
  return {
    username,
    accessToken: pair.accessToken,
    refreshToken: pair.refreshToken,
    accessExpiresAt: new Date(now + pair.expiresIn * 1000).toISOString(),
  };
}

/** `sentinel login`, with the `--url` that reaches this server when it is not the default one. */
export function loginCommand(server: string): string {
  return server === DEFAULT_URL ? 'sentinel login' : `sentinel login --url ${server}`;
}

export function credentialsFor(server: string, env: NodeJS.ProcessEnv = process.env): Credentials {
  const fromEnv = env['SENTINEL_TOKEN'];
  if (fromEnv) {
    return {
      token: () => Promise.resolve(fromEnv),
      refusedHint: `the token in SENTINEL_TOKEN was refused: set a valid one, or unset it and run ${loginCommand(server)}`,
    };
  }
  const file = new CredentialsFile(configDir(env));
  let token: Promise<string> | undefined;
  return {
    token: () => (token ??= storedToken(server, file)),
    refusedHint: `the server no longer accepts this session's token: run ${loginCommand(server)}`,
  };
}

function notLoggedIn(server: string): Exit {
  return new Exit(`not logged in to ${server}: run ${loginCommand(server)} (or set SENTINEL_TOKEN)`, EXIT_FAILURE);
}

function fresh(session: Session): boolean {
  return Date.parse(session.accessExpiresAt) - EXPIRY_MARGIN_MS > Date.now();
}

async function storedToken(server: string, file: CredentialsFile): Promise<string> {
  const current = await file.get(server);
  if (!current) throw notLoggedIn(server);
  if (fresh(current)) return current.accessToken;
  return file.locked(async () => {
    // Another command may have refreshed while this one waited for the lock.
    const latest = await file.get(server);
    if (!latest) throw notLoggedIn(server);
    if (fresh(latest)) return latest.accessToken;
    let pair: TokenPair;
    try {
      pair = await new ApiClient(server).post('/auth/refresh', tokenPair, { refreshToken: latest.refreshToken });
    } catch (error) {
      if (error instanceof RequestRefused && error.status === 401) {
        // A refresh token works once, and not after it expires: this session is over.
        await file.remove(server);
        throw new Exit(`the session of ${latest.username} with ${server} has expired: run ${loginCommand(server)}`, EXIT_FAILURE);
      }
      throw error;
    }
    await file.put(server, sessionOf(latest.username, pair));
    return pair.accessToken;
  });
}
