// Tracing through the log: one scale request through the HTTP API is one trace, from the request span through the
// command and its append to the projectors and the cluster reactor's apply on the simulated cluster; across two
// Sentinels on one database as well; and with tracing off, no span records and no traceparent is invented.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import { pino } from 'pino';
import { contextFrom, inSpan, traceparentOf } from '../../adapters/tracing.js';
import { loadConfig } from '../../app/config.js';
import { SIMULATED_CLUSTER_ID } from '../../app/reactors.js';
import { startSentinel, type RunningSentinel } from '../../app/sentinel.js';
import { recordSpansInMemory, tracingRequested, type SpansInMemory } from '../../app/tracing.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { reactionTo } from '../../reactors/reaction-context.js';
import { eventually } from '../support/eventually.js';
import { createScratchDatabase, SKIP_POSTGRES_REASON, TEST_DATABASE_URL, type ScratchDatabase } from '../support/postgres.js';
import { JWT_SECRET, startTestApi, type TestApi } from '../support/sentinel-api.js';

const RUN = randomBytes(3).toString('hex');
const PATIENCE_MS = 20_000;
const SCALE_ROUTE = 'POST /api/v1/deployments/:id/scale';
const CLUSTER_REACTOR = `cluster-${SIMULATED_CLUSTER_ID}`;
/** A caller's trace context, as a client sends it. */
const CALLER_TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

let deployments = 0;

/** A workload deployed on the simulated cluster, once the cluster reactor has seen it become available. */
async function availableDeployment(api: TestApi): Promise<string> {
  deployments += 1;
  const workload = await api.request<{ id: string }>('post', '/workloads', {
    body: {
      name: `traced-${deployments}`,
      namespace: `tracing-${RUN}`,
      type: 'inference',
      image: 'registry.example/tracing/server:1',
      resources: { cpu: '100m', memory: '128Mi' },
    },
  });
  expect(workload.status, JSON.stringify(workload.body)).to.equal(201);
  const deployment = await api.request<{ id: string }>('post', '/deployments', { body: { workloadId: workload.body.id, clusterId: SIMULATED_CLUSTER_ID, replicas: 1 } });
  expect(deployment.status, JSON.stringify(deployment.body)).to.equal(202);
  const id = deployment.body.id;
  await eventually(`deployment ${id} available`, () => api.stream(`deployment-${id}`), (events) => events.some((event) => event.type === 'DeploymentAvailable'), PATIENCE_MS);
  return id;
}

/**
 * Scales the deployment and waits until the cluster reactor has applied the scale and seen its rollout through: the
 * scale's events, the apply's and the outcome's (the deployment available again, observed through the watch).
 */
async function scaled(api: TestApi, deploymentId: string, headers: Record<string, string> = {}): Promise<{ scale: RecordedEvent; applied: RecordedEvent; available: RecordedEvent }> {
  const before = (await api.stream(`deployment-${deploymentId}`)).length;
  const reply = await api.request('post', `/deployments/${deploymentId}/scale`, { body: { replicas: 2 }, headers });
  expect(reply.status, JSON.stringify(reply.body)).to.equal(202);
  const events = await eventually(
    `the scale of ${deploymentId} applied and available`,
    async () => (await api.stream(`deployment-${deploymentId}`)).slice(before),
    (after) => after.some((event) => event.type === 'DeploymentApplied') && after.some((event) => event.type === 'DeploymentAvailable'),
    PATIENCE_MS,
  );
  const find = (type: string) => events.find((event) => event.type === type)!;
  return { scale: find('DeploymentScaled'), applied: find('DeploymentApplied'), available: find('DeploymentAvailable') };
}

/**
 * The outcome of the scale, observed through the cluster's watch rather than in the reaction, continues the scale's
 * trace: its event names a `command RecordAvailable` span of that trace, a child of the scale's command.
 */
async function outcomeInTrace(spans: SpansInMemory, traceId: string, command: ReadableSpan, available: RecordedEvent): Promise<void> {
  const { traceId: outcomeTrace, spanId: recordedBy } = parsed(available.metadata.traceparent);
  expect(outcomeTrace, 'the trace the outcome event names').to.equal(traceId);
  const recorded = await spanOf(spans, traceId, 'the command recording the outcome', (span) => idOf(span) === recordedBy);
  expect(recorded.name).to.equal('command RecordAvailable');
  expect(parentOf(recorded)).to.equal(idOf(command));
}

const parsed = (traceparent: string | undefined) => {
  const [, traceId, spanId] = (traceparent ?? '').split('-');
  return { traceId, spanId };
};
const idOf = (span: ReadableSpan) => span.spanContext().spanId;
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

/** The spans of one trace recorded so far. */
function traceOf(spans: SpansInMemory, traceId: string): ReadableSpan[] {
  return spans.exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
}

/** Waits for the span of the trace that `match` picks, which may end after the request has been answered. */
function spanOf(spans: SpansInMemory, traceId: string, what: string, match: (span: ReadableSpan) => boolean): Promise<ReadableSpan> {
  return eventually(what, async () => traceOf(spans, traceId).find(match), (span) => span !== undefined, PATIENCE_MS) as Promise<ReadableSpan>;
}

/** The request's span, its command's and that command's append: the write path of one request. */
async function writePath(spans: SpansInMemory, scale: RecordedEvent) {
  const { traceId, spanId } = parsed(scale.metadata.traceparent);
  const command = await spanOf(spans, traceId!, 'the command span the scale carries', (span) => idOf(span) === spanId);
  expect(command.name).to.equal('command ScaleDeployment');
  const server = await spanOf(spans, traceId!, 'the request span', (span) => idOf(span) === parentOf(command));
  expect(server.name).to.equal(SCALE_ROUTE);
  const append = await spanOf(spans, traceId!, 'the append span', (span) => span.name === 'append deployment' && parentOf(span) === idOf(command));
  return { traceId: traceId!, server, command, append };
}

describe('tracing through the log', function () {
  this.timeout(120_000);

  describe('in one process: api, projector and reactor on the simulated cluster', () => {
    let api: TestApi;

    before(async () => {
      api = await startTestApi(undefined, { SENTINEL_ROLE: 'api,projector,reactor', SENTINEL_CLUSTER_SIMULATOR: 'on' });
    });
    after(async () => api?.stop());

    describe('with tracing off (no OTEL_* variables)', () => {
      it('starts tracing only when an exporter or an OTLP endpoint is asked for', () => {
        expect(tracingRequested({})).to.equal(false);
        expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).to.equal(true);
        expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).to.equal(true);
        expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'console' })).to.equal(true);
        expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).to.equal(false);
        expect(tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).to.equal(false);
      });

      it("uses the API's no-op spans: nothing records, and a span only carries on the parent it was given", async () => {
        const alone = await inSpan('alone', {}, async (span) => ({ recording: span.isRecording(), traceparent: traceparentOf(span) }));
        expect(alone).to.deep.equal({ recording: false, traceparent: undefined });
        const continued = await inSpan('continued', { parent: contextFrom(CALLER_TRACEPARENT) }, async (span) => ({ recording: span.isRecording(), traceparent: traceparentOf(span) }));
        expect(continued).to.deep.equal({ recording: false, traceparent: CALLER_TRACEPARENT });
      });

      it('invents no traceparent: a request without one appends events without one, and so does the reaction to them', async () => {
        const { scale, applied, available } = await scaled(api, await availableDeployment(api));
        expect(scale.metadata).not.to.have.property('traceparent');
        expect(applied.metadata).not.to.have.property('traceparent');
        expect(available.metadata).not.to.have.property('traceparent');
        expect(reactionTo('test', scale, 'step')).not.to.have.property('traceparent');
      });

      it("carries a caller's traceparent through unchanged, to the reaction's and the outcome's events as well", async () => {
        const { scale, applied, available } = await scaled(api, await availableDeployment(api), { traceparent: CALLER_TRACEPARENT });
        expect(scale.metadata.traceparent).to.equal(CALLER_TRACEPARENT);
        expect(applied.metadata.traceparent).to.equal(CALLER_TRACEPARENT);
        expect(available.metadata.traceparent).to.equal(CALLER_TRACEPARENT);
      });
    });

    describe('with spans recorded in memory', () => {
      let spans: SpansInMemory;
      before(async () => (spans = await recordSpansInMemory()));
      after(async () => spans?.stop());

      it('follows one scale request to the cluster in one trace: request, command, append, projection, reaction, apply, outcome', async () => {
        const deploymentId = await availableDeployment(api);
        const { scale, applied, available } = await scaled(api, deploymentId, { traceparent: CALLER_TRACEPARENT });
        const { traceId, server, command, append } = await writePath(spans, scale);

        // The request continues the caller's trace; the command decided under it, and judged by policy, appended.
        expect(traceId).to.equal(parsed(CALLER_TRACEPARENT).traceId);
        expect(parentOf(server)).to.equal(parsed(CALLER_TRACEPARENT).spanId);
        expect(server.attributes['http.response.status_code']).to.equal(202);
        expect(command.attributes['sentinel.command.outcome']).to.equal('ok');
        await spanOf(spans, traceId, 'the policy span', (span) => span.name === 'policy ScaleDeployment' && parentOf(span) === idOf(command));
        expect(append.attributes['sentinel.stream']).to.equal(`deployment-${deploymentId}`);

        // A projector applied the scale's events under the command that appended them. Every projection in the
        // trace hangs off a span of it: a command's (the reactor's too), or an append's (the admission ledger's events).
        await spanOf(spans, traceId, 'a projection of the scale', (span) => span.name.startsWith('project ') && parentOf(span) === idOf(command));
        await eventually(
          'every projection in the trace under a span of the trace',
          async () => {
            const ids = new Map(traceOf(spans, traceId).map((span) => [idOf(span), span.name]));
            return traceOf(spans, traceId)
              .filter((span) => span.name.startsWith('project '))
              .map((projection) => ({ projection: projection.name, parent: ids.get(parentOf(projection)!) ?? 'none in the trace' }));
          },
          (projections) => projections.every(({ parent }) => /^(command|append) /.test(parent)),
          PATIENCE_MS,
        );

        // The cluster reactor reacted to the scale under the same command, applied it on the cluster inside its
        // reaction, and recorded the outcome with a command of its own under the reaction.
        const reaction = await spanOf(spans, traceId, 'the cluster reactor reacting to the scale', (span) =>
          span.name === 'react DeploymentScaled' && span.attributes['sentinel.reactor'] === CLUSTER_REACTOR,
        );
        expect(parentOf(reaction)).to.equal(idOf(command));
        expect(reaction.attributes['sentinel.event.id']).to.equal(scale.id);
        const apply = await spanOf(spans, traceId, 'the apply on the cluster', (span) => span.name === 'kubernetes apply' && parentOf(span) === idOf(reaction));
        expect(String(apply.attributes['sentinel.kubernetes.call'])).to.match(/^apply Deployment /);
        const { traceId: appliedTrace, spanId: appliedBy } = parsed(applied.metadata.traceparent);
        expect(appliedTrace).to.equal(traceId);
        const recorded = await spanOf(spans, traceId, 'the command recording the apply', (span) => idOf(span) === appliedBy);
        expect(recorded.name).to.equal('command RecordApplied');
        expect(parentOf(recorded)).to.equal(idOf(reaction));

        // The rollout's outcome, seen later through the watch, is recorded in the same trace.
        await outcomeInTrace(spans, traceId, command, available);
      });

      it('starts a trace of its own for a request that sent no traceparent', async () => {
        const { scale } = await scaled(api, await availableDeployment(api));
        const { server } = await writePath(spans, scale);
        expect(server.parentSpanContext).to.equal(undefined);
      });
    });
  });

  describe('across processes: an api and a reactor on one PostgreSQL database', () => {
    let scratch: ScratchDatabase | undefined;
    let dataDir: string | undefined;
    let reactor: RunningSentinel | undefined;
    let api: TestApi | undefined;
    let spans: SpansInMemory | undefined;

    before(async function () {
      if (!TEST_DATABASE_URL) {
        console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
        return this.skip();
      }
      spans = await recordSpansInMemory();
      scratch = await createScratchDatabase();
      dataDir = await mkdtemp(path.join(tmpdir(), 'sentinel-tracing-'));
      // The reactor first: it registers the simulated cluster the api's deployment names. The two share nothing but
      // the database, so what links their spans is the traceparent the api's events carry.
      reactor = await startSentinel(
        loadConfig({
          SENTINEL_ROLE: 'reactor',
          DATABASE_URL: scratch.url,
          SENTINEL_CLUSTER_SIMULATOR: 'on',
          SENTINEL_DATA_DIR: dataDir,
          SENTINEL_JWT_SECRET: JWT_SECRET,
          HOST: '127.0.0.1',
          PORT: '0',
          TELEMETRY_GRPC_PORT: '0',
          INFRAMIND_GRPC_PORT: '0',
          LOG_LEVEL: 'silent',
        }),
        pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
      );
      api = await startTestApi(scratch.url, { SENTINEL_ROLE: 'api' });
    });

    after(async () => {
      await api?.stop();
      await reactor?.stop();
      await spans?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
      await scratch?.drop();
    });

    it("continues the api's trace in the reactor: the reaction, its apply and the outcome hang off the api's command", async () => {
      const { scale, available } = await scaled(api!, await availableDeployment(api!));
      const { traceId, command } = await writePath(spans!, scale);
      const reaction = await spanOf(spans!, traceId, "the reactor's reaction to the scale", (span) =>
        span.name === 'react DeploymentScaled' && span.attributes['sentinel.reactor'] === CLUSTER_REACTOR,
      );
      expect(parentOf(reaction)).to.equal(idOf(command));
      await spanOf(spans!, traceId, 'the apply on the cluster', (span) => span.name === 'kubernetes apply' && parentOf(span) === idOf(reaction));
      await outcomeInTrace(spans!, traceId, command, available);
    });
  });
});
