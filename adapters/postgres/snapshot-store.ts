// Aggregate snapshots in PostgreSQL (or PGlite), and the lookup of an event by id in the PostgreSQL event store.
import type { EventLocator, Snapshot, SnapshotStore } from '../../commands/aggregate-cache.js';
import type { Database } from './database.js';

interface SnapshotRow {
  revision: string | number;
  position: string | null;
  version: number;
  state: string;
}

/** One row per stream (migration 005): a write replaces it unless the row holds a later state of the same version. */
export class PostgresSnapshotStore implements SnapshotStore {
  constructor(private readonly db: Database) {}

  async read(stream: string): Promise<Snapshot | undefined> {
    const [row] = await this.db.query<SnapshotRow>(
      'select revision, position, version, state from sentinel_aggregate_snapshots where stream = $1',
      [stream],
      'sentinel_read_snapshot',
    );
    if (!row) return undefined;
    return { stream, revision: Number(row.revision), position: row.position, version: row.version, state: row.state };
  }

  async write(snapshot: Snapshot): Promise<void> {
    await this.db.query(
      `insert into sentinel_aggregate_snapshots (stream, revision, position, version, state)
       values ($1, $2, $3, $4, $5)
       on conflict (stream) do update
          set revision = excluded.revision, position = excluded.position, version = excluded.version,
              state = excluded.state, written_at = now()
        where sentinel_aggregate_snapshots.version <> excluded.version
           or sentinel_aggregate_snapshots.revision < excluded.revision`,
      [snapshot.stream, snapshot.revision, snapshot.position, snapshot.version, snapshot.state],
      'sentinel_write_snapshot',
    );
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Looks an event id up through the (stream, id) index of the PostgreSQL event store's table: only for a handler
 * whose event store is the PostgreSQL one on this same database.
 */
export class PostgresEventLocator implements EventLocator {
  constructor(private readonly db: Database) {}

  async revisionOf(stream: string, eventId: string): Promise<number | undefined> {
    // The store accepts only UUIDs as event ids, so anything else is in no stream.
    if (!UUID.test(eventId)) return undefined;
    const [row] = await this.db.query<{ revision: string | number }>(
      'select revision from sentinel_events where stream = $1 and id = $2::uuid',
      [stream, eventId],
      'sentinel_locate_event',
    );
    return row === undefined ? undefined : Number(row.revision);
  }
}
