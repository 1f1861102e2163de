// Builds the /api/v1 express router from route rows: authentication, RBAC, strict bodies, idempotency, problems.
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_ROUTE } from '@opentelemetry/semantic-conventions';
import { bearerChallenge, bearerToken, presentsBearerToken } from '../../adapters/http/bearer.js';
import { sendProblem } from '../../adapters/http/problem.js';
import { endServerSpan, startServerSpan, traceparentOf, within, type Span } from '../../adapters/tracing.js';
import type { Principal } from '../../domain/access.js';
import { Unauthenticated, type AccessService } from '../access.js';
import type { CommandContext } from '../command-handler.js';
import { derivedIds, once, requestHash, type IdempotencyStore, type StoredResponse } from '../idempotency.js';
import { BadRequest, Forbidden, toProblem, validationProblem, type HttpProblem } from './problems.js';
import { jsonLimitBroken, MAX_JSON_DEPTH, MAX_JSON_MEMBERS, unacceptableParameter, unstorableText } from './request-checks.js';
import type { Route, RouteReply } from './route.js';

export interface CommandRouterOptions {
  routes: readonly Route[];
  access: Pick<AccessService, 'authenticate'>;
  idempotency: IdempotencyStore;
  logger: Logger;
  /** Largest accepted JSON body; 256 KiB unless given. */
  bodyLimitBytes?: number;
  /** Largest accepted JSON body of a route anyone may call (login, refresh); 8 KiB unless given. */
  publicBodyLimitBytes?: number;
}

/** Thrown by the body parser's `verify` hook: the raw bytes are refused before they are parsed. */
class UnreadableBody extends Error {
  constructor(
    message: string,
    readonly status: 400 | 415,
    readonly type: string,
  ) {
    super(message);
  }
}

/**
 * Runs on the raw bytes before `JSON.parse`: a body that nests too deep or is too wide never reaches the parser
 * or anything that walks its result. Only UTF-8 is read (RFC 8259 §8.1), which is also what makes a byte scan exact.
 */
function verifyJson(_req: Request, _res: Response, bytes: Buffer, encoding: string | null): void {
  if (encoding !== null && encoding.toLowerCase() !== 'utf-8' && encoding.toLowerCase() !== 'utf8') {
    throw new UnreadableBody(`send JSON as UTF-8 (got charset ${encoding})`, 415, 'charset.unsupported');
  }
  const broken = jsonLimitBroken(bytes);
  if (broken === 'depth') {
    throw new UnreadableBody(`the body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`, 400, 'entity.too.deep');
  }
  if (broken === 'members') {
    throw new UnreadableBody(`the body has an array or object of more than ${MAX_JSON_MEMBERS} members`, 400, 'entity.too.wide');
  }
}

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export function createCommandRouter(options: CommandRouterOptions): Router {
  const router = express.Router();
  const jsonParser = (limit: number) => express.json({ limit, type: ['application/json', 'application/*+json'], strict: false, verify: verifyJson });
  // A body anyone may send without a token is kept small: it is the cheapest request to make many of.
  const publicJson = jsonParser(options.publicBodyLimitBytes ?? 8 * 1024);
  const json = jsonParser(options.bodyLimitBytes ?? 256 * 1024);

  for (const route of options.routes) {
    // Who is asking is settled before the body is read: a caller without access learns nothing from parsing.
    const guard = async (req: Request, res: Response, next: NextFunction) => {
      const requestId = randomUUID();
      res.locals['requestId'] = requestId;
      res.setHeader('X-Request-Id', requestId);
      res.setHeader('X-Correlation-Id', headerMatching(req, 'x-correlation-id', CORRELATION_ID) ?? requestId);
      const span = requestSpan(req, res, route, requestId);
      try {
        const principal = route.access === 'public' ? undefined : await within(span, () => authenticate(req, options.access));
        if (principal && route.access !== 'public' && !route.access.includes(principal.role)) {
          throw new Forbidden(`role ${principal.role} may not ${route.summary.toLowerCase()}; it needs one of: ${route.access.join(', ')}`);
        }
        res.locals['principal'] = principal;
        res.locals['emergency'] = emergency(req, principal);
        checkParameters(req);
        res.locals['query'] = parseQuery(req, route);
        next();
      } catch (error) {
        fail(req, res, error);
      }
    };

    const publicBody = route.access === 'public' || route.path.startsWith('/auth/');
    const handle = async (req: Request, res: Response) => {
      const principal = res.locals['principal'] as Principal | undefined;
      const requestId = res.locals['requestId'] as string;
      try {
        const body = parseBody(req, route);
        const context: CommandContext = {
          actor: principal ? { id: principal.id, kind: principal.kind } : { id: 'anonymous', kind: 'user' },
          correlationId: res.getHeader('X-Correlation-Id') as string,
          causationId: requestId,
          // The request's own span: the events it appends continue the caller's trace through it.
          traceparent: traceparentOf(res.locals['span'] as Span),
          source: 'api',
          ...(res.locals['emergency'] ? { emergency: res.locals['emergency'] as { justification: string } } : {}),
        };
        const params = req.params as Record<string, string>;
        const query = res.locals['query'] as Record<string, string>;
        const key = route.idempotent && principal ? idempotencyKey(req) : undefined;

        if (!key) {
          send(res, await run(route, { body, params, query, principal, context, newId: randomUUID, clientAddress: req.ip }));
          return;
        }
        const idempotent = { principalId: principal!.id, key, requestHash: requestHash(req.method, req.path, req.body) };
        const ids = derivedIds(idempotent);
        const reply = await once(options.idempotency, idempotent, async () =>
          run(route, { body, params, query, principal, context: { ...context, eventIds: ids.eventIds }, newId: () => ids.resourceId, clientAddress: req.ip }),
        );
        if (reply.replayed) res.setHeader('Idempotent-Replayed', 'true');
        send(res, reply);
      } catch (error) {
        fail(req, res, error);
      }
    };
    // The body is read between the guard and the handler, outside the request's span: it is made active again here.
    router[route.method](route.path, guard, publicBody ? publicJson : json, (req: Request, res: Response) => within(res.locals['span'] as Span, () => handle(req, res)));
  }

  const fail = (req: Request, res: Response, error: unknown) => {
    const problem = toProblem(error);
    if (problem) {
      sendHttpProblem(res, problem.status === 401 ? challenged(req, problem) : problem);
      return;
    }
    const requestId = res.locals['requestId'] as string;
    options.logger.error({ err: error, method: req.method, path: req.path, requestId }, 'command failed');
    sendProblem(res, { type: 'urn:sentinel:problem:internal-error', title: 'Internal Server Error', status: 500, detail: `the request failed; see the server log for request ${requestId}` });
  };

  router.use((error: Error & { type?: string; status?: number; limit?: number }, _req: Request, res: Response, next: NextFunction) => {
    const problem = bodyParserProblem(error);
    if (!problem) {
      next(error);
      return;
    }
    sendHttpProblem(res, problem);
  });
  return router;
}

/**
 * The request's span, named by its route as OpenTelemetry's HTTP conventions say, and ended with the response. It
 * continues the caller's `traceparent`.
 */
function requestSpan(req: Request, res: Response, route: Route, requestId: string): Span {
  const path = `${req.baseUrl}${route.path}`;
  const method = route.method.toUpperCase();
  const span = startServerSpan(`${method} ${path}`, headerMatching(req, 'traceparent', TRACEPARENT), {
    [ATTR_HTTP_REQUEST_METHOD]: method,
    [ATTR_HTTP_ROUTE]: path,
    'sentinel.request_id': requestId,
  });
  res.locals['span'] = span;
  res.once('close', () => endServerSpan(span, res.statusCode));
  return span;
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

/** RFC 6750 §3: a 401 says `error="invalid_token"` when a bearer token was sent and refused. */
function challenged(req: Request, problem: HttpProblem): HttpProblem {
  const tokenSent = presentsBearerToken(req.get('authorization'));
  return { ...problem, headers: { ...problem.headers, 'WWW-Authenticate': bearerChallenge(tokenSent ? (problem.detail ?? 'the token was refused') : undefined) } };
}

async function authenticate(req: Request, access: Pick<AccessService, 'authenticate'>): Promise<Principal> {
  const header = req.get('authorization');
  if (!header) throw new Unauthenticated('this route needs a bearer token: Authorization: Bearer <token>');
  const token = bearerToken(header);
  if (token === undefined) throw new Unauthenticated('the Authorization header must be "Bearer <token>"');
  return access.authenticate(token);
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
  const unstorable = unstorableText(raw);
  if (unstorable) {
    throw new BadRequest(400, 'the request body is not valid', [
      { path: unstorable.join('.'), message: 'text may not contain NUL characters or unpaired UTF-16 surrogates' },
    ]);
  }
  const parsed = route.body.safeParse(raw);
  if (!parsed.success) throw validationProblem(parsed.error, raw);
  return parsed.data;
}

/** Query and path parameters end up in SQL text and in messages: control characters are refused, naming the parameter. */
function checkParameters(req: Request): void {
  const found = unacceptableParameter(req.params as Record<string, unknown>, req.query as Record<string, unknown>);
  if (!found) return;
  const message = 'may not contain control characters (such as NUL) or unpaired UTF-16 surrogates';
  throw new BadRequest(400, `the ${found.in} parameter ${JSON.stringify(found.name)} ${message}`, [{ path: found.name, message }]);
}

/**
 * The query against the route's declared parameters: an unknown one, or a value that does not parse, is a 400
 * naming it and saying what is accepted.
 */
function parseQuery(req: Request, route: Route): unknown {
  const given = firstValues(req.query);
  if (!route.query) {
    const [name] = Object.keys(given);
    if (name === undefined) return {};
    throw new BadRequest(400, `unknown query parameter ${JSON.stringify(name)}: ${req.method} ${route.path} takes no query parameters`, [
      { path: name, message: 'this route takes no query parameters' },
    ]);
  }
  const parsed = route.query.safeParse(given);
  if (parsed.success) return parsed.data;
  const accepted = Object.keys(route.query.shape).join(', ');
  const errors = parsed.error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: key, message: `unknown query parameter; accepted are ${accepted}` }))
      : [{ path: issue.path.map(String).join('.'), message: issue.message }],
  );
  const named = errors.map((error) => `${error.path} (${error.message})`).join('; ');
  throw new BadRequest(400, `query parameters refused: ${named}`.slice(0, 1000), errors.slice(0, 20));
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

/** Errors express.json (and express's own path decoding) raise before a route runs. */
function bodyParserProblem(error: { type?: string; status?: number; limit?: number; message: string }): HttpProblem | undefined {
  switch (error.type) {
    case 'entity.parse.failed':
      return toProblem(new BadRequest(400, `the body is not valid JSON: ${error.message}`));
    case 'entity.too.large':
      return toProblem(
        new BadRequest(413, `the body is larger than the ${error.limit ?? 'allowed'} bytes this route accepts`, [
          { path: '', message: `at most ${error.limit ?? 'the allowed'} bytes` },
        ]),
      );
    case 'entity.too.deep':
      return toProblem(new BadRequest(400, error.message, [{ path: '', message: `at most ${MAX_JSON_DEPTH} levels of nested arrays and objects` }]));
    case 'entity.too.wide':
      return toProblem(new BadRequest(400, error.message, [{ path: '', message: `at most ${MAX_JSON_MEMBERS} members in each array and object` }]));
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return toProblem(new BadRequest(415, error.message));
    default:
      // Anything else refused before a route runs (a corrupt compressed body, a wrong length, a path that
      // does not decode) is the client's.
      return error.status !== undefined && error.status >= 400 && error.status < 500
        ? toProblem(new BadRequest(400, `the request could not be read: ${error.message}`))
        : undefined;
  }
}
