// Prometheus series of the audit chain check (projections/audit-chain-monitor.ts), which the AuditChainBroken and
// AuditChainWalkStale alerts read.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditChainMetrics } from '../../projections/audit-chain-monitor.js';

export function prometheusAuditChainMetrics(registry: Registry): AuditChainMetrics {
  const registers = [registry];
  const broken = new Gauge({
    name: 'sentinel_audit_chain_broken',
    help: '1 when the last verification of the audit trail found a row whose hash or link does not hold, 0 when the chain held',
    registers,
  });
  const rows = new Gauge({
    name: 'sentinel_audit_chain_rows',
    help: 'Rows of the chain the last verification found whole (up to and including a broken one), however many it read',
    registers,
  });
  const walked = new Gauge({
    name: 'sentinel_audit_chain_rows_walked',
    help: 'Rows the last verification read: the whole chain on a full walk, the rows appended since the one before on an incremental walk',
    registers,
  });
  const verifiedAt = new Gauge({
    name: 'sentinel_audit_chain_last_verified_timestamp_seconds',
    help: 'Unix time at which the last verification of the audit chain finished, whatever it found',
    registers,
  });
  const seconds = new Gauge({ name: 'sentinel_audit_chain_verify_duration_seconds', help: 'How long the last verification of the audit chain took', registers });
  const verifications = new Counter({
    name: 'sentinel_audit_chain_verifications_total',
    help: 'Verifications of the audit chain that finished, by walk (full: from the first row; incremental: from the last verified row) and result (ok, broken)',
    labelNames: ['walk', 'result'],
    registers,
  });
  const failures = new Counter({
    name: 'sentinel_audit_chain_verify_failures_total',
    help: 'Verifications of the audit chain that could not finish (the database did not answer)',
    registers,
  });
  const interval = new Gauge({
    name: 'sentinel_audit_chain_verify_interval_seconds',
    help: 'Seconds between two verifications of the audit chain (AUDIT_VERIFY_INTERVAL_SECONDS)',
    registers,
  });
  const fullEvery = new Gauge({
    name: 'sentinel_audit_chain_full_walk_every',
    help: 'Every this many verifications, one walks the whole chain from the first row (AUDIT_VERIFY_FULL_EVERY)',
    registers,
  });
  return {
    scheduled(intervalSeconds, every) {
      interval.set(intervalSeconds);
      fullEvery.set(every);
    },
    verified(result, at, elapsed) {
      broken.set(result.ok ? 0 : 1);
      rows.set(result.rows);
      walked.set(result.walked);
      verifiedAt.set(at.getTime() / 1000);
      seconds.set(elapsed);
      verifications.inc({ walk: result.walk, result: result.ok ? 'ok' : 'broken' });
    },
    failed() {
      failures.inc();
    },
  };
}
