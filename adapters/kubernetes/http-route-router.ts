// Canary weights as Gateway API HTTPRoute backend weights: the route's rules that send traffic to the stable Service get
// the canary Service next to it, each with its share, by a read and a replace at the resourceVersion read.
import { isDeepStrictEqual } from 'node:util';
import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { BackendWeight, NamedRef } from '../../reactors/cluster-driver.js';

export const HTTP_ROUTE_API = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes' } as const;

/** How the driver makes one API call: with its retries, its tracing and its error mapping. */
export type Call = <T>(what: string, request: () => Promise<T>, options?: { conflicts?: 'retry' }) => Promise<T>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface BackendRef {
  name?: unknown;
  namespace?: unknown;
  kind?: unknown;
  group?: unknown;
  port?: unknown;
  weight?: unknown;
  [field: string]: unknown;
}

/** Whether the reference names the backend's Service (a reference without a namespace means the route's own). */
function namesService(ref: BackendRef, routeNamespace: string, backend: Pick<BackendWeight, 'service' | 'namespace'>): boolean {
  const kind = ref.kind ?? 'Service';
  const group = ref.group ?? '';
  const namespace = ref.namespace ?? routeNamespace;
  return kind === 'Service' && group === '' && namespace === backend.namespace && ref.name === backend.service;
}

/**
 * The route with `backends`' weights set in every rule that sends traffic to any of their Services; a rule that names
 * only some of them gets the others added, on the port of the first one it names. Nothing else changes.
 */
export function withWeights(route: Record<string, unknown>, backends: readonly BackendWeight[]): Record<string, unknown> {
  const metadata = isRecord(route.metadata) ? route.metadata : {};
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : '';
  const spec = isRecord(route.spec) ? route.spec : {};
  const rules = Array.isArray(spec.rules) ? spec.rules : [];
  const weighed = rules.map((rule: unknown) => {
    if (!isRecord(rule) || !Array.isArray(rule.backendRefs)) return rule;
    const refs = rule.backendRefs.filter(isRecord) as BackendRef[];
    const named = refs.find((ref) => backends.some((backend) => namesService(ref, namespace, backend)));
    if (!named) return rule;
    const next = refs.map((ref) => {
      const backend = backends.find((candidate) => namesService(ref, namespace, candidate));
      return backend ? { ...ref, weight: backend.weight } : ref;
    });
    for (const backend of backends) {
      if (next.some((ref) => namesService(ref, namespace, backend))) continue;
      const elsewhere = backend.namespace !== namespace ? { namespace: backend.namespace } : {};
      next.push({ name: backend.service, ...elsewhere, ...(named.port !== undefined ? { port: named.port } : {}), weight: backend.weight });
    }
    return { ...rule, backendRefs: next };
  });
  return { ...route, spec: { ...spec, rules: weighed } };
}

/** The weights of the route's references to a Service, rule by rule (undefined where a rule does not name it). */
export function weightsOf(route: Record<string, unknown>, service: Pick<BackendWeight, 'service' | 'namespace'>): (number | undefined)[] {
  const metadata = isRecord(route.metadata) ? route.metadata : {};
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : '';
  const spec = isRecord(route.spec) ? route.spec : {};
  const rules = Array.isArray(spec.rules) ? spec.rules : [];
  return rules.map((rule: unknown) => {
    const refs = isRecord(rule) && Array.isArray(rule.backendRefs) ? (rule.backendRefs.filter(isRecord) as BackendRef[]) : [];
    const ref = refs.find((candidate) => namesService(candidate, namespace, service));
    if (!ref) return undefined;
    // The Gateway API's default weight is 1.
    return typeof ref.weight === 'number' ? ref.weight : 1;
  });
}

export class HttpRouteRouter {
  constructor(
    private readonly custom: CustomObjectsApi,
    private readonly call: Call,
  ) {}

  async setWeights(route: NamedRef, backends: readonly BackendWeight[]): Promise<void> {
    const request = { ...HTTP_ROUTE_API, namespace: route.namespace, name: route.name };
    const shares = backends.map((backend) => `${backend.service}=${backend.weight}`).join(', ');
    // A replace at the resourceVersion read: a route someone changed in between answers 409, and is read again.
    await this.call(
      `set the weights of HTTPRoute ${route.namespace}/${route.name} to ${shares}`,
      async () => {
        const current = (await this.custom.getNamespacedCustomObject(request)) as Record<string, unknown>;
        const next = withWeights(current, backends);
        if (isDeepStrictEqual(next, current)) return;
        await this.custom.replaceNamespacedCustomObject({ ...request, body: next });
      },
      { conflicts: 'retry' },
    );
  }
}
