// The observing half end to end: a real node agent pushes over gRPC into a running Sentinel (the telemetry role),
// and the query API shows the node, its GPUs' readings, the GPU fleet, the health facts and the drain plan an unfit
// GPU leads to. PGlite, and PostgreSQL when TEST_DATABASE_URL is set.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import type { Collector } from '../../agent/collector.js';
import { loadAgentConfig } from '../../agent/config.js';
import type { Sample } from '../../adapters/grpc/telemetry-proto.js';
import { eventually } from '../support/eventually.js';
import { backends, type TestApi } from '../support/sentinel-api.js';

/**
 * Two GPUs whose readings the test sets; GPU 1 reports XID 79 (fell off the bus) once `failing` is set, always with
 * the same time. That time is taken when the collector is made, never written out: the ingest refuses a sample older
 * than its retention, so a fixed date would turn into a refused batch a week after it was written.
 */
function fakeGpus(): Collector & { failing: boolean; utilisation: number } {
  const xidAt = Date.now();
  return {
    name: 'gpu',
    failing: false,
    utilisation: 40,
    async collect(): Promise<Sample[]> {
      const now = Date.now();
      return [0, 1].flatMap((gpu) => {
        const labels = { gpu: String(gpu), UUID: `GPU-test-${gpu}`, modelName: 'NVIDIA H100 80GB HBM3', device: `nvidia${gpu}` };
        const sample = (metric: string, value: number): Sample => ({ metric, labels, value, timestampUnixMs: now });
        return [
          sample('DCGM_FI_DEV_GPU_UTIL', this.utilisation + gpu),
          sample('DCGM_FI_DEV_FB_USED', 1000),
          sample('DCGM_FI_DEV_FB_FREE', 80_000),
          sample('DCGM_FI_DEV_GPU_TEMP', 60 + gpu),
          sample('DCGM_FI_DEV_POWER_USAGE', 300),
          ...(this.failing && gpu === 1 ? [{ ...sample('DCGM_FI_DEV_XID_ERRORS', 79), timestampUnixMs: xidAt }] : []),
        ];
      });
    },
  };
}

for (const backend of backends) {
  describe(`telemetry from a node agent to the query API (${backend.name})`, function () {
    this.timeout(120_000);
    let api: TestApi;
    let agent: RunningAgent | undefined;
    const clusterId = randomUUID();
    const gpus = fakeGpus();

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        this.skip();
      }
      api = await backend.start({ SENTINEL_ROLE: 'api,projector,telemetry', SENTINEL_NODE_CHECK_SECONDS: '1', SENTINEL_NODE_SILENT_SECONDS: '3' });
      agent = await agentOf('gpu-node-1', api.tokens.system, gpus);
    });

    /** An agent that collects and sends every second, with only the given GPU source. */
    const agentOf = (node: string, token: string, source: Collector) =>
      startAgent({
        config: loadAgentConfig({
          AGENT_SENTINEL_ADDRESS: `127.0.0.1:${api.sentinel.telemetryPort}`,
          AGENT_TOKEN: token,
          AGENT_CLUSTER_ID: clusterId,
          AGENT_NODE_NAME: node,
          AGENT_COLLECT_SECONDS: '1',
          AGENT_BATCH_MAX_SECONDS: '1',
          AGENT_METRICS_PORT: '0',
        }),
        logger: pino({ level: 'silent' }),
        collectors: [source],
        reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
      });
    after(async () => {
      await agent?.stop();
      await api?.stop();
    });

    const nodes = async () => (await api.request<{ items: Record<string, unknown>[] }>('get', '/nodes')).body.items;

    it('registers the node once it has pushed, and shows its GPUs’ latest readings and the fleet', async () => {
      const [node] = await eventually('the node is listed', nodes, (items) => items.length === 1, 20_000);
      expect(node).to.deep.include({ clusterId, name: 'gpu-node-1', status: 'reporting', unfit: [] });

      const shown = await eventually(
        'the node shows both GPUs',
        async () => (await api.request<{ gpuReadings: { gpu: string; sku: string; readings: Record<string, number> }[] }>('get', `/nodes/${node!['id'] as string}`)).body,
        (body) => body.gpuReadings.length === 2,
        10_000,
      );
      expect(shown.gpuReadings.map((gpu) => gpu.gpu)).to.deep.equal(['0', '1']);
      expect(shown.gpuReadings[1]!.readings).to.deep.include({ utilisationPct: 41, memoryUsedMiB: 1000, temperatureC: 61, powerW: 300 });
      expect(shown.gpuReadings[0]!.sku).to.equal('NVIDIA H100 80GB HBM3');

      const fleet = (await api.request<Record<string, unknown>>('get', '/fleet/gpus')).body as {
        total: { gpus: number; utilisationPct: number; memoryTotalMiB: number };
        byNode: { node: string; stale: boolean }[];
        bySku: { sku: string; gpus: number }[];
      };
      expect(fleet.total).to.deep.include({ gpus: 2, utilisationPct: 40.5, memoryTotalMiB: 162_000 });
      expect(fleet.byNode).to.have.length(1);
      expect(fleet.byNode[0]).to.deep.include({ node: 'gpu-node-1', stale: false });
      expect(fleet.bySku).to.deep.equal([{ sku: 'NVIDIA H100 80GB HBM3', ...fleet.total }]);
    });

    it('follows a change in the readings', async () => {
      gpus.utilisation = 90;
      await eventually(
        'the fleet shows the new utilisation',
        async () => (await api.request<{ total: { utilisationPct: number } }>('get', '/fleet/gpus')).body.total.utilisationPct,
        (value) => value === 90.5,
        10_000,
      );
    });

    it('records XID 79 once as a fact, marks the node unfit, and proposes one shadow drain plan from sentinel', async () => {
      gpus.failing = true;
      const [node] = await eventually('the node is unfit', nodes, (items) => (items[0]?.['unfit'] as unknown[] | undefined)?.length === 1, 20_000);
      expect((node!['unfit'] as { gpu: string; fact: string }[])[0]).to.deep.include({ gpu: 'GPU-test-1', fact: 'GpuXidErrorObserved' });

      const plans = await eventually(
        'a drain plan is proposed',
        async () => (await api.request<{ items: Record<string, unknown>[] }>('get', '/action-plans?source=sentinel')).body.items,
        (items) => items.length === 1,
        10_000,
      );
      expect(plans[0]).to.deep.include({ source: 'sentinel', shadow: true });
      // The XID keeps being reported with the same time: no second fact, no second plan.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const facts = (await api.stream(`node-${node!['id'] as string}`)).filter((event) => event.type === 'GpuXidErrorObserved');
      expect(facts).to.have.length(1);
      expect((await api.request<{ items: unknown[] }>('get', '/action-plans?source=sentinel')).body.items).to.have.length(1);
    });

    it('marks the node silent once its agent stops, and refuses an agent without a service-account token', async () => {
      await agent!.stop();
      agent = undefined;
      await eventually('the node is silent', nodes, (items) => items[0]?.['status'] === 'silent', 20_000);

      const viewer = await agentOf('gpu-node-2', api.tokens.viewer, fakeGpus());
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await viewer.stop();
      expect((await nodes()).map((item) => item['name'])).to.deep.equal(['gpu-node-1']);
    });
  });
}
