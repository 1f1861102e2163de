// Idempotency-Key handling (`once`) over the real idempotency store, on embedded PGlite and on PostgreSQL.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { PostgresIdempotencyStore } from '../../adapters/postgres/idempotency-store.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import {
  derivedIds,
  IdempotencyKeyInFlight,
  IdempotencyKeyReused,
  once,
  requestHash,
  type IdempotentRequest,
  type StoredResponse,
} from '../../commands/idempotency.js';
import { rejection } from '../support/rejection.js';
import { SKIP_POSTGRES_REASON, TEST_DATABASE_URL, createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';

const hashA = requestHash('POST', '/api/v1/clusters', { name: 'gpu-east' });
const hashB = requestHash('POST', '/api/v1/clusters', { name: 'gpu-west' });

/** A fresh request: a new key for a new principal, so tests sharing a database never meet. */
const request = (hash = hashA): IdempotentRequest => ({ principalId: randomUUID(), key: randomUUID(), requestHash: hash });

/** An execute that counts its runs and answers with `response`. */
function counted(response: StoredResponse = { status: 201, body: { id: 'c-1' } }) {
  const run = async () => {
    run.calls += 1;
    return response;
  };
  run.calls = 0;
  return run;
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function idempotencyContract(db: () => Database) {
  let store: PostgresIdempotencyStore;
  before(() => {
    store = new PostgresIdempotencyStore(db().knex);
  });

  it('given a new key, then execute runs once and its answer is stored', async () => {
    const req = request();
    const execute = counted({ status: 201, body: { id: 'c-1', nested: { list: [1, 'two'] } } });

    const reply = await once(store, req, execute);

    expect(reply).to.deep.equal({ status: 201, body: { id: 'c-1', nested: { list: [1, 'two'] } }, replayed: false });
    expect(execute.calls).to.equal(1);
    const record = await store.claim(req.principalId, req.key, req.requestHash);
    expect(record).to.deep.include({ requestHash: hashA, response: { status: 201, body: { id: 'c-1', nested: { list: [1, 'two'] } } } });
    expect(record!.startedAt).to.be.instanceOf(Date);
  });

  it('given a stored answer, when the same request comes again, then it is replayed without running', async () => {
    const req = request();
    await once(store, req, counted({ status: 201, body: { id: 'first' } }));
    const second = counted({ status: 201, body: { id: 'second' } });

    const reply = await once(store, req, second);

    expect(reply).to.deep.equal({ status: 201, body: { id: 'first' }, replayed: true });
    expect(second.calls).to.equal(0);
  });

  it('given a used key, when a different request comes with it, then IdempotencyKeyReused and nothing runs', async () => {
    const req = request(hashA);
    await once(store, req, counted());
    const other = counted();

    const error = await rejection(once(store, { ...req, requestHash: hashB }, other));

    expect(error).to.be.instanceOf(IdempotencyKeyReused).and.to.include({ key: req.key });
    expect((error as Error).message).to.include(req.key);
    expect(other.calls).to.equal(0);
  });

  it('given a different request while the first is still running, then IdempotencyKeyReused', async () => {
    const req = request(hashA);
    const gate = deferred<StoredResponse>();
    const started = deferred<void>();
    const first = once(store, req, () => {
      started.resolve();
      return gate.promise;
    });
    await started.promise;

    const error = await rejection(once(store, { ...req, requestHash: hashB }, counted()));

    expect(error).to.be.instanceOf(IdempotencyKeyReused);
    gate.resolve({ status: 200, body: {} });
    await first;
  });

  it('given the first request is still running, when it comes again, then IdempotencyKeyInFlight with a retry-after', async () => {
    const req = request();
    const gate = deferred<StoredResponse>();
    const started = deferred<void>();
    const first = once(store, req, () => {
      started.resolve();
      return gate.promise;
    });
    await started.promise;
    const second = counted();

    const error = await rejection(once(store, req, second));

    expect(error).to.be.instanceOf(IdempotencyKeyInFlight).and.to.include({ key: req.key });
    const retryAfter = (error as IdempotencyKeyInFlight).retryAfterSeconds;
    expect(retryAfter).to.be.a('number').within(1, 30);
    expect(Number.isInteger(retryAfter)).to.equal(true);
    expect(second.calls).to.equal(0);

    gate.resolve({ status: 201, body: { id: 'c-1' } });
    expect(await first).to.deep.equal({ status: 201, body: { id: 'c-1' }, replayed: false });
    expect(await once(store, req, second)).to.deep.equal({ status: 201, body: { id: 'c-1' }, replayed: true });
    expect(second.calls).to.equal(0);
  });

  it('given the retry-after, then it counts down what is left of abandonedAfterMs', async () => {
    const req = request();
    await store.claim(req.principalId, req.key, req.requestHash);

    const error = await rejection(once(store, req, counted(), { abandonedAfterMs: 120_000 }));

    expect((error as IdempotencyKeyInFlight).retryAfterSeconds).to.be.within(110, 120);
  });

  it('given a claim whose request died, when it has stood past abandonedAfterMs, then the retry takes it over and runs', async () => {
    const req = request();
    // A request that claimed the key and never answered.
    expect(await store.claim(req.principalId, req.key, req.requestHash)).to.equal(undefined);
    await sleep(5);
    const retry = counted({ status: 201, body: { id: 'after-takeover' } });

    const reply = await once(store, req, retry, { abandonedAfterMs: 1 });

    expect(reply).to.deep.equal({ status: 201, body: { id: 'after-takeover' }, replayed: false });
    expect(retry.calls).to.equal(1);
    expect(await once(store, req, counted(), { abandonedAfterMs: 1 })).to.include({ replayed: true });
  });

  it('given an abandoned claim, when two retries race to take it over, then exactly one runs', async () => {
    const req = request();
    await store.claim(req.principalId, req.key, req.requestHash);
    await sleep(5);
    const gate = deferred<StoredResponse>();
    let runs = 0;
    const execute = () => {
      runs += 1;
      return gate.promise;
    };

    const racing = Promise.allSettled([once(store, req, execute, { abandonedAfterMs: 1 }), once(store, req, execute, { abandonedAfterMs: 1 })]);
    await sleep(50);
    gate.resolve({ status: 200, body: {} });
    const settled = await racing;

    expect(runs).to.equal(1);
    expect(settled.filter((s) => s.status === 'fulfilled')).to.have.length.at.least(1);
    for (const s of settled) if (s.status === 'rejected') expect(s.reason).to.be.instanceOf(IdempotencyKeyInFlight);
  });

  it('given execute throws, then the error propagates and the key is released, so a retry runs', async () => {
    const req = request();
    const boom = new Error('store unreachable');

    const error = await rejection(
      once(store, req, async () => {
        throw boom;
      }),
    );
    const retry = counted();
    const reply = await once(store, req, retry);

    expect(error).to.equal(boom);
    expect(reply.replayed).to.equal(false);
    expect(retry.calls).to.equal(1);
  });

  for (const status of [409, 500, 503]) {
    it(`given a ${status} answer, then it is returned but not kept, so a retry runs`, async () => {
      const req = request();
      expect(await once(store, req, counted({ status, body: { problem: { status } } }))).to.deep.equal({
        status,
        body: { problem: { status } },
        replayed: false,
      });
      const retry = counted({ status: 200, body: { ok: true } });
      expect(await once(store, req, retry)).to.deep.equal({ status: 200, body: { ok: true }, replayed: false });
      expect(retry.calls).to.equal(1);
    });
  }

  for (const status of [400, 404, 422]) {
    it(`given a ${status} answer, then it is kept and replayed`, async () => {
      const req = request();
      await once(store, req, counted({ status, body: { problem: { status } } }));
      const retry = counted({ status: 200, body: {} });
      expect(await once(store, req, retry)).to.deep.equal({ status, body: { problem: { status } }, replayed: true });
      expect(retry.calls).to.equal(0);
    });
  }

  it('given the same key from two principals, then each runs its own request', async () => {
    const key = randomUUID();
    const alice = counted({ status: 201, body: { who: 'alice' } });
    const bob = counted({ status: 201, body: { who: 'bob' } });

    const a = await once(store, { principalId: `alice-${key}`, key, requestHash: hashA }, alice);
    const b = await once(store, { principalId: `bob-${key}`, key, requestHash: hashB }, bob);

    expect(a).to.deep.equal({ status: 201, body: { who: 'alice' }, replayed: false });
    expect(b).to.deep.equal({ status: 201, body: { who: 'bob' }, replayed: false });
    expect([alice.calls, bob.calls]).to.deep.equal([1, 1]);
  });

  it('given records started before a date, then purge deletes them and frees their keys', async () => {
    const req = request();
    await once(store, req, counted({ status: 201, body: { id: 'old' } }));

    await store.purge(new Date(Date.now() + 60_000));

    expect(await store.claim(req.principalId, req.key, hashB)).to.equal(undefined);
  });

  it('given a record newer than the date, then purge keeps it', async () => {
    const req = request();
    await once(store, req, counted({ status: 201, body: { id: 'kept' } }));

    await store.purge(new Date(Date.now() - 3_600_000));

    expect(await once(store, req, counted())).to.deep.equal({ status: 201, body: { id: 'kept' }, replayed: true });
  });

  it('given records to purge, then purge answers how many it deleted, as a number', async () => {
    const principalId = randomUUID();
    for (const key of ['a', 'b', 'c']) await store.claim(principalId, `${principalId}-${key}`, hashA);
    const cutoff = new Date(Date.now() + 60_000);

    const purged = await store.purge(cutoff);

    expect(purged).to.be.a('number').and.at.least(3);
    expect(await store.purge(cutoff)).to.equal(0);
  });

  it('given ten concurrent requests with one key, then execute runs exactly once and the rest replay or are told it is in flight', async () => {
    const req = request();
    let runs = 0;
    const execute = async (): Promise<StoredResponse> => {
      runs += 1;
      await sleep(30);
      return { status: 201, body: { id: 'only' } };
    };

    const settled = await Promise.allSettled(Array.from({ length: 10 }, () => once(store, req, execute)));

    expect(runs).to.equal(1);
    const answers = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value);
    const refused = settled.filter((s) => s.status === 'rejected').map((s) => s.reason as unknown);
    expect(answers.filter((a) => !a.replayed)).to.have.length(1);
    for (const answer of answers) expect(answer).to.deep.include({ status: 201, body: { id: 'only' } });
    for (const reason of refused) expect(reason).to.be.instanceOf(IdempotencyKeyInFlight);
    expect(answers.length + refused.length).to.equal(10);
  });
}

describe('idempotency store: embedded PGlite', () => {
  let db: Database;
  before(async () => {
    db = await openPglite();
    await migrateSentinel(db.knex);
  });
  after(async () => {
    await db?.close();
  });
  idempotencyContract(() => db);
});

describe('idempotency store: PostgreSQL', function () {
  let scratch: ScratchDatabase | undefined;
  let db: Database | undefined;
  before(async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    scratch = await createScratchDatabase();
    db = openPostgres(scratch.url);
    await migrateSentinel(db.knex);
  });
  after(async () => {
    await db?.close();
    await scratch?.drop();
  });
  idempotencyContract(() => db!);
});

describe('requestHash', () => {
  it('given the same body with keys in another order, then the same hash', () => {
    const a = requestHash('POST', '/clusters', { name: 'x', spec: { region: 'eu', labels: { b: '2', a: '1' } } });
    const b = requestHash('POST', '/clusters', { spec: { labels: { a: '1', b: '2' }, region: 'eu' }, name: 'x' });
    expect(a).to.equal(b).and.to.match(/^[0-9a-f]{64}$/);
  });

  it('given fields that are undefined, then they count as absent, nested too', () => {
    expect(requestHash('PATCH', '/c/1', { name: 'x', region: undefined, spec: { a: 1, b: undefined } })).to.equal(
      requestHash('PATCH', '/c/1', { name: 'x', spec: { a: 1 } }),
    );
  });

  it('given a different value, method, path, array order, or type, then a different hash', () => {
    const base = requestHash('POST', '/clusters', { name: 'x', skus: ['a', 'b'], replicas: 1 });
    const variants = [
      requestHash('POST', '/clusters', { name: 'y', skus: ['a', 'b'], replicas: 1 }),
      requestHash('PUT', '/clusters', { name: 'x', skus: ['a', 'b'], replicas: 1 }),
      requestHash('POST', '/workloads', { name: 'x', skus: ['a', 'b'], replicas: 1 }),
      requestHash('POST', '/clusters', { name: 'x', skus: ['b', 'a'], replicas: 1 }),
      requestHash('POST', '/clusters', { name: 'x', skus: ['a', 'b'], replicas: '1' }),
      requestHash('POST', '/clusters', { name: 'x', skus: ['a', 'b'], replicas: 1, extra: null }),
    ];
    expect(new Set([base, ...variants]).size).to.equal(variants.length + 1);
  });

  it('given no body, then a stable hash distinct from an empty object', () => {
    expect(requestHash('POST', '/x', undefined)).to.equal(requestHash('POST', '/x', undefined));
    expect(requestHash('POST', '/x', undefined)).to.not.equal(requestHash('POST', '/x', {}));
  });
});

describe('derivedIds', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('given the same principal and key, then the same resource id and event ids every time', () => {
    const req = { principalId: 'p-1', key: 'k-1', requestHash: hashA };
    const a = derivedIds(req);
    const b = derivedIds({ ...req, requestHash: hashB });
    expect(a.resourceId).to.equal(b.resourceId).and.to.match(UUID);
    expect([0, 1, 2].map(a.eventIds)).to.deep.equal([0, 1, 2].map(b.eventIds));
    for (const id of [0, 1, 2].map(a.eventIds)) expect(id).to.match(UUID);
  });

  it('given another principal or another key, then other ids', () => {
    const ids = [
      derivedIds({ principalId: 'p-1', key: 'k-1', requestHash: hashA }),
      derivedIds({ principalId: 'p-2', key: 'k-1', requestHash: hashA }),
      derivedIds({ principalId: 'p-1', key: 'k-2', requestHash: hashA }),
      // The separator keeps "p-1" + "k-1x" and "p-1k" + "-1x" apart.
      derivedIds({ principalId: 'p-1k', key: '-1', requestHash: hashA }),
    ];
    expect(new Set(ids.map((i) => i.resourceId)).size).to.equal(ids.length);
    expect(new Set(ids.map((i) => i.eventIds(0))).size).to.equal(ids.length);
  });

  it('given one request, then every event index and the resource get distinct ids', () => {
    const { resourceId, eventIds } = derivedIds({ principalId: 'p', key: 'k', requestHash: hashA });
    const all = [resourceId, ...Array.from({ length: 20 }, (_, i) => eventIds(i))];
    expect(new Set(all).size).to.equal(all.length);
  });
});
