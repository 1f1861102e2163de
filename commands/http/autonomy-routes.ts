// Routes for the autonomy kill switch (admin): pause refuses every InfraMind plan until resume.
import { rolesFrom } from '../../domain/access.js';
import { pauseBody, resumeBody } from '../../domain/autonomy.js';
import type { AutonomyCommands } from '../autonomy-commands.js';
import { accepted } from './replies.js';
import { route, writeResult, type Route } from './route.js';

export function autonomyRoutes(autonomy: AutonomyCommands): Route[] {
  const admin = { tag: 'autonomy', access: rolesFrom('admin'), idempotent: true } as const;
  return [
    route({
      ...admin,
      method: 'post',
      path: '/autonomy/pause',
      operationId: 'pauseAutonomy',
      summary: 'Pause autonomy: refuse every InfraMind plan',
      body: pauseBody,
      success: { status: 202, schema: writeResult, description: 'autonomy is paused; InfraMind plans are refused and the refusals recorded' },
      handle: async ({ body, context }) => accepted(await autonomy.pause(body.reason, context)),
    }),
    route({
      ...admin,
      method: 'post',
      path: '/autonomy/resume',
      operationId: 'resumeAutonomy',
      summary: 'Resume autonomy: take InfraMind plans again',
      body: resumeBody,
      bodyOptional: true,
      success: { status: 202, schema: writeResult, description: 'autonomy runs again; InfraMind plans are judged as any other' },
      handle: async ({ body, context }) => accepted(await autonomy.resume(body.reason, context)),
    }),
  ];
}
