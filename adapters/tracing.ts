// Spans of Sentinel's own work through the OpenTelemetry API, and the W3C traceparent that carries a trace through
// the log: from the request that appended an event to whoever handles the event. Until app/tracing.ts installs an
// SDK, the API's tracer is a no-op: a span then only carries its parent's context on, and invents none.
import {
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type SpanOptions,
} from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import { ATTR_HTTP_RESPONSE_STATUS_CODE } from '@opentelemetry/semantic-conventions';

export { SpanKind, type Span };

/** The instrumentation scope of every span Sentinel makes itself. */
const SCOPE = 'sentinel';

/** The span's context as a W3C traceparent; undefined when it has none (tracing is off and nothing was continued). */
export function traceparentOf(span: Span | undefined): string | undefined {
  const spanContext = span?.spanContext();
  if (!spanContext || !isSpanContextValid(spanContext)) return undefined;
  return `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** The span context a traceparent names (as a remote parent); undefined for none or a malformed one. */
function spanContextOf(traceparent: string | undefined): SpanContext | undefined {
  if (traceparent === undefined) return undefined;
  const parsed = parseTraceParent(traceparent);
  return parsed ? { ...parsed, isRemote: true } : undefined;
}

/** A context whose span is the one `traceparent` names: where a span continuing that trace starts. The root for none. */
export function contextFrom(traceparent: string | undefined): Context {
  const parent = spanContextOf(traceparent);
  return parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
}

/**
 * Where a span about `traceparent`'s work starts: under the span active now when there is one (it is handling that
 * work, so it is the more precise parent), else under `traceparent`.
 */
export function currentOr(traceparent: string | undefined): Context {
  return trace.getActiveSpan() ? context.active() : contextFrom(traceparent);
}

/** The traceparent of the span active now, if one is. */
export function activeTraceparent(): string | undefined {
  return traceparentOf(trace.getActiveSpan());
}

export interface SpanSpec extends SpanOptions {
  /** Where the span starts; the active context when absent. */
  parent?: Context;
  /** Whether a thrown error marks the span failed: every one unless given (a refusal the caller expects is not a failure). */
  failure?: (error: unknown) => boolean;
}

/** Runs `work` in a new span, active while it runs. A thrown error ends the span (failed, when it is one) and is thrown on. */
export function inSpan<T>(name: string, spec: SpanSpec, work: (span: Span) => Promise<T>): Promise<T> {
  const { parent, failure, ...options } = spec;
  return trace.getTracer(SCOPE).startActiveSpan(name, options, parent ?? context.active(), async (span) => {
    try {
      return await work(span);
    } catch (error) {
      if (failure?.(error) ?? true) failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Runs `work` in a span only when it is part of a trace already: calls made outside any trace start none. */
export function inChildSpan<T>(name: string, spec: SpanSpec, work: (span: Span | undefined) => Promise<T>): Promise<T> {
  return trace.getActiveSpan() ? inSpan(name, spec, work) : work(undefined);
}

/** Marks the span failed with the error. */
export function failed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

/**
 * For a span that handles several events at once (a projector's batch): it continues the trace of the first event
 * that carries one, and `linkBatch` links the other events' traces to it, so the batch is found from each of them.
 */
export function batchParent(traceparents: readonly (string | undefined)[]): Context {
  return contextFrom(traceparents.find((traceparent) => traceparent !== undefined));
}

/** Links the traces of a batch's events but the first (its parent), each once; only a recording span is given any. */
export function linkBatch(span: Span, traceparents: readonly (string | undefined)[]): void {
  if (!span.isRecording()) return;
  const [parent, ...others] = traceparents.map(spanContextOf).filter((linked) => linked !== undefined);
  const links = new Map<string, Link>();
  for (const linked of others) if (linked.spanId !== parent?.spanId) links.set(linked.spanId, { context: linked });
  if (links.size > 0) span.addLinks([...links.values()]);
}

/**
 * The span of a request this process serves, ended by `endServerSpan`: the server span, a child of the caller's
 * `traceparent`; or, when an instrumentation has made the server span already (the http one, preloaded), its child.
 */
export function startServerSpan(name: string, traceparent: string | undefined, attributes: Attributes): Span {
  const kind = trace.getActiveSpan() ? SpanKind.INTERNAL : SpanKind.SERVER;
  return trace.getTracer(SCOPE).startSpan(name, { kind, attributes }, currentOr(traceparent));
}

/** Ends a request's span with its HTTP status: only a server error marks it failed (a 4xx is the caller's). */
export function endServerSpan(span: Span, status: number): void {
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** Runs `work` with `span` active, for a span that outlives one call (a request's, across its middleware). */
export function within<T>(span: Span, work: () => T): T {
  return context.with(trace.setSpan(context.active(), span), work);
}
