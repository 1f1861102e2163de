// The agent's /metrics served over HTTP: node_exporter and dcgm-exporter names, labels and values from the fixtures, and its own counters.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { pino } from 'pino';
import { defaultCollectors, startAgent, type RunningAgent } from '../../agent/agent.js';
import type { Collector } from '../../agent/collector.js';
import { loadAgentConfig } from '../../agent/config.js';
import { fakeNvidiaSmi, MIG_NODE, type FakeNvidiaSmi } from '../fixtures/agent/fake-nvidia-smi.js';
import { eventually } from '../support/eventually.js';

const HOST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/agent/host');

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format's sample lines, parsed (label values here hold no escaped quotes). */
function parseExposition(text: string): { series: Series[]; types: Map<string, string> } {
  const series: Series[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    series.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { series, types };
}

describe('agent /metrics', () => {
  let agent: RunningAgent;
  let fake: FakeNvidiaSmi;
  const failing: Collector = {
    name: 'flaky',
    collect: async () => {
      throw new Error('EACCES: permission denied, open /proc/flaky');
    },
  };

  before(async () => {
    fake = await fakeNvidiaSmi(MIG_NODE);
    const config = {
      ...loadAgentConfig({ AGENT_CLUSTER_ID: 'c1', AGENT_NODE_NAME: 'gpu-node-1', AGENT_PUSH: 'off', AGENT_PROC_ROOT: `${HOST}/proc`, AGENT_SYS_ROOT: `${HOST}/sys`, AGENT_NVIDIA_SMI: fake.command }),
      metrics: { host: '127.0.0.1', port: 0 },
    };
    agent = await startAgent({ config, logger: pino({ level: 'silent' }), collectors: [...defaultCollectors(config), failing] });
  });
  after(async () => {
    await agent?.stop();
    await fake?.remove();
  });

  const scrape = async () => {
    const response = await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`);
    expect(response.status).to.equal(200);
    return parseExposition(await response.text());
  };
  const find = (series: Series[], name: string, labels: Record<string, string> = {}) =>
    series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

  it('serves the host under node_exporter\'s names, labels and units', async () => {
    const firstRound = ['node_cpu_seconds_total', 'node_memory_MemTotal_bytes', 'node_disk_read_bytes_total', 'node_network_up', 'DCGM_FI_DEV_GPU_UTIL', 'sentinel_gpu_mig_instance_info'];
    const { series, types } = await eventually('every collector on /metrics', scrape, ({ series }) => firstRound.every((name) => find(series, name).length > 0), 10_000);
    expect(find(series, 'node_cpu_seconds_total', { cpu: '0', mode: 'user' }).map((s) => s.value)).to.deep.equal([100.38]);
    expect(types.get('node_cpu_seconds_total')).to.equal('counter');
    expect(find(series, 'node_memory_MemTotal_bytes').map((s) => s.value)).to.deep.equal([24683772 * 1024]);
    expect(types.get('node_memory_MemTotal_bytes')).to.equal('gauge');
    expect(find(series, 'node_disk_read_bytes_total', { device: 'vda' }).map((s) => s.value)).to.deep.equal([1955066 * 512]);
    expect(find(series, 'node_network_receive_bytes_total', { device: 'eth0' }).map((s) => s.value)).to.deep.equal([186518392]);
  });

  it('serves the GPUs under dcgm-exporter\'s names and labels, with each MIG instance', async () => {
    const { series, types } = await scrape();
    expect(find(series, 'DCGM_FI_DEV_GPU_UTIL', { gpu: '1' })).to.deep.equal([
      {
        name: 'DCGM_FI_DEV_GPU_UTIL',
        labels: { gpu: '1', UUID: 'GPU-6e2a1c4f-0b9e-2f7a-8d31-5c6f0e9a7b12', device: 'nvidia1', modelName: 'NVIDIA A100-SXM4-40GB', pci_bus_id: '00000000:0F:00.0', Hostname: 'gpu-node-1' },
        value: 87,
      },
    ]);
    expect(find(series, 'DCGM_FI_DEV_FB_USED', { gpu: '1' }).map((s) => s.value)).to.deep.equal([30512]);
    expect(find(series, 'DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', { gpu: '1' }).map((s) => s.value)).to.deep.equal([1]);
    expect(types.get('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL')).to.equal('counter');
    expect(types.get('DCGM_FI_DEV_GPU_TEMP')).to.equal('gauge');
    expect(find(series, 'sentinel_gpu_mig_instance_info', { gpu: '0' }).map((s) => [s.labels.GPU_I_PROFILE, s.labels.GPU_I_ID])).to.have.deep.members([
      ['3g.20gb', '1'],
      ['1g.5gb', '7'],
    ]);
    expect(find(series, 'sentinel_gpu_lost').map((s) => s.value)).to.deep.equal([0, 0, 0]);
  });

  it('serves the agent\'s own counters, a failing collector counted by reason while the others carry on', async () => {
    const { series } = await scrape();
    expect(find(series, 'sentinel_agent_collector_failures_total', { collector: 'flaky', reason: 'io' })[0]?.value).to.be.at.least(1);
    for (const name of ['sentinel_agent_buffered_samples', 'sentinel_agent_dropped_samples_total', 'sentinel_agent_batches_sent_total', 'sentinel_agent_batches_acknowledged_total', 'sentinel_agent_connected']) {
      expect(find(series, name), name).to.have.length(1);
    }
    expect(find(series, 'sentinel_agent_connected')[0]?.value).to.equal(0);
  });

  it('answers 404 for anything but GET /metrics', async () => {
    const response = await fetch(`http://127.0.0.1:${agent.metricsPort}/`);
    expect(response.status).to.equal(404);
  });
});
