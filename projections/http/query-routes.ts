// The query API: read models, the audit trail and projection status, with the same auth and problems as the
// command API. `?after=<position>` waits (bounded) until the read side has passed a write's position.
import { z } from 'zod';
import { route, type Route } from '../../commands/http/route.js';
import { BadRequest, NotYetVisible } from '../../commands/http/problems.js';
import { pathId } from '../../commands/http/replies.js';
import { rolesFrom } from '../../domain/access.js';
import { NotFound } from '../../domain/decider.js';
import type { Knex } from 'knex';
import { auditProjector, InvalidAuditQuery, queryAudit, verifyAuditTrail } from '../audit-trail.js';
import { fleetCost, fleetCostProjector } from '../fleet-cost.js';
import { deploymentHistory, InvalidQuery, READ_MODELS, type ReadModel } from '../read-models.js';
import type { ProjectionRuntime } from '../runtime.js';

export interface QueryRoutesOptions {
  knex: Knex;
  runtime: ProjectionRuntime;
  /** Longest a query waits for `?after=` before answering 503. */
  readYourWritesTimeoutMs?: number;
}

const POSITION = /^[0-9a-f]{16}-[0-9a-f]{16}$/;
const page = z.object({ items: z.array(z.record(z.string(), z.unknown())), nextCursor: z.string().nullable() }).meta({ id: 'Page' });
const item = z.record(z.string(), z.unknown());

/** The instants PostgreSQL can compare with: four-digit years (JavaScript's dates reach far further). */
const EARLIEST = Date.parse('0001-01-01T00:00:00Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');

/** A time filter that parses but lies outside years 1 to 9999 is refused here; one that does not parse, by the model. */
function inStoredRange(name: string, value: string | undefined): void {
  const ms = value === undefined ? NaN : Date.parse(value);
  if (ms < EARLIEST || ms > LATEST) {
    throw new BadRequest(400, `${name} must be a time in the years 1 to 9999`, [{ path: name, message: 'an ISO 8601 date-time such as 2026-01-31T12:00:00Z' }]);
  }
}

/** A query the read model refuses (a bad filter, cursor or time) is the caller's mistake: 400 naming it. */
async function asQuery<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof InvalidQuery || error instanceof InvalidAuditQuery) throw new BadRequest(400, error.message, error.errors);
    throw error;
  }
}

export function queryRoutes(options: QueryRoutesOptions): Route[] {
  const { knex, runtime } = options;
  const tablesNow = (model: ReadModel) => runtime.tables(model.projector);
  const readers = { tag: 'queries', access: rolesFrom('viewer', { system: true }), idempotent: false } as const;

  /** Waits for `?after=` when given; only the projectors the answer comes from are waited for. */
  const caughtUp = async (query: Record<string, string>, projectors: string[]) => {
    const after = query['after'];
    if (after === undefined) return;
    if (!POSITION.test(after)) {
      throw new BadRequest(400, 'after must be a position a write answered with', [{ path: 'after', message: 'a position such as 0000000000000302-0000000000000004' }]);
    }
    if (!(await runtime.waitFor(after, projectors, options.readYourWritesTimeoutMs ?? 2000))) {
      throw new NotYetVisible(`the read side has not reached ${after} yet; retry shortly`);
    }
  };

  /** `filters`: those the list takes, of which `from` and `to` are times. */
  const pageOf = (query: Record<string, string>, filters: readonly string[]) => {
    const limit = query['limit'] === undefined ? 50 : Number(query['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new BadRequest(400, 'limit must be from 1 to 500', [{ path: 'limit', message: 'a whole number from 1 to 500' }]);
    for (const name of ['from', 'to']) if (filters.includes(name)) inStoredRange(name, query[name]);
    const { limit: _limit, cursor, after: _after, ...given } = query;
    return { limit, cursor, filters: given };
  };

  const collection = (path: string, kind: string, model: ReadModel): Route[] => [
    route({
      ...readers,
      method: 'get',
      path,
      operationId: `list${kind.replace(/(^|[- ])(\w)/g, (_, _sep, c: string) => c.toUpperCase())}`,
      summary: `List ${kind}s`,
      success: { status: 200, schema: page, description: `{items, nextCursor}; filter with query parameters` },
      handle: async ({ query }) => {
        await caughtUp(query, [model.projector.name]);
        return { status: 200, body: await asQuery(async () => model.list(knex, await tablesNow(model), pageOf(query, model.filters))) };
      },
    }),
    ...(model.get
      ? [
          route({
            ...readers,
            method: 'get',
            path: `${path}/:id`,
            operationId: `get${kind.replace(/(^|[- ])(\w)/g, (_, _sep, c: string) => c.toUpperCase())}`,
            summary: `Show a ${kind}`,
            success: { status: 200, schema: item, description: `the ${kind}` },
            handle: async ({ params, query }) => {
              await caughtUp(query, [model.projector.name]);
              const id = pathId(params, kind);
              const found = await model.get!(knex, await runtime.tables(model.projector), id);
              if (found === undefined) throw new NotFound(kind, id);
              return { status: 200, body: found };
            },
          }),
        ]
      : []),
  ];

  return [
    ...collection('/clusters', 'cluster', READ_MODELS.clusters),
    ...collection('/workloads', 'workload', READ_MODELS.workloads),
    ...collection('/deployments', 'deployment', READ_MODELS.deployments),
    route({
      ...readers,
      method: 'get',
      path: '/deployments/:id/history',
      operationId: 'deploymentHistory',
      summary: 'Show a deployment’s revision history and timeline',
      success: { status: 200, schema: item, description: 'every revision, and every status change' },
      handle: async ({ params, query }) => {
        await caughtUp(query, [READ_MODELS.deployments.projector.name]);
        const id = pathId(params, 'deployment');
        const history = await deploymentHistory(knex, await runtime.tables(READ_MODELS.deployments.projector), id);
        if (history === undefined) throw new NotFound('deployment', id);
        return { status: 200, body: history };
      },
    }),
    ...collection('/action-plans', 'action plan', READ_MODELS.actionPlans),
    ...collection('/policies', 'policy', READ_MODELS.policies),
    ...collection('/policy-decisions', 'policy decision', { ...READ_MODELS.policyDecisions, get: undefined }),
    route({
      ...readers,
      method: 'get',
      path: '/fleet/cost',
      operationId: 'fleetCost',
      summary: 'Show what the fleet costs per hour now',
      success: {
        status: 200,
        schema: z
          .object({
            hourlyUsd: z.number(),
            byTeam: z.array(z.object({ team: z.string(), hourlyUsd: z.number(), gpus: z.number() })),
            byCluster: z.array(z.object({ clusterId: z.string(), hourlyUsd: z.number(), gpus: z.number() })),
            byGpuSku: z.array(z.object({ sku: z.string(), gpus: z.number(), hourlyUsd: z.number() })),
            deployments: z.number().int(),
          })
          .meta({ id: 'FleetCost' }),
        description: '$/hour of every placed deployment, by team, cluster and GPU SKU, most expensive first',
      },
      handle: async ({ query }) => {
        await caughtUp(query, [fleetCostProjector.name]);
        return { status: 200, body: await fleetCost(knex, await runtime.tables(fleetCostProjector)) };
      },
    }),
    route({
      ...readers,
      method: 'get',
      path: '/audit',
      operationId: 'listAudit',
      summary: 'Search the audit trail',
      success: { status: 200, schema: page, description: 'entries in log order; filters: actor, stream, type, correlationId, from, to' },
      handle: async ({ query }) => {
        await caughtUp(query, [auditProjector.name]);
        const { limit, cursor, filters } = pageOf(query, ['from', 'to']);
        const tables = await runtime.tables(auditProjector);
        return { status: 200, body: await asQuery(() => queryAudit(knex, tables.audit, { ...filters, limit, cursor })) };
      },
    }),
    route({
      ...readers,
      method: 'get',
      path: '/audit/verify',
      operationId: 'verifyAudit',
      summary: 'Verify the audit trail’s hash chain',
      success: {
        status: 200,
        schema: z.object({ ok: z.boolean(), rows: z.number().int(), brokenAt: z.object({ id: z.string(), position: z.string() }).optional() }).meta({ id: 'AuditVerification' }),
        description: '{ok: true, rows} or {ok: false, rows, brokenAt: {id, position}}',
      },
      handle: async () => ({ status: 200, body: await verifyAuditTrail(knex, (await runtime.tables(auditProjector)).audit) }),
    }),
    route({
      ...readers,
      method: 'get',
      path: '/projections',
      operationId: 'listProjections',
      summary: 'Show each projection’s position and lag',
      success: { status: 200, schema: z.object({ items: z.array(item) }), description: 'name, version, generation, position, eventsApplied, lagEvents, lagSeconds, active' },
      handle: async () => ({ status: 200, body: { items: await runtime.status() } }),
    }),
  ];
}
