// Rollout analysis: given a template and the measurements so far, when a reading comes, then these outcomes and this
// verdict; and the runner and providers that take the readings.
import { expect } from 'chai';
import { RuleViolation } from '../../domain/decider.js';
import {
  analysisEvents,
  analysisTemplate,
  decodeMeasuredValue,
  durationMs,
  encodeMeasuredValue,
  evolveAnalysisRun,
  initialAnalysisRun,
  judgeMeasurement,
  nextMeasurementAt,
  recordMeasurement,
  renderQuery,
  startAnalysisRun,
  type AnalysisEvent,
  type AnalysisMetric,
  type AnalysisRun,
  type Reading,
} from '../../domain/analysis/analysis.js';
import { runAnalysis, type AnalysisScheduler, type MetricProvider } from '../../reactors/analysis-runner.js';
import { createPrometheusMetricProvider } from '../../reactors/prometheus-metric-provider.js';
import { createTelemetryMetricProvider, parseTelemetrySelector } from '../../reactors/telemetry-metric-provider.js';
import type { LatestSample } from '../../domain/telemetry.js';

const RUN = '3f1c9a52-6a0e-4c55-9a49-2b7d4f0a1c01';
const START = new Date('2026-01-31T12:00:00Z');

function metric(overrides: Partial<Record<keyof AnalysisMetric, unknown>> = {}): AnalysisMetric {
  return analysisTemplate.parse({
    name: 't',
    metrics: [{ name: 'latency', provider: 'prometheus', query: 'q', interval: '1m', count: 3, successCondition: 'result < 0.5', ...overrides }],
  }).metrics[0]!;
}

/** Given a run of these metrics and these readings already judged, when the next readings come, then these events. */
function given(metrics: Partial<Record<keyof AnalysisMetric, unknown>>[] = [{}]) {
  const template = { name: 't', metrics: metrics.map((m, i) => ({ name: `m${i}`, provider: 'prometheus', query: 'q', interval: '1m', count: 3, successCondition: 'result < 0.5', ...m })) };
  let run: AnalysisRun = evolveAnalysisRun(initialAnalysisRun, startAnalysisRun({ runId: RUN, template, args: {}, at: START }));
  let minute = 0;
  const events: AnalysisEvent[] = [];
  const when = (metricIndex: number, reading: Reading) => {
    minute += 1;
    const produced = recordMeasurement(run, { metric: `m${metricIndex}`, reading, at: new Date(START.getTime() + minute * 60_000) });
    for (const event of produced) run = evolveAnalysisRun(run, event);
    events.push(...produced);
    return produced;
  };
  return {
    when,
    /** Readings of metric 0, one after another. */
    readings: (...values: Reading[]) => values.flatMap((r) => when(0, r)),
    get run() {
      return run;
    },
    events,
  };
}

const outcomes = (events: AnalysisEvent[]) => events.flatMap((e) => (e.type === 'AnalysisMeasured' ? [e.data.outcome] : []));
const verdict = (events: AnalysisEvent[]) => events.flatMap((e) => (e.type === 'AnalysisRunCompleted' ? [e.data.verdict] : []))[0];

describe('rollout analysis', () => {
  describe('judging one measurement', () => {
    it('passes a reading that meets the success condition, fails one that does not', () => {
      expect(judgeMeasurement(metric(), { value: 0.2 }).outcome).to.equal('successful');
      expect(judgeMeasurement(metric(), { value: 0.7 })).to.deep.equal({ outcome: 'failed', message: 'success condition `result < 0.5` does not hold' });
    });
    it('is inconclusive, never a pass, for missing, empty or NaN readings', () => {
      const lenient = metric({ successCondition: 'isNaN(result) || len(result) == 0 || result < 0.5' });
      for (const value of [undefined, [], Number.NaN, [0.1, Number.NaN]]) {
        expect(judgeMeasurement(lenient, { value }), String(value)).to.deep.equal({ outcome: 'inconclusive', message: 'result is missing, empty or NaN' });
      }
    });
    it('is inconclusive when the baseline is unusable', () => {
      const compared = metric({ successCondition: 'result >= baseline * 0.9', baselineQuery: 'b' });
      expect(judgeMeasurement(compared, { value: 100, baseline: undefined }).message).to.equal('baseline is missing, empty or NaN');
      expect(judgeMeasurement(compared, { value: 100, baseline: 105 }).outcome).to.equal('successful');
    });
    it('lets a failure condition that holds win, even over missing data', () => {
      const strict = metric({ successCondition: 'result < 0.5', failureCondition: 'len(result) == 0 || result > 0.8' });
      expect(judgeMeasurement(strict, { value: [] }).outcome).to.equal('failed');
      expect(judgeMeasurement(strict, { value: 0.9 }).outcome).to.equal('failed');
      expect(judgeMeasurement(strict, { value: 0.6 })).to.deep.equal({ outcome: 'inconclusive', message: 'neither the success nor the failure condition holds' });
      expect(judgeMeasurement(strict, { value: 0.1 }).outcome).to.equal('successful');
    });
    it('makes a provider failure or a condition of the wrong type an error', () => {
      expect(judgeMeasurement(metric(), { error: 'connection refused' })).to.deep.equal({ outcome: 'error', message: 'connection refused' });
      expect(judgeMeasurement(metric(), { value: [0.1, 0.2] }).outcome).to.equal('error');
      expect(judgeMeasurement(metric({ successCondition: 'result + 1' }), { value: 0.1 }).message).to.match(/must be true or false/);
    });
  });

  describe('a run', () => {
    it('succeeds once every metric has count measurements within its limits', () => {
      const run = given([{}, { count: 1 }]);
      expect(run.when(0, { value: 0.1 })).to.have.length(1);
      run.when(1, { value: 0.1 });
      run.when(0, { value: 0.1 });
      const last = run.when(0, { value: 0.2 });
      expect(verdict(last)).to.equal('successful');
      const completed = last[1]!;
      expect(completed).to.deep.include({ type: 'AnalysisRunCompleted' });
      expect(completed.data).to.deep.include({ reason: 'every metric succeeded', completedAt: '2026-01-31T12:04:00.000Z' });
      expect(run.run.status).to.equal('completed');
    });
    it('fails at the first failed measurement by default (failureLimit 0), ending the run early', () => {
      const run = given([{}, {}]);
      run.when(1, { value: 0.1 });
      const events = run.when(0, { value: 0.9 });
      expect(verdict(events)).to.equal('failed');
      expect(events[1]!.data).to.deep.include({ reason: 'm0: 1 failed measurements, more than failureLimit 0' });
      expect(() => run.when(1, { value: 0.1 })).to.throw(RuleViolation, /analysis run is completed/);
    });
    it('tolerates failures up to failureLimit and still succeeds at count', () => {
      const run = given([{ failureLimit: 1 }]);
      expect(outcomes(run.readings({ value: 0.9 }, { value: 0.1 }))).to.deep.equal(['failed', 'successful']);
      expect(verdict(run.readings({ value: 0.1 }))).to.equal('successful');
    });
    it('fails when failures exceed failureLimit', () => {
      const run = given([{ failureLimit: 1 }]);
      expect(verdict(run.readings({ value: 0.9 }, { value: 0.9 }))).to.equal('failed');
    });
    it('is inconclusive at the first missing reading by default (inconclusiveLimit 0)', () => {
      const run = given([{}, {}]);
      const events = run.readings({ value: undefined });
      expect(verdict(events)).to.equal('inconclusive');
      expect(events[1]!.data).to.deep.include({ reason: 'm0: 1 inconclusive measurements, more than inconclusiveLimit 0' });
    });
    it('tolerates inconclusive readings up to inconclusiveLimit, then is inconclusive', () => {
      const run = given([{ inconclusiveLimit: 2, count: 4 }]);
      expect(outcomes(run.readings({ value: Number.NaN }, { value: [] }))).to.deep.equal(['inconclusive', 'inconclusive']);
      expect(run.run.status).to.equal('running');
      expect(verdict(run.readings({ value: undefined }))).to.equal('inconclusive');
    });
    it('does not pass a metric whose measurements within the limits include no success', () => {
      const run = given([{ inconclusiveLimit: 1, failureLimit: 1, count: 2 }]);
      const events = run.readings({ value: Number.NaN }, { value: 0.9 });
      expect(verdict(events)).to.equal('inconclusive');
      expect(events.at(-1)!.data).to.deep.include({ reason: 'm0: none of 2 measurements succeeded' });
    });
    it('does not count errors towards count, and fails after more than consecutiveErrorLimit in a row', () => {
      const run = given([{ count: 1, consecutiveErrorLimit: 2 }]);
      expect(outcomes(run.readings({ error: 'timeout' }, { error: 'timeout' }))).to.deep.equal(['error', 'error']);
      expect(run.run.status).to.equal('running');
      const events = run.readings({ error: 'timeout' });
      expect(verdict(events)).to.equal('failed');
      expect(events[1]!.data).to.deep.include({ reason: 'm0: 3 errors in a row, more than consecutiveErrorLimit 2' });
    });
    it('resets the error streak on a usable reading', () => {
      const run = given([{ count: 2, consecutiveErrorLimit: 1 }]);
      run.readings({ error: 'x' }, { value: 0.1 }, { error: 'x' });
      expect(verdict(run.readings({ value: 0.1 }))).to.equal('successful');
    });
    it('takes the worst metric verdict: failed over inconclusive', () => {
      const run = given([{ inconclusiveLimit: 5 }, {}]);
      run.when(0, { value: undefined });
      expect(verdict(run.when(1, { value: 0.9 }))).to.equal('failed');
    });
    it('records readings, NaN included, in events that parse through their schema', () => {
      const run = given([{ inconclusiveLimit: 1 }]);
      const [measured] = run.readings({ value: [0.1, Number.NaN, Infinity] });
      expect(measured!.data).to.deep.include({ value: [0.1, 'NaN', '+Inf'], outcome: 'inconclusive' });
      const parsed = analysisEvents.parse(measured!.type, 1, JSON.parse(JSON.stringify(measured!.data)));
      expect(parsed).to.deep.equal(measured);
      expect(decodeMeasuredValue(encodeMeasuredValue([1, Number.NaN, -Infinity]))).to.deep.equal([1, Number.NaN, -Infinity]);
      expect(encodeMeasuredValue(undefined)).to.equal(null);
    });
    it('is due at the start, then an interval after each measurement, and never after its verdict', () => {
      const run = given([{ interval: '30s', count: 2 }]);
      expect(nextMeasurementAt(run.run, 'm0')).to.deep.equal(START);
      run.readings({ value: 0.1 });
      expect(nextMeasurementAt(run.run, 'm0')).to.deep.equal(new Date('2026-01-31T12:01:30Z'));
      run.readings({ value: 0.1 });
      expect(nextMeasurementAt(run.run, 'm0')).to.equal(undefined);
    });
  });

  describe('templates and arguments', () => {
    const base = { name: 'latency', provider: 'prometheus', query: 'q', interval: '1m', count: 1, successCondition: 'result < 1' };
    const issues = (metricBody: object) => {
      const parsed = analysisTemplate.safeParse({ name: 't', metrics: [metricBody] });
      return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    it('rejects conditions that do not parse or read unknown names, naming them', () => {
      expect(issues({ ...base, successCondition: 'result <' })).to.deep.equal(['metrics.0.successCondition: expression ends too early at position 8 of `result <`']);
      expect(issues({ ...base, failureCondition: 'latency > 1' })[0]).to.match(/reads unknown names latency/);
      expect(issues({ ...base, successCondition: 'result > baseline' })).to.deep.equal(['metrics.0.baselineQuery: a condition reads baseline, so a baselineQuery is needed']);
    });
    it('rejects bad intervals, counts, limits and duplicate metric names', () => {
      expect(issues({ ...base, interval: 'soon' })).to.have.length(1);
      expect(issues({ ...base, count: 0 })).to.have.length(1);
      expect(issues({ ...base, failureLimit: -1 })).to.have.length(1);
      expect(analysisTemplate.safeParse({ name: 't', metrics: [base, base] }).success).to.equal(false);
    });
    it('reads durations as Argo writes them', () => {
      expect(durationMs('1m30s')).to.equal(90_000);
      expect(durationMs('500ms')).to.equal(500);
      expect(() => durationMs('1d')).to.throw(RangeError, /"1d" is not a duration/);
    });
    it('fills arguments into queries, escaped, and refuses to start without them', () => {
      expect(renderQuery('up{pod=~"{{args.pods}}"}', { pods: 'a"b\\d' })).to.equal('up{pod=~"a\\"b\\\\d"}');
      const template = { name: 't', metrics: [{ ...base, query: 'up{namespace="{{ args.namespace }}"}' }] };
      expect(() => startAnalysisRun({ runId: RUN, template, args: {}, at: START })).to.throw(RuleViolation, /not given: namespace/);
      expect(() => startAnalysisRun({ runId: RUN, template: { name: 't', metrics: [] }, args: {}, at: START }))
        .to.throw(RuleViolation, 'the analysis template is not valid')
        .with.property('errors')
        .that.deep.equals([{ path: 'template.metrics', message: 'at least one metric' }]);
    });
  });

  describe('the runner', () => {
    /** Virtual time: waiting jumps the clock forward, so a run of many intervals takes no real time. */
    function virtualScheduler(start = START): AnalysisScheduler & { waits: Date[] } {
      let now = start.getTime();
      const waits: Date[] = [];
      return {
        waits,
        now: () => new Date(now),
        waitUntil: async (at) => {
          waits.push(at);
          now = Math.max(now, at.getTime());
        },
      };
    }
    const template = {
      name: 't',
      metrics: [
        { name: 'latency', provider: 'prometheus', query: 'p99{ns="{{args.namespace}}"}', interval: '1m', count: 3, successCondition: 'result < 0.5' },
        { name: 'headroom', provider: 'telemetry', query: 'headroom', interval: '2m', count: 2, successCondition: 'min(result) >= 0.05' },
      ],
    };
    const scripted = (values: (number | number[] | undefined | Error)[]): MetricProvider & { queries: string[] } => {
      const queries: string[] = [];
      return {
        queries,
        measure: async (query) => {
          queries.push(query);
          const next = values.shift();
          if (next instanceof Error) throw next;
          return { value: next };
        },
      };
    };

    it('measures each metric at its interval until the verdict, reporting every event in order', async () => {
      const prometheus = scripted([0.1, 0.2, 0.3]);
      const telemetry = scripted([[0.5, 0.4], [0.3]]);
      const scheduler = virtualScheduler();
      const reported: AnalysisEvent[] = [startAnalysisRun({ runId: RUN, template, args: { namespace: 'serving' }, at: START })];
      const result = await runAnalysis(reported, { providers: { prometheus, telemetry }, scheduler, report: async (e) => void reported.push(e) });
      expect(result).to.equal('successful');
      expect(prometheus.queries).to.deep.equal(['p99{ns="serving"}', 'p99{ns="serving"}', 'p99{ns="serving"}']);
      const measured = reported.flatMap((e) => (e.type === 'AnalysisMeasured' ? [`${e.data.metric}@${e.data.measuredAt.slice(11, 16)}`] : []));
      expect(measured).to.deep.equal(['latency@12:00', 'headroom@12:00', 'latency@12:01', 'latency@12:02', 'headroom@12:02']);
      expect(reported.at(-1)!.type).to.equal('AnalysisRunCompleted');
    });
    it('resumes from recorded events after a restart, measuring only what is left', async () => {
      const prometheus = scripted([0.1, 0.1]);
      const telemetry = scripted([[0.5], [0.5]]);
      const events: AnalysisEvent[] = [startAnalysisRun({ runId: RUN, template, args: { namespace: 'serving' }, at: START })];
      // The first process took one latency measurement and stopped.
      const first = recordMeasurement(events.reduce(evolveAnalysisRun, initialAnalysisRun), { metric: 'latency', reading: { value: 0.1 }, at: START });
      events.push(...first);
      const scheduler = virtualScheduler(new Date('2026-01-31T12:00:10Z'));
      const result = await runAnalysis(events, { providers: { prometheus, telemetry }, scheduler, report: async (e) => void events.push(e) });
      expect(result).to.equal('successful');
      expect(prometheus.queries).to.have.length(2);
      expect(scheduler.waits.map((d) => d.toISOString().slice(11, 19))).to.deep.equal(['12:00:00', '12:01:00', '12:02:00', '12:02:10']);
    });
    it('turns a provider failure into an error measurement, and fails after the error limit', async () => {
      const failing = scripted([new Error('connection refused'), new Error('connection refused')]);
      const events: AnalysisEvent[] = [
        startAnalysisRun({ runId: RUN, template: { name: 't', metrics: [{ ...template.metrics[1]!, consecutiveErrorLimit: 1 }] }, args: {}, at: START }),
      ];
      const result = await runAnalysis(events, { providers: { telemetry: failing }, scheduler: virtualScheduler(), report: async (e) => void events.push(e) });
      expect(result).to.equal('failed');
      expect(events[1]!.data).to.deep.include({ outcome: 'error', message: 'telemetry query of headroom failed: connection refused', value: null });
    });
    it('refuses to run without a provider a metric needs', async () => {
      const events = [startAnalysisRun({ runId: RUN, template, args: { namespace: 'serving' }, at: START })];
      await runAnalysis(events, { providers: { prometheus: scripted([]) }, scheduler: virtualScheduler(), report: async () => {} }).then(
        () => expect.fail('ran'),
        (error: Error) => expect(error.message).to.equal(`analysis run ${RUN}: metric headroom needs the telemetry provider, which is not configured`),
      );
    });
    it('stops when its signal is aborted', async () => {
      const controller = new AbortController();
      const prometheus: MetricProvider = {
        measure: async () => {
          controller.abort(new Error('rollout aborted'));
          return { value: 0.1 };
        },
      };
      const events = [startAnalysisRun({ runId: RUN, template: { name: 't', metrics: [template.metrics[0]!] }, args: { namespace: 'n' }, at: START })];
      const reported: AnalysisEvent[] = [];
      const scheduler = virtualScheduler();
      await runAnalysis(events, { providers: { prometheus }, scheduler, signal: controller.signal, report: async (e) => void reported.push(e) }).then(
        () => expect.fail('ran'),
        (error: Error) => expect(error.message).to.equal('rollout aborted'),
      );
      expect(outcomes(reported)).to.deep.equal(['successful']);
    });
  });

  describe('providers', () => {
    it('Prometheus: nothing is missing, one series a number, several a list ordered by labels', async () => {
      const answers = [[], [{ labels: {}, value: 0.4 }], [{ labels: { pod: 'b' }, value: 2 }, { labels: { pod: 'a' }, value: 1 }]];
      const provider = createPrometheusMetricProvider(async () => answers.shift()!);
      const context = { runId: RUN, metric: 'm', args: {}, at: START };
      expect(await provider.measure('q', context)).to.deep.equal({ value: undefined });
      expect(await provider.measure('q', context)).to.deep.equal({ value: 0.4 });
      expect(await provider.measure('q', context)).to.deep.equal({ value: [1, 2] });
    });

    describe('telemetry', () => {
      const row = (nodeName: string, metricName: string, value: number, labels: Record<string, string> = { UUID: `GPU-${nodeName}` }): LatestSample => ({
        clusterId: 'c1',
        nodeName,
        metric: metricName,
        labels,
        value,
        time: START,
      });
      const rows = [
        row('gpu-1', 'DCGM_FI_DEV_FB_USED', 60_000),
        row('gpu-1', 'DCGM_FI_DEV_FB_FREE', 20_000),
        row('gpu-2', 'DCGM_FI_DEV_FB_USED', 78_000),
        row('gpu-2', 'DCGM_FI_DEV_FB_FREE', 2_000),
        row('gpu-3', 'DCGM_FI_DEV_FB_USED', 1_000),
        row('gpu-1', 'DCGM_FI_DEV_GPU_UTIL', 90),
      ];
      const asked: unknown[] = [];
      const provider = createTelemetryMetricProvider({
        maxAgeMs: 60_000,
        samples: {
          latestSamples: async (query) => {
            asked.push(query);
            return rows.filter((r) => r.metric.startsWith(query.metricPrefix ?? '') && (query.nodeName === undefined || r.nodeName === query.nodeName));
          },
        },
      });
      const context = { runId: RUN, metric: 'm', args: {}, at: START };

      it('derives GPU memory headroom per GPU that reported both numbers, on the nodes selected', async () => {
        expect(await provider.measure('sentinel:gpu_memory_headroom_ratio{cluster="c1",node=~"gpu-.*"}', context)).to.deep.equal({ value: [0.25, 0.025] });
        expect(asked.at(-1)).to.deep.equal({ clusterId: 'c1', metricPrefix: 'DCGM_FI_DEV_FB_', since: new Date('2026-01-31T11:59:00Z') });
        expect(await provider.measure('sentinel:gpu_memory_headroom_ratio{node!="gpu-2"}', context)).to.deep.equal({ value: 0.25 });
      });
      it('reads a plain metric, and nothing found is missing', async () => {
        expect(await provider.measure('DCGM_FI_DEV_GPU_UTIL{node="gpu-1"}', context)).to.deep.equal({ value: 90 });
        expect(asked.at(-1)).to.deep.include({ nodeName: 'gpu-1', metricPrefix: 'DCGM_FI_DEV_GPU_UTIL' });
        expect(await provider.measure('DCGM_FI_DEV_GPU_UTIL{node="gpu-9"}', context)).to.deep.equal({ value: undefined });
      });
      it('parses selectors with escapes, and names what is wrong with one', () => {
        expect(parseTelemetrySelector('m{a="x\\"y", b!~"z"}')).to.deep.equal({
          metric: 'm',
          matchers: [
            { label: 'a', operator: '=', value: 'x"y' },
            { label: 'b', operator: '!~', value: 'z' },
          ],
        });
        expect(() => parseTelemetrySelector('m{a=x}')).to.throw(/expected label="value" at position 2/);
        expect(() => parseTelemetrySelector('{a="x"}')).to.throw(/must start with a metric name/);
        expect(() => parseTelemetrySelector('m{a="x"} + 1')).to.throw(/unexpected `\+ 1` after the selector/);
      });
    });
  });
});
