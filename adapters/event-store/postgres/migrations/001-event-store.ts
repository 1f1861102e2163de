// Schema of the PostgreSQL event store: the log, one row per stream, and the append function.
import type { Knex } from 'knex';

/*
 * Global order is (tx_id, seq). tx_id is the writing transaction's id; readers only return events whose
 * transaction is older than every transaction still running (pg_snapshot_xmin), so an event that commits late
 * can never land behind a checkpoint a reader has already passed. seq orders events inside a transaction.
 *
 * sentinel_append() does a whole append in one statement, so an append costs one round trip:
 *  1. takes a transaction-scoped advisory lock on the stream. No transaction id exists yet at this point, so
 *     appends to one stream get increasing transaction ids in lock order, and each stream's revisions appear in
 *     increasing global order;
 *  2. returns the stored result when every event id is already in the stream (a retried command), or reports
 *     a mismatch when only some are, or one differs in type or data;
 *  3. checks the expected state against the stream row and reports a conflict with the actual revision;
 *  4. bumps the stream row and inserts the events.
 * Outcomes are returned as a status instead of raised, so a conflict costs no exception handling.
 */
export async function up(knex: Knex): Promise<void> {
  for (const statement of UP) await knex.raw(statement);
}

// One statement per entry: PGlite runs each through the extended protocol, which takes one command at a time.
const UP = [`
    create table sentinel_streams (
      stream          text primary key,
      revision        bigint not null default -1,
      deleted         boolean not null default false,
      truncate_before bigint,
      max_age         bigint,
      max_count       bigint,
      custom          jsonb
    )`,
  `create sequence sentinel_events_seq as bigint`,
  `
    create table sentinel_events (
      tx_id          xid8 not null default pg_current_xact_id(),
      seq            bigint not null default nextval('sentinel_events_seq'),
      id             uuid not null,
      stream         text not null,
      revision       bigint not null,
      type           text not null,
      schema_version integer not null,
      data           jsonb not null,
      metadata       jsonb not null,
      recorded_at    timestamptz not null default clock_timestamp(),
      constraint sentinel_events_pkey primary key (tx_id, seq),
      constraint sentinel_events_stream_revision unique (stream, revision),
      constraint sentinel_events_stream_id unique (stream, id)
    )`,
  `alter sequence sentinel_events_seq owned by sentinel_events.seq`,
  `create index sentinel_events_type_position on sentinel_events (type, tx_id, seq)`,
  `create function sentinel_append(p_stream text, p_expected text, p_expected_revision bigint, p_events jsonb)
    returns table (status text, revision bigint, tx_id text, seq bigint)
    language plpgsql as $fn$
    #variable_conflict use_column
    declare
      v_count     integer := jsonb_array_length(p_events);
      v_found     integer;
      v_differs   integer;
      v_current   bigint;
      v_deleted   boolean;
      v_live      boolean;
      v_ok        boolean;
    begin
      perform pg_advisory_xact_lock(hashtextextended(p_stream, 0));

      select count(*)::integer,
             count(*) filter (where e.type <> x.type or e.data <> x.data)::integer
        into v_found, v_differs
        from jsonb_to_recordset(p_events) as x(id uuid, type text, data jsonb)
        join sentinel_events e on e.stream = p_stream and e.id = x.id;

      if v_found > 0 then
        if v_found < v_count or v_differs > 0 then
          return query select 'duplicate_mismatch'::text, null::bigint, null::text, null::bigint;
        else
          return query
            select 'duplicate'::text, e.revision, e.tx_id::text, e.seq
              from sentinel_events e
             where e.stream = p_stream
               and e.id in (select x.id from jsonb_to_recordset(p_events) as x(id uuid))
             order by e.revision desc
             limit 1;
        end if;
        return;
      end if;

      select s.revision, s.deleted into v_current, v_deleted from sentinel_streams s where s.stream = p_stream;
      v_current := coalesce(v_current, -1);
      v_live := v_current >= 0 and not coalesce(v_deleted, false);

      v_ok := case p_expected
        when 'any' then true
        when 'no_stream' then not v_live
        when 'stream_exists' then v_live
        when 'revision' then v_current >= 0 and v_current = p_expected_revision
      end;
      if not v_ok then
        return query select 'conflict'::text, case when v_live then v_current end, null::text, null::bigint;
        return;
      end if;

      insert into sentinel_streams as s (stream, revision) values (p_stream, v_current + v_count)
        on conflict (stream) do update set revision = excluded.revision, deleted = false;

      return query
        with inserted as (
          insert into sentinel_events (id, stream, revision, type, schema_version, data, metadata)
          select (x.event->>'id')::uuid, p_stream, v_current + x.ord, x.event->>'type',
                 coalesce((x.event->>'schemaVersion')::integer, 1), x.event->'data',
                 coalesce(x.event->'metadata', '{}'::jsonb)
            from jsonb_array_elements(p_events) with ordinality as x(event, ord)
           order by x.ord
          returning sentinel_events.revision, sentinel_events.tx_id, sentinel_events.seq
        )
        select 'ok'::text, i.revision, i.tx_id::text, i.seq from inserted i order by i.revision desc limit 1;
    end;
    $fn$`,
];

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop function if exists sentinel_append(text, text, bigint, jsonb)');
  await knex.raw('drop table if exists sentinel_events');
  await knex.raw('drop table if exists sentinel_streams');
}
