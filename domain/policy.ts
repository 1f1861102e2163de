// Policies: their shape, the parameters of each rule type, and what a rule is given to judge a change.
import { z } from 'zod';
import { cpuMillicores, memoryBytes } from './quantity.js';
import { cpu, gpuSku, id, labels, memory, name, timestamp } from './schemas.js';

export const POLICY_TYPES = ['cost_ceiling', 'quota', 'sla', 'slo', 'rate_limit', 'change_freeze', 'budget'] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

/** enforce blocks; dry_run records what would have happened; audit records only. */
export const POLICY_MODES = ['enforce', 'dry_run', 'audit'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];

/** The kinds of change policy judges: the deployment commands and the action-plan actions. */
export const ACTION_KINDS = ['create', 'scale', 'update', 'rollback', 'restart', 'delete', 'drain', 'reschedule', 'resume'] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];

export const WORKLOAD_TYPES = ['inference', 'training', 'batch'] as const;
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Day = (typeof DAYS)[number];

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `one of: ${values.join(', ')}` });
const positive = (what: string) => z.number({ error: `a positive number (${what})` }).positive(`a positive number (${what})`);
const count = z.int({ error: 'a whole number' }).min(0, 'zero or more');
const ratio = z.number({ error: 'a number above 0 and at most 1' }).gt(0, 'above 0').max(1, 'at most 1');
const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, 'a time of day "HH:MM" from 00:00 to 24:00');
const timeZone = z.string().refine((zone) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}, 'an IANA time zone such as "Europe/Berlin" or "UTC"');
const atLeastOne = (what: string) => (value: object) => Object.values(value).some((v) => v !== undefined) || `at least one of ${what}`;

// ---- parameters of each rule type -----------------------------------------------------------------------

export const costCeilingParameters = z.strictObject({ maxHourlyUsd: positive('US dollars per hour for the whole fleet') });

export const quotaParameters = z.strictObject({
  /** What the limits are counted over: each matching namespace (the default), team label, or cluster. */
  per: oneOf(['namespace', 'team', 'cluster']).default('namespace'),
  limits: z
    .strictObject({
      replicas: count.optional(),
      cpu: cpu.optional(),
      memory: memory.optional(),
      gpus: count.optional(),
      gpusBySku: z.record(gpuSku, count).optional(),
    })
    .refine((limits) => Object.values(limits).some((v) => v !== undefined), 'at least one of replicas, cpu, memory, gpus, gpusBySku'),
});

export const slaParameters = z.strictObject({
  minUptime: z.number({ error: 'a ratio below 1, e.g. 0.999' }).gt(0, 'above 0').lt(1, 'below 1 (an uptime of 1 leaves no error budget)'),
  windowDays: z.int({ error: 'whole days' }).min(1, 'at least 1 day').max(90, 'at most 90 days').default(30),
});

/** Targets to hold; without them the workload's own SLO targets apply. */
export const sloParameters = z.strictObject({
  latencyP99Ms: positive('milliseconds').optional(),
  successRate: ratio.optional(),
});

/** What a rate limit counts: changes to the target, by the actor, or by the actor to the target. */
const RATE_LIMIT_SCOPES = ['target', 'actor', 'target_and_actor'] as const;

export const rateLimitParameters = z.strictObject({
  maxActions: z.int({ error: 'a whole number' }).min(1, 'at least 1'),
  windowSeconds: z.int({ error: 'whole seconds' }).min(1, 'at least 1 second').max(86_400, 'at most 86400 seconds (1 day)'),
  per: oneOf(RATE_LIMIT_SCOPES).default('target'),
  /** A scale in the opposite direction of the last one within this many seconds is refused (anti-flap). */
  stabilizationSeconds: z.int({ error: 'whole seconds' }).min(0).max(86_400, 'at most 86400 seconds').optional(),
});

export const oneOffWindow = z
  .strictObject({ start: timestamp, end: timestamp })
  .refine((window) => Date.parse(window.end) > Date.parse(window.start), { message: 'end must be after start', path: ['end'] });

/** Every listed day, from `start` to `end` local time in `timeZone`; an `end` before `start` runs past midnight. */
export const recurringWindow = z.strictObject({
  timeZone,
  days: z.array(oneOf(DAYS)).min(1, 'at least one day'),
  start: clock,
  end: clock,
});
export type RecurringWindow = z.infer<typeof recurringWindow>;

export const changeFreezeParameters = z
  .strictObject({ windows: z.array(oneOffWindow).optional(), recurring: z.array(recurringWindow).optional() })
  .refine((p) => (p.windows?.length ?? 0) + (p.recurring?.length ?? 0) > 0, 'at least one window (windows or recurring)');

/** Monthly spend per team (the workload label `team`), projected to the end of the month. */
export const budgetParameters = z.strictObject({ monthlyUsd: positive('US dollars per calendar month (UTC)') });

export const parametersByType = {
  cost_ceiling: costCeilingParameters,
  quota: quotaParameters,
  sla: slaParameters,
  slo: sloParameters,
  rate_limit: rateLimitParameters,
  change_freeze: changeFreezeParameters,
  budget: budgetParameters,
} as const;
export type ParametersOf<T extends PolicyType> = z.infer<(typeof parametersByType)[T]>;

/** An empty list would select nothing at all, which is never what was meant. */
const NONEMPTY = 'at least one; leave the field out to select everything';

// ---- policies -----------------------------------------------------------------------------------------

export const selector = z
  .strictObject({
    clusters: z.array(id).min(1, NONEMPTY).optional(),
    namespaces: z.array(name).min(1, NONEMPTY).optional(),
    /** Workload labels that must all be present with these values. */
    labels: labels.optional(),
    workloadTypes: z.array(oneOf(WORKLOAD_TYPES)).min(1, NONEMPTY).optional(),
    actors: z
      .strictObject({
        kinds: z.array(oneOf(['user', 'service', 'system'])).min(1, NONEMPTY).optional(),
        ids: z.array(z.string().min(1)).min(1, NONEMPTY).optional(),
      })
      .refine(atLeastOne('kinds, ids'))
      .optional(),
    actions: z.array(oneOf(ACTION_KINDS)).min(1, NONEMPTY).optional(),
  })
  .default({});
export type Selector = z.infer<typeof selector>;

const common = {
  name: z.string().min(1, 'a name').max(100, 'at most 100 characters'),
  description: z.string().max(2000, 'at most 2000 characters').optional(),
  mode: oneOf(POLICY_MODES),
  /** Higher runs first; the order results are listed in. */
  priority: z.int({ error: 'a whole number from 0 to 10000' }).min(0).max(10_000).default(100),
  selector,
  validFrom: timestamp.optional(),
  validUntil: timestamp.optional(),
  enabled: z.boolean({ error: 'true or false' }).default(true),
};

const withType = <T extends PolicyType>(type: T) =>
  z.strictObject({ ...common, type: z.literal(type), parameters: parametersByType[type] });

const validity = (policy: { validFrom?: string; validUntil?: string }) =>
  !policy.validFrom || !policy.validUntil || Date.parse(policy.validUntil) > Date.parse(policy.validFrom);

/** `POST /policies` */
export const policyBody = z
  .discriminatedUnion('type', POLICY_TYPES.map(withType) as unknown as [ReturnType<typeof withType<'quota'>>], {
    error: `type: one of ${POLICY_TYPES.join(', ')}`,
  })
  .refine(validity, { message: 'validUntil must be after validFrom', path: ['validUntil'] });

export type PolicyBody = {
  [T in PolicyType]: Omit<z.infer<ReturnType<typeof withType<'quota'>>>, 'type' | 'parameters'> & { type: T; parameters: ParametersOf<T> };
}[PolicyType];

/** `PATCH /policies/:id`: any of the fields but `type`; `parameters` replace the old ones whole. */
export const policyPatchBody = z
  .strictObject({
    name: common.name,
    description: common.description,
    mode: common.mode,
    priority: z.int({ error: 'a whole number from 0 to 10000' }).min(0).max(10_000),
    selector: selector.unwrap(),
    parameters: z.record(z.string(), z.unknown()),
    validFrom: timestamp.nullable(),
    validUntil: timestamp.nullable(),
    enabled: z.boolean({ error: 'true or false' }),
  })
  .partial()
  .refine((patch) => Object.values(patch).some((v) => v !== undefined), 'at least one field to change');
export type PolicyPatchBody = z.infer<typeof policyPatchBody>;

export type Policy = PolicyBody & { id: string };

// ---- what a rule judges -------------------------------------------------------------------------------

/** Resources a deployment holds: totals over all its replicas. */
export interface Footprint {
  replicas: number;
  cpuMillicores: number;
  memoryBytes: number;
  gpus: number;
  gpuSku?: string;
}

export const NO_FOOTPRINT: Footprint = { replicas: 0, cpuMillicores: 0, memoryBytes: 0, gpus: 0 };

/** A workload's per-replica resources times its replicas. */
export function footprintOf(resources: { cpu: string; memory: string; gpu?: { count: number; sku: string } }, replicas: number): Footprint {
  return {
    replicas,
    cpuMillicores: (cpuMillicores(resources.cpu) ?? 0) * replicas,
    memoryBytes: (memoryBytes(resources.memory) ?? 0) * replicas,
    gpus: (resources.gpu?.count ?? 0) * replicas,
    ...(resources.gpu ? { gpuSku: resources.gpu.sku } : {}),
  };
}

/** The change being judged, as the command handler describes it. */
export interface Change {
  action: ActionKind;
  /** When the decision is made (ISO 8601). */
  at: string;
  actor: { id: string; kind: 'user' | 'service' | 'system' };
  target: { kind: 'deployment' | 'cluster'; id: string };
  clusterId: string;
  namespace?: string;
  workloadType?: (typeof WORKLOAD_TYPES)[number];
  /** The workload's labels; `team` among them names the team for quotas and budgets. */
  labels: Record<string, string>;
  /** What the target holds before and after the change; both absent for changes that move no resources. */
  before?: Footprint;
  after?: Footprint;
  /** An admin's break-glass marking, with the reason. */
  emergency?: { justification: string };
}

/** Resources in use. */
export interface Usage {
  replicas: number;
  cpuMillicores: number;
  memoryBytes: number;
  gpus: number;
  gpusBySku: Record<string, number>;
}

export const NO_USAGE: Usage = { replicas: 0, cpuMillicores: 0, memoryBytes: 0, gpus: 0, gpusBySku: {} };

/** A change policy allowed earlier, as the ledger remembers it (for rate limits and anti-flap). */
export interface PastAction {
  at: string;
  action: ActionKind;
  targetId: string;
  actorId: string;
  /** For scales: whether replicas went up or down. */
  direction?: 'up' | 'down';
}

/**
 * What the rate limits of a decision read of the admitted changes before it: a count per window and the target's
 * last scale, never the changes themselves, so that a decision is as large as its policy set asks and no larger
 * however long the history. Gathered by `readRateLimits` (domain/rules/rate-limit.ts) for the policies that apply.
 */
export const rateLimitReadings = z.object({
  /** One per scope and window an applicable rate limit counts. */
  windows: z.array(
    z.object({
      per: z.enum(RATE_LIMIT_SCOPES),
      windowSeconds: z.int(),
      /** Admitted changes in scope within the window that ends at the change. */
      count: z.int().min(0),
      /** Each limit the count has reached, with when enough counted changes will have left the window to let one more in. */
      reached: z.array(z.object({ maxActions: z.int(), nextAllowedAt: timestamp })).optional(),
    }),
  ),
  /**
   * The target's latest scale within the longest stabilization window of an applicable policy; read only when the
   * change is a scale that moves replicas. Of two at the same moment, the one opposite to the change.
   */
  lastScale: z.object({ at: timestamp, direction: z.enum(['up', 'down']) }).optional(),
});
export type RateLimitReadings = z.infer<typeof rateLimitReadings>;

/** Where each part of a deployment's observed health came from: observed by Sentinel, the override file, or nowhere. */
export interface HealthSources {
  uptime: 'observed' | 'file' | 'none';
  latency: 'prometheus' | 'file' | 'none';
}

/**
 * Everything a rule may look at besides the change. The command handler gathers it from the ledger, the
 * price table and the health source, and the `PolicyEvaluated` event records it, so a decision can be
 * replayed exactly.
 */
export interface PolicyInputs {
  /** Usage of everything else (the target excluded) in the change's namespace, team and cluster. */
  usage: { namespace: Usage; team: Usage; cluster: Usage };
  cost: {
    /** $/hour of the whole fleet without the target. */
    fleetHourlyUsd: number;
    /** $/hour of the target's team without the target. */
    teamHourlyUsd: number;
    targetHourlyUsdBefore: number;
    targetHourlyUsdAfter: number;
    /** What the team has spent so far this calendar month (UTC). */
    teamMonthToDateUsd: number;
    hoursLeftInMonth: number;
  };
  /** What the rate limits read of the admitted changes; every decision since schema version 2 records it. */
  rateLimits?: RateLimitReadings;
  /**
   * The admitted changes themselves, as decisions of schema version 1 recorded them instead of `rateLimits`:
   * evaluation reads them as the engine would have, so those decisions replay as they were made.
   */
  history?: PastAction[];
  /** Observed health of the target; absent when the health source knows nothing of it. */
  health?: {
    /** Uptime ratio over a window of N days, keyed by N. */
    uptime?: Record<string, number>;
    latencyP99Ms?: number;
    successRate?: number;
    /** Where each part came from; absent in decisions recorded before sources were told apart. */
    source?: HealthSources;
  };
  /** The workload's own SLO targets. */
  slo?: { latencyP99Ms?: number; successRate?: number };
}

/** What one rule says about one change. */
export interface RuleResult {
  /** pass: the change is within the rule; fail: it is not; not_applicable: the rule has nothing to say. */
  outcome: 'pass' | 'fail' | 'not_applicable';
  message: string;
  /** Set when a change freeze let the change through because an admin declared an emergency. */
  breakGlass?: boolean;
}

export type Rule<T extends PolicyType> = (parameters: ParametersOf<T>, change: Change, inputs: PolicyInputs) => RuleResult;
