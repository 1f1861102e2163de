// The cluster reactor end to end: deployment commands through the event store, the real Kubernetes client on the
// cluster simulator, and what the reactor records as the rollouts, failures, drift and faults play out.
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { AdvisoryLease, inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { clusters, deployments } from '../../commands/aggregates.js';
import { CommandHandler, type CommandContext, type WriteResult } from '../../commands/command-handler.js';
import type { DeploymentCommand, DriftPolicy, PlacedDeployment } from '../../domain/deployment.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { ClusterReactor } from '../../reactors/cluster-reactor.js';
import {
  ClusterError,
  DEPLOYMENT_ID_LABEL,
  MANAGED_BY_LABEL,
  RESTARTED_AT_ANNOTATION,
  REVISION_ANNOTATION,
  type ConnectionReport,
  type DesiredWorkload,
  type LiveWorkload,
  type ManagedChange,
  type ManagedWatch,
  type ObjectRef,
} from '../../reactors/cluster-driver.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { forgetReactorCheckpoint } from '../../adapters/postgres/checkpoints.js';
import type { ProjectionLease } from '../../projections/runtime.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { eventually as waitFor } from '../support/eventually.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const RUN = randomBytes(3).toString('hex');
const GPU_SKU = 'nvidia-a100-80gb';
const IMAGE = 'registry.example/acme/server:1';
const IMAGE_2 = 'registry.example/acme/server:2';
/** Only bounds a broken run: the simulator readies pods in 100 ms, and a rollout fails on its deadline after 2 s. */
const PATIENCE_MS = 15_000;

const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = PATIENCE_MS) =>
  waitFor(what, probe, done, timeoutMs);

function byOperator(): CommandContext {
  const id = randomUUID();
  return { actor: { id: 'test-operator', kind: 'user' }, correlationId: id, causationId: id };
}

function workloadSpec(namespace: string, name: string, changes: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return {
    name,
    namespace,
    type: 'inference',
    image: IMAGE,
    env: { MODEL: 'small' },
    resources: { cpu: '100m', memory: '128Mi' },
    labels: { team: 'reactor-tests' },
    ...changes,
  };
}

function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

/**
 * The Kubernetes driver, counting its applies (which reactor instance acted on the cluster, and how often), and able
 * to hold back the watch events of one namespace and deliver them late, in an order of the test's choosing.
 */
class CountingDriver extends KubeClusterDriver {
  applies = 0;
  private listener: ((change: ManagedChange) => void) | undefined;
  private holding: { namespace: string; changes: ManagedChange[] } | undefined;

  /** Namespaces whose next apply reaches the cluster but whose reply is lost, once the rollout it started is complete. */
  private readonly lostReplies = new Set<string>();
  private failingReads = 0;

  override async apply(desired: DesiredWorkload): Promise<LiveWorkload> {
    this.applies += 1;
    const applied = await super.apply(desired);
    const namespace = desired.spec.namespace;
    if (!this.lostReplies.delete(namespace)) return applied;
    const ref = this.refFor(desired);
    await waitFor('the rollout complete', () => super.read(ref), (live) => live?.rollout.readyReplicas === desired.replicas && live.rollout.observedGeneration === live.generation, 10_000);
    throw new ClusterError('connection reset before the reply (the apply reached the cluster)', undefined, true);
  }

  override read(ref: ObjectRef): Promise<LiveWorkload | undefined> {
    if (this.failingReads > 0) {
      this.failingReads -= 1;
      return Promise.reject(new ClusterError('connection reset while reading', undefined, true));
    }
    return super.read(ref);
  }

  /** The next apply in `namespace` is carried out, and answered with a transient error once its rollout is complete. */
  loseApplyReply(namespace: string): void {
    this.lostReplies.add(namespace);
  }

  /** The next `count` reads fail as a dropped connection would. */
  failReads(count: number): void {
    this.failingReads = count;
  }

  override watch(onChange: (change: ManagedChange) => void, onConnection?: (report: ConnectionReport) => void): Promise<ManagedWatch> {
    this.listener = onChange;
    const deliver = (change: ManagedChange) => {
      if (this.holding?.namespace === change.workload.ref.namespace) this.holding.changes.push(change);
      else onChange(change);
    };
    return super.watch(deliver, onConnection);
  }

  /** From now on the watch events of objects in `namespace` are kept in the list returned, not delivered. */
  hold(namespace: string): readonly ManagedChange[] {
    this.holding = { namespace, changes: [] };
    return this.holding.changes;
  }

  /** Stops holding, and delivers `changes` to the reactor as if the watch had just seen them. */
  deliver(changes: readonly ManagedChange[]): void {
    this.holding = undefined;
    for (const change of changes) this.listener?.(change);
  }
}

/** One cluster as the tests see it: the simulator, a raw client for out-of-band changes, and a driver for the reactor. */
interface Cluster {
  sim: ClusterSimulator;
  apps: AppsV1Api;
  core: CoreV1Api;
  driver(): CountingDriver;
}

async function startCluster(): Promise<Cluster> {
  const sim = await startClusterSimulator({ podReadyAfterMs: 100, controllerIntervalMs: 25 });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sim.kubeconfig());
  return {
    sim,
    apps: kubeConfig.makeApiClient(AppsV1Api),
    core: kubeConfig.makeApiClient(CoreV1Api),
    driver: () => new CountingDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 100, requestTimeoutMs: 5_000 } }),
  };
}

/** Deployment commands and reads against one event store, as an operator and the tests' own eyes. */
class Deployments {
  /** Every deployment the tests made, to check the whole lot at once. */
  readonly ids: string[] = [];

  constructor(
    readonly handler: CommandHandler,
    readonly clusterId: string,
  ) {}

  async create(spec: WorkloadSpec, options: { replicas?: number; driftPolicy?: DriftPolicy } = {}): Promise<string> {
    const deploymentId = randomUUID();
    await this.execute({
      type: 'CreateDeployment',
      deploymentId,
      workload: { id: randomUUID(), status: 'active', specRevision: 1, spec, ...(spec.resources.gpu ? { gpu: spec.resources.gpu } : {}) },
      cluster: { id: this.clusterId, status: 'active', gpuSkus: [GPU_SKU] },
      replicas: options.replicas ?? 2,
      strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
      driftPolicy: options.driftPolicy ?? 'revert',
    });
    this.ids.push(deploymentId);
    return deploymentId;
  }

  /** Moves the deployment to a new spec, as the workload's revision `workloadRevision`. */
  update(deploymentId: string, spec: WorkloadSpec, workloadRevision: number, driftPolicy?: DriftPolicy): Promise<WriteResult> {
    return this.execute({
      type: 'UpdateDeployment',
      deploymentId,
      workload: { status: 'active', specRevision: workloadRevision, spec },
      workloadRevision,
      ...(driftPolicy ? { driftPolicy } : {}),
    });
  }

  execute(command: DeploymentCommand): Promise<WriteResult> {
    return this.handler.execute(deployments, command.deploymentId, command, byOperator());
  }

  async state(deploymentId: string): Promise<PlacedDeployment> {
    const { state } = await this.handler.load(deployments, deploymentId);
    if (state.status === 'absent') throw new Error(`deployment ${deploymentId} does not exist`);
    return state;
  }

  async events(deploymentId: string): Promise<RecordedEvent[]> {
    return (await this.handler.load(deployments, deploymentId)).recorded;
  }

  /** Waits until the deployment is Available at `revision` with its replicas. */
  available(deploymentId: string, revision: number): Promise<PlacedDeployment> {
    return eventually(`deployment ${deploymentId} Available at revision ${revision}`, () => this.state(deploymentId), (state) =>
      state.status === 'Available' && state.currentRevision === revision,
    );
  }

  /** Creates a deployment and waits for it to become Available. */
  async deployed(spec: WorkloadSpec, options: { replicas?: number; driftPolicy?: DriftPolicy } = {}): Promise<string> {
    const id = await this.create(spec, options);
    await this.available(id, 1);
    return id;
  }

  /** Waits for an event of `type` in the deployment's stream that passes `test`. */
  event(deploymentId: string, type: string, test: (data: Record<string, unknown>) => boolean = () => true): Promise<RecordedEvent> {
    return eventually(`${type} in deployment-${deploymentId}`, () => this.events(deploymentId), (events) =>
      events.some((event) => event.type === type && test(event.data)),
    ).then((events) => events.find((event) => event.type === type && test(event.data))!);
  }
}

/** A ReactorRuntime driving one ClusterReactor through its own driver. */
interface Reacting {
  runtime: ReactorRuntime;
  reactor: ClusterReactor;
  driver: CountingDriver;
}

function react(db: Database, store: PostgresEventStore, handler: CommandHandler, cluster: Cluster, clusterId: string, lease: ProjectionLease): Reacting {
  const driver = cluster.driver();
  const reactor = new ClusterReactor(clusterId, driver, handler, { logger, progressDeadlineSeconds: 2 });
  const runtime = new ReactorRuntime(db.knex, store, { logger, lease, standbyRetryMs: 100, retryBaseMs: 50, retryMaxMs: 1_000 });
  runtime.add(reactor);
  return { runtime, reactor, driver };
}

describe('cluster reactor on the cluster simulator', function () {
  this.timeout(60_000);
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.sim.close();
  });

  /** The Deployment object as the cluster has it, or undefined when there is none. */
  async function liveObject(namespace: string, name: string): Promise<V1Deployment | undefined> {
    try {
      return await cluster.apps.readNamespacedDeployment({ name, namespace });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async function podsOf(namespace: string, deploymentId: string): Promise<V1Pod[]> {
    const pods = await cluster.core.listNamespacedPod({ namespace, labelSelector: `${DEPLOYMENT_ID_LABEL}=${deploymentId}` });
    return pods.items;
  }

  function mainImage(object: V1Deployment | V1Pod | undefined): string | undefined {
    const spec = object && 'template' in (object.spec ?? {}) ? (object as V1Deployment).spec?.template.spec : (object as V1Pod | undefined)?.spec;
    return spec?.containers.find((container) => container.name === 'main')?.image;
  }

  /** Every pod of the deployment runs `image` and is ready, and there are `replicas` of them. */
  function podsSettle(namespace: string, deploymentId: string, replicas: number, image: string): Promise<V1Pod[]> {
    return eventually(`${replicas} ready pods of ${deploymentId} on ${image}`, () => podsOf(namespace, deploymentId), (pods) =>
      pods.length === replicas &&
      pods.every((pod) => mainImage(pod) === image && pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')),
    );
  }

  /** Another client changes the Deployment under its own field manager, as `kubectl scale` would. */
  function scaleOutOfBand(namespace: string, name: string, replicas: number): Promise<unknown> {
    return cluster.apps.patchNamespacedDeploymentScale(
      { name, namespace, body: { spec: { replicas } }, fieldManager: 'kubectl' },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  describe('one reactor, event store on PGlite', () => {
    let db: Database;
    let store: PostgresEventStore;
    let d: Deployments;
    let reacting: Reacting;
    const clusterId = randomUUID();
    let slugs = 0;

    /** A namespace of its own for each test, so no test sees another's objects. */
    function namespace(slug: string): string {
      slugs += 1;
      return `cr-${RUN}-${slugs}-${slug}`;
    }

    before(async () => {
      db = await openPglite();
      store = await PostgresEventStore.open(db);
      await migrateSentinel(db.knex);
      d = new Deployments(new CommandHandler(store), clusterId);
      reacting = react(db, store, d.handler, cluster, clusterId, inProcessLease);
    });
    afterEach(() => cluster?.sim.faults.clear());
    after(async () => {
      await reacting?.runtime.stop();
      await store?.close();
      await db?.close();
    });

    it('creates: Applying, then Progressing, then Available, with the labels, annotation and revision on the cluster', async () => {
      const ns = namespace('create');
      const id = await d.create(workloadSpec(ns, 'server'));
      await d.available(id, 1);

      const types = (await d.events(id)).map((event) => event.type);
      const at = (type: string) => types.indexOf(type);
      expect(at('DeploymentApplying')).to.be.greaterThan(at('DeploymentCreated'));
      expect(at('DeploymentApplied')).to.be.greaterThan(at('DeploymentApplying'));
      expect(at('DeploymentAvailable')).to.be.greaterThan(at('DeploymentApplied'));

      const live = await liveObject(ns, 'server');
      expect(live?.metadata?.labels).to.deep.include({ [MANAGED_BY_LABEL]: 'sentinel', [DEPLOYMENT_ID_LABEL]: id, team: 'reactor-tests' });
      expect(live?.metadata?.annotations?.[REVISION_ANNOTATION]).to.equal('1');
      expect(live?.spec?.replicas).to.equal(2);
      expect(live?.spec?.progressDeadlineSeconds).to.equal(2);
      expect(mainImage(live)).to.equal(IMAGE);
      await podsSettle(ns, id, 2, IMAGE);
    });

    it('given the watch events of a rollout delivered after the object was seen ready, then it is Available once: no Degraded from the older events', async () => {
      const ns = namespace('late-watch');
      const held = reacting.driver.hold(ns);
      const id = await d.create(workloadSpec(ns, 'server'));
      const ready = (change: ManagedChange) => change.workload.rollout.readyReplicas === 2 && change.workload.rollout.observedGeneration === change.workload.generation;
      await eventually('the watch to show the rollout complete', async () => held, (changes) => changes.some(ready));
      const early = held.filter((change) => change.workload.rollout.readyReplicas < 2);
      expect(early.length, 'the steps the rollout showed before it was complete').to.be.greaterThan(0);
      // What the read after an apply would see, then the rollout's own events that were still on their way.
      reacting.driver.deliver([held.find(ready)!, ...held]);
      await d.available(id, 1);
      // Observations of one deployment are handled in turn: once a scale that follows is Available, the late ones have been judged.
      await d.execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 3, cluster: { status: 'active' } });
      await d.event(id, 'DeploymentAvailable', (data) => data['readyReplicas'] === 3);
      const health = (await d.events(id)).map((event) => event.type).filter((type) => /Available|Degraded|Scaled/.test(type));
      expect(health).to.deep.equal(['DeploymentAvailable', 'DeploymentScaled', 'DeploymentAvailable']);
    });

    it('given an apply whose reply was lost after it reached the cluster, when the retry changes nothing there and the read after it fails once, then the deployment is still seen Available, not left Progressing until a resync', async () => {
      const ns = namespace('lost-reply');
      // Nothing the watch shows of this namespace reaches the reactor: it must look for itself.
      reacting.driver.hold(ns);
      reacting.driver.loseApplyReply(ns);
      const id = await d.create(workloadSpec(ns, 'server'));
      await d.event(id, 'DeploymentApplying', () => true);
      // The retried apply finds the object as it wants it, so no watch event would follow even if one were shown.
      await eventually('the first apply answered with its lost reply', async () => reacting.driver.applies, (applies) => applies >= 1);
      reacting.driver.failReads(1);

      await d.available(id, 1);
      reacting.driver.deliver([]);
    });

    it('scales 2 → 4: the cluster runs 4 replicas and the deployment is Available again at the same revision', async () => {
      const ns = namespace('scale');
      const id = await d.deployed(workloadSpec(ns, 'server'));
      await d.execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 4, cluster: { status: 'active' } });

      const state = await d.available(id, 1);
      expect(state.replicas).to.equal(4);
      expect((await liveObject(ns, 'server'))?.spec?.replicas).to.equal(4);
      await podsSettle(ns, id, 4, IMAGE);
      const types = (await d.events(id)).map((event) => event.type);
      expect(types.lastIndexOf('DeploymentAvailable')).to.be.greaterThan(types.indexOf('DeploymentScaled'));
    });

    it('updates to a new workload spec: revision 2 becomes Available and the cluster runs the new image', async () => {
      const ns = namespace('update');
      const spec = workloadSpec(ns, 'server');
      const id = await d.deployed(spec);
      await d.update(id, { ...spec, image: IMAGE_2 }, 2);

      await d.available(id, 2);
      const live = await liveObject(ns, 'server');
      expect(live?.metadata?.annotations?.[REVISION_ANNOTATION]).to.equal('2');
      expect(mainImage(live)).to.equal(IMAGE_2);
      await podsSettle(ns, id, 2, IMAGE_2);
    });

    it('rolls back: a new revision copying revision 1 is applied and becomes Available', async () => {
      const ns = namespace('rollback');
      const spec = workloadSpec(ns, 'server');
      const id = await d.deployed(spec);
      await d.update(id, { ...spec, image: IMAGE_2 }, 2);
      await d.available(id, 2);

      await d.execute({ type: 'RollbackDeployment', deploymentId: id, reason: 'the new model answers worse' });
      const state = await d.available(id, 3);
      expect(state.revisions[3]).to.deep.include({ rollbackOf: 1, workloadRevision: 1 });
      const live = await liveObject(ns, 'server');
      expect(live?.metadata?.annotations?.[REVISION_ANNOTATION]).to.equal('3');
      expect(mainImage(live)).to.equal(IMAGE);
      await podsSettle(ns, id, 2, IMAGE);
    });

    it('restarts: the pod template is stamped, every pod is replaced, and the deployment is Available again', async () => {
      const ns = namespace('restart');
      const id = await d.deployed(workloadSpec(ns, 'server'));
      const before = new Set((await podsSettle(ns, id, 2, IMAGE)).map((pod) => pod.metadata!.name));

      const at = new Date().toISOString();
      await d.execute({ type: 'RestartDeployment', deploymentId: id, at, reason: 'stuck CUDA context' });
      await d.available(id, 1);
      const live = await liveObject(ns, 'server');
      expect(live?.spec?.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION]).to.equal(at);
      const after = await podsSettle(ns, id, 2, IMAGE);
      expect(after.filter((pod) => before.has(pod.metadata!.name))).to.deep.equal([]);
    });

    it('deletes: the object is gone from the cluster', async () => {
      const ns = namespace('delete');
      const id = await d.deployed(workloadSpec(ns, 'server'));
      await d.execute({ type: 'DeleteDeployment', deploymentId: id, reason: 'retired model' });

      await eventually('the Deployment gone', () => liveObject(ns, 'server'), (live) => live === undefined);
      await eventually('its pods gone', () => podsOf(ns, id), (pods) => pods.length === 0);
      expect((await d.state(id)).status).to.equal('Deleted');
    });

    it('given a deployment deleted and a later one of the same workload on the cluster, when the reactor resyncs, then the later one\'s object is left alone: a delete touches only its own', async () => {
      const ns = namespace('successor');
      const first = await d.deployed(workloadSpec(ns, 'server'));
      await d.execute({ type: 'DeleteDeployment', deploymentId: first, reason: 'moved to another cluster' });
      await eventually('the Deployment gone', () => liveObject(ns, 'server'), (live) => live === undefined);
      const second = await d.deployed(workloadSpec(ns, 'server'));
      const placed = await liveObject(ns, 'server');

      await reacting.reactor.resync();
      const live = await liveObject(ns, 'server');
      expect(live?.metadata?.labels?.[DEPLOYMENT_ID_LABEL]).to.equal(second);
      expect(live?.metadata?.uid, 'the same object, never deleted and applied again').to.equal(placed?.metadata?.uid);
      expect((await d.events(second)).filter((event) => event.type === 'DriftDetected')).to.deep.equal([]);
    });

    it('given a paused deployment scaled by hand, then the count is put back at once while it stays paused: a hand may not hold pods past what was admitted', async () => {
      const ns = namespace('pause-hand');
      const id = await d.deployed(workloadSpec(ns, 'server'));
      await d.execute({ type: 'PauseDeployment', deploymentId: id, reason: 'maintenance window' });

      await scaleOutOfBand(ns, 'server', 5);

      const drift = await d.event(id, 'DriftDetected', (data) => JSON.stringify(data['differences']).includes('replicas'));
      expect(drift.data).to.deep.include({ resolution: 'revert', differences: [{ field: 'replicas', expected: 2, actual: 5 }] });
      await eventually('the count put back', async () => (await liveObject(ns, 'server'))?.spec?.replicas, (replicas) => replicas === 2);
      await podsSettle(ns, id, 2, IMAGE);
      expect(await d.state(id)).to.deep.include({ paused: true, replicas: 2 });
      // Left running, not paused, as the tests after this one expect of every deployment they find.
      await d.execute({ type: 'ResumeDeployment', deploymentId: id });
      await eventually('resumed', () => d.state(id), (state) => !state.paused && state.status === 'Available');
    });

    it('given a paused deployment, a scale is applied at once (Kubernetes pauses rollouts, not scaling), while a new image waits for the resume', async () => {
      const ns = namespace('pause');
      const spec = workloadSpec(ns, 'server');
      const id = await d.deployed(spec);
      await d.execute({ type: 'PauseDeployment', deploymentId: id, reason: 'maintenance window' });
      await d.execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 3, cluster: { status: 'active' } });
      await eventually('the paused deployment Available with 3 replicas', () => d.state(id), (state) => state.status === 'Available' && state.replicas === 3);
      await podsSettle(ns, id, 3, IMAGE);
      expect((await d.state(id)).paused).to.equal(true);

      const updated = await d.update(id, { ...spec, image: IMAGE_2 }, 2);
      const { runtime, reactor } = reacting;
      await eventually('the reactor past the update', () => runtime.checkpoint(reactor.name), (position) => position === updated.position);
      expect(mainImage(await liveObject(ns, 'server')), 'no new revision rolled out while paused').to.equal(IMAGE);
      expect((await d.state(id)).status).to.equal('Pending');

      await d.execute({ type: 'ResumeDeployment', deploymentId: id });
      await d.available(id, 2);
      await podsSettle(ns, id, 3, IMAGE_2);
    });

    it('given a paused deployment with a new image waiting for the resume, when it is scaled by hand, then the count is put back at once on the revision it runs', async () => {
      const ns = namespace('pause-waiting-hand');
      const spec = workloadSpec(ns, 'server');
      const id = await d.deployed(spec);
      await d.execute({ type: 'PauseDeployment', deploymentId: id, reason: 'maintenance window' });
      const updated = await d.update(id, { ...spec, image: IMAGE_2 }, 2);
      const { runtime, reactor } = reacting;
      await eventually('the reactor past the update', () => runtime.checkpoint(reactor.name), (position) => position === updated.position);

      await scaleOutOfBand(ns, 'server', 5);

      await eventually('the count put back', async () => (await liveObject(ns, 'server'))?.spec?.replicas, (replicas) => replicas === 2);
      await podsSettle(ns, id, 2, IMAGE);
      expect(await d.state(id)).to.deep.include({ paused: true, status: 'Pending', replicas: 2 });
      await d.execute({ type: 'ResumeDeployment', deploymentId: id });
      await d.available(id, 2);
    });

    it('given a paused deployment with a new image waiting for the resume, when it is scaled down, then the revision it runs is scaled at once: it holds no more than it was told', async () => {
      const ns = namespace('pause-waiting-scale');
      const spec = workloadSpec(ns, 'server');
      const id = await d.deployed(spec, { replicas: 3 });
      await d.execute({ type: 'PauseDeployment', deploymentId: id, reason: 'maintenance window' });
      await d.update(id, { ...spec, image: IMAGE_2 }, 2);

      await d.execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 1, cluster: { status: 'active' } });

      await eventually('the count applied', async () => (await liveObject(ns, 'server'))?.spec?.replicas, (replicas) => replicas === 1);
      expect(mainImage(await liveObject(ns, 'server')), 'the new revision still waits').to.equal(IMAGE);
      await podsSettle(ns, id, 1, IMAGE);
      await d.execute({ type: 'ResumeDeployment', deploymentId: id });
      await d.available(id, 2);
      await podsSettle(ns, id, 1, IMAGE_2);
    });

    it('given a deployment whose first rollout failed (nothing to roll back to), when it is scaled by hand, then the count is put back: a failed deployment holds no pods it was not admitted', async () => {
      const ns = namespace('failed-hand');
      cluster.sim.faults.neverReady(/\/broken:/);
      const id = await d.create(workloadSpec(ns, 'server', { image: 'registry.example/acme/broken:1' }), { replicas: 1 });
      await d.event(id, 'DeploymentRolloutFailed');
      expect((await d.state(id)).status).to.equal('Failed');

      await scaleOutOfBand(ns, 'server', 4);

      await eventually('the count put back', async () => (await liveObject(ns, 'server'))?.spec?.replicas, (replicas) => replicas === 1);
      await eventually('the pods of the hand gone', () => podsOf(ns, id), (pods) => pods.length === 1);
      expect((await d.state(id)).status).to.equal('Failed');
      await d.execute({ type: 'DeleteDeployment', deploymentId: id, reason: 'never worked' });
    });

    it('given a rollout that never becomes ready, then it fails on the progress deadline and is rolled back to revision 1', async () => {
      const ns = namespace('deadline');
      const spec = workloadSpec(ns, 'server');
      const id = await d.deployed(spec);
      cluster.sim.faults.neverReady(/\/broken:/);
      await d.update(id, { ...spec, image: 'registry.example/acme/broken:1' }, 2);

      const failed = await d.event(id, 'DeploymentRolloutFailed');
      expect(failed.data).to.deep.include({ revision: 2 });
      expect(failed.data['cause']).to.match(/^ProgressDeadlineExceeded/);
      const rolledBack = await d.event(id, 'DeploymentRolledBack');
      expect(rolledBack.data).to.deep.include({ revision: 2, toRevision: 1, newRevision: 3 });

      await d.available(id, 3);
      expect(mainImage(await liveObject(ns, 'server'))).to.equal(IMAGE);
      await podsSettle(ns, id, 2, IMAGE);
      const failures = (await d.events(id)).filter((event) => event.type === 'DeploymentRolloutFailed');
      expect(failures.map((event) => event.data['revision']), 'only the broken revision failed').to.deep.equal([2]);
    });

    it('given pods that cannot be scheduled (more GPUs than a node has), then FailedCreate fails the rollout and it is rolled back', async () => {
      const ns = namespace('gpu');
      const spec = workloadSpec(ns, 'llm', { resources: { cpu: '1', memory: '1Gi', gpu: { count: 1, sku: GPU_SKU } } });
      const id = await d.deployed(spec, { replicas: 1 });
      await d.update(id, { ...spec, resources: { cpu: '1', memory: '1Gi', gpu: { count: 16, sku: GPU_SKU } } }, 2);

      const failed = await d.event(id, 'DeploymentRolloutFailed');
      expect(failed.data).to.deep.include({ revision: 2 });
      expect(failed.data['cause']).to.match(/^FailedCreate: .*Insufficient nvidia\.com\/gpu/);
      // What ran when it failed is recorded with it: the old pod, still ready.
      const history = await d.events(id);
      const lastProgress = history.slice(0, history.indexOf(history.find((event) => event.id === failed.id)!)).findLast((event) => event.type === 'DeploymentRolloutProgressed');
      expect(lastProgress?.data).to.deep.include({ revision: 2, readyReplicas: 1 });
      const rolledBack = await d.event(id, 'DeploymentRolledBack');
      expect(rolledBack.data).to.deep.include({ revision: 2, toRevision: 1, newRevision: 3 });

      await d.available(id, 3);
      const live = await liveObject(ns, 'llm');
      expect(live?.spec?.template.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu']).to.equal('1');
      await eventually('only the one-GPU pod left', () => podsOf(ns, id), (pods) =>
        pods.length === 1 && pods[0]!.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu'] === '1',
      );
      const failures = (await d.events(id)).filter((event) => event.type === 'DeploymentRolloutFailed');
      expect(failures.map((event) => event.data['revision']), 'only the unschedulable revision failed').to.deep.equal([2]);
    });

    describe('drift', () => {
      async function driftsOf(id: string): Promise<RecordedEvent[]> {
        return (await d.events(id)).filter((event) => event.type === 'DriftDetected');
      }

      it('given the default policy (revert), when someone scales by hand, then DriftDetected is recorded and the replicas go back', async () => {
        const ns = namespace('drift-revert');
        const id = await d.deployed(workloadSpec(ns, 'server'));
        await scaleOutOfBand(ns, 'server', 5);

        const drift = await d.event(id, 'DriftDetected');
        expect(drift.data).to.deep.include({ revision: 1, resolution: 'revert' });
        expect(drift.data['differences']).to.deep.include({ field: 'replicas', expected: 2, actual: 5 });
        await eventually('replicas back to 2', () => liveObject(ns, 'server'), (live) => live?.spec?.replicas === 2);
        await podsSettle(ns, id, 2, IMAGE);
        const state = await d.state(id);
        expect(state).to.deep.include({ status: 'Available', replicas: 2 });
        expect(await driftsOf(id), 'one change by hand, recorded once').to.have.length(1);
      });

      it('given an object deleted while the watch showed nothing, when the reactor resyncs, then the deletion is recorded as drift and the object applied again', async () => {
        const ns = namespace('resync');
        const id = await d.deployed(workloadSpec(ns, 'server'));
        reacting.driver.hold(ns);
        await cluster.apps.deleteNamespacedDeployment({ name: 'server', namespace: ns });
        await eventually('the object gone', () => liveObject(ns, 'server'), (live) => live === undefined);

        await reacting.reactor.resync();
        const drifts = await driftsOf(id);
        expect(drifts).to.have.length(1);
        expect(drifts[0]!.data).to.deep.include({ revision: 1, resolution: 'revert', differences: [{ field: 'object', expected: 'present', actual: 'absent' }] });
        expect(await liveObject(ns, 'server'), 'applied again').to.not.equal(undefined);
        reacting.driver.deliver([]);
        await podsSettle(ns, id, 2, IMAGE);
        await d.available(id, 1);

        await reacting.reactor.resync();
        expect(await driftsOf(id), 'a resync of what matches records nothing').to.have.length(1);
      });

      it('given the adopt policy, when the object is deleted by hand, then it is put back all the same', async () => {
        const ns = namespace('adopt-deleted');
        const id = await d.deployed(workloadSpec(ns, 'server'), { driftPolicy: 'adopt' });
        await cluster.apps.deleteNamespacedDeployment({ name: 'server', namespace: ns });

        const drift = await d.event(id, 'DriftDetected');
        expect(drift.data).to.deep.include({ resolution: 'revert', differences: [{ field: 'object', expected: 'present', actual: 'absent' }] });
        await podsSettle(ns, id, 2, IMAGE);
      });

      it('given the adopt policy (set by an update), when someone scales by hand, then the live replica count becomes the deployment\'s own', async () => {
        const ns = namespace('drift-adopt');
        const spec = workloadSpec(ns, 'server');
        const id = await d.deployed(spec);
        await d.update(id, spec, 1, 'adopt');
        expect((await d.state(id)).driftPolicy).to.equal('adopt');
        await scaleOutOfBand(ns, 'server', 3);

        const drift = await d.event(id, 'DriftDetected');
        expect(drift.data).to.deep.include({ revision: 1, resolution: 'adopt' });
        expect(drift.data['differences']).to.deep.include({ field: 'replicas', expected: 2, actual: 3 });
        await eventually('the deployment adopts 3 replicas', () => d.state(id), (state) => state.replicas === 3);
        await podsSettle(ns, id, 3, IMAGE);
        expect((await liveObject(ns, 'server'))?.spec?.replicas).to.equal(3);
        expect(await driftsOf(id), 'one adoption recorded once').to.have.length(1);
      });

      it('given the adopt policy, when someone changes the count and the image in one edit, then one drift is recorded and both are kept', async () => {
        const ns = namespace('adopt-both');
        const id = await d.deployed(workloadSpec(ns, 'server'), { driftPolicy: 'adopt' });
        const rogue = 'registry.example/rogue/server:7';
        await cluster.apps.patchNamespacedDeployment(
          {
            name: 'server',
            namespace: ns,
            body: { spec: { replicas: 3, template: { spec: { containers: [{ name: 'main', image: rogue }] } } } },
            fieldManager: 'kubectl',
          },
          setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
        );

        const drift = await d.event(id, 'DriftDetected');
        expect(drift.data).to.deep.include({ revision: 1, resolution: 'adopt' });
        expect(drift.data['differences']).to.deep.include({ field: 'replicas', expected: 2, actual: 3 });
        await eventually('the deployment adopts 3 replicas', () => d.state(id), (state) => state.replicas === 3);
        // The rollout of the edit sends a stream of watch events, each showing the image still differing.
        await podsSettle(ns, id, 3, rogue);
        await reacting.reactor.resync();
        expect(await driftsOf(id), 'one edit by hand, recorded once').to.have.length(1);
        // The replay from an empty checkpoint (below) applies every deployment again, this one with the adopted image:
        // the object it finds unchanged includes this one.
      });

      it('given an image changed by hand, then it is reverted to the recorded revision', async () => {
        const ns = namespace('drift-image');
        const id = await d.deployed(workloadSpec(ns, 'server'));
        await cluster.apps.patchNamespacedDeployment(
          {
            name: 'server',
            namespace: ns,
            body: { spec: { template: { spec: { containers: [{ name: 'main', image: 'registry.example/rogue/server:6' }] } } } },
            fieldManager: 'kubectl',
          },
          setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
        );

        const drift = await d.event(id, 'DriftDetected', (data) =>
          (data['differences'] as { field: string }[]).some((difference) => difference.field === 'image'),
        );
        expect(drift.data).to.deep.include({ resolution: 'revert' });
        expect(drift.data['differences']).to.deep.include({ field: 'image', expected: IMAGE, actual: 'registry.example/rogue/server:6' });
        await eventually('the image reverted', () => liveObject(ns, 'server'), (live) => mainImage(live) === IMAGE);
        await podsSettle(ns, id, 2, IMAGE);
        expect((await d.state(id)).status).to.equal('Available');
        expect(await driftsOf(id), 'one change by hand, recorded once').to.have.length(1);
      });
    });

    describe('faults', () => {
      it('given three 500s from the API server during a change, then the change is still applied', async () => {
        const ns = namespace('fail-next');
        const id = await d.deployed(workloadSpec(ns, 'server'));
        cluster.sim.faults.failNext(3, 500, { path: new RegExp(`/namespaces/${ns}/`) });
        await d.execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 3, cluster: { status: 'active' } });

        await eventually('the deployment Available with 3 replicas', () => d.state(id), (state) => state.status === 'Available' && state.replicas === 3);
        await podsSettle(ns, id, 3, IMAGE);
        // The failures went to the reactor's requests: the next request in the namespace is served.
        expect((await liveObject(ns, 'server'))?.spec?.replicas).to.equal(3);
        const types = (await d.events(id)).map((event) => event.type);
        expect(types).not.to.include('DeploymentRolloutFailed');
      });

      it('given the watches dropped mid-rollout, then the rollout is still followed to Available', async () => {
        const ns = namespace('drop-watch');
        const spec = workloadSpec(ns, 'server');
        const id = await d.deployed(spec, { replicas: 3 });
        await d.update(id, { ...spec, image: IMAGE_2 }, 2);
        await eventually('the new revision on its way', () => d.state(id), (state) => state.status === 'Applying' || state.status === 'Progressing');
        cluster.sim.faults.dropWatches();

        await d.available(id, 2);
        await podsSettle(ns, id, 3, IMAGE_2);
      });
    });

    describe('connection', () => {
      const clusterEventsOf = async () => (await store.readStream(`cluster-${clusterId}`)).filter((event) => /^Cluster(Connected|Unreachable)$/.test(event.type));

      it('given the API server refusing the watch, then the cluster is recorded unreachable with the cause once, and connected once it answers again', async () => {
        const spec = { name: `reactor-${RUN}`, apiServer: 'https://127.0.0.1:6443', credentials: { source: 'in-cluster' as const }, region: 'local', labels: {}, gpuSkus: [GPU_SKU] };
        await d.handler.execute(clusters, clusterId, { type: 'RegisterCluster', clusterId, spec }, byOperator());
        cluster.sim.faults.failNext(4, 401, { method: 'GET', path: /^\/apis\/apps\/v1\/deployments$/ });
        cluster.sim.faults.dropWatches();

        const seen = await eventually('unreachable, then connected again', clusterEventsOf, (events) => events.map((event) => event.type).join() === 'ClusterUnreachable,ClusterConnected');
        // Whichever watch was lost first says why: a refusal, or a resume that failed too.
        expect(seen[0]!.data['cause']).to.match(/^watch (Deployments|StatefulSets|Jobs): /);
        expect(seen[0]!.metadata.source).to.equal(`reactor:${reacting.reactor.name}`);
        // Still following the cluster afterwards.
        const ns = namespace('reconnected');
        await d.deployed(workloadSpec(ns, 'server'));
      });
    });

    describe('replay', () => {
      it('given objects the cluster lost while no reactor ran, when a reactor starts, then each is recorded as drift and applied again', async () => {
        const ns = namespace('lost');
        const id = await d.deployed(workloadSpec(ns, 'server'));
        await reacting.runtime.stop();
        await cluster.apps.deleteNamespacedDeployment({ name: 'server', namespace: ns });
        await eventually('the object gone', () => liveObject(ns, 'server'), (live) => live === undefined);

        reacting = react(db, store, d.handler, cluster, clusterId, inProcessLease);
        const drift = await d.event(id, 'DriftDetected', (data) => JSON.stringify(data['differences']).includes('absent'));
        expect(drift.metadata.source).to.equal(`reactor:${reacting.reactor.name}`);
        await podsSettle(ns, id, 2, IMAGE);
        await d.available(id, 1);
      });

      it('given its checkpoint deleted, when the reactor starts again, then it handles every change again and records and changes nothing', async () => {
        const ns = namespace('replay');
        await d.deployed(workloadSpec(ns, 'server'));
        // Everything the earlier tests did has come to rest before the picture is taken.
        const settled = (status: string) => !['Pending', 'Applying', 'Progressing'].includes(status);
        await eventually('every deployment at rest', () => Promise.all(d.ids.map((id) => d.state(id))), (states) => states.every((s) => settled(s.status)));
        const lengths = () => Promise.all(d.ids.map(async (id) => (await d.events(id)).length));
        const managed = async () => {
          const list = await cluster.apps.listDeploymentForAllNamespaces({ labelSelector: `${MANAGED_BY_LABEL}=sentinel` });
          return Object.fromEntries(list.items.map((item) => [`${item.metadata!.namespace}/${item.metadata!.name}`, item.metadata!.resourceVersion]));
        };
        const quiet = async () => JSON.stringify([await lengths(), await managed()]);
        let previous = '';
        await eventually('the log and the cluster holding still', async () => {
          const now = await quiet();
          const still = now === previous;
          previous = now;
          return still;
        }, Boolean);
        const lengthsBefore = await lengths();
        const objectsBefore = await managed();

        const { runtime, reactor } = reacting;
        const checkpoint = await runtime.checkpoint(reactor.name);
        expect(checkpoint).to.be.a('string');
        await runtime.stop();
        await forgetReactorCheckpoint(db.knex, reactor.name);

        reacting = react(db, store, d.handler, cluster, clusterId, inProcessLease);
        await eventually('the replay back at the old checkpoint', () => reacting.runtime.checkpoint(reactor.name), (position) => position === checkpoint);
        // What the restarted watch lists is judged in turn with the resync on start, which compares every deployment.
        await reacting.reactor.resync();
        expect(await lengths()).to.deep.equal(lengthsBefore);
        expect(await managed()).to.deep.equal(objectsBefore);
        expect(reacting.driver.applies, 'each deployment still on the cluster applied again').to.equal(Object.keys(objectsBefore).length);
      });
    });
  });

  describe('letting go of the cluster (deregistered, or its credentials changed)', () => {
    let db: Database;
    let store: PostgresEventStore;
    let d: Deployments;
    const clusterId = randomUUID();

    before(async () => {
      db = await openPglite();
      store = await PostgresEventStore.open(db);
      await migrateSentinel(db.knex);
      d = new Deployments(new CommandHandler(store), clusterId);
    });
    after(async () => {
      await store?.close();
      await db?.close();
    });

    it('given the reactor removed and its driver closed, then it stops, every call fails, later changes wait; a reactor added again picks them up', async () => {
      const reacting = react(db, store, d.handler, cluster, clusterId, inProcessLease);
      const name = reacting.reactor.name;
      const ns = `cr-${RUN}-let-go`;
      const id = await d.deployed(workloadSpec(ns, 'server'));

      const removed = reacting.runtime.remove(name);
      await reacting.driver.close();
      await removed;
      expect(reacting.runtime.isActive(name)).to.equal(false);
      const refused = await reacting.driver.read({ kind: 'Deployment', namespace: ns, name: 'server' }).then(
        () => undefined,
        (error: unknown) => error,
      );
      // Transient: a reaction caught by the closing driver is dropped with its reactor, never recorded as a failure.
      expect(refused).to.be.instanceOf(ClusterError).and.include({ transient: true });

      const applies = reacting.driver.applies;
      await d.execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 3, cluster: { status: 'active' } });
      await sleep(500);
      expect(reacting.driver.applies, 'applies after the reactor was removed').to.equal(applies);
      expect((await liveObject(ns, 'server'))?.spec?.replicas).to.equal(2);

      const again = cluster.driver();
      reacting.runtime.add(new ClusterReactor(clusterId, again, d.handler, { logger, progressDeadlineSeconds: 2 }));
      try {
        await eventually('the scale applied by the reactor added again', () => liveObject(ns, 'server'), (live) => live?.spec?.replicas === 3);
        expect(again.applies).to.equal(1);
      } finally {
        await reacting.runtime.stop();
        await again.close();
      }
    });
  });

  describe('two reactor instances, event store on PostgreSQL', () => {
    let scratch: ScratchDatabase;
    const processes: { db: Database; store: PostgresEventStore; d: Deployments; reacting: Reacting }[] = [];
    const clusterId = randomUUID();

    before(async function () {
      if (!TEST_DATABASE_URL) {
        console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
        return this.skip();
      }
      scratch = await createScratchDatabase();
      for (let i = 0; i < 2; i++) {
        // Each as a process of its own: its own pool, store, driver, lease connection and reactor.
        const db = openPostgres(scratch.url, { poolMax: 4 });
        const store = await PostgresEventStore.open(db);
        if (i === 0) await migrateSentinel(db.knex);
        const d = new Deployments(new CommandHandler(store), clusterId);
        processes.push({ db, store, d, reacting: react(db, store, d.handler, cluster, clusterId, new AdvisoryLease(scratch.url)) });
      }
    });
    after(async () => {
      for (const { reacting } of processes) await reacting.runtime.stop();
      for (const { store, db } of processes) {
        await store.close();
        await db.close();
      }
      await scratch?.drop();
    });

    /** Which of the two is acting, once exactly one is. */
    async function theActiveOne(among = processes): Promise<(typeof processes)[number]> {
      const name = processes[0]!.reacting.reactor.name;
      const active = await eventually('exactly one active instance', async () => among.filter((p) => p.reacting.runtime.isActive(name)), (found) => found.length === 1);
      return active[0]!;
    }

    /** Each source event (a change) was answered with one DeploymentApplying, by whichever instance was active. */
    async function appliedOncePerChange(d: Deployments, id: string): Promise<void> {
      const applying = (await d.events(id)).filter((event) => event.type === 'DeploymentApplying');
      const causes = applying.map((event) => event.metadata.causationId);
      expect(new Set(causes).size, `DeploymentApplying caused by ${JSON.stringify(causes)}`).to.equal(causes.length);
    }

    it('runs one active instance; each change is applied once; when the active one stops the other takes over', async () => {
      const first = await theActiveOne();
      const name = first.reacting.reactor.name;
      // The standby keeps trying for the lease and must keep failing while the active one holds it.
      await sleep(300);
      expect(processes.map((p) => p.reacting.runtime.isActive(name)).filter(Boolean)).to.have.length(1);

      const { d } = processes[0]!;
      const ns = `cr-${RUN}-pg-leased`;
      const id = await d.deployed(workloadSpec(ns, 'server'));
      await appliedOncePerChange(d, id);
      const standby = processes.find((p) => p !== first)!;
      expect([first.reacting.driver.applies, standby.reacting.driver.applies], 'applies by the active and the standby').to.deep.equal([1, 0]);

      await first.reacting.runtime.stop();
      const second = await theActiveOne([standby]);
      expect(first.reacting.runtime.isActive(name)).to.equal(false);

      await second.d.execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 3, cluster: { status: 'active' } });
      await eventually('the deployment Available with 3 replicas', () => second.d.state(id), (state) => state.status === 'Available' && state.replicas === 3);
      expect((await cluster.apps.readNamespacedDeployment({ name: 'server', namespace: ns })).spec?.replicas).to.equal(3);
      await appliedOncePerChange(second.d, id);
      const applying = (await second.d.events(id)).filter((event) => event.type === 'DeploymentApplying');
      expect(applying, 'the create and the scale, each applied once').to.have.length(2);
      expect([first.reacting.driver.applies, second.reacting.driver.applies], 'applies by the stopped and the new active one').to.deep.equal([1, 1]);
    });
  });
});
