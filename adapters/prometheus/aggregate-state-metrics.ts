// Prometheus series for aggregate state: where each load started (memory, a snapshot, the stream's start), how
// many events it read, and what became of snapshots.
import { Counter, type Registry } from 'prom-client';
import type { AggregateStateMetrics } from '../../commands/aggregate-cache.js';

export function prometheusAggregateStateMetrics(registry: Registry): AggregateStateMetrics {
  const loads = new Counter({
    name: 'sentinel_aggregate_loads_total',
    help: 'Aggregate loads by category and where they started: cache (state kept in memory), snapshot, stream (its first event)',
    labelNames: ['category', 'from'],
    registers: [registry],
  });
  const events = new Counter({
    name: 'sentinel_aggregate_load_events_total',
    help: 'Events read and folded by aggregate loads, by category',
    labelNames: ['category'],
    registers: [registry],
  });
  const snapshots = new Counter({
    name: 'sentinel_aggregate_snapshots_total',
    help: 'Aggregate snapshots by category and outcome: written, write_failed, read_failed, other_version, corrupt, truncated_stream (the last four ignored)',
    labelNames: ['category', 'outcome'],
    registers: [registry],
  });
  return {
    loaded(category, from, eventsRead) {
      loads.inc({ category, from });
      if (eventsRead > 0) events.inc({ category }, eventsRead);
    },
    snapshot(category, outcome) {
      snapshots.inc({ category, outcome });
    },
  };
}
