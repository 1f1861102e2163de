// slo: scale-downs and new rollouts wait while the target is outside its latency or success-rate targets.
import type { Rule } from '../policy.js';
import { ms, percent } from './format.js';

export const slo: Rule<'slo'> = (parameters, change, inputs) => {
  const { action, before, after } = change;
  const scaleDown = action === 'scale' && before !== undefined && after !== undefined && after.replicas < before.replicas;
  if (!scaleDown && action !== 'update' && action !== 'rollback') {
    return { outcome: 'not_applicable', message: `${action} is neither a scale-down nor a rollout, so the SLO has nothing to say` };
  }
  // A policy that names targets holds those; one that names none holds the workload's own.
  const own = parameters.latencyP99Ms === undefined && parameters.successRate === undefined;
  const latencyTarget = own ? inputs.slo?.latencyP99Ms : parameters.latencyP99Ms;
  const successTarget = own ? inputs.slo?.successRate : parameters.successRate;
  if (latencyTarget === undefined && successTarget === undefined) {
    return { outcome: 'not_applicable', message: 'neither the policy nor the workload sets SLO targets' };
  }

  const latency = latencyTarget === undefined ? undefined : inputs.health?.latencyP99Ms;
  const success = successTarget === undefined ? undefined : inputs.health?.successRate;
  // A missing signal must not block changes.
  if (latency === undefined && success === undefined) {
    return { outcome: 'pass', message: 'no latency or success-rate observation for the target, so nothing to hold against' };
  }

  let violations = '';
  let held = '';
  if (latency !== undefined && latencyTarget !== undefined) {
    if (latency > latencyTarget) violations = `p99 latency ${ms(latency)} over the target of ${ms(latencyTarget)}`;
    else held = `p99 latency ${ms(latency)} within the target of ${ms(latencyTarget)}`;
  }
  if (success !== undefined && successTarget !== undefined) {
    if (success < successTarget) {
      violations += `${violations ? ', ' : ''}success rate ${percent(success)} under the target of ${percent(successTarget)}`;
    } else {
      held += `${held ? ', ' : ''}success rate ${percent(success)} meets the target of ${percent(successTarget)}`;
    }
  }
  if (violations) return { outcome: 'fail', message: `outside the SLO: ${violations}` };
  return { outcome: 'pass', message: `within the SLO: ${held}` };
};
