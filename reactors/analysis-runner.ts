// Drives one analysis run: measures each metric when it is due through its provider, judges the reading with the
// domain's run state machine, and reports every event before going on.
//
// When a metric is due is derived from the run's events (domain `nextMeasurementAt`), so a runner started again
// with the events already recorded resumes where the last one stopped. Time comes from an injected scheduler.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  evolveAnalysisRun,
  initialAnalysisRun,
  nextMeasurementAt,
  recordMeasurement,
  renderQuery,
  type AnalysisEvent,
  type AnalysisMetric,
  type AnalysisProvider,
  type AnalysisRun,
  type Reading,
  type RunVerdict,
  type StartedRun,
} from '../domain/analysis/analysis.js';

/** What a provider knows of the measurement it is asked for. */
export interface MeasureContext {
  runId: string;
  metric: string;
  args: Readonly<Record<string, string>>;
  /** When the measurement is taken (the scheduler's time). */
  at: Date;
}

/** The port a metric source implements: one query, one reading. Undefined means the query found nothing. */
export interface MetricProvider {
  measure(query: string, context: MeasureContext): Promise<{ value: number | number[] | undefined }>;
}

/** Where the runner reads the time and waits for it; tests pass one with virtual time. */
export interface AnalysisScheduler {
  now(): Date;
  /** Resolves at `at` (at once if it has passed); rejects with the signal's reason when aborted. */
  waitUntil(at: Date, signal?: AbortSignal): Promise<void>;
}

export const systemScheduler: AnalysisScheduler = {
  now: () => new Date(),
  waitUntil: async (at, signal) => {
    const delay = at.getTime() - Date.now();
    if (delay > 0) await sleep(delay, undefined, signal ? { signal } : {});
    else signal?.throwIfAborted();
  },
};

export interface AnalysisRunnerOptions {
  providers: Partial<Record<AnalysisProvider, MetricProvider>>;
  scheduler: AnalysisScheduler;
  /** Records an event (appends it to the run's stream); the runner waits for it before going on. */
  report(event: AnalysisEvent): Promise<void>;
  /** Stops the run between measurements: `runAnalysis` then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Several series' values as one reading: none is missing, one is a number, more are a list in the order given. */
export function readingOf(values: readonly number[]): number | number[] | undefined {
  if (values.length === 0) return undefined;
  return values.length === 1 ? values[0] : [...values];
}

function isReadingValue(value: unknown): value is number | number[] | undefined {
  return value === undefined || typeof value === 'number' || (Array.isArray(value) && value.every((v) => typeof v === 'number'));
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function query(provider: MetricProvider, text: string, context: MeasureContext): Promise<number | number[] | undefined> {
  const { value } = await provider.measure(text, context);
  if (!isReadingValue(value)) throw new Error(`the provider answered ${JSON.stringify(value)}, not a number, a list of numbers or nothing`);
  return value;
}

/** One metric's reading; a provider's failure is an error reading, judged like any other measurement. */
async function read(run: StartedRun, metric: AnalysisMetric, provider: MetricProvider, at: Date): Promise<Reading> {
  const context: MeasureContext = { runId: run.runId, metric: metric.name, args: run.args, at };
  try {
    const [value, baseline] = await Promise.all([
      query(provider, renderQuery(metric.query, run.args), context),
      metric.baselineQuery === undefined ? undefined : query(provider, renderQuery(metric.baselineQuery, run.args), context),
    ]);
    return metric.baselineQuery === undefined ? { value } : { value, baseline };
  } catch (error) {
    return { error: `${metric.provider} query of ${metric.name} failed: ${describeError(error)}` };
  }
}

function fold(events: readonly AnalysisEvent[]): AnalysisRun {
  return events.reduce(evolveAnalysisRun, initialAnalysisRun);
}

function providersFor(run: StartedRun, providers: AnalysisRunnerOptions['providers']): Map<string, MetricProvider> {
  const byMetric = new Map<string, MetricProvider>();
  for (const metric of run.template.metrics) {
    const provider = providers[metric.provider];
    if (!provider) throw new Error(`analysis run ${run.runId}: metric ${metric.name} needs the ${metric.provider} provider, which is not configured`);
    byMetric.set(metric.name, provider);
  }
  return byMetric;
}

/** The metrics due earliest, and when. */
function earliestDue(run: StartedRun): { at: Date; metrics: AnalysisMetric[] } {
  const due = run.template.metrics.flatMap((metric) => {
    const at = nextMeasurementAt(run, metric.name);
    return at ? [{ metric, at }] : [];
  });
  if (due.length === 0) throw new Error(`analysis run ${run.runId} is running but no metric is due: its events are inconsistent`);
  const at = Math.min(...due.map((d) => d.at.getTime()));
  return { at: new Date(at), metrics: due.filter((d) => d.at.getTime() === at).map((d) => d.metric) };
}

/**
 * Runs an analysis to its verdict, from the events already recorded for it (at least its `AnalysisRunStarted`).
 * Metrics due at the same time are measured together and reported in template order. A run that has already
 * completed answers its verdict at once.
 */
export async function runAnalysis(events: readonly AnalysisEvent[], options: AnalysisRunnerOptions): Promise<RunVerdict> {
  let run = fold(events);
  if (run.status === 'absent') throw new Error('an analysis run needs its AnalysisRunStarted event before it can run');
  const runId = run.runId;
  const providers = providersFor(run, options.providers);
  while (run.status === 'running') {
    const due = earliestDue(run);
    await options.scheduler.waitUntil(due.at, options.signal);
    options.signal?.throwIfAborted();
    const at = options.scheduler.now();
    const started: StartedRun = run;
    const readings = await Promise.all(due.metrics.map((metric) => read(started, metric, providers.get(metric.name)!, at)));
    for (const [index, metric] of due.metrics.entries()) {
      if (run.status !== 'running') break;
      for (const event of recordMeasurement(run, { metric: metric.name, reading: readings[index]!, at })) {
        await options.report(event);
        run = evolveAnalysisRun(run, event);
      }
    }
  }
  if (run.status !== 'completed' || run.verdict === undefined) throw new Error(`analysis run ${runId} stopped without a verdict`);
  return run.verdict;
}

/** When the run's next measurement is due (its earliest metric's), or undefined when it has a verdict. */
export function nextDueAt(run: AnalysisRun): Date | undefined {
  if (run.status !== 'running') return undefined;
  const times = run.template.metrics.flatMap((metric) => {
    const at = nextMeasurementAt(run, metric.name);
    return at ? [at.getTime()] : [];
  });
  return times.length === 0 ? undefined : new Date(Math.min(...times));
}

/**
 * One round of a run driven from outside (a durable timer per round): the readings of every metric due at `at`, in
 * template order, each through its provider. The caller records them (`recordMeasurement`) as one step.
 */
export async function measureDue(
  run: AnalysisRun,
  providers: AnalysisRunnerOptions['providers'],
  at: Date,
): Promise<{ metric: string; reading: Reading }[]> {
  if (run.status !== 'running') return [];
  const byMetric = providersFor(run, providers);
  const due = run.template.metrics.filter((metric) => {
    const next = nextMeasurementAt(run, metric.name);
    return next !== undefined && next.getTime() <= at.getTime();
  });
  const readings = await Promise.all(due.map((metric) => read(run, metric, byMetric.get(metric.name)!, at)));
  return due.map((metric, index) => ({ metric: metric.name, reading: readings[index]! }));
}
