// The node agent as the image runs it: the bundle `npm run build:agent` makes (dist/agent/main.mjs), on plain node
// with the options the DaemonSet gives it and no TypeScript loader, pushing over gRPC to a real ingest on PGlite and
// serving /metrics. A module that only works from the source tree (a file found relative to it, a TypeScript-only
// import) fails here, and so does an option this node does not know.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { agentNodeOptions } from '../../bench/agent-footprint.js';
import { startTelemetryIngest, type RunningTelemetryIngest } from '../../telemetry/ingest-server.js';
import { SampleStore } from '../../telemetry/sample-store.js';
import { fakeNvidiaSmi, type FakeNvidiaSmi } from '../fixtures/agent/fake-nvidia-smi.js';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/ports.js';

const TOKEN = 'agent-bundle-test-token';

describe('the bundled node agent (npm run build:agent) on plain node', function () {
  this.timeout(120_000);
  let db: Database;
  let store: SampleStore;
  let ingest: RunningTelemetryIngest;
  let nvidiaSmi: FakeNvidiaSmi;
  let agent: ChildProcess | undefined;
  let stderr = '';

  before(async () => {
    await promisify(execFile)('npm', ['run', '--silent', 'build:agent']);
    db = await openPglite();
    await migrateSentinel(db.knex);
    store = new SampleStore(db);
    ingest = await startTelemetryIngest({
      host: '127.0.0.1',
      port: 0,
      store,
      authenticate: async (token) => {
        if (token !== TOKEN) throw new Error('unknown token');
        return { id: 'agents', kind: 'service', name: 'node-agents', role: 'system' };
      },
      metrics: new Registry(),
      logger: pino({ level: 'silent' }),
    });
    nvidiaSmi = await fakeNvidiaSmi('case "$1" in mig) cat "$FIXTURES/mig-lgi.txt" ;; *) cat "$FIXTURES/query-mig.csv" ;; esac');
  });
  after(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGTERM');
      await once(agent, 'exit');
    }
    await ingest?.stop();
    await db?.close();
    await nvidiaSmi?.remove();
  });

  it('collects the host and the GPUs, pushes them to the ingest, serves them on /metrics, and stops on SIGTERM', async () => {
    const metricsPort = await freePort();
    agent = spawn(process.execPath, [...(await agentNodeOptions()), path.resolve('dist/agent/main.mjs')], {
      env: {
        PATH: process.env['PATH'] ?? '',
        AGENT_SENTINEL_ADDRESS: `127.0.0.1:${ingest.port}`,
        AGENT_TOKEN: TOKEN,
        AGENT_CLUSTER_ID: 'bundle',
        AGENT_NODE_NAME: 'gpu-node-1',
        AGENT_COLLECT_SECONDS: '1',
        AGENT_BATCH_MAX_SECONDS: '1',
        AGENT_NVIDIA_SMI: nvidiaSmi.command,
        AGENT_METRICS_HOST: '127.0.0.1',
        AGENT_METRICS_PORT: String(metricsPort),
        AGENT_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    agent.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

    const stored = await eventually(
      'GPU and host samples stored by the ingest',
      () => store.latestSamples({ clusterId: 'bundle', nodeName: 'gpu-node-1', since: new Date(Date.now() - 60_000) }),
      (samples) => samples.some((s) => s.metric === 'DCGM_FI_DEV_GPU_UTIL') && samples.some((s) => s.metric.startsWith('node_')),
      30_000,
    );
    expect(stored.length).to.be.greaterThan(0);
    const [agentRecord] = await store.agents();
    expect(agentRecord, stderr).to.deep.include({ agentId: 'bundle/gpu-node-1' });

    const exposition = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(exposition).to.match(/^DCGM_FI_DEV_GPU_UTIL\{/m);
    expect(exposition).to.match(/^node_cpu_seconds_total\{/m);

    agent.kill('SIGTERM');
    const [code] = (await once(agent, 'exit')) as [number | null];
    expect(code, stderr).to.equal(0);
  });
});
