// `GET /events/stream`: every new event of the log as Server-Sent Events, for pages that show the read side live.
// Only what an event is (position, stream, type, time) goes out; a page re-reads what it shows through the query API.
import express, { type Request, type Response, type Router } from 'express';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { sendProblem } from '../../adapters/http/problem.js';
import { bearerChallenge, bearerToken, presentsBearerToken } from '../../adapters/http/bearer.js';
import type { AccessService } from '../../commands/access.js';
import { Unauthenticated } from '../../commands/access.js';
import { BadRequest, Forbidden, toProblem } from '../../commands/http/problems.js';
import { rolesFrom, type Principal, type Role } from '../../domain/access.js';
import { InvalidEventStoreRequest, type EventStore, type Position, type RecordedEvent, type Subscription } from '../../domain/event-store.js';
import { PROJECTION_REGISTRY } from '../runtime.js';

export interface LiveRoutesOptions {
  store: EventStore;
  access: Pick<AccessService, 'authenticate'>;
  /**
   * Where a stream without `Last-Event-ID` starts: a checkpoint no newer than anything the read side shows now, so
   * that a page which opens the stream first and reads the query API second misses no change (see `readSideFloor`).
   */
  start: () => Promise<Position | undefined>;
  logger: Logger;
  /** A comment line this often keeps proxies and the browser from closing an idle stream; 15 s unless given. */
  heartbeatMs?: number;
}

/** Who may follow the log live: whoever may read the query API. */
export const LIVE_ROLES: readonly Role[] = rolesFrom('viewer', { system: true });
export const LIVE_PATH = '/events/stream';

/** What each Server-Sent Event carries, as its `data:` line (JSON); the event's `id:` is `position`. */
export interface LiveEvent {
  position: Position;
  stream: string;
  type: string;
  recordedAt: string;
}

/**
 * The lowest checkpoint of any projection (their registry): every read model has applied everything up to it, so
 * the read side shows no event after it that a stream started there would not send. A projection that has
 * applied nothing yet is left out: a fresh one would otherwise replay the whole log to every page.
 */
export function readSideFloor(knex: Knex): () => Promise<Position | undefined> {
  return async () => {
    const row = (await knex(PROJECTION_REGISTRY).whereNotNull('position').min({ floor: 'position' }).first()) as { floor: string | null } | undefined;
    return row?.floor ?? undefined;
  };
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
    try {
      const principal = await authenticate(req, options.access);
      if (!LIVE_ROLES.includes(principal.role)) {
        throw new Forbidden(`role ${principal.role} may not follow the log; it needs one of: ${LIVE_ROLES.join(', ')}`);
      }
      const [unknown] = Object.keys(req.query);
      if (unknown !== undefined) {
        throw new BadRequest(400, `unknown query parameter ${JSON.stringify(unknown)}: GET ${LIVE_PATH} takes none (resume with the Last-Event-ID header)`, [
          { path: unknown, message: 'this route takes no query parameters' },
        ]);
      }
      const resume = req.get('last-event-id');
      if (resume !== undefined && !/^[\x21-\x7e]{1,128}$/.test(resume)) {
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

    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
    let closed = false;
    const end = async () => {
      closed = true;
      clearInterval(heartbeat);
      open.delete(end);
      await subscription.close();
    };
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

async function authenticate(req: Request, access: Pick<AccessService, 'authenticate'>): Promise<Principal> {
  const header = req.get('authorization');
  if (!header) throw new Unauthenticated('this route needs a bearer token: Authorization: Bearer <token>');
  const token = bearerToken(header);
  if (token === undefined) throw new Unauthenticated('the Authorization header must be "Bearer <token>"');
  return access.authenticate(token);
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
