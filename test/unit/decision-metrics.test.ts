// The policy judgement counters: one per judgement by verdict, one per policy result by type, mode and outcome.
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { prometheusDecisionMetrics } from '../../adapters/prometheus/command-metrics.js';

describe('policy decision metrics', () => {
  it('given a judgement with results, then the verdict is counted once and each result by type, mode and outcome, never by policy id', async () => {
    const registry = new Registry();
    const metrics = prometheusDecisionMetrics(registry);
    metrics.decided('ScaleDeployment', 'deny', [
      { type: 'quota', mode: 'enforce', outcome: 'fail' },
      { type: 'quota', mode: 'enforce', outcome: 'fail' },
      { type: 'cost_ceiling', mode: 'dry_run', outcome: 'pass' },
    ]);
    metrics.decided('ScaleDeployment', 'allow', []);
    const text = await registry.metrics();
    expect(text).to.include('sentinel_policy_decisions_total{command="ScaleDeployment",verdict="deny"} 1');
    expect(text).to.include('sentinel_policy_decisions_total{command="ScaleDeployment",verdict="allow"} 1');
    expect(text).to.include('sentinel_policy_results_total{type="quota",mode="enforce",outcome="fail"} 2');
    expect(text).to.include('sentinel_policy_results_total{type="cost_ceiling",mode="dry_run",outcome="pass"} 1');
  });
});
