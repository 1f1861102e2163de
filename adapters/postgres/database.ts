// One handle on Sentinel's SQL database: PostgreSQL through pg, or embedded PGlite, both behind knex.
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import knexFactory, { type Knex } from 'knex';
import type pg from 'pg';
import { lockDataDir } from './data-dir-lock.js';

export type DatabaseKind = 'postgres' | 'pglite';

/**
 * Raw SQL with `$1` placeholders on a pooled connection. knex owns the pool, so statements sent here and
 * knex transactions never interleave on PGlite's single connection.
 */
export interface Database {
  readonly kind: DatabaseKind;
  readonly knex: Knex;
  /** Connection string for clients that need a connection of their own (LISTEN); PostgreSQL only. */
  readonly connectionString: string | undefined;
  /** `prepareAs` names the statement so PostgreSQL plans it once per connection; hot paths use it. */
  query<Row>(text: string, params?: unknown[], prepareAs?: string): Promise<Row[]>;
  close(): Promise<void>;
}

interface RawConnection {
  query(text: string | { name: string; text: string; values: unknown[] }, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface PostgresOptions {
  poolMax?: number;
}

/** How long a transaction of Sentinel's may sit idle before the server ends it. */
export const IDLE_IN_TRANSACTION_TIMEOUT = '60s';

export function openPostgres(connectionString: string, options: PostgresOptions = {}): Database {
  const knex = knexFactory({
    client: 'pg',
    connection: { connectionString, application_name: 'sentinel' },
    pool: {
      min: 0,
      max: options.poolMax ?? 10,
      // Sentinel's statements are short and index-driven: planning them once per connection beats re-planning
      // on every call, which PostgreSQL's default does for statements with many parameters. A transaction of
      // Sentinel's left idle (a bug, a hung await) would hold back what every subscriber on the server can
      // read, so the server ends it.
      afterCreate: (connection: pg.Client, done: (error: Error | null, connection: pg.Client) => void) => {
        connection.query(
          `set plan_cache_mode = force_generic_plan; set idle_in_transaction_session_timeout = '${IDLE_IN_TRANSACTION_TIMEOUT}'`,
          (error) => done(error, connection),
        );
      },
    },
  });
  return wrap('postgres', knex, connectionString);
}

/**
 * Embedded PostgreSQL. With `dataDir` the database persists there, and this process holds the directory until
 * it closes the database (`DataDirInUse` when another process does); without, it lives in memory.
 */
export async function openPglite(dataDir?: string): Promise<Database> {
  // Loaded only where it is used: embedded PostgreSQL costs a process on PostgreSQL about 90 MB for nothing.
  const { PGlite } = await import('@electric-sql/pglite');
  if (!dataDir) return pglite(new PGlite(await pristineCluster.options(PGlite)));
  await mkdir(dataDir, { recursive: true });
  const lock = await lockDataDir(dataDir);
  try {
    const fresh = !(await exists(path.join(dataDir, 'PG_VERSION')));
    const db = await pglite(new PGlite(dataDir, fresh ? await pristineCluster.options(PGlite) : {}));
    return {
      ...db,
      async close() {
        try {
          await db.close();
        } finally {
          await lock.release();
        }
      },
    };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/**
 * A new embedded database runs initdb, which takes seconds. The first one a process creates does; from the second
 * on, each starts from a copy of a cluster initialised once (a data-directory dump held in memory, about 40 MB), which
 * is the same pristine cluster. A process that opens one database, as `npm start` does, never pays for the copy.
 */
const pristineCluster = {
  created: 0,
  dump: undefined as Promise<Blob> | undefined,
  async options(PGliteClass: typeof PGlite): Promise<{ loadDataDir?: Blob }> {
    this.created += 1;
    if (this.created === 1) return {};
    this.dump ??= (async () => {
      const initialised = new PGliteClass();
      try {
        await initialised.waitReady;
        return await initialised.dumpDataDir('none');
      } finally {
        await initialised.close();
      }
    })();
    try {
      return { loadDataDir: await this.dump };
    } catch {
      // No copy to start from: this one runs initdb itself, and the next tries to make the copy again.
      this.dump = undefined;
      return {};
    }
  },
};

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function pglite(instance: PGlite): Promise<Database> {
  await instance.waitReady;
  const { default: ClientPGLite } = await import('knex-pglite');
  const knex = knexFactory({ client: ClientPGLite, connection: { pglite: instance } as Knex.StaticConnectionConfig });
  return wrap('pglite', knex, undefined);
}

function wrap(kind: DatabaseKind, knex: Knex, connectionString: string | undefined): Database {
  return {
    kind,
    knex,
    connectionString,
    async query<Row>(text: string, params: unknown[] = [], prepareAs?: string): Promise<Row[]> {
      const connection = (await knex.client.acquireConnection()) as RawConnection;
      try {
        const result =
          prepareAs && kind === 'postgres'
            ? await connection.query({ name: prepareAs, text, values: params })
            : await connection.query(text, params);
        return result.rows as Row[];
      } finally {
        await knex.client.releaseConnection(connection);
      }
    },
    async close() {
      await knex.destroy();
    },
  };
}
