// `sentinel users reset-password`: the way back in when no admin can log in, run as an operator would run it
// (the real CLI in its own process) against the database Sentinel uses.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { pino } from 'pino';
import { loadConfig } from '../../app/config.js';
import { startSentinel, type RunningSentinel } from '../../app/sentinel.js';
import { DEFAULT_LIVE_PRINCIPAL_MS } from '../../commands/live-principals.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { runCli as cli } from '../support/cli.js';

const ADMIN_PASSWORD = 'admin-password-before-the-reset';

const backends = [
  { name: 'PGlite', skipReason: undefined },
  { name: 'PostgreSQL', skipReason: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON },
];

for (const backend of backends) {
  describe(`sentinel users reset-password on ${backend.name}`, function () {
    this.timeout(120_000);
    let dataDir: string;
    let scratch: ScratchDatabase | undefined;
    let sentinel: RunningSentinel | undefined;
    /** What the CLI and the server both read: the database, and nothing listening where the CLI would look. */
    let env: Record<string, string>;

    const start = async () => {
      const config = loadConfig({
        ...env,
        HOST: '127.0.0.1',
        SENTINEL_ROLE: 'api,projector',
        SENTINEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
        SENTINEL_JWT_SECRET: 'a-signing-secret-for-the-cli-test-of-32+',
        LOG_LEVEL: 'silent',
      });
      sentinel = await startSentinel(config, pino({ level: 'silent' }));
      return `http://127.0.0.1:${sentinel.port}/api/v1`;
    };
    const stop = async () => {
      await sentinel?.stop();
      sentinel = undefined;
    };
    /** The CLI opens embedded PGlite only while Sentinel is stopped; PostgreSQL it shares with a running one. */
    const whileStopped = async <T>(run: () => Promise<T>): Promise<T> => {
      if (backend.name !== 'PGlite') return run();
      await stop();
      return run();
    };
    const call = async (url: string, method: string, route: string, options: { token?: string; body?: unknown } = {}) => {
      const response = await fetch(url + route, {
        method,
        headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
    };
    const login = async (url: string, username: string, password: string) => call(url, 'POST', '/auth/login', { body: { username, password } });

    before(async function () {
      if (backend.skipReason) this.skip();
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'sentinel-users-cli-'));
      if (backend.name === 'PostgreSQL') scratch = await createScratchDatabase();
      env = { SENTINEL_DATA_DIR: dataDir, PORT: '0', TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0', ...(scratch ? { DATABASE_URL: scratch.url } : {}) };
    });
    after(async () => {
      await stop();
      await scratch?.drop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it('prints a new password that logs in, enables the user, ends its old tokens, can make it admin, and records who did it', async () => {
      let url = await start();
      const admin = await login(url, 'admin', ADMIN_PASSWORD);
      expect(admin.status).to.equal(200);
      const adminToken = admin.body['accessToken'] as string;
      const adminId = (await call(url, 'GET', '/auth/me', { token: adminToken })).body['id'] as string;
      const bob = await call(url, 'POST', '/users', { token: adminToken, body: { username: 'bob', password: 'bob-old-password', role: 'operator' } });
      const bobToken = (await login(url, 'bob', 'bob-old-password')).body['accessToken'] as string;
      expect((await call(url, 'PATCH', `/users/${bob.body['id'] as string}`, { token: adminToken, body: { disabled: true } })).status).to.equal(202);

      const [adminReset, bobReset, unknown, badRole] = await whileStopped(async () => [
        await cli(['users', 'reset-password', 'admin'], env),
        await cli(['users', 'reset-password', 'bob', '--role', 'admin'], env),
        await cli(['users', 'reset-password', 'nobody'], env),
        await cli(['users', 'reset-password', 'bob', '--role', 'root'], env),
      ]);
      for (const reset of [adminReset, bobReset]) {
        expect(reset.code, reset.stderr).to.equal(0);
        expect(reset.stdout).to.match(/^[A-Za-z0-9_-]{24}\n$/);
        expect(reset.stderr).to.include('every token it had is ended');
      }
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.include('user nobody does not exist');
      expect(badRole.code).to.equal(2);
      expect(badRole.stderr).to.include('viewer, operator, admin');

      if (!sentinel) url = await start();
      // A Sentinel that kept running learns of tokens another process ended within the bound it believes the store for.
      else await sleep(DEFAULT_LIVE_PRINCIPAL_MS);
      expect((await login(url, 'admin', ADMIN_PASSWORD)).status).to.equal(401);
      const newAdmin = await login(url, 'admin', adminReset.stdout.trim());
      expect(newAdmin.status).to.equal(200);
      for (const token of [adminToken, bobToken]) expect((await call(url, 'GET', '/auth/me', { token })).status).to.equal(401);
      const newBob = await login(url, 'bob', bobReset.stdout.trim());
      expect(newBob.status, 'bob is enabled again').to.equal(200);
      expect((await call(url, 'GET', '/auth/me', { token: newBob.body['accessToken'] as string })).body).to.include({ name: 'bob', role: 'admin' });

      const events = await sentinel!.eventStore.readStream(`user-${adminId}`);
      const last = events.at(-1)!;
      expect(last.type).to.equal('UserUpdated');
      expect(last.data).to.deep.equal({ userId: adminId, passwordChanged: true });
      expect(last.metadata).to.deep.include({ actor: { id: 'sentinel', kind: 'system' }, source: 'cli' });
      const bobEvents = await sentinel!.eventStore.readStream(`user-${bob.body['id'] as string}`);
      expect(bobEvents.at(-1)!.data).to.deep.equal({ userId: bob.body['id'], role: 'admin', disabled: false, passwordChanged: true });
      expect(JSON.stringify([events, bobEvents])).not.to.include(adminReset.stdout.trim());
    });

    it('refuses to demote the last active admin, and says why', async () => {
      if (!sentinel) await start();
      // admin and bob are both admins now: demoting one is fine, the other is then the last.
      const [first, second] = await whileStopped(async () => [
        await cli(['users', 'reset-password', 'bob', '--role', 'operator'], env),
        await cli(['users', 'reset-password', 'admin', '--role', 'viewer'], env),
      ]);
      expect(first.code, first.stderr).to.equal(0);
      expect(second.code).to.equal(1);
      expect(second.stderr).to.include('user admin is the last active admin');
      expect(second.stdout).to.equal('');
    });
  });
}
