// infra/prometheus and infra/grafana checked by a real Prometheus: promtool on the config, the rules and their unit
// tests, then every dashboard query run through /api/v1/query of a Prometheus scraping a running Sentinel and a node
// agent pushing to it (the agent reads fixture /proc and /sys trees and a fake nvidia-smi of a node with MIG).
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { parse } from 'yaml';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { loadAgentConfig } from '../../agent/config.js';
import { telemetryClient } from '../../adapters/grpc/telemetry-proto.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { fakeNvidiaSmi, MIG_NODE, type FakeNvidiaSmi } from '../fixtures/agent/fake-nvidia-smi.js';
import { eventually } from '../support/eventually.js';
import { PROMETHEUS_SKIP_REASON, promtool, startPrometheus, type RunningPrometheus } from '../support/prometheus.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

const PROMETHEUS_DIR = path.resolve('infra/prometheus');
const DASHBOARD_DIR = path.resolve('infra/grafana/dashboards');
const RULE_FILES = readdirSync(path.join(PROMETHEUS_DIR, 'rules')).map((name) => path.join(PROMETHEUS_DIR, 'rules', name));
const RULE_TESTS = readdirSync(path.join(PROMETHEUS_DIR, 'tests')).map((name) => path.join('tests', name));
const AGENT_HOST = path.resolve('test/fixtures/agent/host');

/** What Grafana puts in place of its variables before a query reaches Prometheus. */
const GRAFANA_VARIABLES: Record<string, string> = { __rate_interval: '1m', __range: '1h', role: '.*', Hostname: '.*' };

/**
 * Metrics, Sentinel's or the agent's, that have series only once something happened which the running Sentinel and
 * agent below are not made to do: a query over them must parse and run, and need not return data.
 */
const EVENT_DRIVEN: Record<string, string> = {
  sentinel_rollouts_total: 'a canary or blue/green rollout ended',
  sentinel_rollout_duration_seconds: 'a canary or blue/green rollout ended',
  sentinel_timer_lateness_seconds: 'a durable timer fired (the plans here expire after ten minutes)',
};
const EVENT_DRIVEN_METRIC = new RegExp(`\\b(${Object.keys(EVENT_DRIVEN).join('|')})(_bucket|_count|_sum)?\\b`);

interface Target {
  dashboard: string;
  panel: string;
  expr: string;
}

interface Dashboard {
  uid: string;
  title: string;
  panels: { title: string; datasource?: { uid?: string }; targets?: { refId: string; expr: string; datasource?: { uid?: string } }[] }[];
}

function dashboards(): [string, Dashboard][] {
  return readdirSync(DASHBOARD_DIR)
    .filter((name) => name.endsWith('.json'))
    .map((name) => [name, JSON.parse(readFileSync(path.join(DASHBOARD_DIR, name), 'utf8')) as Dashboard]);
}

function targets(): Target[] {
  return dashboards().flatMap(([file, dashboard]) =>
    dashboard.panels.flatMap((panel) => (panel.targets ?? []).map(({ expr }) => ({ dashboard: file, panel: panel.title, expr }))),
  );
}

function withVariables(expr: string): string {
  return expr.replace(/\$(\w+)/g, (whole, name: string) => GRAFANA_VARIABLES[name] ?? whole);
}

interface QueryAnswer {
  status: string;
  error?: string;
  data?: { resultType: string; result: { value?: [number, string] }[] };
}

async function query(prometheus: RunningPrometheus, promql: string): Promise<QueryAnswer> {
  const response = await fetch(new URL('api/v1/query', prometheus.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ query: promql }),
  });
  return (await response.json()) as QueryAnswer;
}

describe('infra: Prometheus rules and Grafana dashboards', function () {
  this.timeout(60_000);

  before(function () {
    if (PROMETHEUS_SKIP_REASON) {
      console.log(`SKIP: ${PROMETHEUS_SKIP_REASON}`);
      this.skip();
    }
  });

  it('promtool check config accepts the scrape config', () => {
    const result = promtool(['check', 'config', 'prometheus.yml'], PROMETHEUS_DIR);
    expect(result.code, result.output).to.equal(0);
  });

  it('promtool check rules accepts every rule file', () => {
    const result = promtool(['check', 'rules', ...RULE_FILES]);
    expect(result.code, result.output).to.equal(0);
  });

  it('promtool test rules passes every rule unit test', () => {
    expect(RULE_TESTS).to.have.length.above(0);
    const result = promtool(['test', 'rules', ...RULE_TESTS], PROMETHEUS_DIR);
    expect(result.code, result.output).to.equal(0);
  });

  it('every dashboard has its own uid and queries the provisioned Prometheus datasource', () => {
    const found = dashboards();
    expect(found.map(([, d]) => d.uid)).to.have.members([...new Set(found.map(([, d]) => d.uid))]);
    for (const [file, dashboard] of found) {
      for (const panel of dashboard.panels) {
        expect(panel.datasource?.uid, `${file}: ${panel.title}`).to.equal('prometheus');
        expect(panel.targets, `${file}: ${panel.title}`).to.have.length.above(0);
        for (const target of panel.targets ?? []) expect(target.datasource?.uid, `${file}: ${panel.title} ${target.refId}`).to.equal('prometheus');
      }
    }
  });

  describe('against a Prometheus scraping a running Sentinel and a node agent', () => {
    let api: TestApi | undefined;
    let agent: RunningAgent | undefined;
    let nvidiaSmi: FakeNvidiaSmi | undefined;
    let kernelLogDir: string | undefined;
    let prometheus: RunningPrometheus | undefined;

    const submitPlan = () =>
      api!.request('post', '/action-plans', {
        as: 'operator',
        body: { reason: 'infra test', actions: [{ kind: 'restart', deploymentId: randomUUID() }], ttlSeconds: 600 },
      });

    /** A telemetry push without credentials: refused, so that a gRPC call ends (the agents' streams stay open). */
    const refusedPush = async () => {
      const client = telemetryClient(`127.0.0.1:${api!.sentinel.telemetryPort!}`);
      try {
        const call = client.push(new grpc.Metadata());
        call.on('error', () => undefined);
        call.on('data', () => undefined);
        const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
        expect(status.code).to.equal(grpc.status.UNAUTHENTICATED);
      } finally {
        client.close();
      }
    };

    before(async function () {
      if (PROMETHEUS_SKIP_REASON) return this.skip();
      // Every role, so that the telemetry ingest (fed by the simulated agents) and the reactors export too.
      api = await startTestApi(undefined, { SENTINEL_ROLE: 'all' });
      // A policy in force over the namespace of the deployment below, so that its judgement has a result per policy.
      const policy = await api.request('post', '/policies', {
        body: { name: 'infra-test-quota', mode: 'enforce', type: 'quota', selector: { namespaces: ['infra-test'] }, parameters: { limits: { replicas: 100 } } },
      });
      expect(policy.status, JSON.stringify(policy.body)).to.equal(201);
      await submitPlan();
      // A node agent as the DaemonSet runs it (its collectors, its /metrics, pushing to the telemetry ingest), on
      // recorded host files, a fake nvidia-smi of GPUs, one split into MIG instances, and a kernel log that gets
      // XID lines once the agent follows it (it starts at the log's end, as after a restart).
      nvidiaSmi = await fakeNvidiaSmi(MIG_NODE);
      kernelLogDir = await mkdtemp(path.join(tmpdir(), 'sentinel-infra-kern-'));
      const kernelLog = path.join(kernelLogDir, 'kern.log');
      await writeFile(kernelLog, '');
      agent = await startAgent({
        config: {
          ...loadAgentConfig({
            AGENT_SENTINEL_ADDRESS: `127.0.0.1:${api.sentinel.telemetryPort!}`,
            AGENT_TOKEN: api.tokens.system,
            AGENT_CLUSTER_ID: randomUUID(),
            AGENT_NODE_NAME: 'infra-gpu-node',
            AGENT_COLLECT_SECONDS: '1',
            AGENT_BATCH_MAX_SECONDS: '1',
            AGENT_PROC_ROOT: `${AGENT_HOST}/proc`,
            AGENT_SYS_ROOT: `${AGENT_HOST}/sys`,
            AGENT_NVIDIA_SMI: nvidiaSmi.command,
            AGENT_XID_LOG: kernelLog,
          }),
          metrics: { host: '127.0.0.1', port: 0 },
        },
        logger: pino({ level: 'silent' }),
      });
      // The agent takes the log's end at its first read, which nothing outside it shows: a line written before that
      // read is old news to it. So a line is written at each look until the agent reports one.
      await eventually(
        'an XID line written after the agent began following the kernel log, on its /metrics',
        async () => {
          await appendFile(kernelLog, 'Dec  7 05:00:00 infra-gpu-node kernel: NVRM: Xid (PCI:0000:0f:00): 13, Graphics Exception: ESR 0x50\n');
          return (await fetch(`http://127.0.0.1:${agent!.metricsPort!}/metrics`)).text();
        },
        (text) => text.includes('sentinel_gpu_xid_errors_total{'),
        10_000,
      );
      const sentinel = new URL(api.url).host;
      const config = parse(readFileSync(path.join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as {
        global: Record<string, unknown>;
        rule_files: string[];
        scrape_configs: { job_name: string; static_configs: unknown[] }[];
      };
      config.global.scrape_interval = '1s';
      config.global.evaluation_interval = '1s';
      config.rule_files = config.rule_files.map((file) => path.join(PROMETHEUS_DIR, file));
      const targets: Record<string, { targets: string[]; labels?: Record<string, string> }> = {
        sentinel: { targets: [sentinel], labels: { role: 'all' } },
        'sentinel-agent': { targets: [`127.0.0.1:${agent.metricsPort!}`] },
      };
      for (const job of config.scrape_configs) {
        const target = targets[job.job_name];
        if (!target) throw new Error(`infra/prometheus/prometheus.yml has a job this test does not know: ${job.job_name}`);
        job.static_configs = [target];
      }
      prometheus = await startPrometheus(config);
      await eventually('two scrapes of Sentinel', () => query(prometheus!, 'count_over_time(up{job="sentinel"}[1m]) >= 2'), (a) => (a.data?.result.length ?? 0) > 0, 20_000);
      // Activity after the first scrapes, so that rates over it are above 0; the projection status sets lag gauges.
      await submitPlan();
      const workload = await api.request('post', '/workloads', {
        body: { name: 'infra-test', namespace: 'infra-test', type: 'inference', image: 'registry.example/infra:1', resources: { cpu: '100m', memory: '128Mi' } },
      });
      expect(workload.status, JSON.stringify(workload.body)).to.equal(201);
      const deployment = await api.request('post', '/deployments', {
        body: { workloadId: (workload.body as { id: string }).id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 },
      });
      expect(deployment.status, JSON.stringify(deployment.body)).to.equal(202);
      expect((await api.request('get', '/projections', { as: 'viewer' })).status).to.equal(200);
      await refusedPush();
      // A rate needs two scrapes of a series: wait for them after the last series the activity above creates.
      const settled = [
        'sentinel:plan_latency_slow:ratio_rate5m >= 0',
        'count(sentinel_projection_lag_seconds) > 0',
        'count_over_time(sentinel_commands_total{command=~".*Workload.*"}[1m]) >= 2',
        'count_over_time(sentinel_grpc_server_handled_total[1m]) >= 2',
        'count_over_time(sentinel_policy_results_total[1m]) >= 2',
        // The reactor runtime samples lag every 10 s, the first time 10 s after it started.
        'count(sentinel_reactor_lag_seconds) > 0',
        // The agent scraped twice after its GPUs were collected, and its batches stored by the ingest.
        'count_over_time(DCGM_FI_DEV_GPU_UTIL[1m]) >= 2',
        'count_over_time(sentinel_gpu_xid_errors_total[1m]) >= 2',
        'count_over_time(sentinel_agent_batches_acknowledged_total[1m]) >= 2',
      ].join(' and on() ');
      await eventually(
        'the activity scraped twice and the plan latency recording rules evaluated over it',
        () => query(prometheus!, settled),
        (a) => (a.data?.result.length ?? 0) > 0,
        30_000,
      );
    });

    after(async () => {
      await prometheus?.stop();
      await agent?.stop();
      await nvidiaSmi?.remove();
      if (kernelLogDir) await rm(kernelLogDir, { recursive: true, force: true });
      await api?.stop();
    });

    it('every dashboard query parses and returns data, but those over series only an event not made here creates', async () => {
      const problems: string[] = [];
      for (const target of targets()) {
        const promql = withVariables(target.expr);
        const answer = await query(prometheus!, promql);
        const where = `${target.dashboard} "${target.panel}": ${promql}`;
        if (answer.status !== 'success') problems.push(`${where}: ${answer.error}`);
        else if (!EVENT_DRIVEN_METRIC.test(promql) && answer.data!.result.length === 0) problems.push(`${where}: no data`);
      }
      expect(problems, `${problems.join('\n')}\n${prometheus!.log()}`).to.deep.equal([]);
    });

    it('every rule loads and evaluates without error', async () => {
      const response = await fetch(new URL('api/v1/rules', prometheus!.url));
      const body = (await response.json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
      const rules = body.data.groups.flatMap((group) => group.rules);
      expect(rules).to.have.length.above(0);
      const unhealthy = rules.filter((rule) => rule.health === 'err').map((rule) => `${rule.name}: ${rule.lastError}`);
      expect(unhealthy).to.deep.equal([]);
    });
  });
});
