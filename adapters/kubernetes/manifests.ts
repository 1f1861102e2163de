// Translates between what Sentinel wants running (DesiredWorkload) and Kubernetes objects: manifests out, LiveWorkload in.
import type { V1Container, V1Deployment, V1Job, V1ObjectMeta, V1PodTemplateSpec, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import {
  CANARY_SUFFIX,
  DEPLOYMENT_ID_LABEL,
  KIND_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  PREVIEW_SUFFIX,
  RESTARTED_AT_ANNOTATION,
  REVISION_ANNOTATION,
  ROLLOUT_OF_LABEL,
  ROLLOUT_ROLE_LABEL,
  SERVICE_PORT,
  desiredTemplate,
  type Condition,
  type DesiredService,
  type DesiredWorkload,
  type LiveService,
  type LiveWorkload,
  type ObjectRef,
  type RolloutStatus,
  type TemplateFacts,
  type WorkloadKind,
} from '../../reactors/cluster-driver.js';

/** The container that runs the workload; the only one Sentinel writes or reads facts from. */
export const MAIN_CONTAINER = 'main';
/** The extended resource the NVIDIA device plugin advertises. */
export const GPU_RESOURCE = 'nvidia.com/gpu';

export type WorkloadObject = V1Deployment | V1StatefulSet | V1Job;

/** Deployments serve inference, Jobs run training and batch to completion; a workload label can ask for a StatefulSet. */
export function kindFor(desired: Pick<DesiredWorkload, 'spec'>): WorkloadKind {
  if (desired.spec.labels[KIND_LABEL] === 'StatefulSet') return 'StatefulSet';
  return desired.spec.type === 'inference' ? 'Deployment' : 'Job';
}

const ROLE_SUFFIX = { canary: CANARY_SUFFIX, preview: PREVIEW_SUFFIX } as const;

export function refFor(desired: Pick<DesiredWorkload, 'deploymentId' | 'spec' | 'role'>): ObjectRef {
  const name = desired.role ? `${desired.spec.name}${ROLE_SUFFIX[desired.role]}` : desired.spec.name;
  return { kind: kindFor(desired), namespace: desired.spec.namespace, name };
}

export interface RenderOptions {
  /**
   * Leave `spec.replicas` out, so that server-side apply gives up ownership of it: used when a
   * HorizontalPodAutoscaler owns the replica count and Sentinel must not fight it.
   */
  omitReplicas?: boolean;
}

/** The object Sentinel server-side applies for one revision of a deployment. */
export function renderManifest(desired: DesiredWorkload, options: RenderOptions = {}): WorkloadObject {
  const ref = refFor(desired);
  const metadata: V1ObjectMeta = {
    name: ref.name,
    namespace: ref.namespace,
    labels: managedLabels(desired),
    annotations: { [REVISION_ANNOTATION]: String(desired.revision) },
  };
  const replicas = options.omitReplicas ? {} : { replicas: desired.replicas };
  // A side object selects its own pods only; the stable side's selector is what it always was (a selector cannot change).
  const selector = { matchLabels: podSelector(desired) };

  switch (ref.kind) {
    case 'Deployment':
      return {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata,
        spec: {
          ...replicas,
          selector,
          strategy: rollingUpdate(desired),
          ...(desired.progressDeadlineSeconds !== undefined ? { progressDeadlineSeconds: desired.progressDeadlineSeconds } : {}),
          template: podTemplate(desired, 'Always'),
        },
      } satisfies V1Deployment;
    case 'StatefulSet':
      return {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata,
        spec: {
          ...replicas,
          selector,
          // Clusters before 1.32 require a governing Service name; nothing Sentinel runs resolves pods through it.
          serviceName: ref.name,
          updateStrategy: { type: 'RollingUpdate' },
          template: podTemplate(desired, 'Always'),
        },
      } satisfies V1StatefulSet;
    case 'Job':
      return {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata,
        spec: {
          // No selector: the Job controller generates one from the Job's uid, and rejects a hand-written one.
          parallelism: desired.replicas,
          backoffLimit: 3,
          template: podTemplate(desired, 'OnFailure'),
        },
      } satisfies V1Job;
  }
}

/** Workload labels go on the object and its pods; Sentinel's own labels are written last so a workload cannot forge them. */
function managedLabels(desired: DesiredWorkload): Record<string, string> {
  return {
    ...desired.spec.labels,
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [DEPLOYMENT_ID_LABEL]: desired.deploymentId,
    ...(desired.role ? { [ROLLOUT_ROLE_LABEL]: desired.role } : {}),
  };
}

/** The labels that pick one object's pods: the deployment id for the stable side, the rollout and role for a side object. */
function podSelector(desired: Pick<DesiredWorkload, 'deploymentId' | 'role'>): Record<string, string> {
  return desired.role ? { [ROLLOUT_OF_LABEL]: desired.deploymentId, [ROLLOUT_ROLE_LABEL]: desired.role } : { [DEPLOYMENT_ID_LABEL]: desired.deploymentId };
}

/**
 * A side object's pods carry the rollout they belong to instead of the deployment id, so that what selects the
 * deployment's pods by its id (the stable Service, health queries) does not take them for the stable side's.
 */
function podLabels(desired: DesiredWorkload): Record<string, string> {
  if (!desired.role) return managedLabels(desired);
  const { [DEPLOYMENT_ID_LABEL]: _deploymentId, ...rest } = managedLabels(desired);
  return { ...rest, [ROLLOUT_OF_LABEL]: desired.deploymentId };
}

/** The Service Sentinel server-side applies for a rollout: its one port, and the pods it selects. */
export function renderService(service: DesiredService): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: service.name,
      namespace: service.namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [DEPLOYMENT_ID_LABEL]: service.deploymentId },
    },
    spec: { type: 'ClusterIP', selector: service.selector, ports: [{ ...SERVICE_PORT, protocol: 'TCP' }] },
  };
}

export function toLiveService(service: V1Service): LiveService {
  const metadata = service.metadata ?? {};
  return {
    namespace: metadata.namespace ?? '',
    name: metadata.name ?? '',
    deploymentId: metadata.labels?.[DEPLOYMENT_ID_LABEL] ?? '',
    selector: { ...service.spec?.selector },
    resourceVersion: metadata.resourceVersion ?? '',
  };
}

function rollingUpdate(desired: DesiredWorkload): NonNullable<V1Deployment['spec']>['strategy'] {
  const { strategy } = desired;
  if (strategy.type === 'rolling') {
    return { type: 'RollingUpdate', rollingUpdate: { maxSurge: strategy.maxSurge, maxUnavailable: strategy.maxUnavailable } };
  }
  // A canary's weight is carried out by the rollout reactor through replica counts of two objects; each object
  // itself (the stable side taking the new spec on completion, a canary's own pods) rolls with Kubernetes' defaults.
  return { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } };
}

function podTemplate(desired: DesiredWorkload, restartPolicy: 'Always' | 'OnFailure'): V1PodTemplateSpec {
  const facts = desiredTemplate(desired);
  return {
    metadata: {
      labels: podLabels(desired),
      ...(desired.restartedAt ? { annotations: { [RESTARTED_AT_ANNOTATION]: desired.restartedAt } } : {}),
    },
    spec: {
      restartPolicy,
      containers: [mainContainer(facts)],
      ...(Object.keys(facts.nodeSelector).length > 0 ? { nodeSelector: sortedRecord(facts.nodeSelector) } : {}),
    },
  };
}

function mainContainer(facts: TemplateFacts): V1Container {
  const env = Object.keys(facts.env)
    .sort()
    .map((name) => ({ name, value: facts.env[name]! }));
  const amounts = { cpu: facts.cpu, memory: facts.memory };
  return {
    name: MAIN_CONTAINER,
    image: facts.image,
    ...(facts.command ? { command: facts.command } : {}),
    ...(facts.args ? { args: facts.args } : {}),
    ...(env.length > 0 ? { env } : {}),
    resources: {
      requests: amounts,
      // A GPU is an extended resource: Kubernetes takes the limit as the request and allows no overcommit.
      limits: { ...amounts, ...(facts.gpus !== undefined ? { [GPU_RESOURCE]: String(facts.gpus) } : {}) },
    },
  };
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// ---- reading ------------------------------------------------------------------------------------------

/**
 * A managed object as the cluster has it. Tolerant of objects someone else edited: a missing label, annotation or
 * container reads as empty rather than failing, so drift shows up as a difference instead of an error.
 */
export function toLiveWorkload(kind: WorkloadKind, object: WorkloadObject): LiveWorkload {
  const metadata = object.metadata ?? {};
  const template = object.spec?.template;
  const revision = Number(metadata.annotations?.[REVISION_ANNOTATION]);
  return {
    ref: { kind, namespace: metadata.namespace ?? '', name: metadata.name ?? '' },
    deploymentId: metadata.labels?.[DEPLOYMENT_ID_LABEL] ?? '',
    revision: Number.isSafeInteger(revision) ? revision : 0,
    resourceVersion: metadata.resourceVersion ?? '',
    generation: metadata.generation ?? 0,
    ...(kind !== 'Job' ? { replicas: (object as V1Deployment | V1StatefulSet).spec?.replicas ?? 1 } : {}),
    template: templateFacts(template),
    rollout: kind === 'Job' ? jobRollout(object as V1Job) : replicaRollout(object as V1Deployment | V1StatefulSet),
    ...roleOf(metadata.labels?.[ROLLOUT_ROLE_LABEL]),
  };
}

function roleOf(label: string | undefined): { role?: 'canary' | 'preview' } {
  return label === 'canary' || label === 'preview' ? { role: label } : {};
}

function templateFacts(template: V1PodTemplateSpec | undefined): TemplateFacts {
  const containers = template?.spec?.containers ?? [];
  const main = containers.find((container) => container.name === MAIN_CONTAINER) ?? containers[0];
  const requests = main?.resources?.requests ?? {};
  const limits = main?.resources?.limits ?? {};
  const gpus = limits[GPU_RESOURCE] ?? requests[GPU_RESOURCE];
  const env: Record<string, string> = {};
  // Only literal values are Sentinel's; a value taken from a Secret or field ref reads as empty, which is drift.
  for (const variable of main?.env ?? []) env[variable.name] = variable.value ?? '';
  return {
    image: main?.image ?? '',
    ...(main?.command ? { command: main.command } : {}),
    ...(main?.args ? { args: main.args } : {}),
    env,
    cpu: requests.cpu ?? limits.cpu ?? '',
    memory: requests.memory ?? limits.memory ?? '',
    ...(gpus !== undefined ? { gpus: Number(gpus) } : {}),
    nodeSelector: { ...template?.spec?.nodeSelector },
  };
}

function replicaRollout(object: V1Deployment | V1StatefulSet): RolloutStatus {
  const status = object.status;
  const ready = status?.readyReplicas ?? 0;
  return {
    observedGeneration: status?.observedGeneration ?? 0,
    replicas: status?.replicas ?? 0,
    updatedReplicas: status?.updatedReplicas ?? 0,
    readyReplicas: ready,
    // StatefulSets before 1.22 report no availableReplicas; ready is the closest they say.
    availableReplicas: status?.availableReplicas ?? ready,
    conditions: conditions(status?.conditions),
  };
}

/**
 * A Job has no replica counts. Its running pods count as replicas, and a pod that finished successfully counts as
 * ready and available, so that a Job that did its work reads as fully rolled out. The Job controller does not
 * publish observedGeneration; its pod template cannot change, so the generation it acts on is the object's own.
 */
function jobRollout(job: V1Job): RolloutStatus {
  const status = job.status;
  const active = status?.active ?? 0;
  const succeeded = status?.succeeded ?? 0;
  const ready = (status?.ready ?? active) + succeeded;
  return {
    observedGeneration: job.metadata?.generation ?? 0,
    replicas: active + succeeded,
    updatedReplicas: active + succeeded,
    readyReplicas: ready,
    availableReplicas: ready,
    conditions: conditions(status?.conditions),
  };
}

function conditions(list: { type: string; status: string; reason?: string; message?: string }[] | undefined): Condition[] {
  return (list ?? []).map((condition) => ({
    type: condition.type,
    status: condition.status === 'True' || condition.status === 'False' ? condition.status : 'Unknown',
    ...(condition.reason ? { reason: condition.reason } : {}),
    ...(condition.message ? { message: condition.message } : {}),
  }));
}
