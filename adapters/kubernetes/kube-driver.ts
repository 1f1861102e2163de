// The ClusterDriver on a real Kubernetes API server, through @kubernetes/client-node 1.4.
import { Agent as HttpsAgent } from 'node:https';
import {
  ApiException,
  AppsV1Api,
  AutoscalingV2Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  ListWatch,
  PatchStrategy,
  ServerConfiguration,
  Watch,
  createConfiguration,
  setHeaderOptions,
  type Configuration,
  type KubeConfig,
  type KubernetesListObject,
  type RequestContext,
  type SecurityAuthentication,
  type V1Deployment,
  type V1Pod,
  type V1Service,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Credentials } from '../../domain/cluster.js';
import {
  ClusterError,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  RESTARTED_AT_ANNOTATION,
  type ClusterDriver,
  type BackendWeight,
  type ConnectionReport,
  type DesiredService,
  type DesiredWorkload,
  type DrainOptions,
  type DrainReport,
  type LiveService,
  type LiveWorkload,
  type ManagedChange,
  type ManagedWatch,
  type NamedRef,
  type ObjectRef,
  type ScaleResult,
  type TrafficDriver,
  type WorkloadKind,
} from '../../reactors/cluster-driver.js';
import { retrying } from '../retry.js';
import { inChildSpan, SpanKind } from '../tracing.js';
import { CredentialsError, kubeConfigFor, type KubeConfigOptions, type SecretLookup } from './kubeconfig.js';
import { HttpRouteRouter } from './http-route-router.js';
import { refFor, renderManifest, renderService, toLiveService, toLiveWorkload, type WorkloadObject } from './manifests.js';
import {
  DEFAULT_RETRY_POLICY,
  KubeApiError,
  backoffDelay,
  describeFailure,
  requestTimeout,
  toClusterError,
  withRetry,
  type RetryOptions,
  type RetryPolicy,
} from './retry.js';

/** The field manager of every write Sentinel makes, so server-side apply can tell its fields from everyone else's. */
export const FIELD_MANAGER = 'sentinel';
/** Holds `spec.replicas` while Sentinel hands it to a HorizontalPodAutoscaler. */
export const HANDOVER_FIELD_MANAGER = 'sentinel-handover-to-hpa';

export interface KubeDriverOptions {
  logger: Logger;
  retry?: Partial<RetryPolicy>;
  /**
   * How long the API server keeps one watch open before ending it (the informer then resumes from the last
   * resourceVersion). Random between 5 and 10 minutes by default, as client-go does, so watches do not all
   * reconnect at once.
   */
  watchTimeoutSeconds?: number;
}

const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;
const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';

export class KubeClusterDriver implements ClusterDriver, TrafficDriver {
  private readonly policy: RetryPolicy;
  private readonly authentication: PooledAuthentication;
  private readonly watches = new Set<ManagedObjectsWatch>();
  private closed = false;
  private readonly apps: AppsV1Api;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly autoscaling: AutoscalingV2Api;
  private readonly routes: HttpRouteRouter;
  readonly traffic: TrafficDriver = this;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly options: KubeDriverOptions,
  ) {
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.authentication = new PooledAuthentication(kubeConfig, () => this.closed);
    const configuration = apiConfiguration(kubeConfig, this.authentication, this.policy.requestTimeoutMs);
    this.apps = new AppsV1Api(configuration);
    this.batch = new BatchV1Api(configuration);
    this.core = new CoreV1Api(configuration);
    this.autoscaling = new AutoscalingV2Api(configuration);
    this.routes = new HttpRouteRouter(new CustomObjectsApi(configuration), (what, request, options) => this.call(what, request, options));
  }

  refFor(desired: Pick<DesiredWorkload, 'deploymentId' | 'spec' | 'role'>): ObjectRef {
    return refFor(desired);
  }

  async apply(desired: DesiredWorkload): Promise<LiveWorkload> {
    const ref = refFor(desired);
    const autoscaler = ref.kind === 'Job' ? undefined : await this.autoscalerOf(ref);
    if (autoscaler !== undefined) await this.handReplicasOver(ref, autoscaler);
    const body = renderManifest(desired, { omitReplicas: autoscaler !== undefined });
    const request = { name: ref.name, namespace: ref.namespace, body, fieldManager: FIELD_MANAGER, force: true };
    const applyPatch = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    // The answer to an apply is the object as stored, so it is the live object without another read.
    const live = await this.call(`apply ${describe(ref)}`, (): Promise<WorkloadObject> => {
      switch (ref.kind) {
        case 'Deployment':
          return this.apps.patchNamespacedDeployment(request, applyPatch);
        case 'StatefulSet':
          return this.apps.patchNamespacedStatefulSet(request, applyPatch);
        case 'Job':
          return this.batch.patchNamespacedJob(request, applyPatch);
      }
    });
    return toLiveWorkload(ref.kind, live);
  }

  async scale(ref: ObjectRef, replicas: number): Promise<ScaleResult> {
    const autoscaler = await this.autoscalerOf(ref);
    if (autoscaler !== undefined) return { scaled: false, detail: `replicas are owned by HorizontalPodAutoscaler ${autoscaler}` };
    const { name, namespace } = ref;
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await this.call(`scale ${describe(ref)} to ${replicas}`, (): Promise<unknown> => {
      switch (ref.kind) {
        case 'Deployment':
          return this.apps.patchNamespacedDeploymentScale({ name, namespace, body: { spec: { replicas } }, fieldManager: FIELD_MANAGER }, merge);
        case 'StatefulSet':
          return this.apps.patchNamespacedStatefulSetScale({ name, namespace, body: { spec: { replicas } }, fieldManager: FIELD_MANAGER }, merge);
        case 'Job':
          // A Job has no scale subresource; how many pods run at once is its parallelism.
          return this.batch.patchNamespacedJob({ name, namespace, body: { spec: { parallelism: replicas } }, fieldManager: FIELD_MANAGER }, merge);
      }
    });
    return { scaled: true };
  }

  async restart(ref: ObjectRef, at: string): Promise<void> {
    if (ref.kind === 'Job') {
      throw new ClusterError(`restart ${describe(ref)}: a Job's pod template cannot change once it exists; delete the Job and apply it again`, undefined, false);
    }
    const { name, namespace } = ref;
    const body = { spec: { template: { metadata: { annotations: { [RESTARTED_AT_ANNOTATION]: at } } } } };
    const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    await this.call(`restart ${describe(ref)}`, (): Promise<unknown> =>
      ref.kind === 'Deployment'
        ? this.apps.patchNamespacedDeployment({ name, namespace, body, fieldManager: FIELD_MANAGER }, strategic)
        : this.apps.patchNamespacedStatefulSet({ name, namespace, body, fieldManager: FIELD_MANAGER }, strategic),
    );
  }

  async delete(ref: ObjectRef): Promise<void> {
    // Background: the object goes at once and the garbage collector removes its pods; for a Job the API's own
    // default would orphan them.
    const request = { name: ref.name, namespace: ref.namespace, propagationPolicy: 'Background' };
    try {
      await this.call(`delete ${describe(ref)}`, (): Promise<unknown> => {
        switch (ref.kind) {
          case 'Deployment':
            return this.apps.deleteNamespacedDeployment(request);
          case 'StatefulSet':
            return this.apps.deleteNamespacedStatefulSet(request);
          case 'Job':
            return this.batch.deleteNamespacedJob(request);
        }
      });
    } catch (error) {
      if (isStatus(error, 404)) return;
      throw error;
    }
  }

  async read(ref: ObjectRef): Promise<LiveWorkload | undefined> {
    const request = { name: ref.name, namespace: ref.namespace };
    try {
      const object = await this.call(`read ${describe(ref)}`, (): Promise<WorkloadObject> => {
        switch (ref.kind) {
          case 'Deployment':
            return this.apps.readNamespacedDeployment(request);
          case 'StatefulSet':
            return this.apps.readNamespacedStatefulSet(request);
          case 'Job':
            return this.batch.readNamespacedJob(request);
        }
      });
      return toLiveWorkload(ref.kind, object);
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  async applyService(service: DesiredService): Promise<LiveService> {
    const { name, namespace } = service;
    const body = renderService(service);
    const applyPatch = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    const live = await this.call(`apply Service ${namespace}/${name}`, (): Promise<V1Service> =>
      this.core.patchNamespacedService({ name, namespace, body, fieldManager: FIELD_MANAGER, force: true }, applyPatch),
    );
    return toLiveService(live);
  }

  async readService(ref: NamedRef): Promise<LiveService | undefined> {
    try {
      return toLiveService(await this.call(`read Service ${ref.namespace}/${ref.name}`, () => this.core.readNamespacedService({ name: ref.name, namespace: ref.namespace })));
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  async deleteService(ref: NamedRef): Promise<void> {
    try {
      await this.call(`delete Service ${ref.namespace}/${ref.name}`, () => this.core.deleteNamespacedService({ name: ref.name, namespace: ref.namespace }));
    } catch (error) {
      if (isStatus(error, 404)) return;
      throw error;
    }
  }

  setRouteWeights(route: NamedRef, backends: BackendWeight[]): Promise<void> {
    return this.routes.setWeights(route, backends);
  }

  cordon(node: string): Promise<void> {
    return this.setUnschedulable(node, true);
  }

  uncordon(node: string): Promise<void> {
    return this.setUnschedulable(node, false);
  }

  async drain(node: string, options: DrainOptions): Promise<DrainReport> {
    await this.cordon(node);
    const pods = await this.call(`list pods on node ${node}`, () =>
      this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` }),
    );
    // Mirror pods belong to the kubelet and DaemonSet pods would be recreated on the same node at once.
    const evictable = pods.items.filter((pod) => !isMirrorPod(pod) && !ownedByDaemonSet(pod));
    // Every pod gets its own eviction deadline, so they are evicted side by side, as kubectl drain does.
    const outcomes = await Promise.allSettled(evictable.map((pod) => this.evict(pod, options.evictionTimeoutMs)));
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    // Pods are named `namespace/name`: a node runs pods of many namespaces.
    const report: DrainReport = { node, evicted: [], stuck: [] };
    for (const outcome of outcomes) {
      if (outcome.status !== 'fulfilled') continue;
      if (outcome.value.stuck === undefined) report.evicted.push(outcome.value.pod);
      else report.stuck.push({ pod: outcome.value.pod, reason: outcome.value.stuck });
    }
    report.evicted.sort();
    report.stuck.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
    return report;
  }

  async watch(onChange: (change: ManagedChange) => void, onConnection?: (report: ConnectionReport) => void): Promise<ManagedWatch> {
    if (this.closed) throw closedError();
    const watch = new ManagedObjectsWatch(this.kubeConfig, this.options, this.policy, onChange, onConnection, [
      {
        kind: 'Deployment',
        path: '/apis/apps/v1/deployments',
        list: () => this.call('list managed Deployments', () => this.apps.listDeploymentForAllNamespaces({ labelSelector: MANAGED_SELECTOR })),
      },
      {
        kind: 'StatefulSet',
        path: '/apis/apps/v1/statefulsets',
        list: () => this.call('list managed StatefulSets', () => this.apps.listStatefulSetForAllNamespaces({ labelSelector: MANAGED_SELECTOR })),
      },
      {
        kind: 'Job',
        path: '/apis/batch/v1/jobs',
        list: () => this.call('list managed Jobs', () => this.batch.listJobForAllNamespaces({ labelSelector: MANAGED_SELECTOR })),
      },
    ]);
    this.watches.add(watch);
    watch.onStop(() => this.watches.delete(watch));
    await watch.start();
    return watch;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.watches].map((watch) => watch.stop()));
    this.authentication.close();
  }

  // ---- helpers ----------------------------------------------------------------------------------------

  /**
   * One call to the API server, tried again as the policy says. Inside a trace (a reaction's) it is a span named by
   * its verb, the first word of `what`; the watches' relists, outside any, start no trace of their own.
   */
  private call<T>(what: string, request: () => Promise<T>, options: Omit<RetryOptions, 'policy'> = {}): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    const attributes = { 'sentinel.kubernetes.call': what };
    return inChildSpan(`kubernetes ${what.split(' ', 1)[0]}`, { kind: SpanKind.CLIENT, attributes }, () =>
      withRetry(what, request, { policy: this.policy, ...options }),
    );
  }

  /** The HorizontalPodAutoscaler that sets the object's replicas, if one does. */
  private async autoscalerOf(ref: ObjectRef): Promise<string | undefined> {
    const autoscalers = await this.call(`list HorizontalPodAutoscalers in ${ref.namespace}`, () =>
      this.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: ref.namespace }),
    );
    const owner = autoscalers.items.find(
      (hpa) => hpa.spec?.scaleTargetRef.kind === ref.kind && hpa.spec.scaleTargetRef.name === ref.name,
    );
    return owner?.metadata?.name;
  }

  /**
   * Server-side apply deletes a field its manager stops applying when no other manager owns it, so the first apply
   * without replicas would reset them to 1. As the Kubernetes guide to handing replicas to an HPA does, a second
   * manager first applies the current count, and keeps the field when Sentinel lets go. The resourceVersion makes
   * it a read-modify-write: if the HPA writes in between, the API answers 409 and the count is read again.
   */
  private async handReplicasOver(ref: ObjectRef, autoscaler: string): Promise<void> {
    const { name, namespace } = ref;
    const applyPatch = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    await this.call(
      `hand the replicas of ${describe(ref)} to HorizontalPodAutoscaler ${autoscaler}`,
      async () => {
        let live: V1Deployment | V1StatefulSet;
        try {
          live =
            ref.kind === 'Deployment'
              ? await this.apps.readNamespacedDeployment({ name, namespace })
              : await this.apps.readNamespacedStatefulSet({ name, namespace });
        } catch (error) {
          // Not created yet: there is nothing to hand over, and the apply creates it without replicas.
          if (error instanceof ApiException && error.code === 404) return;
          throw error;
        }
        const replicas = live.spec?.replicas;
        if (replicas === undefined) return;
        const body = {
          apiVersion: 'apps/v1',
          kind: ref.kind,
          metadata: { name, namespace, resourceVersion: live.metadata?.resourceVersion },
          spec: { replicas },
        };
        const request = { name, namespace, body, fieldManager: HANDOVER_FIELD_MANAGER };
        if (ref.kind === 'Deployment') await this.apps.patchNamespacedDeployment(request, applyPatch);
        else await this.apps.patchNamespacedStatefulSet(request, applyPatch);
      },
      { conflicts: 'retry' },
    );
  }

  private async setUnschedulable(node: string, unschedulable: boolean): Promise<void> {
    await this.call(`${unschedulable ? 'cordon' : 'uncordon'} node ${node}`, () =>
      this.core.patchNode(
        { name: node, body: { spec: { unschedulable } }, fieldManager: FIELD_MANAGER },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      ),
    );
  }

  /**
   * Evicts one pod through the Eviction API. A 429 is the API saying a PodDisruptionBudget forbids it for now:
   * back off (from 100 ms, doubling, at most 1 s) and ask again until the deadline, then report the pod as stuck.
   */
  private async evict(pod: V1Pod, timeoutMs: number): Promise<{ pod: string; stuck?: string }> {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? '';
    const id = `${namespace}/${name}`;
    const deadline = Date.now() + timeoutMs;
    const body = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } };
    const refusedForNow = (error: unknown) => error instanceof KubeApiError && !error.transient && error.status === 429 && Date.now() < deadline;
    try {
      await retrying(() => this.call(`evict pod ${id}`, () => this.core.createNamespacedPodEviction({ name, namespace, body }), { tooManyRequests: 'fail' }), {
        backoff: EVICTION_BACKOFF,
        retryable: refusedForNow,
      });
      return { pod: id };
    } catch (error) {
      // Already gone is what an eviction is for.
      if (isStatus(error, 404)) return { pod: id };
      if (!(error instanceof KubeApiError) || error.transient) throw error;
      return { pod: id, stuck: `${error.reason ?? `HTTP ${error.status}`}: ${error.detail}` };
    }
  }
}

/** Between asks for an eviction a PodDisruptionBudget refuses: from 100 ms, doubling, at most 1 s. */
const EVICTION_BACKOFF = { baseMs: 100, maxMs: 1000 };

/** Builds the driver for a registered cluster from its recorded credentials. */
export async function createKubeClusterDriver(
  credentials: Credentials,
  lookupSecret: SecretLookup,
  options: KubeDriverOptions & KubeConfigOptions,
): Promise<KubeClusterDriver> {
  return new KubeClusterDriver(await kubeConfigFor(credentials, lookupSecret, options), options);
}

/** API objects built on this configuration bound every request with the timeout. */
function apiConfiguration(kubeConfig: KubeConfig, authentication: SecurityAuthentication, requestTimeoutMs: number): Configuration {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new CredentialsError('the kubeconfig has no current cluster to talk to');
  return createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: authentication },
    promiseMiddleware: [requestTimeout(requestTimeoutMs)],
  });
}

/**
 * The kubeconfig's authentication, over one keep-alive connection pool per driver: client-node builds a new agent,
 * and so a new TLS handshake, for every request. The pool keeps the TLS options (CA, client certificate) of the
 * first request; tokens, which rotate, still go on every request's headers. Proxy and plain-HTTP agents are left
 * as client-node makes them. Once the driver is closed, no request is authenticated (no credential plugin runs).
 */
class PooledAuthentication implements SecurityAuthentication {
  private pool: HttpsAgent | undefined;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly closed: () => boolean,
  ) {}

  getName(): string {
    return 'kubeconfig authentication over pooled connections';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    if (this.closed()) throw closedError();
    await this.kubeConfig.applySecurityAuthentication(context);
    const made = context.getAgent();
    if (!made || made.constructor !== HttpsAgent) return;
    this.pool ??= new HttpsAgent({ ...(made as HttpsAgent).options, keepAlive: true });
    context.setAgent(this.pool);
  }

  close(): void {
    this.pool?.destroy();
  }
}

function closedError(): ClusterError {
  return new ClusterError('this connection to the cluster is closed: the cluster was deregistered or its credentials changed', undefined, true);
}

function asClusterError(what: string, error: unknown): ClusterError {
  if (error instanceof ClusterError) return error;
  const failure = describeFailure(error);
  return toClusterError(what, failure, failure.transient, error);
}

function describe(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace}/${ref.name}`;
}

function isStatus(error: unknown, status: number): boolean {
  return error instanceof ClusterError && error.status === status;
}

function isMirrorPod(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[MIRROR_POD_ANNOTATION] !== undefined;
}

function ownedByDaemonSet(pod: V1Pod): boolean {
  return (pod.metadata?.ownerReferences ?? []).some((owner) => owner.kind === 'DaemonSet' && owner.controller !== false);
}

// ---- watch --------------------------------------------------------------------------------------------

interface WatchSource {
  kind: WorkloadKind;
  path: string;
  list: () => Promise<KubernetesListObject<WorkloadObject>>;
}

/**
 * Follows the managed objects of every kind with one client-node informer (ListWatch) each. The informer re-lists
 * after 410 Gone and resumes after a watch that ended cleanly; on any other error it stops, so this restarts it,
 * with backoff, from where it was.
 */
class ManagedObjectsWatch implements ManagedWatch {
  private stopped = false;
  private readonly stopListeners: (() => void)[] = [];
  private starting = true;
  private startError: ClusterError | undefined;
  /** What was last told through onConnection: the cause of the failure, or undefined while connected. */
  private reportedCause: string | undefined;
  private readonly informers: {
    kind: WorkloadKind;
    informer: ListWatch<WorkloadObject>;
    failures: number;
    /** Why this kind's watch is down, while it is. */
    failing?: string;
    timer?: NodeJS.Timeout;
  }[];

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: KubeDriverOptions,
    private readonly policy: RetryPolicy,
    private readonly onChange: (change: ManagedChange) => void,
    private readonly onConnection: ((report: ConnectionReport) => void) | undefined,
    sources: WatchSource[],
  ) {
    const timeoutSeconds = options.watchTimeoutSeconds ?? Math.round(300 * (1 + Math.random()));
    const watch = new BoundedWatch(kubeConfig, timeoutSeconds, () => this.stopped);
    this.informers = sources.map(({ kind, path, list }) => {
      const entry = { kind, informer: new ListWatch<WorkloadObject>(path, watch, list, false, MANAGED_SELECTOR), failures: 0 };
      entry.informer.on('add', (object) => this.deliver(entry, 'ADDED', object));
      entry.informer.on('update', (object) => this.deliver(entry, 'MODIFIED', object));
      entry.informer.on('delete', (object) => this.deliver(entry, 'DELETED', object));
      entry.informer.on('error', (error: unknown) => this.failed(entry, error));
      return entry;
    });
  }

  /** Lists and starts watching every kind; fails, leaving nothing running, when a first list cannot be had. */
  async start(): Promise<void> {
    const started = await Promise.allSettled(this.informers.map(({ informer }) => informer.start()));
    this.starting = false;
    for (const outcome of started) {
      if (outcome.status === 'rejected') this.startError ??= asClusterError('watch managed objects', outcome.reason);
    }
    if (this.startError) {
      await this.stop();
      throw this.startError;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.informers) clearTimeout(entry.timer);
    await Promise.all(this.informers.map(({ informer }) => informer.stop()));
    for (const listener of this.stopListeners.splice(0)) listener();
  }

  onStop(listener: () => void): void {
    this.stopListeners.push(listener);
  }

  private deliver(entry: (typeof this.informers)[number], type: ManagedChange['type'], object: WorkloadObject): void {
    if (this.stopped) return;
    entry.failures = 0;
    this.recovered(entry);
    try {
      this.onChange({ type, workload: toLiveWorkload(entry.kind, object) });
    } catch (error) {
      // client-node calls this from code that drops exceptions; say so here instead of losing it.
      this.options.logger.error({ err: error, kind: entry.kind, name: object.metadata?.name }, 'managed object change handler failed');
    }
  }

  private failed(entry: (typeof this.informers)[number], error: unknown): void {
    // Stopping aborts the open watch, which the informer reports as an error.
    if (this.stopped) return;
    const clusterError = asClusterError(`watch ${entry.kind}s`, error);
    if (this.starting) {
      this.startError ??= clusterError;
      return;
    }
    entry.failures += 1;
    // A watch that drops and resumes at once is routine (API servers and load balancers end them): the cluster is
    // lost when the API server refuses us, or when resuming fails too.
    if (!clusterError.transient || entry.failures > 1) entry.failing = clusterError.message;
    const delay = backoffDelay(entry.failures, this.policy);
    // Said once when the watch goes down, then quietly while it keeps trying: whoever listens records the outage.
    const level = entry.failures === 1 ? 'warn' : 'debug';
    this.options.logger[level]({ err: clusterError, kind: entry.kind, retryInMs: delay, failures: entry.failures }, 'watch of managed objects failed; resuming');
    this.report();
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.stopped) return;
      const failures = entry.failures;
      entry.informer.start().then(
        // The informer says a failed list through its error handler, not by rejecting: no new failure means it is back.
        () => {
          if (entry.failures === failures) this.recovered(entry);
        },
        (startError: unknown) => this.failed(entry, startError),
      );
    }, delay);
  }

  private recovered(entry: (typeof this.informers)[number]): void {
    if (entry.failing === undefined) return;
    entry.failing = undefined;
    this.options.logger.info({ kind: entry.kind }, 'watch of managed objects resumed');
    this.report();
  }

  /** Tells the listener when the watch as a whole loses the cluster or has it back (every kind watching again). */
  private report(): void {
    if (this.stopped || this.starting) return;
    const cause = this.informers.find((entry) => entry.failing !== undefined)?.failing;
    if (cause === this.reportedCause || (cause !== undefined && this.reportedCause !== undefined)) return;
    this.reportedCause = cause;
    try {
      this.onConnection?.(cause === undefined ? { connected: true } : { connected: false, cause });
    } catch (error) {
      this.options.logger.error({ err: error }, 'connection listener failed');
    }
  }
}

/**
 * client-node's Watch with the bounds an informer's watch needs: the server is asked to end it after
 * `timeoutSeconds` (and to send bookmarks, so resuming is cheap), a timer ends it a little later should the server
 * not, and nothing is opened once the owner has stopped.
 */
class BoundedWatch extends Watch {
  constructor(
    config: KubeConfig,
    private readonly timeoutSeconds: number,
    private readonly stopped: () => boolean,
  ) {
    super(config);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.stopped()) return new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let expired = false;
    const finish = (err: unknown) => {
      clearTimeout(timer);
      // Ending a watch that ran its time is a clean end: the informer resumes from its last resourceVersion.
      done(expired ? null : err);
    };
    const params = { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: this.timeoutSeconds };
    const controller = await super.watch(path, params, callback, finish);
    if (this.stopped()) {
      controller.abort();
    } else if (!controller.signal.aborted) {
      timer = setTimeout(() => {
        expired = true;
        controller.abort();
      }, (this.timeoutSeconds + 30) * 1000);
      timer.unref();
    }
    return controller;
  }
}
