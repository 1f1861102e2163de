// The telemetry analysis provider: reads the newest samples node agents pushed, through a port shaped like the
// sample store's `latestSamples`, and answers a small selector language.
//
// A query is a metric name and optional label matchers, as in PromQL: `DCGM_FI_DEV_GPU_TEMP{cluster="c1",node=~"gpu-.*"}`.
// Matchers are `=`, `!=`, `=~` and `!~` (regular expressions match the whole value). `cluster` and `node` match the
// sample's cluster id and node name; other names match its labels. `sentinel:gpu_memory_headroom_ratio` is derived
// per GPU from DCGM_FI_DEV_FB_FREE / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE).
import { GPU_MEMORY_HEADROOM_METRIC } from '../domain/analysis/inference-templates.js';
import type { LatestSample, LatestSamples } from '../domain/telemetry.js';
import { readingOf, type MetricProvider } from './analysis-runner.js';

/** The port: the newest value of each series seen since `since` (the sample store implements it). */
export type LatestSamplesReader = LatestSamples;

export interface TelemetryProviderOptions {
  samples: LatestSamplesReader;
  /** Samples older than this, at the time of the measurement, are not read: a silent node is missing data. Default 120000. */
  maxAgeMs?: number;
}

type MatchOperator = '=' | '!=' | '=~' | '!~';

interface Matcher {
  label: string;
  operator: MatchOperator;
  value: string;
}

/** A telemetry query after parsing. */
export interface TelemetrySelector {
  metric: string;
  matchers: Matcher[];
}

const METRIC_NAME = /^[A-Za-z_:][A-Za-z0-9_:]*/;
const MATCHER = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))/;

/** Parses a query; throws naming the position that is wrong. */
export function parseTelemetrySelector(query: string): TelemetrySelector {
  const text = query.trim();
  const name = METRIC_NAME.exec(text);
  if (!name) throw new Error(`telemetry query \`${query}\` must start with a metric name`);
  let rest = text.slice(name[0].length).trim();
  const matchers: Matcher[] = [];
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    while (!rest.trimStart().startsWith('}')) {
      const match = MATCHER.exec(rest);
      if (!match) throw new Error(`telemetry query \`${query}\`: expected label="value" at position ${text.length - rest.length}`);
      matchers.push({ label: match[1]!, operator: match[2] as MatchOperator, value: match[3]!.replace(/\\(.)/g, '$1') });
      rest = rest.slice(match[0].length);
    }
    rest = rest.trimStart().slice(1).trim();
  }
  if (rest !== '') throw new Error(`telemetry query \`${query}\`: unexpected \`${rest}\` after the selector`);
  return { metric: name[0], matchers };
}

function labelOf(row: LatestSample, label: string): string {
  if (label === 'cluster') return row.clusterId;
  if (label === 'node') return row.nodeName;
  return row.labels[label] ?? '';
}

function matcherTest(matcher: Matcher): (row: LatestSample) => boolean {
  const { label, operator, value } = matcher;
  if (operator === '=' || operator === '!=') return (row) => (labelOf(row, label) === value) === (operator === '=');
  const pattern = new RegExp(`^(?:${value})$`);
  return (row) => pattern.test(labelOf(row, label)) === (operator === '=~');
}

/** The exact `cluster` and `node` matchers narrow the store's query; every matcher filters its answer. */
function equality(selector: TelemetrySelector, label: string): string | undefined {
  return selector.matchers.find((m) => m.label === label && m.operator === '=')?.value;
}

function seriesKey(row: LatestSample): string {
  return `${row.clusterId}\u0000${row.nodeName}\u0000${row.labels['UUID'] ?? row.labels['gpu'] ?? ''}`;
}

/** Free framebuffer over the whole framebuffer, per GPU that reported both; 0 of 0 is NaN. */
function headroom(rows: readonly LatestSample[]): { key: string; value: number }[] {
  const gpus = new Map<string, { used?: number; free?: number }>();
  for (const row of rows) {
    const gpu = gpus.get(seriesKey(row)) ?? {};
    if (row.metric === 'DCGM_FI_DEV_FB_USED') gpu.used = row.value;
    if (row.metric === 'DCGM_FI_DEV_FB_FREE') gpu.free = row.value;
    gpus.set(seriesKey(row), gpu);
  }
  return [...gpus].flatMap(([key, { used, free }]) => (used === undefined || free === undefined ? [] : [{ key, value: free / (used + free) }]));
}

export function createTelemetryMetricProvider(options: TelemetryProviderOptions): MetricProvider {
  const maxAgeMs = options.maxAgeMs ?? 120_000;
  return {
    async measure(query, context) {
      const selector = parseTelemetrySelector(query);
      const derived = selector.metric === GPU_MEMORY_HEADROOM_METRIC;
      const tests = selector.matchers.map(matcherTest);
      const clusterId = equality(selector, 'cluster');
      const nodeName = equality(selector, 'node');
      const rows = await options.samples.latestSamples({
        ...(clusterId === undefined ? {} : { clusterId }),
        ...(nodeName === undefined ? {} : { nodeName }),
        metricPrefix: derived ? 'DCGM_FI_DEV_FB_' : selector.metric,
        since: new Date(context.at.getTime() - maxAgeMs),
      });
      const selected = rows.filter((row) => tests.every((test) => test(row)));
      const series = derived
        ? headroom(selected)
        : selected.filter((row) => row.metric === selector.metric).map((row) => ({ key: `${seriesKey(row)}\u0000${JSON.stringify(row.labels)}`, value: row.value }));
      return { value: readingOf(series.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((s) => s.value)) };
    },
  };
}
