// Child process for the durability test: appends forever, printing each acknowledged event id.
import { randomUUID } from 'node:crypto';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, openPostgres } from '../../adapters/postgres/database.js';

const db = process.env.WRITER_DATABASE_URL
  ? openPostgres(process.env.WRITER_DATABASE_URL)
  : await openPglite(process.env.WRITER_PGLITE_DIR);
const store = await PostgresEventStore.open(db);
for (let i = 0; ; i++) {
  const id = randomUUID();
  await store.append(`durability-${i % 7}`, [{ id, type: 'DurabilityProbe', data: { i } }]);
  process.stdout.write(`${id}\n`);
}
