// Built-in analysis for inference canaries: vLLM latency, time to first token, errors and throughput from
// Prometheus, and GPU memory headroom from Sentinel's own telemetry.
//
// Queries read the run's arguments (INFERENCE_ANALYSIS_ARGS): the namespace, regular expressions over the pod names
// of the canary and the stable side (Prometheus' Kubernetes discovery and the simulator label series `namespace` and
// `pod`), the cluster id and the canary's nodes as telemetry names them.
import { analysisTemplate, type AnalysisTemplate } from './analysis.js';

/** What each built-in query reads from the run. */
export const INFERENCE_ANALYSIS_ARGS = ['namespace', 'canaryPods', 'stablePods', 'clusterId', 'canaryNodes'] as const;

/**
 * The share of a GPU's framebuffer that is free, per GPU: DCGM_FI_DEV_FB_FREE / (DCGM_FI_DEV_FB_USED +
 * DCGM_FI_DEV_FB_FREE). Derived by the telemetry provider; a colon marks it as derived, as Prometheus names
 * recording rules.
 */
export const GPU_MEMORY_HEADROOM_METRIC = 'sentinel:gpu_memory_headroom_ratio';

/** vLLM's own metric names, as its OpenAI-compatible server exports them. */
export const VLLM_METRICS = {
  e2eLatency: 'vllm:e2e_request_latency_seconds',
  timeToFirstToken: 'vllm:time_to_first_token_seconds',
  requestsRunning: 'vllm:num_requests_running',
  requestSuccess: 'vllm:request_success_total',
  generationTokens: 'vllm:generation_tokens_total',
} as const;

/** The finished reasons of `vllm:request_success_total` that mean a request did not complete. */
const ERROR_REASONS = 'abort|error';

export interface InferenceAnalysisOptions {
  /** The workload's SLO; a latency metric is analysed only when its bound is given. */
  slo?: { latencyP99Ms?: number; ttftP99Ms?: number; successRate?: number };
  /** Between measurements; default "1m". */
  interval?: string;
  /** Measurements per metric; default 5. */
  count?: number;
  /** The range of each rate(); default "2m" (at least four scrapes at a 30s interval). */
  rateWindow?: string;
  /** Per-pod generation throughput the canary must keep, as a share of the stable side's; default 0.9. */
  minThroughputRatio?: number;
  /** The smallest share of GPU memory that must stay free on the canary's nodes; default 0.05. */
  minGpuMemoryHeadroomRatio?: number;
  /** How many inconclusive measurements (no traffic, missing series) a metric tolerates before it is inconclusive; default 0. */
  inconclusiveLimit?: number;
  /**
   * Whether GPU memory headroom (from Sentinel's telemetry) is analysed; default true. A workload without GPUs has no
   * framebuffer to read, and would only ever be inconclusive on it.
   */
  gpuMemoryHeadroom?: boolean;
}

/** The success rate the error metric holds the canary to when the SLO names none. */
const DEFAULT_SUCCESS_RATE = 0.99;

function selector(side: 'canaryPods' | 'stablePods', extra = ''): string {
  return `{namespace="{{args.namespace}}",pod=~"{{args.${side}}}"${extra}}`;
}

/** Seconds from milliseconds, without binary-fraction noise in the condition text. */
function seconds(ms: number): number {
  return Number((ms / 1000).toFixed(6));
}

function p99(histogram: string, window: string): string {
  return `histogram_quantile(0.99, sum by (le) (rate(${histogram}_bucket${selector('canaryPods')}[${window}])))`;
}

function throughput(side: 'canaryPods' | 'stablePods', window: string): string {
  return `avg(sum by (pod) (rate(${VLLM_METRICS.generationTokens}${selector(side)}[${window}])))`;
}

/**
 * The built-in inference template. Every query returns one series, so `result` is a number; a missing series or
 * NaN (no traffic: 0/0) is inconclusive, never a pass.
 */
export function inferenceAnalysisTemplate(options: InferenceAnalysisOptions = {}): AnalysisTemplate {
  const window = options.rateWindow ?? '2m';
  const common = {
    interval: options.interval ?? '1m',
    count: options.count ?? 5,
    failureLimit: 0,
    inconclusiveLimit: options.inconclusiveLimit ?? 0,
  };
  const slo = options.slo ?? {};
  const maxErrorRatio = Number((1 - (slo.successRate ?? DEFAULT_SUCCESS_RATE)).toFixed(6));
  const metrics = [
    ...(slo.latencyP99Ms === undefined
      ? []
      : [{ name: 'latency-p99', provider: 'prometheus', query: p99(VLLM_METRICS.e2eLatency, window), successCondition: `result <= ${seconds(slo.latencyP99Ms)}`, ...common }]),
    ...(slo.ttftP99Ms === undefined
      ? []
      : [{ name: 'ttft-p99', provider: 'prometheus', query: p99(VLLM_METRICS.timeToFirstToken, window), successCondition: `result <= ${seconds(slo.ttftP99Ms)}`, ...common }]),
    {
      name: 'error-rate',
      provider: 'prometheus',
      // `or vector(0)`: a server that never aborted has no abort series, which is a rate of 0, not missing data.
      query:
        `(sum(rate(${VLLM_METRICS.requestSuccess}${selector('canaryPods', `,finished_reason=~"${ERROR_REASONS}"`)}[${window}])) or vector(0))` +
        ` / sum(rate(${VLLM_METRICS.requestSuccess}${selector('canaryPods')}[${window}]))`,
      successCondition: `result <= ${maxErrorRatio}`,
      ...common,
    },
    {
      name: 'tokens-per-second',
      provider: 'prometheus',
      query: throughput('canaryPods', window),
      baselineQuery: throughput('stablePods', window),
      successCondition: `result >= baseline * ${options.minThroughputRatio ?? 0.9}`,
      ...common,
    },
    ...(options.gpuMemoryHeadroom === false
      ? []
      : [
          {
            name: 'gpu-memory-headroom',
            provider: 'telemetry',
            query: `${GPU_MEMORY_HEADROOM_METRIC}{cluster="{{args.clusterId}}",node=~"{{args.canaryNodes}}"}`,
            successCondition: `min(result) >= ${options.minGpuMemoryHeadroomRatio ?? 0.05}`,
            ...common,
          },
        ]),
  ];
  return analysisTemplate.parse({ name: 'inference', metrics });
}
