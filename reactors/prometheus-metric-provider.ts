// The Prometheus analysis provider: a PromQL instant query through whatever client the composition root passes in.
import { readingOf, type MetricProvider } from './analysis-runner.js';

/** One instant-vector element (or a scalar, with no labels), as a Prometheus HTTP API client answers it. */
export interface PromSample {
  labels: Record<string, string>;
  value: number;
}

/** Runs an instant query (`/api/v1/query`); rejects when Prometheus cannot answer, so the measurement is an error. */
export type PromQuery = (promql: string) => Promise<PromSample[]>;

function labelKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((name) => `${name}=${JSON.stringify(labels[name])}`)
    .join(',');
}

/**
 * A provider whose reading is the query's values: none is missing (inconclusive), one is a number, several are a
 * list ordered by label set, so the same answer is always the same list whatever order the API returned it in.
 */
export function createPrometheusMetricProvider(query: PromQuery): MetricProvider {
  return {
    async measure(promql) {
      const samples = await query(promql);
      const ordered = [...samples].sort((a, b) => (labelKey(a.labels) < labelKey(b.labels) ? -1 : labelKey(a.labels) > labelKey(b.labels) ? 1 : 0));
      return { value: readingOf(ordered.map((s) => s.value)) };
    },
  };
}
