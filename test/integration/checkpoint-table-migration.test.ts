// Migration 008: a database made by the schema before it (projectors in sentinel_projections, reactors in
// sentinel_reactor_checkpoints) keeps every checkpoint in the one table, and its reactors go on where they were.
// PGlite, and PostgreSQL when TEST_DATABASE_URL is set.
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import * as checkpoints008 from '../../adapters/postgres/migrations/008-one-checkpoint-table.js';
import { migrateSentinel, sentinelMigrated, sentinelMigrationsBefore } from '../../adapters/postgres/schema.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { CHECKPOINT_REGISTRY, insertProjection, projectionRows, reactorCheckpoints, saveReactorCheckpoint } from '../../adapters/postgres/checkpoints.js';
import { ReactorRuntime, type Reactor } from '../../reactors/reactor-runtime.js';
import { events, uniqueStream } from '../support/events.js';
import { eventually } from '../support/eventually.js';
import { backends, type Backend } from '../support/projection-backends.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

/** The schema as it stood before migration 008, under the same bookkeeping table the current one uses. */
const beforeOneTable = sentinelMigrationsBefore('008-one-checkpoint-table');

for (const backend of backends) {
  describe(`migration 008, one checkpoint table (${backend.name})`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;

    before(function () {
      if (backend.skip) this.skip();
    });
    beforeEach(async () => {
      opened = await backend.open();
      store = await PostgresEventStore.open(opened.db);
      await beforeOneTable.latest(opened.db.knex);
    });
    afterEach(async () => {
      await store?.close();
      await opened?.close();
    });

    it('given reactor and projector checkpoints in the old tables, when 008 runs, then every one is in the one table at its position', async () => {
      const { knex } = opened.db;
      const stream = uniqueStream('upgrade');
      await store.append(stream, events(3, 'Upgraded'));
      const [first, second] = await store.readStream(stream);
      await knex('sentinel_projections').insert([
        { name: 'deployments', version: 3, generation: 2, position: second!.position, events: 42 },
        { name: 'fresh', version: 1, generation: 1, position: null, events: 0 },
      ]);
      const updatedAt = new Date('2026-01-02T03:04:05.000Z');
      await knex('sentinel_reactor_checkpoints').insert([
        { name: 'plans', position: first!.position, updated_at: updatedAt },
        // A reactor named as a projector is: both keep their own row.
        { name: 'deployments', position: second!.position, updated_at: updatedAt },
      ]);

      await migrateSentinel(knex);

      expect(await sentinelMigrated(knex)).to.equal(true);
      expect(await knex.schema.hasTable('sentinel_reactor_checkpoints')).to.equal(false);
      expect(await knex.schema.hasTable('sentinel_projections')).to.equal(false);
      expect(await reactorCheckpoints(knex)).to.deep.equal([
        { name: 'deployments', position: second!.position, updatedAt },
        { name: 'plans', position: first!.position, updatedAt },
      ]);
      const projections = (await projectionRows(knex)).map(({ updatedAt: _updatedAt, ...row }) => row);
      expect(projections).to.deep.equal([
        { name: 'deployments', version: 3, generation: 2, position: second!.position, events: 42 },
        { name: 'fresh', version: 1, generation: 1, position: null, events: 0 },
      ]);
    });

    it('given a reactor checkpoint in the old table, when 008 runs and the reactor starts, then it handles only the events after it', async () => {
      const { knex } = opened.db;
      const stream = uniqueStream('resumed');
      const written = await store.append(stream, events(5, 'Resumed'));
      const stored = await store.readStream(stream);
      const name = `resumed-${stream}`;
      await knex('sentinel_reactor_checkpoints').insert({ name, position: stored[2]!.position });

      await migrateSentinel(knex);

      const handled: RecordedEvent[] = [];
      const reactor: Reactor = {
        name,
        eventTypes: ['Resumed'],
        async handle(event) {
          if (event.stream === stream) handled.push(event);
        },
      };
      const runtime = new ReactorRuntime(knex, store, { logger, lease: inProcessLease });
      runtime.add(reactor);
      try {
        await eventually('the reactor to pass the last event', () => runtime.checkpoint(name), (position) => position === written.position, 20_000);
      } finally {
        await runtime.stop();
      }
      expect(handled.map((event) => event.id)).to.deep.equal(stored.slice(3).map((event) => event.id));
    });

    it('given checkpoints of both kinds, when 008 is undone, then reactors and projectors are back in their own tables', async () => {
      const { knex } = opened.db;
      const stream = uniqueStream('undone');
      const written = await store.append(stream, events(1, 'Undone'));
      await migrateSentinel(knex);
      await saveReactorCheckpoint(knex, 'plans', written.position);
      await knex.transaction((trx) => insertProjection(trx, { name: 'deployments', version: 2 }));

      await checkpoints008.down(knex);

      expect(await knex.schema.hasTable(CHECKPOINT_REGISTRY)).to.equal(false);
      expect(await knex('sentinel_reactor_checkpoints').select('name', 'position')).to.deep.equal([{ name: 'plans', position: written.position }]);
      const projections = (await knex('sentinel_projections').select('name', 'version', 'generation', 'position', 'events')) as { events: number | string }[];
      expect(projections.map((row) => ({ ...row, events: Number(row.events) }))).to.deep.equal([
        { name: 'deployments', version: 2, generation: 1, position: null, events: 0 },
      ]);
    });
  });
}
