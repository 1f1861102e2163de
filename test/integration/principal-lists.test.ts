// Admins find the ids that PATCH /users/:id and DELETE /service-accounts/:id need: the user and service-account
// lists, paged in name order and never showing a secret; and a failed login leaves one warning in the log.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import { loadConfig } from '../../app/config.js';
import { startSentinel } from '../../app/sentinel.js';
import { ADMIN_PASSWORD, backends, JWT_SECRET, type TestApi } from '../support/sentinel-api.js';

interface Listed<Item> {
  items: Item[];
  nextCursor: string | null;
}
interface UserView {
  id: string;
  username: string;
  role: string;
  disabled: boolean;
}
interface AccountView {
  id: string;
  name: string;
  revoked: boolean;
}

for (const backend of backends) {
  describe(`user and service-account lists on ${backend.name}`, function () {
    this.timeout(60_000);
    let api: TestApi;

    before(async function () {
      if (backend.skipReason) this.skip();
      api = await backend.start();
    });
    after(async () => api?.stop());

    const walk = async <Item>(list: string, query: string): Promise<Item[]> => {
      const seen: Item[] = [];
      let cursor: string | null = null;
      do {
        const reply: { status: number; body: Listed<Item> } = await api.request<Listed<Item>>('get', `${list}?limit=2${query}${cursor ? `&cursor=${cursor}` : ''}`);
        expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
        seen.push(...reply.body.items);
        cursor = reply.body.nextCursor;
      } while (cursor);
      return seen;
    };

    it('lists users by username with their ids, in pages, either way round, and never a password hash', async () => {
      for (const username of ['list-carol', 'list-alice', 'list-bob']) {
        const created = await api.request('post', '/users', { body: { username, password: `${username}-password`, role: 'viewer' } });
        expect(created.status).to.equal(201);
      }
      const users = await walk<UserView>('/users', '');
      const names = users.map((user) => user.username);
      expect(names).to.include.members(['admin', 'viewer', 'operator', 'list-alice', 'list-bob', 'list-carol']);
      expect(names).to.deep.equal([...names].sort());
      expect(users.find((user) => user.username === 'operator')).to.deep.include({ id: api.principalIds.operator, role: 'operator', disabled: false });
      expect((await walk<UserView>('/users', '&order=desc')).map((user) => user.username)).to.deep.equal([...names].reverse());

      const text = JSON.stringify(await api.request('get', '/users?limit=500'));
      expect(text).not.to.match(/password|hash|scrypt/i);

      // The id found in the list is the one PATCH takes.
      const bob = users.find((user) => user.username === 'list-bob')!;
      expect((await api.request('patch', `/users/${bob.id}`, { body: { disabled: true } })).status).to.equal(202);
      const after = await api.request<Listed<UserView>>('get', '/users?limit=500');
      expect(after.body.items.find((user) => user.id === bob.id)!.disabled).to.equal(true);
    });

    it('lists service accounts by name with their ids, revoked ones marked, and never a token', async () => {
      const created = await api.request<{ id: string; token: string }>('post', '/service-accounts', { body: { name: 'list-robot' } });
      expect(created.status).to.equal(201);
      expect(created.headers.get('location')).to.equal(`/api/v1/service-accounts/${created.body.id}`);
      const accounts = await walk<AccountView>('/service-accounts', '');
      expect(accounts.map((account) => account.name)).to.include.members(['inframind', 'list-robot']);
      const robot = accounts.find((account) => account.name === 'list-robot')!;
      expect(robot).to.deep.include({ id: created.body.id, revoked: false });

      expect((await api.request('delete', `/service-accounts/${robot.id}`)).status).to.equal(202);
      const listed = await api.request<Listed<AccountView>>('get', '/service-accounts?limit=500&order=desc');
      expect(listed.body.items.find((account) => account.id === robot.id)!.revoked).to.equal(true);
      expect(JSON.stringify(listed.body)).not.to.include(created.body.token);
      expect(JSON.stringify(listed.body)).not.to.match(/token|secret/i);
    });

    it('refuses the lists to anyone but an admin, and a bad page or a cursor of the other order with a 400 naming it', async () => {
      for (const list of ['/users', '/service-accounts']) {
        expect((await api.request('get', list, { as: 'operator' })).status, list).to.equal(403);
        expect((await api.request('get', list, { as: 'system' })).status, list).to.equal(403);
        for (const [query, name] of [
          ['limit=0', 'limit'],
          ['order=up', 'order'],
          ['cursor=bm90IGEgY3Vyc29y', 'cursor'],
          ['role=admin', 'role'],
        ] as const) {
          const reply = await api.request<{ errors: { path: string }[] }>('get', `${list}?${query}`);
          expect(reply.status, `${list}?${query}`).to.equal(400);
          expect(reply.body.errors[0]!.path, `${list}?${query}`).to.equal(name);
        }
        const first = await api.request<Listed<unknown>>('get', `${list}?limit=1`);
        expect(first.body.nextCursor, list).to.be.a('string');
        const mixed = await api.request<{ errors: { path: string }[] }>('get', `${list}?order=desc&cursor=${first.body.nextCursor}`);
        expect(mixed.status, list).to.equal(400);
        expect(mixed.body.errors[0]!.path, list).to.equal('cursor');
      }
    });
  });
}

describe('failed logins in the log', function () {
  this.timeout(60_000);

  it('logs one warning per failed login naming the username, the client address and why, never the password', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-login-log-'));
    const config = loadConfig({
      HOST: '127.0.0.1',
      PORT: '0',
      TELEMETRY_GRPC_PORT: '0', INFRAMIND_GRPC_PORT: '0',
      SENTINEL_DATA_DIR: dataDir,
      SENTINEL_ROLE: 'api,projector',
      SENTINEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      SENTINEL_JWT_SECRET: JWT_SECRET,
      SENTINEL_LOGIN_MAX_FAILURES: '1000',
      SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: '100000',
    });
    const sentinel = await startSentinel(config, pino({ level: 'info' }, sink));
    try {
      const login = (username: string, password: string) =>
        fetch(`http://127.0.0.1:${sentinel.port}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username, password }),
        });
      expect((await login('admin', 'not-the-admin-password-1')).status).to.equal(401);
      expect((await login('nobody-here', 'not-a-password-2')).status).to.equal(401);
      expect((await login('admin', ADMIN_PASSWORD)).status).to.equal(200);

      const failed = lines.filter((line) => line['msg'] === 'login failed');
      expect(failed.map((line) => [line['level'], line['username'], line['reason']])).to.deep.equal([
        [40, 'admin', 'wrong password'],
        [40, 'nobody-here', 'unknown username'],
      ]);
      for (const line of failed) expect(line['clientAddress']).to.match(/127\.0\.0\.1/);
      const everything = JSON.stringify(lines);
      expect(everything).not.to.include('not-the-admin-password-1');
      expect(everything).not.to.include('not-a-password-2');
      expect(everything).not.to.include(ADMIN_PASSWORD);
    } finally {
      await sentinel.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
