// The InfraMind link contract (proto/inframind.proto) loaded at run time, and the TypeScript shapes of its messages.
//
// Loaded like the telemetry contract (adapters/grpc/grpc-common.ts): camelCase field names, 64-bit integers as
// JavaScript numbers, defaults filled in, enums as their names, and `body` / `kind` naming which member of a oneof is set.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadProto } from './grpc-common.js';

export const INFRAMIND_PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto/inframind.proto');

export interface InfraMindHello {
  inframindId: string;
  version: string;
  resumeAfter: string;
}

/** The members of the PlanAction oneof, by name. */
export interface PlanActionMembers {
  scale: { deploymentId: string; replicas: number };
  reschedule: { deploymentId: string; clusterId: string; nodeSelector: Record<string, string> };
  rollback: { deploymentId: string; toRevision: number };
  restart: { deploymentId: string };
  drain: { clusterId: string; node: string };
  update: { deploymentId: string; workloadRevision: number };
}
type Kind = keyof PlanActionMembers;

/** An action as it arrives: `kind` names the member that is set (absent when none is). */
export type ProtoPlanAction = { [K in Kind]: { kind: K } & { [M in K]: PlanActionMembers[K] } }[Kind];

/** What a client writes as an action: one member (`kind` is filled in by the encoder). */
export type ProtoPlanActionOut = { [K in Kind]: { [M in K]: Partial<PlanActionMembers[K]> } }[Kind];

export interface PlanSubmission {
  planId: string;
  nonce: string;
  reason: string;
  actions: ProtoPlanAction[];
  ttlSeconds: number;
  shadow: boolean;
  basedOnPosition: string;
  basedOnObservation: number;
}

export interface Ack {
  position: string;
}

export type InfraMindMessage =
  | { body: 'hello'; hello: InfraMindHello }
  | { body: 'plan'; plan: PlanSubmission }
  | { body: 'ack'; ack: Ack };

/** What InfraMind writes on the stream (either member; `body` is filled in by the encoder). */
export type InfraMindMessageOut =
  | { hello: Partial<InfraMindHello> }
  | { plan: Partial<Omit<PlanSubmission, 'actions'>> & { actions?: ProtoPlanActionOut[] } }
  | { ack: Ack };

export interface SentinelHello {
  sessionId: string;
  resumeAfter: string;
  maxUnacknowledged: number;
}

export interface LinkEvent {
  position: string;
  id: string;
  stream: string;
  type: string;
  schemaVersion: number;
  revision: number;
  recordedAtUnixMs: number;
  dataJson: string;
  correlationId: string;
  /** The span that sent the event (a child of the event's own `metadata.traceparent`); '' when it has none. */
  traceparent: string;
}

export interface Violation {
  path: string;
  message: string;
}

export type Verdict = 'ACCEPTED' | 'REJECTED';

export interface PlanAck {
  nonce: string;
  planId: string;
  verdict: Verdict;
  violations: Violation[];
  position: string;
}

export type OutcomeResult = 'EXECUTED' | 'ROLLED_BACK' | 'EXPIRED' | 'FAILED' | 'CANCELLED';

export interface Effect {
  action: number;
  targetKind: string;
  targetId: string;
  replicasDesired: number;
  replicasReady: number;
  health: string;
  costBeforeMicroUsdPerHour: number;
  costAfterMicroUsdPerHour: number;
}

export interface Outcome {
  position: string;
  planId: string;
  result: OutcomeResult;
  cause: string;
  effects: Effect[];
}

export interface ObservationPoint {
  metric: string;
  labels: Record<string, string>;
  value: number;
}

export interface Observation {
  sequence: number;
  observedAtUnixMs: number;
  points: ObservationPoint[];
  fleetCostMicroUsdPerHour: number;
}

export type SentinelMessage =
  | { body: 'hello'; hello: SentinelHello }
  | { body: 'observation'; observation: Observation }
  | { body: 'event'; event: LinkEvent }
  | { body: 'planAck'; planAck: PlanAck }
  | { body: 'outcome'; outcome: Outcome };

const loaded = loadProto(INFRAMIND_PROTO) as unknown as {
  sentinel: { inframind: { v1: { InfraMind: grpc.ServiceClientConstructor } } };
};

/** The service definition, for `server.addService`. */
export const inframindService: grpc.ServiceDefinition = loaded.sentinel.inframind.v1.InfraMind.service;

/** A client of the service; `connect(metadata)` opens the bidirectional stream. */
export type InfraMindClient = grpc.Client & {
  connect(metadata: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<InfraMindMessageOut, SentinelMessage>;
};

export function inframindClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options?: grpc.ChannelOptions,
): InfraMindClient {
  return new loaded.sentinel.inframind.v1.InfraMind(address, credentials, options) as unknown as InfraMindClient;
}
