// The built-in inference analysis: which metrics the SLO turns on, their queries on vLLM names, and how readings
// of healthy, slow and erroring canaries are judged.
import { expect } from 'chai';
import { judgeMeasurement, queryArgs, renderQuery, type AnalysisMetric } from '../../domain/analysis/analysis.js';
import { GPU_MEMORY_HEADROOM_METRIC, INFERENCE_ANALYSIS_ARGS, inferenceAnalysisTemplate } from '../../domain/analysis/inference-templates.js';

const byName = (metrics: AnalysisMetric[], name: string) => metrics.find((m) => m.name === name)!;

describe('built-in inference analysis', () => {
  const template = inferenceAnalysisTemplate({ slo: { latencyP99Ms: 1500, ttftP99Ms: 300, successRate: 0.995 } });

  it('analyses latency and time to first token only when the SLO bounds them', () => {
    expect(template.metrics.map((m) => m.name)).to.deep.equal(['latency-p99', 'ttft-p99', 'error-rate', 'tokens-per-second', 'gpu-memory-headroom']);
    expect(inferenceAnalysisTemplate().metrics.map((m) => m.name)).to.deep.equal(['error-rate', 'tokens-per-second', 'gpu-memory-headroom']);
  });

  it('holds latency to the SLO in seconds, from the p99 of the vLLM histograms of the canary pods', () => {
    const latency = byName(template.metrics, 'latency-p99');
    expect(latency.query).to.equal(
      'histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{namespace="{{args.namespace}}",pod=~"{{args.canaryPods}}"}[2m])))',
    );
    expect(latency.successCondition).to.equal('result <= 1.5');
    expect(byName(template.metrics, 'ttft-p99').query).to.contain('vllm:time_to_first_token_seconds_bucket');
    expect(byName(template.metrics, 'ttft-p99').successCondition).to.equal('result <= 0.3');
  });

  it('counts aborted requests as errors, against the SLO success rate (0.99 when none is given)', () => {
    const errors = byName(template.metrics, 'error-rate');
    expect(errors.query).to.contain('vllm:request_success_total{namespace="{{args.namespace}}",pod=~"{{args.canaryPods}}",finished_reason=~"abort|error"}');
    expect(errors.query).to.contain('or vector(0)');
    expect(errors.successCondition).to.equal('result <= 0.005');
    expect(byName(inferenceAnalysisTemplate().metrics, 'error-rate').successCondition).to.equal('result <= 0.01');
  });

  it('compares the canary per-pod token rate with the stable side', () => {
    const tokens = byName(template.metrics, 'tokens-per-second');
    expect(tokens.query).to.contain('vllm:generation_tokens_total{namespace="{{args.namespace}}",pod=~"{{args.canaryPods}}"}');
    expect(tokens.baselineQuery).to.contain('pod=~"{{args.stablePods}}"');
    expect(judgeMeasurement(tokens, { value: 380, baseline: 400 }).outcome).to.equal('successful');
    expect(judgeMeasurement(tokens, { value: 120, baseline: 400 }).outcome).to.equal('failed');
    expect(judgeMeasurement(tokens, { value: 380, baseline: Number.NaN }).outcome).to.equal('inconclusive');
  });

  it('reads GPU memory headroom of the canary nodes from Sentinel telemetry', () => {
    const headroom = byName(template.metrics, 'gpu-memory-headroom');
    expect(headroom.provider).to.equal('telemetry');
    expect(headroom.query).to.equal(`${GPU_MEMORY_HEADROOM_METRIC}{cluster="{{args.clusterId}}",node=~"{{args.canaryNodes}}"}`);
    expect(judgeMeasurement(headroom, { value: [0.3, 0.04] }).outcome).to.equal('failed');
    expect(judgeMeasurement(headroom, { value: [0.3, 0.2] }).outcome).to.equal('successful');
  });

  it('judges healthy, slow and erroring canaries as designed, and no traffic as inconclusive', () => {
    const latency = byName(template.metrics, 'latency-p99');
    const errors = byName(template.metrics, 'error-rate');
    expect(judgeMeasurement(latency, { value: 0.99 }).outcome).to.equal('successful');
    expect(judgeMeasurement(latency, { value: 4.96 }).outcome).to.equal('failed');
    expect(judgeMeasurement(errors, { value: 0 }).outcome).to.equal('successful');
    expect(judgeMeasurement(errors, { value: 0.4 }).outcome).to.equal('failed');
    // No requests: 0 / 0 is NaN, and histogram_quantile of nothing is NaN.
    expect(judgeMeasurement(errors, { value: Number.NaN }).outcome).to.equal('inconclusive');
    expect(judgeMeasurement(latency, { value: undefined }).outcome).to.equal('inconclusive');
  });

  it('reads only the documented arguments, and renders with them', () => {
    const read = new Set(template.metrics.flatMap((m) => [m.query, m.baselineQuery ?? ''].flatMap(queryArgs)));
    expect([...read].sort()).to.deep.equal([...INFERENCE_ANALYSIS_ARGS].sort());
    const rendered = renderQuery(byName(template.metrics, 'latency-p99').query, { namespace: 'serving', canaryPods: 'llama-7d9f.*' });
    expect(rendered).to.contain('{namespace="serving",pod=~"llama-7d9f.*"}');
  });

  it('takes the interval, count, window, ratios and inconclusive tolerance from its options', () => {
    const custom = inferenceAnalysisTemplate({ interval: '30s', count: 10, rateWindow: '1m', minThroughputRatio: 0.8, minGpuMemoryHeadroomRatio: 0.1, inconclusiveLimit: 2 });
    const tokens = byName(custom.metrics, 'tokens-per-second');
    expect(tokens).to.deep.include({ interval: '30s', count: 10, inconclusiveLimit: 2, successCondition: 'result >= baseline * 0.8' });
    expect(tokens.query).to.contain('[1m]');
    expect(byName(custom.metrics, 'gpu-memory-headroom').successCondition).to.equal('min(result) >= 0.1');
  });
});
