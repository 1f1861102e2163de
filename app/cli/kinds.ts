// The kinds of resource `sentinel get` and `describe` know: where each lives in the query API, its table's
// columns, and its multi-line view.
import { z } from 'zod';
import { describeCluster, describeDeployment, describePlan, describeWorkload } from './describe.js';
import { RequestRefused, type ApiClient } from './http-client.js';
import { age, clip, table } from './tables.js';
import {
  clusterView,
  deploymentHistory,
  deploymentView,
  pageOf,
  planView,
  workloadView,
  type ClusterView,
  type DeploymentView,
  type PlanView,
  type WorkloadView,
} from './views.js';

/** The most items one page of the query API holds. */
const MAX_PAGE = 500;

export type Read = { after?: string };

/** What was fetched: the items as the server sent them (for `-o json|yaml`) and their table. */
export interface Listing {
  items: unknown[];
  table(): Promise<string>;
}

export interface Kind {
  name: string;
  aliases: readonly string[];
  path: string;
  /** `read.after`: a position a write answered with, that the read side must have passed. */
  list(client: ApiClient, filters: Record<string, string>, limit: number | undefined, read: Read): Promise<Listing>;
  one(client: ApiClient, id: string, read: Read): Promise<Listing>;
  describe(client: ApiClient, id: string, read: Read): Promise<string>;
}

interface KindSpec<V> {
  name: string;
  aliases: readonly string[];
  path: string;
  schema: z.ZodType<V>;
  header: readonly string[];
  rows(items: V[], client: ApiClient, now: number): Promise<string[][]>;
  describe(client: ApiClient, id: string, read: Read, now: number): Promise<string>;
}

function kind<V>(spec: KindSpec<V>): Kind {
  const listing = (items: V[], client: ApiClient): Listing => ({
    items,
    table: async () => (items.length === 0 ? `no ${spec.name} found\n` : table(spec.header, await spec.rows(items, client, Date.now()))),
  });
  return {
    name: spec.name,
    aliases: spec.aliases,
    path: spec.path,
    async list(client, filters, limit, read) {
      const items: V[] = [];
      let cursor: string | undefined;
      do {
        const size = Math.min(MAX_PAGE, limit === undefined ? MAX_PAGE : limit - items.length);
        // Later pages come after the first, which already waited for `after`.
        const after = cursor === undefined ? read.after : undefined;
        const page = await client.get(spec.path, pageOf(spec.schema), { ...filters, limit: size, cursor, after });
        items.push(...page.items);
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined && (limit === undefined || items.length < limit));
      return listing(items, client);
    },
    async one(client, id, read) {
      return listing([await client.get(`${spec.path}/${encodeURIComponent(id)}`, spec.schema, { after: read.after })], client);
    },
    describe: (client, id, read) => spec.describe(client, id, read, Date.now()),
  };
}

/** Names by id (`GET <path>/:id` for each distinct id); an id that cannot be read shows as itself. */
async function namesOf(client: ApiClient, path: string, ids: readonly string[], nameOf: (item: { name: string; namespace?: string }) => string) {
  const named = z.looseObject({ name: z.string(), namespace: z.string().optional() });
  const distinct = [...new Set(ids)];
  const names = await Promise.all(
    distinct.map(async (id) => {
      try {
        return nameOf(await client.get(`${path}/${encodeURIComponent(id)}`, named));
      } catch (error) {
        if (error instanceof RequestRefused && error.status === 404) return id;
        throw error;
      }
    }),
  );
  return new Map(distinct.map((id, i) => [id, names[i]!]));
}

const workloadName = (item: { name: string; namespace?: string }) => (item.namespace ? `${item.namespace}/${item.name}` : item.name);
const clusterName = (item: { name: string }) => item.name;

const clusters = kind<ClusterView>({
  name: 'clusters',
  aliases: ['cluster', 'clusters'],
  path: '/clusters',
  schema: clusterView,
  header: ['ID', 'NAME', 'REGION', 'STATUS', 'CONNECTION', 'GPU SKUS', 'AGE'],
  rows: async (items, _client, now) =>
    items.map((c) => [c.id, c.name, c.region, c.status, c.connection.state, c.gpuSkus.length > 0 ? c.gpuSkus.join(',') : '-', age(c.createdAt, now)]),
  describe: async (client, id, read, now) => describeCluster(await client.get(`/clusters/${encodeURIComponent(id)}`, clusterView, read), now),
});

const workloads = kind<WorkloadView>({
  name: 'workloads',
  aliases: ['workload', 'workloads'],
  path: '/workloads',
  schema: workloadView,
  header: ['ID', 'NAME', 'NAMESPACE', 'TYPE', 'STATUS', 'SPEC REV', 'IMAGE', 'AGE'],
  rows: async (items, _client, now) =>
    items.map((w) => [
      w.id,
      w.name,
      w.namespace,
      w.type,
      w.status,
      String(w.specRevision),
      typeof w.spec['image'] === 'string' ? clip(w.spec['image'], 48) : '-',
      age(w.createdAt, now),
    ]),
  describe: async (client, id, read, now) => describeWorkload(await client.get(`/workloads/${encodeURIComponent(id)}`, workloadView, read), now),
});

const deployments = kind<DeploymentView>({
  name: 'deployments',
  aliases: ['deployment', 'deployments', 'deploy'],
  path: '/deployments',
  schema: deploymentView,
  header: ['ID', 'WORKLOAD', 'CLUSTER', 'STATUS', 'READY', 'REVISION', 'AGE'],
  rows: async (items, client, now) => {
    const [workloadNames, clusterNames] = await Promise.all([
      namesOf(
        client,
        '/workloads',
        items.map((d) => d.workloadId),
        workloadName,
      ),
      namesOf(
        client,
        '/clusters',
        items.map((d) => d.clusterId),
        clusterName,
      ),
    ]);
    return items.map((d) => [
      d.id,
      workloadNames.get(d.workloadId) ?? d.workloadId,
      clusterNames.get(d.clusterId) ?? d.clusterId,
      d.paused ? `${d.status} (paused)` : d.status,
      `${d.readyReplicas ?? 0}/${d.replicas}`,
      String(d.currentRevision),
      age(d.createdAt, now),
    ]);
  },
  async describe(client, id, read, now) {
    const route = `/deployments/${encodeURIComponent(id)}`;
    const [deployment, history] = await Promise.all([client.get(route, deploymentView, read), client.get(`${route}/history`, deploymentHistory, read)]);
    const [workloadNames, clusterNames] = await Promise.all([
      namesOf(client, '/workloads', [deployment.workloadId], workloadName),
      namesOf(client, '/clusters', [deployment.clusterId], clusterName),
    ]);
    return describeDeployment(
      deployment,
      history,
      { workload: workloadNames.get(deployment.workloadId)!, cluster: clusterNames.get(deployment.clusterId)! },
      now,
    );
  },
});

const plans = kind<PlanView>({
  name: 'plans',
  aliases: ['plan', 'plans', 'action-plan', 'action-plans'],
  path: '/action-plans',
  schema: planView,
  header: ['ID', 'STATUS', 'SOURCE', 'ACTIONS', 'REASON', 'AGE'],
  rows: async (items, _client, now) =>
    items.map((p) => [
      p.id,
      p.shadow ? `${p.status} (shadow)` : p.status,
      p.source,
      clip(`${p.actions.length}: ${[...new Set(p.actions.map((a) => a.kind))].join(', ')}`, 32),
      clip(p.reason, 40),
      age(p.createdAt, now),
    ]),
  describe: async (client, id, read, now) => describePlan(await client.get(`/action-plans/${encodeURIComponent(id)}`, planView, read), now),
});

export const KINDS: readonly Kind[] = [clusters, workloads, deployments, plans];

export const KIND_NAMES = KINDS.map((k) => k.name).join('|');

export function kindNamed(name: string): Kind | undefined {
  const wanted = name.toLowerCase();
  return KINDS.find((k) => k.aliases.includes(wanted));
}
