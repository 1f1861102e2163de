// Plans never act past their policy or their time: each action is judged, and timed, when it runs. A drain that
// would start inside a change freeze or past a rate limit is refused then, no action starts once the plan has expired,
// and an action that a paused deployment would hold fails at once, also when a restart takes it up again.
import { randomBytes, randomUUID } from 'node:crypto';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { expect } from 'chai';
import { pino } from 'pino';
import { KubeClusterDriver } from '../../adapters/kubernetes/kube-driver.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { actionPlans } from '../../commands/aggregates.js';
import { systemClock, type Clock } from '../../commands/clock.js';
import { NodeDrainCommands } from '../../commands/cluster-commands.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { LEDGER_STREAM } from '../../domain/ledger.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import type { DrainOptions, DrainReport } from '../../reactors/cluster-driver.js';
import { PlanReactor } from '../../reactors/plan-reactor.js';
import { eventually as waitFor } from '../support/eventually.js';
import { startTestApi, type TestApi } from '../support/sentinel-api.js';

const RUN = randomBytes(3).toString('hex');
const IMAGE = 'registry.example/plan-safety/server:1';
/** A few rollouts' worth: pods are ready in 200 ms. */
const PATIENCE_MS = 15_000;
/** Longer than any test may run: an action that waited for its timeout would time the test out instead. */
const ACTION_TIMEOUT_MS = 600_000;
const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

interface PlanView {
  id: string;
  status: string;
  cause: string | null;
  expiresAt: string;
  actions: { index: number; kind: string; status: string; detail: string | null; error: string | null }[];
}

const eventually = <T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean) => waitFor(what, probe, done, PATIENCE_MS);
const types = (events: RecordedEvent[]) => events.map((event) => event.type);
const minutesFromNow = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString();

/** The simulated cluster's driver, with a hook that runs as each drain begins. */
class ObservedDriver extends KubeClusterDriver {
  onDrain: () => void = () => {};

  override drain(node: string, options: DrainOptions): Promise<DrainReport> {
    this.onDrain();
    return super.drain(node, options);
  }
}

describe('plan safety: every action judged and timed when it runs', function () {
  this.timeout(60_000);
  let api: TestApi;
  let core: CoreV1Api;
  let handler: CommandHandler;
  let policy: PolicyEngine;
  let driver: ObservedDriver;
  let counter = 0;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    api = await startTestApi(undefined, {
      SENTINEL_ROLE: 'api,projector,reactor',
      SENTINEL_CLUSTER_SIMULATOR: 'on',
      SENTINEL_PROGRESS_DEADLINE_SECONDS: '2',
      SENTINEL_EVICTION_TIMEOUT_SECONDS: '2',
    });
    const reactors = api.sentinel.reactors;
    if (!reactors?.simulator) throw new Error('the reactor role did not start the cluster simulator');
    // Plans are carried out here by a plan reactor each test starts once it has set the scene, as the plan reactor of
    // a process that takes the plans up later would. The process's cluster reactor stays.
    await reactors.runtime.remove('plans');
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(reactors.simulator.kubeconfig());
    core = kubeConfig.makeApiClient(CoreV1Api);
    handler = new CommandHandler(api.eventStore);
    policy = new PolicyEngine(api.eventStore, { prices: DEFAULT_PRICES, health: noHealth });
    driver = new ObservedDriver(kubeConfig, { logger, retry: { baseDelayMs: 10, maxDelayMs: 100, requestTimeoutMs: 5_000 } });
  });

  afterEach(async () => {
    driver.onDrain = () => {};
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  after(async () => {
    await driver?.close();
    await api?.stop();
  });

  // ---- helpers -----------------------------------------------------------------------------------------------

  const created = async (path: string, body: unknown, as: 'admin' | 'operator' | 'system' = 'admin'): Promise<string> => {
    const reply = await api.request<{ id: string }>('post', path, { as, body });
    expect(reply.status, `${path}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
    return reply.body.id;
  };

  /** A one-replica deployment in a namespace of its own on the simulated cluster, available. */
  const fleet = async (): Promise<string> => {
    counter += 1;
    const workloadId = await created('/workloads', {
      name: `server-${counter}`,
      namespace: `plan-safety-${RUN}-${counter}`,
      type: 'inference',
      image: IMAGE,
      resources: { cpu: '100m', memory: '128Mi' },
    });
    const deploymentId = await created('/deployments', { workloadId, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 });
    await eventually(`deployment ${deploymentId} Available`, () => api.request<{ status: string }>('get', `/deployments/${deploymentId}`), (reply) =>
      reply.body.status === 'Available',
    );
    return deploymentId;
  };

  const pause = async (deploymentId: string) => {
    expect((await api.request('post', `/deployments/${deploymentId}/pause`)).status).to.equal(202);
  };

  /** A policy in force until the test ends. */
  const inForce = async (body: Record<string, unknown>) => {
    const policyId = await created('/policies', { mode: 'enforce', ...body });
    cleanups.push(() => api.request('delete', `/policies/${policyId}`));
  };

  const submit = (actions: unknown[], as: 'operator' | 'system' = 'operator') =>
    created('/action-plans', { source: as === 'system' ? 'inframind' : 'user', reason: `plan-safety test ${counter}`, actions, ttlSeconds: 600 }, as);

  const plan = async (id: string) => (await api.request<PlanView>('get', `/action-plans/${id}`, { as: 'viewer' })).body;

  const planSettled = (id: string, status: string) =>
    eventually(`plan ${id} ${status}`, () => plan(id), (view) => view.status === status && view.actions.every((a) => a.status !== 'Executing'));

  /** Starts a plan reactor of a new reactor process, stopped when the test ends. */
  const carryOutPlans = async (clock: Clock = systemClock) => {
    const reactor = new PlanReactor(
      {
        handler,
        deployments: new DeploymentCommands(handler, systemClock, policy),
        drains: new NodeDrainCommands(handler, systemClock, policy),
        clock,
        driverFor: () => Promise.resolve(driver),
      },
      { logger, actionTimeoutMs: ACTION_TIMEOUT_MS, evictionTimeoutMs: 2_000, settlePollMs: 100 },
    );
    const abort = new AbortController();
    cleanups.push(async () => (abort.abort(), await reactor.stop()));
    await reactor.start(abort.signal);
  };

  const schedulable = async (node: string) => (await core.readNode({ name: node })).spec?.unschedulable !== true;

  /** Drains may cordon these nodes (on the code before plans were judged when they run, they did): uncordoned after. */
  const uncordonAfter = (...nodes: string[]) => {
    for (const node of nodes) {
      cleanups.push(() =>
        core.patchNode({ name: node, body: { spec: { unschedulable: false } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      );
    }
  };

  const clusterEvents = () => api.stream(`cluster-${SIMULATED_CLUSTER_ID}`);
  const drainsAdmitted = async () =>
    (await api.stream(LEDGER_STREAM)).filter((event) => event.type === 'ChangeAdmitted' && event.data['action'] === 'drain');

  // ---- drains are judged when they run -----------------------------------------------------------------------

  it('given a plan approved before a change freeze, when its drain comes to run inside the freeze, then the drain is refused and the node left schedulable', async () => {
    const node = 'sim-gpu-2';
    uncordonAfter(node);
    const deploymentId = await fleet();
    // As in the report: a scale to the replicas it has, then a drain, submitted just before the freeze.
    const planId = await submit([
      { kind: 'scale', deploymentId, replicas: 1 },
      { kind: 'drain', clusterId: SIMULATED_CLUSTER_ID, node },
    ]);
    expect((await plan(planId)).status).to.equal('Approved');
    const admittedBefore = (await drainsAdmitted()).length;
    await inForce({ name: `freeze ${RUN}`, type: 'change_freeze', parameters: { windows: [{ start: minutesFromNow(-1), end: minutesFromNow(60) }] } });

    await carryOutPlans();

    const failed = await planSettled(planId, 'Failed');
    expect(failed.actions.map((action) => [action.kind, action.status])).to.deep.equal([
      ['scale', 'Succeeded'],
      ['drain', 'Failed'],
    ]);
    expect(failed.actions[1]!.error).to.match(/^policy refused drain of node sim-gpu-2 on cluster .*: changes are frozen during the freeze from/);
    expect(await schedulable(node)).to.equal(true);
    // The refusal is recorded on the cluster, and nothing was admitted for it.
    const recorded = await clusterEvents();
    expect(types(recorded)).not.to.include('NodeDrainStarted');
    const judgement = recorded.filter((event) => event.type === 'PolicyEvaluated').at(-1);
    expect(judgement?.data).to.deep.include({ command: 'StartNodeDrain', verdict: 'deny' });
    expect(await drainsAdmitted()).to.have.length(admittedBefore);
  });

  it('given a rate limit of 3 drains of a cluster, when one plan drains 5 times, then 3 drains run, the 4th is refused and the 5th never starts', async () => {
    uncordonAfter('sim-gpu-1', 'sim-gpu-2');
    // Counted for the service account alone, so that drains by the other tests in this file do not count.
    await inForce({
      name: `drains ${RUN}`,
      type: 'rate_limit',
      selector: { actions: ['drain'] },
      parameters: { maxActions: 3, windowSeconds: 3600, per: 'target_and_actor' },
    });
    const drains = [1, 2, 1, 2, 1].map((n) => ({ kind: 'drain', clusterId: SIMULATED_CLUSTER_ID, node: `sim-gpu-${n}` }));
    // Each drain alone is within the limit: the plan is approved.
    const planId = await submit(drains, 'system');
    expect((await plan(planId)).status).to.equal('Approved');

    await carryOutPlans();

    const failed = await planSettled(planId, 'Failed');
    expect(failed.actions.map((action) => action.status)).to.deep.equal(['Succeeded', 'Succeeded', 'Succeeded', 'Failed', 'Skipped']);
    expect(failed.actions[3]!.error).to.match(/rate_limit\): 3 changes to cluster .* in the last 3600 s; at most 3 allowed/);
    const admitted = (await drainsAdmitted()).filter((event) => event.data['actorId'] === api.principalIds.system);
    expect(admitted).to.have.length(3);
    expect(types(await api.stream(`plan-${planId}`)).filter((type) => type === 'PlanActionStarted')).to.have.length(4);
  });

  // ---- no action starts after its plan expired ---------------------------------------------------------------

  it('given a plan whose time runs out during its first action, then its next action is not started and fails naming the expiry', async () => {
    const node = 'sim-gpu-1';
    uncordonAfter(node);
    const deploymentId = await fleet();
    const planId = await submit([
      { kind: 'drain', clusterId: SIMULATED_CLUSTER_ID, node },
      { kind: 'scale', deploymentId, replicas: 2 },
    ]);
    const { expiresAt } = await plan(planId);
    // The plan reactor's clock passes the plan's expiry while the drain runs.
    let lateByMs = 0;
    const clock: Clock = { now: () => new Date(Date.now() + lateByMs) };
    driver.onDrain = () => (lateByMs = Date.parse(expiresAt) - Date.now() + 1000);

    await carryOutPlans(clock);

    const failed = await planSettled(planId, 'Failed');
    expect(failed.actions.map((action) => [action.kind, action.status])).to.deep.equal([
      ['drain', 'Succeeded'],
      ['scale', 'Failed'],
    ]);
    expect(failed.actions[1]!.error).to.equal(`plan expired at ${expiresAt}`);
    expect(failed.cause).to.equal(`action 1 (scale) failed: plan expired at ${expiresAt}`);
    const steps = (await api.stream(`plan-${planId}`)).filter((event) => event.type === 'PlanActionStarted').map((event) => event.data['index']);
    expect(steps).to.deep.equal([0]);
    expect(types(await api.stream(`deployment-${deploymentId}`))).not.to.include('DeploymentScaled');
  });

  // ---- paused deployments ------------------------------------------------------------------------------------

  it('given a paused deployment, then a plan scales it but fails its restart at once, naming the pause, and asks for no restart', async () => {
    const deploymentId = await fleet();
    await pause(deploymentId);
    const planId = await submit([
      { kind: 'scale', deploymentId, replicas: 2 },
      { kind: 'restart', deploymentId },
    ]);

    await carryOutPlans();

    // The action timeout is longer than this test may run: the plan did not wait for it.
    const failed = await planSettled(planId, 'Failed');
    expect(failed.actions.map((action) => [action.kind, action.status])).to.deep.equal([
      ['scale', 'Succeeded'],
      ['restart', 'Failed'],
    ]);
    expect(failed.actions[0]!.detail).to.match(/with 2 replicas/);
    expect(failed.actions[1]!.error).to.equal(`deployment ${deploymentId} is paused: resume it first`);
    const changes = types(await api.stream(`deployment-${deploymentId}`));
    expect(changes).to.include('DeploymentScaled');
    expect(changes).not.to.include('DeploymentRestartRequested');
  });

  it('given an action taken up after a restart whose change waits on a paused deployment, then it fails at once and asks for nothing again', async () => {
    const deploymentId = await fleet();
    await pause(deploymentId);
    const planId = await submit([{ kind: 'restart', deploymentId }]);
    // What a plan reactor that stopped mid-action left behind: the action started, and its restart asked for on the
    // paused deployment, which holds it until it is resumed.
    const before: CommandContext = { actor: { id: api.principalIds.operator, kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() };
    await handler.execute(actionPlans, planId, { type: 'StartPlanExecution', planId, at: new Date().toISOString() }, before);
    await handler.execute(actionPlans, planId, { type: 'RecordActionStarted', planId, index: 0 }, before);
    await new DeploymentCommands(handler, systemClock, policy).restart(deploymentId, 'held by the pause', before);

    await carryOutPlans();

    const failed = await planSettled(planId, 'Failed');
    expect(failed.actions[0]).to.include({ kind: 'restart', status: 'Failed', error: `deployment ${deploymentId} is paused: resume it first` });
    const restarts = types(await api.stream(`deployment-${deploymentId}`)).filter((type) => type === 'DeploymentRestartRequested');
    expect(restarts).to.have.length(1);
  });
});
