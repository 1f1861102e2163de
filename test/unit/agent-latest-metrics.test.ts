// The agent's /metrics registry: each collector's latest samples, rebuilt per collector as the collectors report.
import { expect } from 'chai';
import { Gauge, Registry } from 'prom-client';
import type { Sample } from '../../agent/collector.js';
import { AgentMetrics, agentRegistry } from '../../agent/metrics.js';

const sample = (metric: string, labels: Record<string, string>, value: number): Sample => ({ metric, labels, value, timestampUnixMs: 1_765_000_000_000 });

async function values(registry: Registry, name: string): Promise<{ labels: Record<string, string | number | undefined>; value: number }[] | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  return (await metric.get()).values.map(({ labels, value }) => ({ labels: { ...labels }, value }));
}

describe('agent metrics: the latest samples of each collector', () => {
  let registry: Registry;
  let metrics: AgentMetrics;

  beforeEach(() => {
    registry = new Registry();
    metrics = new AgentMetrics(registry);
  });

  it('given two collectors reporting one metric, when one fails, then only its series go', async () => {
    metrics.setLatest('gpu', [sample('sentinel_gpu_lost', { pci_bus_id: 'a' }, 0)]);
    metrics.setLatest('xid', [sample('sentinel_gpu_lost', { pci_bus_id: 'b' }, 1)]);
    expect(await values(registry, 'sentinel_gpu_lost')).to.have.deep.members([
      { labels: { pci_bus_id: 'a' }, value: 0 },
      { labels: { pci_bus_id: 'b' }, value: 1 },
    ]);

    metrics.setLatest('xid', []);

    expect(await values(registry, 'sentinel_gpu_lost')).to.deep.equal([{ labels: { pci_bus_id: 'a' }, value: 0 }]);
  });

  it('given a metric no collector reports any more, then it leaves the registry', async () => {
    metrics.setLatest('cpu', [sample('node_procs_running', {}, 3), sample('node_procs_blocked', {}, 1)]);

    metrics.setLatest('cpu', [sample('node_procs_running', {}, 4)]);

    expect(await values(registry, 'node_procs_running')).to.deep.equal([{ labels: {}, value: 4 }]);
    expect(await values(registry, 'node_procs_blocked')).to.equal(undefined);
  });

  it('given a sample with a label the metric did not have, then the metric is registered again with it', async () => {
    metrics.setLatest('gpu', [sample('DCGM_FI_DEV_GPU_UTIL', { gpu: '0' }, 40)]);

    metrics.setLatest('gpu', [sample('DCGM_FI_DEV_GPU_UTIL', { gpu: '0', GPU_I_ID: '7' }, 41)]);

    expect(await values(registry, 'DCGM_FI_DEV_GPU_UTIL')).to.deep.equal([{ labels: { gpu: '0', GPU_I_ID: '7' }, value: 41 }]);
  });

  it('given one collector reporting, then the metrics only other collectors report are left as they are', () => {
    metrics.setLatest('cpu', [sample('node_procs_running', {}, 3)]);
    metrics.setLatest('memory', [sample('node_memory_MemTotal_bytes', {}, 1024)]);
    const untouched = registry.getSingleMetric('node_procs_running') as Gauge;
    let resets = 0;
    const reset = untouched.reset.bind(untouched);
    untouched.reset = () => {
      resets += 1;
      reset();
    };

    metrics.setLatest('memory', [sample('node_memory_MemTotal_bytes', {}, 2048)]);

    expect(resets).to.equal(0);
  });
});

describe('agent metrics: the registry the agent serves', () => {
  it('has the process metrics, the event loop lag among them, and none of prom-client\'s gauges named as counters', async () => {
    const registry = agentRegistry();
    const names = registry.getMetricsAsArray().map((metric) => metric.name);

    expect(names).to.include.members(['process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_active_handles']);
    expect(names.filter((name) => name.endsWith('_total') && registry.getSingleMetric(name) instanceof Gauge)).to.deep.equal([]);
  });
});
