// The policy set read for one admission serves the next ones, yet a change of it is never missed: another
// process's change makes the next admission here conflict on the ledger and be judged again against the new set,
// and a refusal is never given by a policy already gone.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { clusters, deployments } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { PolicyCommands } from '../../commands/policy-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import { PolicyViolation } from '../../domain/decider.js';
import type { EventStore, ReadStreamOptions, RecordedEvent } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
import { policyBody, type PolicyBody } from '../../domain/policy.js';
import { POLICY_SET_STREAM } from '../../domain/policy-set.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { rejection } from '../support/rejection.js';

/** Counts the reads of the policy set made through it. */
class CountingStore extends ForwardingEventStore {
  policySetReads = 0;
  override readStream(stream: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    if (stream === POLICY_SET_STREAM) this.policySetReads += 1;
    return this.inner.readStream(stream, options);
  }
}

/** One Sentinel process's write side on the shared store: its own handler, policy engine and ledger copy. */
function writeSide(store: EventStore) {
  const counting = new CountingStore(store);
  const handler = new CommandHandler(counting);
  // Reused for as long as a test runs: what the policy set holds is learnt only from the ledger or a refusal.
  const engine = new PolicyEngine(counting, { prices: DEFAULT_PRICES, health: noHealth, policySetReuseMs: 3_600_000 });
  return {
    counting,
    handler,
    deployments: new DeploymentCommands(handler, systemClock, engine),
    policies: new PolicyCommands(handler, counting, engine, new FleetFacts(handler), systemClock),
  };
}

const context = (): CommandContext => ({ actor: { id: 'alice', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() });

describe('the policy set reused between admissions (PGlite)', function () {
  this.timeout(60_000);
  let db: Database;
  let store: PostgresEventStore;

  before(async () => {
    db = await openPglite();
    store = await PostgresEventStore.open(db);
  });
  after(async () => {
    await store?.close();
    await db?.close();
  });

  /** A running deployment of one replica in its own namespace. */
  async function deployed(through: ReturnType<typeof writeSide>): Promise<{ deploymentId: string; namespace: string }> {
    const clusterId = randomUUID();
    const deploymentId = randomUUID();
    const namespace = `reuse-${randomUUID().slice(0, 8)}`;
    await through.handler.execute(
      clusters,
      clusterId,
      { type: 'RegisterCluster', clusterId, spec: { name: `c-${clusterId.slice(0, 8)}`, apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' }, region: 'local', labels: {}, gpuSkus: [] } },
      context(),
    );
    await through.handler.execute(
      deployments,
      deploymentId,
      {
        type: 'CreateDeployment',
        deploymentId,
        workload: { id: randomUUID(), status: 'active', specRevision: 1, spec: { name: 'svc', namespace, image: 'registry.local/m:1', resources: { cpu: '100m', memory: '128Mi' } } },
        cluster: { id: clusterId, status: 'active', gpuSkus: [] },
        replicas: 1,
        strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
        driftPolicy: 'revert',
      },
      context(),
    );
    return { deploymentId, namespace };
  }

  const freeze = (namespace: string): PolicyBody =>
    policyBody.parse({
      name: `freeze-${namespace}`,
      mode: 'enforce',
      type: 'change_freeze',
      selector: { namespaces: [namespace] },
      parameters: { windows: [{ start: new Date(Date.now() - 60_000).toISOString(), end: new Date(Date.now() + 3_600_000).toISOString() }] },
    }) as PolicyBody;

  it('given an unchanged policy set, when ten changes are admitted one after another, then the policy set is read for the first only', async () => {
    const here = writeSide(store);
    const { deploymentId } = await deployed(here);
    for (let i = 0; i < 10; i++) await here.deployments.scale(deploymentId, i % 2 === 0 ? 2 : 1, context());
    // Once before the first turn, once after it (which read the ledger from the store); none after.
    expect(here.counting.policySetReads).to.be.at.most(2);
  });

  it('given a freeze another process switched on, when a change is asked for here, then it is refused: its first judgement conflicts on the ledger and the second reads the new set', async () => {
    const here = writeSide(store);
    const there = writeSide(store);
    const { deploymentId, namespace } = await deployed(here);
    await here.deployments.scale(deploymentId, 2, context());

    await there.policies.create(randomUUID(), freeze(namespace), context());
    const refused = await rejection(here.deployments.scale(deploymentId, 3, context()));

    expect(refused).to.be.instanceOf(PolicyViolation);
    expect((refused as PolicyViolation).message).to.include(`freeze-${namespace}`);
  });

  it('given a freeze another process switched off, when a change is asked for here, then it is admitted: a refusal first reads the policy set again', async () => {
    const here = writeSide(store);
    const there = writeSide(store);
    const { deploymentId, namespace } = await deployed(here);
    const policyId = randomUUID();
    await there.policies.create(policyId, freeze(namespace), context());
    expect(await rejection(here.deployments.scale(deploymentId, 2, context()))).to.be.instanceOf(PolicyViolation);

    await there.policies.delete(policyId, context());
    const admitted = await here.deployments.scale(deploymentId, 2, context());

    expect(admitted.appended).to.be.greaterThan(0);
  });
});
