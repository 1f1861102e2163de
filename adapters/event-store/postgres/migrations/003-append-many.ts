// A multi-stream append as one statement: the server runs every stream's append of the call, so the call costs one
// round trip however many streams it writes, and no transaction is held open while the client waits between them.
import type { Knex } from 'knex';

/*
 * $1 (appends): a JSON array of {stream, kind, expected, events: [{id, type, schemaVersion, data, metadata}]}, kind
 * being 'any' | 'no_stream' | 'stream_exists' | 'revision' as in append.ts. Runs as one statement, hence in one
 * transaction: every append is stored, or none is.
 *
 * As the transaction it replaces did: with more than one stream, one advisory lock per stream first, always in the
 * same order (why: see the store); then each append in the order given, each query on a snapshot of
 * its own (READ COMMITTED), so an append that waited for a lock sees what the holder stored. An expected state
 * that does not hold raises SQLSTATE SE409 with the append's index (from 0) as its detail, and everything is rolled
 * back; a race lost to a concurrent append of the same stream raises the unique violation (23505) of the index it
 * ran into, as the single-stream statement does. Returns the stored rows, each with the index of its append.
 *
 * 1397050964 is 0x53454e54 ('SENT'), the class of the stream locks; see the store.
 */
const CREATE = `
create or replace function sentinel_append_many(appends jsonb)
returns table (append_index integer, stored_revision bigint, stored_tx_id text, stored_seq bigint)
language plpgsql volatile as $body$
declare
  request jsonb;
  idx integer := 0;
  head bigint;
  live boolean;
  holds boolean;
begin
  if jsonb_array_length(appends) > 1 then
    perform count(pg_advisory_xact_lock(1397050964, keys.key))
       from (select distinct hashtext(a.value ->> 'stream') as key from jsonb_array_elements(appends) as a order by key offset 0) as keys;
  end if;
  for request in select a.value from jsonb_array_elements(appends) as a loop
    head := coalesce((select e.revision from sentinel_events e where e.stream = request ->> 'stream' order by e.revision desc limit 1), -1);
    live := head >= 0 and (request ->> 'kind' not in ('no_stream', 'stream_exists')
      or head >= coalesce((select m.truncate_before from sentinel_stream_metadata m where m.stream = request ->> 'stream'), 0));
    holds := case request ->> 'kind'
      when 'any' then true
      when 'no_stream' then not live
      when 'stream_exists' then live
      when 'revision' then head >= 0 and head = (request ->> 'expected')::bigint
      else false
    end;
    if not holds then
      raise exception 'the expected state of stream % does not hold', request ->> 'stream'
        using errcode = 'SE409', detail = idx::text;
    end if;
    return query
      insert into sentinel_events as e (id, stream, revision, type, schema_version, data, metadata)
      select (x.event ->> 'id')::uuid, request ->> 'stream', head + x.ord, x.event ->> 'type', (x.event ->> 'schemaVersion')::integer,
             x.event -> 'data', x.event -> 'metadata'
        from jsonb_array_elements(request -> 'events') with ordinality as x(event, ord)
       order by x.ord
      returning idx, e.revision, e.tx_id::text, e.seq;
    idx := idx + 1;
  end loop;
end
$body$`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(CREATE);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop function if exists sentinel_append_many(jsonb)');
}
