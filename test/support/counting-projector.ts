// A projector for tests of the projection runtime: it counts the events of one type per stream, one statement per
// stream in each batch, so that what was applied, and how often, can be read back.
import type { Knex } from 'knex';
import type { Projector, TableNames } from '../../projections/projector.js';
import type { ProjectionRuntime } from '../../projections/runtime.js';

/** Counts the events of one type per stream, with one statement per batch. */
export function counter(name: string, type: string): Projector<'counts'> {
  const base = `counts_${name.replaceAll('-', '_')}`;
  const own = (tables: TableNames<'counts'>) => (tables as unknown as Record<string, string>)[base]!;
  return {
    name,
    version: 1,
    eventTypes: [type],
    tables: [base as 'counts'],
    async createTables(trx, tables) {
      await trx.schema.createTable(own(tables), (table) => {
        table.text('stream').primary();
        table.integer('count').notNullable();
      });
    },
    async apply(batch, trx, tables) {
      const counts = new Map<string, number>();
      for (const event of batch) counts.set(event.stream, (counts.get(event.stream) ?? 0) + 1);
      for (const [stream, count] of counts) {
        await trx(own(tables))
          .insert({ stream, count })
          .onConflict('stream')
          .merge({ count: trx.raw('?? + ?', [`${own(tables)}.count`, count]) });
      }
    },
  };
}

export async function countOf(knex: Knex, runtime: ProjectionRuntime, projector: Projector, stream: string): Promise<number> {
  const [table] = Object.values(await runtime.tables(projector)) as string[];
  const row = (await knex(table!).where({ stream }).first('count')) as { count: number } | undefined;
  return Number(row?.count ?? 0);
}
