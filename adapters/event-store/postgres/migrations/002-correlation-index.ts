// The causal timeline reads every event of one correlation id across streams: an index on it, in log order.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`create index if not exists sentinel_events_correlation on sentinel_events ((metadata ->> 'correlationId'), tx_id, seq)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists sentinel_events_correlation');
}
