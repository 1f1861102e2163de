// Routes for policies (admin), what-if evaluation, the replay of recorded decisions and the impact of a draft policy.
import { z } from 'zod';
import { rolesFrom } from '../../domain/access.js';
import { policyBody, policyPatchBody, type PolicyBody } from '../../domain/policy.js';
import type { PolicyCommands } from '../policy-commands.js';
import { DEFAULT_IMPACT_LIMIT, LISTED, MAX_IMPACT_LIMIT } from '../policy-impact.js';
import { proposedChange } from '../simulated-changes.js';
import { accepted, created, pathId } from './replies.js';
import { queryParameters, route, writeResult, type Route } from './route.js';

const result = z.object({
  policyId: z.string(),
  name: z.string(),
  type: z.string(),
  mode: z.string(),
  priority: z.number(),
  outcome: z.enum(['pass', 'fail', 'not_applicable']),
  message: z.string(),
  breakGlass: z.boolean().optional(),
});

const whatIf = z
  .object({
    verdict: z.enum(['allow', 'deny', 'refused']),
    refused: z.string().optional().describe('why the change could not be carried out at all'),
    policySetRevision: z.number().int(),
    change: z.record(z.string(), z.unknown()).optional(),
    inputs: z.record(z.string(), z.unknown()).optional(),
    results: z.array(result),
  })
  .meta({ id: 'WhatIf' });

const replay = z
  .object({
    eventId: z.string(),
    stream: z.string(),
    policySetRevision: z.number().int(),
    recorded: z.record(z.string(), z.unknown()),
    replayed: z.record(z.string(), z.unknown()),
    matches: z.boolean().describe('the replayed verdict and every result equal the recorded ones'),
  })
  .meta({ id: 'PolicyReplay' });

/**
 * Each field is checked by the command, not here, so that whatever is wrong with the draft or the window is answered
 * with 422 naming the field (`policy.parameters.limits`, `from`), as a draft refused by the policy set would be.
 */
const impactRequest = z
  .strictObject({
    policy: z
      .unknown()
      .optional()
      .describe('required: a draft policy, as POST /policies takes it; or {id, patch} for a change to an existing policy, the patch as PATCH /policies/:id takes it'),
    from: z.unknown().optional().describe('required: the start of the window (inclusive), an ISO 8601 date-time or a log position'),
    to: z.unknown().optional().describe('required: the end of the window (exclusive), an ISO 8601 date-time or a log position'),
  })
  .meta({ id: 'PolicyImpactRequest' });

const impactQuery = queryParameters({
  maxDecisions: z
    .string()
    .regex(/^[0-9]{1,7}$/, `a whole number from 1 to ${MAX_IMPACT_LIMIT}`)
    .transform(Number)
    .pipe(z.number().int().min(1, `a whole number from 1 to ${MAX_IMPACT_LIMIT}`).max(MAX_IMPACT_LIMIT, `a whole number from 1 to ${MAX_IMPACT_LIMIT}`))
    .optional()
    .describe(`decisions judged at most, 1 to ${MAX_IMPACT_LIMIT} (default ${DEFAULT_IMPACT_LIMIT}); the answer says truncated when the window holds more`),
});

const target = z.object({ kind: z.string(), id: z.string() });
const actor = z.object({ id: z.string(), kind: z.string() }).nullable();
const eventIds = z.array(z.string()).describe(`the decisions' event ids, first in log order, at most ${LISTED}`);
const outcome = z
  .object({
    count: z.number().int(),
    decisions: z
      .array(
        z.object({
          eventId: z.string().describe('the PolicyEvaluated event; GET /policy-decisions/{eventId}/replay re-runs it'),
          stream: z.string(),
          position: z.string(),
          at: z.string().describe('when the decision was recorded'),
          command: z.string(),
          actor,
          targets: z.array(target),
          rules: z.array(z.object({ policyId: z.string(), name: z.string(), type: z.string(), message: z.string() })).describe('the policies whose enforced outcome turned'),
        }),
      )
      .describe(`the first ${LISTED}, in log order`),
    byTarget: z.array(z.object({ target, count: z.number().int(), eventIds })),
    byActor: z.array(z.object({ actor, count: z.number().int(), eventIds })),
    byRule: z.array(z.object({ policyId: z.string(), name: z.string(), type: z.string(), count: z.number().int(), eventIds })),
  })
  .meta({ id: 'PolicyImpactOutcome' });

const impact = z
  .object({
    policy: z.object({
      id: z.string(),
      name: z.string(),
      type: z.string(),
      mode: z.string(),
      change: z.enum(['added', 'replaced']).describe('added: a new policy; replaced: an existing one, as the patch would leave it'),
    }),
    window: z.object({ from: z.string(), to: z.string() }),
    examined: z.number().int(),
    limit: z.number().int(),
    truncated: z.boolean().describe('the window holds more decisions than limit: only the first limit were judged'),
    newlyRefused: outcome.describe('allowed when recorded, refused with the draft'),
    newlyAllowed: outcome.describe('refused when recorded, allowed with the draft'),
    unchanged: z.object({ count: z.number().int() }),
    notJudged: z
      .object({ count: z.number().int(), eventIds })
      .describe('decisions that recorded no count for the window of a draft rate limit, so cannot judge it'),
  })
  .meta({ id: 'PolicyImpact' });

export function policyRoutes(policies: PolicyCommands): Route[] {
  const admin = { tag: 'policies', access: rolesFrom('admin'), idempotent: true } as const;
  const recorded = { status: 202, schema: writeResult, description: 'the change to the policy set is recorded' };
  return [
    route({
      ...admin,
      method: 'post',
      path: '/policies',
      operationId: 'createPolicy',
      summary: 'Create a policy',
      body: policyBody as unknown as z.ZodType<PolicyBody>,
      success: { status: 201, schema: writeResult, description: 'the policy is in the set; `revision` is the set’s' },
      handle: async ({ body, context, newId }) => created(await policies.create(newId(), body, context), '/policies'),
    }),
    route({
      ...admin,
      method: 'patch',
      path: '/policies/:id',
      operationId: 'updatePolicy',
      summary: 'Update, enable or disable a policy',
      body: policyPatchBody,
      success: recorded,
      handle: async ({ body, params, context }) => accepted(await policies.update(pathId(params, 'policy'), body, context)),
    }),
    route({
      ...admin,
      method: 'delete',
      path: '/policies/:id',
      operationId: 'deletePolicy',
      summary: 'Delete a policy',
      success: recorded,
      handle: async ({ params, context }) => accepted(await policies.delete(pathId(params, 'policy'), context)),
    }),
    route({
      method: 'post',
      path: '/policies/evaluate',
      operationId: 'evaluatePolicies',
      summary: 'Evaluate a hypothetical change',
      tag: 'policies',
      access: rolesFrom('operator', { system: true }),
      idempotent: false,
      body: z.strictObject({ change: proposedChange }),
      success: { status: 200, schema: whatIf, description: 'the verdict the change would get now; nothing is recorded' },
      handle: async ({ body, context }) => ({ status: 200, body: await policies.whatIf(body.change, context) }),
    }),
    route({
      method: 'get',
      path: '/policy-decisions/:id/replay',
      operationId: 'replayPolicyDecision',
      summary: 'Replay a recorded policy decision',
      tag: 'policies',
      access: rolesFrom('viewer', { system: true }),
      idempotent: false,
      success: { status: 200, schema: replay, description: 'the decision re-run with the policy set and inputs it recorded' },
      handle: async ({ params }) => ({ status: 200, body: await policies.replay(pathId(params, 'policy decision')) }),
    }),
    route<z.infer<typeof impactRequest>, z.infer<typeof impactQuery>>({
      method: 'post',
      path: '/policies/impact',
      operationId: 'policyImpact',
      summary: 'Judge recorded decisions again with a draft policy',
      tag: 'policies',
      access: rolesFrom('admin'),
      idempotent: false,
      body: impactRequest,
      query: impactQuery,
      success: {
        status: 200,
        schema: impact,
        description: 'which decisions of the window the draft would have refused or let through, grouped by target, actor and rule; nothing is recorded',
      },
      handle: async ({ body, query }) => ({ status: 200, body: await policies.impact(body, query.maxDecisions) }),
    }),
  ];
}
