// The read models, fed by the real write side: commands through the handler and the policy engine, the events
// they append projected in small batches, then each model's lists, filters, pages and details checked.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { pino } from 'pino';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { inProcessLease } from '../../adapters/postgres/advisory-lease.js';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { migrateSentinel } from '../../adapters/postgres/schema.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { ActionPlanCommands } from '../../commands/action-plan-commands.js';
import { actionPlans as planAggregate, clusters as clusterAggregate, deployments as deploymentAggregate, policySets, workloads as workloadAggregate } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { FleetFacts } from '../../commands/fleet-facts.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { Principal } from '../../domain/access.js';
import { actionPlanBody } from '../../domain/action-plan.js';
import type { ClusterSpec } from '../../domain/cluster.js';
import { PolicyViolation } from '../../domain/decider.js';
import { deploymentBody } from '../../domain/deployment.js';
import { policyBody, type PolicyBody, type PolicyPatchBody } from '../../domain/policy.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import type { WorkloadSpec } from '../../domain/workload.js';
import { tableNames, type TableNames } from '../../projections/projector.js';
import { ProjectionRuntime } from '../../projections/runtime.js';
import {
  decodeCursor,
  deploymentHistory,
  InvalidQuery,
  READ_MODEL_PROJECTORS,
  READ_MODELS,
  type Page,
  type ReadModel,
} from '../../projections/read-models.js';
import { allVisible } from '../support/events.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';

// ---- what the read models answer, as the tests look at it ----------------------------------------------------

interface ClusterView {
  id: string;
  name: string;
  region: string;
  status: string;
  cordonReason: string | null;
  credentials: Record<string, unknown>;
  labels: Record<string, string>;
  gpuSkus: string[];
  revision: number;
  createdAt: string;
  updatedAt: string;
}

interface WorkloadView {
  id: string;
  namespace: string;
  type: string;
  status: string;
  labels: Record<string, string>;
  specRevision: number;
  spec: { image: string };
  revisions?: { specRevision: number; spec: { image: string }; changes: Record<string, unknown> | null; recordedAt: string }[];
}

interface DeploymentRevisionView {
  revision: number;
  workloadRevision: number;
  rollbackOf: number | null;
  origin: string;
  reason: string | null;
  becameAvailable: boolean;
  availableAt: string | null;
  spec?: { image: string };
}

interface DeploymentView {
  id: string;
  workloadId: string;
  clusterId: string;
  status: string;
  paused: boolean;
  replicas: number;
  readyReplicas: number | null;
  updatedReplicas: number | null;
  strategy: { type: string };
  driftPolicy: string;
  currentRevision: number;
  workloadRevision: number;
  rollout: { event: string; revision: number; cause: string | null; at: string } | null;
  lastCause: string | null;
  revision: number;
  revisions?: DeploymentRevisionView[];
}

interface PlanView {
  id: string;
  source: string;
  status: string;
  shadow: boolean;
  actor: { id: string };
  violations: { message: string }[] | null;
  cause: string | null;
  notUndone: { index: number; kind: string; reason: string | null }[];
  actions: {
    index: number;
    kind: string;
    target: { kind: string; id: string };
    status: string;
    detail: string | null;
    error: string | null;
    undo: Record<string, unknown> | null;
    undoDetail: string | null;
    timeline?: { status: string; at: string; detail: string | null; error: string | null }[];
  }[];
}

interface PolicyView {
  id: string;
  name: string;
  type: string;
  mode: string;
  priority: number;
  enabled: boolean;
  validFrom: string | null;
  validUntil: string | null;
  parameters: Record<string, unknown>;
  selector: Record<string, unknown>;
  setRevision: number;
}

interface DecisionView {
  eventId: string;
  stream: string;
  position: string;
  recordedAt: string;
  command: string;
  verdict: 'allow' | 'deny';
  policySetRevision: number;
  actor: { id: string; kind: string } | null;
  targets: { kind: string; id: string }[];
  actions: string[];
  policyIds: string[];
  evaluations: { index?: number; action: string; target: { id: string }; verdict: string; results: { policyId: string; outcome: string }[] }[];
  breakGlass: unknown;
}

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

// ---- fixtures -------------------------------------------------------------------------------------------------

const alice = { id: 'alice', kind: 'user' as const };
const bob = { id: 'bob', kind: 'user' as const };
const inframind = { id: 'inframind', kind: 'service' as const };

function contextOf(actor: CommandContext['actor'] = alice): CommandContext {
  return { actor, correlationId: randomUUID(), causationId: randomUUID() };
}

function clusterSpec(name: string, region: string, overrides: Partial<ClusterSpec> = {}): ClusterSpec {
  return {
    name,
    apiServer: 'https://10.0.0.1:6443',
    region,
    labels: { tier: 'gold' },
    gpuSkus: ['nvidia-a100-80gb'],
    credentials: { source: 'kubeconfig-base64', secretRef: 'secret://clusters/very-secret-ref' },
    ...overrides,
  };
}

function workloadSpec(name: string, namespace: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return {
    name,
    namespace,
    type: 'inference',
    image: `ghcr.io/acme/${name}:1`,
    resources: { cpu: '1', memory: '1Gi' },
    labels: { team: 'search' },
    ...overrides,
  };
}

const policy = (body: Record<string, unknown>) => policyBody.parse(body) as PolicyBody;

/** A short random suffix that is a valid DNS label part. */
const suffix = () => randomUUID().slice(0, 8);

// ---- projecting the log ------------------------------------------------------------------------------------------

const MODELS: readonly ReadModel[] = Object.values(READ_MODELS);

/** The hand-fed tables: a generation of their own, so the projection runtime can build generation 1 beside them. */
function tablesOf<Base extends string>(model: ReadModel<Base>): TableNames<Base> {
  return tableNames(model.projector, 99);
}

/** Feeds every read model the log in small batches, each applied in a transaction of its own, as the runtime does. */
class Projection {
  private after: string | undefined;
  applied = 0;

  constructor(
    private readonly knex: Knex,
    private readonly store: PostgresEventStore,
  ) {}

  async createTables(): Promise<void> {
    await this.knex.transaction(async (trx) => {
      for (const model of MODELS) await model.projector.createTables(trx, tablesOf(model));
    });
  }

  async catchUp(batchSize = 7): Promise<void> {
    await allVisible(this.store);
    for (;;) {
      const page = await this.store.readAll({ after: this.after, limit: batchSize });
      if (page.events.length === 0) return;
      for (const model of MODELS) {
        const types = model.projector.eventTypes;
        const batch = page.events.filter((event) => !types || types.includes(event.type));
        if (batch.length > 0) await this.knex.transaction((trx) => model.projector.apply(batch, trx, tablesOf(model)));
      }
      this.applied += page.events.length;
      this.after = page.events.at(-1)!.position;
    }
  }
}

// ---- backends --------------------------------------------------------------------------------------------------

interface Backend {
  name: string;
  skip?: string;
  open(): Promise<{ db: Database; close(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'PGlite',
    open: async () => {
      const db = await openPglite();
      return { db, close: () => db.close() };
    },
  },
  {
    name: 'PostgreSQL',
    skip: TEST_DATABASE_URL ? undefined : SKIP_POSTGRES_REASON,
    open: async () => {
      const scratch: ScratchDatabase = await createScratchDatabase();
      const db = openPostgres(scratch.url);
      return {
        db,
        close: async () => {
          await db.close();
          await scratch.drop();
        },
      };
    },
  },
];

for (const backend of backends) {
  describe(`read models on ${backend.name}`, function () {
    this.timeout(60_000);
    let opened: Awaited<ReturnType<Backend['open']>>;
    let store: PostgresEventStore;
    let handler: CommandHandler;
    let engine: PolicyEngine;
    let deploymentCommands: DeploymentCommands;
    let planCommands: ActionPlanCommands;
    let projection: Projection;
    let knex: Knex;

    /** A namespace held to 5 replicas by an enforce quota, and a fleet-wide audit policy that always passes. */
    const quotaNamespace = `quota-${suffix()}`;
    const quotaPolicyId = randomUUID();
    const auditPolicyId = randomUUID();

    before(async function () {
      if (backend.skip) {
        console.log(`      skipped: ${backend.skip}`);
        this.skip();
      }
      opened = await backend.open();
      knex = opened.db.knex;
      store = await PostgresEventStore.open(opened.db);
      handler = new CommandHandler(store);
      // The policies test changes the set through the handler, not through the ledger's gate as the API does, so
      // nothing tells the engine: it reads the set for every decision instead of reusing it for a moment.
      engine = new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth, policySetReuseMs: 0 });
      deploymentCommands = new DeploymentCommands(handler, systemClock, engine);
      planCommands = new ActionPlanCommands(handler, systemClock, engine, new FleetFacts(handler), { defaultTtlSeconds: 3600 });
      projection = new Projection(knex, store);
      await projection.createTables();
      await createPolicy(quotaPolicyId, {
        name: `quota ${quotaNamespace}`,
        type: 'quota',
        mode: 'enforce',
        selector: { namespaces: [quotaNamespace] },
        parameters: { limits: { replicas: 5 } },
      });
      await createPolicy(auditPolicyId, { name: 'fleet cost audit', type: 'cost_ceiling', mode: 'audit', parameters: { maxHourlyUsd: 1_000_000 } });
    });
    after(async () => {
      await store?.close();
      await opened?.close();
    });

    // ---- write-side helpers ----

    function createPolicy(policyId: string, body: Record<string, unknown>, context = contextOf()) {
      return handler.execute(policySets, 'global', { type: 'CreatePolicy', policyId, policy: policy(body) }, context);
    }

    function updatePolicy(policyId: string, patch: PolicyPatchBody) {
      return handler.execute(policySets, 'global', { type: 'UpdatePolicy', policyId, patch }, contextOf());
    }

    async function registerCluster(spec: ClusterSpec): Promise<string> {
      const clusterId = randomUUID();
      await handler.execute(clusterAggregate, clusterId, { type: 'RegisterCluster', clusterId, spec }, contextOf());
      return clusterId;
    }

    async function registerWorkload(spec: WorkloadSpec): Promise<string> {
      const workloadId = randomUUID();
      await handler.execute(workloadAggregate, workloadId, { type: 'RegisterWorkload', workloadId, spec }, contextOf());
      return workloadId;
    }

    async function createDeployment(workloadId: string, clusterId: string, replicas: number, actor = alice): Promise<string> {
      const deploymentId = randomUUID();
      await deploymentCommands.create(deploymentId, deploymentBody.parse({ workloadId, clusterId, replicas }), contextOf(actor));
      return deploymentId;
    }

    /** What the Kubernetes reactor would report, through the same handler. */
    function observe(deploymentId: string, command: Record<string, unknown> & { type: string }) {
      return handler.execute(deploymentAggregate, deploymentId, { deploymentId, ...command } as never, contextOf({ id: 'reactor', kind: 'system' }));
    }

    function planStep(planId: string, command: Record<string, unknown> & { type: string }) {
      return handler.execute(planAggregate, planId, { planId, ...command } as never, contextOf({ id: 'plan-reactor', kind: 'system' }));
    }

    // ---- read-side helpers ----

    async function list<T>(model: ReadModel, filters: Record<string, string> = {}, limit = 500): Promise<T[]> {
      const page = await model.list(knex, tablesOf(model), { limit, filters });
      expect(page.nextCursor, 'one page holds everything here').to.equal(null);
      return page.items as T[];
    }

    async function get<T>(model: ReadModel, id: string): Promise<T | undefined> {
      return (await model.get!(knex, tablesOf(model), id)) as T | undefined;
    }

    /** Pages through with a small limit; the pages must add up to the one-page answer, in order, with no gaps or repeats. */
    async function pagesMatchOnePage(model: ReadModel, filters: Record<string, string>, key: (item: unknown) => string, limit = 2): Promise<string[]> {
      const whole = (await list<unknown>(model, filters)).map(key);
      const paged: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await model.list(knex, tablesOf(model), { limit, cursor, filters });
        expect(page.items.length).to.be.at.most(limit);
        if (page.nextCursor !== null) expect(page.items.length, 'only the last page may be short').to.equal(limit);
        paged.push(...page.items.map(key));
        cursor = page.nextCursor ?? undefined;
        pages += 1;
        expect(pages).to.be.below(1000);
      } while (cursor);
      expect(paged).to.deep.equal(whole);
      expect(new Set(paged).size).to.equal(paged.length);
      return paged;
    }

    async function rejects(promise: Promise<unknown>): Promise<InvalidQuery> {
      try {
        await promise;
      } catch (error) {
        expect(error).to.be.instanceOf(InvalidQuery);
        return error as InvalidQuery;
      }
      throw new Error('expected the query to be refused');
    }

    const byId = (item: unknown) => (item as { id: string }).id;

    // ---- clusters ----

    it('clusters: lists and gets clusters with their status, labels and revision, never a secret reference', async () => {
      const region = `region-${suffix()}`;
      const east = await registerCluster(clusterSpec('east', region));
      const west = await registerCluster(clusterSpec('west', region, { credentials: { source: 'in-cluster' } }));
      const gone = await registerCluster(clusterSpec('gone', region));
      const elsewhere = await registerCluster(clusterSpec('elsewhere', `other-${suffix()}`));
      await handler.execute(clusterAggregate, east, { type: 'CordonCluster', clusterId: east, reason: 'kernel upgrade' }, contextOf());
      await handler.execute(
        clusterAggregate,
        west,
        { type: 'UpdateCluster', clusterId: west, changes: { labels: { tier: 'silver' }, credentials: { source: 'kubeconfig-file', path: '/etc/kube/west' } } },
        contextOf(),
      );
      await handler.execute(clusterAggregate, gone, { type: 'DeregisterCluster', clusterId: gone }, contextOf());
      await projection.catchUp();

      const inRegion = await list<ClusterView>(READ_MODELS.clusters, { region });
      expect(inRegion.map((c) => c.id)).to.deep.equal([east, west, gone]);
      expect(JSON.stringify(await list(READ_MODELS.clusters))).not.to.include('secret');

      const cordoned = await get<ClusterView>(READ_MODELS.clusters, east);
      expect(cordoned).to.deep.include({ id: east, name: 'east', region, status: 'cordoned', cordonReason: 'kernel upgrade', revision: 1 });
      expect(cordoned!.credentials).to.deep.equal({ source: 'kubeconfig-base64' });
      expect(cordoned!.gpuSkus).to.deep.equal(['nvidia-a100-80gb']);
      expect(Date.parse(cordoned!.updatedAt)).to.be.at.least(Date.parse(cordoned!.createdAt));

      const updated = await get<ClusterView>(READ_MODELS.clusters, west);
      expect(updated).to.deep.include({ status: 'active', cordonReason: null, revision: 1, labels: { tier: 'silver' } });
      expect(updated!.credentials).to.deep.equal({ source: 'kubeconfig-file', path: '/etc/kube/west' });

      expect((await list<ClusterView>(READ_MODELS.clusters, { region, status: 'deregistered' })).map((c) => c.id)).to.deep.equal([gone]);
      expect((await list<ClusterView>(READ_MODELS.clusters, { region, status: 'active' })).map((c) => c.id)).to.deep.equal([west]);
      expect((await get<ClusterView>(READ_MODELS.clusters, elsewhere))!.status).to.equal('active');
      expect(await get(READ_MODELS.clusters, randomUUID())).to.equal(undefined);
    });

    it('lists page in a stable order with opaque cursors: no gaps, no repeats, null at the end', async () => {
      const region = `paged-${suffix()}`;
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push(await registerCluster(clusterSpec(`c${i}`, region)));
      await projection.catchUp(3);

      expect(await pagesMatchOnePage(READ_MODELS.clusters, { region }, byId, 2)).to.deep.equal(ids);
      expect(await pagesMatchOnePage(READ_MODELS.clusters, { region }, byId, 7)).to.deep.equal(ids);
      await pagesMatchOnePage(READ_MODELS.clusters, {}, byId, 3);

      const first = await READ_MODELS.clusters.list(knex, tablesOf(READ_MODELS.clusters), { limit: 3, filters: { region } });
      expect(first.nextCursor).to.be.a('string').and.match(/^[A-Za-z0-9_-]+$/);
      expect(() => decodeCursor(first.nextCursor!, 2, 'asc')).not.to.throw();
      expect(() => decodeCursor(first.nextCursor!, 2, 'desc'), 'a cursor of the other order').to.throw(/order=asc/);
      // A cluster registered after the first page was read still shows up, after the ones already seen.
      const late = await registerCluster(clusterSpec('late', region));
      await projection.catchUp();
      const rest: string[] = [];
      let cursor: string | null = first.nextCursor;
      while (cursor) {
        const page: Awaited<ReturnType<ReadModel['list']>> = await READ_MODELS.clusters.list(knex, tablesOf(READ_MODELS.clusters), {
          limit: 3,
          cursor,
          filters: { region },
        });
        rest.push(...page.items.map(byId));
        cursor = page.nextCursor;
      }
      expect([...first.items.map(byId), ...rest]).to.deep.equal([...ids, late]);
    });

    it('refuses a bad limit, cursor or filter, naming the parameter', async () => {
      const tables = tablesOf(READ_MODELS.clusters);
      const query = (page: Page) => READ_MODELS.clusters.list(knex, tables, page);
      expect((await rejects(query({ limit: 0, filters: {} }))).errors[0]!.path).to.equal('limit');
      expect((await rejects(query({ limit: 501, filters: {} }))).errors[0]!.path).to.equal('limit');
      expect((await rejects(query({ limit: 10, cursor: 'not-a-cursor', filters: {} }))).errors[0]!.path).to.equal('cursor');
      const unknown = await rejects(query({ limit: 10, filters: { colour: 'blue' } }));
      expect(unknown.errors[0]).to.deep.include({ path: 'colour' });
      expect(unknown.errors[0]!.message).to.include('status').and.include('region');
      expect((await rejects(query({ limit: 10, filters: { status: 'sleeping' } }))).errors[0]!.message).to.include('cordoned');
      expect((await query({ limit: 500, filters: {} })).items).to.be.an('array');
    });

    // ---- workloads ----

    it('workloads: keep every spec revision, and filter by namespace, type, status and team', async () => {
      const namespace = `wl-${suffix()}`;
      const server = await registerWorkload(workloadSpec('server', namespace));
      const trainer = await registerWorkload(workloadSpec('trainer', namespace, { type: 'training', labels: { team: 'research' } }));
      const retired = await registerWorkload(workloadSpec('old', namespace, { type: 'batch' }));
      await handler.execute(workloadAggregate, server, { type: 'UpdateWorkloadSpec', workloadId: server, changes: { image: 'ghcr.io/acme/server:2' } }, contextOf());
      await handler.execute(
        workloadAggregate,
        server,
        { type: 'UpdateWorkloadSpec', workloadId: server, changes: { image: 'ghcr.io/acme/server:3', labels: { team: 'platform' } } },
        contextOf(),
      );
      await handler.execute(workloadAggregate, retired, { type: 'RetireWorkload', workloadId: retired, reason: 'replaced' }, contextOf());
      await projection.catchUp();

      const all = await list<WorkloadView>(READ_MODELS.workloads, { namespace });
      expect(all.map((w) => w.id)).to.deep.equal([server, trainer, retired]);
      expect(all[0]).to.deep.include({ specRevision: 3, status: 'active', labels: { team: 'platform' } });
      expect(all[0]!.spec.image).to.equal('ghcr.io/acme/server:3');
      expect(all[0]).not.to.have.property('revisions');

      const detail = await get<WorkloadView>(READ_MODELS.workloads, server);
      expect(detail!.revisions!.map((r) => [r.specRevision, r.spec.image])).to.deep.equal([
        [1, 'ghcr.io/acme/server:1'],
        [2, 'ghcr.io/acme/server:2'],
        [3, 'ghcr.io/acme/server:3'],
      ]);
      // Each revision's time is its event's, to the millisecond.
      const specEvents = (await store.readStream(`workload-${server}`)).filter((e) => e.type !== 'WorkloadRetired');
      expect(detail!.revisions!.map((r) => r.recordedAt)).to.deep.equal(specEvents.map((e) => e.recordedAt.toISOString()));
      expect(detail!.revisions!.map((r) => r.changes)).to.deep.equal([
        null,
        { image: 'ghcr.io/acme/server:2' },
        { image: 'ghcr.io/acme/server:3', labels: { team: 'platform' } },
      ]);

      const ids = async (filters: Record<string, string>) => (await list<WorkloadView>(READ_MODELS.workloads, { namespace, ...filters })).map((w) => w.id);
      expect(await ids({ type: 'training' })).to.deep.equal([trainer]);
      expect(await ids({ status: 'retired' })).to.deep.equal([retired]);
      expect(await ids({ team: 'research' })).to.deep.equal([trainer]);
      expect(await ids({ team: 'search' })).to.deep.equal([retired]);
      expect(await ids({ team: 'platform', status: 'active' })).to.deep.equal([server]);
      await rejects(READ_MODELS.workloads.list(knex, tablesOf(READ_MODELS.workloads), { limit: 10, filters: { type: 'serving' } }));
      await pagesMatchOnePage(READ_MODELS.workloads, { namespace }, byId, 1);
    });

    // ---- deployments ----

    it('deployments: status, replicas, rollout, revisions with rollbacks, and a history timeline', async () => {
      const namespace = `dep-${suffix()}`;
      const cluster = await registerCluster(clusterSpec('dep-east', 'us-east-1'));
      const other = await registerCluster(clusterSpec('dep-west', 'us-west-2'));
      const workload = await registerWorkload(workloadSpec('api', namespace));
      const id = await createDeployment(workload, cluster, 3);
      const elsewhere = await createDeployment(workload, other, 1);
      const deleted = await createDeployment(await registerWorkload(workloadSpec('api-old', namespace)), other, 1);

      await observe(id, { type: 'RecordApplying', revision: 1 });
      await observe(id, { type: 'RecordApplied', revision: 1 });
      await observe(id, { type: 'RecordRolloutProgress', revision: 1, readyReplicas: 1, updatedReplicas: 2 });
      await observe(id, { type: 'RecordAvailable', revision: 1, readyReplicas: 3 });
      await projection.catchUp();
      expect(await get<DeploymentView>(READ_MODELS.deployments, id)).to.deep.include({
        status: 'Available',
        replicas: 3,
        readyReplicas: 3,
        updatedReplicas: 2,
        currentRevision: 1,
        workloadRevision: 1,
        paused: false,
        driftPolicy: 'revert',
      });

      await deploymentCommands.scale(id, 4, contextOf());
      await handler.execute(workloadAggregate, workload, { type: 'UpdateWorkloadSpec', workloadId: workload, changes: { image: 'ghcr.io/acme/api:2' } }, contextOf());
      await deploymentCommands.update(id, {}, contextOf());
      await observe(id, { type: 'RecordApplying', revision: 2 });
      await observe(id, { type: 'RecordRolloutFailed', revision: 2, cause: 'ImagePullBackOff' });
      await observe(id, { type: 'RecordRolledBack', revision: 2, toRevision: 1, cause: 'progress deadline exceeded' });
      await observe(id, { type: 'RecordAvailable', revision: 3, readyReplicas: 4 });
      await deploymentCommands.rollback(id, 2, 'try the new image again', contextOf(bob));
      await deploymentCommands.pause(id, 'investigating', contextOf());
      await deploymentCommands.delete(deleted, 'not needed', contextOf());
      await projection.catchUp(5);

      const view = await get<DeploymentView>(READ_MODELS.deployments, id);
      expect(view).to.deep.include({
        id,
        workloadId: workload,
        clusterId: cluster,
        status: 'Pending',
        paused: true,
        replicas: 4,
        readyReplicas: 4,
        currentRevision: 4,
        workloadRevision: 2,
        lastCause: 'progress deadline exceeded',
      });
      expect(view!.strategy.type).to.equal('rolling');
      expect(view!.rollout).to.deep.include({ event: 'DeploymentAvailable', revision: 3, cause: null });
      const stream = await store.readStream(`deployment-${id}`);
      expect(view!.revision).to.equal(stream.at(-1)!.revision);
      expect(view!.revisions!.map((r) => [r.revision, r.workloadRevision, r.rollbackOf, r.origin, r.becameAvailable])).to.deep.equal([
        [1, 1, null, 'DeploymentCreated', true],
        [2, 2, null, 'DeploymentUpdated', false],
        [3, 1, 1, 'DeploymentRolledBack', true],
        [4, 2, 2, 'DeploymentRollbackRequested', false],
      ]);
      expect(view!.revisions![2]!.reason).to.equal('progress deadline exceeded');
      expect(view!.revisions![3]!.reason).to.equal('try the new image again');

      const history = await deploymentHistory(knex, tablesOf(READ_MODELS.deployments), id);
      expect(history!.revisions.map((r) => r.spec!.image)).to.deep.equal([
        'ghcr.io/acme/api:1',
        'ghcr.io/acme/api:2',
        'ghcr.io/acme/api:1',
        'ghcr.io/acme/api:2',
      ]);
      expect(history!.timeline.map((t) => [t.type, t.status, t.revision])).to.deep.equal([
        ['DeploymentCreated', 'Pending', 1],
        ['DeploymentApplying', 'Applying', 1],
        ['DeploymentApplied', 'Progressing', 1],
        ['DeploymentRolloutProgressed', 'Progressing', 1],
        ['DeploymentAvailable', 'Available', 1],
        ['DeploymentScaled', 'Pending', 1],
        ['DeploymentUpdated', 'Pending', 2],
        ['DeploymentApplying', 'Applying', 2],
        ['DeploymentRolloutFailed', 'Failed', 2],
        ['DeploymentRolledBack', 'RolledBack', 2],
        ['DeploymentAvailable', 'Available', 3],
        ['DeploymentRollbackRequested', 'Pending', 4],
        ['DeploymentPaused', 'Pending', 4],
      ]);
      const failed = history!.timeline.find((t) => t.type === 'DeploymentRolloutFailed')!;
      expect(failed.detail).to.deep.equal({ cause: 'ImagePullBackOff' });
      const times = history!.timeline.map((t) => Date.parse(t.at!));
      expect(times).to.deep.equal([...times].sort((a, b) => a - b));
      expect(await deploymentHistory(knex, tablesOf(READ_MODELS.deployments), randomUUID())).to.equal(undefined);

      const ids = async (filters: Record<string, string>) => (await list<DeploymentView>(READ_MODELS.deployments, filters)).map((d) => d.id);
      expect(await ids({ workloadId: workload })).to.deep.equal([id, elsewhere]);
      expect(await ids({ clusterId: other })).to.deep.equal([elsewhere, deleted]);
      expect(await ids({ clusterId: other, status: 'Deleted' })).to.deep.equal([deleted]);
      expect(await ids({ workloadId: workload, status: 'Pending' })).to.deep.equal([id, elsewhere]);
      expect((await list<DeploymentView>(READ_MODELS.deployments, { clusterId: cluster }))[0]).not.to.have.property('revisions');
      await pagesMatchOnePage(READ_MODELS.deployments, { workloadId: workload }, byId, 2);
      await rejects(READ_MODELS.deployments.list(knex, tablesOf(READ_MODELS.deployments), { limit: 10, filters: { status: 'Running' } }));
    });

    // ---- action plans ----

    it('action plans: status, violations, and each action with its own timeline', async () => {
      const namespace = `plan-${suffix()}`;
      const cluster = await registerCluster(clusterSpec('plan-east', 'eu-west-1'));
      const workload = await registerWorkload(workloadSpec('svc', namespace));
      const a = await createDeployment(workload, cluster, 1);
      const b = await createDeployment(await registerWorkload(workloadSpec('svc-b', namespace)), cluster, 1);
      const user: Principal = { id: 'alice', kind: 'user', name: 'alice', role: 'operator' };
      const service: Principal = { id: 'inframind', kind: 'service', name: 'inframind', role: 'system' };

      const planId = randomUUID();
      await planCommands.submit(
        planId,
        actionPlanBody.parse({
          reason: 'rebalance',
          actions: [
            { kind: 'scale', deploymentId: a, replicas: 2 },
            { kind: 'restart', deploymentId: b },
            { kind: 'drain', clusterId: cluster, node: 'node-1' },
          ],
        }),
        user,
        contextOf(),
      );
      await projection.catchUp();
      expect(await get<PlanView>(READ_MODELS.actionPlans, planId)).to.deep.include({ status: 'Approved', source: 'user', shadow: false });

      await planStep(planId, { type: 'StartPlanExecution', at: new Date().toISOString() });
      await planStep(planId, { type: 'RecordActionStarted', index: 0, before: { clusterId: cluster, replicas: 1, revision: 1 } });
      await planStep(planId, { type: 'RecordActionSucceeded', index: 0, detail: 'scaled to 2' });
      await planStep(planId, { type: 'RecordActionStarted', index: 1 });
      await planStep(planId, { type: 'RecordActionFailed', index: 1, error: 'pods did not come back' });
      await planStep(planId, { type: 'StartPlanRollback', cause: 'action 1 failed' });
      await planStep(planId, { type: 'StartActionUndo', index: 0 });
      await planStep(planId, { type: 'RecordActionUndone', index: 0, detail: 'scaled back to 1' });
      await planStep(planId, { type: 'CompletePlanRollback' });

      // Shadow plans are judged and recorded but never refused; this one breaks the quota.
      const shadowId = randomUUID();
      const heavy = await createDeployment(await registerWorkload(workloadSpec('heavy', quotaNamespace)), cluster, 1);
      await planCommands.submit(
        shadowId,
        actionPlanBody.parse({ source: 'inframind', reason: 'scale out', shadow: true, actions: [{ kind: 'scale', deploymentId: heavy, replicas: 9 }] }),
        service,
        contextOf(inframind),
      );
      const cancelledId = randomUUID();
      await planCommands.submit(cancelledId, actionPlanBody.parse({ reason: 'later', actions: [{ kind: 'restart', deploymentId: a }] }), user, contextOf());
      await planCommands.cancel(cancelledId, 'changed my mind', contextOf(bob));
      await projection.catchUp(4);

      const plan = await get<PlanView>(READ_MODELS.actionPlans, planId);
      expect(plan).to.deep.include({ status: 'RolledBack', cause: 'action 1 failed', violations: null });
      expect(plan!.actor.id).to.equal('alice');
      expect(plan!.actions.map((x) => [x.index, x.kind, x.status])).to.deep.equal([
        [0, 'scale', 'Undone'],
        [1, 'restart', 'Failed'],
        [2, 'drain', 'Skipped'],
      ]);
      expect(plan!.actions[0]!.target).to.deep.equal({ kind: 'deployment', id: a });
      expect(plan!.actions[2]!.target).to.deep.equal({ kind: 'cluster', id: cluster });
      expect(plan!.actions[0]!.detail).to.equal('scaled to 2');
      expect(plan!.actions[0]).to.deep.include({ undo: { kind: 'scale', deploymentId: a, replicas: 1, from: 2 }, undoDetail: 'scaled back to 1' });
      expect(plan!.notUndone).to.deep.equal([]);
      expect(plan!.actions[1]!.error).to.equal('pods did not come back');
      const timeline = (index: number) => plan!.actions[index]!.timeline!.map((step) => step.status);
      expect(timeline(0)).to.deep.equal(['Pending', 'Executing', 'Succeeded', 'Undoing', 'Undone']);
      expect(timeline(1)).to.deep.equal(['Pending', 'Executing', 'Failed']);
      expect(timeline(2)).to.deep.equal(['Pending', 'Skipped']);
      expect(plan!.actions[0]!.timeline![2]).to.deep.include({ detail: 'scaled to 2', error: null });
      expect(plan!.actions[1]!.timeline![2]).to.deep.include({ error: 'pods did not come back' });

      const shadow = await get<PlanView>(READ_MODELS.actionPlans, shadowId);
      expect(shadow).to.deep.include({ status: 'Rejected', source: 'inframind', shadow: true });
      expect(shadow!.violations!.map((v) => v.message).join()).to.include('quota');
      expect((await get<PlanView>(READ_MODELS.actionPlans, cancelledId))).to.deep.include({ status: 'Cancelled', cause: 'changed my mind' });

      const ids = async (filters: Record<string, string>) => (await list<PlanView>(READ_MODELS.actionPlans, filters)).map((p) => p.id);
      expect(await ids({ source: 'inframind' })).to.include(shadowId).and.not.include(planId);
      expect(await ids({ status: 'RolledBack' })).to.deep.equal([planId]);
      expect(await ids({ status: 'Cancelled' })).to.deep.equal([cancelledId]);
      const listed = (await list<PlanView>(READ_MODELS.actionPlans)).find((p) => p.id === planId)!;
      expect(listed.actions.map((x) => x.status)).to.deep.equal(['Undone', 'Failed', 'Skipped']);
      expect(listed.actions[0]).not.to.have.property('timeline');
      await pagesMatchOnePage(READ_MODELS.actionPlans, {}, byId, 1);
    });

    // ---- policies ----

    it('policies: follow updates, enabling and disabling, and drop out when deleted', async () => {
      const frozen = `frozen-${suffix()}`;
      const freeze = randomUUID();
      const budget = randomUUID();
      const doomed = randomUUID();
      await createPolicy(freeze, {
        name: `freeze ${frozen}`,
        type: 'change_freeze',
        mode: 'dry_run',
        priority: 50,
        selector: { namespaces: [frozen] },
        parameters: { windows: [{ start: '2030-01-01T00:00:00Z', end: '2030-01-02T00:00:00Z' }] },
        validUntil: '2031-01-01T00:00:00Z',
      });
      await createPolicy(budget, { name: `budget ${frozen}`, type: 'budget', mode: 'audit', parameters: { monthlyUsd: 500 }, description: 'team budget' });
      await createPolicy(doomed, { name: `doomed ${frozen}`, type: 'rate_limit', mode: 'enforce', selector: { namespaces: [frozen] }, parameters: { maxActions: 5, windowSeconds: 60 } });
      await updatePolicy(freeze, { name: `freeze ${frozen} (renamed)`, priority: 900, mode: 'enforce', validUntil: null });
      await updatePolicy(budget, { enabled: false });
      await handler.execute(policySets, 'global', { type: 'DeletePolicy', policyId: doomed }, contextOf());
      await projection.catchUp();

      const set = await store.readStream('policyset-global');
      const revisionOf = (policyId: string) => set.filter((e) => (e.data as { policyId: string }).policyId === policyId).at(-1)!.revision;

      const updated = await get<PolicyView>(READ_MODELS.policies, freeze);
      expect(updated).to.deep.include({
        id: freeze,
        name: `freeze ${frozen} (renamed)`,
        type: 'change_freeze',
        mode: 'enforce',
        priority: 900,
        enabled: true,
        validFrom: null,
        validUntil: null,
        setRevision: revisionOf(freeze),
      });
      expect(updated!.selector).to.deep.equal({ namespaces: [frozen] });
      expect(updated!.parameters).to.have.property('windows').with.length(1);
      expect(await get<PolicyView>(READ_MODELS.policies, budget)).to.deep.include({ enabled: false, description: 'team budget', setRevision: revisionOf(budget) });
      expect(await get(READ_MODELS.policies, doomed)).to.equal(undefined);

      const all = await list<PolicyView>(READ_MODELS.policies);
      expect(all.map((p) => p.id)).to.include.members([quotaPolicyId, auditPolicyId, freeze, budget]).and.not.include(doomed);
      const ids = async (filters: Record<string, string>) => (await list<PolicyView>(READ_MODELS.policies, filters)).map((p) => p.id);
      expect(await ids({ type: 'rate_limit' })).to.deep.equal([]);
      expect(await ids({ type: 'change_freeze' })).to.deep.equal([freeze]);
      expect(await ids({ enabled: 'false' })).to.deep.equal([budget]);
      expect(await ids({ mode: 'audit', enabled: 'true' })).to.include(auditPolicyId).and.not.include(budget);
      await rejects(READ_MODELS.policies.list(knex, tablesOf(READ_MODELS.policies), { limit: 10, filters: { enabled: 'yes' } }));
      await pagesMatchOnePage(READ_MODELS.policies, {}, byId, 2);

      await handler.execute(policySets, 'global', { type: 'EnablePolicy', policyId: budget }, contextOf());
      await projection.catchUp();
      expect(await ids({ enabled: 'false' })).to.deep.equal([]);
    });

    // ---- policy decisions ----

    it('policy decisions: one per PolicyEvaluated, searchable by target, verdict, policy, actor and time', async () => {
      const cluster = await registerCluster(clusterSpec('decide-east', 'ap-south-1'));
      const workload = await registerWorkload(workloadSpec('judged', quotaNamespace));
      // The log's own clock: everything from this test was recorded at or after the cluster's registration.
      const from = (await store.readStream(`cluster-${cluster}`))[0]!.recordedAt.toISOString();
      const allowed = await createDeployment(workload, cluster, 2, alice);
      await deploymentCommands.scale(allowed, 3, contextOf(bob));
      const denied = randomUUID();
      let refusal: unknown;
      try {
        await deploymentCommands.create(denied, deploymentBody.parse({ workloadId: workload, clusterId: cluster, replicas: 10 }), contextOf(bob));
      } catch (error) {
        refusal = error;
      }
      expect(refusal).to.be.instanceOf(PolicyViolation);
      await projection.catchUp(3);

      const decisions = await list<DecisionView>(READ_MODELS.policyDecisions);
      const events = (await store.readAll({ filter: { types: ['PolicyEvaluated'] }, limit: 10_000 })).events;
      expect(decisions.map((d) => d.eventId)).to.deep.equal(events.map((e) => e.id));

      const forAllowed = await list<DecisionView>(READ_MODELS.policyDecisions, { target: allowed });
      expect(forAllowed.map((d) => [d.command, d.verdict, d.actor?.id])).to.deep.equal([
        ['CreateDeployment', 'allow', 'alice'],
        ['ScaleDeployment', 'allow', 'bob'],
      ]);
      const created = forAllowed[0]!;
      expect(created).to.deep.include({ stream: `deployment-${allowed}`, breakGlass: null });
      expect(created.targets).to.deep.equal([{ kind: 'deployment', id: allowed }]);
      expect(created.actions).to.deep.equal(['create']);
      expect(created.policyIds).to.include.members([quotaPolicyId, auditPolicyId]);
      expect(created.evaluations[0]!.results.find((r) => r.policyId === quotaPolicyId)!.outcome).to.equal('pass');
      expect(created.policySetRevision).to.equal((await store.readStream('policyset-global')).filter((e) => e.position < created.position).at(-1)!.revision);
      expect(await get(READ_MODELS.policyDecisions, created.eventId)).to.deep.equal(created);
      expect(await get(READ_MODELS.policyDecisions, randomUUID())).to.equal(undefined);

      const deniedDecisions = await list<DecisionView>(READ_MODELS.policyDecisions, { verdict: 'deny', target: denied });
      expect(deniedDecisions).to.have.length(1);
      expect(deniedDecisions[0]!.evaluations[0]!.results.find((r) => r.policyId === quotaPolicyId)!.outcome).to.equal('fail');
      expect((await list<DecisionView>(READ_MODELS.policyDecisions, { verdict: 'deny' })).every((d) => d.verdict === 'deny')).to.equal(true);

      const byQuota = await list<DecisionView>(READ_MODELS.policyDecisions, { policy: quotaPolicyId });
      expect(byQuota.map((d) => d.eventId)).to.include.members([...forAllowed.map((d) => d.eventId), deniedDecisions[0]!.eventId]);
      expect(byQuota.every((d) => d.policyIds.includes(quotaPolicyId))).to.equal(true);
      expect(await list(READ_MODELS.policyDecisions, { policy: randomUUID() })).to.deep.equal([]);

      const bobs = await list<DecisionView>(READ_MODELS.policyDecisions, { actor: 'bob', from });
      expect(bobs.map((d) => d.command)).to.deep.equal(['ScaleDeployment', 'CreateDeployment']);
      expect(await list(READ_MODELS.policyDecisions, { actor: 'bob', to: from })).to.deep.equal(
        (await list<DecisionView>(READ_MODELS.policyDecisions, { actor: 'bob' })).filter((d) => Date.parse(d.recordedAt) < Date.parse(from)),
      );
      expect(await list(READ_MODELS.policyDecisions, { from: new Date(Date.now() + 60_000).toISOString() })).to.deep.equal([]);
      await rejects(READ_MODELS.policyDecisions.list(knex, tablesOf(READ_MODELS.policyDecisions), { limit: 10, filters: { from: 'yesterday' } }));

      // A plan's decision names every target its actions touch.
      const planned = await list<DecisionView>(READ_MODELS.policyDecisions, { command: 'SubmitActionPlan' });
      const multi = planned.find((d) => d.targets.length === 3)!;
      expect(multi.targets.map((t) => t.kind)).to.deep.equal(['deployment', 'deployment', 'cluster']);
      expect(multi.evaluations.map((e) => e.index)).to.deep.equal([0, 1, 2]);
      expect(multi.stream).to.match(/^plan-/);
      expect((await list<DecisionView>(READ_MODELS.policyDecisions, { target: multi.targets[2]!.id })).map((d) => d.eventId)).to.include(multi.eventId);

      await pagesMatchOnePage(READ_MODELS.policyDecisions, {}, (item) => (item as DecisionView).position, 3);
      await pagesMatchOnePage(READ_MODELS.policyDecisions, { policy: quotaPolicyId }, (item) => (item as DecisionView).position, 1);
    });

    it('builds the same read models under the projection runtime', async () => {
      expect(projection.applied).to.be.above(50);
      await migrateSentinel(knex);
      const runtime = new ProjectionRuntime(knex, store, READ_MODEL_PROJECTORS, { logger, lease: inProcessLease, batchSize: 50 });
      await runtime.start();
      try {
        const last = (await store.readAll({ limit: 100_000 })).events.at(-1)!;
        const names = READ_MODEL_PROJECTORS.map((projector) => projector.name);
        expect(await runtime.waitFor(last.position, names, 30_000)).to.equal(true);
        for (const model of MODELS) {
          const served = await runtime.tables(model.projector);
          const ours = (await model.list(knex, tablesOf(model), { limit: 500, filters: {} })).items;
          const theirs = (await model.list(knex, served, { limit: 500, filters: {} })).items;
          expect(theirs, model.projector.name).to.deep.equal(ours);
        }
      } finally {
        await runtime.stop();
      }
    });
  });
}
