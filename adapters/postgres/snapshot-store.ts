// Aggregate snapshots in PostgreSQL (or PGlite), and the lookup of an event by id in the PostgreSQL event store.
import type { EventLocator, Snapshot, SnapshotAtOrBelow, SnapshotBound, SnapshotStore } from '../../commands/aggregate-cache.js';
import type { Database } from './database.js';

interface SnapshotRow {
  revision: string | number;
  position: string | null;
  recorded_at: Date | string | null;
  version: number;
  state: string;
}

const COLUMNS = 'revision, position, recorded_at, version, state';

/**
 * The latest snapshot of each stream in `sentinel_aggregate_snapshots` (migration 005), which a command load reads by
 * its key; and every snapshot written in `sentinel_aggregate_snapshot_history` (migration 009), which a fold up to a
 * past point reads. A write adds to the history and replaces the latest unless that holds a later state of the
 * same version.
 */
export class PostgresSnapshotStore implements SnapshotStore {
  /** Whether the PostgreSQL event store's table is on this database, where a snapshot's recorded time is read. */
  private eventTable: Promise<boolean> | undefined;

  constructor(private readonly db: Database) {}

  async read(stream: string): Promise<Snapshot | undefined> {
    const [row] = await this.db.query<SnapshotRow>(
      `select ${COLUMNS} from sentinel_aggregate_snapshots where stream = $1`,
      [stream],
      'sentinel_read_snapshot',
    );
    return row === undefined ? undefined : snapshotOf(stream, row);
  }

  async readAtOrBelow(stream: string, version: number, bound: SnapshotBound): Promise<SnapshotAtOrBelow> {
    const revision = bound.revision ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(revision)) throw new Error(`snapshot bound revision ${bound.revision} is not a whole number`);
    if (revision < 0) return { snapshot: undefined, nextRevision: undefined };
    if (bound.position !== undefined && bound.recordedAt !== undefined) throw new Error('a snapshot bound takes a position or a recorded time, not both');
    // One statement per kind of point, each walking the index of the column it bounds; the next snapshot past
    // the point comes in the same round trip.
    const [column, value] =
      bound.position !== undefined ? (['position', bound.position] as const) : bound.recordedAt !== undefined ? (['recorded_at', bound.recordedAt] as const) : [undefined, undefined];
    const rows =
      column === undefined
        ? await this.db.query<SnapshotRow & { side: 'at' | 'next' }>(
            `(select 'at' as side, ${COLUMNS} from sentinel_aggregate_snapshot_history
               where stream = $1 and version = $2 and revision <= $3 order by revision desc limit 1)
             union all
             (select 'next', revision, null, null, null, '' from sentinel_aggregate_snapshot_history
               where stream = $1 and version = $2 and revision > $3 order by revision limit 1)`,
            [stream, version, revision],
            'sentinel_read_snapshot_at_revision',
          )
        : await this.db.query<SnapshotRow & { side: 'at' | 'next' }>(
            `(select 'at' as side, ${COLUMNS} from sentinel_aggregate_snapshot_history
               where stream = $1 and version = $2 and ${column} <= $4 and revision <= $3
               order by ${column} desc, revision desc limit 1)
             union all
             (select 'next', revision, null, null, null, '' from sentinel_aggregate_snapshot_history
               where stream = $1 and version = $2 and ${column} > $4 order by ${column}, revision limit 1)
             union all
             (select 'next', revision, null, null, null, '' from sentinel_aggregate_snapshot_history
               where stream = $1 and version = $2 and revision > $3 order by revision limit 1)`,
            [stream, version, revision, value],
            `sentinel_read_snapshot_at_${column}`,
          );
    const at = rows.find((row) => row.side === 'at');
    const next = rows.filter((row) => row.side === 'next').map((row) => Number(row.revision));
    return { snapshot: at === undefined ? undefined : snapshotOf(stream, at), nextRevision: next.length === 0 ? undefined : Math.min(...next) };
  }

  async write(snapshot: Snapshot): Promise<void> {
    // The recorded time is its event's where the events are on this database (to the millisecond, as the event
    // store reads it and as a time point compares with it); otherwise the writer's, which may lie a little after it.
    const fromEvents = await this.hasEventTable();
    const recordedAt = fromEvents
      ? `coalesce((select date_trunc('milliseconds', recorded_at) from sentinel_events where stream = $1 and revision = $2), $6::timestamptz)`
      : '$6::timestamptz';
    await this.db.query(
      `with kept as (
         insert into sentinel_aggregate_snapshot_history (stream, revision, position, recorded_at, version, state)
         values ($1, $2, $3, ${recordedAt}, $4, $5)
         on conflict (stream, version, revision) do nothing
       )
       insert into sentinel_aggregate_snapshots (stream, revision, position, recorded_at, version, state)
       values ($1, $2, $3, ${recordedAt}, $4, $5)
       on conflict (stream) do update
          set revision = excluded.revision, position = excluded.position, recorded_at = excluded.recorded_at,
              version = excluded.version, state = excluded.state, written_at = now()
        where sentinel_aggregate_snapshots.version <> excluded.version
           or sentinel_aggregate_snapshots.revision < excluded.revision`,
      [snapshot.stream, snapshot.revision, snapshot.position, snapshot.version, snapshot.state, snapshot.recordedAt ?? null],
      `sentinel_write_snapshot_${fromEvents ? 'timed' : 'given'}`,
    );
  }

  private hasEventTable(): Promise<boolean> {
    this.eventTable ??= this.db
      .query<{ present: boolean }>(`select to_regclass('sentinel_events') is not null as present`)
      .then(([row]) => row?.present === true)
      .catch((error: unknown) => {
        // Asked again on the next write rather than remembered as absent.
        this.eventTable = undefined;
        throw error;
      });
    return this.eventTable;
  }
}

function snapshotOf(stream: string, row: SnapshotRow): Snapshot {
  const recordedAt = row.recorded_at === null ? null : new Date(row.recorded_at);
  return { stream, revision: Number(row.revision), position: row.position, recordedAt, version: row.version, state: row.state };
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
