// `GET /events/stream`: every new event of the log as Server-Sent Events, for pages that show the read side live.
// Only what an event is (position, stream, type, time) goes out; a page re-reads what it shows through the query API.
// The bearer token is checked when the stream opens and again while it is open: the stream ends when the token
// expires, and at the first heartbeat after its login is ended, its user disabled or its service account revoked.
import { decodeJwt } from 'jose';
import express, { type Request, type Response, type Router } from 'express';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { z } from 'zod';
import { sendProblem } from '../../adapters/http/problem.js';
import { bearerChallenge, bearerToken, presentsBearerToken } from '../../adapters/http/bearer.js';
import type { AccessService } from '../../commands/access.js';
import { Unauthenticated } from '../../commands/access.js';
import { BadRequest, Forbidden, toProblem } from '../../commands/http/problems.js';
import { rolesFrom, type Principal, type Role } from '../../domain/access.js';
import { InvalidEventStoreRequest, type EventStore, type Position, type RecordedEvent, type Subscription } from '../../domain/event-store.js';
import { projectionFloor } from '../../adapters/postgres/checkpoints.js';

export interface LiveRoutesOptions {
  store: EventStore;
  access: Pick<AccessService, 'authenticate'>;
  /**
   * Where a stream without `Last-Event-ID` starts: a checkpoint no newer than anything the read side shows now, so
   * that a page which opens the stream first and reads the query API second misses no change (see `readSideFloor`).
   */
  start: () => Promise<Position | undefined>;
  logger: Logger;
  /**
   * A comment line this often keeps proxies and the browser from closing an idle stream, and the token is checked
   * again as it is sent (`access.authenticate`: a token revoked since the stream opened ends it); 15 s unless given.
   */
  heartbeatMs?: number;
  /** When a token stops being valid by itself (undefined: never); the JWT's `exp` claim unless given. */
  expiresAt?: (token: string) => Date | undefined;
}

/** Who may follow the log live: whoever may read the query API. */
export const LIVE_ROLES: readonly Role[] = rolesFrom('viewer', { system: true });
export const LIVE_PATH = '/events/stream';

/** The frame that ends a stream whose token is no longer valid; its data is the problem a request would get (401). */
export const LIVE_UNAUTHENTICATED_EVENT = 'unauthenticated';

/** What each Server-Sent Event carries, as its `data:` line (JSON); the event's `id:` is `position`. */
export const liveEvent = z
  .object({
    position: z.string().describe('the event’s position in the log; also the `id:` of its frame, to resume after with Last-Event-ID'),
    stream: z.string().describe('the stream it was appended to, `<category>-<id>`'),
    type: z.string().describe('the event type, e.g. DeploymentScaled'),
    recordedAt: z.string().describe('when it was recorded, ISO 8601'),
  })
  .describe('LiveEvent: what an `appended` frame carries');
export type LiveEvent = z.infer<typeof liveEvent>;

const RESUME_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The OpenAPI path item of the stream, which is served beside the route table (its answer does not end, and is not
 * JSON): for the document to list with the table's routes.
 */
export const LIVE_OPENAPI_PATHS: Record<string, Record<string, unknown>> = {
  [LIVE_PATH]: {
    get: {
      operationId: 'followEvents',
      summary: 'Follow the log live, as Server-Sent Events',
      description:
        'Every event appended after the start, as one `appended` frame each (`id:` its position, `data:` a LiveEvent), in log order, ' +
        'with a `: heartbeat` comment every 15 s. Without Last-Event-ID the stream starts where the slowest projection stands, so a ' +
        'client that opens it first and reads the query API second misses no change. The token is checked again at each heartbeat ' +
        'and the stream ends when it expires: a last `unauthenticated` frame (data: the problem, status 401) says why; refresh the ' +
        'token and reconnect with Last-Event-ID.',
      tags: ['queries'],
      'x-sentinel-roles': LIVE_ROLES,
      parameters: [
        {
          name: 'Last-Event-ID',
          in: 'header',
          required: false,
          description: 'resume after this event: the `id:` of the last frame received (a log position); only later events are sent',
          schema: { type: 'string', pattern: RESUME_ID.source },
        },
        {
          name: 'X-Correlation-Id',
          in: 'header',
          required: false,
          description: "ties the request to a caller's id; echoed back, and a request id is used when absent or not valid",
          schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
        },
      ],
      responses: {
        200: {
          description: 'a stream of Server-Sent Events that does not end by itself',
          headers: { 'X-Correlation-Id': { description: "the X-Correlation-Id sent, or this request's id", schema: { type: 'string' } } },
          content: {
            'text/event-stream': {
              schema: { type: 'string', description: 'frames `id: <position>`, `event: appended`, `data: <LiveEvent as JSON>`; a last `event: unauthenticated` frame carries a Problem' },
              'x-sentinel-events': {
                appended: { id: 'the event’s position', data: jsonSchema(liveEvent) },
                [LIVE_UNAUTHENTICATED_EVENT]: { data: { $ref: '#/components/schemas/Problem' } },
              },
            },
          },
        },
        400: problemResponse('a query parameter was given (the route takes none), or Last-Event-ID is not a position this stream sent'),
        401: problemResponse('no valid bearer token'),
        403: problemResponse('the caller’s role may not do this'),
      },
    },
  },
};

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12' });
  return rest;
}

function problemResponse(description: string) {
  return { description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
}

/**
 * The lowest checkpoint of any projection (their registry): every read model has applied everything up to it, so
 * the read side shows no event after it that a stream started there would not send. A projection that has
 * applied nothing yet is left out: a fresh one would otherwise replay the whole log to every page.
 */
export function readSideFloor(knex: Knex): () => Promise<Position | undefined> {
  return () => projectionFloor(knex);
}

export interface LiveRouter extends Router {
  /**
   * Ends every open stream (a shutdown): a server waits for open connections as it closes, and a stream never ends
   * by itself. Clients reconnect, to another instance when this one is gone, and resume from their last event.
   */
  endStreams(): Promise<void>;
}

/** The router to mount at /api/v1, beside the command and query routes. */
export function liveRoutes(options: LiveRoutesOptions): LiveRouter {
  const router = express.Router() as LiveRouter;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const open = new Set<() => Promise<void>>();
  router.endStreams = async () => {
    await Promise.all([...open].map((end) => end()));
  };

  router.get(LIVE_PATH, async (req: Request, res: Response) => {
    let subscription: Subscription;
    let token: string;
    try {
      token = bearerOf(req);
      await allowed(token, options.access);
      const [unknown] = Object.keys(req.query);
      if (unknown !== undefined) {
        throw new BadRequest(400, `unknown query parameter ${JSON.stringify(unknown)}: GET ${LIVE_PATH} takes none (resume with the Last-Event-ID header)`, [
          { path: unknown, message: 'this route takes no query parameters' },
        ]);
      }
      const resume = req.get('last-event-id');
      if (resume !== undefined && !RESUME_ID.test(resume)) {
        throw new BadRequest(400, 'Last-Event-ID must be the id of an event this stream sent (a log position)', [
          { path: 'Last-Event-ID', message: 'a log position, as the id: of an event this stream sent' },
        ]);
      }
      const after = resume ?? (await options.start());
      // The store checks the position as it opens the subscription: one it cannot read is the caller's mistake.
      subscription = subscribeFrom(options.store, after, resume !== undefined);
    } catch (error) {
      refuse(req, res, error, options.logger);
      return;
    }

    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    // A proxy that buffers would hold events back until the buffer fills.
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    // The browser waits this long before it reconnects on its own (an EventSource does; a fetch reader may read it).
    res.write('retry: 1000\n\n');

    let closed = false;
    let expiry: NodeJS.Timeout | undefined;
    const end = async () => {
      closed = true;
      clearInterval(heartbeat);
      clearTimeout(expiry);
      open.delete(end);
      await subscription.close();
    };
    /** Tells the client why (the problem a request with this token now gets), and ends the stream. */
    const refuseFromNow = async (error: Unauthenticated | Forbidden) => {
      if (closed) return;
      const { headers: _headers, ...problem } = toProblem(error)!;
      res.write(`event: ${LIVE_UNAUTHENTICATED_EVENT}\ndata: ${JSON.stringify(problem)}\n\n`);
      await end();
    };
    let checking = false;
    const heartbeat = setInterval(() => {
      res.write(': heartbeat\n\n');
      if (checking) return;
      checking = true;
      allowed(token, options.access)
        .catch(async (error: unknown) => {
          if (error instanceof Unauthenticated || error instanceof Forbidden) return refuseFromNow(error);
          // Not an answer about the token (the principal store did not answer): checked again at the next heartbeat.
          options.logger.warn({ err: error }, 'checking the token of a live event stream failed; checking again at the next heartbeat');
        })
        .finally(() => (checking = false));
    }, heartbeatMs);
    const expiresAt = (options.expiresAt ?? jwtExpiry)(token);
    if (expiresAt !== undefined) {
      expiry = setTimeout(
        () => void refuseFromNow(new Unauthenticated('the token has expired; refresh it and reconnect with Last-Event-ID')),
        Math.min(MAX_TIMER_MS, Math.max(0, expiresAt.getTime() - Date.now())),
      );
    }
    open.add(end);
    req.on('close', () => void end());
    try {
      for await (const event of subscription) {
        if (closed) break;
        if (!res.write(frame(event))) await drained(res);
      }
    } catch (error) {
      // The stream cannot go on (the store went away); the client reconnects from the last id it saw.
      if (!closed) options.logger.warn({ err: error }, 'live event stream ended by a failed read; the client resumes on reconnect');
    } finally {
      await end();
      res.end();
    }
  });
  return router;
}

function subscribeFrom(store: EventStore, after: Position | undefined, resumed: boolean): Subscription {
  try {
    return store.subscribe(after === undefined ? {} : { after });
  } catch (error) {
    if (!resumed || !(error instanceof InvalidEventStoreRequest)) throw error;
    throw new BadRequest(400, `Last-Event-ID: ${error.message}`, [{ path: 'Last-Event-ID', message: 'a log position, as the id: of an event this stream sent' }]);
  }
}

/** Resolves when the client has taken what was written (or has gone), leaving no listener behind. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function frame(event: RecordedEvent): string {
  const data: LiveEvent = { position: event.position, stream: event.stream, type: event.type, recordedAt: event.recordedAt.toISOString() };
  return `id: ${event.position}\nevent: appended\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Longest delay a Node.js timer takes; a token valid for longer is checked again before it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function bearerOf(req: Request): string {
  const header = req.get('authorization');
  if (!header) throw new Unauthenticated('this route needs a bearer token: Authorization: Bearer <token>');
  const token = bearerToken(header);
  if (token === undefined) throw new Unauthenticated('the Authorization header must be "Bearer <token>"');
  return token;
}

/** The principal the token stands for now, if it may follow the log; throws `Unauthenticated` or `Forbidden`. */
async function allowed(token: string, access: Pick<AccessService, 'authenticate'>): Promise<Principal> {
  const principal = await access.authenticate(token);
  if (!LIVE_ROLES.includes(principal.role)) {
    throw new Forbidden(`role ${principal.role} may not follow the log; it needs one of: ${LIVE_ROLES.join(', ')}`);
  }
  return principal;
}

/** The `exp` claim of a JWT the access service has verified already; undefined for a token without one (a service account's). */
function jwtExpiry(token: string): Date | undefined {
  const { exp } = decodeJwt(token);
  return exp === undefined ? undefined : new Date(exp * 1000);
}

function refuse(req: Request, res: Response, error: unknown, logger: Logger): void {
  const problem = toProblem(error);
  if (!problem) {
    logger.error({ err: error, path: req.path }, 'opening the live event stream failed');
    sendProblem(res, { type: 'urn:sentinel:problem:internal-error', title: 'Internal Server Error', status: 500, detail: 'the stream could not be opened; see the server log' });
    return;
  }
  const { headers, ...body } = problem;
  for (const [name, value] of Object.entries(headers ?? {})) res.setHeader(name, value);
  if (problem.status === 401 && presentsBearerToken(req.get('authorization'))) {
    res.setHeader('WWW-Authenticate', bearerChallenge(problem.detail ?? 'the token was refused'));
  }
  sendProblem(res, body);
}
