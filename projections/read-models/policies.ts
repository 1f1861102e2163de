// The policies read model: the policies of the global policy set, as it stands now.
import { POLICY_SET_STREAM, policySetEvents } from '../../domain/policy-set.js';
import { POLICY_MODES, POLICY_TYPES } from '../../domain/policy.js';
import { RowBatch, type Row } from '../row-batch.js';
import { BY_CREATION, created, lifecycleColumns, parseEach, sortable, touched } from './projecting.js';
import { acceptsOf, flag, iso, listPage, oneOf, type Filters, type Lifecycle, type ReadModel } from './query.js';

interface PolicyRow extends Lifecycle {
  id: string;
  name: string;
  description: string | null;
  type: string;
  mode: string;
  priority: number;
  selector: Record<string, unknown>;
  parameters: Record<string, unknown>;
  valid_from: string | null;
  valid_until: string | null;
  enabled: boolean;
  deleted: boolean;
}

const policyItem = (row: PolicyRow) => ({
  id: row.id,
  name: row.name,
  description: row.description,
  type: row.type,
  mode: row.mode,
  priority: row.priority,
  selector: row.selector,
  parameters: row.parameters,
  validFrom: row.valid_from,
  validUntil: row.valid_until,
  enabled: row.enabled,
  /** The revision of the policy-set stream at this policy's last change. */
  setRevision: row.revision,
  createdAt: iso(row.created_at),
  updatedAt: iso(row.updated_at),
});

const policyFilters: Filters = { type: oneOf('type', POLICY_TYPES), mode: oneOf('mode', POLICY_MODES), enabled: flag('enabled') };

export const policies: ReadModel<'policies'> = {
  projector: {
    name: 'policies',
    version: 1,
    eventTypes: policySetEvents.types,
    tables: ['policies'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.policies, (t) => {
        sortable(t, 'id').primary();
        t.text('name').notNullable();
        t.text('description');
        t.text('type').notNullable();
        t.text('mode').notNullable();
        t.integer('priority').notNullable();
        t.jsonb('selector').notNullable();
        t.jsonb('parameters').notNullable();
        t.text('valid_from');
        t.text('valid_until');
        t.boolean('enabled').notNullable();
        // Deleted policies stay, hidden, so that the set's history keeps naming each id once.
        t.boolean('deleted').notNullable();
        lifecycleColumns(t, tables.policies);
      });
    },
    async apply(events, trx, tables) {
      // Only the global set exists for now; another scope's policies would need a scope column.
      const parsed = parseEach(policySetEvents, events.filter((event) => event.stream === POLICY_SET_STREAM));
      const rows = new RowBatch(trx, tables.policies, ['id']);
      await rows.load(parsed.map(({ e }) => [e.data.policyId]));
      for (const { event, e } of parsed) {
        const id = e.data.policyId;
        const update = (changes: Row) => rows.update([id], { ...changes, ...touched(event) });
        switch (e.type) {
          case 'PolicyCreated': {
            const { policy } = e.data;
            rows.insert({
              id,
              name: policy.name,
              description: policy.description ?? null,
              type: policy.type,
              mode: policy.mode,
              priority: policy.priority,
              selector: policy.selector,
              parameters: policy.parameters,
              valid_from: policy.validFrom ?? null,
              valid_until: policy.validUntil ?? null,
              enabled: policy.enabled,
              deleted: false,
              ...created(event),
            });
            break;
          }
          case 'PolicyUpdated': {
            const { name, description, mode, priority, selector, parameters, validFrom, validUntil } = e.data.changes;
            update({
              ...(name !== undefined ? { name } : {}),
              ...(description !== undefined ? { description } : {}),
              ...(mode !== undefined ? { mode } : {}),
              ...(priority !== undefined ? { priority } : {}),
              ...(selector !== undefined ? { selector } : {}),
              ...(parameters !== undefined ? { parameters } : {}),
              // null clears a bound; a missing key leaves it.
              ...(validFrom !== undefined ? { valid_from: validFrom } : {}),
              ...(validUntil !== undefined ? { valid_until: validUntil } : {}),
            });
            break;
          }
          case 'PolicyEnabled':
          case 'PolicyDisabled':
            update({ enabled: e.type === 'PolicyEnabled' });
            break;
          case 'PolicyDeleted':
            update({ deleted: true });
            break;
        }
      }
      await rows.flush();
    },
  },
  filters: Object.keys(policyFilters),
  accepts: acceptsOf(policyFilters),
  list: (knex, tables, page) => listPage(knex(tables.policies).select('*').where({ deleted: false }), BY_CREATION, policyFilters, page, policyItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.policies).where({ id, deleted: false }).first()) as PolicyRow | undefined;
    return row && policyItem(row);
  },
};
