// Prometheus series of the telemetry ingest: what arrived, what was stored or ignored, what was refused, how late
// samples are stored, and what the agents themselves lost.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Why a stream was refused: the label values of sentinel_telemetry_refusals_total. */
export const REFUSAL_REASONS = ['unauthenticated', 'permission_denied', 'protocol', 'invalid_hello', 'invalid_batch'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface IngestMetrics {
  batchReceived(): void;
  batchStored(samples: number, storeSeconds: number): void;
  batchDuplicate(storeSeconds: number): void;
  /** Seconds between each sample's own time and its storage. */
  samplesLag(sampleTimesMs: readonly { timestampUnixMs: number }[], storedAtMs: number): void;
  agentDropped(samples: number): void;
  refused(reason: RefusalReason): void;
  storeFailed(): void;
  listenerFailed(): void;
  agentConnected(): void;
  agentDisconnected(): void;
}

export function ingestMetrics(registry: Registry): IngestMetrics {
  const registers = [registry];
  const received = new Counter({
    name: 'sentinel_telemetry_batches_received_total',
    help: 'Batches received from node agents on authenticated streams, before validation',
    registers,
  });
  const stored = new Counter({ name: 'sentinel_telemetry_batches_stored_total', help: 'Batches stored (newly, not resends)', registers });
  const duplicates = new Counter({
    name: 'sentinel_telemetry_batches_duplicate_total',
    help: 'Batches ignored because their sequence was at or below what was stored for the agent (resends); acknowledged again',
    registers,
  });
  const samples = new Counter({ name: 'sentinel_telemetry_samples_stored_total', help: 'Samples stored', registers });
  const refusals = new Counter({
    name: 'sentinel_telemetry_refusals_total',
    help:
      'Streams ended with an error status by reason: unauthenticated (no or invalid token), permission_denied (not a ' +
      'service account), protocol (first message not a hello, or a second hello), invalid_hello, invalid_batch',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of REFUSAL_REASONS) refusals.inc({ reason }, 0);
  const storeFailures = new Counter({
    name: 'sentinel_telemetry_store_failures_total',
    help: 'Batches whose storage failed (the stream ends UNAVAILABLE and the agent resends)',
    registers,
  });
  const listenerFailures = new Counter({
    name: 'sentinel_telemetry_listener_failures_total',
    help: 'Stored batches the downstream listener (health facts) failed to handle; the batch stays stored and acknowledged',
    registers,
  });
  const dropped = new Counter({
    name: 'sentinel_telemetry_agent_dropped_samples_total',
    help: 'Samples node agents reported their buffers dropped (the increase of each agent\'s cumulative count, summed)',
    registers,
  });
  const lag = new Histogram({
    name: 'sentinel_telemetry_ingest_lag_seconds',
    help: 'Seconds between a sample\'s timestamp and its storage',
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400],
    registers,
  });
  const storeDuration = new Histogram({
    name: 'sentinel_telemetry_store_duration_seconds',
    help: 'Seconds one batch took to store (or to find it was stored already)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const connected = new Gauge({
    name: 'sentinel_telemetry_connected_agents',
    help: 'Open agent streams that have said hello',
    registers,
  });
  return {
    batchReceived: () => received.inc(),
    batchStored(count, seconds) {
      stored.inc();
      samples.inc(count);
      storeDuration.observe(seconds);
    },
    batchDuplicate(seconds) {
      duplicates.inc();
      storeDuration.observe(seconds);
    },
    samplesLag(sampleTimes, storedAtMs) {
      for (const { timestampUnixMs } of sampleTimes) lag.observe(Math.max(0, storedAtMs - timestampUnixMs) / 1000);
    },
    agentDropped(count) {
      if (count > 0) dropped.inc(count);
    },
    refused: (reason) => refusals.inc({ reason }),
    storeFailed: () => storeFailures.inc(),
    listenerFailed: () => listenerFailures.inc(),
    agentConnected: () => connected.inc(),
    agentDisconnected: () => connected.dec(),
  };
}
