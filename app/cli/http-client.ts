// Sentinel's HTTP API as the CLI calls it: where the server is, the bearer token, answers checked against the
// shape the CLI reads, and every way a request can fail turned into a message a person can act on.
import { z } from 'zod';
import { Exit, EXIT_FAILURE, EXIT_USAGE, messageOf } from './exit.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
/** Longest the CLI waits for one answer (a query with `?after=` waits at most 2 s on the server). */
const ANSWER_TIMEOUT_MS = 30_000;

/** The server from `--url`, else `SENTINEL_URL`, else the default; without a trailing `/` or `/api/v1`. */
export function serverUrl(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const [raw, source] = given ? [given, '--url'] : env['SENTINEL_URL'] ? [env['SENTINEL_URL'], 'SENTINEL_URL'] : [DEFAULT_URL, 'the default'];
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Exit(`${source}: not a URL: "${raw}"; give one such as ${DEFAULT_URL}`, EXIT_USAGE);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Exit(`${source}: an http:// or https:// URL, such as ${DEFAULT_URL} (got "${raw}")`, EXIT_USAGE);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '')}`;
}

const problem = z.object({
  title: z.string().optional(),
  detail: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
export type Problem = z.infer<typeof problem>;

/** The server answered, and refused: its problem+json as lines a person reads. */
export class RequestRefused extends Exit {
  constructor(
    readonly status: number,
    readonly problem: Problem,
    hint?: string,
  ) {
    super(describeProblem(status, problem, hint), EXIT_FAILURE);
  }
}

/** `Unprocessable Content (422): <detail>`, then a line per field error, then what to do about it. */
export function describeProblem(status: number, refused: Problem, hint?: string): string {
  const head = `${refused.title ?? 'refused'} (${status})${refused.detail ? `: ${refused.detail}` : ''}`;
  const fields = (refused.errors ?? []).map((error) => `\n  ${error.path || '(request)'}: ${error.message}`).join('');
  return `${head}${fields}${hint ? `\n${hint}` : ''}`;
}

/** Where a command's bearer token comes from. */
export interface Credentials {
  token(): Promise<string>;
  /** What to tell the user when the server refuses that token. */
  refusedHint: string;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
}

export class ApiClient {
  constructor(
    readonly server: string,
    private readonly credentials?: Credentials,
  ) {}

  get<S extends z.ZodType>(route: string, schema: S, query?: RequestOptions['query']): Promise<z.infer<S>> {
    return this.request('GET', route, schema, { query });
  }

  post<S extends z.ZodType>(route: string, schema: S, body?: unknown): Promise<z.infer<S>> {
    return this.request('POST', route, schema, { body });
  }

  async request<S extends z.ZodType>(method: string, route: string, schema: S, options: RequestOptions = {}): Promise<z.infer<S>> {
    const url = new URL(`${this.server}/api/v1${route}`);
    for (const [name, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.append(name, String(value));
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
    if (this.credentials) headers['authorization'] = `Bearer ${await this.credentials.token()}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let status: number;
    let text: string;
    try {
      const response = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw unreachable(this.server, error);
    }
    const json = parseJson(text);
    if (status >= 200 && status < 300) {
      const parsed = schema.safeParse(json);
      if (!parsed.success) throw notSentinel(this.server, `answered ${method} ${route} with a body the CLI does not understand (${z.prettifyError(parsed.error)})`);
      return parsed.data;
    }
    const refused = problem.safeParse(json);
    if (!refused.success || json === undefined) throw notSentinel(this.server, `answered ${method} ${route} with ${status} and no problem+json body`);
    throw new RequestRefused(status, refused.data, status === 401 && this.credentials ? this.credentials.refusedHint : undefined);
  }
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function notSentinel(server: string, what: string): Exit {
  return new Exit(`${server} ${what}: is that Sentinel's address? (set it with --url or SENTINEL_URL)`, EXIT_FAILURE);
}

/** Why no answer came: the address refused or unknown, a TLS failure, or no answer in time. */
function unreachable(server: string, error: unknown): Exit {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return new Exit(`Sentinel at ${server} did not answer within ${ANSWER_TIMEOUT_MS / 1000} s`, EXIT_FAILURE);
  }
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
  const code = cause && 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'no such host',
    EAI_AGAIN: 'the host name could not be resolved',
    ECONNRESET: 'the connection was reset',
    EHOSTUNREACH: 'no route to the host',
    ETIMEDOUT: 'the connection timed out',
  };
  const reason = code && reasons[code] ? `${reasons[code]} (${code})` : messageOf(cause ?? error);
  return new Exit(`cannot reach Sentinel at ${server}: ${reason}. Is it running? Point the CLI at it with --url or SENTINEL_URL`, EXIT_FAILURE);
}
