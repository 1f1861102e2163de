// RED series of Sentinel's gRPC servers (telemetry ingest, InfraMind link), as a server interceptor: calls started
// and ended by service, method and status code, how long they lasted, and the messages each way.
import * as grpc from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * The interceptor to give `new grpc.Server({ interceptors: [...] })`. Every Sentinel service is a long-lived
 * bidirectional stream, so a call's duration is the stream's life and the messages are the per-request rate.
 */
export function grpcServerMetrics(registry: Registry): grpc.ServerInterceptor {
  const labelNames = ['service', 'method'] as const;
  const started = counter(registry, { name: 'sentinel_grpc_server_started_total', help: 'gRPC calls started, by service and method', labelNames: [...labelNames] });
  const handled = counter(registry, {
    name: 'sentinel_grpc_server_handled_total',
    help: 'gRPC calls ended, by service, method and the status code the server ended them with (CANCELLED: the client went away before it did)',
    labelNames: [...labelNames, 'code'],
  });
  const seconds = histogram(registry, {
    name: 'sentinel_grpc_server_handling_seconds',
    help: 'How long gRPC calls lasted, from start to status, by service and method (a stream: its whole life)',
    labelNames: [...labelNames],
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600, 21600, 86400],
  });
  const received = counter(registry, { name: 'sentinel_grpc_server_msg_received_total', help: 'gRPC messages received from clients, by service and method', labelNames: [...labelNames] });
  const sent = counter(registry, { name: 'sentinel_grpc_server_msg_sent_total', help: 'gRPC messages sent to clients, by service and method', labelNames: [...labelNames] });

  return (descriptor, call) => {
    const labels = methodLabels(descriptor.path);
    const begun = process.hrtime.bigint();
    let ended = false;
    const end = (code: grpc.status) => {
      if (ended) return;
      ended = true;
      handled.inc({ ...labels, code: grpc.status[code] ?? String(code) });
      seconds.observe(labels, Number(process.hrtime.bigint() - begun) / 1e9);
    };
    started.inc(labels);
    return new grpc.ServerInterceptingCall(
      call,
      new grpc.ResponderBuilder()
        .withStart((next) => {
          next(
            new grpc.ServerListenerBuilder()
              .withOnReceiveMessage((message, nextMessage) => {
                received.inc(labels);
                nextMessage(message);
              })
              .withOnCancel(() => end(grpc.status.CANCELLED))
              .build(),
          );
        })
        .withSendMessage((message, nextMessage) => {
          sent.inc(labels);
          nextMessage(message);
        })
        .withSendStatus((status, nextStatus) => {
          end(status.code ?? grpc.status.UNKNOWN);
          nextStatus(status);
        })
        .build(),
    );
  };
}

/** `/sentinel.telemetry.v1.Telemetry/Push` → service `sentinel.telemetry.v1.Telemetry`, method `Push`. */
function methodLabels(path: string): { service: string; method: string } {
  const [, service = 'unknown', method = 'unknown'] = /^\/([^/]+)\/([^/]+)$/.exec(path) ?? [];
  return { service, method };
}

/** The registry's metric of that name when another server on the same registry made it already, else a new one. */
function counter<L extends string>(registry: Registry, spec: { name: string; help: string; labelNames: L[] }): Counter<L> {
  return (registry.getSingleMetric(spec.name) as Counter<L> | undefined) ?? new Counter({ ...spec, registers: [registry] });
}

function histogram<L extends string>(registry: Registry, spec: { name: string; help: string; labelNames: L[]; buckets: number[] }): Histogram<L> {
  return (registry.getSingleMetric(spec.name) as Histogram<L> | undefined) ?? new Histogram({ ...spec, registers: [registry] });
}
