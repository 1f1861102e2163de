// Principals, their audit events and their tokens: a principal never exists without the event that records it,
// the last admin stays an admin, and a token ends when its user's password changes, the user is disabled, or
// its refresh token is used twice.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { scryptPasswords } from '../../adapters/auth/passwords.js';
import { JwtTokens } from '../../adapters/auth/jwt-tokens.js';
import { PostgresLoginThrottle } from '../../adapters/auth/login-throttle.js';
import { PostgresPrincipalStore } from '../../adapters/auth/principal-store.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { AccessService, Unauthenticated, type TokenPair } from '../../commands/access.js';
import { RuleViolation } from '../../domain/decider.js';
import type { EventStore } from '../../domain/event-store.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { rejection } from '../support/rejection.js';

const SECRET = new TextEncoder().encode('x'.repeat(32));

const backends = [
  { name: 'PGlite', skipReason: undefined, open: async () => ({ db: await openPglite(), drop: async () => undefined }) },
  {
    name: 'PostgreSQL',
    skipReason: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON,
    open: async () => {
      const scratch: ScratchDatabase = await createScratchDatabase();
      return { db: openPostgres(scratch.url), drop: () => scratch.drop() };
    },
  },
];

for (const backend of backends) {
  describe(`AccessService on ${backend.name}`, function () {
    this.timeout(60_000);
    let db: Database;
    let drop: () => Promise<void>;
    let store: PostgresEventStore;
    let principals: PostgresPrincipalStore;
    let failAppends = false;

    const context = { actor: { id: 'test', kind: 'system' as const }, correlationId: randomUUID(), causationId: randomUUID() };
    const service = () => {
      const flaky = new Proxy(store, {
        get(target, property, receiver) {
          if (property === 'append' && failAppends) return () => Promise.reject(new Error('the event store is down'));
          const value = Reflect.get(target, property, receiver) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      }) as EventStore;
      const tokens = new JwtTokens({ secret: SECRET, accessTtlSeconds: 60, refreshTtlSeconds: 600 });
      return new AccessService(principals, tokens, scryptPasswords, flaky, {
        throttle: new PostgresLoginThrottle(db.knex),
        login: { maxFailures: 1000, addressMaxFailures: 100_000, lockSeconds: 900 },
      });
    };
    let counter = 0;
    const user = async (role: 'viewer' | 'operator' | 'admin' = 'operator') => {
      const username = `user-${++counter}`;
      const password = `${username}-password`;
      const { id } = await service().createUser({ username, password, role }, context);
      return { id, username, password };
    };
    const refused = async (promise: Promise<unknown>, message?: RegExp) => {
      const error = await rejection(promise);
      expect(error).to.be.instanceOf(Unauthenticated);
      if (message) expect((error as Error).message).to.match(message);
    };

    before(async function () {
      if (backend.skipReason) this.skip();
      ({ db, drop } = await backend.open());
      store = await PostgresEventStore.open(db);
      await migrateSentinel(db.knex);
      principals = new PostgresPrincipalStore(db.knex);
    });
    after(async () => {
      await store?.close();
      await db?.close();
      await drop?.();
    });
    afterEach(() => (failAppends = false));

    it('given the event store is down, when a user is created, then no user is left behind and the name stays free', async () => {
      failAppends = true;
      let failure: unknown;
      await service()
        .createUser({ username: 'ghost', password: 'ghost-password', role: 'viewer' }, context)
        .catch((error: unknown) => (failure = error));
      expect((failure as Error).message).to.equal('the event store is down');
      expect(await principals.findUserByUsername('ghost')).to.equal(undefined);
      failAppends = false;
      const created = await service().createUser({ username: 'ghost', password: 'ghost-password', role: 'viewer' }, context);
      expect(await store.readStream(`user-${created.id}`)).to.have.length(1);
    });

    it('given the event store is down, when a service account is created, then the account does not exist', async () => {
      failAppends = true;
      await service()
        .createServiceAccount({ name: 'phantom' }, context)
        .catch(() => undefined);
      failAppends = false;
      const created = await service().createServiceAccount({ name: 'phantom' }, context);
      expect(await principals.findServiceAccount(created.id)).to.deep.include({ name: 'phantom', revoked: false });
    });

    describe('the last active admin', () => {
      // Each test starts from one active admin: every admin the previous test left is demoted first.
      let admin: { id: string; username: string };
      beforeEach(async () => {
        admin = await user('admin');
        const others = await db.knex('sentinel_users').where({ role: 'admin', disabled: false }).whereNot({ id: admin.id }).select('id');
        for (const { id } of others as { id: string }[]) await principals.updateUser(id, { role: 'viewer' });
      });

      it('given one active admin, when it is demoted or disabled, then 422-style RuleViolation naming the field, and nothing changes', async () => {
        for (const [patch, field] of [
          [{ role: 'operator' as const }, 'role'],
          [{ disabled: true }, 'disabled'],
          [{ role: 'viewer' as const, disabled: true }, 'role'],
        ] as const) {
          const error = await rejection(service().updateUser(admin.id, patch, context));
          expect(error, JSON.stringify(patch)).to.be.instanceOf(RuleViolation);
          expect((error as RuleViolation).errors.map((e) => e.path)).to.deep.equal([field]);
          expect((error as Error).message).to.match(/last active admin/);
        }
        expect(await principals.findUser(admin.id)).to.deep.include({ role: 'admin', disabled: false });
        expect((await store.readStream(`user-${admin.id}`)).map((e) => e.type)).to.deep.equal(['UserCreated']);
      });

      it('given a disabled second admin, then it does not count: the active one still cannot be demoted', async () => {
        const second = await user('admin');
        await service().updateUser(second.id, { disabled: true }, context);
        expect(await rejection(service().updateUser(admin.id, { role: 'viewer' }, context))).to.be.instanceOf(RuleViolation);
      });

      it('given one active admin, then its password can change and it can stay admin', async () => {
        await service().updateUser(admin.id, { password: 'a-brand-new-password', role: 'admin', disabled: false }, context);
        expect(await principals.findUser(admin.id)).to.deep.include({ role: 'admin', disabled: false });
      });

      it('given two admins, when each demotes the other at the same time, then one demotion lands and one admin remains', async () => {
        for (let round = 0; round < 5; round += 1) {
          const a = await user('admin');
          const others = await db.knex('sentinel_users').where({ role: 'admin', disabled: false }).whereNot({ id: a.id }).select('id');
          for (const { id } of others as { id: string }[]) await principals.updateUser(id, { role: 'viewer' });
          const b = await user('admin');
          const results = await Promise.allSettled([
            service().updateUser(a.id, { role: 'operator' }, context),
            service().updateUser(b.id, { disabled: true }, context),
          ]);
          expect(results.map((r) => r.status).sort()).to.deep.equal(['fulfilled', 'rejected']);
          expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).to.be.instanceOf(RuleViolation);
          const active = await db.knex('sentinel_users').where({ role: 'admin', disabled: false }).whereIn('id', [a.id, b.id]).select('id');
          expect(active, `round ${round}`).to.have.length(1);
        }
      });
    });

    describe('tokens end when they should', () => {
      const login = (u: { username: string; password: string }) => service().login(u.username, u.password, { clientAddress: '192.0.2.1' });

      it('given a password change, then every access and refresh token issued before it is refused, and a new login works', async () => {
        const u = await user();
        const [first, second] = [await login(u), await login(u)];
        expect(await service().authenticate(first.accessToken)).to.include({ id: u.id });
        await service().updateUser(u.id, { password: 'the-changed-password' }, context);
        for (const pair of [first, second]) {
          await refused(service().authenticate(pair.accessToken), /issued before the user’s password changed/);
          await refused(service().refresh(pair.refreshToken));
        }
        await refused(login(u));
        const fresh = await login({ ...u, password: 'the-changed-password' });
        expect(await service().authenticate(fresh.accessToken)).to.include({ id: u.id });
      });

      it('given a disabled user enabled again, then the tokens from before the disable stay refused', async () => {
        const u = await user();
        const before = await login(u);
        await service().updateUser(u.id, { disabled: true }, context);
        await refused(service().authenticate(before.accessToken));
        await service().updateUser(u.id, { disabled: false }, context);
        await refused(service().authenticate(before.accessToken), /issued before/);
        await refused(service().refresh(before.refreshToken));
        const after = await login(u);
        expect(await service().authenticate(after.accessToken)).to.include({ id: u.id });
      });

      it('given a role change alone, then the tokens stay good and carry the new role at once', async () => {
        const u = await user('viewer');
        const pair = await login(u);
        await service().updateUser(u.id, { role: 'operator' }, context);
        expect(await service().authenticate(pair.accessToken)).to.include({ role: 'operator' });
        expect(await service().refresh(pair.refreshToken)).to.have.property('accessToken');
      });

      it('given a refresh token used twice, then its whole family is revoked (the newer refresh and access tokens too), and the event says so', async () => {
        const u = await user();
        const first = await login(u);
        const other = await login(u); // another login: another family, untouched
        const second: TokenPair = await service().refresh(first.refreshToken);
        const third: TokenPair = await service().refresh(second.refreshToken);
        expect(await service().authenticate(third.accessToken)).to.include({ id: u.id });

        await refused(service().refresh(first.refreshToken), /already used: every token of its login is revoked/);
        await refused(service().refresh(third.refreshToken));
        for (const pair of [first, second, third]) await refused(service().authenticate(pair.accessToken), /login this token belongs to was ended/);
        // Presenting a used token again refuses it and records nothing more.
        await refused(service().refresh(second.refreshToken));

        expect(await service().authenticate(other.accessToken)).to.include({ id: u.id });
        expect(await service().refresh(other.refreshToken)).to.have.property('accessToken');
        const events = await store.readStream(`user-${u.id}`);
        const revoked = events.filter((e) => e.type === 'TokenFamilyRevoked');
        expect(revoked).to.have.length(1);
        expect(revoked[0]!.data).to.deep.include({ userId: u.id, reason: 'refresh_token_reused' });
      });

      it('given two refreshes of one token at the same time, then one gets a pair and the family ends', async () => {
        const u = await user();
        const pair = await login(u);
        const results = await Promise.allSettled([service().refresh(pair.refreshToken), service().refresh(pair.refreshToken)]);
        expect(results.map((r) => r.status).sort()).to.deep.equal(['fulfilled', 'rejected']);
        const winner = (results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<TokenPair>).value;
        await refused(service().refresh(winner.refreshToken));
        await refused(service().authenticate(winner.accessToken));
      });

      it('given a correctly signed token whose subject is not a UUID, then Unauthenticated, not a database error', async () => {
        for (const typ of ['access', 'refresh', 'service']) {
          const token = await new SignJWT({ typ, ep: 0, fam: randomUUID() })
            .setProtectedHeader({ alg: 'HS256' })
            .setIssuer('sentinel')
            .setAudience('sentinel-api')
            .setSubject('not-a-uuid')
            .setJti(randomUUID())
            .setIssuedAt()
            .setExpirationTime('5m')
            .sign(SECRET);
          await refused(service().authenticate(token));
          await refused(service().refresh(token));
        }
      });
    });
  });
}
