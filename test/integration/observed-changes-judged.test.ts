// What a cluster does on its own that changes what a deployment holds (an automatic rollback) is judged by policy
// when it happens: refused, the deployment stays Failed and nothing is rolled out. On the simulator and PGlite.
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { startClusterSimulator, type ClusterSimulator } from '../../adapters/kubernetes/simulator/index.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { clusters, deployments, policySets } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { PlacedDeployment } from '../../domain/deployment.js';
import { LEDGER_STREAM, type Admission } from '../../domain/ledger.js';
import type { PolicyDecision } from '../../domain/policy-evaluation.js';
import { policyBody } from '../../domain/policy.js';
import { GLOBAL_POLICY_SET } from '../../domain/policy-set.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { ClusterReactor } from '../../reactors/cluster-reactor.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { eventually as waitFor } from '../support/eventually.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const GPU_SKU = 'nvidia-a100-80gb';
/** Only bounds a broken run: pods are ready in 100 ms and a rollout fails on its deadline after 2 s. */
const PATIENCE_MS = 15_000;
const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean) => waitFor(what, probe, done, PATIENCE_MS);

function byOperator(): CommandContext {
  const id = randomUUID();
  return { actor: { id: 'test-operator', kind: 'user' }, correlationId: id, causationId: id };
}

const spec = (namespace: string, image: string): WorkloadSpec => ({
  name: 'llm',
  namespace,
  type: 'inference',
  image,
  env: {},
  resources: { cpu: '100m', memory: '128Mi', gpu: { count: 1, sku: GPU_SKU } },
  labels: {},
});

describe('changes a cluster makes on its own, judged when they happen', function () {
  this.timeout(60_000);
  let sim: ClusterSimulator;
  let db: Database;
  let store: PostgresEventStore;
  let handler: CommandHandler;
  let commands: DeploymentCommands;
  let runtime: ReactorRuntime;
  const clusterId = randomUUID();

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await migrateSentinel(db.knex);
    handler = new CommandHandler(store);
    commands = new DeploymentCommands(handler, systemClock, new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth }));
    // Registered, so that commands judged against the fleet find the cluster active.
    await handler.execute(
      clusters,
      clusterId,
      { type: 'RegisterCluster', clusterId, spec: { name: 'judged', apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' }, region: 'eu', labels: {}, gpuSkus: [GPU_SKU] } },
      byOperator(),
    );
    sim = await startClusterSimulator({ podReadyAfterMs: 100, controllerIntervalMs: 25 });
    sim.faults.neverReady(/never-ready/);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(sim.kubeconfig());
    const driver = new KubeClusterDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 100, requestTimeoutMs: 5_000 } });
    runtime = new ReactorRuntime(db.knex, store, { logger, lease: inProcessLease, standbyRetryMs: 100, retryBaseMs: 50, retryMaxMs: 1_000 });
    runtime.add(
      new ClusterReactor(clusterId, driver, handler, {
        logger,
        progressDeadlineSeconds: 2,
        judged: (action, deploymentId, context) => commands.judgedObservation(action, deploymentId, context),
        settled: (deploymentId, context) => commands.settledObservation(deploymentId, context),
      }),
    );
  });
  after(async () => {
    await runtime?.stop();
    await sim?.close();
    await store?.close();
    await db?.close();
  });

  async function state(id: string): Promise<PlacedDeployment> {
    const { state: current } = await handler.loadState(deployments, id);
    if (current.status === 'absent') throw new Error(`deployment ${id} does not exist`);
    return current;
  }

  /** A deployment of one GPU per replica on the simulated cluster, available. */
  async function deployed(namespace: string, replicas: number): Promise<string> {
    const deploymentId = randomUUID();
    const workload = { id: randomUUID(), status: 'active' as const, specRevision: 1, spec: spec(namespace, 'registry.example/llm:1'), gpu: { count: 1, sku: GPU_SKU } };
    await handler.execute(
      deployments,
      deploymentId,
      {
        type: 'CreateDeployment',
        deploymentId,
        workload,
        cluster: { id: clusterId, status: 'active', gpuSkus: [GPU_SKU] },
        replicas,
        strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
        driftPolicy: 'revert',
      },
      byOperator(),
    );
    await eventually('revision 1 available', () => state(deploymentId), (s) => s.status === 'Available');
    return deploymentId;
  }

  it('given a restart, then the ledger holds its surge pod while it rolls out and gives it back once the cluster shows it complete', async () => {
    const deploymentId = await deployed(`surge-${randomBytes(3).toString('hex')}`, 2);
    await commands.scale(deploymentId, 3, byOperator());
    await eventually('3 replicas available', () => state(deploymentId), (s) => s.status === 'Available' && s.replicas === 3);

    await commands.restart(deploymentId, 'new config', byOperator());

    const placed = async () =>
      (await store.readStream(LEDGER_STREAM))
        .map((event) => event.data as Admission)
        .filter((admission) => admission.targetId === deploymentId && admission.placement)
        .map((admission) => [admission.placement!.footprint.replicas, admission.settles === true]);
    // Admitted at 3; the restart at 3 and one surge pod (maxSurge 25%, rounded up); given back once complete.
    await eventually('the surge given back', placed, (placements) => placements.length === 3);
    expect(await placed()).to.deep.equal([
      [3, false],
      [4, false],
      [3, true],
    ]);
    expect((await state(deploymentId)).status).to.equal('Available');
  });

  it('given a rollout that fails after a change freeze opened, then the automatic rollback is refused by policy and recorded, and the deployment stays Failed on the new revision', async () => {
    const namespace = `judged-${randomBytes(3).toString('hex')}`;
    const deploymentId = await deployed(namespace, 1);

    await handler.execute(
      deployments,
      deploymentId,
      { type: 'UpdateDeployment', deploymentId, workload: { status: 'active', specRevision: 2, spec: spec(namespace, 'registry.example/llm:never-ready') }, workloadRevision: 2 },
      byOperator(),
    );
    const window = { start: new Date(Date.now() - 60_000).toISOString(), end: new Date(Date.now() + 3_600_000).toISOString() };
    const freeze = policyBody.parse({ name: 'freeze', mode: 'enforce', type: 'change_freeze', selector: { namespaces: [namespace] }, parameters: { windows: [window] } });
    await handler.execute(policySets, GLOBAL_POLICY_SET, { type: 'CreatePolicy', policyId: randomUUID(), policy: freeze }, byOperator());

    const failed = await eventually(
      'the refusal of the rollback recorded',
      async () => (await store.readStream(`deployment-${deploymentId}`)).filter((e) => e.type === 'PolicyEvaluated'),
      (decisions) => decisions.some((e) => (e.data as unknown as PolicyDecision).verdict === 'deny'),
    );
    const refusal = failed.find((e) => (e.data as unknown as PolicyDecision).verdict === 'deny')!;
    expect((refusal.data as unknown as PolicyDecision).command).to.equal('RecordRolledBack');
    const types = (await store.readStream(`deployment-${deploymentId}`)).map((e) => e.type);
    expect(types).to.not.include('DeploymentRolledBack');
    expect(await state(deploymentId)).to.deep.include({ status: 'Failed', currentRevision: 2 });
  });
});
