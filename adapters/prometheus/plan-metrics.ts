// Prometheus series for action plans: how long each took from its submission to its end, by how it ended.
import { Histogram, type Registry } from 'prom-client';
import { PLAN_OUTCOMES, type PlanMetrics } from '../../reactors/plan-reactor.js';

export function prometheusPlanMetrics(registry: Registry): PlanMetrics {
  const duration = new Histogram({
    name: 'sentinel_plan_duration_seconds',
    help: `Time from the submission of an action plan to its end, both as recorded in the log, by outcome: ${PLAN_OUTCOMES.join(', ')} (shadow plans are not timed)`,
    labelNames: ['outcome'],
    // From a plan refused at submission (milliseconds) to one that rolls a fleet out and back (an hour or more).
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    registers: [registry],
  });
  // Every outcome's series from the start, so that a rate over them reads 0 rather than nothing before a plan ends.
  for (const outcome of PLAN_OUTCOMES) duration.zero({ outcome });
  return {
    ended(outcome, seconds) {
      duration.observe({ outcome }, seconds);
    },
  };
}
