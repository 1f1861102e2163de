// sla: disruptive changes wait while the target's uptime error budget over the SLA window is spent.
import type { Change, Rule } from '../policy.js';
import { days, percent, share } from './format.js';

/** Restarts, drains, rollbacks and scale-downs take capacity away, if only for a while. */
const disruptive = (change: Change): boolean =>
  change.action === 'restart' ||
  change.action === 'drain' ||
  change.action === 'rollback' ||
  (change.action === 'scale' && change.before !== undefined && change.after !== undefined && change.after.replicas < change.before.replicas);

export const sla: Rule<'sla'> = ({ minUptime, windowDays }, change, inputs) => {
  if (!disruptive(change)) return { outcome: 'not_applicable', message: `${change.action} is not disruptive, so the SLA has nothing to say` };
  const window = days(windowDays);
  const uptime = inputs.health?.uptime?.[String(windowDays)];
  // A missing signal must not block changes.
  if (uptime === undefined) return { outcome: 'pass', message: `no uptime data for the last ${window}, so nothing to hold against` };
  // Same as "spent >= budget", without the rounding of subtracting both from 1.
  if (uptime <= minUptime) {
    return {
      outcome: 'fail',
      message:
        `error budget for ${window} spent (${share((1 - uptime) / (1 - minUptime))} of it): ` +
        `uptime ${percent(uptime)} against a minimum of ${percent(minUptime)}`,
    };
  }
  return {
    outcome: 'pass',
    message:
      `${share((uptime - minUptime) / (1 - minUptime))} of the error budget for ${window} left: ` +
      `uptime ${percent(uptime)} against a minimum of ${percent(minUptime)}`,
  };
};
