// The ledger audit finds a deployment the admission ledger counts less than, records it once, counts it, and
// records that it is cleared once a judged change puts the ledger right. On PGlite.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { noHealth } from '../../adapters/policy/file-health-source.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { deployments } from '../../commands/aggregates.js';
import { systemClock } from '../../commands/clock.js';
import { CommandHandler, type CommandContext } from '../../commands/command-handler.js';
import { DeploymentCommands } from '../../commands/deployment-commands.js';
import { PolicyEngine } from '../../commands/policy-engine.js';
import type { LedgerDifference } from '../../domain/ledger-audit.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';
import { LedgerAuditor } from '../../reactors/ledger-audit.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const context = (): CommandContext => ({ actor: { id: 'alice', kind: 'user' }, correlationId: randomUUID(), causationId: randomUUID() });

describe('ledger audit (PGlite)', function () {
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

  it('given a deployment created past the policy gate, when audited, then the undercount is recorded once and counted; once a judged change admits it, the drift is cleared', async () => {
    const handler = new CommandHandler(store);
    const policy = new PolicyEngine(store, { prices: DEFAULT_PRICES, health: noHealth });
    const commands = new DeploymentCommands(handler, systemClock, policy);
    const registry = new Registry();
    const auditor = new LedgerAuditor({ handler, policy, clock: systemClock }, { logger, intervalMs: 0, registry });
    const deploymentId = randomUUID();
    await handler.execute(
      deployments,
      deploymentId,
      {
        type: 'CreateDeployment',
        deploymentId,
        workload: { id: randomUUID(), status: 'active', specRevision: 1, spec: { namespace: 'audit', resources: { cpu: '1', memory: '1Gi', gpu: { count: 1, sku: 'nvidia-l4' } } } },
        cluster: { id: randomUUID(), status: 'active', gpuSkus: ['nvidia-l4'] },
        replicas: 2,
        strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
        driftPolicy: 'revert',
      },
      context(),
    );
    const gauge = async (kind: string) => (await registry.getSingleMetric('sentinel_ledger_drift_deployments')!.get()).values.find((v) => v.labels['kind'] === kind)?.value;

    await auditor.start();
    await auditor.audit();
    await auditor.audit();

    const found = await store.readStream('ledgeraudit-global');
    expect(found.map((e) => e.type)).to.deep.equal(['LedgerDriftFound']);
    const [difference] = found[0]!.data['differences'] as LedgerDifference[];
    expect(difference).to.deep.include({ deploymentId, ledger: null });
    expect(difference!.deployment).to.include({ replicas: 2, gpus: 2 });
    expect(await gauge('undercount')).to.equal(1);

    await commands.scale(deploymentId, 1, context());
    await auditor.audit();

    expect((await store.readStream('ledgeraudit-global')).map((e) => e.type)).to.deep.equal(['LedgerDriftFound', 'LedgerDriftCleared']);
    expect(await gauge('undercount')).to.equal(0);
    await auditor.stop();
  });
});
