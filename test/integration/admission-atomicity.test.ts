// The admission ledger never holds an admission for a change that was not stored: concurrent requests on one
// deployment, through the real server, leave exactly one admission per change that landed, each pointing at it;
// and a change that loses its stream to the reactor's bookkeeping leaves no ghost behind.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { deployments } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { AppendResult, EventStore, RecordedEvent, StreamAppend } from '../../domain/event-store.js';
import { ForwardingEventStore } from '../../domain/forwarding-event-store.js';
import { LEDGER_STREAM, type Admission, type Placement } from '../../domain/ledger.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { backends, type Reply, type TestApi } from '../support/sentinel-api.js';

const cluster = {
  name: 'atomic-east',
  apiServer: 'https://10.0.0.1:6443',
  credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
  region: 'us-east-1',
};

/** The events of a deployment's stream that a judged change appends after its decision. */
const CHANGES = new Set(['DeploymentCreated', 'DeploymentScaled', 'DeploymentRestartRequested']);

for (const backend of backends) {
  describe(`admissions stored with their changes on ${backend.name}`, function () {
    this.timeout(120_000);
    let api: TestApi;

    before(async function () {
      if (backend.skipReason) {
        console.log(`      skipped: ${backend.skipReason}`);
        return this.skip();
      }
      api = await backend.start();
    });
    after(async () => {
      await api?.stop();
    });

    async function created(route: string, body: unknown): Promise<string> {
      const reply = await api.request<{ id: string }>('post', route, { as: 'admin', body });
      expect(reply.status, `${route}: ${JSON.stringify(reply.body)}`).to.be.oneOf([201, 202]);
      return reply.body.id;
    }

    it('given five simultaneous requests on one deployment, three times over, then every admission points at the change it admitted and the ledger holds what the deployment was last told (a restart’s surge included)', async () => {
      const clusterId = await created('/clusters', cluster);
      const workloadId = await created('/workloads', {
        name: `svc-${randomUUID().slice(0, 8)}`,
        namespace: 'atomic',
        type: 'inference',
        image: 'registry.local/model:1.0',
        resources: { cpu: '1', memory: '2Gi' },
        labels: { team: 'atomic' },
      });
      const deploymentId = await created('/deployments', { workloadId, clusterId, replicas: 2 });
      const answers: Reply[] = [];
      for (let round = 0; round < 3; round++) {
        const scale = (replicas: number) => api.request('post', `/deployments/${deploymentId}/scale`, { as: 'operator', body: { replicas } });
        answers.push(
          ...(await Promise.all([scale(3), scale(1), api.request('post', `/deployments/${deploymentId}/restart`, { as: 'operator' }), scale(4), scale(0)])),
        );
      }

      // Some lost their stream to another of the burst; whatever they answered, they must have left nothing behind.
      expect(answers.map((a) => a.status).filter((status) => status !== 202 && status !== 409)).to.deep.equal([]);
      const changes = new Map<number, RecordedEvent>();
      for (const event of await api.stream(`deployment-${deploymentId}`)) if (CHANGES.has(event.type)) changes.set(event.revision, event);
      const admissions = (await api.stream(LEDGER_STREAM))
        .filter((event) => event.type === 'ChangeAdmitted' && (event.data as Admission).targetId === deploymentId)
        .map((event) => ({ event, admission: event.data as Admission }));

      for (const { event, admission } of admissions) {
        const change = changes.get(admission.targetRevision!);
        expect(change, `admission ${event.id} (${admission.action}) points at revision ${admission.targetRevision}, where no change of its own landed`).to.not.equal(undefined);
        expect(change!.metadata.correlationId, `admission ${event.id} and the change at revision ${admission.targetRevision} came from different requests`).to.equal(
          event.metadata.correlationId,
        );
      }
      expect(admissions).to.have.length(changes.size);
      // The ledger's last placement is the last change's: what it told the deployment, plus, for a restart, the
      // surge pods of its rolling update (25% of the replicas, rounded up, by default), held until the rollout ends.
      const lastChange = [...changes.values()].at(-1)!;
      const lastReplicas = [...changes.values()].filter((e) => e.type !== 'DeploymentRestartRequested').at(-1)!.data['replicas'] as number;
      const lastPlaced = admissions.filter(({ admission }) => admission.placement).at(-1)!.admission;
      expect(lastPlaced.targetRevision).to.equal(lastChange.revision);
      const surge = lastChange.type === 'DeploymentRestartRequested' ? Math.ceil(lastReplicas * 0.25) : 0;
      expect((lastPlaced.placement as Placement).footprint.replicas).to.equal(lastReplicas + surge);
    });

    it('given a namespace at its replica quota, when a deployment in it is restarted, then the rolling update is refused: its surge pod would break the quota', async () => {
      const clusterId = await created('/clusters', { ...cluster, name: 'atomic-north' });
      const namespace = `surge-${randomUUID().slice(0, 8)}`;
      const workloadId = await created('/workloads', { name: 'svc', namespace, type: 'inference', image: 'registry.local/model:1.0', resources: { cpu: '1', memory: '2Gi' } });
      await created('/policies', { name: `quota-${namespace}`, mode: 'enforce', type: 'quota', selector: { namespaces: [namespace] }, parameters: { limits: { replicas: 4 } } });
      const deploymentId = await created('/deployments', { workloadId, clusterId, replicas: 4 });

      const restarted = await api.request<{ errors?: { message: string }[] }>('post', `/deployments/${deploymentId}/restart`, { as: 'operator' });

      expect(restarted.status, JSON.stringify(restarted.body)).to.equal(422);
      expect(restarted.body.errors![0]!.message).to.match(/quota/);
      // With no surge it rolls within the quota.
      const noSurge = await api.request('patch', `/deployments/${deploymentId}`, { as: 'operator', body: { strategy: { type: 'rolling', maxSurge: 0, maxUnavailable: 1 } } });
      expect(noSurge.status, JSON.stringify(noSurge.body)).to.equal(202);
      expect((await api.request('post', `/deployments/${deploymentId}/restart`, { as: 'operator' })).status).to.equal(202);
    });

    it('given a paused deployment, when it is resumed inside a change freeze, then the resume is refused by policy, recorded, and the deployment stays paused', async () => {
      const clusterId = await created('/clusters', { ...cluster, name: 'atomic-west' });
      const namespace = `frozen-${randomUUID().slice(0, 8)}`;
      const workloadId = await created('/workloads', {
        name: 'svc',
        namespace,
        type: 'inference',
        image: 'registry.local/model:1.0',
        resources: { cpu: '1', memory: '2Gi' },
      });
      const deploymentId = await created('/deployments', { workloadId, clusterId, replicas: 1 });
      expect((await api.request('post', `/deployments/${deploymentId}/pause`, { as: 'operator' })).status).to.equal(202);
      const now = Date.now();
      const window = { start: new Date(now - 3_600_000).toISOString(), end: new Date(now + 3_600_000).toISOString() };
      await created('/policies', { name: `freeze-${namespace}`, mode: 'enforce', type: 'change_freeze', selector: { namespaces: [namespace] }, parameters: { windows: [window] } });

      const resumed = await api.request<{ errors?: { message: string }[] }>('post', `/deployments/${deploymentId}/resume`, { as: 'operator' });

      expect(resumed.status, JSON.stringify(resumed.body)).to.equal(422);
      expect(resumed.body.errors![0]!.message).to.match(/frozen/);
      const events = await api.stream(`deployment-${deploymentId}`);
      expect(events.map((e) => e.type)).to.not.include('DeploymentResumed');
      expect(events.at(-1)!.type).to.equal('PolicyEvaluated');
    });
  });
}

/** Records the reactor's observation on a deployment's stream just before the next write to it, once. */
class RacingStore extends ForwardingEventStore {
  armed: { deploymentId: string } | undefined;
  override async append(...args: Parameters<EventStore['append']>): ReturnType<EventStore['append']> {
    await this.race([args[0]]);
    return super.append(...args);
  }
  override async appendMany(appends: StreamAppend[]): Promise<AppendResult[]> {
    await this.race(appends.map((append) => append.stream));
    return super.appendMany(appends);
  }
  private async race(streams: string[]): Promise<void> {
    const armed = this.armed;
    if (!armed || !streams.includes(`deployment-${armed.deploymentId}`)) return;
    this.armed = undefined;
    await this.inner.append(`deployment-${armed.deploymentId}`, [
      { id: randomUUID(), type: 'DeploymentApplying', data: { deploymentId: armed.deploymentId, revision: 1 }, metadata: { actor: { id: 'reactor', kind: 'system' } } },
    ]);
  }
}

describe('an admitted change that loses its stream to the reactor (PGlite)', function () {
  this.timeout(30_000);
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

  it('given the reactor records an observation between the judgement and the append, then the command runs again and the ledger holds one admission, pointing at the change', async () => {
    const racing = new RacingStore(store);
    const handler = new CommandHandler(racing);
    const commands = new DeploymentCommands(handler, systemClock, new PolicyEngine(racing, { prices: DEFAULT_PRICES, health: noHealth }));
    const deploymentId = randomUUID();
    const context = (): CommandContext => ({ actor: { id: 'alice', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() });
    await handler.execute(
      deployments,
      deploymentId,
      {
        type: 'CreateDeployment',
        deploymentId,
        workload: { id: randomUUID(), status: 'active', specRevision: 1, spec: { name: 'svc', namespace: 'race', image: 'registry.local/m:1', resources: { cpu: '1', memory: '1Gi' } } },
        cluster: { id: randomUUID(), status: 'active', gpuSkus: [] },
        replicas: 2,
        strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
        driftPolicy: 'revert',
      },
      context(),
    );
    racing.armed = { deploymentId };

    await commands.scale(deploymentId, 1, context());

    const stream = await store.readStream(`deployment-${deploymentId}`);
    expect(stream.map((e) => e.type)).to.deep.equal(['DeploymentCreated', 'DeploymentApplying', 'PolicyEvaluated', 'DeploymentScaled']);
    const admissions = (await store.readStream(LEDGER_STREAM)).filter((e) => e.type === 'ChangeAdmitted').map((e) => e.data as Admission);
    expect(admissions.map((a) => a.targetRevision)).to.deep.equal([3]);
    expect(admissions[0]!.placement!.footprint.replicas).to.equal(1);
  });
});
