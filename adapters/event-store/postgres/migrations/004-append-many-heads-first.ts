// `sentinel_append_many` reads the head of every stream it writes before it inserts anything, so that each stream's
// revisions keep increasing in log order when several appends share one transaction.
import type { Knex } from 'knex';
import { up as appendMany003 } from './003-append-many.js';

/*
 * The argument, the locks, the expected states, the errors and the rows returned are those of migration 003; only
 * when each stream's head is read changes. A transaction gets its id at its first insert, and that id orders its
 * events in the log. A statement that read a stream's head after that first insert could find revision r written by
 * a transaction that got its id later and has committed since, and write r + 1 ordered before r. Reading every head
 * first, before the transaction has an id, keeps the rule of the single-stream statement: revision r committed before
 * the head was read, so its transaction's id is older than this one's. An append that commits in between writes the
 * revision this one then inserts, and the unique (stream, revision) index refuses this one (23505), as it does for
 * the single-stream statement; the store decides again. A stream that appears more than once continues from where
 * its earlier append in the call ended.
 */
const CREATE = `
create or replace function sentinel_append_many(appends jsonb)
returns table (append_index integer, stored_revision bigint, stored_tx_id text, stored_seq bigint)
language plpgsql volatile as $body$
declare
  request jsonb;
  idx integer := 0;
  heads jsonb := '{}';
  target text;
  head bigint;
  live boolean;
  holds boolean;
begin
  if jsonb_array_length(appends) > 1 then
    perform count(pg_advisory_xact_lock(1397050964, keys.key))
       from (select distinct hashtext(a.value ->> 'stream') as key from jsonb_array_elements(appends) as a order by key offset 0) as keys;
  end if;
  for request in select a.value from jsonb_array_elements(appends) as a loop
    target := request ->> 'stream';
    if heads -> target is null then
      heads := heads || jsonb_build_object(target,
        coalesce((select e.revision from sentinel_events e where e.stream = request ->> 'stream' order by e.revision desc limit 1), -1));
    end if;
  end loop;
  for request in select a.value from jsonb_array_elements(appends) as a loop
    target := request ->> 'stream';
    head := (heads ->> target)::bigint;
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
    heads := heads || jsonb_build_object(target, head + jsonb_array_length(request -> 'events'));
    idx := idx + 1;
  end loop;
end
$body$`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(CREATE);
}

export async function down(knex: Knex): Promise<void> {
  // The function as migration 003 left it.
  await appendMany003(knex);
}
