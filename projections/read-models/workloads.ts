// The workloads read model: every registered workload with its current spec, and each spec revision it has had.
import { workloadEvents, type WorkloadStatus } from '../../domain/workload.js';
import { insertRows, RowBatch, type Row } from '../row-batch.js';
import { BY_CREATION, created, lifecycleColumns, parseEach, sortable, touched } from './projecting.js';
import { acceptsOf, equals, filter, filterText, iso, lifecycle, listPage, oneOf, type Filters, type Lifecycle, type ReadModel } from './query.js';

const WORKLOAD_STATUSES: readonly WorkloadStatus[] = ['active', 'retired'];

interface WorkloadRow extends Lifecycle {
  id: string;
  name: string;
  namespace: string;
  type: string;
  status: WorkloadStatus;
  labels: Record<string, string>;
  spec_revision: number;
  spec: Record<string, unknown>;
  retired_reason: string | null;
}

interface WorkloadRevisionRow {
  spec_revision: number;
  spec: Record<string, unknown>;
  changes: Record<string, unknown> | null;
  recorded_at: Date | string;
}

const workloadItem = (row: WorkloadRow) => ({
  id: row.id,
  name: row.name,
  namespace: row.namespace,
  type: row.type,
  status: row.status,
  labels: row.labels,
  specRevision: row.spec_revision,
  spec: row.spec,
  retiredReason: row.retired_reason,
  ...lifecycle(row),
});

const workloadFilters: Filters = {
  namespace: equals('namespace'),
  type: oneOf('type', ['inference', 'training', 'batch']),
  status: oneOf('status', WORKLOAD_STATUSES),
  team: filter(filterText, (query, value) => void query.whereRaw("labels ->> 'team' = ?", [value])),
};

export const workloads: ReadModel<'workloads' | 'workload_revisions'> = {
  projector: {
    name: 'workloads',
    version: 1,
    eventTypes: workloadEvents.types,
    tables: ['workloads', 'workload_revisions'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.workloads, (t) => {
        sortable(t, 'id').primary();
        t.text('name').notNullable();
        t.text('namespace').notNullable();
        t.text('type').notNullable();
        t.text('status').notNullable();
        t.jsonb('labels').notNullable();
        t.integer('spec_revision').notNullable();
        t.jsonb('spec').notNullable();
        t.text('retired_reason');
        lifecycleColumns(t, tables.workloads);
        t.index(['namespace'], `${tables.workloads}_namespace_idx`);
      });
      await trx.schema.createTable(tables.workload_revisions, (t) => {
        t.text('workload_id').notNullable();
        t.integer('spec_revision').notNullable();
        t.jsonb('spec').notNullable();
        t.jsonb('changes');
        t.timestamp('recorded_at', { useTz: true }).notNullable();
        t.primary(['workload_id', 'spec_revision']);
      });
    },
    async apply(events, trx, tables) {
      const parsed = parseEach(workloadEvents, events);
      const workloads = new RowBatch(trx, tables.workloads, ['id']);
      await workloads.load(parsed.map(({ e }) => [e.data.workloadId]));
      const revisions: Row[] = [];
      for (const { event, e } of parsed) {
        const id = e.data.workloadId;
        switch (e.type) {
          case 'WorkloadRegistered': {
            const { spec, specRevision } = e.data;
            workloads.insert({
              id,
              name: spec.name,
              namespace: spec.namespace,
              type: spec.type,
              status: 'active',
              labels: spec.labels,
              spec_revision: specRevision,
              spec,
              retired_reason: null,
              ...created(event),
            });
            revisions.push({ workload_id: id, spec_revision: specRevision, spec, changes: null, recorded_at: event.recordedAt });
            break;
          }
          case 'WorkloadSpecUpdated': {
            const { spec, specRevision, changes } = e.data;
            workloads.update([id], { spec_revision: specRevision, spec, labels: spec.labels, ...touched(event) });
            revisions.push({ workload_id: id, spec_revision: specRevision, spec, changes, recorded_at: event.recordedAt });
            break;
          }
          case 'WorkloadRetired':
            workloads.update([id], { status: 'retired', retired_reason: e.data.reason ?? null, ...touched(event) });
            break;
        }
      }
      await workloads.flush();
      await insertRows(trx, tables.workload_revisions, revisions);
    },
  },
  filters: Object.keys(workloadFilters),
  accepts: acceptsOf(workloadFilters),
  list: (knex, tables, page) => listPage(knex(tables.workloads).select('*'), BY_CREATION, workloadFilters, page, workloadItem),
  async get(knex, tables, id) {
    // The workload and its revisions in one round trip: each revision a JSON object of its columns (its time as
    // ISO 8601 text, which `iso` reads as it reads a Date).
    const row = (await knex(tables.workloads)
      .where({ id })
      .first(
        `${tables.workloads}.*`,
        knex.raw(`coalesce((select json_agg(r order by r.spec_revision) from ?? as r where r.workload_id = ??), '[]') as revisions`, [
          tables.workload_revisions,
          `${tables.workloads}.id`,
        ]),
      )) as (WorkloadRow & { revisions: WorkloadRevisionRow[] }) | undefined;
    if (!row) return undefined;
    const { revisions } = row;
    return {
      ...workloadItem(row),
      revisions: revisions.map((revision) => ({
        specRevision: revision.spec_revision,
        spec: revision.spec,
        changes: revision.changes,
        recordedAt: iso(revision.recorded_at),
      })),
    };
  },
};
