// Compares the admission ledger with what every deployment can run, every so often, and records what differs.
//
// The ledger is what quotas, budgets and cost ceilings are judged against, so it must never count less than can
// run. Each change is stored with its admission in one atomic append, and what a cluster does on its own (an
// automatic rollback, an adopted scale) is admitted when it happens; this audit is the check that it stays so:
// a deployment whose stream holds more than the ledger counts is a change that bypassed policy, and is recorded
// (`LedgerDriftFound`), counted (`sentinel_ledger_drift_deployments`) and alerted on.
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { deployments, ledgerAudits } from '../commands/aggregates.js';
import type { AggregateState, CommandHandler } from '../commands/command-handler.js';
import { heldFootprint, rolloutFootprint } from '../commands/deployment-change.js';
import type { PolicyEngine } from '../commands/policy-engine.js';
import type { Clock } from '../commands/clock.js';
import type { Deployment } from '../domain/deployment.js';
import type { Footprint } from '../domain/policy.js';
import { deploymentEventOf } from './cluster-reactor.js';
import type { RecordedEvent } from '../domain/event-store.js';
import { LEDGER_AUDIT_ID, sameFootprint, undercounts, type LedgerDifference } from '../domain/ledger-audit.js';
import { reportBy } from './reaction-context.js';
import { everyEventOf, type Reactor } from './reactor-runtime.js';

export interface LedgerAuditOptions {
  logger: Logger;
  /** Between audits; 0 audits only on start. */
  intervalMs: number;
  registry?: Registry;
}

export class LedgerAuditor implements Reactor {
  readonly name = 'ledger-audit';
  readonly eventTypes = ['DeploymentCreated'] as const;
  /** Every deployment ever created: each is compared with what the ledger holds for it. */
  private readonly known = new Set<string>();
  private knownRead = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly gauge: Gauge | undefined;

  constructor(
    private readonly deps: { handler: CommandHandler; policy: PolicyEngine; clock: Clock },
    private readonly options: LedgerAuditOptions,
  ) {
    this.gauge =
      options.registry &&
      new Gauge({
        name: 'sentinel_ledger_drift_deployments',
        help: 'Deployments whose admission-ledger footprint differs from what their stream says they can run, by whether the ledger counts less (undercount) or more',
        labelNames: ['kind'],
        registers: [options.registry],
      });
  }

  async start(): Promise<void> {
    if (!this.knownRead) {
      for await (const event of everyEventOf(this.deps.handler.store, ['DeploymentCreated'])) this.remember(event);
      this.knownRead = true;
    }
    this.schedule();
  }

  async handle(event: RecordedEvent): Promise<void> {
    this.remember(event);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Runs one audit now (one at a time) and records what it found when that changed. */
  audit(): Promise<void> {
    this.running ??= this.compare().finally(() => (this.running = undefined));
    return this.running;
  }

  private schedule(): void {
    // Once on start, so that a restart shows the state at once, then every interval.
    void this.audit();
    if (this.options.intervalMs > 0) this.timer = setInterval(() => void this.audit(), this.options.intervalMs).unref();
  }

  private remember(event: RecordedEvent): void {
    const created = deploymentEventOf(event);
    if (created.type === 'DeploymentCreated') this.known.add(created.data.deploymentId);
  }

  private async compare(): Promise<void> {
    try {
      const differences = await this.differences();
      const under = differences.filter(undercounts).length;
      this.gauge?.set({ kind: 'undercount' }, under);
      this.gauge?.set({ kind: 'overcount' }, differences.length - under);
      if (under > 0) this.options.logger.error({ differences }, 'the admission ledger counts less than deployments can run');
      await this.deps.handler.execute(
        ledgerAudits,
        LEDGER_AUDIT_ID,
        { type: 'RecordLedgerAudit', at: this.deps.clock.now().toISOString(), differences },
        reportBy(this.name),
      );
    } catch (error) {
      this.options.logger.warn({ err: error }, 'ledger audit failed; the next one tries again');
    }
  }

  /**
   * Each deployment's state is read before the ledger: a change that lands in between is already in the ledger
   * (it is stored with its admission) but not in the state read, and such a deployment is left to the next audit.
   */
  private async differences(): Promise<LedgerDifference[]> {
    const states = new Map<string, AggregateState<Deployment>>();
    for (const id of this.known) states.set(id, await this.deps.handler.loadState(deployments, id));
    const { state: ledger } = await this.deps.policy.ledger();
    const differences: LedgerDifference[] = [];
    const latestAdmitted = new Map<string, number>();
    for (const past of ledger.history) if (past.targetRevision !== undefined) latestAdmitted.set(past.targetId, past.targetRevision);
    for (const id of new Set([...this.known, ...Object.keys(ledger.placements)])) {
      const loaded = states.get(id);
      if (loaded && (latestAdmitted.get(id) ?? -1) > loaded.revision) continue;
      const state = loaded?.state;
      const runs = state && state.status !== 'absent' && state.status !== 'Deleted' ? heldFootprint(state) : null;
      const counted = ledger.placements[id]?.footprint ?? null;
      if (sameFootprint(counted, runs)) continue;
      // A rollout under way holds its surge pods too, until it completes and gives them back.
      if (state && runs && counted && ROLLING_OUT.has(state.status) && state.status !== 'absent' && between(counted, runs, rolloutFootprint('update', state))) continue;
      differences.push({ deploymentId: id, ledger: counted, deployment: runs });
    }
    return differences;
  }
}

/** The statuses of a deployment whose rollout has not completed yet. */
const ROLLING_OUT: ReadonlySet<string> = new Set(['Pending', 'Applying', 'Progressing']);

/** Whether `f` holds at least `low` and at most `high` of every resource. */
function between(f: Footprint, low: Footprint, high: Footprint): boolean {
  const keys = ['replicas', 'cpuMillicores', 'memoryBytes', 'gpus'] as const;
  return keys.every((key) => f[key] >= low[key] && f[key] <= high[key]);
}
