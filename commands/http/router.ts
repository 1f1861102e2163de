// Builds the /api/v1 express router from route rows: authentication, RBAC, strict bodies, idempotency, problems.
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import { sendProblem } from '../../adapters/http/problem.js';
import type { Principal } from '../../domain/access.js';
import { Unauthenticated, type AccessService } from '../access.js';
import type { CommandContext } from '../command-handler.js';
import { derivedIds, once, requestHash, type IdempotencyStore, type StoredResponse } from '../idempotency.js';
import { BadRequest, Forbidden, toProblem, validationProblem, type HttpProblem } from './problems.js';
import type { Route, RouteReply } from './route.js';

export interface CommandRouterOptions {
  routes: readonly Route[];
  access: Pick<AccessService, 'authenticate'>;
  idempotency: IdempotencyStore;
  logger: Logger;
  /** Largest accepted JSON body. */
  bodyLimitBytes?: number;
}

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export function createCommandRouter(options: CommandRouterOptions): Router {
  const router = express.Router();
  const json = express.json({ limit: options.bodyLimitBytes ?? 1024 * 1024, type: ['application/json', 'application/*+json'], strict: false });

  for (const route of options.routes) {
    // Who is asking is settled before the body is read: a caller without access learns nothing from parsing.
    const guard = async (req: Request, res: Response, next: NextFunction) => {
      const requestId = randomUUID();
      res.locals['requestId'] = requestId;
      res.setHeader('X-Request-Id', requestId);
      res.setHeader('X-Correlation-Id', headerMatching(req, 'x-correlation-id', CORRELATION_ID) ?? requestId);
      try {
        const principal = route.access === 'public' ? undefined : await authenticate(req, options.access);
        if (principal && route.access !== 'public' && !route.access.includes(principal.role)) {
          throw new Forbidden(`role ${principal.role} may not ${route.summary.toLowerCase()}; it needs one of: ${route.access.join(', ')}`);
        }
        res.locals['principal'] = principal;
        res.locals['emergency'] = emergency(req, principal);
        next();
      } catch (error) {
        fail(req, res, error);
      }
    };

    router[route.method](route.path, guard, json, async (req: Request, res: Response) => {
      const principal = res.locals['principal'] as Principal | undefined;
      const requestId = res.locals['requestId'] as string;
      try {
        const body = parseBody(req, route);
        const context: CommandContext = {
          actor: principal ? { id: principal.id, kind: principal.kind } : { id: 'anonymous', kind: 'user' },
          correlationId: res.getHeader('X-Correlation-Id') as string,
          causationId: requestId,
          traceparent: headerMatching(req, 'traceparent', TRACEPARENT),
          source: 'api',
          ...(res.locals['emergency'] ? { emergency: res.locals['emergency'] as { justification: string } } : {}),
        };
        const params = req.params as Record<string, string>;
        const query = firstValues(req.query);
        const key = route.idempotent && principal ? idempotencyKey(req) : undefined;

        if (!key) {
          send(res, await run(route, { body, params, query, principal, context, newId: randomUUID }));
          return;
        }
        const idempotent = { principalId: principal!.id, key, requestHash: requestHash(req.method, req.path, req.body) };
        const ids = derivedIds(idempotent);
        const reply = await once(options.idempotency, idempotent, async () =>
          run(route, { body, params, query, principal, context: { ...context, eventIds: ids.eventIds }, newId: () => ids.resourceId }),
        );
        if (reply.replayed) res.setHeader('Idempotent-Replayed', 'true');
        send(res, reply);
      } catch (error) {
        fail(req, res, error);
      }
    });
  }

  const fail = (req: Request, res: Response, error: unknown) => {
    const problem = toProblem(error);
    if (problem) {
      sendHttpProblem(res, problem);
      return;
    }
    const requestId = res.locals['requestId'] as string;
    options.logger.error({ err: error, method: req.method, path: req.path, requestId }, 'command failed');
    sendProblem(res, { title: 'Internal Server Error', status: 500, detail: `the request failed; see the server log for request ${requestId}` });
  };

  router.use((error: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    const problem = bodyParserProblem(error);
    if (!problem) {
      next(error);
      return;
    }
    sendHttpProblem(res, problem);
  });
  return router;
}

/** Runs a route's handler and turns a domain refusal into a reply, so idempotency can keep it. */
async function run(route: Route, request: Parameters<Route['handle']>[0]): Promise<RouteReply & StoredResponse> {
  try {
    return await route.handle(request);
  } catch (error) {
    const problem = toProblem(error);
    if (!problem || problem.status === 401 || problem.status === 403) throw error;
    return { status: problem.status, body: { problem } };
  }
}

function send(res: Response, reply: RouteReply | StoredResponse): void {
  const body = reply.body as { problem?: HttpProblem } | undefined;
  if (body?.problem) {
    sendHttpProblem(res, body.problem);
    return;
  }
  if ('location' in reply && reply.location) res.setHeader('Location', `/api/v1${reply.location}`);
  res.status(reply.status).json(reply.body);
}

function sendHttpProblem(res: Response, { headers, ...problem }: HttpProblem): void {
  for (const [name, value] of Object.entries(headers ?? {})) res.setHeader(name, value);
  sendProblem(res, problem);
}

async function authenticate(req: Request, access: Pick<AccessService, 'authenticate'>): Promise<Principal> {
  const header = req.get('authorization');
  if (!header) throw new Unauthenticated('this route needs a bearer token: Authorization: Bearer <token>');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new Unauthenticated('the Authorization header must be "Bearer <token>"');
  return access.authenticate(match[1]!);
}

function parseBody(req: Request, route: Route): unknown {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (!route.body) {
    if (hasBody) throw new BadRequest(400, `${req.method} ${req.path} takes no body`);
    return undefined;
  }
  if (hasBody && !req.is('application/json') && !req.is('application/*+json')) {
    throw new BadRequest(415, `send the body as application/json (got ${req.get('content-type') ?? 'no Content-Type'})`);
  }
  const raw: unknown = hasBody ? req.body : route.bodyOptional ? {} : undefined;
  if (raw === undefined) throw new BadRequest(400, 'this route needs a JSON body', [{ path: '', message: 'a JSON object' }]);
  const unstorable = unstorableText(raw, []);
  if (unstorable) {
    throw new BadRequest(400, 'the request body is not valid', [
      { path: unstorable.join('.'), message: 'text may not contain NUL characters or unpaired UTF-16 surrogates' },
    ]);
  }
  const parsed = route.body.safeParse(raw);
  if (!parsed.success) throw validationProblem(parsed.error, raw);
  return parsed.data;
}

// NUL and unpaired surrogates are valid in a JSON string but not in PostgreSQL text or jsonb.
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The path of the first string (key or value) that no store could keep, if any. */
function unstorableText(value: unknown, path: string[]): string[] | undefined {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, inner] of Object.entries(value)) {
    if (UNSTORABLE.test(key)) return [...path, key];
    const found = unstorableText(inner, [...path, key]);
    if (found) return found;
  }
  return undefined;
}

/**
 * Break glass: `X-Sentinel-Emergency: <justification>` lets an admin's change through a change freeze, and the
 * decision records who declared the emergency and why. Anyone else sending it is refused.
 */
function emergency(req: Request, principal: Principal | undefined): { justification: string } | undefined {
  const justification = req.get('x-sentinel-emergency')?.trim();
  if (justification === undefined) return undefined;
  if (principal?.role !== 'admin') throw new Forbidden('only an admin may declare an emergency (X-Sentinel-Emergency)');
  if (justification.length < 10 || justification.length > 500) {
    throw new BadRequest(400, 'X-Sentinel-Emergency must give a justification of 10 to 500 characters', [
      { path: 'X-Sentinel-Emergency', message: 'a justification of 10 to 500 characters' },
    ]);
  }
  return { justification };
}

function idempotencyKey(req: Request): string | undefined {
  const key = req.get('idempotency-key');
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new BadRequest(400, 'Idempotency-Key must be 1 to 255 visible ASCII characters', [
      { path: 'Idempotency-Key', message: '1 to 255 visible ASCII characters, e.g. a UUID' },
    ]);
  }
  return key;
}

function firstValues(query: Request['query']): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') values[key] = first;
  }
  return values;
}

function headerMatching(req: Request, name: string, pattern: RegExp): string | undefined {
  const value = req.get(name);
  return value !== undefined && pattern.test(value) ? value : undefined;
}

/** Errors express.json raises before a route runs. */
function bodyParserProblem(error: { type?: string; status?: number; message: string }): HttpProblem | undefined {
  switch (error.type) {
    case 'entity.parse.failed':
      return toProblem(new BadRequest(400, `the body is not valid JSON: ${error.message}`));
    case 'entity.too.large':
      return toProblem(new BadRequest(413, `the body is larger than this server accepts (${error.message})`));
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return toProblem(new BadRequest(415, error.message));
    default:
      // Anything else the body parser refuses (a corrupt compressed body, a wrong length) is the client's.
      return error.status !== undefined && error.status >= 400 && error.status < 500
        ? toProblem(new BadRequest(400, `the body could not be read: ${error.message}`))
        : undefined;
  }
}
