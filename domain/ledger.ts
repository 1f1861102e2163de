// The admission ledger (stream `quota-global`): every change policy let through, in one stream, so that
// quotas, budgets and rate limits are judged against everything admitted before and hold under concurrency.
import { z } from 'zod';
import { defineEvents, type Decider, type EventOf } from './decider.js';
import { ACTION_KINDS, NO_USAGE, type Footprint, type PastAction, type Usage } from './policy.js';
import { fromMicroUsd, toMicroUsd } from './pricing.js';
import { nextHistory } from './ledger-history.js';

/** The admission ledger's one stream. */
export const LEDGER_STREAM = 'quota-global';

/** How long admitted changes are remembered for rate limits: the longest window a policy may ask for. */
export const HISTORY_RETENTION_MS = 86_400_000;

export interface Placement {
  clusterId: string;
  namespace: string;
  team?: string;
  footprint: Footprint;
  /** As admitted: whole micro-dollars since prices are rounded at the source, any float in older events. */
  hourlyUsd: number;
}

export interface Ledger {
  /** What each deployment holds, as last admitted. */
  placements: Record<string, Placement>;
  /** Spend per team in the current calendar month (UTC), accrued up to `accruedTo`: dollars of whole micro-dollars. */
  spend: Record<string, { month: string; usd: number }>;
  accruedTo?: string;
  /** Admitted changes within the retention, oldest first; each carries the target revision it leads to. */
  history: (PastAction & { targetRevision?: number })[];
}

export const initialState: Ledger = { placements: {}, spend: {}, history: [] };

/** A footprint as events record it. */
export const footprintSchema = z.object({
  replicas: z.number(),
  cpuMillicores: z.number(),
  memoryBytes: z.number(),
  gpus: z.number(),
  gpuSku: z.string().optional(),
});

const placement = z.object({
  clusterId: z.string(),
  namespace: z.string(),
  team: z.string().optional(),
  footprint: footprintSchema,
  hourlyUsd: z.number(),
});

const admitted = z.object({
  at: z.string(),
  action: z.enum(ACTION_KINDS),
  targetId: z.string(),
  actorId: z.string(),
  direction: z.enum(['up', 'down']).optional(),
  /** The revision of the target's stream this change leads to; a later admission for the same revision replaces it. */
  targetRevision: z.number().int().optional(),
  /**
   * Bookkeeping rather than a change: the placement moves (a completed rollout gives its surge pods back) but no
   * rate limit counts it.
   */
  settles: z.literal(true).optional(),
  /** The target's placement after the change: null when it releases everything, absent when unchanged. */
  placement: placement.nullable().optional(),
});
export type Admission = z.infer<typeof admitted>;

export const ledgerEvents = defineEvents({
  ChangeAdmitted: { version: 1, schema: admitted },
  /**
   * The policy set changed, stored in the same atomic append as the change: it moves the ledger on, so an admission
   * judged against the policy set before the change (which expects the ledger where it was) conflicts and is judged
   * again against the new one. Without it, a change judged just before a freeze was switched on could be stored after.
   */
  PolicySetChanged: { version: 1, schema: z.object({ policySetRevision: z.number().int() }) },
  /** The whole state, so loading reads back only to the last snapshot. */
  LedgerSnapshotted: {
    version: 1,
    schema: z.object({
      placements: z.record(z.string(), placement),
      spend: z.record(z.string(), z.object({ month: z.string(), usd: z.number() })),
      accruedTo: z.string().optional(),
      history: z.array(admitted.omit({ placement: true })),
    }),
  },
});
export type LedgerEvent = EventOf<typeof ledgerEvents>;

export type LedgerCommand = { type: 'AdmitChange'; admission: Admission } | { type: 'SnapshotLedger' };

export function evolve(state: Ledger, event: LedgerEvent): Ledger {
  if (event.type === 'LedgerSnapshotted') return structuredClone(event.data) as Ledger;
  if (event.type === 'PolicySetChanged') return state;
  const admission = event.data;
  const spend = accrue(state, admission.at);
  const placements = { ...state.placements };
  if (admission.placement === null) delete placements[admission.targetId];
  else if (admission.placement) placements[admission.targetId] = admission.placement;

  const horizon = Date.parse(latest(state.accruedTo, admission.at)) - HISTORY_RETENTION_MS;
  const { placement: _placement, settles, ...past } = admission;
  // What aged out goes; so does an admission whose outcome never landed (the target moved on first): its retry
  // replaces it.
  const history = nextHistory(state.history, horizon, admission, settles ? undefined : past);
  return { placements, spend, accruedTo: latest(state.accruedTo, admission.at), history };
}

export function decide(command: LedgerCommand, state: Ledger): LedgerEvent[] {
  if (command.type === 'SnapshotLedger') return [{ type: 'LedgerSnapshotted', data: state }];
  return [{ type: 'ChangeAdmitted', data: command.admission }];
}

export const ledgerDecider: Decider<LedgerCommand, LedgerEvent, Ledger> = { initialState, evolve, decide };

// ---- reading the ledger -------------------------------------------------------------------------------

/** Month key (UTC) of an instant: "2026-11". */
export function monthOf(at: string | number): string {
  return new Date(at).toISOString().slice(0, 7);
}

/** Hours from `at` to the start of the next calendar month (UTC). */
export function hoursLeftInMonth(at: string): number {
  const now = new Date(at);
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return (next - now.getTime()) / 3_600_000;
}

/** Each team's spend this month, accrued up to `at` at the rates the ledger holds. */
export function accrue(state: Ledger, at: string): Ledger['spend'] {
  // A writer whose clock is behind accrues nothing and must not take the month back either.
  const until = latest(state.accruedTo, at);
  const month = monthOf(until);
  const from = state.accruedTo ? Math.max(Date.parse(state.accruedTo), Date.parse(`${month}-01T00:00:00Z`)) : Date.parse(until);
  const elapsedMs = Math.max(0, Date.parse(until) - from);
  const rates = teamMicroRates(state);
  const spend: Ledger['spend'] = {};
  for (const team of new Set([...Object.keys(state.spend), ...rates.keys()])) {
    // Spend from older events or snapshots may be any float: it is carried on from its nearest micro-dollar.
    const carried = state.spend[team]?.month === month ? toMicroUsd(state.spend[team].usd) : 0;
    spend[team] = { month, usd: fromMicroUsd(carried + accruedMicroUsd(rates.get(team) ?? 0, elapsedMs)) };
  }
  return spend;
}

const MS_PER_HOUR = 3_600_000n;

/**
 * Micro-dollars a rate accrues over a stretch, rounded half up. The product of a rate and milliseconds passes
 * 2^53 within a month for a large fleet, so it is taken in BigInt: exact, hence the same on every replay.
 */
function accruedMicroUsd(microUsdPerHour: number, elapsedMs: number): number {
  return Number((BigInt(microUsdPerHour) * BigInt(elapsedMs) + MS_PER_HOUR / 2n) / MS_PER_HOUR);
}

/** $/hour of each team's placements, summed exactly; placements without a team count for none. */
export function teamRates(state: Ledger): Record<string, number> {
  return Object.fromEntries([...teamMicroRates(state)].map(([team, rate]) => [team, fromMicroUsd(rate)]));
}

function teamMicroRates(state: Ledger): Map<string, number> {
  const rates = new Map<string, number>();
  for (const placed of Object.values(state.placements)) {
    if (placed.team !== undefined) rates.set(placed.team, (rates.get(placed.team) ?? 0) + toMicroUsd(placed.hourlyUsd));
  }
  return rates;
}

/**
 * $/hour of some placements, summed exactly in whole micro-dollars: the same figure in whatever order they come,
 * and the same as the fleet-cost read model's sum of the same placements.
 */
export function totalHourlyUsd(placements: Iterable<Placement>): number {
  let total = 0;
  for (const placed of placements) total += toMicroUsd(placed.hourlyUsd);
  return fromMicroUsd(total);
}

/** Usage of every placement but `excluding` that `matches`. */
export function usageWhere(state: Ledger, excluding: string, matches: (placed: Placement) => boolean): Usage {
  const usage: Usage = { ...NO_USAGE, gpusBySku: {} };
  for (const [id, placed] of Object.entries(state.placements)) {
    if (id === excluding || !matches(placed)) continue;
    const f = placed.footprint;
    usage.replicas += f.replicas;
    usage.cpuMillicores += f.cpuMillicores;
    usage.memoryBytes += f.memoryBytes;
    usage.gpus += f.gpus;
    if (f.gpuSku && f.gpus > 0) usage.gpusBySku[f.gpuSku] = (usage.gpusBySku[f.gpuSku] ?? 0) + f.gpus;
  }
  return usage;
}

function latest(a: string | undefined, b: string): string {
  return a && Date.parse(a) > Date.parse(b) ? a : b;
}
