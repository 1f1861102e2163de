// A decision records what its rate limits read of the admitted changes, never the changes: its size stays flat
// however long the history, and every decision, new or recorded in version 1 with the changes themselves, replays
// to its verdict. On PGlite, through the command layer.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { clusters, policySets, workloads } from '../../commands/aggregates.js';
import type { Clock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { PolicyCommands } from '../../commands/policy-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import { NotFound, PolicyViolation } from '../../domain/decider.js';
import { deploymentBody } from '../../domain/deployment.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import type { PolicyDecision } from '../../domain/policy-evaluation.js';
import { policyBody, type PolicyBody } from '../../domain/policy.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { readModelDecisionIndex } from '../../projections/decision-index.js';
import { policyDecisions } from '../../projections/read-models.js';
import { ProjectionRuntime } from '../../projections/runtime.js';

const SCALES = 1000;
/**
 * Up twice, then down twice, and so on: each reversal waits out the anti-flap's 90 s stabilization, so that every
 * scale is admitted and the history grows, and each repeat comes within it, so that the last scale is read.
 */
const REPLICAS = [3, 4, 3, 2];
const WAIT_MS = [100_000, 10_000, 100_000, 10_000];

const context = (): CommandContext => ({ actor: { id: 'alice', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() });
const bytes = (event: RecordedEvent) => Buffer.byteLength(JSON.stringify(event.data));
const decisionOf = (event: RecordedEvent) => event.data as unknown as PolicyDecision;

describe('policy decisions of bounded size (PGlite)', function () {
  this.timeout(60_000);
  let db: Database;
  let store: PostgresEventStore;
  let engine: PolicyEngine;
  let deployments: DeploymentCommands;
  let policies: PolicyCommands;
  let deploymentId: string;
  /** The decisions of the scales, in order, once they have run. */
  let scaled: RecordedEvent[];
  /** Time moves only when a test moves it. */
  let now = Date.parse('2026-12-07T00:00:00Z');
  const clock: Clock = { now: () => new Date(now) };

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    const handler = new CommandHandler(store);
    engine = new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth });
    deployments = new DeploymentCommands(handler, clock, engine);
    policies = new PolicyCommands(handler, store, engine, new FleetFacts(handler), clock);

    const createPolicy = (body: Record<string, unknown>) =>
      handler.execute(policySets, 'global', { type: 'CreatePolicy', policyId: randomUUID(), policy: policyBody.parse({ mode: 'enforce', ...body }) as PolicyBody }, context());
    await createPolicy({ name: 'daily changes', type: 'rate_limit', parameters: { maxActions: 100_000, windowSeconds: 86_400 } });
    await createPolicy({ name: 'anti-flap', type: 'rate_limit', parameters: { maxActions: 100_000, windowSeconds: 60, stabilizationSeconds: 90 } });

    const clusterId = randomUUID();
    const workloadId = randomUUID();
    await handler.execute(clusters, clusterId, {
      type: 'RegisterCluster',
      clusterId,
      spec: { name: 'gpu-east', apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' }, region: 'us-east-1', labels: {}, gpuSkus: [] },
    }, context());
    await handler.execute(workloads, workloadId, {
      type: 'RegisterWorkload',
      workloadId,
      spec: { name: 'chat', namespace: 'ml', type: 'inference', image: 'vllm/vllm-openai:v0.6.0', resources: { cpu: '1', memory: '1Gi' }, labels: { team: 'ml' } },
    }, context());
    deploymentId = randomUUID();
    await deployments.create(deploymentId, deploymentBody.parse({ workloadId, clusterId, replicas: 2 }), context());
  });

  after(async () => {
    await store?.close();
    await db?.close();
  });

  it(`given a daily rate limit and an anti-flap, when one deployment is scaled back and forth ${SCALES} times, then the last decision is no larger than 1.5× the 50th and under 8 KB`, async () => {
    for (let i = 0; i < SCALES; i++) {
      now += WAIT_MS[i % 4]!;
      await deployments.scale(deploymentId, REPLICAS[i % 4]!, context());
    }
    const decisions = (await store.readStream(`deployment-${deploymentId}`)).filter((event) => event.type === 'PolicyEvaluated');
    scaled = decisions.slice(1);
    expect(scaled).to.have.length(SCALES);
    expect(scaled.map((event) => decisionOf(event).verdict)).to.deep.equal(Array(SCALES).fill('allow'));

    const last = scaled.at(-1)!;
    // The readings did count the whole history (the creation and every scale before this one) and read the last scale.
    const [judged] = decisionOf(last).evaluations;
    expect(judged!.results.map((result) => result.message)).to.include(`${SCALES} changes to deployment ${deploymentId} in the last 86400 s; at most 100000 allowed`);
    expect(judged!.inputs.rateLimits!.lastScale).to.deep.equal({ at: new Date(now - WAIT_MS[(SCALES - 1) % 4]!).toISOString(), direction: 'down' });
    const [fiftieth, lastSize] = [bytes(scaled[49]!), bytes(last)];
    expect(lastSize, `the 50th is ${fiftieth} bytes, the ${SCALES}th ${lastSize}`).to.be.at.most(1.5 * fiftieth).and.below(8 * 1024);
  });

  it('given decisions recorded with readings, when replayed, then each matches, the anti-flap refusal among them', async () => {
    now += 1000;
    const reversal = await deployments.scale(deploymentId, REPLICAS[SCALES % 4]!, context()).catch((error: unknown) => error);
    expect(reversal).to.be.instanceOf(PolicyViolation);
    const refused = (await store.readStream(`deployment-${deploymentId}`)).at(-1)!;
    expect(decisionOf(refused).verdict).to.equal('deny');

    for (const event of [scaled[0]!, scaled[49]!, scaled.at(-1)!, refused]) {
      const replay = await policies.replay(event.id);
      expect(replay.matches, JSON.stringify(replay)).to.equal(true);
      expect(replay.replayed.verdict).to.equal(decisionOf(event).verdict);
    }
    const flap = (await policies.replay(refused.id)).replayed.evaluations[0]!.results.find((result) => result.name === 'anti-flap')!;
    expect(flap).to.include({ outcome: 'fail' });
    expect(flap.message).to.match(new RegExp(`^deployment ${deploymentId} was scaled down at \\S+; a scale up is refused until \\S+ \\(90 s stabilization\\)$`));
  });

  it('given a version 1 decision that recorded the admitted changes themselves, when replayed, then it matches with the verdict it recorded', async () => {
    // The refusal above as version 1 recorded it: the ledger's history in place of the readings.
    const refused = (await store.readStream(`deployment-${deploymentId}`)).at(-1)!;
    const { state: ledger } = await engine.ledger();
    const history = ledger.history.filter((past) => past.targetId === deploymentId).map(({ targetRevision: _revision, ...past }) => past);
    expect(history).to.have.length(SCALES + 1);
    const decision = decisionOf(refused);
    const recorded = {
      ...decision,
      evaluations: decision.evaluations.map(({ inputs: { rateLimits: _readings, ...inputs }, ...evaluation }) => ({ ...evaluation, inputs: { ...inputs, history } })),
    };
    const stream = `deployment-${randomUUID()}`;
    const id = randomUUID();
    await store.append(stream, [{ id, type: 'PolicyEvaluated', schemaVersion: 1, data: recorded as unknown as Record<string, unknown> }], { expected: 'no_stream' });

    const replay = await policies.replay(id);
    expect(replay).to.deep.include({ stream, matches: true });
    expect(replay.replayed.verdict).to.equal('deny');
    expect(replay.replayed.evaluations).to.deep.equal((await policies.replay(refused.id)).replayed.evaluations);
  });

  it('given the decisions in the policy decisions read model, when each is replayed through it, then each reads the log once; one it does not hold yet is found in the log', async () => {
    await migrateSentinel(db.knex);
    const runtime = new ProjectionRuntime(db.knex, store, [policyDecisions.projector], { logger: pino({ level: 'silent' }), lease: inProcessLease });
    const decisions = (await store.readStream(`deployment-${deploymentId}`)).filter((event) => event.type === 'PolicyEvaluated');
    await runtime.start();
    try {
      expect(await runtime.waitFor(decisions.at(-1)!.position, [policyDecisions.projector.name], 30_000)).to.equal(true);
    } finally {
      await runtime.stop();
    }
    let reads = 0;
    const counting = new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'readAll') return (...args: Parameters<PostgresEventStore['readAll']>) => ((reads += 1), target.readAll(...args));
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const indexed = new PolicyCommands(new CommandHandler(counting), counting, engine, new FleetFacts(new CommandHandler(counting)), clock, readModelDecisionIndex(db.knex, () => runtime.tables(policyDecisions.projector)));

    for (const event of [decisions[0]!, decisions[500]!, decisions.at(-1)!]) {
      reads = 0;
      const replay = await indexed.replay(event.id);
      expect(replay).to.deep.include({ eventId: event.id, stream: event.stream, matches: true });
      expect(reads, `reads of the log to replay decision ${decisions.indexOf(event)}`).to.equal(1);
    }

    now += 100_000;
    await deployments.scale(deploymentId, 5, context());
    const unindexed = (await store.readStream(`deployment-${deploymentId}`)).filter((event) => event.type === 'PolicyEvaluated').at(-1)!;
    expect(unindexed.position > decisions.at(-1)!.position).to.equal(true);
    reads = 0;
    expect(await indexed.replay(unindexed.id)).to.deep.include({ eventId: unindexed.id, matches: true });
    expect(reads, 'the log is read from its start').to.be.above(1);
    expect(await indexed.replay(randomUUID()).catch((error: unknown) => error)).to.be.instanceOf(NotFound);
  });
});
