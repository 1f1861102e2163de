// Every rule type, by name: the one table evaluation looks rules up in.
import type { PolicyType, Rule } from '../policy.js';
import { budget } from './budget.js';
import { changeFreeze } from './change-freeze.js';
import { costCeiling } from './cost-ceiling.js';
import { quota } from './quota.js';
import { rateLimit } from './rate-limit.js';
import { sla } from './sla.js';
import { slo } from './slo.js';

export const RULES: { [T in PolicyType]: Rule<T> } = {
  cost_ceiling: costCeiling,
  quota,
  sla,
  slo,
  rate_limit: rateLimit,
  change_freeze: changeFreeze,
  budget,
};
