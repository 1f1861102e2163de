// Health facts end to end on the write side: stored batches through HealthFacts and the real CommandHandler on an
// event store (PGlite; PostgreSQL too when TEST_DATABASE_URL is set), and the drain plans remediation proposes.
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import type { Batch, Sample } from '../../adapters/grpc/telemetry-proto.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { ActionPlanCommands } from '../../commands/action-plan-commands.js';
import { clusters } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler } from '../../commands/command-handler.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { NodeHealthCommands } from '../../commands/node-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import { actionPlanEvents } from '../../domain/action-plan.js';
import { RuleViolation } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { nodeId } from '../../domain/node.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { HealthFacts } from '../../telemetry/health-facts.js';
import { Remediation, type RemediationMode } from '../../telemetry/remediation.js';
import { eventually } from '../support/eventually.js';
import { backends, type Backend } from '../support/projection-backends.js';

const RUN = randomBytes(3).toString('hex');
const GPU = 'GPU-8f6e1c2a-0000-4000-8000-000000000001';
const START = Date.UTC(2026, 0, 31, 12, 0, 0);
const INTERVAL_MS = 30_000;
const at = (seconds: number) => new Date(START + seconds * 1000);

for (const backend of backends) {
  describe(`health facts on ${backend.name}`, function () {
    this.timeout(30_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;
    let handler: CommandHandler;
    let plans: ActionPlanCommands;
    /** The plan ids remediation proposed, by the node each drains. */
    const proposed = new Map<string, string[]>();
    /** The plan commands as remediation reaches them, noting each plan id it proposes. */
    const noted: Pick<ActionPlanCommands, 'proposeFromSentinel'> = {
      proposeFromSentinel: (planId, proposal, context) => {
        for (const action of proposal.actions) {
          if (action.kind === 'drain') proposed.set(action.node, [...(proposed.get(action.node) ?? []), planId]);
        }
        return plans.proposeFromSentinel(planId, proposal, context);
      },
    };
    let clusterId: string;
    let counter = 0;

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      store = await PostgresEventStore.open(opened.db);
      handler = new CommandHandler(store);
      const engine = new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth });
      plans = new ActionPlanCommands(handler, systemClock, engine, new FleetFacts(handler), { defaultTtlSeconds: 3600 });
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

    /**
     * Hands every fact of `stream` the remediation follows to it, as its reactor would deliver them from the log
     * (test/integration/remediation.test.ts runs it in the reactor runtime, across restarts).
     */
    async function remediate(remediation: Remediation, stream: string): Promise<void> {
      for (const event of await store.readStream(stream)) {
        if (remediation.eventTypes.includes(event.type)) await remediation.handle(event);
      }
    }

    /** A node of its own, with the pipeline a process runs for it: commands, health facts, remediation in `mode`. */
    function node(mode: RemediationMode = 'propose') {
      counter += 1;
      const nodeName = `gpu-node-${RUN}-${counter}`;
      const commands = new NodeHealthCommands(handler);
      const facts = new HealthFacts(commands, store, { intervalMs: INTERVAL_MS });
      const remediation = new Remediation(noted, store, { mode });
      let sequence = 0;
      const batch = (samples: Sample[]): Batch => ({
        agentId: `agent-${nodeName}`,
        nodeName,
        clusterId,
        sequence: (sequence += 1),
        samples,
        droppedSamples: 0,
        sentAtUnixMs: Date.now(),
      });
      const stream = `node-${nodeId(clusterId, nodeName)}`;
      return {
        nodeName,
        stream,
        commands,
        facts,
        batch,
        remediate: () => remediate(remediation, stream),
        events: async () => (await store.readStream(stream)).map((event) => event.type),
      };
    }

    const sample = (metric: string, value: number, seconds: number, labels: Record<string, string> = { UUID: GPU, gpu: '0' }): Sample => ({
      metric,
      labels,
      value,
      timestampUnixMs: at(seconds).getTime(),
    });

    /**
     * Every plan Sentinel proposed to drain `nodeName`, read from the plan streams the remediation wrote to (a read of
     * the whole log may not show them yet: it only sees what no transaction still open on the server may precede).
     */
    async function drainPlansFor(nodeName: string): Promise<RecordedEvent[]> {
      const submitted: RecordedEvent[] = [];
      for (const planId of new Set(proposed.get(nodeName) ?? [])) {
        for (const event of await store.readStream(`plan-${planId}`)) {
          if (event.type !== 'ActionPlanSubmitted') continue;
          const { data } = actionPlanEvents.parse(event.type, event.schemaVersion, event.data);
          if ('source' in data && data.source === 'sentinel') submitted.push(event);
        }
      }
      return submitted;
    }

    it('registers a node on its first batch, once', async () => {
      const n = node();
      await n.facts.batchStored(n.batch([sample('DCGM_FI_DEV_GPU_UTIL', 80, 1)]), at(1));
      await n.facts.batchStored(n.batch([sample('DCGM_FI_DEV_GPU_UTIL', 85, 2)]), at(2));
      expect(await n.events()).to.deep.equal(['NodeRegistered']);
      const [registered] = await store.readStream(`node-${nodeId(clusterId, n.nodeName)}`);
      expect(registered!.data).to.deep.equal({ clusterId, nodeName: n.nodeName, agentId: `agent-${n.nodeName}`, firstSeenAt: at(1).toISOString() });
      expect(registered!.metadata).to.deep.include({ actor: { id: 'sentinel-telemetry', kind: 'system' }, source: 'telemetry' });
    });

    it('XID 79: the fact once and one shadow drain plan from sentinel, however often the batch comes', async () => {
      const n = node();
      const batch = n.batch([sample('DCGM_FI_DEV_XID_ERRORS', 79, 5)]);
      await n.facts.batchStored(batch, at(5));
      await n.facts.batchStored(batch, at(6));
      // The gauge read again later: the same XID at the same driver time.
      await n.facts.batchStored(n.batch([sample('DCGM_FI_DEV_XID_ERRORS', 79, 5)]), at(7));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'GpuXidErrorObserved']);
      await n.remediate();

      expect(proposed.get(n.nodeName), 'plans proposed').to.have.length(1);
      const submitted = await drainPlansFor(n.nodeName);
      expect(submitted).to.have.length(1);
      const plan = submitted[0]!;
      expect(plan.data).to.deep.include({ source: 'sentinel', shadow: true, actions: [{ kind: 'drain', clusterId, node: n.nodeName }] });
      expect(plan.data['reason']).to.match(/XID 79 \(GPU has fallen off the bus\)/);
      expect((await store.readStream(plan.stream)).map((event) => event.type)).to.deep.equal([
        'ActionPlanSubmitted',
        'ActionPlanValidationStarted',
        'PolicyEvaluated',
        'ActionPlanApproved',
      ]);
    });

    it('a second unfit fact in the same episode proposes no second plan', async () => {
      const n = node();
      await n.facts.batchStored(n.batch([sample('DCGM_FI_DEV_XID_ERRORS', 79, 5)]), at(5));
      await n.facts.batchStored(n.batch([sample('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 2, 8)]), at(8));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'GpuXidErrorObserved', 'GpuEccDoubleBitErrorsGrew']);
      await n.remediate();
      expect(proposed.get(n.nodeName), 'plans proposed').to.have.length(1);
      expect(await drainPlansFor(n.nodeName)).to.have.length(1);
    });

    it('two processes given the same batch record its facts once; a second remediation (after a hand-over) proposes no second plan', async () => {
      const n = node();
      const other = new HealthFacts(new NodeHealthCommands(handler), store, { intervalMs: INTERVAL_MS });
      const batch = n.batch([sample('DCGM_FI_DEV_XID_ERRORS', 48, 5)]);
      await Promise.all([n.facts.batchStored(batch, at(5)), other.batchStored(batch, at(5))]);
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'GpuXidErrorObserved']);
      // One remediation is active at a time (its lease); the one that takes over replays the facts.
      await n.remediate();
      await remediate(new Remediation(noted, store), n.stream);
      expect(await drainPlansFor(n.nodeName)).to.have.length(1);
    });

    it('throttling began and ended: one fact for each edge', async () => {
      const n = node();
      const throttle = (mask: number, seconds: number) => sample('DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', mask, seconds);
      await n.facts.batchStored(n.batch([throttle(0, 1), throttle(0x40, 2)]), at(2));
      await n.facts.batchStored(n.batch([throttle(0x40, 3), throttle(0x40, 4)]), at(4));
      await n.facts.batchStored(n.batch([throttle(0, 5)]), at(5));
      await n.facts.batchStored(n.batch([throttle(0, 6)]), at(6));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'GpuThrottlingBegan', 'GpuThrottlingEnded']);
      await n.remediate();
      expect(await drainPlansFor(n.nodeName)).to.have.length(0);
    });

    it('silent after three intervals without a batch, heard from again on the next one, each once', async () => {
      const n = node();
      await n.facts.batchStored(n.batch([]), at(0));
      await n.facts.checkSilence(at(89));
      expect(await n.events()).to.deep.equal(['NodeRegistered']);
      await n.facts.checkSilence(at(90));
      await n.facts.checkSilence(at(150));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'NodeWentSilent']);
      const [, silent] = await store.readStream(`node-${nodeId(clusterId, n.nodeName)}`);
      expect(silent!.data).to.deep.equal({ lastSeenAt: at(0).toISOString(), silentSince: at(90).toISOString(), intervals: 3 });

      await n.facts.batchStored(n.batch([]), at(200));
      await n.facts.batchStored(n.batch([]), at(210));
      await n.facts.checkSilence(at(220));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'NodeWentSilent', 'NodeHeardFromAgain']);
    });

    it('a process that starts learns the registered nodes and gives each a full silence period', async () => {
      const n = node();
      await n.facts.batchStored(n.batch([]), at(0));
      const [registered] = await store.readStream(`node-${nodeId(clusterId, n.nodeName)}`);
      await eventually('the registration to be readable from the whole log', () => store.isSettled(registered!.position), (settled) => settled, 10_000);
      const commands = new NodeHealthCommands(handler);
      const restarted = new HealthFacts(commands, store, { intervalMs: INTERVAL_MS, clock: { now: () => at(1000) } });
      await restarted.start();
      await restarted.stop();
      expect(commands.knownNodes()).to.include(nodeId(clusterId, n.nodeName));
      await restarted.checkSilence(at(1089));
      expect(await n.events()).to.deep.equal(['NodeRegistered']);
      await restarted.checkSilence(at(1090));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'NodeWentSilent']);
    });

    it('mode off: the fact is recorded, no plan is proposed', async () => {
      const n = node('off');
      await n.facts.batchStored(n.batch([sample('DCGM_FI_DEV_XID_ERRORS', 79, 5)]), at(5));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'GpuXidErrorObserved']);
      await n.remediate();
      expect(proposed.get(n.nodeName), 'plans proposed').to.equal(undefined);
    });

    it('mode execute: a real plan, approved for the plan reactor to carry out', async () => {
      const n = node('execute');
      await n.facts.batchStored(n.batch([sample('sentinel_gpu_lost', 1, 5, { pci_bus_id: '00000000:3B:00.0' })]), at(5));
      expect(await n.events()).to.deep.equal(['NodeRegistered', 'GpuFellOffBus']);
      await n.remediate();
      const [plan] = await drainPlansFor(n.nodeName);
      expect(plan!.data).to.deep.include({ source: 'sentinel', shadow: false });
      expect((await store.readStream(plan!.stream)).at(-1)!.type).to.equal('ActionPlanApproved');
    });

    it('refuses source "sentinel" from anyone submitting a plan', () => {
      const body = { source: 'sentinel' as const, reason: 'pretend', actions: [{ kind: 'drain' as const, clusterId, node: 'gpu-node' }], shadow: false };
      const context = { actor: { id: 'svc', kind: 'service' as const }, correlationId: randomUUID(), causationId: randomUUID() };
      for (const kind of ['user', 'service'] as const) {
        expect(() => plans.submit(randomUUID(), body, { id: 'p', kind, name: 'p', role: kind === 'user' ? 'admin' : 'system' }, context)).to.throw(
          RuleViolation,
          /proposed by Sentinel itself/,
        );
      }
    });
  });
}
