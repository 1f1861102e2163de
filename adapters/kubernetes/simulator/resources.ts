// The resources the simulator serves and the discovery documents that describe them to clients.
import { eventsV1View } from './event-view.js';
import type { KubeObject } from './types.js';

export interface ResourceDef {
  /** '' for the core group. */
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Discovery categories: `kubectl get all` reads the kinds in `all`. */
  categories?: string[];
  /** Workload-like objects whose metadata.generation moves with their spec. */
  tracksGeneration: boolean;
  subresources: string[];
  verbs: string[];
  /**
   * For a read-only view of another resource's objects: the resource they are stored (and watched) under, and how
   * one of them reads through this resource.
   */
  viewOf?: { storage: string; read: (stored: KubeObject) => KubeObject };
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export const RESOURCES: ResourceDef[] = [
  {
    group: '',
    version: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    tracksGeneration: false,
    subresources: ['status'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'nodes',
    singular: 'node',
    kind: 'Node',
    namespaced: false,
    shortNames: ['no'],
    tracksGeneration: false,
    subresources: ['status'],
    verbs: ['get', 'list', 'patch', 'update', 'watch'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    singular: 'pod',
    kind: 'Pod',
    categories: ['all'],
    namespaced: true,
    shortNames: ['po'],
    tracksGeneration: false,
    subresources: ['status', 'eviction', 'log'],
    verbs: ALL_VERBS,
  },
  {
    group: '',
    version: 'v1',
    plural: 'events',
    singular: 'event',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
    tracksGeneration: false,
    subresources: [],
    verbs: ALL_VERBS,
  },
  {
    group: 'events.k8s.io',
    version: 'v1',
    plural: 'events',
    singular: 'event',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
    tracksGeneration: false,
    subresources: [],
    verbs: ['get', 'list', 'watch'],
    viewOf: { storage: 'v1/events', read: eventsV1View },
  },
  {
    group: '',
    version: 'v1',
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    categories: ['all'],
    namespaced: true,
    shortNames: ['svc'],
    tracksGeneration: false,
    subresources: ['status'],
    verbs: ALL_VERBS,
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    singular: 'deployment',
    kind: 'Deployment',
    categories: ['all'],
    namespaced: true,
    shortNames: ['deploy'],
    tracksGeneration: true,
    subresources: ['status', 'scale'],
    verbs: ALL_VERBS,
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'statefulsets',
    singular: 'statefulset',
    kind: 'StatefulSet',
    categories: ['all'],
    namespaced: true,
    shortNames: ['sts'],
    tracksGeneration: true,
    subresources: ['status', 'scale'],
    verbs: ALL_VERBS,
  },
  {
    group: 'batch',
    version: 'v1',
    plural: 'jobs',
    singular: 'job',
    kind: 'Job',
    categories: ['all'],
    namespaced: true,
    tracksGeneration: true,
    subresources: ['status'],
    verbs: ALL_VERBS,
  },
  {
    group: 'policy',
    version: 'v1',
    plural: 'poddisruptionbudgets',
    singular: 'poddisruptionbudget',
    kind: 'PodDisruptionBudget',
    namespaced: true,
    shortNames: ['pdb'],
    tracksGeneration: true,
    subresources: ['status'],
    verbs: ALL_VERBS,
  },
  {
    group: 'autoscaling',
    version: 'v2',
    plural: 'horizontalpodautoscalers',
    singular: 'horizontalpodautoscaler',
    kind: 'HorizontalPodAutoscaler',
    categories: ['all'],
    namespaced: true,
    shortNames: ['hpa'],
    tracksGeneration: true,
    subresources: ['status'],
    verbs: ALL_VERBS,
  },
  {
    // Gateway API routes, stored as the API server stores a custom resource: validated only as far as the fields
    // traffic routing reads (backend weights), with no gateway behind them.
    group: 'gateway.networking.k8s.io',
    version: 'v1',
    plural: 'httproutes',
    singular: 'httproute',
    kind: 'HTTPRoute',
    namespaced: true,
    tracksGeneration: true,
    subresources: ['status'],
    verbs: ALL_VERBS,
  },
];

export function apiVersionOf(def: ResourceDef): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

/** The key a resource's objects are stored and watched under. */
export function resourceKey(def: ResourceDef): string {
  return def.viewOf?.storage ?? `${apiVersionOf(def)}/${def.plural}`;
}

export function findResource(group: string, version: string, plural: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

export function resourceByKind(kind: string): ResourceDef {
  const def = RESOURCES.find((r) => r.kind === kind);
  if (!def) throw new Error(`the simulator serves no resource of kind ${kind}`);
  return def;
}

export const NAMESPACES = resourceByKind('Namespace');
export const NODES = resourceByKind('Node');
export const PODS = resourceByKind('Pod');
export const DEPLOYMENTS = resourceByKind('Deployment');
export const STATEFULSETS = resourceByKind('StatefulSet');
export const JOBS = resourceByKind('Job');
export const PDBS = resourceByKind('PodDisruptionBudget');
export const HPAS = resourceByKind('HorizontalPodAutoscaler');
export const EVENTS = resourceByKind('Event');
export const SERVICES = resourceByKind('Service');
export const HTTP_ROUTES = resourceByKind('HTTPRoute');
export const EVENTS_V1 = RESOURCES.find((r) => r.group === 'events.k8s.io')!;

const SUBRESOURCE_KINDS: Record<string, { kind: string; group?: string; version?: string; verbs: string[] }> = {
  status: { kind: '', verbs: ['get', 'patch', 'update'] },
  scale: { kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] },
  eviction: { kind: 'Eviction', group: 'policy', version: 'v1', verbs: ['create'] },
  log: { kind: '', verbs: ['get'] },
};

/** `/api/v1` or `/apis/<group>/<version>`: the APIResourceList. */
export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const defs = RESOURCES.filter((r) => r.group === group && r.version === version);
  if (defs.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const def of defs) {
    resources.push({
      name: def.plural,
      singularName: def.singular,
      namespaced: def.namespaced,
      kind: def.kind,
      verbs: def.verbs,
      ...(def.shortNames ? { shortNames: def.shortNames } : {}),
      ...(def.categories ? { categories: def.categories } : {}),
    });
    for (const sub of def.subresources) {
      const info = SUBRESOURCE_KINDS[sub]!;
      resources.push({
        name: `${def.plural}/${sub}`,
        singularName: '',
        namespaced: def.namespaced,
        ...(info.group ? { group: info.group, version: info.version } : {}),
        kind: info.kind || def.kind,
        verbs: info.verbs,
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

function groups(): { name: string; versions: string[] }[] {
  const byName = new Map<string, string[]>();
  for (const def of RESOURCES) {
    if (!def.group) continue;
    const versions = byName.get(def.group) ?? [];
    if (!versions.includes(def.version)) versions.push(def.version);
    byName.set(def.group, versions);
  }
  return [...byName].map(([name, versions]) => ({ name, versions }));
}

function groupDocument(name: string, versions: string[]): Record<string, unknown> {
  const entries = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: entries, preferredVersion: entries[0] };
}

/** `/apis`: the APIGroupList. */
export function apiGroupList(): Record<string, unknown> {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups().map((g) => groupDocument(g.name, g.versions)) };
}

/** `/apis/<group>`: one APIGroup. */
export function apiGroup(name: string): Record<string, unknown> | undefined {
  const group = groups().find((g) => g.name === name);
  return group ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDocument(group.name, group.versions) } : undefined;
}

/** `/api`: the APIVersions of the core group. */
export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}
