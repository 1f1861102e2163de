// RED series of the HTTP server: requests by method, route pattern and status class, and their latency by route.
import type { RequestHandler } from 'express';
import { Counter, Histogram, type Registry } from 'prom-client';

/** The route label of a request no route matched (a 404, or a method the path does not have). */
export const UNMATCHED_ROUTE = 'unmatched';

/** Methods named as sent; anything else a client invents is counted as `other`, so the label stays bounded. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface HttpMetricsOptions {
  /** The matched route pattern of an answered request (`/api/v1/deployments/:id`), undefined when none matched. */
  routeOf(req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]): string | undefined;
}

/**
 * A middleware that counts every request when its connection is done with it: labelled by the route pattern that
 * answered, never the path sent (ids would make a series each), and by status class (`2xx` … `5xx`, or `aborted`
 * when the client went away before the answer was sent).
 */
export function httpMetrics(registry: Registry, options: HttpMetricsOptions): RequestHandler {
  const requests = counter(registry, {
    name: 'sentinel_http_requests_total',
    help: `HTTP requests by method, route pattern ("${UNMATCHED_ROUTE}" when no route matched) and status class (aborted: the client went away first)`,
    labelNames: ['method', 'route', 'status_class'],
  });
  const seconds = histogram(registry, {
    name: 'sentinel_http_request_duration_seconds',
    help: 'Time from the request to the end of its answer, by method and route pattern',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const method = KNOWN_METHODS.has(req.method) ? req.method : 'other';
      const route = options.routeOf(req, res) ?? UNMATCHED_ROUTE;
      const statusClass = res.writableFinished ? `${Math.floor(res.statusCode / 100)}xx` : 'aborted';
      requests.inc({ method, route, status_class: statusClass });
      seconds.observe({ method, route }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  };
}

/** The registry's counter of that name when an app on the same registry made it already, else a new one. */
function counter<L extends string>(registry: Registry, spec: { name: string; help: string; labelNames: L[] }): Counter<L> {
  return (registry.getSingleMetric(spec.name) as Counter<L> | undefined) ?? new Counter({ ...spec, registers: [registry] });
}

function histogram<L extends string>(registry: Registry, spec: { name: string; help: string; labelNames: L[]; buckets: number[] }): Histogram<L> {
  return (registry.getSingleMetric(spec.name) as Histogram<L> | undefined) ?? new Histogram({ ...spec, registers: [registry] });
}
