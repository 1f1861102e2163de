// The databases the projection tests run on, each with the lease its projectors take: PGlite always, PostgreSQL
// when TEST_DATABASE_URL names a server (a scratch database, dropped afterwards).
import { AdvisoryLease, inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import type { ProjectionLease } from '../../projections/runtime.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL } from './postgres.js';

export interface Backend {
  name: string;
  skip?: string;
  open(): Promise<{ db: Database; url?: string; lease: () => ProjectionLease; close(): Promise<void> }>;
}

export const backends: Backend[] = [
  {
    name: 'PGlite',
    open: async () => {
      const db = await openPglite();
      return { db, lease: () => inProcessLease, close: () => db.close() };
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
        url: scratch.url,
        lease: () => new AdvisoryLease(scratch.url),
        close: async () => {
          await db.close();
          await scratch.drop();
        },
      };
    },
  },
];
