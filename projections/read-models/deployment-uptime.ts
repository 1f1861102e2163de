// The deployment-uptime read model: when each deployment was up or down, as the cluster reactor observed it, and
// its uptime over the last 1, 7 and 30 days, for the SLA rule and GET /deployments/:id/health.
//
// Readiness is what the reactor records: `DeploymentAvailable` is up; `DeploymentDegraded` (pods lost after the
// rollout) and `DeploymentRolloutFailed` (the rollout never reached what it needs) are down. Changes asked for
// (a scale, an update) are no observation: the deployment stays as last observed until the reactor sees otherwise.
// Time before the first observation, and after `DeploymentDeleted`, is not observed and counts neither way.
// Closed intervals are rows of `deployment_status_intervals`, written once; the open one is the deployment's row.
import type { Knex } from 'knex';
import type { ObservedUptime, UptimeReader } from '../../commands/observed-health.js';
import { deploymentEvents, type DeploymentEvent } from '../../domain/deployment.js';
import { WORKLOAD_TYPES } from '../../domain/policy.js';
import type { TableNames } from '../projector.js';
import { insertRows, RowBatch, type Row } from '../row-batch.js';
import { BY_CREATION, foldRows, lifecycleColumns, parseEach, sortable } from './projecting.js';
import { acceptsOf, iso, lifecycle, listPage, oneOf, type Filters, type Lifecycle, type ReadModel } from './query.js';

/** The windows, in days, that uptime is reported over. */
export const UPTIME_WINDOWS_DAYS = [1, 7, 30] as const;

const DAY_MS = 86_400_000;

// ---- the interval arithmetic -------------------------------------------------------------------------------

export type Readiness = 'up' | 'down';

/** Where a deployment stands: not observed yet, up or down since a time, or deleted (no longer observed). */
export type Observed = { status: 'unobserved'; since: null } | { status: Readiness | 'deleted'; since: Date };

export const UNOBSERVED: Observed = { status: 'unobserved', since: null };

/** A stretch of time a deployment was up or down; `end` null while it lasts. */
export interface StatusInterval {
  status: Readiness;
  start: Date;
  end: Date | null;
}

/** What an event says of readiness; undefined for events that are no observation of it. */
export function readinessOf(event: DeploymentEvent): Readiness | 'deleted' | undefined {
  switch (event.type) {
    case 'DeploymentAvailable':
      return 'up';
    case 'DeploymentDegraded':
    case 'DeploymentRolloutFailed':
      return 'down';
    case 'DeploymentDeleted':
      return 'deleted';
    default:
      return undefined;
  }
}

/**
 * Folds one observation made `at` into where a deployment stands: a change of readiness closes the interval that
 * was open. The same readiness seen again changes nothing; nothing is observed after a deletion.
 */
export function observe(current: Observed, seen: Readiness | 'deleted', at: Date): { next: Observed; closed?: StatusInterval } {
  if (current.status === 'deleted' || current.status === seen) return { next: current };
  if (current.status === 'unobserved') return { next: { status: seen, since: at } };
  // Clocks of different writers may disagree by a little: an interval never ends before it began.
  const end = at < current.since ? current.since : at;
  return { next: { status: seen, since: end }, closed: { status: current.status, start: current.since, end } };
}

/** The interval a deployment is in now, if it is up or down. */
export function openInterval(current: Observed): StatusInterval | undefined {
  return current.status === 'up' || current.status === 'down' ? { status: current.status, start: current.since, end: null } : undefined;
}

/**
 * The share of the observed time in the `days` before `now` that the deployment was up; undefined when none of
 * that time was observed. An open interval lasts until `now`.
 */
export function uptimeOver(intervals: readonly StatusInterval[], days: number, now: Date): number | undefined {
  const to = now.getTime();
  const from = to - days * DAY_MS;
  let observed = 0;
  let up = 0;
  for (const interval of intervals) {
    const overlap = Math.min(interval.end?.getTime() ?? to, to) - Math.max(interval.start.getTime(), from);
    if (overlap <= 0) continue;
    observed += overlap;
    if (interval.status === 'up') up += overlap;
  }
  return observed === 0 ? undefined : up / observed;
}

/** Uptime by window in days (keyed by the number of days), null where the window holds no observation. */
export function uptimeByWindow(intervals: readonly StatusInterval[], windows: readonly number[], now: Date): Record<string, number | null> {
  return Object.fromEntries(windows.map((days) => [String(days), uptimeOver(intervals, days, now) ?? null]));
}

// ---- the read model ----------------------------------------------------------------------------------------

type Tables = 'deployment_uptime' | 'deployment_status_intervals';
export type DeploymentUptimeTables = TableNames<Tables>;

const OBSERVED_STATUSES = ['unobserved', 'up', 'down', 'deleted'] as const;
const WORKLOAD_TYPE_NAMES: readonly string[] = WORKLOAD_TYPES;

interface UptimeRow extends Lifecycle {
  id: string;
  workload_type: string | null;
  status: Observed['status'];
  since: Date | null;
}

interface IntervalRow {
  deployment_id: string;
  status: Readiness;
  started_at: Date;
  ended_at: Date;
}

const uptimeItem = (row: UptimeRow) => ({
  deploymentId: row.id,
  workloadType: row.workload_type,
  status: row.status,
  since: iso(row.since),
  ...lifecycle(row),
});

const uptimeFilters: Filters = { status: oneOf('status', OBSERVED_STATUSES) };
const READ_CHUNK = 500;

/** The readiness events, and the creation that makes a deployment known (with its workload's type). */
const EVENT_TYPES = ['DeploymentCreated', 'DeploymentAvailable', 'DeploymentDegraded', 'DeploymentRolloutFailed', 'DeploymentDeleted'];

function observedOf({ status, since }: Pick<UptimeRow, 'status' | 'since'>): Observed {
  return status === 'unobserved' ? UNOBSERVED : { status, since: new Date(since!) };
}

function workloadTypeOf(spec: Record<string, unknown>): string | null {
  const type = spec['type'];
  return typeof type === 'string' && WORKLOAD_TYPE_NAMES.includes(type) ? type : null;
}

export const deploymentUptime: ReadModel<Tables> = {
  projector: {
    name: 'deployment-uptime',
    version: 1,
    eventTypes: EVENT_TYPES,
    tables: ['deployment_uptime', 'deployment_status_intervals'],
    async createTables(trx, tables) {
      await trx.schema.createTable(tables.deployment_uptime, (t) => {
        sortable(t, 'id').primary();
        t.text('workload_type');
        t.text('status').notNullable();
        t.timestamp('since', { useTz: true });
        lifecycleColumns(t, tables.deployment_uptime);
        t.index(['status', 'updated_at'], `${tables.deployment_uptime}_status_idx`);
      });
      await trx.schema.createTable(tables.deployment_status_intervals, (t) => {
        t.text('deployment_id').notNullable();
        t.text('status').notNullable();
        t.timestamp('started_at', { useTz: true }).notNullable();
        t.timestamp('ended_at', { useTz: true }).notNullable();
        /** The stream revision of the event that closed it: one interval per such event. */
        t.integer('closed_by').notNullable();
        t.primary(['deployment_id', 'closed_by']);
        t.index(['deployment_id', 'ended_at'], `${tables.deployment_status_intervals}_ended_idx`);
      });
    },
    async apply(events, trx, tables) {
      const rows = new RowBatch(trx, tables.deployment_uptime, ['id']);
      const closed: Row[] = [];
      await foldRows(rows, parseEach(deploymentEvents, events), ({ e }) => e.data.deploymentId, (row, { event, e }, id) => {
        if (e.type === 'DeploymentCreated') return { workload_type: workloadTypeOf(e.data.spec), status: 'unobserved', since: null };
        const seen = readinessOf(e);
        if (!row || !seen) return undefined;
        const { next, closed: interval } = observe(observedOf(row as unknown as UptimeRow), seen, event.recordedAt);
        if (next.status === row['status']) return undefined;
        if (interval) {
          closed.push({ deployment_id: id, status: interval.status, started_at: interval.start, ended_at: interval.end, closed_by: event.revision });
        }
        return { status: next.status, since: next.since };
      });
      await rows.flush();
      await insertRows(trx, tables.deployment_status_intervals, closed);
    },
  },
  filters: Object.keys(uptimeFilters),
  accepts: acceptsOf(uptimeFilters),
  list: (knex, tables, page) => listPage(knex(tables.deployment_uptime).select('*'), BY_CREATION, uptimeFilters, page, uptimeItem),
  async get(knex, tables, id) {
    const row = (await knex(tables.deployment_uptime).where({ id }).first()) as UptimeRow | undefined;
    return row && uptimeItem(row);
  },
};

// ---- queries -----------------------------------------------------------------------------------------------

/** A deployment's uptime by window as of `now`; undefined for a deployment the read model does not know. */
export async function uptimeOf(
  knex: Knex,
  tables: DeploymentUptimeTables,
  deploymentId: string,
  now: Date,
  windows: readonly number[] = UPTIME_WINDOWS_DAYS,
): Promise<{ uptime: Record<string, number | null> } | undefined> {
  const row = (await knex(tables.deployment_uptime).where({ id: deploymentId }).first()) as UptimeRow | undefined;
  if (!row) return undefined;
  const intervals = await closedIntervals(knex, tables, [deploymentId], now, windows);
  const open = openInterval(observedOf(row));
  return { uptime: uptimeByWindow([...(intervals.get(deploymentId) ?? []), ...(open ? [open] : [])], windows, now) };
}

/**
 * The uptime of the deployments observed up or down now, at most `limit` of them, those whose readiness changed
 * last first: what a health source keeps in memory.
 */
export async function observedUptimes(
  knex: Knex,
  tables: DeploymentUptimeTables,
  now: Date,
  windows: readonly number[],
  limit: number,
): Promise<ObservedUptime[]> {
  const rows = (await knex(tables.deployment_uptime)
    .whereIn('status', ['up', 'down'])
    .orderBy([
      { column: 'updated_at', order: 'desc' },
      { column: 'id', order: 'asc' },
    ])
    .limit(limit)
    .select('id', 'workload_type', 'status', 'since')) as UptimeRow[];
  const intervals = await closedIntervals(
    knex,
    tables,
    rows.map((row) => row.id),
    now,
    windows,
  );
  return rows.map((row) => {
    const open = openInterval(observedOf(row))!;
    const uptime = uptimeByWindow([...(intervals.get(row.id) ?? []), open], windows, now);
    return {
      deploymentId: row.id,
      ...(row.workload_type ? { workloadType: row.workload_type as ObservedUptime['workloadType'] } : {}),
      uptime: Object.fromEntries(Object.entries(uptime).filter((entry): entry is [string, number] => entry[1] !== null)),
    };
  });
}

/** The closed intervals of these deployments that end inside the longest window, by deployment. */
async function closedIntervals(
  knex: Knex,
  tables: DeploymentUptimeTables,
  deploymentIds: readonly string[],
  now: Date,
  windows: readonly number[],
): Promise<Map<string, StatusInterval[]>> {
  const from = new Date(now.getTime() - Math.max(0, ...windows) * DAY_MS);
  const byDeployment = new Map<string, StatusInterval[]>();
  for (let i = 0; i < deploymentIds.length; i += READ_CHUNK) {
    const rows = (await knex(tables.deployment_status_intervals)
      .whereIn('deployment_id', deploymentIds.slice(i, i + READ_CHUNK))
      .where('ended_at', '>', from)
      .select('deployment_id', 'status', 'started_at', 'ended_at')) as IntervalRow[];
    for (const row of rows) {
      const list = byDeployment.get(row.deployment_id) ?? [];
      list.push({ status: row.status, start: new Date(row.started_at), end: new Date(row.ended_at) });
      byDeployment.set(row.deployment_id, list);
    }
  }
  return byDeployment;
}

/** The health source's reader of this read model, on the tables it is served from now. */
export function uptimeReader(knex: Knex, tables: () => Promise<DeploymentUptimeTables>): UptimeReader {
  return { observedUptimes: async (now, windows, limit) => observedUptimes(knex, await tables(), now, windows, limit) };
}
