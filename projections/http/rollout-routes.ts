// `GET /deployments/:id/rollout`: the canary step machine of a deployment's newest rollout, read from the log itself:
// the current step, the weights, each analysis run with its measurements, and what the rollout waits for.
import { z } from 'zod';
import { route, type Route } from '../../commands/http/route.js';
import { pathId } from '../../commands/http/replies.js';
import { readers } from './readers.js';
import { fold, NotFound } from '../../domain/decider.js';
import { deploymentDecider, deploymentEvents, type DeploymentEvent, type PlacedDeployment } from '../../domain/deployment.js';
import type { EventStore } from '../../domain/event-store.js';
import { rolloutDecider, rolloutIdOf, rolloutStreamEvents, runVerdict, type RolloutStepSpec, type StartedRollout } from '../../domain/rollout.js';

export interface RolloutRoutesOptions {
  /** The log the deployment's and its rollouts' streams are read from. */
  events: EventStore | undefined;
}

const view = z.record(z.string(), z.unknown()).meta({ id: 'Rollout' });

export function rolloutRoutes(options: RolloutRoutesOptions): Route[] {
  return [
    route({
      ...readers,
      method: 'get',
      path: '/deployments/:id/rollout',
      operationId: 'deploymentRollout',
      summary: "Show a deployment's newest canary or blue/green rollout: its steps, weights, analysis runs and what it waits for",
      success: { status: 200, schema: view, description: 'the rollout as its step machine stands' },
      handle: async ({ params }) => {
        const id = pathId(params, 'deployment');
        if (!options.events) throw new Error('this server was started without the event store the rollout status reads');
        return { status: 200, body: await readRollout(options.events, id) };
      },
    }),
  ];
}

/** The newest rollout of the deployment, as `rolloutView` shows it; `NotFound` when it has none. */
export async function readRollout(events: EventStore, deploymentId: string): Promise<RolloutView> {
  const recorded = await events.readStream(`deployment-${deploymentId}`);
  const own = recorded.flatMap((e): DeploymentEvent[] => ((deploymentEvents.types as readonly string[]).includes(e.type) ? [deploymentEvents.parse(e.type, e.schemaVersion, e.data)] : []));
  const deployment = fold(deploymentDecider, own);
  if (deployment.status === 'absent') throw new NotFound('deployment', deploymentId);
  const revisions = Object.keys(deployment.revisions).map(Number).sort((a, b) => b - a);
  for (const revision of revisions) {
    const stream = await events.readStream(`rollout-${rolloutIdOf(deploymentId, revision)}`);
    if (stream.length === 0) continue;
    const rollout = fold(
      rolloutDecider,
      stream.map((e) => rolloutStreamEvents.parse(e.type, e.schemaVersion, e.data)),
    );
    if (rollout.status !== 'absent') return rolloutView(deployment, rollout);
  }
  throw new NotFound('rollout of deployment', deploymentId);
}

export interface RolloutView {
  deploymentId: string;
  revision: number;
  stableRevision: number;
  /** The deployment's revision now: after an abort, the revision that went back to the stable spec. */
  deploymentRevision: number;
  /** `canary` or `blue_green`. */
  strategy: string;
  status: string;
  /** The step the rollout is at (1-based), of how many. */
  step: { current: number; of: number };
  weight: { canary: number; stable: number };
  replicas: { canary: number; stable: number };
  waitingFor: string | null;
  steps: { index: number; step: string; state: 'done' | 'current' | 'pending' | 'skipped' }[];
  analysisRuns: {
    runId: string;
    step: number;
    template: string | null;
    verdict: string;
    reason: string | null;
    measurements: { metric: string; outcome: string; value: unknown; baseline?: unknown; message: string; measuredAt: string }[];
  }[];
  cause: string | null;
  failedMeasurements: unknown[];
  startedAt: string;
  endedAt: string | null;
}

export function rolloutView(deployment: PlacedDeployment, rollout: StartedRollout): RolloutView {
  const ended = rollout.status === 'Completed' || rollout.status === 'Aborted';
  const currentIndex = rollout.waiting?.step ?? (ended ? -1 : rollout.step);
  return {
    deploymentId: rollout.deploymentId,
    revision: rollout.revision,
    stableRevision: rollout.stableRevision,
    deploymentRevision: deployment.currentRevision,
    strategy: rollout.strategy,
    status: rollout.status,
    step: { current: Math.min(currentIndex === -1 ? rollout.step : currentIndex + 1, rollout.steps.length), of: rollout.steps.length },
    weight: { canary: rollout.weight, stable: 100 - rollout.weight },
    replicas: { canary: rollout.canaryReplicas, stable: rollout.stableReplicas },
    waitingFor: waitingFor(rollout),
    steps: rollout.steps.map((step, index) => ({
      index: index + 1,
      step: describeStep(step),
      state:
        index === currentIndex
          ? 'current'
          : index < rollout.step
            ? 'done'
            : rollout.status === 'Completed' || rollout.status === 'Aborted'
              ? 'skipped'
              : 'pending',
    })),
    analysisRuns: rollout.runs.map((entry) => ({
      runId: entry.runId,
      step: entry.step + 1,
      template: entry.run.status === 'absent' ? null : entry.run.template.name,
      verdict: runVerdict(entry),
      reason: entry.reason ?? null,
      measurements: entry.measurements,
    })),
    cause: rollout.cause ?? null,
    failedMeasurements: rollout.failedMeasurements ?? [],
    startedAt: rollout.startedAt,
    endedAt: rollout.endedAt ?? null,
  };
}

function describeStep(step: RolloutStepSpec): string {
  switch (step.kind) {
    case 'weight':
      return `setWeight ${step.weight}`;
    case 'pause':
      return step.seconds === undefined ? 'pause until promoted' : `pause ${step.seconds}s`;
    case 'analysis':
      return `analysis ${typeof step.analysis.template === 'string' ? step.analysis.template : step.analysis.template.name}`;
    case 'preview':
      return 'preview';
    case 'switch':
      return 'switch the active Service to the preview';
    case 'scaleDown':
      return 'scale down the old side';
  }
}

function waitingFor(rollout: StartedRollout): string | null {
  if (rollout.status === 'Completed' || rollout.status === 'Aborted') return null;
  const waiting = rollout.waiting;
  if (waiting?.kind === 'pause') {
    if (waiting.reason === 'inconclusive') return 'a person: the analysis was inconclusive (promote or abort)';
    return waiting.until ? `the pause to end at ${waiting.until}` : 'promotion (POST /deployments/:id/promote)';
  }
  if (waiting?.kind === 'analysis') return `analysis run ${waiting.runId}`;
  const next = rollout.steps[rollout.step];
  if (!next) return 'the stable side to take the new spec';
  return next.kind === 'weight' ? `the canary pods at weight ${next.weight} to be ready` : `step ${rollout.step + 1} to begin`;
}
