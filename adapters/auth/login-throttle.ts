// Failed-login counters in PostgreSQL (or PGlite), so that every api process on the database counts the same
// failures and a restart forgets none. The rules (backoff, lock, forgetting) are domain/access.ts's.
import type { Knex } from 'knex';
import type { LoginClaim, LoginThrottle, ThrottleKey } from '../../commands/access.js';
import { countAttempt, forgetAfter, loginWait, NO_FAILURES, type LoginCounter } from '../../domain/access.js';

const TABLE = 'sentinel_login_throttle';

interface CounterRow {
  scope: string;
  key: string;
  failures: number;
  last_failure_at: Date | null;
  locked_until: Date | null;
}

export class PostgresLoginThrottle implements LoginThrottle {
  constructor(private readonly knex: Knex) {}

  async claim(keys: ThrottleKey[], now: Date): Promise<LoginClaim> {
    // One order for every transaction (scope, then key), so two claims that share a key never deadlock.
    const ordered = [...keys].sort((a, b) => (a.scope === b.scope ? compare(a.key, b.key) : compare(a.scope, b.scope)));
    const claim = await this.knex.transaction(async (trx): Promise<LoginClaim> => {
      await trx(TABLE)
        .insert(ordered.map(({ scope, key }) => ({ scope, key, failures: 0, forget_at: now })))
        .onConflict(['scope', 'key'])
        .ignore();
      const rows = await trx<CounterRow>(TABLE)
        .whereIn(['scope', 'key'], ordered.map(({ scope, key }) => [scope, key]))
        .orderBy([{ column: 'scope' }, { column: 'key' }])
        .forUpdate()
        .select('scope', 'key', 'failures', 'last_failure_at', 'locked_until');
      const counters = ordered.map((key) => {
        const row = rows.find((r) => r.scope === key.scope && r.key === key.key);
        return { key, counter: row ? toCounter(row) : NO_FAILURES };
      });

      const waits = counters.map(({ key, counter }) => loginWait(counter, now, key.limit)).filter((wait) => wait !== undefined);
      if (waits.length > 0) {
        return { granted: false, retryAfterSeconds: Math.max(...waits.map((w) => w.seconds)), locked: waits.some((w) => w.locked) };
      }
      const locked: ThrottleKey['scope'][] = [];
      for (const { key, counter } of counters) {
        const next = countAttempt(counter, now, key.limit);
        if (next.lockedUntil) locked.push(key.scope);
        await trx(TABLE)
          .where({ scope: key.scope, key: key.key })
          .update({
            failures: next.failures,
            last_failure_at: next.lastFailureAt,
            locked_until: next.lockedUntil,
            forget_at: forgetAfter(next, key.limit),
          });
      }
      return { granted: true, locked };
    });
    await this.forgetOld(now);
    return claim;
  }

  async forget(key: Pick<ThrottleKey, 'scope' | 'key'>): Promise<void> {
    await this.knex(TABLE).where({ scope: key.scope, key: key.key }).delete();
  }

  async giveBack(key: Pick<ThrottleKey, 'scope' | 'key'>, liftLock: boolean): Promise<void> {
    await this.knex(TABLE)
      .where({ scope: key.scope, key: key.key })
      .update({
        failures: this.knex.raw('greatest(failures - 1, 0)'),
        ...(liftLock ? { locked_until: null } : {}),
      });
  }

  /**
   * Rows past their forget time hold nothing: deleting them keeps the table as small as the failures of one lock
   * length. Rows another claim holds are skipped, not waited for.
   */
  private async forgetOld(now: Date): Promise<void> {
    const stale = this.knex(TABLE).where('forget_at', '<', now).limit(1000).forUpdate().skipLocked().select('scope', 'key');
    await this.knex(TABLE).whereIn(['scope', 'key'], stale).delete();
  }
}

function toCounter(row: CounterRow): LoginCounter {
  return { failures: row.failures, lastFailureAt: row.last_failure_at, lockedUntil: row.locked_until };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
