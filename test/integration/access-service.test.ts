// Principals and their audit events: a principal never exists without the event that records it.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { hashPassword, verifyDecoy, verifyPassword } from '../../adapters/auth/passwords.js';
import { JwtTokens } from '../../adapters/auth/jwt-tokens.js';
import { PostgresPrincipalStore } from '../../adapters/auth/principal-store.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { AccessService } from '../../commands/access.js';
import type { EventStore } from '../../domain/event-store.js';

describe('AccessService on PGlite', function () {
  this.timeout(30_000);
  let db: Database;
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
    const tokens = new JwtTokens({ secret: new TextEncoder().encode('x'.repeat(32)), accessTtlSeconds: 60, refreshTtlSeconds: 600 });
    return new AccessService(principals, tokens, { hash: hashPassword, verify: verifyPassword, verifyDecoy }, flaky);
  };

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    principals = new PostgresPrincipalStore(db.knex);
  });
  after(async () => {
    await store.close();
    await db.close();
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
});
