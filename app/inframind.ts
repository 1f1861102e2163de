// Wiring of the inframind role: the gRPC link InfraMind connects to, with the plan intake, its guardrails, the
// observations it is sent and the fleet cost they carry.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Database } from '../adapters/postgres/database.js';
import { grpcServerMetrics } from '../adapters/prometheus/grpc-metrics.js';
import type { AccessService } from '../commands/access.js';
import { ActionPlanCommands } from '../commands/action-plan-commands.js';
import type { Clock } from '../commands/clock.js';
import type { CommandHandler } from '../commands/command-handler.js';
import { FleetFacts } from '../commands/fleet-facts.js';
import type { PolicyEngine } from '../commands/policy-engine.js';
import type { EventStore } from '../domain/event-store.js';
import { fleetCost, fleetCostProjector } from '../projections/fleet-cost.js';
import type { ProjectionRuntime } from '../projections/runtime.js';
import { Guardrails } from '../reactors/inframind/guardrails.js';
import { startInframindLink, type RunningInframindLink } from '../reactors/inframind/link.js';
import { FleetObservations } from '../reactors/inframind/observations.js';
import { PlanIntake } from '../reactors/inframind/plan-intake.js';
import type { Config } from './config.js';
import { sampleStore } from './telemetry.js';

export interface InframindDeps {
  config: Config;
  db: Database;
  store: EventStore;
  handler: CommandHandler;
  policy: PolicyEngine;
  access: Pick<AccessService, 'authenticate'>;
  projections: ProjectionRuntime;
  clock: Clock;
  /** Where the link's gRPC RED metrics go. */
  metrics: Registry;
  logger: Logger;
}

export async function startInframind(deps: InframindDeps): Promise<RunningInframindLink> {
  const { config, handler } = deps;
  const plans = new ActionPlanCommands(handler, deps.clock, deps.policy, new FleetFacts(handler), { defaultTtlSeconds: config.SENTINEL_PLAN_TTL_SECONDS });
  const guardrails = new Guardrails({ staleAfterMs: config.INFRAMIND_STALE_AFTER_SECONDS * 1000, plansPerMinute: config.INFRAMIND_PLANS_PER_MINUTE });
  const samples = sampleStore(config, deps.db);
  const logger = deps.logger.child({ component: 'inframind' });
  const link = await startInframindLink({
    host: config.INFRAMIND_GRPC_HOST,
    port: config.INFRAMIND_GRPC_PORT,
    store: deps.store,
    handler,
    intake: new PlanIntake(plans, handler, guardrails),
    guardrails,
    authenticate: (token) => deps.access.authenticate(token),
    maxUnacknowledged: config.INFRAMIND_MAX_UNACKED,
    keepaliveMs: config.INFRAMIND_KEEPALIVE_SECONDS * 1000,
    interceptors: [grpcServerMetrics(deps.metrics)],
    observations: {
      source: new FleetObservations({
        latestSamples: (query) => samples.latestSamples(query),
        fleetHourlyUsd: async () => (await fleetCost(deps.db.knex, await deps.projections.tables(fleetCostProjector))).hourlyUsd,
        freshForMs: 2 * config.INFRAMIND_OBSERVATION_SECONDS * 1000,
      }),
      intervalMs: config.INFRAMIND_OBSERVATION_SECONDS * 1000,
    },
    logger,
  });
  logger.info({ host: config.INFRAMIND_GRPC_HOST, port: link.port }, 'inframind link is listening');
  return link;
}
