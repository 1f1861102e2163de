// p99 latency and success rate of deployments from Prometheus: one PromQL template per workload type and
// signal, each run once for every deployment (grouped by the pod label that names the deployment).
import type { LatencyObservation, LatencyReader, ObservedUptime } from '../../commands/observed-health.js';
import type { WORKLOAD_TYPES } from '../../domain/policy.js';
import type { PrometheusApi } from './prometheus-api.js';

type WorkloadType = (typeof WORKLOAD_TYPES)[number];

/**
 * PromQL per signal. `$label` stands for the metric label that holds the deployment id, `$window` for the rate
 * window; a query answers one sample per deployment, labelled with `$label`. Latency is in seconds, success a
 * ratio from 0 to 1.
 */
export interface HealthTemplates {
  latencyP99Seconds?: string;
  successRatio?: string;
}

/**
 * vLLM's names for an inference server: the end-to-end latency histogram, and its OpenAI server's request
 * counter (status grouped as `2xx` … `5xx`). Training and batch workloads serve no requests, so they have no
 * latency or success rate to hold against.
 */
export const DEFAULT_TEMPLATES: Readonly<Record<WorkloadType, HealthTemplates>> = {
  inference: {
    latencyP99Seconds: 'histogram_quantile(0.99, sum by (le, $label) (rate(vllm:e2e_request_latency_seconds_bucket{$label!=""}[$window])))',
    successRatio:
      'sum by ($label) (rate(http_requests_total{$label!="", status!~"5.."}[$window])) / sum by ($label) (rate(http_requests_total{$label!=""}[$window]))',
  },
  training: {},
  batch: {},
};

/**
 * The pod label `sentinel.io/deployment-id` as Prometheus's usual Kubernetes relabelling
 * (`labelmap: __meta_kubernetes_pod_label_(.+)`) turns it into a metric label.
 */
export const DEFAULT_DEPLOYMENT_LABEL = 'sentinel_io_deployment_id';

export interface PrometheusHealthOptions {
  /** The metric label that holds the deployment id (default `sentinel_io_deployment_id`). */
  deploymentLabel?: string;
  /** The rate window, a PromQL duration (default `5m`). */
  window?: string;
  /** Templates by workload type, replacing the defaults of the types given. */
  templates?: Partial<Record<WorkloadType, HealthTemplates>>;
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const DURATION = /^([0-9]+(ms|s|m|h|d|w|y))+$/;

/** A template with its placeholders filled in. */
export function renderTemplate(template: string, label: string, window: string): string {
  return template.replaceAll('$label', label).replaceAll('$window', window);
}

export class PrometheusHealth implements LatencyReader {
  private readonly label: string;
  private readonly window: string;
  private readonly templates: Record<WorkloadType, HealthTemplates>;

  constructor(
    private readonly api: Pick<PrometheusApi, 'instantQuery'>,
    options: PrometheusHealthOptions = {},
  ) {
    this.label = options.deploymentLabel ?? DEFAULT_DEPLOYMENT_LABEL;
    this.window = options.window ?? '5m';
    if (!LABEL_NAME.test(this.label)) throw new Error(`deployment label ${JSON.stringify(this.label)} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)`);
    if (!DURATION.test(this.window)) throw new Error(`rate window ${JSON.stringify(this.window)} is not a PromQL duration such as 5m or 1h30m`);
    this.templates = { ...DEFAULT_TEMPLATES, ...options.templates };
  }

  /** The PromQL run for a workload type's signal, as sent. */
  query(type: WorkloadType, signal: keyof HealthTemplates): string | undefined {
    const template = this.templates[type][signal];
    return template === undefined ? undefined : renderTemplate(template, this.label, this.window);
  }

  /**
   * Latency and success of each deployment given, keyed by id; one that no query answered for (or answered NaN,
   * as for no requests in the window) is left out. The workload's type picks the templates; the queries of the
   * types given run side by side, and one that fails fails the whole observation, so that a part is never
   * mistaken for the whole.
   */
  async observe(deployments: readonly Pick<ObservedUptime, 'deploymentId' | 'workloadType'>[]): Promise<Map<string, LatencyObservation>> {
    const typeOf = new Map(deployments.flatMap(({ deploymentId, workloadType }) => (workloadType ? [[deploymentId, workloadType] as const] : [])));
    const types = [...new Set(typeOf.values())];
    const answers = await Promise.all(
      types.flatMap((type) =>
        (['latencyP99Seconds', 'successRatio'] as const).map(async (signal) => {
          const promql = this.query(type, signal);
          return { type, signal, samples: promql === undefined ? [] : await this.api.instantQuery(promql) };
        }),
      ),
    );
    const observed = new Map<string, LatencyObservation>();
    for (const { type, signal, samples } of answers) {
      for (const { labels, value } of samples) {
        const deploymentId = labels[this.label];
        if (deploymentId === undefined || typeOf.get(deploymentId) !== type) continue;
        const reading = readingOf(signal, value);
        if (reading) observed.set(deploymentId, { ...observed.get(deploymentId), ...reading });
      }
    }
    return observed;
  }
}

/** NaN (no requests in the window) and values no latency or ratio can take say nothing. */
function readingOf(signal: keyof HealthTemplates, value: number): LatencyObservation | undefined {
  if (!Number.isFinite(value) || value < 0) return undefined;
  if (signal === 'latencyP99Seconds') return { latencyP99Ms: value * 1000 };
  return value <= 1 ? { successRate: value } : undefined;
}
