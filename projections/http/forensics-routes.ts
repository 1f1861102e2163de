// Forensics on the query API: the causal timeline of a request, from the log itself rather than a read model; and
// fleet snapshots at a time, every read model as it stood at a point of the log (admins only).
import { z } from 'zod';
import { BadRequest, NotYetVisible } from '../../commands/http/problems.js';
import { pathId } from '../../commands/http/replies.js';
import { queryParameters, route, type QueryParameters, type Route } from '../../commands/http/route.js';
import { rolesFrom } from '../../domain/access.js';
import { readers } from './readers.js';
import { InvalidTransition, NotFound } from '../../domain/decider.js';
import type { CorrelationReader } from '../../domain/event-store.js';
import type { FleetCost } from '../fleet-cost.js';
import { FLEET_COST, SNAPSHOT_CONTENTS, SNAPSHOT_READ_MODELS, SnapshotUnavailable, type SnapshotStatus } from '../fleet-snapshot.js';
import { InvalidQuery, MAX_PAGE_SIZE, ORDERS, type Order, type Page, type PageOf } from '../read-models.js';
import { AS_OF_ACCEPTS, parseAsOf, type AsOf } from '../time-travel.js';
import { timelineOf } from '../timeline.js';

/** What the snapshot routes need: `FleetSnapshots` (fleet-snapshot.ts). */
export interface FleetSnapshotService {
  create(id: string, at: string, point: AsOf): Promise<SnapshotStatus>;
  status(id: string): Promise<SnapshotStatus | undefined>;
  list(id: string, name: string, page: Page): Promise<PageOf>;
  fleetCost(id: string): Promise<FleetCost>;
  remove(id: string): Promise<boolean>;
}

export interface ForensicsRoutesOptions {
  /** Reads a correlation's events across streams; the event store when it can (both adapters can). */
  correlations?: CorrelationReader;
  /** Fleet snapshots at a time; without them, the snapshot routes answer 500 saying so. */
  snapshots?: FleetSnapshotService;
}

const timelineQuery = queryParameters({
  correlationId: z
    .string({ error: 'a correlation id, as the X-Correlation-Id of the request or the metadata of its events' })
    .min(1, 'a non-empty correlation id')
    .max(512, 'at most 512 characters')
    .refine((value) => !/\p{Cc}/u.test(value), 'no control characters')
    // Required, but checked in the handler: a parameter the route does not know is the first thing named.
    .optional()
    .describe('required: the correlation id of a request, its X-Correlation-Id header or `metadata.correlationId` of any of its events'),
  maxEvents: z
    .string()
    .regex(/^[0-9]{1,4}$/, 'a whole number from 1 to 5000')
    .transform(Number)
    .pipe(z.number().int().min(1, 'a whole number from 1 to 5000').max(5000, 'a whole number from 1 to 5000'))
    .optional()
    .describe('at most this many events (default 5000); `truncated` says when there were more'),
});

// ---- fleet snapshots ---------------------------------------------------------------------------------------

/** Snapshots project the whole log up to a point and show every read model: admins only, as a policy impact run. */
const snapshotAdmins = { tag: 'forensics', access: rolesFrom('admin') } as const;

const snapshotStatus = z
  .object({
    id: z.string(),
    at: z.string().describe('the point as asked: a time or a log position'),
    status: z.enum(['projecting', 'ready', 'failed']),
    position: z.string().nullable().describe('the last event the snapshot applied; null while projecting, or when nothing lay at or before the point'),
    events: z.number().int(),
    createdAt: z.string(),
    finishedAt: z.string().nullable(),
    expiresAt: z.string().describe('when it is dropped unless removed before'),
    error: z.string().optional(),
    contents: z.array(z.string()).describe(`what can be read under /forensics/snapshots/:id/: ${SNAPSHOT_CONTENTS.join(', ')}`),
  })
  .meta({ id: 'FleetSnapshot' });

const snapshotRequest = z.strictObject({
  at: z
    .string({ error: AS_OF_ACCEPTS })
    .refine((value) => parseAsOf(value) !== undefined, AS_OF_ACCEPTS)
    .describe('every event recorded at or before this time (ISO 8601, with a zone), or at or before this log position'),
});

const snapshotPage = z.object({ items: z.array(z.record(z.string(), z.unknown())), nextCursor: z.string().nullable() });

interface SnapshotListQuery {
  limit?: number;
  cursor?: string;
  order: Order;
  [filter: string]: string | number | undefined;
}

/** The live list's paging and filters, without `after`: a snapshot does not move. */
function snapshotListQuery(filters: Readonly<Record<string, z.ZodType<string>>>): QueryParameters<SnapshotListQuery> {
  const limits = `a whole number from 1 to ${MAX_PAGE_SIZE}`;
  return queryParameters({
    ...Object.fromEntries(Object.entries(filters).map(([name, schema]) => [name, schema.optional()])),
    limit: z
      .string()
      .regex(/^[0-9]{1,4}$/, limits)
      .transform(Number)
      .pipe(z.number().int().min(1, limits).max(MAX_PAGE_SIZE, limits))
      .optional()
      .describe(`items per page, 1 to ${MAX_PAGE_SIZE} (default 50)`),
    cursor: z.string().max(4096, "a previous page's nextCursor").optional().describe('nextCursor of the previous page, read in the same order'),
    order: z.enum(ORDERS, { error: 'asc or desc' }).default('asc').describe('asc: oldest first (the default); desc: newest first'),
  }) as unknown as QueryParameters<SnapshotListQuery>;
}

/** A snapshot that cannot be read: 404 when it is not there, 503 (retry) while projecting, 422 when it failed. */
async function readable<T>(id: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof InvalidQuery) throw new BadRequest(400, error.message, error.errors);
    if (!(error instanceof SnapshotUnavailable)) throw error;
    if (error.reason === 'missing') throw new NotFound('fleet snapshot', id);
    if (error.reason === 'projecting') throw new NotYetVisible(error.message);
    throw new InvalidTransition('fleet snapshot', id, 'failed', 'read its rows', error.message);
  }
}

function snapshotRoutes(options: ForensicsRoutesOptions): Route[] {
  const service = (): FleetSnapshotService => {
    if (!options.snapshots) throw new Error('this server was started without fleet snapshots');
    return options.snapshots;
  };
  const snapshotId = (params: Record<string, string>) => pathId(params, 'fleet snapshot');
  const pascal = (name: string) => name.replace(/(^|-)(\w)/g, (_, _dash, c: string) => c.toUpperCase());
  return [
    route<z.infer<typeof snapshotRequest>>({
      ...snapshotAdmins,
      method: 'post',
      path: '/forensics/snapshots',
      operationId: 'createFleetSnapshot',
      summary: 'Project every read model up to a time or position, into a snapshot of its own',
      idempotent: true,
      body: snapshotRequest,
      success: {
        status: 202,
        schema: snapshotStatus,
        location: true,
        description: 'the snapshot is being projected (status projecting); GET its Location until it is ready, then read its rows. It expires after a while',
      },
      handle: async ({ body, newId }) => {
        const id = newId();
        const created = await service().create(id, body.at, parseAsOf(body.at)!);
        return { status: 202, body: created, location: `/forensics/snapshots/${id}` };
      },
    }),
    route({
      ...snapshotAdmins,
      idempotent: false,
      method: 'get',
      path: '/forensics/snapshots/:id',
      operationId: 'getFleetSnapshot',
      summary: 'Show a fleet snapshot’s status',
      success: { status: 200, schema: snapshotStatus, description: 'projecting, ready (its rows can be read) or failed (with the error)' },
      handle: async ({ params }) => {
        const id = snapshotId(params);
        const status = await service().status(id);
        if (status === undefined) throw new NotFound('fleet snapshot', id);
        return { status: 200, body: status };
      },
    }),
    route({
      ...snapshotAdmins,
      idempotent: false,
      method: 'delete',
      path: '/forensics/snapshots/:id',
      operationId: 'deleteFleetSnapshot',
      summary: 'Remove a fleet snapshot and its tables',
      success: { status: 200, schema: z.object({ id: z.string(), removed: z.literal(true) }), description: 'the snapshot is gone' },
      handle: async ({ params }) => {
        const id = snapshotId(params);
        if (!(await service().remove(id))) throw new NotFound('fleet snapshot', id);
        return { status: 200, body: { id, removed: true } };
      },
    }),
    ...Object.entries(SNAPSHOT_READ_MODELS).map(([name, model]) =>
      route<unknown, SnapshotListQuery>({
        ...snapshotAdmins,
        idempotent: false,
        method: 'get',
        path: `/forensics/snapshots/:id/${name}`,
        operationId: `listFleetSnapshot${pascal(name)}`,
        summary: `List the ${name.replaceAll('-', ' ')} of a fleet snapshot`,
        query: snapshotListQuery(model.accepts),
        success: { status: 200, schema: snapshotPage, description: `{items, nextCursor}: as GET /${name} listed them at the snapshot's point, with the same filters` },
        handle: async ({ params, query }) => {
          const id = snapshotId(params);
          const { limit, cursor, order, ...filters } = query;
          const given = Object.fromEntries(Object.entries(filters).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
          const page = await readable(id, () => service().list(id, name, { limit: limit ?? 50, cursor, order, filters: given }));
          return { status: 200, body: page };
        },
      }),
    ),
    route({
      ...snapshotAdmins,
      idempotent: false,
      method: 'get',
      path: `/forensics/snapshots/:id/${FLEET_COST}`,
      operationId: 'fleetSnapshotCost',
      summary: 'Show what the fleet cost per hour at a fleet snapshot’s point',
      success: { status: 200, schema: z.record(z.string(), z.unknown()), description: 'the FleetCost shape of GET /fleet/cost, at the snapshot’s point' },
      handle: async ({ params }) => {
        const id = snapshotId(params);
        return { status: 200, body: await readable(id, () => service().fleetCost(id)) };
      },
    }),
  ];
}

export function forensicsRoutes(options: ForensicsRoutesOptions): Route[] {
  return [
    ...snapshotRoutes(options),
    route({
      ...readers,
      method: 'get',
      path: '/timeline',
      operationId: 'timeline',
      summary: 'Show every event of a request, across streams, as a tree by causation',
      query: timelineQuery,
      success: {
        status: 200,
        schema: z.record(z.string(), z.unknown()).meta({ id: 'Timeline' }),
        description:
          '{correlationId, events, truncated, roots: [{causationId, events: [node]}]}; a node is {id, stream, type, revision, position, recordedAt, ' +
          'actor, source, causationId, traceId, decision? (at PolicyEvaluated: command, verdict, policySet, evaluations with each rule’s result), children: [node]}',
      },
      handle: async ({ query }) => {
        if (query.correlationId === undefined) {
          throw new BadRequest(400, 'correlationId is required', [{ path: 'correlationId', message: 'the correlation id of a request, as its X-Correlation-Id header' }]);
        }
        if (!options.correlations) throw new Error('this server was started without a reader of events by correlation id');
        const timeline = await timelineOf(options.correlations, query.correlationId, query.maxEvents ?? 5000);
        if (timeline === undefined) throw new NotFound('correlation', query.correlationId);
        return { status: 200, body: timeline };
      },
    }),
  ];
}
