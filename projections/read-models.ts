// The read models the query API serves, one file each under read-models/: each a projector (events → tables) with
// the queries that read its tables. Adding one is a file there and a line in READ_MODELS.
import { fleetCostProjector } from './fleet-cost.js';
import type { Projector } from './projector.js';
import { actionPlans } from './read-models/action-plans.js';
import { clusters } from './read-models/clusters.js';
import { deploymentUptime } from './read-models/deployment-uptime.js';
import { deployments } from './read-models/deployments.js';
import { nodes } from './read-models/nodes.js';
import { policies } from './read-models/policies.js';
import { policyDecisions } from './read-models/policy-decisions.js';
import type { ReadModel } from './read-models/query.js';
import { workloads } from './read-models/workloads.js';

export { actionPlans, PLAN_STATUSES } from './read-models/action-plans.js';
export { clusters } from './read-models/clusters.js';
export { DEPLOYMENT_STATUSES, deploymentHistory, deployments } from './read-models/deployments.js';
export { policies } from './read-models/policies.js';
export { policyDecisions } from './read-models/policy-decisions.js';
export { decodeCursor, encodeCursor, instant, InvalidQuery, MAX_PAGE_SIZE, ORDERS, type Order, type Page, type PageOf, type ReadModel } from './read-models/query.js';
export { workloads } from './read-models/workloads.js';

export const READ_MODELS = { clusters, workloads, deployments, actionPlans, policies, policyDecisions, nodes, deploymentUptime } satisfies Record<string, ReadModel>;

/** Every read model's projector, for the projection runtime. */
export const READ_MODEL_PROJECTORS: readonly Projector[] = [
  ...Object.values(READ_MODELS).map((model) => model.projector as Projector),
  fleetCostProjector as Projector,
];
