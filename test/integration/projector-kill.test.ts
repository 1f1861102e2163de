// Exactly once, proven: sixteen writers append while a separate projector process is killed with SIGKILL at
// random moments and restarted; afterwards every read model equals a projection of the log from scratch.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPostgres, type Database } from '../../adapters/postgres/database.js';
import { clusters, workloads } from '../../commands/aggregates.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { CommandHandler, ConflictAfterRetries, type CommandContext } from '../../commands/command-handler.js';
import { auditProjector } from '../../projections/audit-trail.js';
import { tableNames, type Projector } from '../../projections/projector.js';
import { READ_MODEL_PROJECTORS } from '../../projections/read-models.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { nodeArgsFor } from '../support/entry-points.js';
import { allVisible } from '../support/events.js';

const MAIN = path.resolve('app/main.ts');
const PROJECTORS: Projector[] = [...READ_MODEL_PROJECTORS, auditProjector];
const WRITERS = 16;
const SCRATCH_GENERATION = 900;

function startProjector(databaseUrl: string): { child: ChildProcess; projecting: Promise<void> } {
  const child = spawn(process.execPath, nodeArgsFor(MAIN), {
    env: { ...process.env, SENTINEL_ROLE: 'projector', DATABASE_URL: databaseUrl, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const projecting = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"msg":"projecting"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`projector exited with ${code} before projecting:\n${output}`)));
  });
  projecting.catch(() => undefined);
  return { child, projecting };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

describe('exactly-once projection under SIGKILL (PostgreSQL)', function () {
  this.timeout(180_000);
  let scratch: ScratchDatabase;
  let db: Database;
  let store: PostgresEventStore;
  const children: ChildProcess[] = [];

  before(async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    scratch = await createScratchDatabase();
    db = openPostgres(scratch.url, { poolMax: 20 });
    store = await PostgresEventStore.open(db);
  });

  after(async () => {
    for (const child of children) await kill(child);
    await store?.close();
    await db?.close();
    await scratch?.drop();
  });

  it('leaves every read model equal to a from-scratch projection', async () => {
    const handler = new CommandHandler(store);
    const context = (): CommandContext => ({ actor: { id: 'writer', kind: 'system' }, correlationId: randomUUID(), causationId: randomUUID() });
    let writing = true;
    let written = 0;

    // Sixteen writers: each registers clusters and workloads and keeps revising them.
    const writer = async (w: number) => {
      const clusterId = randomUUID();
      await handler.execute(clusters, clusterId, {
        type: 'RegisterCluster',
        clusterId,
        spec: { name: `c-${w}`, apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' }, region: 'r', labels: {}, gpuSkus: [] },
      }, context());
      for (let i = 0; writing; i += 1) {
        const workloadId = randomUUID();
        await handler.execute(workloads, workloadId, {
          type: 'RegisterWorkload',
          workloadId,
          spec: { name: `w-${w}-${i}`, namespace: 'ml', type: 'batch', image: 'busybox', resources: { cpu: '1', memory: '1Gi' }, labels: { team: `t${w % 4}` } },
        }, context());
        await handler
          .execute(workloads, workloadId, { type: 'UpdateWorkloadSpec', workloadId, changes: { image: `busybox:${i}` } }, context())
          .catch((error: unknown) => {
            if (!(error instanceof ConflictAfterRetries)) throw error;
          });
        await handler.execute(clusters, clusterId, { type: 'UpdateCluster', clusterId, changes: { region: `r-${i}` } }, context());
        written += 2;
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));

    // Kill the projector at random moments, four times, while the writers write.
    for (let round = 0; round < 4; round += 1) {
      const projector = startProjector(scratch.url);
      children.push(projector.child);
      await projector.projecting;
      await sleep(200 + Math.random() * 1500);
      await kill(projector.child);
    }
    writing = false;
    await Promise.all(writers);
    expect(written).to.be.greaterThan(100);

    // One last projector runs until it has caught up with everything written.
    const last = startProjector(scratch.url);
    children.push(last.child);
    await last.projecting;
    await allVisible(store);
    const head = (await store.readAll({ after: undefined, limit: 1 })).checkpoint;
    expect(head).to.be.a('string');
    let end = head;
    for (;;) {
      const page = await store.readAll({ after: end, limit: 1000 });
      if (page.events.length === 0) break;
      end = page.checkpoint;
    }
    const observer = new ProjectionRuntime(db.knex, store, PROJECTORS, { logger: pino({ level: 'silent' }), lease: inProcessLease });
    expect(await observer.waitFor(end!, PROJECTORS.map((p) => p.name), 60_000), 'the last projector caught up').to.equal(true);
    await kill(last.child);

    // Project the whole log from scratch into a generation of its own, and compare table by table.
    const events: RecordedEvent[] = [];
    for (let after: string | undefined; ; ) {
      const page = await store.readAll({ after, limit: 2000 });
      if (page.events.length === 0) break;
      events.push(...page.events);
      after = page.checkpoint;
    }
    for (const projector of PROJECTORS) {
      const live = await observer.tables(projector);
      const fresh = tableNames(projector, SCRATCH_GENERATION);
      await db.knex.transaction(async (trx) => {
        await projector.createTables(trx, fresh);
        const mine = projector.eventTypes ? events.filter((event) => projector.eventTypes!.includes(event.type)) : events;
        for (let i = 0; i < mine.length; i += 500) await projector.apply(mine.slice(i, i + 500), trx, fresh);
      });
      for (const base of projector.tables) {
        const rows = async (table: string) => {
          const result = await db.knex.raw(`select to_jsonb(t) as row from ${table} t`);
          return (result.rows as { row: unknown }[]).map((r) => JSON.stringify(r.row)).sort();
        };
        const [liveRows, freshRows] = await Promise.all([rows(live[base]!), rows(fresh[base]!)]);
        expect(liveRows.length, `${projector.name}.${base} rows`).to.equal(freshRows.length);
        expect(liveRows, `${projector.name}.${base}`).to.deep.equal(freshRows);
      }
    }
    const [auditRows] = (await db.knex(`${(await observer.tables(auditProjector)).audit}`).count('* as n')) as { n: string }[];
    expect(Number(auditRows!.n)).to.equal(events.length);
  });
});
