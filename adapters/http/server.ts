// The HTTP server of a Sentinel process: probes, metrics, and whatever routers the composition root mounts.
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import http from 'node:http';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { httpMetrics } from '../prometheus/http-metrics.js';
import { accessLog, recordMount, routeOf } from './access-log.js';
import { bearerChallenge, bearerToken } from './bearer.js';
import { rawProblemResponse, sendProblem, type Problem } from './problem.js';

export interface HttpServerOptions {
  logger: Logger;
  metrics: Registry;
  /** Resolves when the process can serve traffic; rejects with the reason when it cannot. */
  readiness: () => Promise<void>;
  readinessTimeoutMs?: number;
  routers?: { path: string; router: Router }[];
  /** When set, `/metrics` answers only requests with `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string;
}

/**
 * The Content-Security-Policy of everything this app serves now: JSON, which loads nothing and is framed by
 * nothing. A console served from the same app sets its own policy on its own path, after this one.
 */
export const API_CONTENT_SECURITY_POLICY = { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] };

export function createHttpApp(options: HttpServerOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // First, so that every answer is logged, whatever answers it.
  app.use(accessLog(options.logger));
  // Counted by the route pattern that answered, read when the response is done, as the access line is.
  app.use(httpMetrics(options.metrics, { routeOf }));
  // helmet's defaults (nosniff, no-referrer, HSTS, cross-origin policies), with a CSP and framing rule for JSON.
  app.use(helmet({ contentSecurityPolicy: { useDefaults: false, directives: API_CONTENT_SECURITY_POLICY }, xFrameOptions: { action: 'deny' } }));
  // Every answer is live state or private (tokens among them): nothing may be kept by a cache on the way.
  app.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    try {
      await withTimeout(options.readiness(), options.readinessTimeoutMs ?? 2000, 'readiness check timed out');
      res.json({ status: 'ready' });
    } catch (error) {
      sendProblem(res, { title: 'Not ready', status: 503, detail: (error as Error).message });
    }
  });

  const metricsAllowed: (header: string | undefined) => true | string =
    options.metricsToken === undefined ? () => true : bearerCheck(options.metricsToken);
  app.get('/metrics', async (req, res) => {
    const refused = metricsAllowed(req.get('authorization'));
    if (refused !== true) {
      res.setHeader('WWW-Authenticate', refused);
      sendProblem(res, { type: 'urn:sentinel:problem:unauthenticated', title: 'Unauthorized', status: 401, detail: '/metrics needs Authorization: Bearer <SENTINEL_METRICS_TOKEN>' });
      return;
    }
    res.type(options.metrics.contentType).send(await options.metrics.metrics());
  });

  for (const { path, router } of options.routers ?? []) app.use(path, recordMount, router);

  app.use((req: Request, res: Response) => {
    sendProblem(res, { title: 'Not Found', status: 404, detail: `no route for ${req.method} ${req.path}` });
  });

  app.use((error: Error & { status?: number }, req: Request, res: Response, _next: NextFunction) => {
    // What express itself refuses (a path that does not decode, say) is the client's, not a fault.
    if (typeof error.status === 'number' && error.status >= 400 && error.status < 500 && !res.headersSent) {
      sendProblem(res, { title: http.STATUS_CODES[error.status] ?? 'Bad Request', status: error.status, detail: `the request could not be read: ${error.message}` });
      return;
    }
    options.logger.error({ err: error, method: req.method, path: req.path, requestId: res.getHeader('X-Request-Id') }, 'request failed');
    if (res.headersSent) return;
    sendProblem(res, { title: 'Internal Server Error', status: 500, detail: 'the request failed; see the server log' });
  });

  return app;
}

export interface RunningHttpServer {
  port: number;
  /** Stops accepting connections and waits for in-flight requests, up to `timeoutMs`. */
  close(timeoutMs: number): Promise<void>;
}

export async function listen(app: express.Express, host: string, port: number): Promise<RunningHttpServer> {
  const server = http.createServer(app);
  server.on('clientError', answerUnparsable);
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    async close(timeoutMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

/**
 * A request Node's parser refused before any route saw it is answered with a problem like any other, not with
 * Node's bare status line: request line and headers beyond the server's limit (`--max-http-header-size`, 16 KiB by
 * default) with 431, anything else it cannot parse with 400. A connection reset or timed out is just closed.
 */
function answerUnparsable(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable || (socket as Duplex & { _httpMessage?: unknown })._httpMessage) {
    socket.destroy();
    return;
  }
  const problem: Problem =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? { status: 431, title: 'Request Header Fields Too Large', detail: `the request line and headers are larger than ${http.maxHeaderSize} bytes` }
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? { status: 408, title: 'Request Timeout', detail: 'the request did not arrive in time' }
        : { status: 400, title: 'Bad Request', detail: 'not a well-formed HTTP/1.1 request' };
  socket.end(rawProblemResponse(problem));
}

/**
 * Checks an Authorization header against one bearer token in constant time (both sides hashed to the same
 * length first); true, or the `WWW-Authenticate` challenge to answer with (RFC 6750 §3).
 */
function bearerCheck(token: string): (header: string | undefined) => true | string {
  const expected = createHash('sha256').update(token).digest();
  return (header) => {
    const sent = bearerToken(header);
    if (sent === undefined) return bearerChallenge();
    if (timingSafeEqual(createHash('sha256').update(sent).digest(), expected)) return true;
    return bearerChallenge('not the metrics token');
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
