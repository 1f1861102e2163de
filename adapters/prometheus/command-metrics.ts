// Prometheus series for the write side: commands by type and outcome, their latency, conflict retries, and policy
// decisions by command and verdict.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { CommandMetrics } from '../../commands/command-handler.js';
import type { DecisionMetrics } from '../../commands/policy-engine.js';

export function prometheusCommandMetrics(registry: Registry): CommandMetrics {
  const commands = new Counter({
    name: 'sentinel_commands_total',
    help: 'Commands by type and outcome: ok, unchanged (nothing to do), replayed (idempotent retry), rejected (domain rule), conflict (retries exhausted), error',
    labelNames: ['command', 'outcome'],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: 'sentinel_command_duration_seconds',
    help: 'Time from loading the aggregate to the append, retries included',
    labelNames: ['command'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'sentinel_command_conflict_retries_total',
    help: 'Commands decided again because their stream moved between load and append',
    labelNames: ['command'],
    registers: [registry],
  });
  return {
    observe(command, outcome, elapsed) {
      commands.inc({ command, outcome });
      seconds.observe({ command }, elapsed);
    },
    conflictRetried(command) {
      retries.inc({ command });
    },
  };
}

export function prometheusDecisionMetrics(registry: Registry): DecisionMetrics {
  const decisions = new Counter({
    name: 'sentinel_policy_decisions_total',
    help: 'Policy judgements by the command judged (RecordRolledBack: an automatic rollback; RecordDrift: a scale by hand adopted) and verdict',
    labelNames: ['command', 'verdict'],
    registers: [registry],
  });
  const results = new Counter({
    name: 'sentinel_policy_results_total',
    help: 'Results of each policy in each judgement, by the policy type, its mode (enforce, dry_run) and outcome (pass, fail, not_applicable)',
    labelNames: ['type', 'mode', 'outcome'],
    registers: [registry],
  });
  return {
    decided(command, verdict, judged) {
      decisions.inc({ command, verdict });
      for (const { type, mode, outcome } of judged) results.inc({ type, mode, outcome });
    },
  };
}
