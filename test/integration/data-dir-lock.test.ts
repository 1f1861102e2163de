// One process at a time on an embedded data directory; a lock left by a process that died is taken over.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { DataDirInUse, lockDataDir } from '../../adapters/postgres/data-dir-lock.js';
import { openPglite } from '../../adapters/postgres/database.js';
import { rejection } from '../support/rejection.js';

describe('embedded data directory lock', function () {
  this.timeout(30_000);
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'sentinel-lock-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('given a directory held by a live process, when another opens it, then it is refused naming the holder', async () => {
    const dataDir = path.join(root, 'pglite');
    const db = await openPglite(dataDir);
    try {
      const error = await rejection(openPglite(dataDir));
      expect(error).to.be.instanceOf(DataDirInUse);
      expect((error as DataDirInUse).holder.pid).to.equal(process.pid);
      expect((error as Error).message).to.include(`in use by process ${process.pid}`);
      // The holder still works.
      expect(await db.query<{ one: number }>('select 1 as one')).to.deep.equal([{ one: 1 }]);
    } finally {
      await db.close();
    }
    // Released on close.
    const reopened = await openPglite(dataDir);
    await reopened.close();
  });

  it('given a lock left by a process that is gone, when the directory is opened, then the lock is taken over', async () => {
    const dataDir = path.join(root, 'pglite');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(gone.stdout);
    await writeFile(`${dataDir}.lock`, JSON.stringify({ pid: deadPid, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
    const lock = await lockDataDir(dataDir);
    expect(JSON.parse(await readFile(lock.path, 'utf8'))).to.include({ pid: process.pid });
    await lock.release();
  });

  it('given a lock held on another host, then it is respected, since its process cannot be checked from here', async () => {
    const dataDir = path.join(root, 'pglite');
    await writeFile(`${dataDir}.lock`, JSON.stringify({ pid: 1, host: 'elsewhere.example', since: '2026-01-01T00:00:00.000Z' }));
    expect(await rejection(lockDataDir(dataDir))).to.be.instanceOf(DataDirInUse);
  });
});
