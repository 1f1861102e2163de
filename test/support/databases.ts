// The databases a storage test runs on: embedded PGlite always, and PostgreSQL when TEST_DATABASE_URL names a server
// (a scratch database, dropped afterwards).
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL } from './postgres.js';

export interface TestDatabase {
  name: string;
  /** Why the suite is skipped on this database; undefined when it runs. */
  skipReason: string | undefined;
  open(): Promise<{ db: Database; drop(): Promise<void> }>;
}

export const databases: TestDatabase[] = [
  { name: 'PGlite', skipReason: undefined, open: async () => ({ db: await openPglite(), drop: async () => undefined }) },
  {
    name: 'PostgreSQL',
    skipReason: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON,
    open: async () => {
      const scratch = await createScratchDatabase();
      return { db: openPostgres(scratch.url), drop: () => scratch.drop() };
    },
  },
];
