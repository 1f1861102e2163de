// The lease port: one active instance per name across processes, for whatever follows the log (projectors,
// reactors, rebuilds). Adapters: `adapters/postgres/advisory-lease.ts`.

/** Whoever holds the lease on a name does the work; the other instances wait as standbys. */
export interface Lease {
  /** True when this process now holds (or already held) the lease for `name`. */
  tryAcquire(name: string): Promise<boolean>;
  /** False once the lease was lost (the connection holding it died). */
  stillHeld(name: string): Promise<boolean>;
  release(name: string): Promise<void>;
}
