// The policy decisions read model: every policy evaluation recorded in the log, what it judged and what each rule
// said, found by target, policy, verdict, actor, stream, command or time.
import { policyEvents } from '../../domain/policy-evaluation.js';
import { id as uuidText } from '../../domain/schemas.js';
import { insertRows } from '../row-batch.js';
import { parseEach, sortable } from './projecting.js';
import { acceptsOf, contains, equals, filterText, instantFilter, iso, listPage, oneOf, type Filters, type ReadModel } from './query.js';

interface DecisionRow {
  event_id: string;
  stream: string;
  position: string;
  recorded_at: Date;
  command: string;
  verdict: 'allow' | 'deny';
  policy_set_revision: number;
  actor_id: string | null;
  actor_kind: string | null;
  correlation_id: string | null;
  targets: { kind: string; id: string }[];
  actions: string[];
  policy_ids: string[];
  evaluations: unknown[];
  break_glass: { justification: string; actorId: string } | null;
}

const decisionItem = (row: DecisionRow) => ({
  eventId: row.event_id,
  stream: row.stream,
  position: row.position,
  recordedAt: iso(row.recorded_at),
  command: row.command,
  verdict: row.verdict,
  policySetRevision: row.policy_set_revision,
  actor: row.actor_id === null ? null : { id: row.actor_id, kind: row.actor_kind },
  correlationId: row.correlation_id,
  targets: row.targets,
  actions: row.actions,
  policyIds: row.policy_ids,
  evaluations: row.evaluations,
  breakGlass: row.break_glass,
});

const decisionFilters: Filters = {
  target: contains('targets', (id) => ({ id }), uuidText),
  policy: contains('policy_ids', (id) => id, uuidText),
  verdict: oneOf('verdict', ['allow', 'deny']),
  actor: equals('actor_id', filterText.describe('an actor id, or a username or service-account name')),
  stream: equals('stream'),
  command: equals('command'),
  from: instantFilter('recorded_at', '>='),
  to: instantFilter('recorded_at', '<'),
};

const distinct = <T>(values: T[], key: (value: T) => string): T[] => [...new Map(values.map((value) => [key(value), value])).values()];

export const policyDecisions: ReadModel<'policy_decisions'> = {
  projector: {
    name: 'policy-decisions',
    version: 1,
    eventTypes: policyEvents.types,
    tables: ['policy_decisions'],
    async createTables(trx, tables) {
      const table = tables.policy_decisions;
      await trx.schema.createTable(table, (t) => {
        sortable(t, 'position').primary();
        // Event ids are unique within a stream, not across streams: looked up, never a key.
        t.text('event_id').notNullable().index(`${table}_event_idx`);
        t.text('stream').notNullable();
        t.timestamp('recorded_at', { useTz: true }).notNullable();
        t.text('command').notNullable();
        t.text('verdict').notNullable();
        t.integer('policy_set_revision').notNullable();
        t.text('actor_id');
        t.text('actor_kind');
        t.text('correlation_id');
        t.jsonb('targets').notNullable();
        t.jsonb('actions').notNullable();
        t.jsonb('policy_ids').notNullable();
        t.jsonb('evaluations').notNullable();
        t.jsonb('break_glass');
        t.index(['stream', 'position'], `${table}_stream_idx`);
        t.index(['actor_id', 'position'], `${table}_actor_idx`);
        t.index(['recorded_at'], `${table}_recorded_at_idx`);
      });
      for (const column of ['targets', 'policy_ids']) {
        await trx.raw('create index ?? on ?? using gin (?? jsonb_path_ops)', [`${table}_${column}_idx`, table, column]);
      }
    },
    async apply(events, trx, tables) {
      const rows = parseEach(policyEvents, events).map(({ event, e: { data } }) => {
        const actor = event.metadata.actor;
        const evaluations = data.evaluations.map(({ index, change, verdict, results }) => ({
          ...(index !== undefined ? { index } : {}),
          action: change.action,
          target: { kind: change.target.kind, id: change.target.id },
          verdict,
          results,
        }));
        return {
          event_id: event.id,
          stream: event.stream,
          position: event.position,
          recorded_at: event.recordedAt,
          command: data.command,
          verdict: data.verdict,
          policy_set_revision: data.policySet.revision,
          actor_id: typeof actor?.id === 'string' ? actor.id : null,
          actor_kind: typeof actor?.kind === 'string' ? actor.kind : null,
          correlation_id: typeof event.metadata.correlationId === 'string' ? event.metadata.correlationId : null,
          targets: distinct(evaluations.map((evaluation) => evaluation.target), (target) => `${target.kind}/${target.id}`),
          actions: [...new Set(evaluations.map((evaluation) => evaluation.action))],
          policy_ids: [...new Set(evaluations.flatMap((evaluation) => evaluation.results.map((result) => result.policyId)))],
          evaluations,
          break_glass: data.breakGlass ?? null,
        };
      });
      await insertRows(trx, tables.policy_decisions, rows);
    },
  },
  filters: Object.keys(decisionFilters),
  accepts: acceptsOf(decisionFilters),
  list: (knex, tables, page) =>
    listPage(knex(tables.policy_decisions).select('*'), ['position'], decisionFilters, page, decisionItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.policy_decisions).where({ event_id: id }).orderBy('position').first()) as DecisionRow | undefined;
    return row && decisionItem(row);
  },
};
