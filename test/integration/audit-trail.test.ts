// The audit trail: one hash-chained row per event, verification that finds the first tampered row, and the
// filtered, cursor-paged query, on PGlite and on PostgreSQL.
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import type { EventMetadata, EventToAppend, Position, RecordedEvent } from '../../domain/event-store.js';
import { GENESIS_HASH, auditProjector, canonicalJson, queryAudit, type AuditEntry, type AuditQuery } from '../../projections/audit-trail.js';
import { verifyAuditTrail } from '../../projections/audit-chain-read.js';
import { tableNames } from '../../projections/projector.js';
import { InvalidQuery } from '../../projections/read-models/query.js';
import { settled } from '../support/events.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL } from '../support/postgres.js';

interface Backend {
  name: string;
  skip?: string;
  open(): Promise<{ db: Database; close(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'PGlite',
    open: async () => {
      const db = await openPglite();
      return { db, close: () => db.close() };
    },
  },
  {
    name: 'PostgreSQL',
    skip: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON,
    open: async () => {
      const scratch = await createScratchDatabase();
      const db = openPostgres(scratch.url);
      return {
        db,
        close: async () => {
          await db.close();
          await scratch.drop();
        },
      };
    },
  },
];

const alice = { id: 'alice', kind: 'user' } as const;
const bob = { id: 'bob', kind: 'user' } as const;
const reconciler = { id: 'reconciler', kind: 'service' } as const;
const bootstrap = { id: 'bootstrap', kind: 'system' } as const;

function event(type: string, data: Record<string, unknown>, metadata?: EventMetadata): EventToAppend {
  return { id: randomUUID(), type, data, ...(metadata ? { metadata } : {}) };
}

/** Appends the fixture in four groups, a few milliseconds apart, so time ranges can split it. */
async function appendFixture(store: PostgresEventStore): Promise<Position> {
  const created = event('DeploymentCreated', { deploymentId: '1234', workloadId: 'w1', clusterId: 'east', replicas: 2 }, { actor: alice, correlationId: 'c-create' });
  await store.append('deployment-1234', [
    created,
    event('DeploymentScaled', { deploymentId: '1234', replicas: 4, previousReplicas: 2 }, { actor: alice, correlationId: 'c-create', causationId: created.id }),
  ]);
  await store.append('cluster-east', [event('ClusterCordoned', { clusterId: 'east', reason: 'kernel upgrade' }, { actor: bob, correlationId: 'c-cordon' })]);
  await store.append('user-u1', [event('UserCreated', { userId: 'u1', username: 'carol', role: 'operator' }, { actor: bootstrap, correlationId: 'c-user' })]);
  await sleep(15);

  await store.append(
    'deployment-1234',
    [1, 2, 3].map((ready) =>
      event('DeploymentRolloutProgressed', { deploymentId: '1234', revision: 1, readyReplicas: ready, updatedReplicas: 4 }, { actor: reconciler, correlationId: 'c-rollout' }),
    ),
  );
  await store.append('deployment-1234', [event('DeploymentAvailable', { deploymentId: '1234', revision: 1, readyReplicas: 4 }, { actor: reconciler, correlationId: 'c-rollout' })]);
  await store.append('legacy-7', [event('SomethingOdd', { note: 'no actor, no correlation' })]);
  await sleep(15);

  const second = event('DeploymentCreated', { deploymentId: '5678', workloadId: 'w2', clusterId: 'west', replicas: 1 }, { actor: bob, correlationId: 'c-second' });
  await store.append('deployment-5678', [second]);
  for (let i = 0; i < 10; i++) {
    const actor = i % 2 === 0 ? alice : bob;
    await store.append('deployment-5678', [
      event('DeploymentScaled', { deploymentId: '5678', replicas: i + 2, previousReplicas: i + 1 }, { actor, correlationId: i < 5 ? 'c-scale-a' : 'c-scale-b', causationId: second.id }),
    ]);
  }
  await sleep(15);

  await store.append('cluster-east', [event('ClusterUncordoned', { clusterId: 'east' }, { actor: bob, correlationId: 'c-cordon' })]);
  await store.append('user-u1', [event('UserUpdated', { userId: 'u1', role: 'admin', passwordChanged: true }, { actor: alice, correlationId: 'c-user' })]);
  const last = await store.append('deployment-5678', [
    event('PolicyEvaluated', { command: 'DeleteDeployment', verdict: 'deny', policySet: { stream: 'policyset-main', revision: 3 }, evaluations: [] }, { actor: bob, correlationId: 'c-delete' }),
  ]);
  return last.position;
}

/**
 * Events whose text needs escaping on every path to the table (tabs, newlines, backslashes, `\\N`, quotes,
 * astral characters) and whose data has keys that sort awkwardly (array indexes, `__proto__`), with the hashes
 * their rows were given when the chain was first written: a stored chain must verify for as long as it is kept.
 */
const GOLDEN_EVENTS: RecordedEvent[] = [
  {
    id: '6F1C2A4E-8B0D-4C3A-9E7F-0A1B2C3D4E5F',
    stream: 'deployment-1234',
    type: 'DeploymentScaled',
    schemaVersion: 1,
    revision: 3,
    position: '00000000000003e8-0000000000000001',
    recordedAt: new Date('2024-05-06T07:08:09.123Z'),
    data: JSON.parse('{"deploymentId":"1234","replicas":4,"previousReplicas":2,"10":"ten","9":"nine","__proto__":{"b":1,"a":[0.1,1e21,-5,true,null]},"note":"tab\\there, newline\\n, cr\\r, backslash \\\\ and \\\\N, quote \\" \\u2028 \\ud83d\\ude00"}') as Record<string, unknown>,
    metadata: { actor: { id: 'alice\tsmith', kind: 'user' }, correlationId: 'c\\N\n1', causationId: 'cause\\', traceparent: '' },
  },
  {
    id: '0b0e4f1a-5c6d-4e7f-8a9b-0c1d2e3f4a5b',
    stream: 'legacy-\\x',
    type: 'SomethingOdd',
    schemaVersion: 2,
    revision: 0,
    position: '00000000000003e8-0000000000000002',
    recordedAt: new Date('2024-05-06T07:08:09.124Z'),
    data: { reason: 'moved C:\\temp\\new\tfolder' },
    metadata: {},
  },
];
const GOLDEN_HASHES = [
  '6a3fe6866b4511067144896ac8d889d403410ab0b7a66b2358bfca090ecd1d61',
  '5e8b5b08ef114bf9701df5aea75dfc90ad5e5576cb4488720d4ccdd726a70a3e',
];

async function createTrail(knex: Knex, generation: number): Promise<string> {
  const tables = tableNames(auditProjector, generation);
  await knex.transaction((trx) => auditProjector.createTables(trx, tables));
  return tables.audit;
}

/** Applies the events in batches of the given sizes (the last size repeats), each in its own transaction. */
async function project(knex: Knex, generation: number, events: readonly RecordedEvent[], sizes: number[]): Promise<void> {
  const tables = tableNames(auditProjector, generation);
  for (let at = 0, k = 0; at < events.length; k++) {
    const size = sizes[Math.min(k, sizes.length - 1)]!;
    const batch = events.slice(at, at + size);
    await knex.transaction((trx) => auditProjector.apply(batch, trx, tables));
    at += size;
  }
}

interface Row {
  position: string;
  event_id: string;
  stream: string;
  type: string;
  revision: string | number;
  recorded_at: Date;
  actor_id: string | null;
  actor_kind: string | null;
  action: string;
  correlation_id: string | null;
  causation_id: string | null;
  summary: string;
  /** The canonical text of the event, as hashed. */
  content: string;
  prev_hash: string;
  hash: string;
}

async function rowsOf(knex: Knex, table: string): Promise<Row[]> {
  return (await knex(table).select('*').orderBy('position')) as Row[];
}

/** Runs `change` and whatever checks follow inside a transaction that is always rolled back. */
async function tampered<T>(knex: Knex, change: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  const trx = await knex.transaction();
  try {
    return await change(trx);
  } finally {
    await trx.rollback();
  }
}

/** Every page of a query, following the cursors. */
async function allPages(knex: Knex, table: string, query: AuditQuery): Promise<{ items: AuditEntry[]; pages: number }> {
  const items: AuditEntry[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await queryAudit(knex, table, { ...query, cursor });
    pages++;
    expect(page.items.length).to.be.at.most(query.limit);
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return { items, pages };
}

for (const backend of backends) {
  describe(`audit trail on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;
    let knex: Knex;
    let events: RecordedEvent[];
    let table: string;
    let generation = 1;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      knex = opened.db.knex;
      store = await PostgresEventStore.open(opened.db);
      await settled(store, await appendFixture(store));
      events = (await store.readAll({ limit: 10_000 })).events;
      table = await createTrail(knex, generation);
      await project(knex, generation, events, [1, 3, 5, 2, 8]);
    });
    after(async () => {
      await store?.close();
      await opened?.close();
    });

    describe('projecting', () => {
      it('records one row per event, in log order, holding the canonical event', async () => {
        expect(events).to.have.length(23);
        const rows = await rowsOf(knex, table);
        expect(rows.map((r) => r.position)).to.deep.equal(events.map((e) => e.position));
        rows.forEach((row, i) => {
          const e = events[i]!;
          expect(row.event_id).to.equal(e.id);
          expect(row.stream).to.equal(e.stream);
          expect(row.type).to.equal(e.type);
          expect(Number(row.revision)).to.equal(e.revision);
          expect(new Date(row.recorded_at).getTime()).to.equal(e.recordedAt.getTime());
          expect(row.actor_id).to.equal(e.metadata.actor?.id ?? null);
          expect(row.actor_kind).to.equal(e.metadata.actor?.kind ?? null);
          expect(row.correlation_id).to.equal(e.metadata.correlationId ?? null);
          expect(row.causation_id).to.equal(e.metadata.causationId ?? null);
          expect(row.content).to.equal(canonicalJson(JSON.parse(row.content)));
          expect(JSON.parse(row.content)).to.deep.equal({
            id: e.id,
            stream: e.stream,
            type: e.type,
            schemaVersion: e.schemaVersion,
            revision: e.revision,
            position: e.position,
            recordedAt: e.recordedAt.toISOString(),
            data: e.data,
            metadata: e.metadata,
          });
        });
      });

      it('derives a verb phrase and a short one-line summary from each event', async () => {
        const rows = await rowsOf(knex, table);
        const byType = (type: string) => rows.find((r) => r.type === type)!;
        expect(byType('DeploymentScaled')).to.include({ action: 'deployment scaled', summary: 'deployment 1234 scaled from 2 to 4 replicas' });
        expect(byType('DeploymentCreated')).to.include({ action: 'deployment created', summary: 'deployment 1234 created on cluster east with 2 replicas' });
        expect(byType('ClusterCordoned')).to.include({ action: 'cluster cordoned', summary: 'cluster east cordoned: kernel upgrade' });
        expect(byType('ClusterUncordoned')).to.include({ action: 'cluster uncordoned', summary: 'cluster east uncordoned' });
        expect(byType('UserCreated')).to.include({ summary: 'user carol created with role operator' });
        expect(byType('UserUpdated')).to.include({ summary: 'user u1 updated (role admin, password changed)' });
        expect(byType('DeploymentRolloutProgressed')).to.include({ summary: 'deployment 1234 rollout of revision 1: 1 ready, 4 updated' });
        expect(byType('PolicyEvaluated')).to.include({ action: 'policy evaluated', summary: 'policy denied DeleteDeployment' });
        expect(byType('SomethingOdd')).to.include({ action: 'something odd', summary: 'something odd in legacy-7', actor_id: null, actor_kind: null });
        for (const row of rows) expect(row.summary).to.match(/^[^\n]{1,200}$/);
      });

      it('chains every row to the one before, starting from 64 zeros, by the documented formula', async () => {
        const rows = await rowsOf(knex, table);
        expect(rows[0]!.prev_hash).to.equal(GENESIS_HASH).and.to.equal('0'.repeat(64));
        rows.slice(1).forEach((row, i) => expect(row.prev_hash).to.equal(rows[i]!.hash));
        const first = rows[0]!;
        const e = events[0]!;
        const record = {
          position: e.position,
          eventId: e.id,
          stream: e.stream,
          type: e.type,
          revision: e.revision,
          recordedAt: e.recordedAt.toISOString(),
          actorId: 'alice',
          actorKind: 'user',
          action: 'deployment created',
          correlationId: 'c-create',
          causationId: null,
          summary: first.summary,
          content: JSON.parse(first.content) as unknown,
          unused: undefined,
        };
        const expected = createHash('sha256').update(`${GENESIS_HASH}\n${canonicalJson(record)}`).digest('hex');
        expect(first.hash).to.equal(expected);
      });

      it('gives the same hashes whether the events come in one batch or one at a time', async () => {
        const whole = await createTrail(knex, ++generation);
        await project(knex, generation, events, [events.length]);
        const single = await createTrail(knex, ++generation);
        await project(knex, generation, events, [1]);
        const hashes = async (t: string) => (await rowsOf(knex, t)).map((r) => [r.position, r.prev_hash, r.hash]);
        const reference = await hashes(table);
        expect(await hashes(whole)).to.deep.equal(reference);
        expect(await hashes(single)).to.deep.equal(reference);
      });

      it('hashes every row by the documented formula, whatever text the event carries', async () => {
        // Values that look like the hashed text itself, or sort around its members, change nothing.
        const awkward = [
          event('DeploymentScaled', { deploymentId: '"content":{}', replicas: 1, previousReplicas: 0, content: { z: 1, a: [{ y: null, b: '\u2028' }] } }, {
            actor: { id: '"content":"x"', kind: 'user' },
            correlationId: '},"content":{',
            causationId: 'content',
          }),
          event('SomethingOdd', { __proto__x: 1, Content: 'upper', conTent: 'mixed', ['\u{1F600}']: 'astral' }, { source: 'ünïcode', traceparent: '' }),
        ];
        await settled(store, (await store.append(`odd-${randomUUID()}`, awkward)).position);
        const all = (await store.readAll({ limit: 10_000 })).events;
        const trail = await createTrail(knex, ++generation);
        await project(knex, generation, all, [7, 1, 100]);
        const rows = await rowsOf(knex, trail);
        expect(rows).to.have.length(all.length);
        let prevHash = GENESIS_HASH;
        rows.forEach((row, i) => {
          const e = all[i]!;
          const record = {
            position: e.position,
            eventId: e.id,
            stream: e.stream,
            type: e.type,
            revision: e.revision,
            recordedAt: e.recordedAt.toISOString(),
            actorId: row.actor_id,
            actorKind: row.actor_kind,
            action: row.action,
            correlationId: row.correlation_id,
            causationId: row.causation_id,
            summary: row.summary,
            content: JSON.parse(row.content) as unknown,
          };
          expect(row.prev_hash).to.equal(prevHash);
          expect(row.hash).to.equal(createHash('sha256').update(`${prevHash}\n${canonicalJson(record)}`).digest('hex'));
          prevHash = row.hash;
        });
        expect(await verifyAuditTrail(knex, trail)).to.deep.equal({ ok: true, rows: all.length });
      });

      it('gives the hashes the chain was first written with, and stores awkward text exactly', async () => {
        const trail = await createTrail(knex, ++generation);
        await project(knex, generation, GOLDEN_EVENTS, [GOLDEN_EVENTS.length]);
        const rows = await rowsOf(knex, trail);
        expect(rows.map((row) => row.hash)).to.deep.equal(GOLDEN_HASHES);
        rows.forEach((row, i) => {
          const e = GOLDEN_EVENTS[i]!;
          expect(row).to.include({
            event_id: e.id.toLowerCase(),
            stream: e.stream,
            actor_id: e.metadata.actor?.id ?? null,
            correlation_id: e.metadata.correlationId ?? null,
            causation_id: e.metadata.causationId ?? null,
          });
          expect(new Date(row.recorded_at).getTime()).to.equal(e.recordedAt.getTime());
          expect(row.content).to.equal(canonicalJson({ ...JSON.parse(JSON.stringify({ ...e, id: e.id.toLowerCase() })), recordedAt: e.recordedAt.toISOString() }));
        });
        expect(rows[1]!.summary).to.equal('something odd in legacy-\\x: moved C:\\temp\\new folder');
        expect(await verifyAuditTrail(knex, trail)).to.deep.equal({ ok: true, rows: GOLDEN_EVENTS.length });
      });

      it('skips events it already recorded when a batch comes again, keeping the chain whole', async () => {
        const before = await rowsOf(knex, table);
        await knex.transaction((trx) => auditProjector.apply(events.slice(5, 12), trx, { audit: table }));
        expect(await rowsOf(knex, table)).to.deep.equal(before);
        expect(await verifyAuditTrail(knex, table)).to.deep.equal({ ok: true, rows: events.length });
      });

      it('refuses a batch out of log order', async () => {
        const fresh = await createTrail(knex, ++generation);
        const batch = [events[1]!, events[0]!];
        let failure: unknown;
        await knex.transaction((trx) => auditProjector.apply(batch, trx, { audit: fresh })).catch((error: unknown) => (failure = error));
        expect(String(failure)).to.match(/out of log order/);
        expect(await rowsOf(knex, fresh)).to.have.length(0);
      });
    });

    describe('verifying', () => {
      const pageSizes = [1, 5, 1000];

      it('holds for the whole trail, reporting the row count, whatever the page size', async () => {
        for (const batchSize of pageSizes) {
          expect(await verifyAuditTrail(knex, table, { batchSize })).to.deep.equal({ ok: true, rows: 23 });
        }
        expect(await verifyAuditTrail(knex, table)).to.deep.equal({ ok: true, rows: 23 });
      });

      it('holds for an empty trail', async () => {
        const empty = await createTrail(knex, ++generation);
        expect(await verifyAuditTrail(knex, empty)).to.deep.equal({ ok: true, rows: 0 });
      });

      async function brokenBy(change: (trx: Knex.Transaction, rows: Row[]) => Promise<unknown>) {
        return tampered(knex, async (trx) => {
          await change(trx, await rowsOf(trx, table));
          const results = [];
          for (const batchSize of pageSizes) results.push(await verifyAuditTrail(trx, table, { batchSize }));
          // The page size changes how it reads, never what it finds.
          for (const result of results) expect(result).to.deep.equal(results[0]);
          return results[0]!;
        });
      }

      function expectBrokenAt(result: Awaited<ReturnType<typeof verifyAuditTrail>>, rows: Row[], index: number, reason: RegExp) {
        expect(result.ok).to.equal(false);
        if (result.ok) return;
        expect(result.brokenAt).to.deep.equal({ id: rows[index]!.event_id, position: rows[index]!.position });
        expect(result.rows).to.equal(index + 1);
        expect(result.reason).to.match(reason);
      }

      it('finds an edited summary at exactly that row', async () => {
        const rows = await rowsOf(knex, table);
        const seventh = rows[6]!;
        const result = await brokenBy((trx) => trx(table).where({ position: seventh.position }).update({ summary: 'edited' }));
        expectBrokenAt(result, rows, 6, /hash does not match/);
        expect(await verifyAuditTrail(knex, table)).to.deep.equal({ ok: true, rows: 23 });
      });

      it('finds an edited content document', async () => {
        const rows = await rowsOf(knex, table);
        const index = rows.findIndex((r, i) => i > 10 && r.type === 'DeploymentScaled');
        const edited = JSON.parse(rows[index]!.content) as { data: { replicas: number } };
        edited.data.replicas = 99;
        const result = await brokenBy((trx) => trx(table).where({ position: rows[index]!.position }).update({ content: canonicalJson(edited) }));
        expectBrokenAt(result, rows, index, /hash does not match/);
      });

      it('finds a content rewritten as other text of the same JSON value', async () => {
        const rows = await rowsOf(knex, table);
        // The database's own text of the document: its keys in another order, with spaces.
        const result = await brokenBy((trx) => trx.raw(`update ?? set content = content::jsonb::text where position = ?`, [table, rows[8]!.position]));
        expectBrokenAt(result, rows, 8, /hash does not match/);
      });

      it('finds a content edited to hold the character that separates contents on PGlite, at exactly that row', async () => {
        const rows = await rowsOf(knex, table);
        // Canonical JSON never holds it unescaped; a page holding it is read whole, so the rows keep their contents.
        const result = await brokenBy((trx) => trx(table).where({ position: rows[13]!.position }).update({ content: `${rows[13]!.content}\u001e` }));
        expectBrokenAt(result, rows, 13, /hash does not match/);
      });

      it('finds an edited actor', async () => {
        const rows = await rowsOf(knex, table);
        const result = await brokenBy((trx) => trx(table).where({ position: rows[9]!.position }).update({ actor_id: 'mallory' }));
        expectBrokenAt(result, rows, 9, /hash does not match/);
        const cleared = await brokenBy((trx) => trx(table).where({ position: rows[3]!.position }).update({ actor_id: null, actor_kind: null }));
        expectBrokenAt(cleared, rows, 3, /hash does not match/);
      });

      it('finds a time moved by one microsecond', async () => {
        const rows = await rowsOf(knex, table);
        const result = await brokenBy((trx) =>
          trx.raw(`update ?? set recorded_at = recorded_at + interval '1 microsecond' where position = ?`, [table, rows[12]!.position]),
        );
        expectBrokenAt(result, rows, 12, /hash does not match/);
      });

      it('finds a row deleted from the middle at the row after it', async () => {
        const rows = await rowsOf(knex, table);
        const result = await brokenBy((trx) => trx(table).where({ position: rows[10]!.position }).delete());
        expect(result.ok).to.equal(false);
        if (result.ok) return;
        expect(result.brokenAt).to.deep.equal({ id: rows[11]!.event_id, position: rows[11]!.position });
        expect(result.rows).to.equal(11);
        expect(result.reason).to.match(/prev_hash/);
      });

      it('finds two swapped hashes at the first of the two', async () => {
        const rows = await rowsOf(knex, table);
        const [a, b] = [rows[4]!, rows[15]!];
        const result = await brokenBy(async (trx) => {
          await trx(table).where({ position: a.position }).update({ hash: b.hash });
          await trx(table).where({ position: b.position }).update({ hash: a.hash });
        });
        expectBrokenAt(result, rows, 4, /hash does not match/);
      });

      it('finds a forged hash, even with the next row relinked to it', async () => {
        const rows = await rowsOf(knex, table);
        const result = await brokenBy((trx) => trx(table).where({ position: rows[20]!.position }).update({ hash: 'f'.repeat(64) }));
        expectBrokenAt(result, rows, 20, /hash does not match/);
        const relinked = await brokenBy(async (trx) => {
          await trx(table).where({ position: rows[20]!.position }).update({ hash: 'f'.repeat(64) });
          await trx(table).where({ position: rows[21]!.position }).update({ prev_hash: 'f'.repeat(64) });
        });
        expectBrokenAt(relinked, rows, 20, /hash does not match/);
      });
    });

    describe('querying', () => {
      const ids = (items: { id: string }[]) => items.map((item) => item.id);
      const matching = (keep: (e: RecordedEvent) => boolean) => events.filter(keep).map((e) => e.id);

      it('lists everything in log order as API objects', async () => {
        const page = await queryAudit(knex, table, { limit: 1000 });
        expect(page.nextCursor).to.equal(null);
        expect(ids(page.items)).to.deep.equal(events.map((e) => e.id));
        const rows = await rowsOf(knex, table);
        const scaled = page.items.find((item) => item.type === 'DeploymentScaled')!;
        const e = events.find((x) => x.id === scaled.id)!;
        expect(scaled).to.deep.equal({
          id: e.id,
          position: e.position,
          time: e.recordedAt.toISOString(),
          actor: { id: 'alice', kind: 'user' },
          action: 'deployment scaled',
          stream: 'deployment-1234',
          type: 'DeploymentScaled',
          correlationId: 'c-create',
          causationId: events[0]!.id,
          summary: 'deployment 1234 scaled from 2 to 4 replicas',
          hash: rows.find((r) => r.position === e.position)!.hash,
        });
        expect(page.items.find((item) => item.type === 'SomethingOdd')).to.include({ actor: null, correlationId: null, causationId: null });
      });

      it('filters by actor, stream, type and correlation id', async () => {
        const cases: [AuditQuery, (e: RecordedEvent) => boolean][] = [
          [{ actor: 'alice', limit: 1000 }, (e) => e.metadata.actor?.id === 'alice'],
          [{ actor: 'reconciler', limit: 1000 }, (e) => e.metadata.actor?.id === 'reconciler'],
          [{ stream: 'deployment-1234', limit: 1000 }, (e) => e.stream === 'deployment-1234'],
          [{ type: 'DeploymentScaled', limit: 1000 }, (e) => e.type === 'DeploymentScaled'],
          [{ correlationId: 'c-cordon', limit: 1000 }, (e) => e.metadata.correlationId === 'c-cordon'],
          [{ actor: 'nobody', limit: 1000 }, () => false],
        ];
        for (const [query, keep] of cases) {
          const page = await queryAudit(knex, table, query);
          expect(ids(page.items), JSON.stringify(query)).to.deep.equal(matching(keep));
          if (query.actor !== 'nobody') expect(page.items, JSON.stringify(query)).to.have.length.above(0);
        }
      });

      it('combines filters', async () => {
        const page = await queryAudit(knex, table, { actor: 'bob', type: 'DeploymentScaled', stream: 'deployment-5678', limit: 1000 });
        const expected = matching((e) => e.metadata.actor?.id === 'bob' && e.type === 'DeploymentScaled' && e.stream === 'deployment-5678');
        expect(expected).to.have.length(5);
        expect(ids(page.items)).to.deep.equal(expected);
        const narrower = await queryAudit(knex, table, { actor: 'bob', correlationId: 'c-scale-b', limit: 1000 });
        expect(ids(narrower.items)).to.deep.equal(matching((e) => e.metadata.actor?.id === 'bob' && e.metadata.correlationId === 'c-scale-b'));
      });

      it('selects a time range: from inclusive, to exclusive', async () => {
        const from = events.find((e) => e.type === 'DeploymentRolloutProgressed')!.recordedAt;
        const to = events.find((e) => e.stream === 'deployment-5678')!.recordedAt;
        const expected = matching((e) => e.recordedAt >= from && e.recordedAt < to);
        expect(expected.length).to.be.within(1, events.length - 1);
        const page = await queryAudit(knex, table, { from: from.toISOString(), to: to.toISOString(), limit: 1000 });
        expect(ids(page.items)).to.deep.equal(expected);
        expect(ids(page.items)).to.include(events.find((e) => e.recordedAt.getTime() === from.getTime())!.id);
        const onlyFrom = await queryAudit(knex, table, { from: to.toISOString(), limit: 1000 });
        expect(ids(onlyFrom.items)).to.deep.equal(matching((e) => e.recordedAt >= to));
        const withActor = await queryAudit(knex, table, { to: to.toISOString(), actor: 'alice', limit: 1000 });
        expect(ids(withActor.items)).to.deep.equal(matching((e) => e.recordedAt < to && e.metadata.actor?.id === 'alice'));
      });

      it('pages with a cursor, without duplicates or gaps', async () => {
        for (const [query, keep] of [
          [{ limit: 4 }, () => true],
          [{ limit: 5 }, () => true],
          [{ limit: 2, actor: 'alice' }, (e: RecordedEvent) => e.metadata.actor?.id === 'alice'],
          [{ limit: 3, stream: 'deployment-5678', type: 'DeploymentScaled' }, (e: RecordedEvent) => e.stream === 'deployment-5678' && e.type === 'DeploymentScaled'],
        ] as [AuditQuery, (e: RecordedEvent) => boolean][]) {
          const expected = matching(keep);
          const { items, pages } = await allPages(knex, table, query);
          expect(ids(items), JSON.stringify(query)).to.deep.equal(expected);
          expect(new Set(ids(items)).size).to.equal(items.length);
          expect(pages).to.equal(Math.max(1, Math.ceil(expected.length / query.limit)));
        }
        const first = await queryAudit(knex, table, { limit: 4 });
        expect(first.nextCursor).to.match(/^[A-Za-z0-9_-]+$/);
        const second = await queryAudit(knex, table, { limit: 4, cursor: first.nextCursor! });
        expect(second.items[0]!.position > first.items.at(-1)!.position).to.equal(true);
      });

      it('refuses a bad limit, cursor or time, naming the field', async () => {
        const refused = async (query: AuditQuery) => {
          try {
            await queryAudit(knex, table, query);
          } catch (error) {
            expect(error).to.be.instanceOf(InvalidQuery);
            return (error as InvalidQuery).errors.map((e) => e.path);
          }
          throw new Error(`accepted ${JSON.stringify(query)}`);
        };
        expect(await refused({ limit: 0 })).to.deep.equal(['limit']);
        expect(await refused({ limit: 1001 })).to.deep.equal(['limit']);
        expect(await refused({ limit: 2.5 })).to.deep.equal(['limit']);
        expect(await refused({ limit: 10, cursor: 'not a cursor!' })).to.deep.equal(['cursor']);
        expect(await refused({ limit: 10, from: 'yesterday' })).to.deep.equal(['from']);
        expect((await queryAudit(knex, table, { limit: 1000 })).items).to.have.length(23);
      });
    });
  });
}
