// The agent's configuration: defaults, the structured result, and refusals that name the variable.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { AgentConfigError, loadAgentConfig, readToken } from '../../../agent/config.js';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadAgentConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(AgentConfigError);
    return (error as AgentConfigError).problems.map((p) => `${p.variable}: ${p.message}`);
  }
  throw new Error('expected the configuration to be refused');
}

describe('agent configuration', () => {
  it('given a cluster id and a token, then the defaults apply', () => {
    expect(loadAgentConfig({ AGENT_CLUSTER_ID: 'c1', AGENT_TOKEN: 'secret' })).to.deep.equal({
      agentId: `c1/${os.hostname()}`,
      nodeName: os.hostname(),
      clusterId: 'c1',
      push: { address: '127.0.0.1:50051', token: { value: 'secret' }, tls: { mode: 'plaintext' } },
      collectSeconds: 10,
      batchMaxSamples: 1000,
      batchMaxSeconds: 30,
      bufferSamples: 100_000,
      metrics: { host: '0.0.0.0', port: 9400 },
      procRoot: '/proc',
      sysRoot: '/sys',
      nvidiaSmi: 'nvidia-smi',
      commandTimeoutMs: 5000,
      logLevel: 'info',
    });
  });

  it('given AGENT_PUSH=off and AGENT_METRICS_PORT=0, then there is no push and no /metrics, and no token is needed', () => {
    const config = loadAgentConfig({ AGENT_CLUSTER_ID: 'c1', AGENT_PUSH: 'off', AGENT_METRICS_PORT: '0', AGENT_XID_LOG: '/var/log/kern.log' });
    expect(config.push).to.equal(undefined);
    expect(config.metrics).to.equal(undefined);
    expect(config.xidLog).to.equal('/var/log/kern.log');
  });

  it('given a CA file or AGENT_TLS, then the push uses TLS', () => {
    expect(loadAgentConfig({ AGENT_CLUSTER_ID: 'c1', AGENT_TOKEN: 't', AGENT_TLS_CA: '/etc/ca.pem' }).push?.tls).to.deep.equal({ mode: 'ca-file', caFile: '/etc/ca.pem' });
    expect(loadAgentConfig({ AGENT_CLUSTER_ID: 'c1', AGENT_TOKEN: 't', AGENT_TLS: 'true' }).push?.tls).to.deep.equal({ mode: 'system-roots' });
  });

  it('given bad values, then each is refused with the variable named and the token never shown', () => {
    expect(problemsOf({ AGENT_COLLECT_SECONDS: '1e3', AGENT_SENTINEL_ADDRESS: 'sentinel', AGENT_TOKEN: 'secret', AGENT_TOKEN_FILE: '/t' })).to.deep.equal([
      'AGENT_SENTINEL_ADDRESS: host:port of Sentinel\'s telemetry gRPC service, e.g. sentinel.sentinel.svc:50051 (got "sentinel")',
      'AGENT_CLUSTER_ID: the id of the cluster this node belongs to (required) (got nothing)',
      'AGENT_COLLECT_SECONDS: an integer from 1 to 3600 (got "1e3")',
    ]);
    expect(problemsOf({ AGENT_CLUSTER_ID: 'c1', AGENT_TOKEN: 'secret', AGENT_TOKEN_FILE: '/t' })).to.deep.equal([
      'AGENT_TOKEN_FILE: set AGENT_TOKEN or AGENT_TOKEN_FILE, not both (got "/t")',
    ]);
    expect(problemsOf({ AGENT_CLUSTER_ID: 'c1' })).to.deep.equal([
      'AGENT_TOKEN: a service-account token is required to push: set AGENT_TOKEN or AGENT_TOKEN_FILE, or AGENT_PUSH=off (got nothing)',
    ]);
  });

  it('given a token file, then it is read trimmed each time, and an empty or missing one names AGENT_TOKEN_FILE', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'agent-token-'));
    try {
      const file = path.join(dir, 'token');
      await writeFile(file, 'first\n');
      expect(await readToken({ file })).to.equal('first');
      await writeFile(file, 'rotated\n');
      expect(await readToken({ file })).to.equal('rotated');
      await writeFile(file, '\n');
      const empty = await readToken({ file }).catch((error: unknown) => error);
      expect((empty as AgentConfigError).problems[0]?.variable).to.equal('AGENT_TOKEN_FILE');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
