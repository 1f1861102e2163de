// Login abuse: failed logins back off and then lock, per user name and per client address; the counters live
// in the database (every process, every restart); an unknown name answers exactly as a known one does; and the
// record of it all (events, metric, log) never holds a password.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { pino } from 'pino';
import { JwtTokens } from '../../adapters/auth/jwt-tokens.js';
import { PostgresLoginThrottle } from '../../adapters/auth/login-throttle.js';
import { scryptPasswords } from '../../adapters/auth/passwords.js';
import { PostgresPrincipalStore } from '../../adapters/auth/principal-store.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import type { Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { AccessService, addressKey, LoginThrottled, Unauthenticated, type LoginResult, type LoginSettings } from '../../commands/access.js';
import { backoffSeconds, loginWait, type LoginCounter } from '../../domain/access.js';
import { databases } from '../support/databases.js';
import { backends, type TestApi } from '../support/sentinel-api.js';

const PASSWORD = 'the-right-password';
const LIMITS: LoginSettings = { maxFailures: 5, addressMaxFailures: 50, lockSeconds: 900 };

/** The outcome of one login, as a client sees it: ok, 401, or 429 with its wait. */
async function attempt(login: () => Promise<unknown>): Promise<string> {
  try {
    await login();
    return 'ok';
  } catch (error) {
    if (error instanceof LoginThrottled) return `${error.locked ? 'locked' : 'throttled'} ${error.retryAfterSeconds}s`;
    if (error instanceof Unauthenticated) return 'failed';
    throw error;
  }
}

describe('login throttle rules', () => {
  const limit = { maxFailures: 5, lockSeconds: 900 };
  const at = (seconds: number) => new Date(Date.UTC(2030, 0, 1) + seconds * 1000);
  const counter = (failures: number, last: number, lockedUntil?: number): LoginCounter => ({
    failures,
    lastFailureAt: at(last),
    lockedUntil: lockedUntil === undefined ? null : at(lockedUntil),
  });

  it('given failures under half the limit, then no wait; beyond it 1, 2, 4 … seconds, never more than the lock', () => {
    expect([0, 1, 2, 3, 4].map((f) => backoffSeconds(f, limit))).to.deep.equal([0, 0, 0, 1, 2]);
    expect(backoffSeconds(40, { maxFailures: 50, lockSeconds: 900 })).to.equal(900);
  });

  it('given a lock, then the wait is what is left of it; once it has run out, or the failures are old, nothing is remembered', () => {
    expect(loginWait(counter(5, 0, 900), at(100), limit)).to.deep.equal({ seconds: 800, locked: true });
    expect(loginWait(counter(5, 0, 900), at(900), limit)).to.equal(undefined);
    expect(loginWait(counter(4, 0), at(1), limit)).to.deep.equal({ seconds: 1, locked: false });
    expect(loginWait(counter(4, 0), at(2), limit)).to.equal(undefined);
    expect(loginWait(counter(4, 0), at(900), limit)).to.equal(undefined);
  });

  it('keys an IPv6 client by its /64 and an IPv4-mapped one by its IPv4 address', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).to.equal('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).to.equal('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).to.equal('2001:db8:0:0::/64');
    expect(addressKey('::1')).to.equal('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).to.equal('fe80:0:0:0::/64');
    expect(addressKey('::ffff:192.0.2.7')).to.equal('192.0.2.7');
    expect(addressKey('192.0.2.7')).to.equal('192.0.2.7');
    expect(addressKey(undefined)).to.equal('unknown');
  });
});

for (const database of databases) {
  describe(`login throttle on ${database.name} (AccessService, injected clock)`, function () {
    this.timeout(60_000);
    let db: Database;
    let drop: () => Promise<void>;
    let store: PostgresEventStore;
    let now: Date;
    const results: LoginResult[] = [];
    const logged: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) });
    const context = { actor: { id: 'test', kind: 'system' as const }, correlationId: randomUUID(), causationId: randomUUID() };

    /** A service as one api process would build it; two of them share the database as two processes do. */
    const service = (limits: LoginSettings = LIMITS) =>
      new AccessService(
        new PostgresPrincipalStore(db.knex),
        new JwtTokens({ secret: new TextEncoder().encode('y'.repeat(32)), accessTtlSeconds: 60, refreshTtlSeconds: 600 }),
        scryptPasswords,
        store,
        {
          throttle: new PostgresLoginThrottle(db.knex),
          login: limits,
          clock: { now: () => now },
          metrics: { login: (result) => results.push(result) },
          logger,
        },
      );
    const advance = (seconds: number) => (now = new Date(now.getTime() + seconds * 1000));
    let counter = 0;
    const newUser = async () => {
      const username = `throttled-${++counter}`;
      const { id } = await service().createUser({ username, password: PASSWORD, role: 'operator' }, context);
      return { id, username };
    };

    before(async function () {
      if (database.skipReason) this.skip();
      ({ db, drop } = await database.open());
      store = await PostgresEventStore.open(db);
      await migrateSentinel(db.knex);
    });
    after(async () => {
      await store?.close();
      await db?.close();
      await drop?.();
    });
    beforeEach(async () => {
      now = new Date(Date.UTC(2030, 0, 1, 12));
      results.length = 0;
      logged.length = 0;
      await db.knex('sentinel_login_throttle').delete();
    });

    it('given 40 wrong passwords, then backoff and a lock; the right password is refused until the lock runs out, and then works', async () => {
      const { id, username } = await newUser();
      const access = service();
      const tries: string[] = [];
      for (let i = 0; i < 40; i += 1) tries.push(await attempt(() => access.login(username, `wrong-${i}`, { clientAddress: '192.0.2.10' })));
      expect(tries.slice(0, 4)).to.deep.equal(['failed', 'failed', 'failed', 'throttled 1s']);
      expect(tries.slice(3).every((t) => t === 'throttled 1s')).to.equal(true);
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '192.0.2.10' }))).to.equal('throttled 1s');

      // Waiting out each backoff lets the guessing go on, up to the limit of five; then the name is locked.
      advance(1);
      expect(await attempt(() => access.login(username, 'wrong-again', { clientAddress: '192.0.2.10' }))).to.equal('failed');
      expect(await attempt(() => access.login(username, 'wrong-again', { clientAddress: '192.0.2.10' }))).to.equal('throttled 2s');
      advance(2);
      expect(await attempt(() => access.login(username, 'wrong-again', { clientAddress: '192.0.2.10' }))).to.equal('failed');
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '192.0.2.10' }))).to.equal('locked 900s');
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '198.51.100.1' })), 'from anywhere').to.equal('locked 900s');
      advance(899);
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '192.0.2.10' }))).to.equal('locked 1s');
      advance(1);
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '192.0.2.10' }))).to.equal('ok');

      // The lock is one event in the user's stream; the failures are metrics and log lines; none holds a password.
      const events = await store.readStream(`user-${id}`);
      const locked = events.filter((e) => e.type === 'LoginLocked');
      expect(locked).to.have.length(1);
      expect(locked[0]!.data).to.deep.equal({ userId: id, failures: 5, lockedUntil: new Date(Date.UTC(2030, 0, 1, 12, 0, 3) + 900_000).toISOString(), address: '192.0.2.10' });
      expect(count(results)).to.deep.equal({ failed: 5, throttled: 39, locked: 3, ok: 1 });
      expect(logged.filter((line) => line['msg'] === 'login failed')).to.have.length(5);
      expect(logged.filter((line) => line['msg'] === 'too many failed logins: locked')).to.have.length(1);
      const everything = JSON.stringify([events, logged]);
      expect(everything).not.to.include('wrong-');
      expect(everything).not.to.include(PASSWORD);
    });

    it('given a successful login, then the name’s failures are forgotten', async () => {
      const { username } = await newUser();
      const access = service();
      for (let i = 0; i < 2; i += 1) expect(await attempt(() => access.login(username, 'wrong', { clientAddress: '192.0.2.11' }))).to.equal('failed');
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '192.0.2.11' }))).to.equal('ok');
      const tries = [];
      for (let i = 0; i < 3; i += 1) tries.push(await attempt(() => access.login(username, 'wrong', { clientAddress: '192.0.2.11' })));
      expect(tries).to.deep.equal(['failed', 'failed', 'failed']);
    });

    it('given an unknown name, then every answer, and every wait, is what a known name gets', async () => {
      const { username } = await newUser();
      const run = async (name: string, address: string) => {
        const tries: string[] = [];
        const access = service();
        for (let i = 0; i < 8; i += 1) {
          tries.push(await attempt(() => access.login(name, i === 7 ? PASSWORD : 'wrong', { clientAddress: address })));
          advance(i < 3 ? 0 : 2 ** (i - 2));
        }
        return tries;
      };
      const start = now;
      const known = await run(username, '192.0.2.20');
      now = start;
      const unknown = await run(`nobody-${randomUUID()}`, '192.0.2.21');
      expect(unknown).to.deep.equal(known);
      expect(known).to.include('failed').and.to.satisfy((t: string[]) => t.some((x) => x.startsWith('locked')));
    });

    it('given failures on many names from one address, then that address is throttled and locked for every name, others are not', async () => {
      const { username } = await newUser();
      const access = service({ ...LIMITS, addressMaxFailures: 4 });
      // An IPv6 client counts by its /64: a host that changes the low bits of its address is still one client.
      const tries = [];
      for (let i = 0; i < 4; i += 1) {
        if (i > 0) advance(3);
        tries.push(await attempt(() => access.login(`sprayed-${i}`, 'guess', { clientAddress: `2001:db8:aa:bb::${i + 1}` })));
      }
      expect(tries).to.deep.equal(['failed', 'failed', 'failed', 'failed']);
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '2001:db8:aa:bb::99' }))).to.equal('locked 900s');
      expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '2001:db8:aa:cc::1' }))).to.equal('ok');
    });

    it('given a burst of parallel wrong guesses, then no more than the limit are checked; the rest wait', async () => {
      const { username } = await newUser();
      const access = service();
      const tries = await Promise.all(
        Array.from({ length: 20 }, (_, i) => attempt(() => access.login(username, `parallel-${i}`, { clientAddress: '192.0.2.30' }))),
      );
      expect(tries.filter((t) => t === 'failed').length).to.be.at.most(3);
      expect(tries.filter((t) => t !== 'failed').every((t) => /^(throttled|locked) \d+s$/.test(t))).to.equal(true);
    });

    it('given a lock, then another process on the database, or this one restarted, sees it too', async () => {
      const { username } = await newUser();
      const first = service();
      for (let i = 0; i < 5; i += 1) {
        await attempt(() => first.login(username, 'wrong', { clientAddress: '192.0.2.40' }));
        advance(8);
      }
      expect(await attempt(() => service().login(username, PASSWORD, { clientAddress: '192.0.2.41' }))).to.match(/^locked/);
    });

    it('given many right logins from one address, then the address is not charged for them', async () => {
      const { username } = await newUser();
      const access = service({ ...LIMITS, maxFailures: 1000, addressMaxFailures: 3 });
      for (let i = 0; i < 6; i += 1) expect(await attempt(() => access.login(username, PASSWORD, { clientAddress: '192.0.2.50' }))).to.equal('ok');
    });

    it('given old rows, then a later failure clears them: the table holds only failures of one lock length', async () => {
      await attempt(() => service().login('old-name', 'wrong', { clientAddress: '192.0.2.60' }));
      advance(LIMITS.lockSeconds + 1);
      await attempt(() => service().login('new-name', 'wrong', { clientAddress: '192.0.2.61' }));
      const keys = (await db.knex('sentinel_login_throttle').select('key')).map((row: { key: string }) => row.key).sort();
      expect(keys).to.deep.equal(['192.0.2.61', 'new-name']);
    });
  });
}

function count(results: LoginResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const result of results) counts[result] = (counts[result] ?? 0) + 1;
  return counts;
}

for (const backend of backends) {
  describe(`login throttle over HTTP on ${backend.name}`, function () {
    this.timeout(120_000);
    let api: TestApi;

    before(async function () {
      if (backend.skipReason) this.skip();
      api = await backend.start({ SENTINEL_LOGIN_MAX_FAILURES: '5', SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: '50' });
    });
    after(async () => api?.stop());

    const login = (username: string, password: string) => api.request('post', '/auth/login', { as: 'anonymous', body: { username, password } });
    const metric = async (result: string) => {
      const text = await (await fetch(api.url.replace('/api/v1', '/metrics'))).text();
      return Number(new RegExp(`^sentinel_logins_total\\{result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    };

    it('given 40 wrong passwords and then the right one, then 429 problem+json with Retry-After, alike for an unknown name', async () => {
      const created = await api.request<{ id: string }>('post', '/users', { body: { username: 'victim', password: PASSWORD, role: 'viewer' } });
      expect(created.status).to.equal(201);
      const failedBefore = await metric('failed');
      const head = await api.head();
      const failures = (statuses: number[]) => statuses.filter((status) => status === 401).length;
      const answers = async (username: string) => {
        const statuses: number[] = [];
        for (let i = 0; i < 40; i += 1) statuses.push((await login(username, `wrong-guess-${i}`)).status);
        const backToBack = [...statuses];
        // Then guessing on, each guess after the wait the last refusal named, until the fifth failure locks the name:
        // the right password is then refused however long the guesses took.
        while (failures(statuses) < 5) {
          const answer = await login(username, `wrong-guess-${statuses.length}`);
          statuses.push(answer.status);
          if (answer.status === 429) await sleep(Number(answer.headers.get('retry-after')) * 1000);
        }
        return { backToBack, statuses, last: await login(username, PASSWORD) };
      };
      const known = await answers('victim');
      const unknown = await answers('not-a-user');

      // The first three guesses are free; after them each waits out a backoff (1 s, then 2 s) and the fifth failure locks
      // the name. Guesses back to back are nearly all turned away; a machine slow enough to take longer than a backoff
      // between two guesses lets one more through, never more than the lock allows.
      for (const { backToBack, statuses, last } of [known, unknown]) {
        expect(backToBack.slice(0, 3)).to.deep.equal([401, 401, 401]);
        expect(statuses.every((status) => status === 401 || status === 429), statuses.join(' ')).to.equal(true);
        expect(failures(backToBack), backToBack.join(' ')).to.be.within(3, 5);
        expect(failures(statuses), statuses.join(' ')).to.equal(5);
        expect(last.status).to.equal(429);
        expect(last.headers.get('content-type')).to.match(/^application\/problem\+json/);
        expect(last.headers.get('retry-after')).to.match(/^[1-9]\d*$/);
        expect(last.body).to.include({ type: 'urn:sentinel:problem:login-throttled', status: 429, title: 'Too Many Requests' });
      }
      // Alike but for the wait, which depends on how long the guesses took (a slow machine lets one more through).
      const withoutWait = (body: unknown) => ({ ...(body as Record<string, unknown>), detail: String((body as { detail?: unknown }).detail).replace(/wait \d+ seconds?/, 'wait N seconds') });
      expect(withoutWait(unknown.last.body)).to.deep.equal(withoutWait(known.last.body));
      expect(await metric('failed')).to.equal(failedBefore + failures(known.statuses) + failures(unknown.statuses));
      expect(await metric('throttled')).to.be.at.least(known.statuses.length + unknown.statuses.length - 10);
      // Never a password in the log.
      expect(JSON.stringify(await api.eventsSince(head))).not.to.include('wrong-guess');
    });

    it('given failures on many names from one client, then that client is throttled for a name it never tried', async () => {
      api = await restartWith(api, backend, { SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: '3' });
      await api.request('post', '/users', { body: { username: 'bystander', password: PASSWORD, role: 'viewer' } });
      expect((await login('sprayed-1', 'guess')).status).to.equal(401);
      expect((await login('sprayed-2', 'guess')).status).to.equal(401);
      // Two failures from one client: it backs off for a second, whatever name it tries next.
      const waiting = await login('sprayed-3', 'guess');
      expect(waiting.status).to.equal(429);
      expect(waiting.headers.get('retry-after')).to.equal('1');
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect((await login('sprayed-3', 'guess')).status).to.equal(401);
      const refused = await login('bystander', PASSWORD);
      expect(refused.status).to.equal(429);
      expect(refused.headers.get('retry-after')).to.equal('900');
      expect(refused.body['detail']).to.match(/locked/);
    });
  });
}

/** Stops an api and starts another on a fresh database with other limits (a restart with new settings). */
async function restartWith(api: TestApi, backend: (typeof backends)[number], env: Record<string, string>): Promise<TestApi> {
  await api.stop();
  return backend.start({ SENTINEL_LOGIN_MAX_FAILURES: '5', ...env });
}
