// What a projector is: a name, a version, the events it reads, the tables it owns, and how events change them.
import type { Knex } from 'knex';
import type { RecordedEvent } from '../domain/event-store.js';

/**
 * The concrete names of a projector's tables for one generation: `tables.deployments` might be
 * `rm_deployments_g3`. A rebuild projects into a new generation while the old one keeps serving, then swaps.
 */
export type TableNames<Base extends string = string> = Record<Base, string>;

export interface Projector<Base extends string = string> {
  name: string;
  /** Bump it when `apply` or the tables change: a new version is built from the start of the log, then swapped in. */
  version: number;
  /** The event types it reads; every type when absent. */
  eventTypes?: readonly string[];
  /** The base names of the tables it owns. */
  tables: readonly Base[];
  /** Creates its tables under the given names (in the transaction that registers the generation). */
  createTables(trx: Knex.Transaction, tables: TableNames<Base>): Promise<void>;
  /** Applies a batch of events in log order. Runs in the transaction that also moves the checkpoint. */
  apply(events: readonly RecordedEvent[], trx: Knex.Transaction, tables: TableNames<Base>): Promise<void>;
}

export function tableNames<Base extends string>(projector: Projector<Base>, generation: number): TableNames<Base> {
  return Object.fromEntries(projector.tables.map((base) => [base, `rm_${base}_g${generation}`])) as TableNames<Base>;
}
