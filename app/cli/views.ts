// What the CLI reads from the query and command APIs: only the fields it shows, checked, the rest kept as sent.
import { z } from 'zod';

const time = z.string().nullable();
const lifecycle = { revision: z.number(), createdAt: time, updatedAt: time };
const labels = z.record(z.string(), z.string());

export const writeResult = z.looseObject({ id: z.string(), revision: z.number(), position: z.string().nullable() });
export type WriteResult = z.infer<typeof writeResult>;

export const principal = z.looseObject({ id: z.string(), kind: z.string(), name: z.string(), role: z.string() });

export const clusterView = z.looseObject({
  id: z.string(),
  name: z.string(),
  apiServer: z.string(),
  region: z.string(),
  labels,
  gpuSkus: z.array(z.string()),
  credentials: z.looseObject({ source: z.string(), path: z.string().optional() }),
  status: z.string(),
  cordonReason: z.string().nullable(),
  connection: z.looseObject({ state: z.string(), since: z.string().nullable(), cause: z.string().nullable() }),
  ...lifecycle,
});
export type ClusterView = z.infer<typeof clusterView>;

export const workloadView = z.looseObject({
  id: z.string(),
  name: z.string(),
  namespace: z.string(),
  type: z.string(),
  status: z.string(),
  labels,
  specRevision: z.number(),
  spec: z.record(z.string(), z.unknown()),
  retiredReason: z.string().nullable(),
  ...lifecycle,
  revisions: z
    .array(z.looseObject({ specRevision: z.number(), changes: z.record(z.string(), z.unknown()).nullable(), recordedAt: time }))
    .optional(),
});
export type WorkloadView = z.infer<typeof workloadView>;

const deploymentRevision = z.looseObject({
  revision: z.number(),
  workloadRevision: z.number(),
  rollbackOf: z.number().nullable(),
  origin: z.string(),
  reason: z.string().nullable(),
  recordedAt: time,
  becameAvailable: z.boolean(),
  availableAt: time,
});

export const deploymentView = z.looseObject({
  id: z.string(),
  workloadId: z.string(),
  clusterId: z.string(),
  status: z.string(),
  paused: z.boolean(),
  replicas: z.number(),
  readyReplicas: z.number().nullable(),
  updatedReplicas: z.number().nullable(),
  strategy: z.looseObject({ type: z.string() }),
  driftPolicy: z.string(),
  currentRevision: z.number(),
  workloadRevision: z.number(),
  rollout: z.looseObject({ event: z.string(), revision: z.number().nullable(), cause: z.string().nullable(), at: time }).nullable(),
  lastCause: z.string().nullable(),
  ...lifecycle,
  revisions: z.array(deploymentRevision).optional(),
});
export type DeploymentView = z.infer<typeof deploymentView>;

export const deploymentHistory = z.looseObject({
  id: z.string(),
  status: z.string(),
  timeline: z.array(
    z.looseObject({ type: z.string(), status: z.string(), revision: z.number(), at: time, detail: z.record(z.string(), z.unknown()).nullable() }),
  ),
});
export type DeploymentHistory = z.infer<typeof deploymentHistory>;

const planActionView = z.looseObject({
  index: z.number(),
  kind: z.string(),
  target: z.looseObject({ kind: z.string(), id: z.string() }),
  action: z.record(z.string(), z.unknown()),
  status: z.string(),
  detail: z.string().nullable(),
  error: z.string().nullable(),
});

export const planView = z.looseObject({
  id: z.string(),
  source: z.string(),
  actor: z.looseObject({ id: z.string(), kind: z.string() }),
  reason: z.string(),
  status: z.string(),
  shadow: z.boolean(),
  submittedAt: z.string(),
  expiresAt: z.string(),
  violations: z.array(z.looseObject({ path: z.string().optional(), message: z.string() })).nullable(),
  cause: z.string().nullable(),
  actions: z.array(planActionView),
  ...lifecycle,
});
export type PlanView = z.infer<typeof planView>;

export function pageOf<S extends z.ZodType>(item: S) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}
