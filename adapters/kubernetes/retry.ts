// The retry policy for Kubernetes API calls: which failures heal by waiting, how long to wait, and the ClusterError the rest become.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, type Middleware, type RequestContext, type ResponseContext } from '@kubernetes/client-node';
import { ClusterError } from '../../reactors/cluster-driver.js';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** The wait before the second try; it doubles with each try after that. */
  baseDelayMs: number;
  /** No wait is longer than this, whatever the doubling or a Retry-After header says. */
  maxDelayMs: number;
  /** One request (connect, send, read the whole answer) is abandoned after this long and counts as a transient failure. */
  requestTimeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 2000, requestTimeoutMs: 10_000 };

/**
 * A ClusterError that came from the Kubernetes API, keeping what the API said apart from where it happened:
 * `reason` is the Status reason (`NotFound`, `Invalid`, `TooManyRequests`...), `detail` the Status message.
 */
export class KubeApiError extends ClusterError {
  constructor(
    message: string,
    status: number | undefined,
    transient: boolean,
    readonly reason: string | undefined,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(message, status, transient);
    this.name = 'KubeApiError';
    if (options && 'cause' in options) Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false });
  }
}

/** What one failed call amounts to. */
export interface ApiFailure {
  status?: number;
  reason?: string;
  detail: string;
  transient: boolean;
  /** How long the server asked to be left alone (Retry-After), when it said. */
  retryAfterMs?: number;
}

/** Errors from the socket layer that say nothing about the request itself: trying again may well work. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  // node-fetch's word for a connection that closed in the middle of an answer.
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Classifies anything a client-node call can throw. */
export function describeFailure(error: unknown): ApiFailure {
  if (error instanceof ApiException) {
    const status = error.code;
    const body = statusBody(error.body);
    const retryAfter = Number(headerValue(error.headers, 'retry-after'));
    return {
      status,
      ...(body.reason ? { reason: body.reason } : {}),
      detail: body.message ?? `HTTP ${status}`,
      transient: status >= 500 || status === 429 || status === 408,
      ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
    };
  }
  if (error instanceof Error) {
    // node-fetch reports an aborted request (our per-request timeout) as AbortError, socket trouble as FetchError.
    if (error.name === 'AbortError' || error.name === 'TimeoutError') {
      return { reason: 'Timeout', detail: 'no complete answer within the request timeout', transient: true };
    }
    // client-node's Watch reports a refused watch as a plain Error carrying the HTTP status.
    const statusCode = (error as { statusCode?: unknown }).statusCode;
    if (typeof statusCode === 'number') {
      return { status: statusCode, detail: error.message, transient: statusCode >= 500 || statusCode === 429 || statusCode === 408 };
    }
    const code = (error as { code?: unknown }).code;
    const type = (error as { type?: unknown }).type;
    if ((typeof code === 'string' && NETWORK_CODES.has(code)) || (error.name === 'FetchError' && type === 'system')) {
      return { reason: 'NetworkError', detail: error.message, transient: true };
    }
    return { detail: error.message, transient: false };
  }
  return { detail: String(error), transient: false };
}

/** The Status object Kubernetes sends with an error; client-node 1.4 hands it over as unparsed text. */
function statusBody(body: unknown): { reason?: string; message?: string } {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      // Not a Status object (a proxy's HTML page, say): the text itself is the best description there is.
      return body.trim() ? { message: body.trim().slice(0, 500) } : {};
    }
  }
  if (value && typeof value === 'object') {
    const { reason, message } = value as { reason?: unknown; message?: unknown };
    return {
      ...(typeof reason === 'string' && reason ? { reason } : {}),
      ...(typeof message === 'string' && message ? { message } : {}),
    };
  }
  return {};
}

function headerValue(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const key = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/** Exponential backoff with jitter: half the doubled delay is fixed, half random, so retrying clients spread out. */
export function backoffDelay(retry: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

export interface RetryOptions {
  policy: RetryPolicy;
  /**
   * `retry` for a read-modify-write: a 409 means someone wrote in between, and calling again re-reads.
   * Anywhere else a 409 (AlreadyExists, an apply conflict) will not heal and fails at once.
   */
  conflicts?: 'retry' | 'fail';
  /** `fail` where the caller has its own answer to 429, such as an eviction refused by a PodDisruptionBudget. */
  tooManyRequests?: 'retry' | 'fail';
  random?: () => number;
}

/**
 * Runs `call` under the retry policy. `what` names the operation and object (`apply Deployment team-a/llm`) and
 * opens every error message, so a failure says where it happened as well as what the API answered.
 */
export async function withRetry<T>(what: string, call: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { policy } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      // Already judged, by a nested call or by the caller's own check.
      if (error instanceof ClusterError) throw error;
      const failure = describeFailure(error);
      const retryable =
        (failure.transient && !(failure.status === 429 && options.tooManyRequests === 'fail')) ||
        (failure.status === 409 && options.conflicts === 'retry');
      if (!retryable) throw toClusterError(what, failure, false, error);
      if (attempt >= policy.attempts) throw toClusterError(what, failure, true, error, `gave up after ${attempt} attempts`);
      const delay = failure.retryAfterMs ?? backoffDelay(attempt, policy, options.random);
      await sleep(Math.min(delay, policy.maxDelayMs));
    }
  }
}

export function toClusterError(what: string, failure: ApiFailure, transient: boolean, cause: unknown, note?: string): KubeApiError {
  const answer = [failure.reason, failure.status !== undefined ? `HTTP ${failure.status}` : undefined].filter(Boolean).join(', ');
  const message = `${what}: ${note ? `${note}; ` : ''}${answer ? `${answer}: ` : ''}${failure.detail}`;
  return new KubeApiError(message, failure.status, transient, failure.reason, failure.detail, { cause });
}

/**
 * Bounds every request made through a client-node API object. client-node 1.4 sends requests with node-fetch and
 * passes the request context's AbortSignal to it, so a fresh timeout signal per request bounds connect, send and
 * the reading of the whole answer alike.
 */
export function requestTimeout(ms: number): Middleware {
  return {
    pre: async (context: RequestContext) => {
      context.setSignal(AbortSignal.timeout(ms));
      return context;
    },
    post: async (response: ResponseContext) => response,
  };
}
