// The command API: every route row, the router built from them, and the OpenAPI document they describe.
import express, { type Router } from 'express';
import type { Logger } from 'pino';
import type { AccessService } from '../access.js';
import { ActionPlanCommands } from '../action-plan-commands.js';
import { AutonomyCommands } from '../autonomy-commands.js';
import type { Clock } from '../clock.js';
import { ClusterCommands, refuseClusterAccess, type ClusterAccessPolicy } from '../cluster-commands.js';
import type { CommandHandler } from '../command-handler.js';
import type { DecisionIndex } from '../decision-replay.js';
import { DeploymentCommands } from '../deployment-commands.js';
import { FleetFacts } from '../fleet-facts.js';
import { PolicyCommands } from '../policy-commands.js';
import type { PolicyEngine } from '../policy-engine.js';
import type { IdempotencyStore } from '../idempotency.js';
import type { SecretStore } from '../secrets.js';
import { WorkloadCommands } from '../workload-commands.js';
import { accessRoutes } from './access-routes.js';
import { actionPlanRoutes } from './action-plan-routes.js';
import { autonomyRoutes } from './autonomy-routes.js';
import { clusterRoutes } from './cluster-routes.js';
import { deploymentRoutes } from './deployment-routes.js';
import { openApiDocument } from './openapi.js';
import { policyRoutes } from './policy-routes.js';
import type { Route } from './route.js';
import { createCommandRouter } from './router.js';
import { workloadRoutes } from './workload-routes.js';

export interface CommandApiOptions {
  handler: CommandHandler;
  policy: PolicyEngine;
  access: AccessService;
  secrets: SecretStore;
  /** How clusters may be reached (kubeconfig policy); without one, every cluster's address and credentials are refused. */
  clusterAccess?: ClusterAccessPolicy;
  idempotency: IdempotencyStore;
  clock: Clock;
  logger: Logger;
  planTtlSeconds: number;
  version: string;
  /** Routes of the read side, served under the same auth and described in the same document. */
  queryRoutes?: readonly Route[];
  /** OpenAPI path items of what is served beside the route table (the live event stream), for the same document. */
  documentedPaths?: Record<string, Record<string, unknown>>;
  /** Where recorded decisions lie in the log (the read side's index), for their replay and policy impact runs. */
  decisionIndex?: DecisionIndex;
}

export function commandRoutes(options: Omit<CommandApiOptions, 'logger' | 'idempotency' | 'version'>): Route[] {
  const { handler, policy, clock } = options;
  const facts = new FleetFacts(handler);
  return [
    ...accessRoutes(options.access),
    ...clusterRoutes(new ClusterCommands(handler, options.secrets, options.clusterAccess ?? refuseClusterAccess)),
    ...workloadRoutes(new WorkloadCommands(handler, clock)),
    ...deploymentRoutes(new DeploymentCommands(handler, clock, policy)),
    ...actionPlanRoutes(new ActionPlanCommands(handler, clock, policy, facts, { defaultTtlSeconds: options.planTtlSeconds })),
    ...policyRoutes(new PolicyCommands(handler, handler.store, policy, facts, clock, options.decisionIndex)),
    ...autonomyRoutes(new AutonomyCommands(handler, clock)),
  ];
}

/** The router to mount at /api/v1. */
export function commandApi(options: CommandApiOptions): Router {
  const routes = [...commandRoutes(options), ...(options.queryRoutes ?? [])];
  const document = openApiDocument(routes, { version: options.version }, options.documentedPaths);
  const router = express.Router();
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  router.use(createCommandRouter({ routes, access: options.access, idempotency: options.idempotency, logger: options.logger }));
  return router;
}
