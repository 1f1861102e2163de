// Prometheus series for the read side: events applied, batch time, and how far each projection lags.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ProjectionMetrics } from '../../projections/runtime.js';

export function prometheusProjectionMetrics(registry: Registry): ProjectionMetrics {
  const applied = new Counter({
    name: 'sentinel_projection_events_applied_total',
    help: 'Events applied to read models, by projection',
    labelNames: ['projection'],
    registers: [registry],
  });
  const batchSeconds = new Histogram({
    name: 'sentinel_projection_batch_duration_seconds',
    help: 'Time to apply one batch and move its checkpoint, in one transaction',
    labelNames: ['projection'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const lagEvents = new Gauge({
    name: 'sentinel_projection_lag_events',
    help: 'Events the projection reads that it has not applied yet (counted up to 10000), as of the last status check',
    labelNames: ['projection'],
    registers: [registry],
  });
  const lagSeconds = new Gauge({
    name: 'sentinel_projection_lag_seconds',
    help: 'Age of the oldest event the projection has not applied yet; 0 when caught up',
    labelNames: ['projection'],
    registers: [registry],
  });
  return {
    applied(projection, events, seconds) {
      applied.inc({ projection }, events);
      batchSeconds.observe({ projection }, seconds);
    },
    lag(projection, events, seconds) {
      lagEvents.set({ projection }, events);
      lagSeconds.set({ projection }, seconds);
    },
  };
}
