// The agent's /metrics: the latest collected values under dcgm-exporter's and node_exporter's names, and the agent's own counters.
import { Counter, Gauge, type Registry } from 'prom-client';
import { createMetricsRegistry } from '../adapters/prometheus/metrics.js';
import type { Sample } from './collector.js';

/** dcgm-exporter's counters that do not end in _TOTAL; everything else ending in _total (any case) is a counter too. */
const DCGM_COUNTERS = new Set(['DCGM_FI_DEV_RETIRED_SBE', 'DCGM_FI_DEV_RETIRED_DBE']);

/** HELP text as the exporters write it, for the metrics a dashboard is most likely to show. */
const HELP: Record<string, string> = {
  DCGM_FI_DEV_GPU_UTIL: 'GPU utilization (in %).',
  DCGM_FI_DEV_FB_USED: 'Framebuffer memory used (in MiB).',
  DCGM_FI_DEV_FB_FREE: 'Framebuffer memory free (in MiB).',
  DCGM_FI_DEV_GPU_TEMP: 'GPU temperature (in C).',
  DCGM_FI_DEV_POWER_USAGE: 'Power draw (in W).',
  DCGM_FI_DEV_SM_CLOCK: 'SM clock frequency (in MHz).',
  DCGM_FI_DEV_MEM_CLOCK: 'Memory clock frequency (in MHz).',
  DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: 'Total number of single-bit volatile ECC errors.',
  DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: 'Total number of double-bit volatile ECC errors.',
  DCGM_FI_DEV_ECC_SBE_AGG_TOTAL: 'Total number of single-bit persistent ECC errors.',
  DCGM_FI_DEV_ECC_DBE_AGG_TOTAL: 'Total number of double-bit persistent ECC errors.',
  DCGM_FI_DEV_RETIRED_SBE: 'Total number of retired pages due to single-bit errors.',
  DCGM_FI_DEV_RETIRED_DBE: 'Total number of retired pages due to double-bit errors.',
  DCGM_FI_DEV_CLOCK_THROTTLE_REASONS: 'Current clock throttle reasons (bitmask).',
  DCGM_FI_DEV_XID_ERRORS: 'Value of the last XID error encountered.',
  DCGM_FI_DEV_MIG_MODE: 'MIG mode of the GPU (1 = enabled).',
  sentinel_gpu_lost: '1 when the GPU fell off the bus or needs a reset (nvidia-smi cannot reach it), 0 when it answers.',
  sentinel_gpu_xid_errors_total: 'XID lines seen in the kernel log since the agent started.',
  sentinel_gpu_mig_instance_info: 'One series per MIG GPU instance, with its profile and instance id.',
  node_cpu_seconds_total: 'Seconds the CPUs spent in each mode.',
  node_memory_MemTotal_bytes: 'Memory information field MemTotal_bytes.',
  node_memory_MemAvailable_bytes: 'Memory information field MemAvailable_bytes.',
  node_disk_read_bytes_total: 'The total number of bytes read successfully.',
  node_disk_written_bytes_total: 'The total number of bytes written successfully.',
  node_network_receive_bytes_total: 'Network device statistic receive_bytes.',
  node_network_transmit_bytes_total: 'Network device statistic transmit_bytes.',
};

/** Prometheus's rules for names, checked before a sample reaches the registry (a simulated source could get them wrong). */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const isCounter = (name: string) => /_total$/i.test(name) || DCGM_COUNTERS.has(name);

/** Why a sample cannot be exported as it is, or undefined when it can. */
export function sampleProblem(sample: Sample): string | undefined {
  if (!METRIC_NAME.test(sample.metric)) return `"${sample.metric}" is not a Prometheus metric name`;
  if (sample.metric.startsWith('sentinel_agent_')) return `"${sample.metric}" is a name of the agent's own metrics`;
  const label = Object.keys(sample.labels).find((name) => !LABEL_NAME.test(name) || name.startsWith('__'));
  if (label !== undefined) return `label "${label}" of ${sample.metric} is not a Prometheus label name`;
  if (isCounter(sample.metric) && !(sample.value >= 0)) return `counter ${sample.metric} has the value ${sample.value}, expected one of at least 0`;
  return undefined;
}

/**
 * How often the event loop's delay is sampled for nodejs_eventloop_lag_*, in ms. prom-client's default, 10 ms, wakes
 * an otherwise idle agent a hundred times a second (two system calls each) to learn about a loop that runs a round
 * every 10 s; once a second still catches a loop stuck for longer than that, at a hundredth of the wakeups.
 */
export const EVENT_LOOP_MONITORING_MS = 1000;

/**
 * The registry the agent serves: the process metrics Sentinel's own processes export (adapters/prometheus/metrics.ts),
 * with the event loop sampled every EVENT_LOOP_MONITORING_MS.
 */
export function agentRegistry(): Registry {
  return createMetricsRegistry({ eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_MS });
}

type Exported = { metric: Counter | Gauge; labelNames: Set<string> };

export class AgentMetrics {
  readonly collectorFailures: Counter<'collector' | 'reason'>;
  readonly bufferedSamples: Gauge;
  readonly droppedSamples: Counter;
  readonly batchesSent: Counter;
  readonly batchesAcknowledged: Counter;
  readonly batchesRefused: Counter;
  readonly connected: Gauge;
  /** Each collector's latest samples, by metric name. */
  private readonly latest = new Map<string, Map<string, Sample[]>>();
  private readonly exported = new Map<string, Exported>();

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.collectorFailures = new Counter({
      name: 'sentinel_agent_collector_failures_total',
      help: 'Collector rounds that failed, by collector and reason (timeout, exit, parse, io).',
      labelNames: ['collector', 'reason'],
      registers,
    });
    this.bufferedSamples = new Gauge({ name: 'sentinel_agent_buffered_samples', help: 'Samples held for Sentinel, not yet acknowledged.', registers });
    this.droppedSamples = new Counter({
      name: 'sentinel_agent_dropped_samples_total',
      help: 'Samples dropped without being stored: the oldest when the buffer was full, and those of batches Sentinel refused.',
      registers,
    });
    this.batchesSent = new Counter({ name: 'sentinel_agent_batches_sent_total', help: 'Batches written to Sentinel, resends included.', registers });
    this.batchesAcknowledged = new Counter({ name: 'sentinel_agent_batches_acknowledged_total', help: 'Batches Sentinel acknowledged as stored.', registers });
    this.batchesRefused = new Counter({
      name: 'sentinel_agent_batches_refused_total',
      help: 'Batches Sentinel refused as invalid (INVALID_ARGUMENT) and the agent dropped.',
      registers,
    });
    this.connected = new Gauge({ name: 'sentinel_agent_connected', help: '1 while the push stream to Sentinel is open and greeted, else 0.', registers });
  }

  /**
   * Replaces one collector's latest samples, each checked by sampleProblem (an empty list after a failure: stale
   * values are not served). Only the metrics that collector reported before or reports now are rebuilt: every
   * collector reports each round, and rebuilding all of them each time cost the agent most of its time in the registry.
   */
  setLatest(collector: string, samples: Sample[]): void {
    const before = this.latest.get(collector);
    const now = byMetric(samples);
    this.latest.set(collector, now);
    this.export(new Set([...(before?.keys() ?? []), ...now.keys()]));
  }

  /** Rebuilds the exported series of `names` from every collector's latest samples, dropping those no collector reports now. */
  private export(names: Set<string>): void {
    for (const name of names) {
      const samples: Sample[] = [];
      for (const latest of this.latest.values()) {
        const reported = latest.get(name);
        if (reported) samples.push(...reported);
      }
      if (samples.length === 0) {
        if (this.exported.delete(name)) this.registry.removeSingleMetric(name);
        continue;
      }
      const metric = this.metricFor(name, samples);
      metric.reset();
      for (const { labels, value } of samples) {
        if (metric instanceof Counter) metric.inc(labels, value);
        else metric.set(labels, value);
      }
    }
  }

  /** The registered metric for `name`, registered again with more label names when a sample brings a new one. */
  private metricFor(name: string, samples: Sample[]): Counter | Gauge {
    const labelNames = new Set<string>();
    for (const sample of samples) for (const label of Object.keys(sample.labels)) labelNames.add(label);
    const existing = this.exported.get(name);
    if (existing && [...labelNames].every((label) => existing.labelNames.has(label))) return existing.metric;
    if (existing) {
      this.registry.removeSingleMetric(name);
      for (const label of existing.labelNames) labelNames.add(label);
    }
    const configuration = { name, help: HELP[name] ?? `${name}, as collected by the Sentinel node agent.`, labelNames: [...labelNames], registers: [this.registry] };
    const metric = isCounter(name) ? new Counter(configuration) : new Gauge(configuration);
    this.exported.set(name, { metric, labelNames });
    return metric;
  }
}

function byMetric(samples: readonly Sample[]): Map<string, Sample[]> {
  const byName = new Map<string, Sample[]>();
  for (const sample of samples) {
    const named = byName.get(sample.metric);
    if (named) named.push(sample);
    else byName.set(sample.metric, [sample]);
  }
  return byName;
}
