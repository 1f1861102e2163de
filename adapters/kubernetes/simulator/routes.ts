// Maps a request path to what it names: a discovery document, or a resource with its namespace, name and subresource.
import { findResource, type ResourceDef } from './resources.js';

export interface ResourceTarget {
  type: 'resource';
  def: ResourceDef;
  /** Absent for cluster-scoped resources and for all-namespaces lists and watches. */
  namespace?: string;
  name?: string;
  subresource?: string;
}

export interface DiscoveryTarget {
  type: 'discovery';
  group?: string;
  version?: string;
  /** '/api', '/apis', '/version' and the health endpoints. */
  root?: 'api' | 'apis' | 'version' | 'health';
}

export type Target = ResourceTarget | DiscoveryTarget;

/** The target of a path, or undefined when the path names nothing the simulator serves (404). */
export function route(pathname: string): Target | undefined {
  let segments: string[];
  try {
    segments = pathname.split('/').filter((s) => s.length > 0).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const [root, ...rest] = segments;
  if (segments.length === 1 && root && ['healthz', 'livez', 'readyz'].includes(root)) return { type: 'discovery', root: 'health' };
  if (segments.length === 1 && root === 'version') return { type: 'discovery', root: 'version' };
  let group: string;
  let version: string | undefined;
  let path: string[];
  if (root === 'api') {
    if (rest.length === 0) return { type: 'discovery', root: 'api' };
    group = '';
    version = rest[0];
    path = rest.slice(1);
  } else if (root === 'apis') {
    if (rest.length === 0) return { type: 'discovery', root: 'apis' };
    group = rest[0]!;
    version = rest[1];
    if (version === undefined) return { type: 'discovery', group };
    path = rest.slice(2);
  } else {
    return undefined;
  }
  if (path.length === 0) return { type: 'discovery', group, version };

  if (path[0] === 'namespaces' && path.length >= 3) {
    const def = findResource(group, version!, path[2]!);
    if (def?.namespaced) {
      if (path.length > 5) return undefined;
      return { type: 'resource', def, namespace: path[1], ...(path[3] ? { name: path[3] } : {}), ...(path[4] ? { subresource: path[4] } : {}) };
    }
  }
  const def = findResource(group, version!, path[0]!);
  if (!def || path.length > 3) return undefined;
  // A namespaced resource outside a namespace can only be listed or watched across all namespaces.
  if (def.namespaced && path.length > 1) return undefined;
  return { type: 'resource', def, ...(path[1] ? { name: path[1] } : {}), ...(path[2] ? { subresource: path[2] } : {}) };
}
