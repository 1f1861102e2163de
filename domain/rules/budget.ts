// budget: a team's spend projected to the end of the month must stay within its monthly budget, unless the change lowers it.
import type { Rule } from '../policy.js';
import { cents, usd } from './format.js';
import { roundUsd } from '../pricing.js';

export const budget: Rule<'budget'> = (parameters, change, inputs) => {
  if (!change.after) return { outcome: 'not_applicable', message: `${change.action} moves no resources, so it adds no cost` };
  const team = change.labels.team;
  if (!team) return { outcome: 'not_applicable', message: 'the workload has no team label, so no team budget applies' };
  const { teamMonthToDateUsd, teamHourlyUsd, targetHourlyUsdBefore, targetHourlyUsdAfter, hoursLeftInMonth } = inputs.cost;
  const projected = roundUsd(teamMonthToDateUsd + (teamHourlyUsd + targetHourlyUsdAfter) * hoursLeftInMonth);
  const monthly = parameters.monthlyUsd;
  const projection = `team ${team} would spend ${usd(projected)} by the end of the month`;
  if (cents(projected) <= cents(monthly)) {
    return { outcome: 'pass', message: `${projection}, within its budget of ${usd(monthly)}` };
  }
  // A team already over budget must still be allowed the changes that bring its spend down.
  if (targetHourlyUsdAfter <= targetHourlyUsdBefore) {
    return {
      outcome: 'pass',
      message:
        `${projection}, over its budget of ${usd(monthly)}, but this change does not raise cost ` +
        `(${usd(targetHourlyUsdBefore)}/h to ${usd(targetHourlyUsdAfter)}/h)`,
    };
  }
  return {
    outcome: 'fail',
    message:
      `${projection}, over its budget of ${usd(monthly)} ` +
      `(this change raises cost from ${usd(targetHourlyUsdBefore)}/h to ${usd(targetHourlyUsdAfter)}/h)`,
  };
};
