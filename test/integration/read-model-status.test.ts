// The read models' statuses are the deciders' own: given random command sequences run through the command handler
// against deployments and action plans, when the events are projected in batches of any size, then each deployment's
// row, revisions and timeline, and each plan's status, actions and their timelines, say what folding the stream with
// the domain's `evolve` says. PGlite always, PostgreSQL when TEST_DATABASE_URL names a server.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import type { Knex } from 'knex';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { actionPlans as planAggregate, deployments as deploymentAggregate } from '../../commands/aggregates.js';
import { CommandHandler, streamOf, type CommandContext } from '../../commands/command-handler.js';
import { actionPlanDecider, actionPlanEvents, type ActionPlan, type ActionPlanCommand, type PlanAction, type Violation } from '../../domain/action-plan.js';
import { DomainError, fold, type DomainEvent, type EventCatalog } from '../../domain/decider.js';
import {
  deploymentDecider,
  deploymentEvents,
  lastAvailableRevision,
  revisionAt,
  type ClusterFacts,
  type Deployment,
  type DeploymentCommand,
  type PlacedDeployment,
  type Strategy,
  type WorkloadFacts,
} from '../../domain/deployment.js';
import type { EventStore } from '../../domain/event-store.js';
import { tableNames, type Projector, type TableNames } from '../../projections/projector.js';
import { actionPlans, deploymentHistory, deployments } from '../../projections/read-models.js';
import type { ReadModel } from '../../projections/read-models/query.js';
import { allVisible } from '../support/events.js';
import { backends } from '../support/projection-backends.js';

/** Fixed, so that a failure is found again (fast-check prints the path to a counterexample); PROPERTY_SEED tries another. */
const DEFAULT_SEED = 1414;
const SEED = Number(process.env['PROPERTY_SEED'] ?? DEFAULT_SEED);
const RUNS = 8;

/**
 * What the runs at the fixed seed get to between them, or the property would hold of too little: a change to the
 * generators that loses one of these needs its weights looked at again. Another seed may reach a little less.
 */
const MUST_REACH = [
  'deployment Available',
  'deployment Degraded',
  'deployment Deleted',
  'deployment Failed',
  'deployment RolledBack',
  'drift adopt',
  'drift revert',
  'plan Cancelled',
  'plan Completed',
  'plan Failed',
  'plan Rejected',
  'plan RolledBack',
  'action Undone',
  'action NotUndone',
  'action Skipped',
];

const alice = { id: 'alice', kind: 'user' as const };
const times = <T>(n: number, value: T): T[] => Array.from({ length: n }, () => value);
const weighted = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });

// ---- deployments -----------------------------------------------------------------------------------------------

const sku = 'nvidia-a100-80gb';
const workload = (specRevision: number): WorkloadFacts => ({
  id: '0a0a0a0a-3333-4c4c-8c8c-000000000002',
  status: 'active',
  specRevision,
  spec: { image: `registry.local/llm:${specRevision}` },
  gpu: { count: 1, sku },
});
const cluster: ClusterFacts = { id: '0b4c1d1e-1111-4a4a-8a8a-000000000001', status: 'active', gpuSkus: [sku] };
const rolling: Strategy = { type: 'rolling', maxSurge: '25%', maxUnavailable: '25%' };
const canary: Strategy = { type: 'canary', steps: [{ weight: 10 }, { weight: 100 }] };
const driftPolicy = fc.constantFrom<'revert' | 'adopt'>('revert', 'adopt');

/** A command as drawn, before it is given the id of the deployment or plan it is for: counterexamples print as data. */
type Unaddressed<Command, Id extends string> = Command extends unknown ? Omit<Command, Id> : never;
type DeploymentDraw = Unaddressed<DeploymentCommand, 'deploymentId'>;

const creation = fc.record({
  type: fc.constant('CreateDeployment' as const),
  workload: fc.constant(workload(1)),
  cluster: fc.constant(cluster),
  replicas: fc.nat(5),
  strategy: fc.constant(rolling),
  driftPolicy,
});

const revision = fc.integer({ min: 1, max: 3 });
const reason = fc.option(fc.constantFrom('drain', 'load', 'oncall'), { nil: undefined });

/** Any command at all, about any revision: many are refused, stale or repeat what is recorded. */
const anyDeploymentCommand: fc.Arbitrary<DeploymentDraw> = fc.oneof(
  fc.record({ type: fc.constant('ScaleDeployment' as const), replicas: fc.nat(5), cluster: fc.record({ status: fc.constantFrom<ClusterFacts['status']>('active', 'cordoned') }) }),
  fc.record({
    type: fc.constant('UpdateDeployment' as const),
    workload: revision.map(workload),
    strategy: fc.option(fc.constantFrom(rolling, canary), { nil: undefined }),
    driftPolicy: fc.option(driftPolicy, { nil: undefined }),
  }),
  fc.record({ type: fc.constant('RollbackDeployment' as const), toRevision: fc.option(revision, { nil: undefined }), reason }),
  fc.record({ type: fc.constant('RescheduleDeployment' as const), nodeSelector: fc.record({ pool: fc.constantFrom('a', 'b') }) }),
  fc.record({ type: fc.constantFrom('PauseDeployment' as const, 'ResumeDeployment' as const, 'DeleteDeployment' as const), reason }),
  fc.record({ type: fc.constant('RecordApplying' as const), revision }),
  fc.record({ type: fc.constant('RecordAvailable' as const), revision, readyReplicas: fc.nat(5) }),
  fc.record({ type: fc.constant('RecordRolloutFailed' as const), revision, cause: fc.constant('ImagePullBackOff') }),
  fc.record({ type: fc.constant('RecordRolledBack' as const), revision, toRevision: revision, cause: fc.constant('rollout failed') }),
  fc.record({
    type: fc.constant('RecordDrift' as const),
    revision,
    differences: fc.nat(5).map((n) => [
      { field: 'object', expected: 'present', actual: 'absent' },
      { field: 'replicas', expected: 1, actual: n },
    ]),
    observedVersion: fc.constant('1'),
  }),
);

/**
 * The commands that take a deployment on from its status, as people and the cluster reactor would: a change asked
 * for, then its rollout reported on the current revision until it is available, fails or is rolled back by itself.
 * `n` varies the numbers.
 */
function deploymentCommandsFor(deployment: PlacedDeployment, deploymentId: string, n: number): DeploymentCommand[] {
  const revision = deployment.currentRevision;
  const running = revisionAt(deployment, revision)!;
  const earlier = lastAvailableRevision(deployment, revision)?.revision;
  const failed: DeploymentCommand = { type: 'RecordRolloutFailed', deploymentId, revision, cause: 'ImagePullBackOff' };
  const rolledBack: DeploymentCommand[] = earlier ? [{ type: 'RecordRolledBack', deploymentId, revision, toRevision: earlier, cause: 'rollout failed' }] : [];
  const available: DeploymentCommand = { type: 'RecordAvailable', deploymentId, revision, readyReplicas: deployment.replicas };
  // Another spec revision than the one running, so that the update makes a revision of its own.
  const update: DeploymentCommand = { type: 'UpdateDeployment', deploymentId, workload: workload(1 + (running.workloadRevision % 3)), driftPolicy: n % 2 === 0 ? 'adopt' : 'revert' };
  const changes: DeploymentCommand[] = [
    ...times(3, update),
    { type: 'ScaleDeployment', deploymentId, replicas: n % 6, cluster: { status: 'active' } },
    { type: 'RestartDeployment', deploymentId, at: new Date(Date.UTC(2026, 0, 1, 0, 0, n % 1000)).toISOString() },
    { type: 'RollbackDeployment', deploymentId },
  ];
  switch (deployment.status) {
    case 'Pending':
    case 'RolledBack':
      return [{ type: 'RecordApplying', deploymentId, revision }];
    case 'Applying':
      return [{ type: 'RecordApplied', deploymentId, revision }];
    case 'Progressing':
      return [{ type: 'RecordRolloutProgress', deploymentId, revision, readyReplicas: 0, updatedReplicas: deployment.replicas }, ...times(2, available), failed, ...rolledBack, ...rolledBack];
    case 'Available':
    case 'Degraded':
      return [
        ...changes,
        available,
        { type: 'RecordDegraded', deploymentId, revision, cause: 'pods lost' },
        ...times<DeploymentCommand>(2, { type: 'RecordDrift', deploymentId, revision, differences: [{ field: 'replicas', expected: deployment.replicas, actual: n % 6 }], observedVersion: String(n) }),
        deployment.paused ? { type: 'ResumeDeployment', deploymentId } : { type: 'PauseDeployment', deploymentId, reason: 'oncall' },
      ];
    case 'Failed':
      return [...rolledBack, ...rolledBack, ...changes];
    case 'Deleted':
      return [];
  }
}

// ---- action plans ------------------------------------------------------------------------------------------------

const early = '2026-01-01T00:30:00.000Z';
const late = '2026-01-01T02:00:00.000Z';

type PlanDraw = Unaddressed<ActionPlanCommand, 'planId'>;

const planAction: fc.Arbitrary<PlanAction> = fc.constantFrom<PlanAction>(
  { kind: 'scale', deploymentId: '0c0c0c0c-4444-4d4d-8d8d-000000000003', replicas: 2 },
  { kind: 'restart', deploymentId: '0c0c0c0c-4444-4d4d-8d8d-000000000003' },
  { kind: 'drain', clusterId: cluster.id, node: 'gpu-node-1' },
);

const submission = fc.record({
  type: fc.constant('SubmitActionPlan' as const),
  source: fc.constant('inframind' as const),
  actor: fc.constant(alice),
  reason: fc.constant('rebalance'),
  actions: fc.array(planAction, { minLength: 1, maxLength: 3, size: 'max' }),
  submittedAt: fc.constant('2026-01-01T00:00:00.000Z'),
  expiresAt: fc.constant('2026-01-01T01:00:00.000Z'),
  /** Now and then a shadow plan, which is judged but never carried out. */
  shadow: fc.constantFrom(false, false, false, false, false, false, false, true),
});

const index = fc.nat(3);

/**
 * Any command that carries a plan's life on: most are refused in the plan's status, or repeat what is already
 * recorded. (Cancelling and expiring are left to `planCommandsFor`: at random they would end most plans early.)
 */
const anyPlanCommand: fc.Arbitrary<PlanDraw> = fc.oneof(
  fc.record({ type: fc.constantFrom('StartPlanValidation' as const, 'ApprovePlan' as const, 'CompletePlanRollback' as const) }),
  fc.record({ type: fc.constant('RejectPlan' as const), violations: fc.constant<Violation[]>([{ path: 'actions.0', message: 'over quota' }]) }),
  fc.record({ type: fc.constant('StartPlanExecution' as const), at: fc.constantFrom(early, late) }),
  fc.record({ type: fc.constantFrom('RecordActionStarted' as const, 'StartActionUndo' as const), index }),
  fc.record({ type: fc.constant('RecordActionSucceeded' as const), index, detail: fc.option(fc.constant('scaled to 2'), { nil: undefined }) }),
  fc.record({ type: fc.constant('RecordActionFailed' as const), index, error: fc.constant('quota exceeded') }),
  fc.record({ type: fc.constant('StartPlanRollback' as const), cause: fc.constant('operator asked') }),
);

type SubmittedPlan = Exclude<ActionPlan, { status: 'absent' }>;

/**
 * The commands that take a plan on from its status, mostly the way a plan's life runs (validated, approved, carried
 * out), sometimes another way (cancelled, rejected, expired, failed, rolled back). `n` picks the action an outcome is
 * about while the plan executes.
 */
function planCommandsFor(plan: SubmittedPlan, planId: string, n: number): ActionPlanCommand[] {
  const index = n % plan.actions.length;
  const rollback: ActionPlanCommand = { type: 'StartPlanRollback', planId, cause: 'operator asked' };
  switch (plan.status) {
    case 'Pending':
      return [...times<ActionPlanCommand>(6, { type: 'StartPlanValidation', planId }), { type: 'CancelPlan', planId, actor: alice, reason: 'no longer needed' }];
    case 'Validating':
      return [...times<ActionPlanCommand>(6, { type: 'ApprovePlan', planId }), { type: 'RejectPlan', planId, violations: [{ message: 'over quota' }] }];
    case 'Approved':
      return [...times<ActionPlanCommand>(6, { type: 'StartPlanExecution', planId, at: early }), { type: 'StartPlanExecution', planId, at: late }];
    case 'Executing':
      // As the plan reactor does: an action is started (a scale recording what it found, for its undo), then succeeds.
      if (plan.actions[index]!.status === 'Pending') {
        const before = plan.actions[index]!.action.kind === 'scale' ? { before: { clusterId: cluster.id, replicas: 1, revision: 1 } } : {};
        return [...times<ActionPlanCommand>(4, { type: 'RecordActionStarted', planId, index, ...before }), { type: 'RecordActionFailed', planId, index, error: 'quota exceeded' }, rollback];
      }
      return [
        { type: 'RecordActionSucceeded', planId, index, detail: 'done' },
        ...times<ActionPlanCommand>(2, { type: 'RecordActionSucceeded', planId, index }),
        { type: 'RecordActionFailed', planId, index, error: 'quota exceeded' },
        rollback,
      ];
    case 'Failed':
      return [rollback];
    case 'RollingBack': {
      // Last first, one at a time: an undo under way is recorded (done or refused), then the next one starts.
      const undoing = plan.actions.findIndex((slot) => slot.status === 'Undoing');
      if (undoing >= 0) {
        return [
          ...times<ActionPlanCommand>(2, { type: 'RecordActionUndone', planId, index: undoing, detail: 'scaled back' }),
          { type: 'RecordActionNotUndone', planId, index: undoing, reason: 'refused by policy' },
        ];
      }
      const undo = plan.actions.findLastIndex((slot) => slot.status === 'Succeeded');
      return undo === -1 ? [{ type: 'CompletePlanRollback', planId }] : [{ type: 'StartActionUndo', planId, index: undo }];
    }
    default:
      return [];
  }
}

// ---- a run: a few deployments and plans, their commands interleaved -----------------------------------------

/**
 * One command for the `target`-th deployment or plan of the run: one drawn at random, or the `choice`-th of those that
 * take it on from where it is (`deploymentCommandsFor`, `planCommandsFor`, with `n` to vary them).
 */
type Step = ({ kind: 'deployment'; random: DeploymentDraw } | { kind: 'plan'; random: PlanDraw } | { kind: 'deployment' | 'plan'; choice: number; n: number }) & {
  target: number;
};

interface Run {
  creations: DeploymentDraw[];
  submissions: PlanDraw[];
  steps: Step[];
  /** Events per batch when the run's events are projected. */
  batchSize: number;
}

/** Unbiased: fast-check leans towards small numbers, which would pick the first aggregate and the first command most. */
const pickOf = fc.noBias(fc.nat());
const guided = (kind: Step['kind']) => fc.record({ kind: fc.constant(kind), target: pickOf, choice: pickOf, n: pickOf });
const run: fc.Arbitrary<Run> = fc.record({
  creations: fc.array(creation, { minLength: 1, maxLength: 2 }),
  submissions: fc.array(submission, { minLength: 2, maxLength: 3 }),
  steps: fc.array(
    fc.oneof(
      weighted(4, guided('deployment')),
      weighted(4, guided('plan')),
      weighted(1, fc.record({ kind: fc.constant('deployment' as const), target: pickOf, random: anyDeploymentCommand })),
      weighted(1, fc.record({ kind: fc.constant('plan' as const), target: pickOf, random: anyPlanCommand })),
    ),
    { minLength: 50, maxLength: 90 },
  ),
  batchSize: fc.integer({ min: 1, max: 30 }),
});

const guidedChoice = <T>(choices: readonly T[], choice: number): T | undefined => choices[choice % choices.length];

const context = (): CommandContext => ({ actor: alice, correlationId: randomUUID(), causationId: randomUUID() });

// ---- what the deciders say -----------------------------------------------------------------------------------

/** The stream's events as stored, and the state after each, folded by the decider. */
async function historyOf<Event extends DomainEvent, State>(
  store: EventStore,
  stream: string,
  catalog: EventCatalog<Event>,
  decider: { initialState: State; evolve(state: State, event: Event): State },
): Promise<{ events: Event[]; states: State[] }> {
  const events = (await store.readStream(stream)).map((event) => catalog.parse(event.type, event.schemaVersion, event.data));
  const states: State[] = [];
  for (const event of events) states.push(fold(decider, [event], states.at(-1) ?? decider.initialState));
  return { events, states };
}

function expectedDeployment(state: Deployment) {
  if (state.status === 'absent') throw new Error('a deployment the run created is absent from its stream');
  return {
    status: state.status,
    paused: state.paused,
    replicas: state.replicas,
    strategy: state.strategy,
    driftPolicy: state.driftPolicy,
    currentRevision: state.currentRevision,
    workloadRevision: state.revisions[state.currentRevision]!.workloadRevision,
    lastCause: state.lastCause ?? null,
    restartedAt: state.restartedAt ?? null,
    revisions: Object.values(state.revisions).map((revision) => ({
      revision: revision.revision,
      workloadRevision: revision.workloadRevision,
      strategy: revision.strategy,
      rollbackOf: revision.rollbackOf ?? null,
      becameAvailable: state.availableRevisions.includes(revision.revision),
    })),
  };
}

function expectedPlan(states: SubmittedPlan[]) {
  const state = states.at(-1)!;
  return {
    status: state.status,
    violations: state.violations ?? null,
    cause: state.cause ?? null,
    actions: state.actions.map((slot, index) => ({
      status: slot.status,
      detail: slot.detail ?? null,
      error: slot.error ?? null,
      undo: slot.undo ?? null,
      undoDetail: slot.undoDetail ?? null,
      // Each status the action moved to, from its first (Pending, on submission).
      timeline: states.map((plan) => plan.actions[index]!.status).filter((status, i, all) => i === 0 || status !== all[i - 1]),
    })),
  };
}

function pick(value: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((key) => [key, value[key]]));
}

// ---- the property, on each database ------------------------------------------------------------------------

for (const backend of backends) {
  describe(`read-model statuses on ${backend.name}`, function () {
    this.timeout(120_000);
    let opened: Awaited<ReturnType<(typeof backends)[number]['open']>>;
    let knex: Knex;
    let store: PostgresEventStore;
    let handler: CommandHandler;
    let checkpoint: string | undefined;
    const models = [deployments, actionPlans] as ReadModel[];
    const tablesOf = <Base extends string>(model: ReadModel<Base>): TableNames<Base> => tableNames(model.projector, 1);

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      knex = opened.db.knex;
      store = await PostgresEventStore.open(opened.db);
      handler = new CommandHandler(store);
      await knex.transaction(async (trx) => {
        for (const model of models) await model.projector.createTables(trx, tablesOf(model));
      });
    });
    after(async () => {
      await store?.close();
      await opened?.close();
    });

    /** Runs a command; a refusal is part of a random walk, any other error is not. */
    async function attempt(command: () => Promise<unknown>): Promise<void> {
      try {
        await command();
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
      }
    }

    async function step(deploymentIds: string[], planIds: string[], step: Step): Promise<void> {
      if (step.kind === 'deployment') {
        const deploymentId = deploymentIds[step.target % deploymentIds.length]!;
        const { state } = await handler.loadState(deploymentAggregate, deploymentId);
        const command = 'random' in step ? ({ ...step.random, deploymentId } as DeploymentCommand) : guidedChoice(state.status === 'absent' ? [] : deploymentCommandsFor(state, deploymentId, step.n), step.choice);
        if (command) await attempt(() => handler.execute(deploymentAggregate, deploymentId, command, context()));
      } else {
        const planId = planIds[step.target % planIds.length]!;
        const { state } = await handler.loadState(planAggregate, planId);
        const command = 'random' in step ? ({ ...step.random, planId } as ActionPlanCommand) : guidedChoice(state.status === 'absent' ? [] : planCommandsFor(state, planId, step.n), step.choice);
        if (command) await attempt(() => handler.execute(planAggregate, planId, command, context()));
      }
    }

    /** Projects what the log holds past the last run, `batchSize` events to a transaction, as the runtime does. */
    async function project(batchSize: number): Promise<void> {
      await allVisible(store);
      for (;;) {
        const page = await store.readAll({ after: checkpoint, limit: batchSize });
        if (page.events.length === 0) return;
        for (const model of models) {
          const projector = model.projector as Projector;
          const batch = page.events.filter((event) => projector.eventTypes!.includes(event.type));
          if (batch.length > 0) await knex.transaction((trx) => projector.apply(batch, trx, tablesOf(model)));
        }
        checkpoint = page.events.at(-1)!.position;
      }
    }

    it('given random command sequences, then every deployment and plan status in the read models is the decider’s folded state', async () => {
      const reached = new Set<string>();
      await fc.assert(
        fc.asyncProperty(run, async ({ creations, submissions, steps, batchSize }) => {
          const deploymentIds = creations.map(() => randomUUID());
          const planIds = submissions.map(() => randomUUID());
          for (const [i, deploymentId] of deploymentIds.entries()) {
            await handler.execute(deploymentAggregate, deploymentId, { ...creations[i]!, deploymentId } as DeploymentCommand, context());
          }
          for (const [i, planId] of planIds.entries()) await handler.execute(planAggregate, planId, { ...submissions[i]!, planId } as ActionPlanCommand, context());
          for (const one of steps) await step(deploymentIds, planIds, one);
          await project(batchSize);

          for (const id of deploymentIds) {
            const { events, states } = await historyOf(store, streamOf(deploymentAggregate, id), deploymentEvents, deploymentDecider);
            const item = (await deployments.get!(knex, tablesOf(deployments), id)) as Record<string, unknown> & { revisions: Record<string, unknown>[] };
            const shown = {
              ...pick(item, ['status', 'paused', 'replicas', 'strategy', 'driftPolicy', 'currentRevision', 'workloadRevision', 'lastCause', 'restartedAt']),
              revisions: item.revisions.map((revision) => pick(revision, ['revision', 'workloadRevision', 'strategy', 'rollbackOf', 'becameAvailable'])),
            };
            expect(shown, `deployment ${id}`).to.deep.equal(expectedDeployment(states.at(-1)!));
            const history = await deploymentHistory(knex, tablesOf(deployments), id);
            expect(history!.timeline.map((entry) => entry.status), `timeline of deployment ${id}`).to.deep.equal(states.map((state) => state.status));
            for (const state of states) reached.add(`deployment ${state.status}`);
            for (const event of events) if (event.type === 'DriftDetected') reached.add(`drift ${event.data.resolution}`);
          }

          for (const id of planIds) {
            const states = (await historyOf(store, streamOf(planAggregate, id), actionPlanEvents, actionPlanDecider)).states as SubmittedPlan[];
            const item = (await actionPlans.get!(knex, tablesOf(actionPlans), id)) as Record<string, unknown> & {
              actions: (Record<string, unknown> & { timeline: { status: string }[] })[];
            };
            const shown = {
              ...pick(item, ['status', 'violations', 'cause']),
              actions: item.actions.map((action) => ({ ...pick(action, ['status', 'detail', 'error', 'undo', 'undoDetail']), timeline: action.timeline.map((entry) => entry.status) })),
            };
            expect(shown, `plan ${id}`).to.deep.equal(expectedPlan(states));
            for (const state of states) {
              reached.add(`plan ${state.status}`);
              for (const slot of state.actions) reached.add(`action ${slot.status}`);
            }
          }
        }),
        { seed: SEED, numRuns: RUNS },
      );
      if (SEED === DEFAULT_SEED) {
        const unreached = MUST_REACH.filter((what) => !reached.has(what));
        expect(unreached, 'the runs reached too little for the property to say much: weigh the commands anew').to.deep.equal([]);
      }
    });
  });
}
