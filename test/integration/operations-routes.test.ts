// GET /reactors and GET /reactors/parked: each reactor's checkpoint, lag and parked count, and the events reactors
// parked, read from the reactors' own tables. A reactor that parks a poison event runs in a real Sentinel's reactor
// runtime; the lag counts are checked on a log of their own.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { workloadEvents } from '../../domain/workload.js';
import { operationsRoutes, type ParkedEventItem, type ReactorStatus } from '../../projections/http/operations-routes.js';
import { PermanentFailure } from '../../reactors/failures.js';
import type { Reactor } from '../../reactors/reactor-runtime.js';
import { saveReactorCheckpoint } from '../../adapters/postgres/checkpoints.js';
import { eventually } from '../support/eventually.js';
import { anEvent, uniqueStream } from '../support/events.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

describe('GET /reactors and GET /reactors/parked', function () {
  this.timeout(60_000);

  describe('on a running Sentinel', () => {
    let api: TestApi;
    const POISON = 'poison-test';
    const poisonName = `poison-${randomUUID().slice(0, 8)}`;

    /** Parks every registration of a workload named `poisonName`; handles everything else. */
    const poisonReactor: Reactor = {
      name: POISON,
      eventTypes: ['WorkloadRegistered'],
      async handle(event: RecordedEvent) {
        const { data } = workloadEvents.parse(event.type, event.schemaVersion, event.data);
        if ('spec' in data && data.spec.name === poisonName) throw new PermanentFailure(`workload ${poisonName} cannot be handled`);
      },
    };

    before(async () => {
      api = await startTestApi(undefined, { SENTINEL_ROLE: 'api,projector,reactor' });
      api.sentinel.reactors!.runtime.add(poisonReactor);
    });
    after(async () => api?.stop());

    const registered = async (name: string) => {
      const reply = await api.request<{ id: string }>('post', '/workloads', {
        body: { name, namespace: 'operations', type: 'batch', image: 'registry.local/job:1', resources: { cpu: '100m', memory: '64Mi' } },
      });
      expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
      return reply.body.id;
    };
    const reactors = async () => {
      const reply = await api.request<{ items: ReactorStatus[] }>('get', '/reactors', { as: 'viewer' });
      expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
      return reply.body.items;
    };

    it('lists the event a reactor parked, with why, to operators and admins', async () => {
      const workloadId = await registered(poisonName);
      const parked = await eventually(
        'the poison event parked',
        async () => (await api.request<{ items: ParkedEventItem[]; total: number }>('get', '/reactors/parked', { as: 'operator' })).body,
        (body) => body.items.some((item) => item.reactor === POISON),
        20_000,
      );
      const item = parked.items.find((candidate) => candidate.reactor === POISON)!;
      expect(item).to.include({ stream: `workload-${workloadId}`, type: 'WorkloadRegistered', kind: 'permanent', failures: 1, retryRequestedAt: null });
      expect(item.error).to.contain(poisonName);
      expect(parked.total).to.equal(parked.items.length);

      const mine = await api.request<{ items: ParkedEventItem[]; total: number }>('get', `/reactors/parked?reactor=${POISON}`, { as: 'admin' });
      expect(mine.body.items.map((one) => one.id)).to.deep.equal([item.id]);
      const none = await api.request<{ items: ParkedEventItem[]; total: number }>('get', '/reactors/parked?reactor=plans', { as: 'admin' });
      expect(none.body).to.deep.equal({ items: [], total: 0 });

      for (const caller of ['viewer', 'system'] as const) {
        const refused = await api.request<{ type: string }>('get', '/reactors/parked', { as: caller });
        expect(refused.status, caller).to.equal(403);
      }
      expect((await api.request('get', '/reactors/parked', { as: 'anonymous' })).status).to.equal(401);
    });

    it('shows each reactor with its checkpoint and parked count, and the poison reactor going on past its parked event', async () => {
      const next = await registered(`after-${randomUUID().slice(0, 8)}`);
      const events = await api.stream(`workload-${next}`);
      const listed = await eventually(
        'the poison reactor past the next registration',
        reactors,
        (items) => {
          const poison = items.find((reactor) => reactor.name === POISON);
          return poison?.position !== null && poison !== undefined && poison.position >= events[0]!.position;
        },
        20_000,
      );
      const poison = listed.find((reactor) => reactor.name === POISON)!;
      expect(poison).to.include({ parked: 1, parkedBugs: 0, lagCounts: 'its-event-types' });
      expect(Number.isFinite(Date.parse(poison.updatedAt!)), 'updatedAt is a time').to.equal(true);
      expect(listed.map((reactor) => reactor.name)).to.deep.equal([...listed.map((reactor) => reactor.name)].sort());
      for (const reactor of listed) expect(reactor.lagEvents, reactor.name).to.be.at.least(0);
    });

    it('counts what a stopped reactor has not handled yet as its lag', async () => {
      await api.sentinel.reactors!.runtime.remove(POISON);
      await registered(`unhandled-${randomUUID().slice(0, 8)}`);
      const poison = (await reactors()).find((reactor) => reactor.name === POISON)!;
      // No longer run here, its event types are unknown to this process: every event after its checkpoint counts.
      expect(poison.lagCounts).to.equal('all-events');
      expect(poison.lagEvents).to.be.at.least(1);
      expect(poison.lagSeconds).to.be.at.least(0);
    });
  });

  describe('lag, counted in the events a reactor reads where the server knows them', () => {
    let db: Database;
    let store: PostgresEventStore;

    before(async () => {
      db = await openPglite();
      store = await PostgresEventStore.open(db);
      await migrateSentinel(db.knex);
    });
    after(async () => {
      await store?.close();
      await db?.close();
    });

    it('counts only its event types when they are known, every event after its checkpoint otherwise', async () => {
      const first = await store.append(uniqueStream('lag'), [anEvent('Read')]);
      await store.append(uniqueStream('lag'), [anEvent('Read'), anEvent('Read'), anEvent('Ignored'), anEvent('Ignored'), anEvent('Ignored')]);
      const checkpoint = (await store.readAll({ limit: 1 })).events[0]!.position;
      expect(first.position).to.equal(checkpoint);
      for (const name of ['typed', 'untyped']) await saveReactorCheckpoint(db.knex, name, checkpoint);

      const [list] = operationsRoutes({ knex: db.knex, events: store, reactorEventTypes: (name) => (name === 'typed' ? ['Read'] : undefined) });
      const reply = (await list!.handle({ query: {} } as never)) as { status: number; body: { items: ReactorStatus[] } };
      const byName = Object.fromEntries(reply.body.items.map((item) => [item.name, item]));
      expect(byName['typed']).to.include({ position: checkpoint, lagEvents: 2, lagCounts: 'its-event-types', parked: 0 });
      expect(byName['untyped']).to.include({ lagEvents: 5, lagCounts: 'all-events' });
      expect(byName['typed']!.lagSeconds).to.be.at.least(0);

      await saveReactorCheckpoint(db.knex, 'typed', (await store.readAll({ limit: 100 })).checkpoint!);
      const caughtUp = (await list!.handle({ query: {} } as never)) as { body: { items: ReactorStatus[] } };
      expect(caughtUp.body.items.find((item) => item.name === 'typed')).to.include({ lagEvents: 0, lagSeconds: 0 });
    });
  });
});
