// Prometheus naming rules over every metric Sentinel registers: a counter ends in _total, nothing else does.
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { InstrumentedEventStore } from '../../adapters/event-store/instrumented-event-store.js';
import { registerHorizonMetrics, type PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { prometheusAggregateStateMetrics } from '../../adapters/prometheus/aggregate-state-metrics.js';
import { prometheusCommandMetrics } from '../../adapters/prometheus/command-metrics.js';
import { prometheusLoginMetrics } from '../../adapters/prometheus/login-metrics.js';
import { createMetricsRegistry } from '../../adapters/prometheus/metrics.js';
import { ingestMetrics } from '../../telemetry/ingest-metrics.js';
import { prometheusProjectionMetrics } from '../../adapters/prometheus/projection-metrics.js';
import type { EventStore } from '../../domain/event-store.js';

/** Every metric the composition root registers, without a database: the collectors only run on a scrape. */
function sentinelRegistry(): Registry {
  const registry = createMetricsRegistry();
  prometheusCommandMetrics(registry);
  prometheusLoginMetrics(registry);
  prometheusProjectionMetrics(registry);
  prometheusAggregateStateMetrics(registry);
  ingestMetrics(registry);
  new InstrumentedEventStore({} as EventStore, registry);
  registerHorizonMetrics({} as PostgresEventStore, registry);
  return registry;
}

describe('metric names', () => {
  const metrics = sentinelRegistry()
    .getMetricsAsArray()
    // prom-client's typings declare a numeric enum; the objects carry the type's name.
    .map(({ name, type }) => ({ name, type: String(type) }));

  it('given the default collectors, then no gauge ends in _total', () => {
    expect(metrics.filter(({ type, name }) => type === 'gauge' && name.endsWith('_total')).map(({ name }) => name)).to.deep.equal([]);
  });

  it('given every registered metric, then each counter ends in _total and nothing else does', () => {
    expect(metrics.length).to.be.greaterThan(20);
    const wrong = metrics.filter(({ name, type }) => (type === 'counter') !== name.endsWith('_total')).map(({ name, type }) => `${name} (${type})`);
    expect(wrong).to.deep.equal([]);
  });

  it('given Sentinel\'s own metrics, then each has the sentinel_ prefix', () => {
    const own = metrics.filter(({ name }) => !/^(process|nodejs)_/.test(name));
    expect(own.length).to.be.greaterThan(5);
    expect(own.filter(({ name }) => !name.startsWith('sentinel_')).map(({ name }) => name)).to.deep.equal([]);
  });

  it('keeps the active handle, request and resource counts as gauges by type', () => {
    const names = metrics.map(({ name }) => name);
    expect(names).to.include.members(['nodejs_active_handles', 'nodejs_active_resources']);
  });
});
