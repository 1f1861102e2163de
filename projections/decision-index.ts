// The policy decisions read model as an index of where decisions lie in the log: a replay or an impact run starts
// near its window, and the replay of one decision reads one page instead of every decision before it.
import type { Knex } from 'knex';
import type { DecisionIndex } from '../commands/decision-replay.js';
import type { Position } from '../domain/event-store.js';
import type { TableNames } from './projector.js';
import { encodeCursor, policyDecisions } from './read-models.js';

/**
 * An index over the read model's tables. Without them (a database no projector has run on) it knows of no decision,
 * and its callers read the log from its start. It may lag the log: what it answers is still a lower bound.
 */
export function readModelDecisionIndex(knex: Knex, tables: () => Promise<TableNames<'policy_decisions'>>): DecisionIndex {
  // A table once found stays: only whether one not found yet has been made since is asked again.
  const present = new Set<string>();
  const table = async () => {
    const names = await tables();
    if (!present.has(names.policy_decisions) && (await knex.schema.hasTable(names.policy_decisions))) present.add(names.policy_decisions);
    return present.has(names.policy_decisions) ? names : undefined;
  };
  return {
    async lastBefore(bound) {
      const names = await table();
      if (!names) return undefined;
      const page =
        'at' in bound
          ? await policyDecisions.list(knex, names, { limit: 1, order: 'desc', filters: { to: bound.at.toISOString() } })
          : await policyDecisions.list(knex, names, { limit: 1, order: 'desc', cursor: encodeCursor([bound.position], 'desc'), filters: {} });
      const [last] = page.items as { position: string }[];
      return last?.position;
    },

    async locate(eventId) {
      const names = await table();
      if (!names) return undefined;
      const decisions = names.policy_decisions;
      const found = (await knex(decisions).where('event_id', eventId).orderBy('position').first('position')) as { position: string } | undefined;
      if (!found) return undefined;
      // The decision before it in the index is the one before it in the log: the projector holds every decision up
      // to its checkpoint, so a read of decisions after that position meets this one first.
      const before = (await knex(decisions).where('position', '<', found.position).orderBy('position', 'desc').first('position')) as
        | { position: Position }
        | undefined;
      return { after: before?.position };
    },
  };
}
