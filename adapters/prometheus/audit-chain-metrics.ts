// Prometheus series of the audit chain check (projections/audit-chain-monitor.ts), which the AuditChainBroken alert reads.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditChainMetrics } from '../../projections/audit-chain-monitor.js';

export function prometheusAuditChainMetrics(registry: Registry): AuditChainMetrics {
  const registers = [registry];
  const broken = new Gauge({
    name: 'sentinel_audit_chain_broken',
    help: '1 when the last verification of the audit trail found a row whose hash or link does not hold, 0 when the whole chain held',
    registers,
  });
  const rows = new Gauge({ name: 'sentinel_audit_chain_rows', help: 'Rows the last verification walked (up to and including a broken one)', registers });
  const verifiedAt = new Gauge({
    name: 'sentinel_audit_chain_last_verified_timestamp_seconds',
    help: 'Unix time at which the last verification of the audit chain finished, whatever it found',
    registers,
  });
  const seconds = new Gauge({ name: 'sentinel_audit_chain_verify_duration_seconds', help: 'How long the last verification of the audit chain took', registers });
  const failures = new Counter({
    name: 'sentinel_audit_chain_verify_failures_total',
    help: 'Verifications of the audit chain that could not finish (the database did not answer)',
    registers,
  });
  return {
    verified(result, at, elapsed) {
      broken.set(result.ok ? 0 : 1);
      rows.set(result.rows);
      verifiedAt.set(at.getTime() / 1000);
      seconds.set(elapsed);
    },
    failed() {
      failures.inc();
    },
  };
}
