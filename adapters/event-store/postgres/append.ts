// The append statements of the PostgreSQL event store: one round trip, no lock held while the client waits.

/*
 * Parameters: $1 stream, $2 expected kind ('any' | 'no_stream' | 'stream_exists' | 'revision'),
 * $3 expected revision, then five parameters per event (see appendManySql).
 *
 * One statement reads the stream's current revision (and, only when the expected kind needs it, its soft-delete
 * mark), decides, and inserts, returning the inserted rows; no row means the expected state did not hold, and
 * the store looks at the stream (DUPLICATES_SQL) to report why. It works on the statement's snapshot: when another append to the same stream
 * commits first, the insert runs into the unique (stream, revision) index, or (stream, id) for a repeated event
 * id, and fails with 23505 instead of writing a gap or a duplicate; the store then looks at what is stored and
 * decides again. Because a transaction can only write revision r + 1 after it has seen revision r committed, and
 * gets its transaction id after that, each stream's revisions appear in increasing global order.
 *
 * Repeated event ids are not looked up on this path: a retried append either hits the (stream, id) index or
 * finds the stream moved on, and both lead to DUPLICATES_SQL before anything is reported.
 *
 * A stream is live when its highest revision is at or above truncate_before; a soft delete sets
 * truncate_before past the end, so the stream counts as absent until the next append.
 */
function appendSql(input: string): string {
  // "offset 0" keeps the planner from folding the head into the outer query, which would probe the index once
  // for every place the current revision is used.
  return `
insert into sentinel_events (id, stream, revision, type, schema_version, data, metadata)
select i.id, $1, h.current + i.ord, i.type, i.schema_version, i.data, i.metadata
  from (${input}) as i,
       (select current,
               current >= 0 and current >= (case when $2 in ('no_stream', 'stream_exists')
                 then coalesce((select truncate_before from sentinel_stream_metadata where stream = $1), 0) else 0 end) as live
          from (select coalesce((select revision from sentinel_events where stream = $1 order by revision desc limit 1), -1)
                       as current) as c
        offset 0) as h
 where case $2
         when 'any' then true
         when 'no_stream' then not h.live
         when 'stream_exists' then h.live
         when 'revision' then h.current >= 0 and h.current = $3::bigint
         else false
       end
 order by i.ord
returning revision, tx_id::text as tx_id, seq`;
}

/**
 * `count` events as rows of parameters from $4 on, five to an event (id, type, schema version, data, metadata):
 * sent as they are, like a multi-row INSERT, so the server parses each JSON document once.
 */
export function appendManySql(count: number): string {
  const rows = Array.from({ length: count }, (_, k) => {
    const p = 4 + k * 5;
    return `($${p}::uuid, $${p + 1}::text, $${p + 2}::integer, $${p + 3}::jsonb, $${p + 4}::jsonb, ${k + 1})`;
  });
  return appendSql(`select * from (values ${rows.join(', ')}) as t(id, type, schema_version, data, metadata, ord)`);
}

/**
 * What the stream already holds of an append's events ($2: JSON array of {id, type, data}), and the stream's
 * current revision: run when an append conflicted, to tell a retried append from a real conflict.
 */
export const DUPLICATES_SQL = `
with input as (
  select (e->>'id')::uuid as id, e->>'type' as type, e->'data' as data
    from jsonb_array_elements($2::jsonb) as t(e)
),
stored as (
  select s.revision, s.tx_id, s.seq, (s.type = i.type and s.data = i.data) as same
    from input i join sentinel_events s on s.stream = $1 and s.id = i.id
),
head as materialized (
  select coalesce((select revision from sentinel_events where stream = $1 order by revision desc limit 1), -1) as current,
         coalesce((select truncate_before from sentinel_stream_metadata where stream = $1), 0) as truncate_before
)
select (select count(*) from input) as wanted,
       (select count(*) from stored) as found,
       coalesce((select bool_and(same) from stored), true) as same,
       case when h.current >= 0 and h.current >= h.truncate_before then h.current end as current,
       last.revision, last.tx_id::text as tx_id, last.seq
  from head h
  left join lateral (select * from stored order by revision desc limit 1) as last on true`;
