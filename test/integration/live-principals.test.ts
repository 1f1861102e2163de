// A principal found live for a token is believed for a short while, so a client sending one token with every request
// costs one lookup rather than one each; yet a token ended here is refused at once, and one ended by another
// process (another replica, the CLI) at the latest once that while is over.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { scryptPasswords } from '../../adapters/auth/passwords.js';
import { JwtTokens } from '../../adapters/auth/jwt-tokens.js';
import { PostgresLoginThrottle } from '../../adapters/auth/login-throttle.js';
import { PostgresPrincipalStore } from '../../adapters/auth/principal-store.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { AccessService, Unauthenticated } from '../../commands/access.js';
import type { Clock } from '../../commands/clock.js';
import { LivePrincipals } from '../../commands/live-principals.js';
import type { Principal } from '../../domain/access.js';
import { rejection } from '../support/rejection.js';

const SECRET = new TextEncoder().encode('y'.repeat(32));
const BOUND_MS = 1000;

/** Counts the lookups `authenticate` makes. */
class CountingPrincipals extends PostgresPrincipalStore {
  lookups = 0;
  override findSession(...args: Parameters<PostgresPrincipalStore['findSession']>) {
    this.lookups += 1;
    return super.findSession(...args);
  }
  override findServiceAccount(...args: Parameters<PostgresPrincipalStore['findServiceAccount']>) {
    this.lookups += 1;
    return super.findServiceAccount(...args);
  }
}

describe('principals believed live for a bounded time (PGlite)', function () {
  this.timeout(60_000);
  let db: Database;
  let store: PostgresEventStore;
  let principals: CountingPrincipals;
  /** The access service's clock; tokens are checked against the real one (they live a minute). */
  let now = Date.parse('2026-12-07T12:00:00Z');
  const clock: Clock = { now: () => new Date(now) };
  const context = () => ({ actor: { id: 'test', kind: 'system' as const }, correlationId: randomUUID(), causationId: randomUUID() });

  const service = (principalStore: PostgresPrincipalStore = principals) =>
    new AccessService(principalStore, new JwtTokens({ secret: SECRET, accessTtlSeconds: 60, refreshTtlSeconds: 600 }), scryptPasswords, store, {
      throttle: new PostgresLoginThrottle(db.knex),
      login: { maxFailures: 1000, addressMaxFailures: 100_000, lockSeconds: 900 },
      clock,
      livePrincipalMs: BOUND_MS,
    });

  /** A user and an access token of theirs, from `access`. */
  async function loggedIn(access: AccessService, role: 'viewer' | 'operator' | 'admin' = 'operator') {
    const username = `live-${randomUUID().slice(0, 8)}`;
    const password = `${username}-password`;
    const { id } = await access.createUser({ username, password, role }, context());
    return { id, token: (await access.login(username, password)).accessToken };
  }

  const refused = async (promise: Promise<unknown>) => expect(await rejection(promise)).to.be.instanceOf(Unauthenticated);

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    principals = new CountingPrincipals(db.knex);
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });

  it('given one token sent with many requests within the bound, then the store is asked once', async () => {
    const access = service();
    const { token } = await loggedIn(access);
    const before = principals.lookups;
    await Promise.all(Array.from({ length: 8 }, () => access.authenticate(token)));
    for (let i = 0; i < 8; i++) await access.authenticate(token);
    expect(principals.lookups - before).to.equal(1);
  });

  it('given a user just found live, when it is disabled through this service, then its token is refused at once', async () => {
    const access = service();
    const { id, token } = await loggedIn(access);
    await access.authenticate(token);
    await access.updateUser(id, { disabled: true }, context());
    await refused(access.authenticate(token));
  });

  it('given a user just found live, when its role changes through this service, then the next request carries the new role', async () => {
    const access = service();
    const { id, token } = await loggedIn(access, 'viewer');
    expect((await access.authenticate(token)).role).to.equal('viewer');
    await access.updateUser(id, { role: 'operator' }, context());
    expect((await access.authenticate(token)).role).to.equal('operator');
  });

  it('given a service account just found live, when it is revoked through this service, then its token is refused at once', async () => {
    const access = service();
    const { id, token } = await access.createServiceAccount({ name: `svc-${randomUUID().slice(0, 8)}` }, context());
    await access.authenticate(token);
    await access.revokeServiceAccount(id, context());
    await refused(access.authenticate(token));
  });

  it('given a user disabled by another process, then its token is accepted here for at most the bound, and refused after it', async () => {
    const access = service();
    const { id, token } = await loggedIn(access);
    await access.authenticate(token);
    // Another replica (or the CLI) with its own service on the same database.
    await service(new PostgresPrincipalStore(db.knex)).updateUser(id, { disabled: true }, context());

    now += BOUND_MS - 1;
    await access.authenticate(token);
    now += 1;
    await refused(access.authenticate(token));
  });

  it('given a lookup under way when a change begins, then its answer is not kept: the next request asks again', async () => {
    const live = new LivePrincipals(BOUND_MS, () => now);
    const principal: Principal = { id: randomUUID(), kind: 'user', name: 'late', role: 'admin' };
    let answer!: (value: Principal) => void;
    const slow = live.get('key', () => new Promise<Principal>((resolve) => (answer = resolve)));
    const change = live.changing(async () => undefined);
    answer(principal);
    await Promise.all([slow, change]);

    let asked = 0;
    await live.get('key', async () => {
      asked += 1;
      return principal;
    });
    expect(asked).to.equal(1);
  });
});
