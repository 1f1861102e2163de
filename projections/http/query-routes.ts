// The query API: read models, the audit trail and projection status, with the same auth and problems as the
// command API. `?after=<position>` waits (bounded) until the read side has passed a write's position; `?asOf=` on a
// cluster, workload, deployment or action plan folds its stream up to a time or position instead (time-travel.ts).
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { PostgresPrincipalStore } from '../../adapters/auth/principal-store.js';
import type { PrincipalStore } from '../../commands/access.js';
import { healthReport, type LatestLatency } from '../../commands/observed-health.js';
import { queryParameters, route, type QueryParameters, type Route } from '../../commands/http/route.js';
import { BadRequest, NotYetVisible } from '../../commands/http/problems.js';
import { pathId } from '../../commands/http/replies.js';
import { NotFound } from '../../domain/decider.js';
import type { Knex } from 'knex';
import { auditProjector, queryAudit } from '../audit-trail.js';
import { verifyAuditTrail } from '../audit-chain-read.js';
import { fleetCost, fleetCostProjector } from '../fleet-cost.js';
import { fleetGpus, gpuReadings, type TelemetryReadings } from '../fleet-gpus.js';
import { deploymentHistory, instant, InvalidQuery, MAX_PAGE_SIZE, ORDERS, READ_MODELS, type Order, type ReadModel } from '../read-models.js';
import { uptimeOf } from '../read-models/deployment-uptime.js';
import type { ProjectionRuntime } from '../runtime.js';
import type { SnapshotStore } from '../../commands/aggregate-cache.js';
import type { Aggregate } from '../../commands/command-handler.js';
import { actionPlans, clusters, deployments, workloads } from '../../commands/aggregates.js';
import type { CorrelationReader, EventStore } from '../../domain/event-store.js';
import { asOfParameter, parseAsOf, stateAsOf } from '../time-travel.js';
import { forensicsRoutes } from './forensics-routes.js';
import { operationsRoutes } from './operations-routes.js';
import { readers } from './readers.js';
import { rolloutRoutes } from './rollout-routes.js';
import { verifyAgainstAnchor, type AnchorLog } from '../../commands/audit-export-anchor.js';
import type { FleetSnapshotService } from './forensics-routes.js';

export interface QueryRoutesOptions {
  knex: Knex;
  runtime: ProjectionRuntime;
  /** Longest a query waits for `?after=` before answering 503. */
  readYourWritesTimeoutMs?: number;
  /** Resolves an `actor` filter given as a username or service-account name; the principal tables on `knex` unless given. */
  principals?: Pick<PrincipalStore, 'findUserByUsername' | 'findServiceAccountByName'>;
  /** The node agents' latest readings, for the GPU fleet and each node's GPUs. */
  telemetry: TelemetryReadings;
  /** Readings older than this are not shown (default 600 s); a node whose newest is older than `staleAfterSeconds` (default 90 s) is stale. */
  readingWindowSeconds?: number;
  staleAfterSeconds?: number;
  /** The health source the policy rules read (`ObservedHealthSource`): latency, success rate and the file's override; without it, uptime only. */
  health?: { latest(deploymentId: string): Promise<LatestLatency> };
  now?: () => Date;
  /** The log, for `?asOf=` (time travel) on a cluster, workload, deployment or action plan. */
  events?: EventStore;
  /** The write side's snapshots, which an `?asOf=` fold starts from when one lies at or below the point. */
  snapshots?: SnapshotStore;
  /** Reads a correlation's events across streams, for the causal timeline. */
  correlations?: CorrelationReader;
  /**
   * Where the audit trail's signed anchors are published (a file, a Kafka topic): `GET /audit/verify` then also checks
   * the live chain against the last one, with `publicKey` (else the key the anchor names).
   */
  auditAnchors?: { log: Pick<AnchorLog, 'last'>; publicKey?: KeyObject };
  /** Fleet snapshots at a time (`FleetSnapshots`), served under /forensics/snapshots. */
  fleetSnapshots?: FleetSnapshotService;
  /** The event types each reactor this process runs reads, so that `GET /reactors` counts its lag in those alone. */
  reactorEventTypes?: (reactor: string) => readonly string[] | undefined;
}

const POSITION = /^[0-9a-f]{16}-[0-9a-f]{16}$/;
const page = z.object({ items: z.array(z.record(z.string(), z.unknown())), nextCursor: z.string().nullable() }).meta({ id: 'Page' });
const item = z.record(z.string(), z.unknown());

const text = z.string().min(1, 'a non-empty string').max(1024, 'at most 1024 characters');
const dollars = z.number().describe('US dollars per hour, exact to the micro-dollar (at most six decimals)');
const after = z
  .string()
  .regex(POSITION, 'a position a write answered with, such as 0000000000000302-0000000000000004')
  .describe('wait (up to a few seconds, else 503) until the read side has passed this position, which a write answered with')
  .optional();

/** `limit`, `cursor`, `after` and `order`, which every list takes. */
const paging = {
  limit: z
    .string()
    .regex(/^[0-9]{1,4}$/, `a whole number from 1 to ${MAX_PAGE_SIZE}`)
    .transform(Number)
    .pipe(z.number().int().min(1, `a whole number from 1 to ${MAX_PAGE_SIZE}`).max(MAX_PAGE_SIZE, `a whole number from 1 to ${MAX_PAGE_SIZE}`))
    .optional()
    .describe(`items per page, 1 to ${MAX_PAGE_SIZE} (default 50)`),
  cursor: z.string().max(4096, 'a previous page\'s nextCursor').optional().describe('nextCursor of the previous page, read in the same order'),
  after,
  order: z.enum(ORDERS, { error: 'asc or desc' }).default('asc').describe('asc: oldest first (the default); desc: newest first'),
};

interface ListQuery {
  limit?: number;
  cursor?: string;
  after?: string;
  order: Order;
  [filter: string]: string | number | undefined;
}

/** The parameters of a list: paging, and the filters given (each optional). */
function listParameters(filters: Readonly<Record<string, z.ZodType<string>>>): QueryParameters<ListQuery> {
  const optional = Object.fromEntries(Object.entries(filters).map(([name, schema]) => [name, schema.optional()]));
  return queryParameters({ ...optional, ...paging }) as unknown as QueryParameters<ListQuery>;
}

const onlyAfter = queryParameters({ after });
const afterOrAsOf = queryParameters({ after, asOf: asOfParameter.optional() });

/** The filters of a list's query: the parameters that are neither paging nor `after`. */
function filtersOf(query: ListQuery): Record<string, string> {
  const { limit: _limit, cursor: _cursor, after: _after, order: _order, ...filters } = query;
  return Object.fromEntries(Object.entries(filters).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

/** A query the read model refuses (a bad filter, cursor or time) is the caller's mistake: 400 naming it. */
async function asQuery<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof InvalidQuery) throw new BadRequest(400, error.message, error.errors);
    throw error;
  }
}

export function queryRoutes(options: QueryRoutesOptions): Route[] {
  const { knex, runtime } = options;
  const principals = options.principals ?? new PostgresPrincipalStore(knex);
  const tablesNow = (model: ReadModel) => runtime.tables(model.projector);

  /** Waits for `?after=` when given; only the projectors the answer comes from are waited for. */
  const caughtUp = async (position: string | undefined, projectors: string[]) => {
    if (position === undefined) return;
    if (!(await runtime.waitFor(position, projectors, options.readYourWritesTimeoutMs ?? 2000))) {
      throw new NotYetVisible(`the read side has not reached ${position} yet; retry shortly`);
    }
  };

  /**
   * An `actor` filter names a principal by id or by name: the ids it matches are the value itself (a principal's
   * or a system actor's id) and the ids of the user and the service account of that name.
   */
  const actorIds = async (actor: string): Promise<string[]> => {
    const [user, account] = await Promise.all([principals.findUserByUsername(actor), principals.findServiceAccountByName(actor)]);
    return [...new Set([actor, ...(user ? [user.id] : []), ...(account ? [account.id] : [])])];
  };

  const now = options.now ?? (() => new Date());
  const windowSeconds = options.readingWindowSeconds ?? 600;
  const staleAfterSeconds = options.staleAfterSeconds ?? 90;
  const readingsSince = () => new Date(now().getTime() - windowSeconds * 1000);

  /** A node shows its GPUs' latest readings beside the facts the log holds about them. */
  const withReadings = async (found: unknown): Promise<unknown> => {
    const node = found as { clusterId: string; name: string };
    const samples = await options.telemetry.latestSamples({ clusterId: node.clusterId, nodeName: node.name, metricPrefix: 'DCGM_', since: readingsSince() });
    return { ...node, gpuReadings: gpuReadings(samples).map(({ clusterId: _cluster, node: _node, ...gpu }) => gpu) };
  };

  const pascal = (kind: string) => kind.replace(/(^|[- ])(\w)/g, (_, _sep, c: string) => c.toUpperCase());

  /**
   * A deployment that waits for its cluster says what it waits for: Sentinel cannot reach the cluster (the rest of
   * the time a change on its way is simply on its way).
   */
  const withWait = async (found: unknown): Promise<unknown> => {
    const deployment = found as { status: string; clusterId: string };
    if (deployment.status !== 'Pending' && deployment.status !== 'Applying') return found;
    const model = READ_MODELS.clusters;
    const cluster = (await model.get!(knex, await tablesNow(model), deployment.clusterId)) as
      | { name: string; connection: { state: string; since: Date | null; cause: string | null } }
      | undefined;
    if (cluster?.connection.state !== 'unreachable') return found;
    const since = cluster.connection.since ? ` since ${new Date(cluster.connection.since).toISOString()}` : '';
    return { ...deployment, waitingFor: `cluster ${cluster.name} is unreachable${since}: ${cluster.connection.cause ?? 'no cause recorded'}` };
  };

  /**
   * `?asOf=`: the aggregate's stream folded up to that time or position, in the AsOf shape (`{id, stream, asOf:
   * {revision, position, recordedAt, eventsFolded, fromSnapshot}, state}`): the state the write side decides against,
   * not the read model's row, whose columns (times of changes, histories) the fold does not keep.
   */
  const asOf = async (aggregate: AnyAggregate, kind: string, id: string, value: string) => {
    if (!options.events) throw new Error('this server was started without the event store the asOf parameter reads');
    const point = parseAsOf(value)!;
    const found = await stateAsOf(options.events, aggregate, id, point, options.snapshots ? { snapshots: options.snapshots } : {});
    if (found === undefined) throw new NotFound(kind, id);
    return found;
  };

  const collection = (
    path: string,
    kind: string,
    model: ReadModel,
    described: string,
    shown: (found: unknown) => Promise<unknown> = async (found) => found,
    aggregate?: AnyAggregate,
  ): Route[] => [
    route({
      ...readers,
      method: 'get',
      path,
      operationId: `list${pascal(kind)}`,
      summary: `List ${kind}s`,
      query: listParameters(model.accepts),
      success: { status: 200, schema: page, description: `{items, nextCursor}: ${described}` },
      handle: async ({ query }) => {
        await caughtUp(query.after, [model.projector.name]);
        const filters: Record<string, string | string[]> = filtersOf(query);
        if (typeof filters['actor'] === 'string') filters['actor'] = await actorIds(filters['actor']);
        const listed = await asQuery(async () =>
          model.list(knex, await tablesNow(model), { limit: query.limit ?? 50, cursor: query.cursor, order: query.order, filters }),
        );
        return { status: 200, body: listed };
      },
    }),
    ...(model.get
      ? [
          route({
            ...readers,
            method: 'get',
            path: `${path}/:id`,
            operationId: `get${pascal(kind)}`,
            summary: `Show a ${kind}`,
            query: aggregate ? afterOrAsOf : onlyAfter,
            success: {
              status: 200,
              schema: item,
              description: aggregate ? `the ${kind}; with asOf, its stream folded up to that point, in the AsOf shape` : `the ${kind}`,
            },
            handle: async ({ params, query }: { params: Record<string, string>; query: { after?: string; asOf?: string } }) => {
              const id = pathId(params, kind);
              // The log is the record: as of a point, nothing waits for the read side.
              if (aggregate && query.asOf !== undefined) return { status: 200, body: await asOf(aggregate, kind, id, query.asOf) };
              await caughtUp(query.after, [model.projector.name]);
              const found = await model.get!(knex, await runtime.tables(model.projector), id);
              if (found === undefined) throw new NotFound(kind, id);
              return { status: 200, body: await shown(found) };
            },
          }),
        ]
      : []),
  ];

  const auditParameters = queryParameters({
    actor: text.optional().describe('an actor id, or a username or service-account name'),
    stream: text.optional(),
    type: text.optional().describe('an event type, e.g. DeploymentCreated'),
    correlationId: text.optional(),
    from: instant.optional().describe('entries recorded at or after this time'),
    to: instant.optional().describe('entries recorded before this time'),
    ...paging,
  });

  return [
    ...collection('/clusters', 'cluster', READ_MODELS.clusters, 'in order of registration', undefined, clusters),
    ...collection('/workloads', 'workload', READ_MODELS.workloads, 'in order of registration', undefined, workloads),
    ...collection('/deployments', 'deployment', READ_MODELS.deployments, 'in order of creation; from and to filter by creation time', withWait, deployments),
    route({
      ...readers,
      method: 'get',
      path: '/deployments/:id/history',
      operationId: 'deploymentHistory',
      summary: 'Show a deployment’s revision history and timeline',
      success: { status: 200, schema: item, description: 'every revision, and every status change' },
      query: onlyAfter,
      handle: async ({ params, query }) => {
        await caughtUp(query.after, [READ_MODELS.deployments.projector.name]);
        const id = pathId(params, 'deployment');
        const history = await deploymentHistory(knex, await runtime.tables(READ_MODELS.deployments.projector), id);
        if (history === undefined) throw new NotFound('deployment', id);
        return { status: 200, body: history };
      },
    }),
    route({
      ...readers,
      method: 'get',
      path: '/deployments/:id/health',
      operationId: 'deploymentHealth',
      summary: 'Show a deployment’s observed health: uptime, p99 latency and success rate',
      success: {
        status: 200,
        schema: item,
        description:
          '{deploymentId, uptime: {"1", "7", "30": ratio or null}, latencyP99Ms, successRate, source: {uptime: observed|file, latency: prometheus|file|none}, observedAt}',
      },
      query: onlyAfter,
      handle: async ({ params, query }) => {
        const model = READ_MODELS.deploymentUptime;
        await caughtUp(query.after, [model.projector.name]);
        const id = pathId(params, 'deployment');
        const at = now();
        const observed = await uptimeOf(knex, await runtime.tables(model.projector), id, at);
        if (observed === undefined) throw new NotFound('deployment', id);
        return { status: 200, body: healthReport(id, observed.uptime, (await options.health?.latest(id)) ?? {}, at) };
      },
    }),
    ...collection('/nodes', 'node', READ_MODELS.nodes, 'in order of first report; the latest GPU readings with each node shown alone', withReadings),
    route({
      ...readers,
      method: 'get',
      path: '/fleet/gpus',
      operationId: 'fleetGpus',
      summary: 'Show the GPU fleet as the node agents last reported it',
      query: queryParameters({ clusterId: text.optional().describe('only this cluster') }),
      success: {
        status: 200,
        schema: z.record(z.string(), z.unknown()).meta({ id: 'FleetGpus' }),
        description:
          '{at, windowSeconds, staleAfterSeconds, total, byCluster, byNode, bySku}: GPUs, allocated, utilisationPct, memoryUsedMiB, memoryTotalMiB, powerW, temperatureMaxC; byNode also lastReadingAt, staleSeconds, stale',
      },
      handle: async ({ query }) => {
        const samples = await options.telemetry.latestSamples({ ...(query.clusterId ? { clusterId: query.clusterId } : {}), metricPrefix: 'DCGM_', since: readingsSince() });
        return { status: 200, body: fleetGpus(samples, now(), windowSeconds, staleAfterSeconds) };
      },
    }),
    ...collection('/action-plans', 'action plan', READ_MODELS.actionPlans, 'in order of submission; from and to filter by submission time', undefined, actionPlans),
    ...collection('/policies', 'policy', READ_MODELS.policies, 'in order of creation'),
    ...collection('/policy-decisions', 'policy decision', { ...READ_MODELS.policyDecisions, get: undefined }, 'in log order; from and to filter by the time of the decision'),
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
            hourlyUsd: dollars,
            byTeam: z.array(z.object({ team: z.string(), hourlyUsd: dollars, gpus: z.number() })),
            byCluster: z.array(z.object({ clusterId: z.string(), hourlyUsd: dollars, gpus: z.number() })),
            byGpuSku: z.array(z.object({ sku: z.string(), gpus: z.number(), hourlyUsd: dollars })),
            deployments: z.number().int(),
          })
          .meta({ id: 'FleetCost' }),
        description: '$/hour of every placed deployment, by team, cluster and GPU SKU, most expensive first; summed exactly in micro-dollars',
      },
      query: onlyAfter,
      handle: async ({ query }) => {
        await caughtUp(query.after, [fleetCostProjector.name]);
        return { status: 200, body: await fleetCost(knex, await runtime.tables(fleetCostProjector)) };
      },
    }),
    route({
      ...readers,
      method: 'get',
      path: '/audit',
      operationId: 'listAudit',
      summary: 'Search the audit trail',
      query: auditParameters,
      success: { status: 200, schema: page, description: 'entries in log order (or newest first); from and to filter by the time each was recorded' },
      handle: async ({ query }) => {
        await caughtUp(query.after, [auditProjector.name]);
        const { after: _after, limit, actor, ...rest } = query;
        const tables = await runtime.tables(auditProjector);
        const filters = { ...rest, limit: limit ?? 50, ...(actor === undefined ? {} : { actor: await actorIds(actor) }) };
        return { status: 200, body: await asQuery(() => queryAudit(knex, tables.audit, filters)) };
      },
    }),
    route({
      ...readers,
      method: 'get',
      path: '/audit/verify',
      operationId: 'verifyAudit',
      summary: 'Verify the audit trail’s hash chain (and, when anchors are written, the chain against the last one)',
      success: {
        status: 200,
        schema: z
          .object({
            ok: z.boolean(),
            rows: z.number().int(),
            brokenAt: z.object({ id: z.string(), position: z.string() }).optional(),
            reason: z.string().optional(),
            anchor: z
              .object({ position: z.string().nullable(), hash: z.string(), rows: z.number().int(), signedAt: z.string(), ok: z.boolean(), reason: z.string().optional() })
              .optional(),
          })
          .meta({ id: 'AuditVerification' }),
        description:
          '{ok: true, rows} or {ok: false, rows, brokenAt: {id, position}, reason}; with anchors, also anchor: {position, hash, rows, signedAt, ok, reason?} ' +
          '(ok is false too when the chain no longer holds the last anchor: rewritten with recomputed hashes, or rows removed before it)',
      },
      handle: async () => {
        const table = (await runtime.tables(auditProjector)).audit;
        const anchors = options.auditAnchors;
        if (anchors === undefined) return { status: 200, body: await verifyAuditTrail(knex, table) };
        return { status: 200, body: await verifyAgainstAnchor(knex, table, await anchors.log.last(), anchors.publicKey) };
      },
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
    ...forensicsRoutes({
      ...(options.correlations ? { correlations: options.correlations } : {}),
      ...(options.fleetSnapshots ? { snapshots: options.fleetSnapshots } : {}),
    }),
    ...rolloutRoutes({ events: options.events }),
    ...operationsRoutes({ knex, events: options.events, reactorEventTypes: options.reactorEventTypes }),
  ];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any aggregate: the fold only passes its own events to its own evolve
type AnyAggregate = Aggregate<any, any, unknown>;
