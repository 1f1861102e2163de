// Leases (projectors, reactors, rebuilds) as PostgreSQL session advisory locks, each held on a connection of its
// own: if the process dies, PostgreSQL closes the connection and the lock passes to a standby.
import pg from 'pg';
import type { Lease } from '../../domain/lease.js';

export class AdvisoryLease implements Lease {
  private readonly held = new Map<string, pg.Client>();

  constructor(private readonly connectionString: string) {}

  async tryAcquire(name: string): Promise<boolean> {
    if (this.held.has(name)) return true;
    const client = new pg.Client({ connectionString: this.connectionString, application_name: `sentinel-lease-${name}` });
    client.on('error', () => this.held.delete(name));
    await client.connect();
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock(hashtext($1)) as locked', [`sentinel-projection:${name}`]);
    if (rows[0]?.locked) {
      this.held.set(name, client);
      return true;
    }
    await client.end();
    return false;
  }

  async stillHeld(name: string): Promise<boolean> {
    const client = this.held.get(name);
    if (!client) return false;
    try {
      await client.query('select 1');
      return true;
    } catch {
      this.held.delete(name);
      return false;
    }
  }

  async release(name: string): Promise<void> {
    const client = this.held.get(name);
    this.held.delete(name);
    await client?.end();
  }
}

/** PGlite lives inside one process, so that process is the only instance there can be. */
export const inProcessLease: Lease = {
  tryAcquire: async () => true,
  stillHeld: async () => true,
  release: async () => undefined,
};
