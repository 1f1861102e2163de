// The port through which reactors change a Kubernetes cluster and learn what it did.
import type { Strategy } from '../domain/deployment.js';
import type { WorkloadSpec } from '../domain/workload.js';

/** The kinds of object Sentinel manages: Deployments for inference, Jobs for training and batch, StatefulSets on request. */
export type WorkloadKind = 'Deployment' | 'Job' | 'StatefulSet';

/** Where one managed object lives. */
export interface ObjectRef {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

/** Labels and annotations Sentinel writes on every object it manages, so a watch can find them and say whose they are. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'sentinel';
export const DEPLOYMENT_ID_LABEL = 'sentinel.io/deployment-id';
export const REVISION_ANNOTATION = 'sentinel.io/revision';
export const RESTARTED_AT_ANNOTATION = 'sentinel.io/restarted-at';
/** On a canary's or a blue/green preview's object and its pods: which side of a rollout they are. The stable side carries none. */
export const ROLLOUT_ROLE_LABEL = 'sentinel.io/rollout-role';
/**
 * On the pods of a canary or a preview, instead of the deployment id: the deployment whose rollout they belong to. So a
 * selector on the deployment id (the stable Service, the health queries) finds the stable side's pods alone, and a
 * selector on this label and the role finds one side's.
 */
export const ROLLOUT_OF_LABEL = 'sentinel.io/rollout-of';
/** The name of a canary's object: the deployment's object's name with this suffix. */
export const CANARY_SUFFIX = '-canary';
/** The name of a blue/green preview's object and of its Service: the deployment's object's name with this suffix. */
export const PREVIEW_SUFFIX = '-preview';

/** The side objects of a rollout, next to the deployment's own (stable) object. */
export type RolloutRole = 'canary' | 'preview';
/** A workload label that asks for a StatefulSet instead of the kind its type implies. */
export const KIND_LABEL = 'sentinel.io/kind';

/** What Sentinel wants running for one revision of a deployment. */
export interface DesiredWorkload {
  deploymentId: string;
  revision: number;
  spec: WorkloadSpec;
  replicas: number;
  strategy: Strategy;
  /** Extra node selector terms, from a reschedule; the GPU SKU selector is added from the spec. */
  nodeSelector?: Record<string, string>;
  /** A restart stamps the pod template so the controller replaces every pod. */
  restartedAt?: string;
  /** How long a rollout may make no progress before the cluster reports ProgressDeadlineExceeded. */
  progressDeadlineSeconds?: number;
  /**
   * `canary`: the canary's object of a canary rollout, named `<name>-canary`; `preview`: a blue/green rollout's preview,
   * named `<name>-preview`. Each next to the stable one.
   */
  role?: RolloutRole;
}

/** The part of a pod template Sentinel decides, as it is on the cluster; compared field by field to find drift. */
export interface TemplateFacts {
  image: string;
  command?: string[];
  args?: string[];
  env: Record<string, string>;
  cpu: string;
  memory: string;
  gpus?: number;
  nodeSelector: Record<string, string>;
}

/** A managed object as the cluster has it now. */
export interface LiveWorkload {
  ref: ObjectRef;
  deploymentId: string;
  revision: number;
  resourceVersion: string;
  generation: number;
  /** Absent for a Job, which has parallelism instead. */
  replicas?: number;
  template: TemplateFacts;
  rollout: RolloutStatus;
  /** A rollout's side object (canary or preview), which the rollout reactor drives and the cluster reactor leaves alone. */
  role?: RolloutRole;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

/** How far the controller has got with the object's current generation. */
export interface RolloutStatus {
  observedGeneration: number;
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  conditions: Condition[];
}

export interface ScaleResult {
  /** False when something else (an HPA) owns the replica count; Sentinel then leaves it alone. */
  scaled: boolean;
  detail?: string;
}

export interface DrainOptions {
  /** Give up on a pod whose eviction is still refused (PDB, 429) after this long, and report it. */
  evictionTimeoutMs: number;
}

export interface DrainReport {
  node: string;
  evicted: string[];
  /** Pods whose eviction was still refused when the timeout ran out, with the last reason the API gave. */
  stuck: { pod: string; reason: string }[];
}

/** A managed object was added, changed or removed on the cluster, by anyone. */
export interface ManagedChange {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  workload: LiveWorkload;
}

export interface ManagedWatch {
  stop(): Promise<void>;
}

/** Whether a running watch reaches the cluster, told when that changes: a failure comes with what failed. */
export type ConnectionReport = { connected: true } | { connected: false; cause: string };

/**
 * What the cluster answered when an operation cannot succeed by retrying: a 4xx that will not heal
 * (invalid object, forbidden, quota refused). Transient failures (5xx, timeouts, 429) are retried inside
 * the driver and only surface as this error once the retries are spent, with `transient: true`.
 */
export class ClusterError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly transient: boolean,
  ) {
    super(message);
    this.name = 'ClusterError';
  }
}

/** One Kubernetes cluster, as a reactor drives it. Every write is idempotent: doing it twice changes nothing. */
export interface ClusterDriver {
  /** The object kind and name a desired workload is written as. */
  refFor(desired: Pick<DesiredWorkload, 'deploymentId' | 'spec' | 'role'>): ObjectRef;
  /** Server-side apply (field manager `sentinel`) of the object for this revision. */
  apply(desired: DesiredWorkload): Promise<LiveWorkload>;
  /** Sets replicas through the scale subresource, unless an HPA owns them. */
  scale(ref: ObjectRef, replicas: number): Promise<ScaleResult>;
  /** Replaces every pod by stamping the pod template. */
  restart(ref: ObjectRef, at: string): Promise<void>;
  /** Deletes the object and, in the background, what it owns. Deleting what is already gone succeeds. */
  delete(ref: ObjectRef): Promise<void>;
  /** The object as it is now, or undefined when it does not exist. */
  read(ref: ObjectRef): Promise<LiveWorkload | undefined>;
  cordon(node: string): Promise<void>;
  uncordon(node: string): Promise<void>;
  /** Cordons the node and evicts its pods through the Eviction API, honouring PodDisruptionBudgets. */
  drain(node: string, options: DrainOptions): Promise<DrainReport>;
  /**
   * Follows every Sentinel-managed object (list, then watch, re-listing after 410 Gone or a dropped watch). Fails
   * when the first list cannot be had; after that, `onConnection` hears when the watch loses the cluster and when it
   * has it back.
   */
  watch(onChange: (change: ManagedChange) => void, onConnection?: (report: ConnectionReport) => void): Promise<ManagedWatch>;
  /**
   * The Services and Gateway API routes of the cluster, through which blue/green switches and a routed canary weighs
   * traffic; absent where the driver cannot manage them (such rollouts are then aborted at their start, saying why).
   */
  readonly traffic?: TrafficDriver;
  /**
   * Lets go of the cluster: every watch stops, and every call after this fails (transiently, so that a reaction
   * caught in between is dropped rather than recorded). For a cluster deregistered, or whose credentials changed.
   */
  close(): Promise<void>;
}

/** Where one Service (or route) lives. */
export interface NamedRef {
  namespace: string;
  name: string;
}

/** The one port a rollout's Services expose: 80, to the pods' 8000 (vLLM's OpenAI server's default). */
export const SERVICE_PORT = { name: 'http', port: 80, targetPort: 8000 } as const;

/** A Service Sentinel keeps for a rollout: the pods it sends traffic to, by label. */
export interface DesiredService extends NamedRef {
  deploymentId: string;
  selector: Record<string, string>;
}

/** A Service as the cluster has it. */
export interface LiveService extends NamedRef {
  deploymentId: string;
  selector: Record<string, string>;
  resourceVersion: string;
}

/**
 * One backend of a route, a Service, and the share of its requests it gets (a Gateway API weight, out of the sum of
 * them). A Service in another namespace than the route's needs a ReferenceGrant there, as the Gateway API requires.
 */
export interface BackendWeight {
  service: string;
  namespace: string;
  weight: number;
}

/** Services, and the routes in front of them. Every write is idempotent. */
export interface TrafficDriver {
  /** Server-side apply (field manager `sentinel`): creates the Service, or patches its selector to the one given. */
  applyService(service: DesiredService): Promise<LiveService>;
  readService(ref: NamedRef): Promise<LiveService | undefined>;
  /** Deleting what is already gone succeeds. */
  deleteService(ref: NamedRef): Promise<void>;
  /**
   * Sets the weights of the route's backend references that name one of `backends`' Services, in every rule that
   * names any of them (a rule naming one gets the others added next to it); other backends and rules are left as they
   * are. Fails, without retrying, when the route does not exist.
   */
  setRouteWeights(route: NamedRef, backends: BackendWeight[]): Promise<void>;
}

/** The template facts a desired workload should produce on the cluster: what drift is measured against. */
export function desiredTemplate(desired: DesiredWorkload): TemplateFacts {
  const { spec } = desired;
  return {
    image: spec.image,
    ...(spec.command ? { command: spec.command } : {}),
    ...(spec.args ? { args: spec.args } : {}),
    env: spec.env ?? {},
    cpu: spec.resources.cpu,
    memory: spec.resources.memory,
    ...(spec.resources.gpu ? { gpus: spec.resources.gpu.count } : {}),
    nodeSelector: {
      ...(spec.resources.gpu ? { [GPU_SKU_NODE_LABEL]: spec.resources.gpu.sku } : {}),
      ...desired.nodeSelector,
    },
  };
}

/** The node label that names a node's GPU model, as NVIDIA's GPU feature discovery sets it. */
export const GPU_SKU_NODE_LABEL = 'nvidia.com/gpu.product';
