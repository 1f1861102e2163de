// Remediation survives a crash: it follows the node facts in the log from a checkpoint (the reactor runtime), so a
// fact recorded while it was down still gets its drain plan, once, and a replay after the plan appends nothing.
// PGlite always; PostgreSQL too when TEST_DATABASE_URL is set.
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import type { Sample } from '../../adapters/grpc/telemetry-proto.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { ActionPlanCommands } from '../../commands/action-plan-commands.js';
import { clusters } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler } from '../../commands/command-handler.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { NodeHealthCommands } from '../../commands/node-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { factKey, nodeEvents, nodeId } from '../../domain/node.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';
import { forgetReactorCheckpoint, reactorCheckpoint } from '../../adapters/postgres/checkpoints.js';
import { HealthFacts } from '../../telemetry/health-facts.js';
import { REMEDIATION, Remediation, remediationPlanId } from '../../telemetry/remediation.js';
import { eventually } from '../support/eventually.js';
import { backends, type Backend } from '../support/projection-backends.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const RUN = randomBytes(3).toString('hex');
const START = Date.UTC(2026, 0, 31, 12, 0, 0);
const at = (seconds: number) => new Date(START + seconds * 1000);
const GPU = 'GPU-8f6e1c2a-0000-4000-8000-000000000002';

for (const backend of backends) {
  describe(`remediation across restarts on ${backend.name}`, function () {
    this.timeout(30_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;
    let handler: CommandHandler;
    let plans: ActionPlanCommands;
    let facts: HealthFacts;
    let clusterId: string;
    /** Every plan id remediation proposed, each time it proposed it. */
    const proposals: string[] = [];
    let counter = 0;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      store = await PostgresEventStore.open(opened.db);
      await migrateSentinel(opened.db.knex);
      handler = new CommandHandler(store);
      plans = new ActionPlanCommands(handler, systemClock, new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth }), new FleetFacts(handler), {
        defaultTtlSeconds: 3600,
      });
      facts = new HealthFacts(new NodeHealthCommands(handler), store);
      clusterId = randomUUID();
      const spec = { name: `gpu-${RUN}`, apiServer: 'https://10.0.0.1:6443', credentials: { source: 'in-cluster' as const }, region: 'us-east-1', labels: {}, gpuSkus: [] };
      await handler.execute(clusters, clusterId, { type: 'RegisterCluster', clusterId, spec }, {
        actor: { id: 'test', kind: 'user' },
        correlationId: randomUUID(),
        causationId: randomUUID(),
      });
    });
    after(async () => {
      await store?.close();
      await opened?.close();
    });

    /** Remediation as the telemetry role runs it: a reactor in a runtime of its own, from its checkpoint. */
    function startRemediation(): ReactorRuntime {
      const runtime = new ReactorRuntime(opened.db.knex, store, { logger, lease: opened.lease(), retryBaseMs: 5 });
      const noting: Pick<ActionPlanCommands, 'proposeFromSentinel'> = {
        proposeFromSentinel: (planId, proposal, context) => {
          proposals.push(planId);
          return plans.proposeFromSentinel(planId, proposal, context);
        },
      };
      runtime.add(new Remediation(noting, store, { mode: 'propose' }));
      return runtime;
    }

    /** A node of its own, whose agent's batches the ingest hands to the health facts while remediation is down. */
    function node() {
      counter += 1;
      const nodeName = `gpu-node-${RUN}-${counter}`;
      const stream = `node-${nodeId(clusterId, nodeName)}`;
      let sequence = 0;
      const sample = (metric: string, value: number, seconds: number, labels: Record<string, string> = { UUID: GPU, gpu: '0' }): Sample => ({
        metric,
        labels,
        value,
        timestampUnixMs: at(seconds).getTime(),
      });
      return {
        nodeName,
        stream,
        sample,
        stored: (samples: Sample[], seconds: number) =>
          facts.batchStored({ agentId: `agent-${nodeName}`, nodeName, clusterId, sequence: (sequence += 1), samples, droppedSamples: 0, sentAtUnixMs: 0 }, at(seconds)),
        fact: async (type: string): Promise<RecordedEvent> => {
          const found = (await store.readStream(stream)).find((event) => event.type === type);
          if (!found) throw new Error(`no ${type} in ${stream}`);
          return found;
        },
      };
    }

    const planOf = (stream: string, fact: RecordedEvent) => remediationPlanId(stream.slice('node-'.length), factKey(nodeEvents.parse(fact.type, fact.schemaVersion, fact.data)));
    const planEvents = async (planId: string) => (await store.readStream(`plan-${planId}`)).map((event) => event.type);
    const checkpoint = () => reactorCheckpoint(opened.db.knex, REMEDIATION);

    it('given an XID 79 recorded while remediation was down, when it starts, then the drain plan is submitted once; a replay appends nothing', async () => {
      const n = node();
      await n.stored([n.sample('DCGM_FI_DEV_XID_ERRORS', 79, 5)], 5);
      const fact = await n.fact('GpuXidErrorObserved');
      const planId = planOf(n.stream, fact);
      expect(await planEvents(planId), 'no plan before remediation runs').to.deep.equal([]);

      const first = startRemediation();
      try {
        await eventually('the drain plan to be approved', () => planEvents(planId), (types) => types.includes('ActionPlanApproved'), 20_000);
        await eventually('the checkpoint to pass the fact', checkpoint, (position) => position === fact.position, 20_000);
      } finally {
        await first.stop();
      }
      const approved = await planEvents(planId);
      expect(approved).to.deep.equal(['ActionPlanSubmitted', 'ActionPlanValidationStarted', 'PolicyEvaluated', 'ActionPlanApproved']);
      const [submitted] = await store.readStream(`plan-${planId}`);
      expect(submitted!.data).to.deep.include({ source: 'sentinel', shadow: true, actions: [{ kind: 'drain', clusterId, node: n.nodeName }] });
      expect(submitted!.metadata).to.deep.include({ causationId: fact.id, source: 'telemetry:remediation' });

      // A crash after the plan and before the checkpoint moved: the fact is delivered again after the restart.
      await forgetReactorCheckpoint(opened.db.knex, REMEDIATION);
      const proposedBefore = proposals.filter((id) => id === planId).length;
      const second = startRemediation();
      try {
        await eventually('the checkpoint to pass the fact again', checkpoint, (position) => position === fact.position, 20_000);
      } finally {
        await second.stop();
      }
      expect(proposals.filter((id) => id === planId).length, 'the fact was handled again').to.equal(proposedBefore + 1);
      expect(await planEvents(planId), 'the replay appended nothing').to.deep.equal(approved);
    });

    it('given a GPU that fell off the bus and came back while remediation was down, when it starts, then no plan is proposed', async () => {
      const n = node();
      const lost = (value: number, seconds: number) => n.sample('sentinel_gpu_lost', value, seconds, { pci_bus_id: '00000000:3B:00.0' });
      await n.stored([lost(1, 5)], 5);
      await n.stored([lost(0, 6)], 6);
      expect((await store.readStream(n.stream)).map((event) => event.type)).to.deep.equal(['NodeRegistered', 'GpuFellOffBus', 'GpuBackOnBus']);
      const fact = await n.fact('GpuFellOffBus');

      const runtime = startRemediation();
      try {
        await eventually('the checkpoint to pass the fact', checkpoint, (position) => position === fact.position, 20_000);
      } finally {
        await runtime.stop();
      }
      expect(await planEvents(planOf(n.stream, fact))).to.deep.equal([]);
    });
  });
}
