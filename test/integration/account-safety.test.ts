// Account safety through the real server: the last admin stays one (422 naming the field), tokens end with a
// password change, a disable or a reused refresh token, and a signed token with a malformed subject is a 401.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { backends, JWT_SECRET, type TestApi } from '../support/sentinel-api.js';

for (const backend of backends) {
  describe(`account safety over HTTP on ${backend.name}`, function () {
    this.timeout(60_000);
    let api: TestApi;

    before(async function () {
      if (backend.skipReason) this.skip();
      api = await backend.start();
    });
    after(async () => api?.stop());

    const login = (username: string, password: string) =>
      api.request<{ accessToken: string; refreshToken: string }>('post', '/auth/login', { as: 'anonymous', body: { username, password } });
    const me = (token: string) => api.request('get', '/auth/me', { as: 'anonymous', headers: { authorization: `Bearer ${token}` } });
    const refresh = (refreshToken: string) =>
      api.request<{ accessToken: string; refreshToken: string }>('post', '/auth/refresh', { as: 'anonymous', body: { refreshToken } });

    it('refuses to demote or disable the last active admin with 422 naming the field, and appends nothing', async () => {
      const head = await api.head();
      for (const [body, field] of [
        [{ role: 'operator' }, 'role'],
        [{ disabled: true }, 'disabled'],
      ] as const) {
        const reply = await api.request('patch', `/users/${api.principalIds.admin}`, { body });
        expect(reply.status, JSON.stringify(reply.body)).to.equal(422);
        expect(reply.headers.get('content-type')).to.match(/^application\/problem\+json/);
        expect(reply.body['type']).to.equal('urn:sentinel:problem:rule-violation');
        expect((reply.body['errors'] as { path: string }[]).map((e) => e.path)).to.deep.equal([field]);
      }
      expect(await api.head()).to.equal(head);
      expect((await me(api.tokens.admin)).body).to.include({ role: 'admin' });
    });

    it('lets an admin step down once another admin exists', async () => {
      const second = await api.request<{ id: string }>('post', '/users', { body: { username: 'second-admin', password: 'second-admin-password', role: 'admin' } });
      expect((await api.request('patch', `/users/${second.body.id}`, { body: { role: 'viewer' } })).status).to.equal(202);
      expect((await api.request('patch', `/users/${second.body.id}`, { body: { role: 'admin' } })).status).to.equal(202);
      expect((await api.request('patch', `/users/${second.body.id}`, { body: { disabled: true } })).status).to.equal(202);
    });

    it('ends every access and refresh token at a password change, and at a disable; enabling again revives none', async () => {
      const user = await api.request<{ id: string }>('post', '/users', { body: { username: 'carol', password: 'carol-password-1', role: 'operator' } });
      const before = await login('carol', 'carol-password-1');
      expect((await me(before.body.accessToken)).status).to.equal(200);
      expect((await api.request('patch', `/users/${user.body.id}`, { body: { password: 'carol-password-2' } })).status).to.equal(202);
      expect((await me(before.body.accessToken)).status).to.equal(401);
      expect((await refresh(before.body.refreshToken)).status).to.equal(401);

      const second = await login('carol', 'carol-password-2');
      expect((await me(second.body.accessToken)).status).to.equal(200);
      expect((await api.request('patch', `/users/${user.body.id}`, { body: { disabled: true } })).status).to.equal(202);
      expect((await api.request('patch', `/users/${user.body.id}`, { body: { disabled: false } })).status).to.equal(202);
      expect((await me(second.body.accessToken)).status).to.equal(401);
      expect((await refresh(second.body.refreshToken)).status).to.equal(401);
      expect((await me((await login('carol', 'carol-password-2')).body.accessToken)).status).to.equal(200);
    });

    it('revokes the whole family when a refresh token is used twice: the newer refresh token is refused afterwards', async () => {
      const first = await login('viewer', 'viewer-password-for-tests');
      const second = await refresh(first.body.refreshToken);
      expect(second.status).to.equal(200);
      const reused = await refresh(first.body.refreshToken);
      expect(reused.status).to.equal(401);
      expect((reused.body as unknown as { detail: string }).detail).to.match(/every token of its login is revoked/);
      expect((await refresh(second.body.refreshToken)).status).to.equal(401);
      expect((await me(second.body.accessToken)).status).to.equal(401);
      // The harness's own viewer session is another family and carries on.
      expect((await me(api.tokens.viewer)).status).to.equal(200);
      const events = await api.stream(`user-${api.principalIds.viewer}`);
      expect(events.map((e) => e.type)).to.include('TokenFamilyRevoked');
    });

    it('answers 401, never 5xx, for a correctly signed token whose subject is not a UUID', async () => {
      for (const typ of ['access', 'refresh', 'service']) {
        const token = await new SignJWT({ typ, ep: 0, fam: randomUUID() })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer('sentinel')
          .setAudience('sentinel-api')
          .setSubject('admin')
          .setJti(randomUUID())
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode(JWT_SECRET));
        expect((await me(token)).status, typ).to.equal(401);
        expect((await refresh(token)).status, typ).to.equal(401);
      }
    });
  });
}
