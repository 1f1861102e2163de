// The live event stream checks its bearer token while it is open, not only when it opens: a stream ends when its
// token expires, and at the next heartbeat after its login is ended or its service account revoked, with a last
// frame that says why. A valid token's stream goes on through its re-checks. Real access service, tokens and log
// (PGlite); heartbeats every 50 ms so that re-checks come quickly.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { scryptPasswords } from '../../adapters/auth/passwords.js';
import { JwtTokens } from '../../adapters/auth/jwt-tokens.js';
import { PostgresLoginThrottle } from '../../adapters/auth/login-throttle.js';
import { PostgresPrincipalStore } from '../../adapters/auth/principal-store.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { createHttpApp, listen, type RunningHttpServer } from '../../adapters/http/server.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { AccessService, Unauthenticated } from '../../commands/access.js';
import { LIVE_OPENAPI_PATHS, LIVE_PATH, LIVE_UNAUTHENTICATED_EVENT, liveEvent, liveRoutes, type LiveRouter } from '../../projections/http/live-routes.js';
import { eventually } from '../support/eventually.js';
import { anEvent, uniqueStream } from '../support/events.js';
import { readEventStream, type StreamedEvent } from '../support/console-browser.js';
import { rejection } from '../support/rejection.js';

const SECRET = new TextEncoder().encode('a-signing-secret-for-the-live-stream-test');
const HEARTBEAT_MS = 50;
const context = { actor: { id: 'test', kind: 'system' as const }, correlationId: randomUUID(), causationId: randomUUID() };

describe('GET /events/stream while it is open', function () {
  this.timeout(30_000);
  let db: Database;
  let store: PostgresEventStore;
  let server: RunningHttpServer;
  let live: LiveRouter;
  /** A stream whose heartbeat (and so its re-check) is far off: only the expiry timer can end it soon. */
  let unhurried: LiveRouter;
  let url: string;
  let unhurriedUrl: string;
  /** Access tokens of `shortLived` expire a second or two after they are issued; `access`'s after ten minutes. */
  let access: AccessService;
  let shortLived: AccessService;
  /** How often the stream has asked whether a token is still good. */
  let checks = 0;

  const service = (accessTtlSeconds: number) =>
    new AccessService(new PostgresPrincipalStore(db.knex), new JwtTokens({ secret: SECRET, accessTtlSeconds, refreshTtlSeconds: 3600 }), scryptPasswords, store, {
      throttle: new PostgresLoginThrottle(db.knex),
      login: { maxFailures: 1000, addressMaxFailures: 100_000, lockSeconds: 900 },
    });

  let counter = 0;
  const signedIn = async (via: AccessService = access) => {
    const username = `live-${++counter}`;
    const password = `${username}-password-long-enough`;
    const { id } = await access.createUser({ username, password, role: 'viewer' }, context);
    return { id, ...(await via.login(username, password)) };
  };

  /** Reads the stream until it ends (or `until` says enough); `opened` runs once it has answered. */
  const follow = (token: string, opened?: () => Promise<unknown>, until: (events: StreamedEvent[]) => boolean = () => false) =>
    readEventStream(url, { authorization: `Bearer ${token}` }, until, opened);

  const endedBecause = (events: StreamedEvent[]) => {
    const last = events.at(-1);
    expect(last?.event, 'the last frame says why the stream ended').to.equal(LIVE_UNAUTHENTICATED_EVENT);
    const problem = JSON.parse(last!.data) as { type: string; status: number; detail: string };
    expect(problem.type).to.equal('urn:sentinel:problem:unauthenticated');
    expect(problem.status).to.equal(401);
    return problem.detail;
  };

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    access = service(600);
    shortLived = service(1);
    const counted: Pick<AccessService, 'authenticate'> = {
      authenticate: (token) => {
        checks += 1;
        // Both services verify with the same key and read the same principals: either answers for any token.
        return access.authenticate(token);
      },
    };
    live = liveRoutes({ store, access: counted, start: async () => undefined, logger: pino({ level: 'silent' }), heartbeatMs: HEARTBEAT_MS });
    unhurried = liveRoutes({ store, access: counted, start: async () => undefined, logger: pino({ level: 'silent' }), heartbeatMs: 600_000 });
    const app = createHttpApp({
      logger: pino({ level: 'silent' }),
      metrics: new Registry(),
      readiness: async () => undefined,
      routers: [
        { path: '/api/v1', router: live },
        { path: '/unhurried', router: unhurried },
      ],
    });
    server = await listen(app, '127.0.0.1', 0);
    url = `http://127.0.0.1:${server.port}/api/v1${LIVE_PATH}`;
    unhurriedUrl = `http://127.0.0.1:${server.port}/unhurried${LIVE_PATH}`;
  });
  after(async () => {
    await live?.endStreams();
    await unhurried?.endStreams();
    await server?.close(1000);
    await store?.close();
    await db?.close();
  });

  it('goes on through its re-checks while the token is good, and sends what is appended after them', async () => {
    const { accessToken } = await signedIn();
    const stream = uniqueStream('live');
    const followed = await follow(
      accessToken,
      async () => {
        const before = checks;
        await eventually('three re-checks of the token', async () => checks - before, (made) => made >= 3, 10_000);
        await store.append(stream, [anEvent('LiveStreamChecked')]);
      },
      (events) => events.some((event) => event.event === 'appended' && liveEvent.parse(JSON.parse(event.data)).stream === stream),
    );
    expect(followed.status).to.equal(200);
    expect(followed.comments.filter((comment) => comment === ': heartbeat').length).to.be.greaterThanOrEqual(3);
    expect(followed.events.map((event) => event.event)).to.not.include(LIVE_UNAUTHENTICATED_EVENT);
  });

  it('ends when its token expires, saying so, without waiting for a heartbeat', async () => {
    const { accessToken } = await signedIn(shortLived);
    // Its next heartbeat is ten minutes away: only the timer at the token's expiry ends it within this test.
    const followed = await readEventStream(unhurriedUrl, { authorization: `Bearer ${accessToken}` }, () => false);
    expect(followed.status).to.equal(200);
    expect(endedBecause(followed.events)).to.match(/expired/);
    // And the token is refused from now on, so the client refreshes before it reconnects.
    expect(await rejection(access.authenticate(accessToken))).to.be.instanceOf(Unauthenticated);
  });

  it('ends at the next re-check once its login is ended (its refresh token presented twice)', async () => {
    const { accessToken, refreshToken } = await signedIn();
    const followed = await follow(accessToken, async () => {
      await access.refresh(refreshToken);
      // The second presentation revokes every token of the login, the stream's among them.
      expect(await rejection(access.refresh(refreshToken))).to.be.instanceOf(Unauthenticated);
    });
    expect(followed.status).to.equal(200);
    expect(endedBecause(followed.events)).to.match(/ended|revoked/);
  });

  it('ends at the next re-check once its user is disabled', async () => {
    const { id, accessToken } = await signedIn();
    const followed = await follow(accessToken, () => access.updateUser(id, { disabled: true }, context));
    expect(endedBecause(followed.events)).to.match(/disabled/);
  });

  it('ends at the next re-check once its service account is revoked', async () => {
    const account = await access.createServiceAccount({ name: `live-${randomUUID().slice(0, 8)}` }, context);
    const followed = await follow(account.token, () => access.revokeServiceAccount(account.id, context));
    expect(endedBecause(followed.events)).to.match(/revoked/);
  });

  it('is described for the OpenAPI document: text/event-stream, Last-Event-ID, and what each frame carries', () => {
    const operation = LIVE_OPENAPI_PATHS[LIVE_PATH]!['get'] as {
      parameters: { name: string; in: string; schema: { pattern: string } }[];
      responses: Record<string, { content: Record<string, { 'x-sentinel-events'?: Record<string, { data: { required?: string[] } }> }> }>;
    };
    const resume = operation.parameters.find((parameter) => parameter.name === 'Last-Event-ID');
    expect(resume?.in).to.equal('header');
    // The ids this stream sends are what the header accepts.
    expect(new RegExp(resume!.schema.pattern).test('0000000000000302-0000000000000004')).to.equal(true);
    const stream = operation.responses['200']!.content['text/event-stream']!;
    expect(Object.keys(stream['x-sentinel-events']!).sort()).to.deep.equal(['appended', LIVE_UNAUTHENTICATED_EVENT].sort());
    expect(stream['x-sentinel-events']!['appended']!.data.required).to.have.members(['position', 'stream', 'type', 'recordedAt']);
    expect(Object.keys(operation.responses).sort()).to.deep.equal(['200', '400', '401', '403']);
  });
});
