// The query API's view of the reactors: how far each has handled the log, and the events they parked. Read-only
// queries of the reactors' checkpoints (the checkpoint registry) and parked events (migration 007); retrying one stays
// with `sentinel reactors retry`.
import type { Knex } from 'knex';
import { z } from 'zod';
import { queryParameters, route, type Route } from '../../commands/http/route.js';
import { rolesFrom } from '../../domain/access.js';
import type { EventStore, Position } from '../../domain/event-store.js';
import { LAG_COUNT_LIMIT } from '../runtime.js';
import { newestParked, parkedCounts, type ParkedEvent } from '../../reactors/reactor-runtime.js';
import { reactorCheckpoints } from '../../adapters/postgres/checkpoints.js';
import { readers } from './readers.js';


/** The most parked events one answer lists, newest first; `total` says how many there are. */
export const PARKED_LIST_LIMIT = 500;

export interface OperationsRoutesOptions {
  knex: Knex;
  /** The log, which each reactor's lag is counted in. */
  events?: EventStore;
  /**
   * The event types a reactor reads, where this process knows them (it runs that reactor). Its lag then counts
   * only those; otherwise every event after its checkpoint, an upper bound (`lagCounts` says which).
   */
  reactorEventTypes?: (reactor: string) => readonly string[] | undefined;
}

/** Parked events name what failed and why, which may say how a cluster is reached: for those who act on them. */
export const PARKED_READERS = rolesFrom('operator');

export interface ReactorStatus {
  name: string;
  /** The last event it handled; null for a reactor that has only parked events so far. */
  position: Position | null;
  updatedAt: string | null;
  /** Events after its checkpoint, counted up to LAG_COUNT_LIMIT. */
  lagEvents: number;
  /** Age of the oldest of them; 0 when caught up. */
  lagSeconds: number;
  /** `its-event-types`: the lag counts only what the reactor reads; `all-events`: every event, an upper bound. */
  lagCounts: 'its-event-types' | 'all-events';
  /** Events it set aside, and how many of those failed on a bug rather than for good. */
  parked: number;
  parkedBugs: number;
}

/** A parked event as the API answers it: the reactor runtime's own record. */
export type ParkedEventItem = ParkedEvent;

const reactorStatus = z
  .object({
    name: z.string(),
    position: z.string().nullable(),
    updatedAt: z.string().nullable(),
    lagEvents: z.number().int(),
    lagSeconds: z.number(),
    lagCounts: z.enum(['its-event-types', 'all-events']),
    parked: z.number().int(),
    parkedBugs: z.number().int(),
  })
  .meta({ id: 'ReactorStatus' });

const parkedEvent = z
  .object({
    id: z.number().int(),
    reactor: z.string(),
    eventId: z.string(),
    stream: z.string(),
    type: z.string(),
    position: z.string(),
    kind: z.enum(['permanent', 'bug']),
    error: z.string(),
    failures: z.number().int(),
    parkedAt: z.string(),
    retryRequestedAt: z.string().nullable(),
  })
  .meta({ id: 'ParkedEvent' });

const reactorName = z.string().min(1, 'a reactor name, as GET /reactors lists them').max(200, 'at most 200 characters');

const iso = (value: Date | string | null) => (value === null ? null : new Date(value).toISOString());

export function operationsRoutes(options: OperationsRoutesOptions): Route[] {
  const { knex } = options;

  const lagOf = async (name: string, position: Position | undefined) => {
    if (!options.events) throw new Error('this server was started without the event store reactor lag is counted in');
    const types = options.reactorEventTypes?.(name);
    const filter = types ? { types: [...types] } : undefined;
    const [events, next] = await Promise.all([
      options.events.countAfter(position, { ...(filter ? { filter } : {}), limit: LAG_COUNT_LIMIT }),
      options.events.readAll({ after: position, ...(filter ? { filter } : {}), limit: 1 }),
    ]);
    const oldest = events > 0 ? next.events[0] : undefined;
    return {
      lagEvents: events,
      lagSeconds: oldest ? Math.max(0, (Date.now() - oldest.recordedAt.getTime()) / 1000) : 0,
      lagCounts: types ? ('its-event-types' as const) : ('all-events' as const),
    };
  };

  return [
    route({
      ...readers,
      method: 'get',
      path: '/reactors',
      operationId: 'listReactors',
      summary: 'Show each reactor’s checkpoint, lag and parked events',
      success: {
        status: 200,
        schema: z.object({ items: z.array(reactorStatus) }),
        description: `every reactor that has handled or parked an event, by name: position, updatedAt, lagEvents (up to ${LAG_COUNT_LIMIT}), lagSeconds, lagCounts, parked, parkedBugs`,
      },
      handle: async () => {
        const [checkpoints, parked] = await Promise.all([reactorCheckpoints(knex), parkedCounts(knex)]);
        const names = [...new Set([...checkpoints.map((row) => row.name), ...parked.keys()])].sort();
        const items: ReactorStatus[] = await Promise.all(
          names.map(async (name) => {
            const checkpoint = checkpoints.find((row) => row.name === name);
            const set = parked.get(name);
            return {
              name,
              position: checkpoint?.position ?? null,
              updatedAt: iso(checkpoint?.updatedAt ?? null),
              ...(await lagOf(name, checkpoint?.position)),
              parked: set?.parked ?? 0,
              parkedBugs: set?.bugs ?? 0,
            };
          }),
        );
        return { status: 200, body: { items } };
      },
    }),
    route({
      ...readers,
      access: PARKED_READERS,
      method: 'get',
      path: '/reactors/parked',
      operationId: 'listParkedEvents',
      summary: 'Show the events reactors parked',
      query: queryParameters({ reactor: reactorName.optional().describe('only the events this reactor parked') }),
      success: {
        status: 200,
        schema: z.object({ items: z.array(parkedEvent), total: z.number().int() }).meta({ id: 'ParkedEvents' }),
        description: `{items, total}: the newest ${PARKED_LIST_LIMIT} parked events, newest first, and how many there are; \`sentinel reactors retry <id>\` tries one again`,
      },
      handle: async ({ query }) => {
        return { status: 200, body: await newestParked(knex, PARKED_LIST_LIMIT, query.reactor) };
      },
    }),
  ];
}
