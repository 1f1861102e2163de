// The Prometheus registry a Sentinel process exports on /metrics.
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsRegistryOptions {
  /** How often the event loop's delay is sampled for nodejs_eventloop_lag_*, in ms (prom-client's default: 10). */
  eventLoopMonitoringPrecision?: number;
}

export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, ...options });
  // prom-client exports nodejs_active_handles_total, nodejs_active_requests_total and nodejs_active_resources_total
  // as gauges, and a gauge must not end in _total (`promtool check metrics` refuses them). The same counts stay in
  // nodejs_active_handles, nodejs_active_requests and nodejs_active_resources, by type: their sum is the total.
  for (const { name } of registry.getMetricsAsArray()) {
    if (name.endsWith('_total') && registry.getSingleMetric(name) instanceof Gauge) registry.removeSingleMetric(name);
  }
  return registry;
}
