// Routes for policies (admin), what-if evaluation and the replay of recorded decisions.
import { z } from 'zod';
import { rolesFrom } from '../../domain/access.js';
import { policyBody, policyPatchBody, type PolicyBody } from '../../domain/policy.js';
import type { PolicyCommands } from '../policy-commands.js';
import { proposedChange } from '../simulated-changes.js';
import { accepted, created, pathId } from './replies.js';
import { route, writeResult, type Route } from './route.js';

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
  ];
}
