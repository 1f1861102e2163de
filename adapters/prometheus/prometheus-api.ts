// A small client of the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`): numbers as Prometheus
// meant them (NaN and ±Inf kept, an empty answer empty), a timeout on every call, and errors that name the URL
// and the status but never the credentials the URL carried.
import { z } from 'zod';

/** One sample of an instant vector (a scalar answer is one sample without labels). NaN and ±Inf are kept as such. */
export interface VectorSample {
  labels: Record<string, string>;
  value: number;
  at: Date;
}

/** One series of a range query, its points oldest first. */
export interface RangeSeries {
  labels: Record<string, string>;
  points: { at: Date; value: number }[];
}

export interface PrometheusApiOptions {
  /** Longest one call may take, including Prometheus's own evaluation (default 5000 ms). */
  timeoutMs?: number;
  /** Stands in for the global fetch in tests. */
  fetch?: typeof fetch;
}

/** Prometheus could not be reached, refused the query, or answered with something that is not its API. */
export class PrometheusError extends Error {
  override name = 'PrometheusError';
  constructor(
    message: string,
    /** The HTTP status, when Prometheus answered at all. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const sampleValue = z.tuple([z.number(), z.string()]);
const labels = z.record(z.string(), z.string());
const answer = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('success'),
    data: z.discriminatedUnion('resultType', [
      z.object({ resultType: z.literal('vector'), result: z.array(z.object({ metric: labels, value: sampleValue })) }),
      z.object({ resultType: z.literal('scalar'), result: sampleValue }),
      z.object({ resultType: z.literal('matrix'), result: z.array(z.object({ metric: labels, values: z.array(sampleValue) })) }),
      z.object({ resultType: z.literal('string'), result: sampleValue }),
    ]),
  }),
  z.object({ status: z.literal('error'), errorType: z.string().optional(), error: z.string().optional() }),
]);
type Data = Extract<z.infer<typeof answer>, { status: 'success' }>['data'];

export class PrometheusApi {
  private readonly base: URL;
  private readonly shown: string;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  /** @param url Prometheus's base URL, e.g. `http://prometheus:9090`; user and password in it become basic auth. */
  constructor(url: string, options: PrometheusApiOptions = {}) {
    const parsed = parseBaseUrl(url);
    this.authorization = parsed.username
      ? `Basic ${Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`).toString('base64')}`
      : undefined;
    parsed.username = '';
    parsed.password = '';
    if (!parsed.pathname.endsWith('/')) parsed.pathname += '/';
    this.base = parsed;
    this.shown = parsed.toString();
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.fetch = options.fetch ?? fetch;
  }

  /** The instant vector `promql` evaluates to, now or at `at`; an empty answer is an empty list. */
  async instantQuery(promql: string, at?: Date): Promise<VectorSample[]> {
    const data = await this.query('api/v1/query', { query: promql, ...(at ? { time: seconds(at) } : {}) });
    switch (data.resultType) {
      case 'vector':
        return data.result.map(({ metric, value }) => ({ labels: metric, ...point(value) }));
      case 'scalar':
        return [{ labels: {}, ...point(data.result) }];
      default:
        throw new PrometheusError(`${this.shown}: ${JSON.stringify(promql)} answered a ${data.resultType}, not an instant vector`);
    }
  }

  /** The series `promql` evaluates to from `start` to `end`, a point every `stepSeconds`. */
  async rangeQuery(promql: string, range: { start: Date; end: Date; stepSeconds: number }): Promise<RangeSeries[]> {
    const data = await this.query('api/v1/query_range', {
      query: promql,
      start: seconds(range.start),
      end: seconds(range.end),
      step: String(range.stepSeconds),
    });
    if (data.resultType !== 'matrix') throw new PrometheusError(`${this.shown}: ${JSON.stringify(promql)} answered a ${data.resultType}, not a range`);
    return data.result.map(({ metric, values }) => ({ labels: metric, points: values.map(point) }));
  }

  /** Sent as a form, so that a long query never meets a URL length limit. */
  private async query(path: string, parameters: Record<string, string>): Promise<Data> {
    const url = new URL(path, this.base);
    let response: Response;
    try {
      response = await this.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(this.authorization ? { authorization: this.authorization } : {}) },
        body: new URLSearchParams(parameters),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (error as Error).message;
      throw new PrometheusError(`${this.shown}${path}: ${reason}`, undefined, { cause: error });
    }
    const text = await response.text();
    const parsed = answer.safeParse(parseJson(text));
    if (!parsed.success) {
      throw new PrometheusError(`${this.shown}${path} answered ${response.status} with a body that is not the Prometheus API: ${text.slice(0, 200)}`, response.status);
    }
    const body = parsed.data;
    if (body.status === 'error') {
      throw new PrometheusError(`${this.shown}${path} refused the query with ${response.status} (${body.errorType ?? 'error'}): ${body.error ?? 'no reason given'}`, response.status);
    }
    if (!response.ok) throw new PrometheusError(`${this.shown}${path} answered ${response.status}`, response.status);
    return body.data;
  }
}

/** Prometheus writes non-finite values as "NaN", "+Inf" and "-Inf", which `Number` does not all read. */
export function sampleNumber(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return text === 'NaN' ? NaN : Number(text);
}

function point([at, value]: z.infer<typeof sampleValue>): { at: Date; value: number } {
  return { at: new Date(at * 1000), value: sampleNumber(value) };
}

function seconds(at: Date): string {
  return (at.getTime() / 1000).toFixed(3);
}

function parseBaseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PrometheusError('the Prometheus URL is not a URL: expected something like http://prometheus:9090');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new PrometheusError(`the Prometheus URL must be http or https, not ${parsed.protocol.slice(0, -1)}`);
  }
  return parsed;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
