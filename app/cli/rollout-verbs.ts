// `sentinel rollout get <deployment> [--watch]`: a deployment's canary rollout as a tree, as the Argo Rollouts kubectl
// plugin prints one: status, step, weights, then each step with its analysis runs and their measurements.
import { setTimeout as sleep } from 'node:timers/promises';
import { Option, type Command } from 'commander';
import { z } from 'zod';
import { URL_OPTION } from './auth-verbs.js';
import { ApiClient, serverUrl } from './http-client.js';
import { print, printData } from './output.js';
import { credentialsFor } from './session.js';

const measurement = z.object({ metric: z.string(), outcome: z.string(), value: z.unknown(), baseline: z.unknown().optional(), message: z.string(), measuredAt: z.string() });

/** What `GET /deployments/:id/rollout` answers, as far as the tree shows it. */
export const rolloutView = z.object({
  deploymentId: z.string(),
  revision: z.number(),
  stableRevision: z.number(),
  deploymentRevision: z.number(),
  status: z.string(),
  step: z.object({ current: z.number(), of: z.number() }),
  weight: z.object({ canary: z.number(), stable: z.number() }),
  replicas: z.object({ canary: z.number(), stable: z.number() }),
  waitingFor: z.string().nullable(),
  steps: z.array(z.object({ index: z.number(), step: z.string(), state: z.string() })),
  analysisRuns: z.array(
    z.object({ runId: z.string(), step: z.number(), template: z.string().nullable(), verdict: z.string(), reason: z.string().nullable(), measurements: z.array(measurement) }),
  ),
  cause: z.string().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
});
export type RolloutView = z.infer<typeof rolloutView>;

const STATUS_ICON: Record<string, string> = { Progressing: '◌', Paused: '॥', Completed: '✔', Aborted: '✖' };
const STEP_ICON: Record<string, string> = { done: '✔', current: '◌', pending: ' ', skipped: '-' };
const OUTCOME_ICON: Record<string, string> = { successful: '✔', failed: '✖', inconclusive: '?', error: '⚠', running: '◌', pending: ' ' };

function value(v: unknown): string {
  if (v === null || v === undefined) return 'none';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  return Array.isArray(v) ? `[${v.map(value).join(', ')}]` : String(v);
}

/** The rollout as a tree, one line per step, run and measurement. */
export function rolloutTree(view: RolloutView): string {
  const lines = [
    `Name:            ${view.deploymentId}`,
    `Status:          ${STATUS_ICON[view.status] ?? '?'} ${view.status}`,
    ...(view.waitingFor ? [`Message:         waiting for ${view.waitingFor}`] : []),
    ...(view.cause ? [`Cause:           ${view.cause}`] : []),
    'Strategy:        Canary',
    `  Step:          ${view.step.current}/${view.step.of}`,
    `  SetWeight:     ${view.weight.canary}`,
    `Revisions:       canary ${view.revision}, stable ${view.stableRevision}${view.deploymentRevision !== view.revision ? ` (the deployment is on revision ${view.deploymentRevision})` : ''}`,
    `Replicas:        canary ${view.replicas.canary}, stable ${view.replicas.stable}`,
    '',
    'STEP',
  ];
  view.steps.forEach((step, i) => {
    const last = i === view.steps.length - 1;
    lines.push(`${last ? '└' : '├'}──${STEP_ICON[step.state] ?? ' '} ${step.index}. ${step.step}`);
    const runs = view.analysisRuns.filter((run) => run.step === step.index);
    const indent = last ? '    ' : '│   ';
    runs.forEach((run, r) => {
      const lastRun = r === runs.length - 1;
      lines.push(`${indent}${lastRun ? '└' : '├'}──${OUTCOME_ICON[run.verdict] ?? ' '} AnalysisRun ${run.runId} (${run.template ?? 'template'}): ${run.verdict}${run.reason ? ` — ${run.reason}` : ''}`);
      const inner = `${indent}${lastRun ? '    ' : '│   '}`;
      run.measurements.forEach((m, k) => {
        const baseline = m.baseline === undefined ? '' : ` (stable ${value(m.baseline)})`;
        lines.push(`${inner}${k === run.measurements.length - 1 ? '└' : '├'}──${OUTCOME_ICON[m.outcome] ?? ' '} ${m.measuredAt.slice(11, 19)} ${m.metric} = ${value(m.value)}${baseline}: ${m.outcome}`);
      });
    });
  });
  return lines.join('\n');
}

interface RolloutGetOptions {
  url?: string;
  watch?: boolean;
  output: 'tree' | 'json' | 'yaml';
  intervalSeconds: number;
}

async function get(id: string, options: RolloutGetOptions): Promise<void> {
  const server = serverUrl(options.url);
  const client = new ApiClient(server, credentialsFor(server));
  const route = `/deployments/${encodeURIComponent(id)}/rollout`;
  let shown: string | undefined;
  for (;;) {
    const view = await client.get(route, rolloutView);
    const text = options.output === 'tree' ? rolloutTree(view) : JSON.stringify(view);
    if (text !== shown) {
      if (options.output === 'tree') print(options.watch && shown !== undefined ? `\n${new Date().toISOString().slice(11, 19)}\n${text}` : text);
      else printData(view, options.output);
    }
    shown = text;
    if (!options.watch || view.status === 'Completed' || view.status === 'Aborted') return;
    await sleep(options.intervalSeconds * 1000);
  }
}

/** Adds `rollout get` to the program. */
export function registerRolloutVerbs(program: Command): void {
  const rollout = program.command('rollout').description("canary rollouts: a deployment's steps, weights and analysis").exitOverride();
  rollout
    .command('get')
    .description("a deployment's newest canary rollout as a tree; --watch prints it again whenever it changes, until it ends")
    .argument('<deployment>', 'the deployment id')
    .option(...URL_OPTION)
    .option('-w, --watch', 'follow it until it completes or is aborted')
    .addOption(new Option('-o, --output <format>', 'how to print it').choices(['tree', 'json', 'yaml']).default('tree'))
    .addOption(new Option('--interval-seconds <n>', 'how often --watch reads it').argParser(Number).default(1))
    .action((id: string, options: RolloutGetOptions) => get(id, options));
}
