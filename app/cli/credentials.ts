// Where `sentinel login` keeps its tokens: one JSON file, readable by its owner alone, in the user's config
// directory, with a session per server so that one server's token is never sent to another.
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { Exit, EXIT_FAILURE, messageOf } from './exit.js';

const session = z.object({
  username: z.string(),
  accessToken: z.string(),
  refreshToken: z.string(),
  /** When the access token stops working (ISO time), from the `expiresIn` it came with. */
  accessExpiresAt: z.string(),
});
export type Session = z.infer<typeof session>;

/** How long a command waits for another to finish refreshing, and when a lock is taken to be left by one that died. */
const LOCK_WAIT_MS = 15_000;
const LOCK_STALE_MS = 60_000;

const file = z.object({ servers: z.record(z.string(), session) });
type CredentialsData = z.infer<typeof file>;

/** `$SENTINEL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sentinel`, else `~/.config/sentinel`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['SENTINEL_CONFIG_DIR']) return path.resolve(env['SENTINEL_CONFIG_DIR']);
  if (env['XDG_CONFIG_HOME']) return path.resolve(env['XDG_CONFIG_HOME'], 'sentinel');
  return path.join(os.homedir(), '.config', 'sentinel');
}

export class CredentialsFile {
  readonly path: string;

  constructor(dir: string = configDir()) {
    this.path = path.join(dir, 'credentials.json');
  }

  async get(server: string): Promise<Session | undefined> {
    return (await this.read()).servers[server];
  }

  async put(server: string, value: Session): Promise<void> {
    const data = await this.read();
    data.servers[server] = value;
    await this.write(data);
  }

  /** Forgets the session with a server; false when there was none. */
  async remove(server: string): Promise<boolean> {
    const data = await this.read();
    if (!(server in data.servers)) return false;
    delete data.servers[server];
    if (Object.keys(data.servers).length === 0) await rm(this.path, { force: true });
    else await this.write(data);
    return true;
  }

  /**
   * Runs `critical` holding the file's lock. A refresh token works once, and presenting a spent one ends the
   * whole session: two commands refreshing at once would log the user out, so they take turns.
   */
  async locked<T>(critical: () => Promise<T>): Promise<T> {
    const lock = `${this.path}.lock`;
    await mkdir(path.dirname(this.path), { recursive: true, mode: 0o700 });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await (await open(lock, 'wx', 0o600)).close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new Exit(`cannot create ${lock}: ${messageOf(error)}`, EXIT_FAILURE);
      }
      const since = await stat(lock).then(
        (held) => Date.now() - held.mtimeMs,
        () => 0,
      );
      if (since > LOCK_STALE_MS) await rm(lock, { force: true });
      else if (Date.now() > deadline) throw new Exit(`${lock} is held by another sentinel command; if none is running, delete it`, EXIT_FAILURE);
      else await sleep(50);
    }
    try {
      return await critical();
    } finally {
      await rm(lock, { force: true });
    }
  }

  private async read(): Promise<CredentialsData> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { servers: {} };
      throw new Exit(`cannot read ${this.path}: ${messageOf(error)}`, EXIT_FAILURE);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new Exit(`${this.path} is not JSON (${messageOf(error)}): delete it and run sentinel login`, EXIT_FAILURE);
    }
    const result = file.safeParse(parsed);
    if (!result.success) throw new Exit(`${this.path} is not a sentinel credentials file: delete it and run sentinel login`, EXIT_FAILURE);
    return result.data;
  }

  /** Written to a new file that is then renamed over the old one, so a reader never sees half a file. */
  private async write(data: CredentialsData): Promise<void> {
    const dir = path.dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const next = `${this.path}.${process.pid}.tmp`;
    try {
      await writeFile(next, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
      // The mode given to writeFile applies only to a file it creates.
      await chmod(next, 0o600);
      await rename(next, this.path);
    } catch (error) {
      await rm(next, { force: true });
      throw new Exit(`cannot write ${this.path}: ${messageOf(error)}`, EXIT_FAILURE);
    }
  }
}
