// A process killed mid-stream loses none of the appends it had acknowledged, on PGlite and on PostgreSQL.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { SKIP_POSTGRES_REASON, TEST_DATABASE_URL, createScratchDatabase } from '../support/postgres.js';
import { nodeArgsFor } from '../support/entry-points.js';
import { allVisible } from '../support/events.js';

const WRITER = path.resolve('test/support/append-until-killed.ts');

/** Runs the writer until it has acknowledged `count` appends, SIGKILLs it, and returns what it acknowledged. */
async function acknowledgedBeforeKill(env: NodeJS.ProcessEnv, count: number): Promise<string[]> {
  const child = spawn(process.execPath, nodeArgsFor(WRITER), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const acknowledged: string[] = [];
  for await (const line of createInterface({ input: child.stdout })) {
    acknowledged.push(line);
    if (acknowledged.length === count) child.kill('SIGKILL');
  }
  await exited;
  return acknowledged;
}

/** Reopens the database the killed writer used and checks every acknowledged event is in the log. */
async function expectAllStored(db: Database, acknowledged: string[]): Promise<void> {
  try {
    const store = await PostgresEventStore.open(db);
    await allVisible(store);
    const ids = new Set<string>();
    for (let checkpoint: string | undefined; ; ) {
      const page = await store.readAll({ after: checkpoint, limit: 1000 });
      if (page.events.length === 0) break;
      for (const event of page.events) ids.add(event.id);
      checkpoint = page.checkpoint;
    }
    await store.close();
    for (const id of acknowledged) expect(ids.has(id), `acknowledged event ${id} is stored`).to.equal(true);
  } finally {
    await db.close();
  }
}

describe('durability: SIGKILL after acknowledged appends', function () {
  this.timeout(120_000);

  it('PGlite: reopening the data directory finds every acknowledged event', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-durability-'));
    try {
      const acknowledged = await acknowledgedBeforeKill({ WRITER_PGLITE_DIR: dataDir }, 300);
      expect(acknowledged.length).to.be.at.least(300);
      await expectAllStored(await openPglite(dataDir), acknowledged);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: every acknowledged event is stored', async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    const scratch = await createScratchDatabase();
    try {
      const acknowledged = await acknowledgedBeforeKill({ WRITER_DATABASE_URL: scratch.url }, 500);
      expect(acknowledged.length).to.be.at.least(500);
      await expectAllStored(openPostgres(scratch.url), acknowledged);
    } finally {
      await scratch.drop();
    }
  });
});
