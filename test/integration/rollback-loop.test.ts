// A rollout the cluster cannot complete for want of room: a scale-up it cannot place leaves the deployment Degraded
// with no rollback, and an automatic rollback that fails too stays Failed. Neither appends events in a loop.
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { deployments } from '../../commands/aggregates.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import type { DeploymentCommand, PlacedDeployment } from '../../domain/deployment.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { ClusterReactor } from '../../reactors/cluster-reactor.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { eventually as waitFor } from '../support/eventually.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const RUN = randomBytes(3).toString('hex');
const GPU_SKU = 'nvidia-a100-80gb';
const IMAGE = 'registry.example/acme/server:1';
const IMAGE_2 = 'registry.example/acme/server:2';
const IMAGE_3 = 'registry.example/acme/server:3';
/** Only bounds a broken run: pods are ready in 100 ms and a rollout fails on its deadline after 2 s. */
const PATIENCE_MS = 15_000;
/**
 * How long the deployment is watched once the change is made. Each turn of the old loop (fail, roll back, apply)
 * took a few hundred milliseconds and appended about four events, so this window saw dozens of them.
 */
const WINDOW_MS = 4_000;
/** A settled deployment appends a handful of events for the change and then none. */
const FEW = 10;
const UNSCHEDULABLE = /Insufficient nvidia\.com\/gpu/;

const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean) => waitFor(what, probe, done, PATIENCE_MS);

function byOperator(): CommandContext {
  const id = randomUUID();
  return { actor: { id: 'test-operator', kind: 'user' }, correlationId: id, causationId: id };
}

/** One GPU per replica, as the user's model server asked. */
function gpuSpec(namespace: string, name: string, image = IMAGE, gpus = 1): WorkloadSpec {
  return {
    name,
    namespace,
    type: 'inference',
    image,
    env: {},
    resources: { cpu: '100m', memory: '128Mi', gpu: { count: gpus, sku: GPU_SKU } },
    labels: { team: 'rollback-loop-tests' },
  };
}

describe('a rollout the cluster has no room for (rollback loop)', function () {
  this.timeout(60_000);
  // The default simulator: two GPU nodes of 8 GPUs each, 16 in all.
  let sim: ClusterSimulator;
  let apps: AppsV1Api;
  let db: Database;
  let store: PostgresEventStore;
  let handler: CommandHandler;
  let runtime: ReactorRuntime;
  /** Each test has a cluster of its own, all of whose GPUs are free. */
  let clusterId: string;
  let slugs = 0;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    handler = new CommandHandler(store);
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });
  beforeEach(async () => {
    clusterId = randomUUID();
    sim = await startClusterSimulator({ podReadyAfterMs: 100, controllerIntervalMs: 25 });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(sim.kubeconfig());
    apps = kubeConfig.makeApiClient(AppsV1Api);
    const driver = new KubeClusterDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 100, requestTimeoutMs: 5_000 } });
    const reactor = new ClusterReactor(clusterId, driver, handler, { logger, progressDeadlineSeconds: 2 });
    runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, standbyRetryMs: 100, retryBaseMs: 50, retryMaxMs: 1_000 });
    runtime.add(reactor);
  });
  afterEach(async () => {
    await runtime?.stop();
    await sim?.close();
  });

  function namespace(slug: string): string {
    slugs += 1;
    return `rl-${RUN}-${slugs}-${slug}`;
  }

  function execute(command: DeploymentCommand): Promise<unknown> {
    return handler.execute(deployments, command.deploymentId, command, byOperator());
  }

  async function state(id: string): Promise<PlacedDeployment> {
    const { state: current } = await handler.load(deployments, id);
    if (current.status === 'absent') throw new Error(`deployment ${id} does not exist`);
    return current;
  }

  async function events(id: string): Promise<RecordedEvent[]> {
    return (await handler.load(deployments, id)).recorded;
  }

  function settled(id: string, status: PlacedDeployment['status'], revision: number): Promise<PlacedDeployment> {
    return eventually(`deployment ${id} ${status} at revision ${revision}`, () => state(id), (s) => s.status === status && s.currentRevision === revision);
  }

  async function deploy(spec: WorkloadSpec, replicas: number): Promise<string> {
    const deploymentId = randomUUID();
    await execute({
      type: 'CreateDeployment',
      deploymentId,
      workload: { id: randomUUID(), status: 'active', specRevision: 1, spec, gpu: spec.resources.gpu! },
      cluster: { id: clusterId, status: 'active', gpuSkus: [GPU_SKU] },
      replicas,
      strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
      driftPolicy: 'revert',
    });
    await settled(deploymentId, 'Available', 1);
    return deploymentId;
  }

  function update(id: string, spec: WorkloadSpec, workloadRevision: number): Promise<unknown> {
    return execute({ type: 'UpdateDeployment', deploymentId: id, workload: { status: 'active', specRevision: workloadRevision, spec }, workloadRevision });
  }

  function scale(id: string, replicas: number): Promise<unknown> {
    return execute({ type: 'ScaleDeployment', deploymentId: id, replicas, cluster: { status: 'active' } });
  }

  /** The two revisions of the report: the first image, then a second one rolled out and available. */
  async function twoRevisions(ns: string): Promise<string> {
    const id = await deploy(gpuSpec(ns, 'llm'), 2);
    await update(id, gpuSpec(ns, 'llm', IMAGE_2), 2);
    await settled(id, 'Available', 2);
    return id;
  }

  /** Makes the change, then counts what the deployment's stream gained over the window that follows. */
  async function appendedAfter(id: string, change: () => Promise<unknown>): Promise<RecordedEvent[]> {
    const before = (await events(id)).length;
    await change();
    await sleep(WINDOW_MS);
    return (await events(id)).slice(before);
  }

  async function liveImage(ns: string, name: string): Promise<string | undefined> {
    const object = await apps.readNamespacedDeployment({ name, namespace: ns });
    return object.spec?.template.spec?.containers.find((container) => container.name === 'main')?.image;
  }

  it('given two available revisions, when scaled to more GPUs than the cluster has, then Degraded with the cause, no rollback and no loop; scaled back down, Available', async () => {
    const ns = namespace('scale');
    const id = await twoRevisions(ns);

    const appended = await appendedAfter(id, () => scale(id, 20));
    expect(appended.length, `events appended in ${WINDOW_MS} ms: ${appended.map((e) => e.type).join(', ')}`).to.be.below(FEW);
    const degraded = await state(id);
    expect(degraded).to.deep.include({ status: 'Degraded', currentRevision: 2, replicas: 20 });
    expect(degraded.lastCause).to.match(/^FailedCreate: 4 of 20 pods cannot be scheduled: .*Insufficient nvidia\.com\/gpu/);
    expect(appended.map((e) => e.type)).to.not.include.members(['DeploymentRolloutFailed']);
    expect(appended.map((e) => e.type)).to.not.include.members(['DeploymentRolledBack']);
    expect(await liveImage(ns, 'llm'), 'the image is left as it was').to.equal(IMAGE_2);

    await scale(id, 16);
    const available = await settled(id, 'Available', 2);
    expect(available.replicas).to.equal(16);
  });

  it('given a scale-up recorded Degraded, when another deployment gives its GPUs back, then Available at the same revision', async () => {
    const ns = namespace('room');
    const hog = await deploy(gpuSpec(ns, 'hog', IMAGE, 4), 1);
    const id = await twoRevisions(ns);

    await scale(id, 14);
    const degraded = await settled(id, 'Degraded', 2);
    expect(degraded.lastCause).to.match(UNSCHEDULABLE);

    await execute({ type: 'DeleteDeployment', deploymentId: hog });
    const available = await settled(id, 'Available', 2);
    expect(available.replicas).to.equal(14);
    const types = (await events(id)).map((e) => e.type);
    expect(types).to.not.include('DeploymentRolloutFailed');
    expect(types).to.not.include('DeploymentRolledBack');
  });

  it('given a deployment with no room to spare, when a new image fails and its automatic rollback fails for the same cause, then Failed, rolled back once, and no loop', async () => {
    const ns = namespace('rollback');
    const id = await twoRevisions(ns);
    await scale(id, 20);
    await settled(id, 'Degraded', 2);

    const appended = await appendedAfter(id, () => update(id, gpuSpec(ns, 'llm', IMAGE_3), 3));
    // The update fails, is rolled back once, the rollback fails the same way, and it all ends there.
    const rollout = ['DeploymentApplying', 'DeploymentApplied', 'DeploymentRolloutProgressed', 'DeploymentRolloutFailed'];
    expect(appended.map((e) => e.type), `events appended in ${WINDOW_MS} ms`).to.deep.equal(['DeploymentUpdated', ...rollout, 'DeploymentRolledBack', ...rollout]);
    const failed = await state(id);
    expect(failed).to.deep.include({ status: 'Failed', currentRevision: 4 });
    expect(failed.lastCause).to.match(UNSCHEDULABLE);
    const rollbacks = appended.filter((e) => e.type === 'DeploymentRolledBack');
    expect(rollbacks.map((e) => e.data)).to.have.length(1);
    expect(rollbacks[0]!.data).to.deep.include({ revision: 3, toRevision: 2, newRevision: 4 });
    expect(appended.filter((e) => e.type === 'DeploymentRolloutFailed').map((e) => e.data['revision'])).to.deep.equal([3, 4]);
    expect(await liveImage(ns, 'llm')).to.equal(IMAGE_2);
  });
});
