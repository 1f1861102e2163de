// cost_ceiling: the fleet's hourly cost after a change must stay under a ceiling, unless the change lowers it.
import type { Rule } from '../policy.js';
import { cents, usd } from './format.js';
import { fromMicroUsd, toMicroUsd } from '../pricing.js';

export const costCeiling: Rule<'cost_ceiling'> = (parameters, change, inputs) => {
  if (!change.after) return { outcome: 'not_applicable', message: `${change.action} moves no resources, so it adds no cost` };
  const { fleetHourlyUsd, targetHourlyUsdBefore, targetHourlyUsdAfter } = inputs.cost;
  const fleet = fromMicroUsd(toMicroUsd(fleetHourlyUsd) + toMicroUsd(targetHourlyUsdAfter));
  const ceiling = parameters.maxHourlyUsd;
  if (cents(fleet) <= cents(ceiling)) {
    return { outcome: 'pass', message: `fleet would cost ${usd(fleet)}/h, within the ceiling of ${usd(ceiling)}/h` };
  }
  // A fleet already over its ceiling must still be allowed the changes that bring it down.
  if (targetHourlyUsdAfter <= targetHourlyUsdBefore) {
    return {
      outcome: 'pass',
      message:
        `fleet would cost ${usd(fleet)}/h, over the ceiling of ${usd(ceiling)}/h, but this change does not raise cost ` +
        `(${usd(targetHourlyUsdBefore)}/h to ${usd(targetHourlyUsdAfter)}/h)`,
    };
  }
  return {
    outcome: 'fail',
    message:
      `fleet would cost ${usd(fleet)}/h, over the ceiling of ${usd(ceiling)}/h ` +
      `(this change raises it from ${usd(targetHourlyUsdBefore)}/h to ${usd(targetHourlyUsdAfter)}/h)`,
  };
};
