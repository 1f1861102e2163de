// Embedded databases after the first start from a copy of one initialised cluster: each copy is a database of its
// own, and one in a data directory persists there like any other.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { openPglite, type Database } from '../../adapters/postgres/database.js';

describe('embedded databases started from a copy of an initialised cluster', function () {
  this.timeout(60_000);
  const opened: Database[] = [];
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sentinel-pglite-copy-'));
  });
  after(async () => {
    for (const db of opened) await db.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  const open = async (dataDir?: string) => {
    const db = await openPglite(dataDir);
    opened.push(db);
    return db;
  };
  const tables = async (db: Database) =>
    (await db.query<{ name: string }>(`select table_name as name from information_schema.tables where table_schema = 'public' order by 1`)).map((row) => row.name);

  it('given databases opened one after another, when one creates a table, then the others do not see it', async () => {
    const [first, second, third] = [await open(), await open(), await open()];
    await second.query('create table only_here (id int)');
    expect(await tables(second)).to.deep.equal(['only_here']);
    expect(await tables(first)).to.deep.equal([]);
    expect(await tables(third)).to.deep.equal([]);
    expect(await tables(await open())).to.deep.equal([]);
  });

  it('given a new data directory, when it is written, closed and opened again, then what was written is there', async () => {
    const dataDir = path.join(dir, 'pglite');
    const db = await openPglite(dataDir);
    await db.query('create table kept (id int)');
    await db.query('insert into kept values (7)');
    await db.close();
    const again = await open(dataDir);
    expect(await again.query<{ id: number }>('select id from kept')).to.deep.equal([{ id: 7 }]);
  });
});
