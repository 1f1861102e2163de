// The telemetry contract (proto/telemetry.proto) loaded at run time, and the TypeScript shapes of its messages.
//
// Loaded with @grpc/proto-loader rather than generated: the .proto stays the one source of truth, there is no
// build step to forget, and messages are checked at the edge by the ingest's own validation anyway (loading options:
// adapters/grpc/grpc-common.ts). The one exception is what the ingest reads most, `AgentMessage`: decoded here
// (`decodeAgentMessage`), because the generic decoder was the ingest's largest cost per sample.
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

const loadedService = loaded.sentinel.telemetry.v1.Telemetry.service;

/** The service definition, for `server.addService`: agents' messages are read by `decodeAgentMessage`. */
export const telemetryService: grpc.ServiceDefinition = {
  ...loadedService,
  Push: { ...loadedService['Push']!, requestDeserialize: decodeAgentMessage },
};

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

// ---- decoding AgentMessage --------------------------------------------------------------------------------

/**
 * Decodes an `AgentMessage` as proto-loader would with Sentinel's options (defaults filled in, 64-bit integers as
 * numbers, `body` naming the member of the oneof that is set), only faster: a batch repeats a few hundred series a
 * thousand times, so each distinct run of a sample's metric and labels bytes is decoded once per message, and the
 * samples of one series share one frozen `labels` object (which lets validation and storage judge a series once).
 * A truncated or malformed message throws, as the generic decoder does.
 */
export function decodeAgentMessage(buffer: Buffer): AgentMessage {
  const reader = new WireReader(buffer);
  const message: Partial<AgentMessage> & { hello?: Hello; batch?: Batch } = {};
  while (reader.pos < buffer.length) {
    const tag = reader.varint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) {
      const end = reader.lengthEnd();
      delete message.batch;
      Object.assign(message, { hello: readHello(reader, end), body: 'hello' });
    } else if (field === 2 && wire === 2) {
      const end = reader.lengthEnd();
      delete message.hello;
      Object.assign(message, { batch: readBatch(reader, end), body: 'batch' });
    } else {
      reader.skip(wire);
    }
  }
  return message as AgentMessage;
}

function readHello(reader: WireReader, end: number): Hello {
  const hello: Hello = { agentId: '', nodeName: '', clusterId: '', agentVersion: '' };
  while (reader.pos < end) {
    const tag = reader.varint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire !== 2 || field < 1 || field > 4) reader.skip(wire);
    else if (field === 1) hello.agentId = reader.string();
    else if (field === 2) hello.nodeName = reader.string();
    else if (field === 3) hello.clusterId = reader.string();
    else hello.agentVersion = reader.string();
  }
  reader.expectAt(end);
  return hello;
}

/** A sample's metric and labels, shared by the samples of a batch whose bytes for them are the same. */
type Series = Pick<Sample, 'metric' | 'labels'>;

function readBatch(reader: WireReader, end: number): Batch {
  const batch: Batch = { samples: [], agentId: '', nodeName: '', clusterId: '', sequence: 0, droppedSamples: 0, sentAtUnixMs: 0 };
  const series = new Map<string, Series>();
  while (reader.pos < end) {
    const tag = reader.varint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 5 && wire === 2) batch.samples.push(readSample(reader, reader.lengthEnd(), series));
    else if (field === 1 && wire === 2) batch.agentId = reader.string();
    else if (field === 2 && wire === 2) batch.nodeName = reader.string();
    else if (field === 3 && wire === 2) batch.clusterId = reader.string();
    else if (field === 4 && wire === 0) batch.sequence = reader.int64(true);
    else if (field === 6 && wire === 0) batch.droppedSamples = reader.int64(true);
    else if (field === 7 && wire === 0) batch.sentAtUnixMs = reader.int64(false);
    else reader.skip(wire);
  }
  reader.expectAt(end);
  return batch;
}

function readSample(reader: WireReader, end: number, known: Map<string, Series>): Sample {
  const start = reader.pos;
  // Where the run of metric and label fields at the start of the sample ends (an encoder writes them first).
  let seriesEnd = start;
  let leading = true;
  let metric: [number, number] | undefined;
  const entries: [number, number][] = [];
  let value = 0;
  let timestampUnixMs = 0;
  while (reader.pos < end) {
    const fieldStart = reader.pos;
    const tag = reader.varint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if ((field === 1 || field === 2) && wire === 2) {
      if (fieldStart !== seriesEnd) leading = false;
      const valueEnd = reader.lengthEnd();
      if (field === 1) metric = [reader.pos, valueEnd];
      else entries.push([reader.pos, valueEnd]);
      reader.pos = valueEnd;
      seriesEnd = valueEnd;
    } else if (field === 3 && wire === 1) {
      value = reader.double();
    } else if (field === 4 && wire === 0) {
      timestampUnixMs = reader.int64(false);
    } else {
      reader.skip(wire);
    }
  }
  reader.expectAt(end);
  const key = leading ? reader.buffer.toString('latin1', start, seriesEnd) : undefined;
  let shared = key === undefined ? undefined : known.get(key);
  if (!shared) {
    const labels: Record<string, string> = {};
    for (const [entryStart, entryEnd] of entries) {
      reader.pos = entryStart;
      let name = '';
      let labelValue = '';
      while (reader.pos < entryEnd) {
        const tag = reader.varint32();
        if (tag === 10) name = reader.string();
        else if (tag === 18) labelValue = reader.string();
        else reader.skip(tag & 7);
      }
      reader.expectAt(entryEnd);
      labels[name] = labelValue;
    }
    shared = { metric: metric ? reader.buffer.toString('utf8', metric[0], metric[1]) : '', labels: Object.freeze(labels) };
    if (key !== undefined) known.set(key, shared);
    reader.pos = end;
  }
  return { labels: shared.labels, metric: shared.metric, value, timestampUnixMs };
}

/** The protobuf wire format, as far as AgentMessage needs it. */
class WireReader {
  pos = 0;

  constructor(readonly buffer: Buffer) {}

  varint32(): number {
    const { low } = this.varint();
    return low;
  }

  /** A 64-bit varint as a number: unsigned, or two's complement signed (int64). */
  int64(unsigned: boolean): number {
    const { low, high } = this.varint();
    if (!unsigned && high >>> 31) {
      const lo = (~low + 1) >>> 0;
      const hi = lo === 0 ? (~high + 1) >>> 0 : ~high >>> 0;
      return -(lo + hi * 4294967296);
    }
    return low + high * 4294967296;
  }

  double(): number {
    this.need(8);
    const value = this.buffer.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  string(): string {
    const end = this.lengthEnd();
    const value = this.buffer.toString('utf8', this.pos, end);
    this.pos = end;
    return value;
  }

  /** Reads a length and answers where the value it prefixes ends. */
  lengthEnd(): number {
    const length = this.varint32();
    this.need(length);
    return this.pos + length;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.advance(8);
    else if (wire === 2) this.pos = this.lengthEnd();
    else if (wire === 5) this.advance(4);
    else throw new RangeError(`invalid wire type ${wire} at offset ${this.pos}`);
  }

  expectAt(end: number): void {
    if (this.pos !== end) throw new RangeError(`a field overruns its message at offset ${this.pos}`);
  }

  private advance(bytes: number): void {
    this.need(bytes);
    this.pos += bytes;
  }

  private need(bytes: number): void {
    if (this.pos + bytes > this.buffer.length) throw new RangeError(`index out of range: ${this.pos} + ${bytes} > ${this.buffer.length}`);
  }

  /** Up to ten bytes, seven bits each: the low and high 32 bits, unsigned. */
  private varint(): { low: number; high: number } {
    let low = 0;
    let high = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.buffer.length) throw new RangeError(`index out of range: a varint runs past ${this.buffer.length}`);
      const byte = this.buffer[this.pos++]!;
      const bits = byte & 0x7f;
      if (shift < 28) low |= bits << shift;
      else if (shift === 28) {
        low |= (bits & 0x0f) << 28;
        high |= bits >>> 4;
      } else high |= bits << (shift - 32);
      if (byte < 0x80) return { low: low >>> 0, high: high >>> 0 };
    }
    throw new RangeError(`a varint longer than ten bytes at offset ${this.pos}`);
  }
}
