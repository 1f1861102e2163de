// The cluster reactor on a fake cluster: deployment commands through the command handler on PGlite, the changes handed
// to the reactor as its runtime would, the cluster's controller and other clients played by the test, and what the
// reactor recorded and asked of the cluster. No timers: each step waits until the reactor has nothing queued.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { deployments } from '../../commands/aggregates.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import type { DeploymentCommand, DriftPolicy } from '../../domain/deployment.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { ClusterError, type ObjectRef } from '../../reactors/cluster-driver.js';
import { ClusterReactor, DEPLOYMENT_CHANGES } from '../../reactors/cluster-reactor.js';
import { FakeClusterDriver } from '../support/fake-cluster-driver.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const CHANGES: ReadonlySet<string> = new Set(DEPLOYMENT_CHANGES);
const IMAGE = 'registry.example/acme/server:1';
const IMAGE_2 = 'registry.example/acme/server:2';

function byOperator(): CommandContext {
  const id = randomUUID();
  return { actor: { id: 'test-operator', kind: 'user' }, correlationId: id, causationId: id };
}

function workloadSpec(name: string, changes: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return {
    name,
    namespace: 'ml',
    type: 'inference',
    image: IMAGE,
    env: { MODEL: 'small' },
    resources: { cpu: '100m', memory: '128Mi' },
    labels: {},
    ...changes,
  };
}

describe('cluster reactor on a fake cluster', () => {
  let db: Database;
  let handler: CommandHandler;
  let driver: FakeClusterDriver;
  let reactor: ClusterReactor;
  /** A cluster of its own for each test: a reactor started resyncs every deployment ever placed on its cluster. */
  let clusterId: string;
  let names = 0;

  before(async () => {
    db = await openPglite();
    handler = new CommandHandler(await PostgresEventStore.open(db));
  });
  beforeEach(async () => {
    clusterId = randomUUID();
    driver = new FakeClusterDriver();
    reactor = new ClusterReactor(clusterId, driver, handler, { logger, progressDeadlineSeconds: 60, resyncIntervalMs: 0 });
    await reactor.start();
  });
  afterEach(() => reactor?.stop());
  after(() => db?.close());

  const execute = (command: DeploymentCommand) => handler.execute(deployments, command.deploymentId, command, byOperator());

  async function typesOf(deploymentId: string): Promise<string[]> {
    return (await handler.load(deployments, deploymentId)).recorded.map((event) => event.type);
  }

  async function eventOf(deploymentId: string, type: string): Promise<RecordedEvent> {
    const found = (await handler.load(deployments, deploymentId)).recorded.findLast((event) => event.type === type);
    if (!found) throw new Error(`no ${type} in deployment-${deploymentId}`);
    return found;
  }

  /** Hands the reactor the deployment's latest change, as its runtime would, and waits until it has done all it does. */
  async function handleLatestChange(deploymentId: string): Promise<void> {
    const change = (await handler.load(deployments, deploymentId)).recorded.findLast((event) => CHANGES.has(event.type));
    if (!change) throw new Error(`no change in deployment-${deploymentId}`);
    await reactor.handle(change);
    await reactor.idle();
  }

  /** A new deployment of `spec`, applied by the reactor; the object the cluster has for it. */
  async function created(spec: WorkloadSpec, driftPolicy: DriftPolicy = 'revert'): Promise<{ id: string; ref: ObjectRef }> {
    const id = randomUUID();
    await execute({
      type: 'CreateDeployment',
      deploymentId: id,
      workload: { id: randomUUID(), status: 'active', specRevision: 1, spec: { ...spec } },
      cluster: { id: clusterId, status: 'active', gpuSkus: [] },
      replicas: 2,
      strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
      driftPolicy,
    });
    await handleLatestChange(id);
    return { id, ref: driver.refFor({ deploymentId: id, spec }) };
  }

  /** A deployment whose first rollout the cluster completed. */
  async function available(spec: WorkloadSpec, driftPolicy: DriftPolicy = 'revert'): Promise<{ id: string; ref: ObjectRef }> {
    const deployment = await created(spec, driftPolicy);
    driver.complete(deployment.ref);
    await reactor.idle();
    expect((await handler.loadState(deployments, deployment.id)).state.status).to.equal('Available');
    return deployment;
  }

  /** Something happens on the cluster; resolves once the reactor has done all it does about it. */
  async function when(step: () => unknown): Promise<void> {
    step();
    await reactor.idle();
  }

  it('given a new deployment, when its change is handled, then Applying and Applied around the apply; when the cluster completes the rollout, then Available', async () => {
    const { id, ref } = await created(workloadSpec(`create-${++names}`));
    expect(await typesOf(id)).to.deep.equal(['DeploymentCreated', 'DeploymentApplying', 'DeploymentApplied']);
    expect(driver.callsOf('apply')).to.deep.equal([{ op: 'apply', ref, revision: 1, replicas: 2 }]);
    expect(driver.object(ref)?.template.image).to.equal(IMAGE);

    await when(() => driver.progress(ref, { replicas: 1, updatedReplicas: 1, readyReplicas: 0 }));
    expect((await eventOf(id, 'DeploymentRolloutProgressed')).data).to.include({ revision: 1, readyReplicas: 0, updatedReplicas: 1 });

    await when(() => driver.complete(ref));
    expect((await typesOf(id)).slice(3)).to.deep.equal(['DeploymentRolloutProgressed', 'DeploymentAvailable']);
  });

  it('given a change the cluster refuses for good, then the rollout failed in the cluster’s words, not Applied', async () => {
    driver.refuseNext('apply', new ClusterError('Deployment.apps "refused" is invalid: spec.template.spec.containers[0].image: Required value', 422, false));
    const { id } = await created(workloadSpec(`refused-${++names}`));
    expect(await typesOf(id)).to.deep.equal(['DeploymentCreated', 'DeploymentApplying', 'DeploymentRolloutFailed']);
    expect(driver.callsOf('apply')).to.have.length(1);
    expect((await eventOf(id, 'DeploymentRolloutFailed')).data['cause']).to.match(/^the cluster refused revision 1: Deployment\.apps "refused" is invalid/);
  });

  it('given revision 2 rolling out after revision 1 became available, when the watch shows ProgressDeadlineExceeded, then RolloutFailed and rolled back, and the copy of revision 1 applied', async () => {
    const spec = workloadSpec(`deadline-${++names}`);
    const { id, ref } = await available(spec);
    await execute({ type: 'UpdateDeployment', deploymentId: id, workload: { status: 'active', specRevision: 2, spec: { ...spec, image: IMAGE_2 } } });
    await handleLatestChange(id);
    expect(driver.object(ref)).to.include({ revision: 2 });

    await when(() =>
      driver.progress(ref, {
        replicas: 3,
        updatedReplicas: 1,
        readyReplicas: 2,
        conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet has timed out progressing.' }],
      }),
    );
    const types = await typesOf(id);
    expect(types.slice(types.indexOf('DeploymentUpdated'))).to.deep.equal([
      'DeploymentUpdated',
      'DeploymentApplying',
      'DeploymentApplied',
      'DeploymentRolloutProgressed',
      'DeploymentRolloutFailed',
      'DeploymentRolledBack',
    ]);
    expect((await eventOf(id, 'DeploymentRolledBack')).data).to.include({ revision: 2, toRevision: 1, newRevision: 3, cause: 'ProgressDeadlineExceeded: ReplicaSet has timed out progressing.' });

    await handleLatestChange(id);
    expect(driver.callsOf('apply').at(-1)).to.deep.equal({ op: 'apply', ref, revision: 3, replicas: 2 });
    expect(driver.object(ref)?.template.image).to.equal(IMAGE);
    await when(() => driver.complete(ref));
    expect((await handler.loadState(deployments, id)).state).to.include({ status: 'Available', currentRevision: 3 });
  });

  it('given a scale rolling out, when the count is changed by hand meanwhile and the rollout then times out, then the deployment is Degraded and the count put back', async () => {
    const { id, ref } = await available(workloadSpec(`scale-hand-${++names}`));
    await execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 3, cluster: { status: 'active' } });
    await handleLatestChange(id);
    await when(() => driver.changeByHand(ref, { replicas: 6 }));

    await when(() =>
      driver.progress(ref, {
        replicas: 6,
        updatedReplicas: 2,
        readyReplicas: 2,
        conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet has timed out progressing.' }],
      }),
    );

    expect((await handler.loadState(deployments, id)).state).to.include({ status: 'Degraded', replicas: 3 });
    expect(driver.object(ref)?.replicas, 'no watch event needed to put it back').to.equal(3);
  });

  it('given a paused deployment, when it is scaled by hand, then the drift is recorded and the count put back with a scale', async () => {
    const { id, ref } = await available(workloadSpec(`paused-${++names}`));
    await execute({ type: 'PauseDeployment', deploymentId: id });

    await when(() => driver.changeByHand(ref, { replicas: 5 }));
    expect((await eventOf(id, 'DriftDetected')).data).to.deep.include({ resolution: 'revert', differences: [{ field: 'replicas', expected: 2, actual: 5 }] });
    expect(driver.callsOf('scale')).to.deep.equal([{ op: 'scale', ref, replicas: 2 }]);
    expect(driver.callsOf('apply')).to.have.length(1);
    expect(driver.object(ref)?.replicas).to.equal(2);
  });

  it('given a paused deployment with a new image waiting for the resume, when scaled by hand, then the count is put back on the revision it runs, with no drift recorded', async () => {
    const spec = workloadSpec(`paused-update-${++names}`);
    const { id, ref } = await available(spec);
    await execute({ type: 'PauseDeployment', deploymentId: id });
    await execute({ type: 'UpdateDeployment', deploymentId: id, workload: { status: 'active', specRevision: 2, spec: { ...spec, image: IMAGE_2 } } });
    await handleLatestChange(id);
    expect(driver.callsOf('apply'), 'the new image waits for the resume').to.have.length(1);

    await when(() => driver.changeByHand(ref, { replicas: 5 }));
    expect(driver.callsOf('scale')).to.deep.equal([{ op: 'scale', ref, replicas: 2 }]);
    expect(driver.object(ref)).to.deep.include({ revision: 1, replicas: 2 });
    expect(await typesOf(id)).to.not.include('DriftDetected');
  });

  it('given a paused deployment with a new image waiting for the resume, when it is scaled, then the revision it runs is scaled, it stays Pending, and a count changed by hand after is still put back', async () => {
    const spec = workloadSpec(`paused-scale-${++names}`);
    const { id, ref } = await available(spec);
    await execute({ type: 'PauseDeployment', deploymentId: id });
    await execute({ type: 'UpdateDeployment', deploymentId: id, workload: { status: 'active', specRevision: 2, spec: { ...spec, image: IMAGE_2 } } });
    await handleLatestChange(id);

    await execute({ type: 'ScaleDeployment', deploymentId: id, replicas: 1, cluster: { status: 'active' } });
    await handleLatestChange(id);

    expect(driver.object(ref)).to.deep.include({ revision: 1, replicas: 1 });
    expect((await handler.loadState(deployments, id)).state).to.deep.include({ status: 'Pending', paused: true, replicas: 1 });
    await when(() => driver.changeByHand(ref, { replicas: 6 }));
    expect(driver.object(ref)).to.deep.include({ revision: 1, replicas: 1 });
  });

  it('given an Available deployment, when its object is deleted by hand, then the drift is recorded and the revision applied again', async () => {
    const { id, ref } = await available(workloadSpec(`deleted-${++names}`));

    await when(() => driver.deleteByHand(ref));
    expect((await eventOf(id, 'DriftDetected')).data).to.deep.include({ resolution: 'revert', differences: [{ field: 'object', expected: 'present', actual: 'absent' }] });
    expect(driver.callsOf('apply').at(-1)).to.deep.equal({ op: 'apply', ref, revision: 1, replicas: 2 });
    expect(driver.object(ref)).to.not.equal(undefined);
  });

  it('given an Available deployment, when a watch event from before its rollout completed comes late, then it stays Available', async () => {
    const { id, ref } = await created(workloadSpec(`late-${++names}`));
    const early = driver.progress(ref, { replicas: 1, updatedReplicas: 1, readyReplicas: 0 });
    await when(() => driver.complete(ref));

    await when(() => driver.deliver({ type: 'MODIFIED', workload: { ...early, rollout: { ...early.rollout, conditions: [{ type: 'Available', status: 'False' }] } } }));
    expect((await handler.loadState(deployments, id)).state.status).to.equal('Available');
    expect(await typesOf(id)).to.not.include('DeploymentDegraded');
  });
});
