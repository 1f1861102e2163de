// The PolicySet aggregate: the policies every change is judged by, one set per scope (stream `policyset-<scope>`).
import { z } from 'zod';
import {
  changedFields,
  defineEvents,
  InvalidTransition,
  NotFound,
  RuleViolation,
  type Decider,
  type EventOf,
  type FieldError,
} from './decider.js';
import { parametersByType, POLICY_MODES, policyBody, selector, type Policy, type PolicyBody, type PolicyPatchBody } from './policy.js';
import { timestamp } from './schemas.js';

/** The one scope there is for now: its stream is `policyset-global`. */
export const GLOBAL_POLICY_SET = 'global';
/** The stream of the one policy set: `policyset-<scope>`. */
export const POLICY_SET_STREAM = `policyset-${GLOBAL_POLICY_SET}`;

// ---- events -------------------------------------------------------------------------------------------

/**
 * A policy as the log records it: a parsed body with its defaults filled in. `policyBody`'s inferred type
 * names a single rule type (policy.ts casts its union for zod); what it parses is any `PolicyBody`.
 */
const policyRecord = policyBody as unknown as z.ZodType<PolicyBody>;

/**
 * What an update changed, as `PolicyUpdated` records it. `parameters` were checked against the policy's type
 * when the update was decided; a window bound of null was cleared (null, not a missing key, so it survives JSON).
 */
const policyChanges = z
  .strictObject({
    name: z.string().min(1).max(100),
    description: z.string().max(2000),
    mode: z.enum(POLICY_MODES),
    priority: z.int().min(0).max(10_000),
    selector: selector.unwrap(),
    parameters: z.record(z.string(), z.unknown()),
    validFrom: timestamp.nullable(),
    validUntil: timestamp.nullable(),
  })
  .partial();
export type PolicyChanges = z.infer<typeof policyChanges>;

export const policySetEvents = defineEvents({
  PolicyCreated: { version: 1, schema: z.object({ policyId: z.string(), policy: policyRecord }) },
  PolicyUpdated: { version: 1, schema: z.object({ policyId: z.string(), changes: policyChanges }) },
  PolicyEnabled: { version: 1, schema: z.object({ policyId: z.string() }) },
  PolicyDisabled: { version: 1, schema: z.object({ policyId: z.string() }) },
  PolicyDeleted: { version: 1, schema: z.object({ policyId: z.string() }) },
});
export type PolicySetEvent = EventOf<typeof policySetEvents>;

// ---- state and commands -------------------------------------------------------------------------------

/** The set always exists, empty at first; its revision is the stream's, which the handler knows. */
export interface PolicySet {
  policies: Record<string, Policy>;
  /** Ids of deleted policies: never given to a new one, so history never names two policies with one id. */
  deleted: string[];
}

export type PolicySetCommand =
  | { type: 'CreatePolicy'; policyId: string; policy: PolicyBody }
  | { type: 'UpdatePolicy'; policyId: string; patch: PolicyPatchBody }
  | { type: 'EnablePolicy'; policyId: string }
  | { type: 'DisablePolicy'; policyId: string }
  | { type: 'DeletePolicy'; policyId: string };

export const initialState: PolicySet = { policies: {}, deleted: [] };

export function evolve(state: PolicySet, event: PolicySetEvent): PolicySet {
  const { policyId } = event.data;
  const policy = policyIn(state, policyId);
  switch (event.type) {
    case 'PolicyCreated':
      return { ...state, policies: { ...state.policies, [policyId]: { ...compact(event.data.policy), id: policyId } } };
    case 'PolicyUpdated':
      return policy ? withPolicy(state, applyChanges(policy, event.data.changes)) : state;
    case 'PolicyEnabled':
      return policy ? withPolicy(state, { ...policy, enabled: true }) : state;
    case 'PolicyDisabled':
      return policy ? withPolicy(state, { ...policy, enabled: false }) : state;
    case 'PolicyDeleted': {
      if (!policy) return state;
      const { [policyId]: _gone, ...policies } = state.policies;
      return { policies, deleted: [...state.deleted, policyId] };
    }
  }
}

export function decide(command: PolicySetCommand, state: PolicySet): PolicySetEvent[] {
  const { policyId } = command;
  if (command.type === 'CreatePolicy') return create(command, state);
  const policy = policyIn(state, policyId);
  // A deleted policy is gone: to every command it is as unknown as one that never was.
  if (!policy) throw new NotFound('policy', policyId);

  switch (command.type) {
    case 'UpdatePolicy':
      return update(command, policy, state);
    case 'EnablePolicy':
      return policy.enabled ? [] : [{ type: 'PolicyEnabled', data: { policyId } }];
    case 'DisablePolicy':
      return policy.enabled ? [{ type: 'PolicyDisabled', data: { policyId } }] : [];
    case 'DeletePolicy':
      return [{ type: 'PolicyDeleted', data: { policyId } }];
  }
}

export const policySetDecider: Decider<PolicySetCommand, PolicySetEvent, PolicySet> = { initialState, evolve, decide };

/**
 * The policies that judge a change made at `at`: enabled, and within their validity window (`validFrom`
 * inclusive, `validUntil` exclusive). Highest priority first, then by id, so every evaluation runs them
 * in the same order.
 */
export function activePolicies(state: PolicySet, at: string): Policy[] {
  const now = instant(at, 'at');
  return Object.values(state.policies)
    .filter(
      (policy) =>
        policy.enabled &&
        (policy.validFrom === undefined || Date.parse(policy.validFrom) <= now) &&
        (policy.validUntil === undefined || now < Date.parse(policy.validUntil)),
    )
    .sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

// ---- decisions ----------------------------------------------------------------------------------------

function create(command: Extract<PolicySetCommand, { type: 'CreatePolicy' }>, state: PolicySet): PolicySetEvent[] {
  const { policyId, policy } = command;
  const existing = policyIn(state, policyId);
  if (existing) throw new InvalidTransition('policy', policyId, existing.enabled ? 'enabled' : 'disabled', 'create', 'it already exists');
  if (state.deleted.includes(policyId)) {
    throw new InvalidTransition('policy', policyId, 'deleted', 'create', 'the id of a deleted policy is not reused');
  }
  const errors = [...nameErrors(state, policyId, policy.name), ...windowErrors(policy.validFrom, policy.validUntil)];
  if (errors.length > 0) throw rejected(`cannot create policy ${policyId}`, errors);
  return [{ type: 'PolicyCreated', data: { policyId, policy: compact(policy) } }];
}

function update(command: Extract<PolicySetCommand, { type: 'UpdatePolicy' }>, policy: Policy, state: PolicySet): PolicySetEvent[] {
  const { policyId } = command;
  const { enabled, parameters, ...fields } = command.patch;
  const errors: FieldError[] = [];
  const proposed: PolicyChanges = compact(fields);
  if (parameters !== undefined) {
    // The patch cannot know the policy's type, so its parameters are checked here, whole, against it.
    const parsed = parametersByType[policy.type].safeParse(parameters);
    if (parsed.success) proposed.parameters = compact(parsed.data);
    else {
      for (const issue of parsed.error.issues) errors.push({ path: ['parameters', ...issue.path.map(String)].join('.'), message: issue.message });
    }
  }

  // Absent window bounds read as null, so clearing one that is not set changes nothing.
  const current: PolicyChanges = {
    name: policy.name,
    description: policy.description,
    mode: policy.mode,
    priority: policy.priority,
    selector: policy.selector,
    parameters: policy.parameters,
    validFrom: policy.validFrom ?? null,
    validUntil: policy.validUntil ?? null,
  };
  const changes = changedFields(current, proposed);
  if (changes.name !== undefined) errors.push(...nameErrors(state, policyId, changes.name));
  errors.push(...windowErrors(boundAfter(policy.validFrom, changes.validFrom), boundAfter(policy.validUntil, changes.validUntil)));
  if (errors.length > 0) throw rejected(`cannot update policy ${policyId}`, errors);

  const events: PolicySetEvent[] = [];
  if (Object.keys(changes).length > 0) events.push({ type: 'PolicyUpdated', data: { policyId, changes } });
  if (enabled !== undefined && enabled !== policy.enabled) events.push({ type: enabled ? 'PolicyEnabled' : 'PolicyDisabled', data: { policyId } });
  return events;
}

/** Names are unique within the set regardless of case, so "GPU cap" and "gpu cap" cannot both judge a change. */
function nameErrors(state: PolicySet, policyId: string, name: string): FieldError[] {
  const wanted = name.toLowerCase();
  const holder = Object.values(state.policies).find((other) => other.id !== policyId && other.name.toLowerCase() === wanted);
  return holder ? [{ path: 'name', message: `taken by policy ${holder.id} ("${holder.name}"); names are unique regardless of case` }] : [];
}

function windowErrors(validFrom: string | undefined, validUntil: string | undefined): FieldError[] {
  if (validFrom === undefined || validUntil === undefined || Date.parse(validUntil) > Date.parse(validFrom)) return [];
  return [{ path: 'validUntil', message: `a date-time after validFrom (${validFrom})` }];
}

function rejected(message: string, errors: FieldError[]): RuleViolation {
  return new RuleViolation(`${message}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
}

// ---- helpers ------------------------------------------------------------------------------------------

function policyIn(state: PolicySet, policyId: string): Policy | undefined {
  return Object.hasOwn(state.policies, policyId) ? state.policies[policyId] : undefined;
}

function withPolicy(state: PolicySet, policy: Policy): PolicySet {
  return { ...state, policies: { ...state.policies, [policy.id]: policy } };
}

function applyChanges(policy: Policy, changes: PolicyChanges): Policy {
  const { validFrom, validUntil, ...fields } = changes;
  // The cast: `parameters` were checked against this policy's type when the update was decided.
  const next = { ...policy, ...compact(fields) } as Policy;
  if (validFrom === null) delete next.validFrom;
  else if (validFrom !== undefined) next.validFrom = validFrom;
  if (validUntil === null) delete next.validUntil;
  else if (validUntil !== undefined) next.validUntil = validUntil;
  return next;
}

/** A window bound after an update: unchanged, set, or cleared (null). */
function boundAfter(current: string | undefined, change: string | null | undefined): string | undefined {
  return change === undefined ? current : (change ?? undefined);
}

/** A copy without undefined-valued keys at any depth: what JSON keeps, so a replayed event folds to the same state. */
function compact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item: unknown) => compact(item)) as T;
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .map(([key, item]) => [key, compact(item)]),
  ) as T;
}

/** Times come as ISO strings; compare them as instants, not as text, so offsets compare correctly. */
function instant(value: string, path: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new RuleViolation(`${path} is not a date-time`, [{ path, message: 'an ISO 8601 date-time such as 2026-01-31T12:00:00Z' }]);
  return ms;
}
