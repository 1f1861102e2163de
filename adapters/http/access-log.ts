// The access log: one JSON line per request through the process's pino logger, saying who asked for what and how it went.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import type { LevelWithSilent, Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Principal } from '../../domain/access.js';

/** Asked every few seconds by Kubernetes and Prometheus: at debug, so that info shows what people and services did. */
const ROUTINE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** res.locals key: where the router that answered is mounted, so that a line names the whole route pattern. */
const MOUNTED_AT = 'accessLogMountedAt';

/** One access line. Never the Authorization header, cookies, the query string or a body. */
export interface AccessLine {
  /** The response's X-Request-Id: the API's own for /api/v1, one given here for everything else. */
  requestId: string;
  /** The response's X-Correlation-Id, on API routes. */
  correlationId?: string;
  /** The authenticated principal's id, never its token. */
  principalId?: string;
  method: string;
  /** The path as sent, without the query string. */
  path: string;
  /** The matched route pattern, e.g. /api/v1/deployments/:id; absent when no route matched. */
  route?: string;
  status: number;
  durationMs: number;
  /** Present (true) when the client went away before the answer was sent. */
  aborted?: true;
}

/** Mounted in front of a router: records where it is mounted, for the route pattern. */
export const recordMount: RequestHandler = (req, res, next) => {
  res.locals[MOUNTED_AT] = req.baseUrl;
  next();
};

export function accessLog(logger: Logger): RequestHandler {
  const lineOf = (req: IncomingMessage, res: ServerResponse, responseTime: number): AccessLine =>
    accessLine(req as Request, res as Response, responseTime);
  const middleware = pinoHttp({
    logger,
    // Every answer carries a request id; the API's router replaces it with its own, which the line then reports.
    genReqId: (_req, res) => {
      const id = randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    // The line is built from the fields below alone; req.log (unused) gets nothing the line does not have.
    quietResLogger: true,
    wrapSerializers: false,
    serializers: { req: (req: IncomingMessage) => ({ method: req.method, path: pathOf(req) }) },
    customLogLevel: (req, res, error): LevelWithSilent => {
      const level = error || res.statusCode >= 500 ? 'error' : ROUTINE_PATHS.has(pathOf(req)) ? 'debug' : 'info';
      // A line the logger would drop is not built at all (pino-http builds it first, then asks the logger).
      return logger.isLevelEnabled(level) ? level : 'silent';
    },
    customSuccessObject: (req, res, value: { responseTime: number }) => lineOf(req, res, value.responseTime),
    // A 5xx: the handler that failed has logged the error itself, with the same request id.
    customErrorObject: (req, res, _error, value: { responseTime: number }) => lineOf(req, res, value.responseTime),
    customSuccessMessage: (_req, res) => (res.writableFinished ? 'request completed' : 'request aborted'),
    customErrorMessage: (_req, res) => (res.writableFinished ? 'request completed' : 'request aborted'),
  });
  return (req, res, next) => middleware(req, res, next);
}

function accessLine(req: Request, res: Response, durationMs: number): AccessLine {
  const principal = res.locals['principal'] as Principal | undefined;
  const correlationId = res.getHeader('X-Correlation-Id');
  const route = routeOf(req, res);
  return {
    requestId: String(res.getHeader('X-Request-Id') ?? req.id),
    ...(typeof correlationId === 'string' ? { correlationId } : {}),
    ...(principal ? { principalId: principal.id } : {}),
    method: req.method,
    path: pathOf(req),
    ...(route ? { route } : {}),
    status: res.statusCode,
    durationMs,
    ...(res.writableFinished ? {} : { aborted: true as const }),
  };
}

function pathOf(req: IncomingMessage): string {
  const url = (req as Partial<Request>).originalUrl ?? req.url ?? '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The pattern of the route that answered: its router's mount point and its own path; undefined when none matched. */
export function routeOf(req: Request, res: Response): string | undefined {
  const path: unknown = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string') return undefined;
  const mountedAt = res.locals[MOUNTED_AT];
  return (typeof mountedAt === 'string' ? mountedAt : '') + path;
}
