// The telemetry contract (proto/telemetry.proto) loaded at run time, and the TypeScript shapes of its messages.
//
// Loaded with @grpc/proto-loader rather than generated: the .proto stays the one source of truth, there is no
// build step to forget, and messages are checked at the edge by the ingest's own validation anyway (loading options:
// adapters/grpc/grpc-common.ts).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadProto } from './grpc-common.js';

export const TELEMETRY_PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto/telemetry.proto');

export interface Hello {
  agentId: string;
  nodeName: string;
  clusterId: string;
  agentVersion: string;
}

export interface Sample {
  metric: string;
  labels: Record<string, string>;
  value: number;
  timestampUnixMs: number;
}

export interface Batch {
  agentId: string;
  nodeName: string;
  clusterId: string;
  sequence: number;
  samples: Sample[];
  droppedSamples: number;
  sentAtUnixMs: number;
}

export interface Ack {
  agentId: string;
  acknowledgedSequence: number;
}

export type AgentMessage = { body: 'hello'; hello: Hello } | { body: 'batch'; batch: Batch };
export type IngestMessage = { body: 'ack'; ack: Ack };

/** What an agent writes on the stream (either member; `body` is filled in by the encoder). */
export type AgentMessageOut = { hello: Hello } | { batch: Batch };

const loaded = loadProto(TELEMETRY_PROTO) as unknown as {
  sentinel: { telemetry: { v1: { Telemetry: grpc.ServiceClientConstructor } } };
};

/** The service definition, for `server.addService`. */
export const telemetryService: grpc.ServiceDefinition = loaded.sentinel.telemetry.v1.Telemetry.service;

/** A client of the service; `push(metadata)` opens the bidirectional stream. */
export type TelemetryClient = grpc.Client & {
  push(metadata: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<AgentMessageOut, IngestMessage>;
};

export function telemetryClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options?: grpc.ChannelOptions,
): TelemetryClient {
  return new loaded.sentinel.telemetry.v1.Telemetry(address, credentials, options) as unknown as TelemetryClient;
}
