// Per-pod inference metrics in Prometheus' text format, under vLLM's names, so that rollout analysis has something to
// read: healthy pods pass it, and a `slow` or `erroring` pod fails it on purpose.
//
// A pod's behaviour is its `sentinel.dev/sim-behaviour` label, else its image tag (`vllm:0.6-slow`, `model:erroring`),
// else healthy. Traffic is a fixed number of requests that arrive each second from the second the pod turned Ready
// (the first at that second), so counters grow with time and every Ready pod has data from its first scrape. A pod
// that is not Ready gets no traffic (a Service sends none to it) and shows zeros; a pod that is not Running serves no
// metrics. Latencies follow a uniform distribution per behaviour, so the histograms' quantiles are known exactly.
import { condition, isReady, isTerminal } from './pods.js';
import type { Pod } from './types.js';

export const BEHAVIOUR_LABEL = 'sentinel.dev/sim-behaviour';
export const BEHAVIOURS = ['healthy', 'slow', 'erroring', 'never-ready'] as const;
export type SimBehaviour = (typeof BEHAVIOURS)[number];

interface Uniform {
  min: number;
  max: number;
}

interface BehaviourModel {
  requestsPerSecond: number;
  e2eLatencySeconds: Uniform;
  timeToFirstTokenSeconds: Uniform;
  /** The share of finished requests by vLLM's finished_reason. */
  finished: { stop: number; length: number; abort: number };
  tokensPerRequest: number;
}

/**
 * What each behaviour looks like, as histogram_quantile(0.99) reads the buckets. Healthy: latency 0.99 s, time to first
 * token 0.25 s, no aborts, 400 tokens/s. Slow: 4.96 s, 2.46 s, 125 tokens/s. Erroring: healthy latency, 40% of
 * requests aborted. A never-ready pod behaves as a healthy one whenever it is Ready.
 */
const MODELS: Record<Exclude<SimBehaviour, 'never-ready'>, BehaviourModel> = {
  healthy: {
    requestsPerSecond: 5,
    e2eLatencySeconds: { min: 0.2, max: 0.9 },
    timeToFirstTokenSeconds: { min: 0.02, max: 0.15 },
    finished: { stop: 0.9, length: 0.1, abort: 0 },
    tokensPerRequest: 80,
  },
  slow: {
    requestsPerSecond: 5,
    e2eLatencySeconds: { min: 1.5, max: 4.5 },
    timeToFirstTokenSeconds: { min: 0.3, max: 1.4 },
    finished: { stop: 0.9, length: 0.1, abort: 0 },
    tokensPerRequest: 25,
  },
  erroring: {
    requestsPerSecond: 5,
    e2eLatencySeconds: { min: 0.2, max: 0.9 },
    timeToFirstTokenSeconds: { min: 0.02, max: 0.15 },
    finished: { stop: 0.5, length: 0.1, abort: 0.4 },
    tokensPerRequest: 48,
  },
};

/** vLLM's own bucket bounds for these histograms. */
const E2E_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0];
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

function isBehaviour(text: string | undefined): text is SimBehaviour {
  return (BEHAVIOURS as readonly string[]).includes(text ?? '');
}

/** The tag of an image reference (`registry:5000/vllm:0.6-slow` → `0.6-slow`), ignoring a digest; '' when untagged. */
function imageTag(image: string): string {
  const name = image.split('@')[0]!;
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(colon + 1) : '';
}

/** The behaviour an image tag asks for: the tag itself, or its last `-` part (`0.6-slow`), when it names one. */
function tagBehaviour(image: string): SimBehaviour | undefined {
  const tag = imageTag(image);
  const candidates = [tag, ...BEHAVIOURS.filter((b) => tag.endsWith(`-${b}`))];
  return candidates.find(isBehaviour);
}

/** The pod's behaviour: its label first (a label that names no behaviour is ignored), then any image's tag. */
export function podBehaviour(pod: Pod): SimBehaviour {
  const label = pod.metadata.labels?.[BEHAVIOUR_LABEL];
  if (isBehaviour(label)) return label;
  for (const container of pod.spec.containers ?? []) {
    const fromTag = tagBehaviour(container.image ?? '');
    if (fromTag) return fromTag;
  }
  return 'healthy';
}

// ---- series -------------------------------------------------------------------------------------------

type MetricType = 'counter' | 'gauge' | 'histogram';

interface Family {
  name: string;
  type: MetricType;
  help: string;
}

export interface Series {
  /** The sample's name: the family's, or with `_bucket`, `_sum`, `_count` for a histogram. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

const FAMILIES: readonly Family[] = [
  { name: 'vllm:num_requests_running', type: 'gauge', help: 'Number of requests currently running on GPU.' },
  { name: 'vllm:e2e_request_latency_seconds', type: 'histogram', help: 'Histogram of end to end request latency in seconds.' },
  { name: 'vllm:time_to_first_token_seconds', type: 'histogram', help: 'Histogram of time to first token in seconds.' },
  { name: 'vllm:request_success_total', type: 'counter', help: 'Count of successfully processed requests.' },
  { name: 'vllm:generation_tokens_total', type: 'counter', help: 'Number of generation tokens processed.' },
];

/** The share of a uniform distribution at or below `x`. */
function cdf(x: number, { min, max }: Uniform): number {
  return Math.min(1, Math.max(0, (x - min) / (max - min)));
}

function histogram(name: string, labels: Record<string, string>, requests: number, bounds: readonly number[], latency: Uniform): Series[] {
  const buckets = bounds.map((le) => ({ name: `${name}_bucket`, labels: { ...labels, le: String(le) }, value: requests * cdf(le, latency) }));
  return [
    ...buckets,
    { name: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: requests },
    { name: `${name}_sum`, labels, value: requests * ((latency.min + latency.max) / 2) },
    { name: `${name}_count`, labels, value: requests },
  ];
}

/** The model a pod serves, as vLLM labels it: the first container's image name without registry or tag. */
function modelName(pod: Pod): string {
  const image = (pod.spec.containers?.[0]?.image ?? 'model').split('@')[0]!;
  const last = image.slice(image.lastIndexOf('/') + 1);
  return last.includes(':') ? last.slice(0, last.indexOf(':')) : last;
}

/** How many requests have arrived by `nowMs`: a burst each whole second from the second the pod turned Ready. */
function requestsServed(pod: Pod, model: BehaviourModel, nowMs: number): number {
  if (!isReady(pod)) return 0;
  const readySince = Date.parse(String(condition(pod, 'Ready')?.lastTransitionTime ?? ''));
  if (!Number.isFinite(readySince) || nowMs < readySince) return 0;
  return model.requestsPerSecond * (Math.floor((nowMs - readySince) / 1000) + 1);
}

/** Whether the pod serves metrics at all: a pod whose containers are not running has no server to scrape. */
export function servesMetrics(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && !isTerminal(pod);
}

/** Every series of one pod at `nowMs`, labelled with `extra` (the aggregate endpoint adds namespace and pod). */
export function podSeries(pod: Pod, nowMs: number, extra: Record<string, string> = {}): Series[] {
  const behaviour = podBehaviour(pod);
  const model = MODELS[behaviour === 'never-ready' ? 'healthy' : behaviour];
  const requests = requestsServed(pod, model, nowMs);
  const labels = { ...extra, model_name: modelName(pod) };
  const meanLatency = (model.e2eLatencySeconds.min + model.e2eLatencySeconds.max) / 2;
  return [
    { name: 'vllm:num_requests_running', labels, value: isReady(pod) ? Math.round(model.requestsPerSecond * meanLatency) : 0 },
    ...histogram('vllm:e2e_request_latency_seconds', labels, requests, E2E_BUCKETS, model.e2eLatencySeconds),
    ...histogram('vllm:time_to_first_token_seconds', labels, requests, TTFT_BUCKETS, model.timeToFirstTokenSeconds),
    ...Object.entries(model.finished).map(([reason, share]) => ({ name: 'vllm:request_success_total', labels: { ...labels, finished_reason: reason }, value: requests * share })),
    { name: 'vllm:generation_tokens_total', labels, value: requests * model.tokensPerRequest },
  ];
}

// ---- exposition ---------------------------------------------------------------------------------------

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}

function familyOf(series: Series): string {
  return series.name.replace(/_(bucket|sum|count)$/, '');
}

/**
 * The text exposition format (version 0.0.4) of many series: each family once, with its HELP and TYPE, and all its
 * samples together, as a scrape requires even when they come from many pods.
 */
export function exposition(series: readonly Series[]): string {
  const lines: string[] = [];
  for (const family of FAMILIES) {
    const samples = series.filter((s) => (family.type === 'histogram' ? familyOf(s) : s.name) === family.name);
    if (samples.length === 0) continue;
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of samples) {
      const labels = Object.entries(sample.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      lines.push(`${sample.name}${labels.length > 0 ? `{${labels.join(',')}}` : ''} ${formatValue(sample.value)}`);
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** What a `/sim/...metrics` path asks for: every pod's series, or one pod's. Undefined for any other path. */
export type PodMetricsTarget = { scope: 'all' } | { scope: 'pod'; namespace: string; name: string };

export function podMetricsTarget(pathname: string): PodMetricsTarget | undefined {
  if (pathname === '/sim/metrics') return { scope: 'all' };
  const match = /^\/sim\/pods\/([^/]+)\/([^/]+)\/metrics$/.exec(pathname);
  if (!match) return undefined;
  try {
    return { scope: 'pod', namespace: decodeURIComponent(match[1]!), name: decodeURIComponent(match[2]!) };
  } catch {
    return undefined;
  }
}

/**
 * The exposition of the pods that serve metrics: one pod's as its own server exports them, or (`labelled`) many pods'
 * with `namespace` and `pod` labels, which is what Prometheus' Kubernetes discovery would have added.
 */
export function podMetricsText(pods: readonly Pod[], nowMs: number, labelled: boolean): string {
  const serving = pods.filter(servesMetrics);
  const labels = (pod: Pod): Record<string, string> => (labelled ? { namespace: pod.metadata.namespace ?? 'default', pod: pod.metadata.name! } : {});
  return exposition(serving.flatMap((pod) => podSeries(pod, nowMs, labels(pod))));
}
