// Principals the store recently found live for a token, so a client sending the same token with every request does
// not cost a lookup each time; kept for a short, fixed time and dropped at once by any change made in this process.
import type { Principal } from '../domain/access.js';

/** How long a principal found live is believed without asking the store again, unless given: one second. */
export const DEFAULT_LIVE_PRINCIPAL_MS = 1000;

/** Entries kept at most; the oldest go first. */
const MAX_ENTRIES = 10_000;

interface Entry {
  principal: Principal;
  /** Milliseconds since the epoch from which the entry no longer counts. */
  until: number;
}

export class LivePrincipals {
  private readonly entries = new Map<string, Entry>();
  /** Lookups under way, shared by the requests that arrive meanwhile: a crowd sending one token asks once. */
  private readonly asking = new Map<string, { generation: number; answer: Promise<Principal> }>();
  /** Moves on with every change: an answer the store gave across one is not kept. */
  private generation = 0;

  /**
   * @param ttlMs how long an answer counts; 0 keeps none. A token ended by another process (another replica, the
   *   CLI) is refused here at the latest this long after the change.
   * @param now milliseconds since the epoch
   */
  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * The principal for `key` (what the token names: its type, subject, session and epoch), from what the store said
   * within the last `ttlMs`, or from `lookup`; a lookup that throws is not kept, so a refusal is always asked again.
   */
  async get(key: string, lookup: () => Promise<Principal>): Promise<Principal> {
    const known = this.entries.get(key);
    const now = this.now();
    if (known && now < known.until) return known.principal;
    if (known) this.entries.delete(key);
    const generation = this.generation;
    // Shared only when no change began since it was asked: a request after a revocation never gets an answer from before it.
    const asked = this.ttlMs > 0 ? this.asking.get(key) : undefined;
    if (asked && asked.generation === generation) return asked.answer;
    const answer = lookup();
    if (this.ttlMs <= 0) return answer;
    const pending = { generation, answer };
    this.asking.set(key, pending);
    try {
      const principal = await answer;
      if (generation === this.generation) {
        if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
        // From when it was asked, not answered: an answer never counts for longer than `ttlMs` after the store gave it.
        this.entries.set(key, { principal: Object.freeze({ ...principal }), until: now + this.ttlMs });
      }
      return principal;
    } finally {
      if (this.asking.get(key) === pending) this.asking.delete(key);
    }
  }

  /**
   * Runs a change to principals or their tokens (a disable, a new password or role, a revocation): nothing known
   * before it counts after it has begun, and nothing a lookup found while it ran is kept.
   */
  async changing<T>(change: () => Promise<T>): Promise<T> {
    this.forget();
    try {
      return await change();
    } finally {
      this.forget();
    }
  }

  private forget(): void {
    this.generation += 1;
    this.entries.clear();
    this.asking.clear();
  }
}
