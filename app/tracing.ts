// The process's tracing: the OpenTelemetry SDK, configured by the standard OTEL_* variables (OTLP exporter, sampler,
// propagators, resource), started only when they ask for an exporter. Without them the API's no-op tracer stays,
// and the spans Sentinel makes (adapters/tracing.ts) cost next to nothing. The SDK is loaded only when it starts: it
// and its exporters take a second and tens of megabytes to load, which a process without tracing does not pay.
import type { IncomingMessage } from 'node:http';
import { context, propagation, ProxyTracerProvider, trace } from '@opentelemetry/api';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import type { Resource } from '@opentelemetry/resources';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';

/**
 * Whether the environment asks for traces: OTEL_TRACES_EXPORTER names an exporter other than `none`, or an OTLP
 * endpoint is given (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). OTEL_SDK_DISABLED=true wins.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return false;
  const exporters = (env['OTEL_TRACES_EXPORTER'] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
  if (exporters.length > 0) return !exporters.includes('none');
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT']?.trim() || env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']?.trim());
}

/** Service `sentinel` with the roles this process runs; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it. */
async function sentinelResource(roles: readonly string[]): Promise<Resource> {
  const [{ defaultResource, resourceFromAttributes }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  return defaultResource().merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'sentinel', 'sentinel.role': roles.join(',') }));
}

/** Probes and scrapes come every few seconds and belong to no change anyone follows. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The libraries traced for Sentinel. Database queries and outgoing requests only inside a trace: the projectors' and
 * leases' polling would otherwise start a trace of its own every few milliseconds.
 */
async function instrumentations(): Promise<Instrumentation[]> {
  const [{ HttpInstrumentation }, { PgInstrumentation }, { GrpcInstrumentation }] = await Promise.all([
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-pg'),
    import('@opentelemetry/instrumentation-grpc'),
  ]);
  return [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (request: IncomingMessage) => UNTRACED_PATHS.has((request.url ?? '').split('?')[0]!),
      requireParentforOutgoingSpans: true,
    }),
    new PgInstrumentation({ requireParentSpan: true }),
    new GrpcInstrumentation(),
  ];
}

let sdk: Promise<NodeSDK> | undefined;

async function startSdk(roles: readonly string[]): Promise<NodeSDK> {
  const [{ NodeSDK }, resource, instrumented] = await Promise.all([import('@opentelemetry/sdk-node'), sentinelResource(roles), instrumentations()]);
  const started = new NodeSDK({ resource, instrumentations: instrumented });
  started.start();
  return started;
}

/**
 * Starts the SDK when the environment asks for it, once per process: a Sentinel started later in the same process
 * shares it. Answers whether tracing is on. The instrumentations patch a library when it is loaded after this: the
 * preload (tracing-preload.ts) starts it before anything is loaded; started with Sentinel, it sees pg's client (knex
 * loads it when the database opens) but not http or gRPC, which Sentinel's own spans then stand in for.
 */
export async function installTracing(roles: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (!sdk) {
    if (!tracingRequested(env)) return false;
    sdk = startSdk(roles);
  }
  await sdk;
  return true;
}

export interface Tracing {
  enabled: boolean;
  /** Sends the spans still buffered. The SDK stays for the life of the process. */
  flush(): Promise<void>;
}

/** Tracing for a Sentinel: on when the environment asks for it (see `installTracing`), the no-op tracer otherwise. */
export async function startTracing(roles: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (!(await installTracing(roles, env))) return { enabled: false, flush: async () => undefined };
  return { enabled: true, flush: flushSpans };
}

/** Sends the spans the SDK's processors still hold; its provider sits behind the API's proxy. */
async function flushSpans(): Promise<void> {
  const global = trace.getTracerProvider();
  const provider: object = global instanceof ProxyTracerProvider ? global.getDelegate() : global;
  if ('forceFlush' in provider && typeof provider.forceFlush === 'function') await (provider.forceFlush as () => Promise<void>).call(provider);
}

export interface SpansInMemory {
  exporter: InMemorySpanExporter;
  /** Puts the no-op tracer back. */
  stop(): Promise<void>;
}

/**
 * For tests: every span made in this process from now on, kept in memory as it ends (no batching). Fails when the
 * OTEL_* variables already started tracing here.
 */
export async function recordSpansInMemory(): Promise<SpansInMemory> {
  if (sdk) throw new Error('tracing was started from the OTEL_* variables in this process; spans cannot be recorded in memory as well');
  const [{ InMemorySpanExporter, SimpleSpanProcessor }, { NodeTracerProvider }, resource] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/sdk-trace-node'),
    sentinelResource(['test']),
  ]);
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider.register();
  return {
    exporter,
    async stop() {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}
