// A Kubernetes cluster in memory, for reactor unit tests: objects kept as the reactor writes them, a controller and
// other clients the test plays by hand (each change shown to the watch at once), and every call the reactor made.
import { isDeepStrictEqual } from 'node:util';
import { refFor } from '../../adapters/kubernetes/manifests.js';
import {
  desiredTemplate,
  type ClusterDriver,
  type ConnectionReport,
  type DesiredWorkload,
  type DrainReport,
  type LiveWorkload,
  type ManagedChange,
  type ManagedWatch,
  type ObjectRef,
  type RolloutStatus,
  type ScaleResult,
  type TemplateFacts,
} from '../../reactors/cluster-driver.js';

/** One call the reactor made, with what it asked for. */
export type DriverCall =
  | { op: 'apply'; ref: ObjectRef; revision: number; replicas: number }
  | { op: 'scale'; ref: ObjectRef; replicas: number }
  | { op: 'restart'; ref: ObjectRef; at: string }
  | { op: 'delete'; ref: ObjectRef }
  | { op: 'read'; ref: ObjectRef }
  | { op: 'cordon' | 'uncordon' | 'drain'; node: string }
  | { op: 'watch' | 'close' };

export type Operation = DriverCall['op'];

export class FakeClusterDriver implements ClusterDriver {
  /** Every call, in the order the reactor made them. */
  readonly calls: DriverCall[] = [];
  private readonly objects = new Map<string, LiveWorkload>();
  private readonly refusals = new Map<Operation, Error>();
  /** The restart stamp on each object's pod template, which `LiveWorkload` does not show. */
  private readonly restarts = new Map<string, string | undefined>();
  private onChange: ((change: ManagedChange) => void) | undefined;
  private onConnection: ((report: ConnectionReport) => void) | undefined;
  private resourceVersions = 0;
  private closed = false;

  /** The calls of one kind, such as every scale. */
  callsOf<Op extends Operation>(op: Op): Extract<DriverCall, { op: Op }>[] {
    return this.calls.filter((call): call is Extract<DriverCall, { op: Op }> => call.op === op);
  }

  /** The next call of `op` fails with `error` (a `ClusterError` as the real driver throws, say). */
  refuseNext(op: Operation, error: Error): void {
    this.refusals.set(op, error);
  }

  /** The object as the cluster has it now: a copy, so a test holding it sees an older version later. */
  object(ref: ObjectRef): LiveWorkload | undefined {
    const live = this.objects.get(keyOf(ref));
    return live && structuredClone(live);
  }

  // ---- the port -------------------------------------------------------------------------------------

  refFor(desired: Pick<DesiredWorkload, 'deploymentId' | 'spec' | 'role'>): ObjectRef {
    return refFor(desired);
  }

  async apply(desired: DesiredWorkload): Promise<LiveWorkload> {
    const ref = refFor(desired);
    this.called({ op: 'apply', ref, revision: desired.revision, replicas: desired.replicas });
    const key = keyOf(ref);
    const previous = this.objects.get(key);
    const spec: ObjectSpec = { revision: desired.revision, template: desiredTemplate(desired), ...(ref.kind === 'Job' ? {} : { replicas: desired.replicas }) };
    // As server-side apply: what changes nothing leaves the object, its generation and its version alone.
    if (previous && isDeepStrictEqual(specOf(previous), spec) && this.restarts.get(key) === desired.restartedAt) return structuredClone(previous);
    this.restarts.set(key, desired.restartedAt);
    return this.put(previous ? 'MODIFIED' : 'ADDED', {
      ref,
      deploymentId: desired.deploymentId,
      resourceVersion: '',
      generation: (previous?.generation ?? 0) + 1,
      rollout: previous?.rollout ?? { observedGeneration: 0, replicas: 0, updatedReplicas: 0, readyReplicas: 0, availableReplicas: 0, conditions: [] },
      ...(desired.role ? { role: desired.role } : {}),
      ...spec,
    });
  }

  async scale(ref: ObjectRef, replicas: number): Promise<ScaleResult> {
    this.called({ op: 'scale', ref, replicas });
    const live = this.existing(ref);
    if (live.replicas !== replicas) this.put('MODIFIED', { ...live, replicas, generation: live.generation + 1 });
    return { scaled: true };
  }

  async restart(ref: ObjectRef, at: string): Promise<void> {
    this.called({ op: 'restart', ref, at });
    const live = this.existing(ref);
    this.restarts.set(keyOf(ref), at);
    this.put('MODIFIED', { ...live, generation: live.generation + 1 });
  }

  async delete(ref: ObjectRef): Promise<void> {
    this.called({ op: 'delete', ref });
    this.remove(ref);
  }

  async read(ref: ObjectRef): Promise<LiveWorkload | undefined> {
    this.called({ op: 'read', ref });
    return this.object(ref);
  }

  async cordon(node: string): Promise<void> {
    this.called({ op: 'cordon', node });
  }

  async uncordon(node: string): Promise<void> {
    this.called({ op: 'uncordon', node });
  }

  async drain(node: string): Promise<DrainReport> {
    this.called({ op: 'drain', node });
    return { node, evicted: [], stuck: [] };
  }

  async watch(onChange: (change: ManagedChange) => void, onConnection?: (report: ConnectionReport) => void): Promise<ManagedWatch> {
    this.called({ op: 'watch' });
    this.onChange = onChange;
    this.onConnection = onConnection;
    // As a watch lists first: every object there is now is shown.
    for (const live of this.objects.values()) onChange({ type: 'ADDED', workload: structuredClone(live) });
    return {
      stop: async () => {
        this.onChange = undefined;
        this.onConnection = undefined;
      },
    };
  }

  async close(): Promise<void> {
    this.called({ op: 'close' });
    this.closed = true;
    this.onChange = undefined;
    this.onConnection = undefined;
  }

  // ---- the cluster's controller and other clients, played by the test -------------------------------

  /** The controller reports on the rollout: of the object's current generation unless `status` says otherwise. */
  progress(ref: ObjectRef, status: Partial<RolloutStatus>): LiveWorkload {
    const live = this.existing(ref);
    return this.put('MODIFIED', { ...live, rollout: { ...live.rollout, observedGeneration: live.generation, ...status } });
  }

  /** The controller reports every replica of the current generation updated, ready and available. */
  complete(ref: ObjectRef): LiveWorkload {
    const replicas = this.existing(ref).replicas ?? 1;
    return this.progress(ref, {
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [
        { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' },
        { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
      ],
    });
  }

  /** Someone else changes the object's replica count or pod template (as `kubectl scale` or `kubectl edit` would). */
  changeByHand(ref: ObjectRef, change: { replicas?: number; template?: Partial<TemplateFacts> }): LiveWorkload {
    const live = this.existing(ref);
    return this.put('MODIFIED', {
      ...live,
      ...(change.replicas === undefined ? {} : { replicas: change.replicas }),
      template: { ...live.template, ...change.template },
      generation: live.generation + 1,
    });
  }

  /** Someone else deletes the object. */
  deleteByHand(ref: ObjectRef): void {
    this.remove(ref);
  }

  /** Shows the watch a change as given: one the cluster made long ago and delivered late, say. */
  deliver(change: ManagedChange): void {
    this.onChange?.(structuredClone(change));
  }

  /** The watch loses the cluster, or has it back. */
  report(connection: ConnectionReport): void {
    this.onConnection?.(connection);
  }

  // ---- the store ------------------------------------------------------------------------------------

  private called(call: DriverCall): void {
    this.calls.push(call);
    if (this.closed) throw new Error(`${call.op}: the driver was closed`);
    const refusal = this.refusals.get(call.op);
    if (!refusal) return;
    this.refusals.delete(call.op);
    throw refusal;
  }

  private existing(ref: ObjectRef): LiveWorkload {
    const live = this.objects.get(keyOf(ref));
    if (!live) throw new Error(`no ${ref.kind} ${ref.namespace}/${ref.name} on the fake cluster`);
    return live;
  }

  /** Stores the object at a new resourceVersion and shows the watch the change. */
  private put(type: 'ADDED' | 'MODIFIED', live: LiveWorkload): LiveWorkload {
    this.resourceVersions += 1;
    const stored = { ...live, resourceVersion: String(this.resourceVersions) };
    this.objects.set(keyOf(live.ref), stored);
    this.onChange?.({ type, workload: structuredClone(stored) });
    return structuredClone(stored);
  }

  private remove(ref: ObjectRef): void {
    const live = this.objects.get(keyOf(ref));
    if (!live) return;
    this.objects.delete(keyOf(ref));
    this.restarts.delete(keyOf(ref));
    this.onChange?.({ type: 'DELETED', workload: structuredClone(live) });
  }
}

function keyOf(ref: ObjectRef): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}`;
}

/** The part of an object that Sentinel writes and others may change. */
type ObjectSpec = Pick<LiveWorkload, 'revision' | 'replicas' | 'template'>;

function specOf(live: LiveWorkload): ObjectSpec {
  return { revision: live.revision, template: live.template, ...(live.replicas === undefined ? {} : { replicas: live.replicas }) };
}
