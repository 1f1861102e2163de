// The database connection pool, seen from /metrics: how many connections are in use, how many statements wait for
// one, and how long they waited. A pool that is always full with statements waiting is where latency goes under load.
import type { Knex } from 'knex';
import { Gauge, Histogram, type Registry } from 'prom-client';

/** What the pool knex keeps (tarn) says about itself; absent on a knex without a pool. */
interface PoolView {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  on(event: 'acquireRequest', listener: (eventId: number) => void): void;
  on(event: 'acquireSuccess' | 'acquireFail', listener: (eventId: number) => void): void;
}

function poolOf(knex: Knex): PoolView | undefined {
  const pool = (knex.client as { pool?: unknown }).pool;
  return pool && typeof (pool as PoolView).numPendingAcquires === 'function' ? (pool as PoolView) : undefined;
}

export function registerPoolMetrics(knex: Knex, registry: Registry): void {
  const pool = poolOf(knex);
  if (!pool) return;
  new Gauge({
    name: 'sentinel_db_pool_connections',
    help: 'Connections of the database pool, by state: in use by a statement or transaction, or free',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.set({ state: 'used' }, pool.numUsed());
      this.set({ state: 'free' }, pool.numFree());
    },
  });
  new Gauge({
    name: 'sentinel_db_pool_waiting',
    help: 'Statements and transactions waiting for a connection of the database pool',
    registers: [registry],
    collect() {
      this.set(pool.numPendingAcquires());
    },
  });
  const waited = new Histogram({
    name: 'sentinel_db_pool_acquire_seconds',
    help: 'How long a statement or transaction waited for a connection of the database pool',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const asked = new Map<number, number>();
  pool.on('acquireRequest', (eventId) => asked.set(eventId, performance.now()));
  const answered = (eventId: number) => {
    const at = asked.get(eventId);
    if (at === undefined) return;
    asked.delete(eventId);
    waited.observe((performance.now() - at) / 1000);
  };
  pool.on('acquireSuccess', answered);
  pool.on('acquireFail', (eventId) => asked.delete(eventId));
}
