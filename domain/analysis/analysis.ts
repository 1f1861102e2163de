// Rollout analysis: templates of metrics with conditions, and the pure state machine of one analysis run.
//
// The semantics are Argo Rollouts' AnalysisRun, with one rule of Sentinel's on top: a reading that is missing,
// empty or NaN is inconclusive, never a pass. A metric is measured every `interval`, `count` times; each
// measurement is successful, failed, inconclusive or an error. A metric fails once its failed measurements exceed
// `failureLimit` (or its consecutive errors exceed `consecutiveErrorLimit`), becomes inconclusive once its
// inconclusive measurements exceed `inconclusiveLimit`, and succeeds once it has `count` measurements within those
// limits, at least one of them successful (else it is inconclusive: nothing showed the canary good, so failed and
// inconclusive measurements within their limits never add up to a pass). Errors do not count towards `count`: the
// measurement is taken again at the next interval. The run ends as
// soon as one metric fails or turns inconclusive (its verdict is the worst metric's), or when all succeed.
import { z } from 'zod';
import { defineEvents, RuleViolation, type EventOf } from '../decider.js';
import { id, timestamp } from '../schemas.js';
import { ExpressionSyntaxError, ExpressionTypeError, parseExpression, type Value } from './expression.js';

// ---- templates ----------------------------------------------------------------------------------------

export const ANALYSIS_PROVIDERS = ['prometheus', 'telemetry'] as const;
export type AnalysisProvider = (typeof ANALYSIS_PROVIDERS)[number];

/** The names a condition may read: the metric's reading, and the reading of its baseline query. */
export const CONDITION_NAMES = ['result', 'baseline'] as const;

const DURATION = /^(\d+(ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a duration written as Go and Argo write them: `30s`, `5m`, `1m30s`, `500ms`. */
export function durationMs(text: string): number {
  if (!DURATION.test(text)) throw new RangeError(`"${text}" is not a duration such as "30s", "5m" or "1m30s"`);
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)(ms|s|m|h)/g)) total += Number(amount) * UNIT_MS[unit!]!;
  return total;
}

const condition = z.string().superRefine((source, context) => {
  try {
    const unknown = [...parseExpression(source).names].filter((n) => !(CONDITION_NAMES as readonly string[]).includes(n));
    if (unknown.length > 0) context.addIssue({ code: 'custom', message: `reads unknown names ${unknown.join(', ')} (a condition may read ${CONDITION_NAMES.join(' and ')})` });
  } catch (error) {
    if (!(error instanceof ExpressionSyntaxError)) throw error;
    context.addIssue({ code: 'custom', message: error.message });
  }
});

const metricName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'lower-case letters, digits and "-"').max(63, 'at most 63 characters');

export const analysisMetric = z
  .strictObject({
    name: metricName,
    provider: z.enum(ANALYSIS_PROVIDERS),
    /** The provider's query; `{{args.<name>}}` is replaced by the run's argument (quotes and backslashes escaped). */
    query: z.string().min(1, 'a non-empty query'),
    /** A second query whose reading conditions see as `baseline` (the stable side, for a comparison). */
    baselineQuery: z.string().min(1, 'a non-empty query').optional(),
    interval: z.string().refine((text) => DURATION.test(text) && durationMs(text) > 0, 'a duration longer than 0 such as "30s", "5m" or "1m30s"'),
    count: z.int().min(1, 'at least 1').max(10_000, 'at most 10000'),
    successCondition: condition,
    failureCondition: condition.optional(),
    failureLimit: z.int().min(0, '0 or more').default(0),
    inconclusiveLimit: z.int().min(0, '0 or more').default(0),
    consecutiveErrorLimit: z.int().min(0, '0 or more').default(4),
  })
  .superRefine((metric, context) => {
    const readsBaseline = [metric.successCondition, metric.failureCondition].some((c) => c !== undefined && safeNames(c).has('baseline'));
    if (readsBaseline && metric.baselineQuery === undefined) {
      context.addIssue({ code: 'custom', path: ['baselineQuery'], message: 'a condition reads baseline, so a baselineQuery is needed' });
    }
  });
export type AnalysisMetric = z.infer<typeof analysisMetric>;

/** The names a condition reads; none for one that does not parse, whose own field already reports why. */
function safeNames(source: string): ReadonlySet<string> {
  try {
    return parseExpression(source).names;
  } catch {
    return new Set();
  }
}

export const analysisTemplate = z
  .strictObject({
    name: metricName,
    metrics: z.array(analysisMetric).min(1, 'at least one metric'),
  })
  .refine((t) => new Set(t.metrics.map((m) => m.name)).size === t.metrics.length, { message: 'metric names must be unique', path: ['metrics'] });
export type AnalysisTemplate = z.infer<typeof analysisTemplate>;

const ARG = /\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}/g;

/** The argument names a query reads. */
export function queryArgs(query: string): string[] {
  return [...new Set([...query.matchAll(ARG)].map((m) => m[1]!))];
}

/**
 * A query with its `{{args.<name>}}` replaced. Values are escaped as the inside of a double-quoted string, which
 * both PromQL and the telemetry query language read, so an argument cannot end the string it stands in.
 */
export function renderQuery(query: string, args: Readonly<Record<string, string>>): string {
  return query.replace(ARG, (_, name: string) => {
    const value = args[name];
    if (value === undefined) throw new RuleViolation(`the query reads args.${name}, which the run was not given`, [{ path: `args.${name}`, message: 'required' }]);
    return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  });
}

// ---- measured values in events ------------------------------------------------------------------------

/** JSON has no NaN or infinities, so events spell them as Prometheus' text format does. */
const measuredNumber = z.union([z.number(), z.enum(['NaN', '+Inf', '-Inf'])]);
const measuredValue = z.union([measuredNumber, z.array(measuredNumber)]).nullable();
export type MeasuredValue = z.infer<typeof measuredValue>;

function encodeNumber(n: number): z.infer<typeof measuredNumber> {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return n;
}

function decodeNumber(n: z.infer<typeof measuredNumber>): number {
  if (typeof n === 'number') return n;
  return n === 'NaN' ? Number.NaN : n === '+Inf' ? Infinity : -Infinity;
}

/** A reading as an event holds it: null for missing. */
export function encodeMeasuredValue(value: number | readonly number[] | undefined): MeasuredValue {
  if (value === undefined) return null;
  return typeof value === 'number' ? encodeNumber(value) : value.map(encodeNumber);
}

/** A reading back from an event: undefined for missing. */
export function decodeMeasuredValue(value: MeasuredValue): number | number[] | undefined {
  if (value === null) return undefined;
  return Array.isArray(value) ? value.map(decodeNumber) : decodeNumber(value);
}

// ---- events -------------------------------------------------------------------------------------------

export const MEASUREMENT_OUTCOMES = ['successful', 'failed', 'inconclusive', 'error'] as const;
export type MeasurementOutcome = (typeof MEASUREMENT_OUTCOMES)[number];
export const RUN_VERDICTS = ['successful', 'failed', 'inconclusive'] as const;
export type RunVerdict = (typeof RUN_VERDICTS)[number];
export type MetricVerdict = 'running' | RunVerdict;

const metricSummary = z.strictObject({
  metric: z.string(),
  verdict: z.enum(['running', ...RUN_VERDICTS]),
  measured: z.int(),
  successful: z.int(),
  failed: z.int(),
  inconclusive: z.int(),
  errors: z.int(),
});
export type MetricSummary = z.infer<typeof metricSummary>;

export const analysisEvents = defineEvents({
  /** A run began: the template and arguments are recorded whole, so the run replays and explains itself. */
  AnalysisRunStarted: {
    version: 1,
    schema: z.strictObject({ runId: id, template: analysisTemplate, args: z.record(z.string(), z.string()), startedAt: timestamp }),
  },
  /** One measurement of one metric: what was read and how it was judged. */
  AnalysisMeasured: {
    version: 1,
    schema: z.strictObject({
      runId: id,
      metric: z.string(),
      outcome: z.enum(MEASUREMENT_OUTCOMES),
      value: measuredValue,
      baseline: measuredValue.optional(),
      message: z.string(),
      measuredAt: timestamp,
    }),
  },
  /** The run's verdict, with each metric's tally. */
  AnalysisRunCompleted: {
    version: 1,
    schema: z.strictObject({ runId: id, verdict: z.enum(RUN_VERDICTS), reason: z.string(), metrics: z.array(metricSummary), completedAt: timestamp }),
  },
});
export type AnalysisEvent = EventOf<typeof analysisEvents>;
type Measured = Extract<AnalysisEvent, { type: 'AnalysisMeasured' }>['data'];

// ---- judging one measurement --------------------------------------------------------------------------

/** What a provider answered for one measurement, or why it could not answer. */
export type Reading = { value: number | readonly number[] | undefined; baseline?: number | readonly number[] | undefined } | { error: string };

export interface Judgement {
  outcome: MeasurementOutcome;
  message: string;
}

/** Missing, an empty list, or NaN anywhere: nothing a pass may rest on. */
export function isUnusable(value: number | readonly number[] | undefined): boolean {
  if (value === undefined) return true;
  if (typeof value === 'number') return Number.isNaN(value);
  return value.length === 0 || value.some(Number.isNaN);
}

function holds(source: string, variables: Record<string, Value>): boolean {
  const value = parseExpression(source).evaluate(variables);
  if (typeof value !== 'boolean') throw new ExpressionTypeError(source, 0, `a condition must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * How one reading is judged. As in Argo, a failure condition that holds wins, and when both conditions are given
 * and neither holds the measurement is inconclusive; with only a success condition, not meeting it is a failure.
 * Sentinel's rule comes before the success condition: an unusable reading (or baseline) is inconclusive unless the
 * failure condition holds, so the success condition is never even asked about NaN.
 */
export function judgeMeasurement(metric: AnalysisMetric, reading: Reading): Judgement {
  if ('error' in reading) return { outcome: 'error', message: reading.error };
  const variables: Record<string, Value> = { result: reading.value, baseline: reading.baseline };
  try {
    if (metric.failureCondition !== undefined && holds(metric.failureCondition, variables)) {
      return { outcome: 'failed', message: `failure condition \`${metric.failureCondition}\` holds` };
    }
    const unusable = isUnusable(reading.value) ? 'result' : metric.baselineQuery !== undefined && isUnusable(reading.baseline) ? 'baseline' : undefined;
    if (unusable) return { outcome: 'inconclusive', message: `${unusable} is missing, empty or NaN` };
    if (holds(metric.successCondition, variables)) return { outcome: 'successful', message: `success condition \`${metric.successCondition}\` holds` };
    return metric.failureCondition === undefined
      ? { outcome: 'failed', message: `success condition \`${metric.successCondition}\` does not hold` }
      : { outcome: 'inconclusive', message: 'neither the success nor the failure condition holds' };
  } catch (error) {
    if (error instanceof ExpressionTypeError) return { outcome: 'error', message: error.message };
    throw error;
  }
}

// ---- the run ------------------------------------------------------------------------------------------

export interface RecordedMeasurement {
  outcome: MeasurementOutcome;
  measuredAt: string;
}

export type AnalysisRun =
  | { status: 'absent' }
  | {
      status: 'running' | 'completed';
      runId: string;
      template: AnalysisTemplate;
      args: Record<string, string>;
      startedAt: string;
      /** Each metric's measurements, oldest first. */
      measurements: Record<string, RecordedMeasurement[]>;
      verdict?: RunVerdict;
    };
export type StartedRun = Exclude<AnalysisRun, { status: 'absent' }>;

export const initialAnalysisRun: AnalysisRun = { status: 'absent' };

/** Folds the events of one run (the caller picks them out by `runId`). */
export function evolveAnalysisRun(run: AnalysisRun, event: AnalysisEvent): AnalysisRun {
  switch (event.type) {
    case 'AnalysisRunStarted': {
      const { runId, template, args, startedAt } = event.data;
      return { status: 'running', runId, template, args, startedAt, measurements: Object.fromEntries(template.metrics.map((m) => [m.name, []])) };
    }
    case 'AnalysisMeasured': {
      if (run.status === 'absent') return run;
      const { metric, outcome, measuredAt } = event.data;
      return { ...run, measurements: { ...run.measurements, [metric]: [...(run.measurements[metric] ?? []), { outcome, measuredAt }] } };
    }
    case 'AnalysisRunCompleted':
      return run.status === 'absent' ? run : { ...run, status: 'completed', verdict: event.data.verdict };
  }
}

/**
 * The event that starts a run. Throws `RuleViolation` naming what is wrong: a template that does not validate,
 * or an argument a query reads that is not given.
 */
export function startAnalysisRun(command: { runId: string; template: unknown; args: Record<string, string>; at: Date }): AnalysisEvent {
  const parsed = analysisTemplate.safeParse(command.template);
  if (!parsed.success) {
    throw new RuleViolation(
      'the analysis template is not valid',
      parsed.error.issues.map((issue) => ({ path: ['template', ...issue.path].join('.'), message: issue.message })),
    );
  }
  const missing = parsed.data.metrics.flatMap((m) => [m.query, m.baselineQuery ?? ''].flatMap(queryArgs)).filter((name) => command.args[name] === undefined);
  if (missing.length > 0) {
    throw new RuleViolation(
      `the template's queries read arguments the run was not given: ${[...new Set(missing)].join(', ')}`,
      [...new Set(missing)].map((name) => ({ path: `args.${name}`, message: 'required by a query of the template' })),
    );
  }
  return { type: 'AnalysisRunStarted', data: { runId: command.runId, template: parsed.data, args: { ...command.args }, startedAt: command.at.toISOString() } };
}

function tally(metric: AnalysisMetric, measurements: readonly RecordedMeasurement[]): MetricSummary {
  const count = (outcome: MeasurementOutcome) => measurements.filter((m) => m.outcome === outcome).length;
  const summary = { metric: metric.name, successful: count('successful'), failed: count('failed'), inconclusive: count('inconclusive'), errors: count('error') };
  return { ...summary, measured: summary.successful + summary.failed + summary.inconclusive, verdict: 'running' };
}

function consecutiveErrors(measurements: readonly RecordedMeasurement[]): number {
  let errors = 0;
  for (let i = measurements.length - 1; i >= 0 && measurements[i]!.outcome === 'error'; i -= 1) errors += 1;
  return errors;
}

/** One metric's verdict from its measurements so far, with the reason in words. */
export function assessMetric(metric: AnalysisMetric, measurements: readonly RecordedMeasurement[]): MetricSummary & { reason: string } {
  const summary = tally(metric, measurements);
  const errorsInARow = consecutiveErrors(measurements);
  const verdict = (v: MetricVerdict, reason: string) => ({ ...summary, verdict: v, reason: `${metric.name}: ${reason}` });
  if (errorsInARow > metric.consecutiveErrorLimit) {
    return verdict('failed', `${errorsInARow} errors in a row, more than consecutiveErrorLimit ${metric.consecutiveErrorLimit}`);
  }
  if (summary.failed > metric.failureLimit) return verdict('failed', `${summary.failed} failed measurements, more than failureLimit ${metric.failureLimit}`);
  if (summary.inconclusive > metric.inconclusiveLimit) {
    return verdict('inconclusive', `${summary.inconclusive} inconclusive measurements, more than inconclusiveLimit ${metric.inconclusiveLimit}`);
  }
  if (summary.measured >= metric.count && summary.successful === 0) {
    return verdict('inconclusive', `none of ${summary.measured} measurements succeeded`);
  }
  if (summary.measured >= metric.count) return verdict('successful', `${summary.measured} of ${metric.count} measurements within limits`);
  return verdict('running', `${summary.measured} of ${metric.count} measurements taken`);
}

const SEVERITY: Record<MetricVerdict, number> = { successful: 0, running: 1, inconclusive: 2, failed: 3 };

/**
 * The run's verdict so far: the worst metric's once any metric has failed or turned inconclusive (the run ends
 * early, as Argo's does), running while any metric still measures, successful when every metric succeeded.
 */
export function assessRun(run: StartedRun): { verdict: MetricVerdict; reason: string; metrics: MetricSummary[] } {
  const assessed = run.template.metrics.map((metric) => assessMetric(metric, run.measurements[metric.name] ?? []));
  const worst = assessed.reduce((a, b) => (SEVERITY[b.verdict] > SEVERITY[a.verdict] ? b : a));
  const ended = worst.verdict === 'failed' || worst.verdict === 'inconclusive';
  const verdict: MetricVerdict = ended ? worst.verdict : assessed.some((m) => m.verdict === 'running') ? 'running' : 'successful';
  const reason = verdict === 'successful' ? 'every metric succeeded' : worst.reason;
  return { verdict, reason, metrics: assessed.map(({ reason: _reason, ...summary }) => summary) };
}

/**
 * The events one reading of one metric causes: its `AnalysisMeasured`, and `AnalysisRunCompleted` when it decides
 * the run. Throws `RuleViolation` for a run that is not running or a metric it does not have.
 */
export function recordMeasurement(run: AnalysisRun, input: { metric: string; reading: Reading; at: Date }): AnalysisEvent[] {
  if (run.status !== 'running') throw new RuleViolation(`analysis run is ${run.status}: it takes no more measurements`);
  const metric = run.template.metrics.find((m) => m.name === input.metric);
  if (!metric) throw new RuleViolation(`analysis run ${run.runId} has no metric ${input.metric}`, [{ path: 'metric', message: 'not in the template' }]);
  const judgement = judgeMeasurement(metric, input.reading);
  const data: Measured = {
    runId: run.runId,
    metric: metric.name,
    outcome: judgement.outcome,
    value: 'error' in input.reading ? null : encodeMeasuredValue(input.reading.value),
    ...('error' in input.reading || metric.baselineQuery === undefined ? {} : { baseline: encodeMeasuredValue(input.reading.baseline) }),
    message: judgement.message,
    measuredAt: input.at.toISOString(),
  };
  const measured: AnalysisEvent = { type: 'AnalysisMeasured', data };
  const after = assessRun(evolveAnalysisRun(run, measured) as StartedRun);
  if (after.verdict === 'running') return [measured];
  return [measured, { type: 'AnalysisRunCompleted', data: { runId: run.runId, verdict: after.verdict, reason: after.reason, metrics: after.metrics, completedAt: input.at.toISOString() } }];
}

/**
 * When a metric is next due: at the start of the run for its first measurement, then one interval after its last.
 * Undefined once the metric or the run has a verdict. Derived from events only, so it survives a restart.
 */
export function nextMeasurementAt(run: AnalysisRun, metricName: string): Date | undefined {
  if (run.status !== 'running') return undefined;
  const metric = run.template.metrics.find((m) => m.name === metricName);
  if (!metric) return undefined;
  const measurements = run.measurements[metric.name] ?? [];
  if (assessMetric(metric, measurements).verdict !== 'running') return undefined;
  const last = measurements.at(-1);
  return last ? new Date(Date.parse(last.measuredAt) + durationMs(metric.interval)) : new Date(run.startedAt);
}
