// The retry policy for Kubernetes API calls: which failures heal by waiting, how long to wait, and the ClusterError the rest become.
import { STATUS_CODES } from 'node:http';
import { ApiException, type Middleware, type RequestContext, type ResponseContext } from '@kubernetes/client-node';
import { ClusterError } from '../../reactors/cluster-driver.js';
import { backoffDelay as sharedBackoffDelay, retrying } from '../retry.js';

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

/** The longest Status message kept; the rest is cut. */
export const MAX_STATUS_MESSAGE = 500;

/**
 * Classifies anything a client-node call can throw. What the server sent is summarised, never passed on: a
 * Kubernetes Status keeps its reason and (bounded) message; any other answer is known only by its HTTP status,
 * content type and size, since it may be a page of some other service that the kubeconfig pointed at.
 */
export function describeFailure(error: unknown): ApiFailure {
  if (error instanceof ApiException) {
    const status = error.code;
    const body = statusBody(error.body);
    const retryAfter = Number(headerValue(error.headers, 'retry-after'));
    return {
      status,
      ...(body?.reason ? { reason: body.reason } : {}),
      detail: body?.message ?? answerSummary(status, error.body, headerValue(error.headers, 'content-type')),
      transient: isTransientStatus(status),
      ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
    };
  }
  if (error instanceof Error) {
    // node-fetch reports an aborted request (our per-request timeout) as AbortError, socket trouble as FetchError.
    if (error.name === 'AbortError' || error.name === 'TimeoutError') {
      return { reason: 'Timeout', detail: 'no complete answer within the request timeout', transient: true };
    }
    // client-node's Watch reports a refused watch as a plain Error carrying the HTTP status, and the server's own
    // status line as its message: only the status is kept.
    const statusCode = (error as { statusCode?: unknown }).statusCode;
    if (typeof statusCode === 'number') {
      return { status: statusCode, detail: `HTTP ${statusCode}${STATUS_CODES[statusCode] ? ` ${STATUS_CODES[statusCode]}` : ''}`, transient: isTransientStatus(statusCode) };
    }
    const code = (error as { code?: unknown }).code;
    const type = (error as { type?: unknown }).type;
    // The socket layer's own words (the address, the errno, the TLS failure): nothing the server chose.
    if ((typeof code === 'string' && NETWORK_CODES.has(code)) || (error.name === 'FetchError' && type === 'system')) {
      return { reason: 'NetworkError', detail: error.message.slice(0, MAX_STATUS_MESSAGE), transient: true };
    }
    if (quotesTheAnswer(error)) {
      return { detail: 'the answer could not be read as a Kubernetes object', transient: false };
    }
    return { detail: error.message, transient: false };
  }
  return { detail: String(error), transient: false };
}

function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/**
 * Errors whose message repeats part of what the server sent: a JSON parse error quotes the text, node-fetch's
 * other FetchErrors name a redirect target or the parse error, client-node names the content type it cannot read.
 */
function quotesTheAnswer(error: Error): boolean {
  return (
    error instanceof SyntaxError ||
    (error.name === 'FetchError' && (error as { type?: unknown }).type !== 'system') ||
    error.message.startsWith('The mediaType ')
  );
}

/**
 * The Status object Kubernetes sends with an error; client-node 1.4 hands it over as unparsed text. Undefined
 * for anything that is not one: JSON with kind "Status", or at least apiVersion v1 with Status's fields.
 */
function statusBody(body: unknown): { reason?: string; message?: string } | undefined {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { kind, apiVersion, status, reason, message } = value as Record<string, unknown>;
  const statusShaped = typeof status === 'string' && (typeof reason === 'string' || typeof message === 'string');
  if (kind !== 'Status' && !(apiVersion === 'v1' && kind === undefined && statusShaped)) return undefined;
  return {
    // A reason is one CamelCase word (NotFound, AlreadyExists); anything else is not one.
    ...(typeof reason === 'string' && /^[A-Za-z]{1,64}$/.test(reason) ? { reason } : {}),
    ...(typeof message === 'string' && message ? { message: bounded(message) } : {}),
  };
}

/** An answer that is not a Status, as much as may be said of it: `HTTP 404 (text/html, 48 bytes)`. */
export function answerSummary(status: number, body: unknown, contentType: string | undefined): string {
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  const shownType = type && /^[a-z0-9!#$&^_.+-]{1,64}\/[a-z0-9!#$&^_.+-]{1,64}$/.test(type) ? type : 'no content type';
  // client-node does not read the body of a 401, and hands over undefined: its size is unknown, not 0.
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body instanceof Uint8Array ? body.byteLength : undefined;
  return `HTTP ${status} (${shownType}${size === undefined ? '' : `, ${size} bytes`})`;
}

function bounded(message: string): string {
  return message.length > MAX_STATUS_MESSAGE ? `${message.slice(0, MAX_STATUS_MESSAGE)}…` : message;
}

function headerValue(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const key = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/** Exponential backoff with jitter: half the doubled delay is fixed, half random, so retrying clients spread out. */
export function backoffDelay(retry: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random = Math.random): number {
  return sharedBackoffDelay(retry, { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }, random);
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
  // Already judged, by a nested call or by the caller's own check: passed on untouched.
  const retryable = (error: unknown) => !(error instanceof ClusterError) && healsByWaiting(describeFailure(error), options);
  try {
    return await retrying(call, {
      backoff: { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs },
      attempts: policy.attempts,
      retryable,
      waitAskedBy: (error) => describeFailure(error).retryAfterMs,
      ...(options.random ? { random: options.random } : {}),
    });
  } catch (error) {
    if (error instanceof ClusterError) throw error;
    const failure = describeFailure(error);
    // A failure the policy would retry only ends the retrying when the attempts are spent.
    if (retryable(error)) throw toClusterError(what, failure, true, error, `gave up after ${policy.attempts} attempts`);
    throw toClusterError(what, failure, false, error);
  }
}

function healsByWaiting(failure: ApiFailure, options: RetryOptions): boolean {
  return (
    (failure.transient && !(failure.status === 429 && options.tooManyRequests === 'fail')) ||
    (failure.status === 409 && options.conflicts === 'retry')
  );
}

export function toClusterError(what: string, failure: ApiFailure, transient: boolean, cause: unknown, note?: string): KubeApiError {
  const status = failure.status !== undefined ? `HTTP ${failure.status}` : undefined;
  // A summary already opens with the status.
  const answer = [failure.reason, failure.detail.startsWith(`${status} `) ? undefined : status].filter(Boolean).join(', ');
  const message = `${what}: ${note ? `${note}; ` : ''}${answer ? `${answer}: ` : ''}${failure.detail}`;
  return new KubeApiError(message, failure.status, transient, failure.reason, failure.detail, shareable(cause) ? { cause } : {});
}

/**
 * Whether the original error may travel with the ClusterError (loggers print a cause's message): not when its
 * message carries what the server sent, as client-node's ApiException does with the whole body.
 */
function shareable(cause: unknown): boolean {
  return !(cause instanceof ApiException) && !(cause instanceof Error && quotesTheAnswer(cause));
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
