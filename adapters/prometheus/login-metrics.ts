// Prometheus series for logins: every attempt by result, so that guessing shows on a dashboard and in alerts.
import { Counter, type Registry } from 'prom-client';
import type { LoginMetrics, LoginResult } from '../../commands/access.js';

const RESULTS: readonly LoginResult[] = ['ok', 'failed', 'throttled', 'locked'];

export function prometheusLoginMetrics(registry: Registry): LoginMetrics {
  const logins = new Counter({
    name: 'sentinel_logins_total',
    help:
      'Login attempts by result: ok, failed (wrong name or password, or a disabled user), ' +
      'throttled (refused during backoff), locked (refused while the name or address is locked)',
    labelNames: ['result'],
    registers: [registry],
  });
  // Every result is exported from the start, so that a rate over it is defined before the first failure.
  for (const result of RESULTS) logins.inc({ result }, 0);
  return {
    login(result) {
      logins.inc({ result });
    },
  };
}
