// One process at a time on an embedded database directory: PGlite takes no lock of its own, and two processes
// writing one directory corrupt it.
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';

/** Another live process holds the directory. */
export class DataDirInUse extends Error {
  override name = 'DataDirInUse';
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
  ) {
    super(
      `the embedded database at ${dataDir} is in use by process ${holder.pid} on ${holder.host} (since ${holder.since}): ` +
        'stop that process first, or give this one its own SENTINEL_DATA_DIR, or point DATABASE_URL at PostgreSQL',
    );
  }
}

export interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * Takes `<dataDir>.lock`. The holder's pid is written to a file of its own first and then hard-linked into
 * place, so the lock never exists half-written; a lock whose process is gone (killed, crashed) is taken over.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = `${dataDir}.lock`;
  const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const draft = `${path}.${process.pid}`;
  await writeFile(draft, JSON.stringify(me), { mode: 0o600 });
  try {
    // Twice at most: once, and once more after clearing a stale lock. A process racing for the same stale
    // lock either wins the link (and this one reports it) or loses it.
    for (let attempt = 0; ; attempt++) {
      try {
        await link(draft, path);
        return { path, release: () => releaseIfMine(path, me) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = await holderOf(path);
      if (holder && (holder.host !== me.host || alive(holder.pid))) throw new DataDirInUse(dataDir, holder);
      if (attempt > 0) throw new Error(`cannot take the lock ${path}: it keeps reappearing; is another Sentinel starting?`);
      await rm(path, { force: true });
    }
  } finally {
    await rm(draft, { force: true });
  }
}

async function holderOf(path: string): Promise<LockHolder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string' || typeof parsed.since !== 'string') return undefined;
    return { pid: parsed.pid, host: parsed.host, since: parsed.since };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function releaseIfMine(path: string, me: LockHolder): Promise<void> {
  const holder = await holderOf(path);
  if (holder?.pid === me.pid && holder.since === me.since) await rm(path, { force: true });
}
