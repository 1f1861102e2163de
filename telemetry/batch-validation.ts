// What the ingest accepts from a node agent: the hello that opens a stream and each batch after it. A refusal names
// the first field that is wrong and what would be accepted there (`samples[3].value: a finite number`).
import { z } from 'zod';
import type { Batch, Hello, Sample } from '../adapters/grpc/telemetry-proto.js';

export const LIMITS = {
  /** Agent ids, node names (Kubernetes allows 253 characters) and cluster ids. */
  identityLength: 253,
  agentVersionLength: 64,
  samplesPerBatch: 10_000,
  metricLength: 200,
  labelsPerSample: 32,
  labelNameLength: 128,
  labelValueLength: 1024,
  /** How far ahead of the ingest's clock a sample may be (agents' clocks drift). */
  futureMs: 5 * 60_000,
} as const;

/** A hello or batch the ingest refuses; `field` is the path of what is wrong, `expected` what would be accepted. */
export class InvalidTelemetry extends Error {
  constructor(
    readonly field: string,
    readonly expected: string,
  ) {
    super(`${field}: ${expected}`);
    this.name = 'InvalidTelemetry';
  }
}

/** PostgreSQL text cannot hold NUL: a string with one would fail the whole batch at the database, again on every resend. */
const withoutNul = (value: string) => !value.includes('\0');

const identity = z
  .string({ error: 'a string' })
  .min(1, 'must not be empty')
  .max(LIMITS.identityLength, `at most ${LIMITS.identityLength} characters`)
  .refine(withoutNul, 'no NUL characters');

const helloSchema = z.object({
  agentId: identity,
  nodeName: identity,
  clusterId: identity,
  agentVersion: z
    .string({ error: 'a string' })
    .max(LIMITS.agentVersionLength, `at most ${LIMITS.agentVersionLength} characters`)
    .refine(withoutNul, 'no NUL characters'),
});

/** Prometheus' rules: a metric name may contain colons; a label name may not, and `__` starts reserved names. */
const metricName = z
  .string({ error: 'a string' })
  .max(LIMITS.metricLength, `at most ${LIMITS.metricLength} characters`)
  .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)');
const labelName = z
  .string()
  .max(LIMITS.labelNameLength, `at most ${LIMITS.labelNameLength} characters`)
  .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)')
  .refine((name) => !name.startsWith('__'), 'a label name not starting with "__" (reserved)');
const labelValue = z
  .string()
  .max(LIMITS.labelValueLength, `a value of at most ${LIMITS.labelValueLength} characters`)
  .refine(withoutNul, 'a value without NUL characters');
const unixMs = z.number({ error: 'milliseconds since the epoch' }).int('whole milliseconds since the epoch');

const batchSchema = z.object({
  agentId: identity,
  nodeName: identity,
  clusterId: identity,
  sequence: z.number({ error: 'a positive integer' }).int('a positive integer').positive('a positive integer').max(Number.MAX_SAFE_INTEGER, 'a positive integer below 2^53'),
  // Each sample's shape is checked by hand (checkSample): a zod schema per sample was a large part of the cost.
  samples: z
    .array(z.unknown(), { error: 'a list of samples' })
    .min(1, 'at least one sample')
    .max(LIMITS.samplesPerBatch, `at most ${LIMITS.samplesPerBatch} samples`),
  droppedSamples: z.number({ error: 'a count' }).int('a whole count').nonnegative('a count of at least 0'),
  sentAtUnixMs: unixMs,
});

/** The hello as accepted, or InvalidTelemetry. */
export function validateHello(input: unknown): Hello {
  return parse(helloSchema, input, 'hello');
}

export interface BatchContext {
  /** The stream's hello: a batch speaks for the same agent, node and cluster. */
  hello: Hello;
  /** The ingest's clock, in milliseconds since the epoch. */
  nowMs: number;
  /** How old a sample may be: older ones would land where retention has already removed data. */
  retentionMs: number;
}

/**
 * The batch as accepted (its samples are the input's own objects), or InvalidTelemetry naming the first field that is
 * wrong. Metric names, label names and label values are checked against the rules above once per distinct string, and
 * a labels object once however many samples share it (the ingest's decoder shares one per series): a node's batch
 * repeats a few hundred series a thousand times, and the rules' regular expressions were most of the cost.
 */
export function validateBatch(input: unknown, context: BatchContext): Batch {
  const parsed = batchSchema.safeParse(input);
  if (!parsed.success) {
    // Fields are judged in order: a sample that is wrong comes before the fields after the samples.
    const [issue] = parsed.error.issues;
    const samples = (input as { samples?: unknown } | null)?.samples;
    if (issue && AFTER_SAMPLES.has(issue.path[0]) && Array.isArray(samples)) samples.forEach(checkSample);
    parse(batchSchema, input, 'batch');
  }
  const batch = parsed.data as Batch;
  for (const field of ['agentId', 'nodeName', 'clusterId'] as const) {
    if (batch[field] !== context.hello[field]) {
      throw new InvalidTelemetry(field, `the ${field} of the stream's hello (${JSON.stringify(context.hello[field])})`);
    }
  }
  const earliest = context.nowMs - context.retentionMs;
  const latest = context.nowMs + LIMITS.futureMs;
  const { samples } = batch;
  // Labels objects that passed in this batch but cannot be remembered beyond it (not frozen).
  let passedHere: Set<object> | undefined;
  for (let index = 0; index < samples.length; index++) {
    const sample = samples[index];
    checkSample(sample, index);
    once(passed.metrics, metricName, sample.metric, ['samples', index, 'metric']);
    if (!passed.labels.has(sample.labels) && !passedHere?.has(sample.labels)) {
      let count = 0;
      for (const name in sample.labels) {
        if (++count > LIMITS.labelsPerSample) throw new InvalidTelemetry(`samples[${index}].labels`, `at most ${LIMITS.labelsPerSample} labels`);
        once(passed.labelNames, labelName, name, ['samples', index, 'labels', name]);
        once(passed.labelValues, labelValue, sample.labels[name]!, ['samples', index, 'labels', name]);
      }
      // Only a frozen labels object can be remembered: one that can change might not pass next time.
      if (Object.isFrozen(sample.labels)) {
        if (++passed.labelSets > PASSED_LIMIT) forgetPassed();
        passed.labels.add(sample.labels);
      } else {
        (passedHere ??= new Set()).add(sample.labels);
      }
    }
    if (sample.timestampUnixMs < earliest || sample.timestampUnixMs > latest) {
      throw new InvalidTelemetry(
        `samples[${index}].timestampUnixMs`,
        `a time between ${new Date(earliest).toISOString()} (the retention) and ${new Date(latest).toISOString()}`,
      );
    }
  }
  return batch;
}

/**
 * Metric names, label names, label values and frozen label sets that passed the rules above. The rules depend on
 * nothing but the value, and agents send the same series in every batch, so what passed once is not judged again,
 * in any batch of any stream. Each set starts afresh when it holds PASSED_LIMIT values (label values such as pod
 * names change over time); the label sets are held weakly, so those of series no longer sent can be collected.
 */
const PASSED_LIMIT = 50_000;
const passed = { metrics: new Set<string>(), labelNames: new Set<string>(), labelValues: new Set<string>(), labels: new WeakSet<object>(), labelSets: 0 };

function forgetPassed(): void {
  passed.labels = new WeakSet();
  passed.labelSets = 0;
}

const AFTER_SAMPLES = new Set<PropertyKey | undefined>(['droppedSamples', 'sentAtUnixMs']);

/** A sample's shape, as a schema would judge it (the same messages), without copying it. */
function checkSample(input: unknown, index: number): asserts input is Sample {
  // Runs for every sample: the field paths are built only when a check fails.
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidTelemetry(`samples[${index}]`, 'expected object, received ' + kindOf(input));
  const sample = input as Record<string, unknown>;
  if (typeof sample['metric'] !== 'string') throw new InvalidTelemetry(`samples[${index}].metric`, 'a string');
  const labels = sample['labels'];
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw new InvalidTelemetry(`samples[${index}].labels`, 'a map of label names to values');
  // A labels object that passed validation is frozen and all strings already.
  if (!passed.labels.has(labels)) {
    for (const name in labels) {
      if (typeof (labels as Record<string, unknown>)[name] !== 'string') throw new InvalidTelemetry(`samples[${index}].labels.${name}`, 'a string');
    }
  }
  if (!Number.isFinite(sample['value'])) throw new InvalidTelemetry(`samples[${index}].value`, 'a finite number');
  const time = sample['timestampUnixMs'];
  if (!Number.isFinite(time)) throw new InvalidTelemetry(`samples[${index}].timestampUnixMs`, 'milliseconds since the epoch');
  if (!Number.isSafeInteger(time)) throw new InvalidTelemetry(`samples[${index}].timestampUnixMs`, 'whole milliseconds since the epoch');
}

function kindOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

/** Checks `value` against `rule` unless a value equal to it passed already (`values` remembers those). */
function once(values: Set<string>, rule: z.ZodType<string>, value: string, at: PropertyKey[]): void {
  if (values.has(value)) return;
  parse(rule, value, fieldPath(at), at);
  if (values.size >= PASSED_LIMIT) values.clear();
  values.add(value);
}

/** The parsed value, or InvalidTelemetry naming the first issue's field under `at` (`what` when it is the whole value). */
function parse<T>(schema: z.ZodType<T>, input: unknown, what: string, at: PropertyKey[] = []): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  if (!issue) throw new InvalidTelemetry(what, `a valid ${what}`);
  // A record key that fails carries the key's own issue inside; its message says what a key may be.
  const nested = issue.code === 'invalid_key' ? issue.issues[0] : undefined;
  throw new InvalidTelemetry(fieldPath([...at, ...issue.path]) || what, nested?.message ?? issue.message);
}

/** `['samples', 3, 'labels', 'gpu']` → `samples[3].labels.gpu`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part, index) => (typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`)).join('');
}
