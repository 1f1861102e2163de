// Routes for action plans: people (operator and up) and InfraMind's service accounts submit and cancel them.
import { rolesFrom } from '../../domain/access.js';
import { actionPlanBody, cancelBody } from '../../domain/action-plan.js';
import type { ActionPlanCommands } from '../action-plan-commands.js';
import { accepted, pathId } from './replies.js';
import { route, writeResult, type Route } from './route.js';

export function actionPlanRoutes(plans: ActionPlanCommands): Route[] {
  const common = { tag: 'action plans', access: rolesFrom('operator', { system: true }), idempotent: true } as const;
  return [
    route({
      ...common,
      method: 'post',
      path: '/action-plans',
      operationId: 'submitActionPlan',
      summary: 'Submit an action plan',
      body: actionPlanBody,
      // Policy judges the plan as it is submitted: an admin may push it through a change freeze.
      headers: ['X-Sentinel-Emergency'],
      success: { status: 202, schema: writeResult, description: 'the plan is recorded (Pending) and goes to validation', location: true },
      handle: async ({ body, principal, context, newId }) => {
        const result = await plans.submit(newId(), body, principal!, context);
        return { ...accepted(result), location: `/action-plans/${result.id}` };
      },
    }),
    route({
      ...common,
      method: 'post',
      path: '/action-plans/:id/cancel',
      operationId: 'cancelActionPlan',
      summary: 'Cancel an action plan',
      body: cancelBody,
      bodyOptional: true,
      success: { status: 202, schema: writeResult, description: 'the plan is cancelled' },
      handle: async ({ body, params, context }) => accepted(await plans.cancel(pathId(params, 'action plan'), body.reason, context)),
    }),
  ];
}
