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

/**
 * An agent's message that is not a valid AgentMessage (truncated, or not protobuf at all). The service's deserializer
 * answers it rather than throw: a throw there ends the stream INTERNAL "Error deserializing request", naming neither
 * the fault nor the sender's part in it, where the ingest can refuse it, in order, as it refuses any invalid message.
 */
export interface UnreadableMessage {
  body: 'unreadable';
  /** What is wrong with the bytes. */
  error: string;
}

/** What the ingest's stream receives: a decoded message, or an unreadable one. */
export type ReceivedAgentMessage = AgentMessage | UnreadableMessage;

/** Why bytes are not a valid AgentMessage. */
export class MalformedMessage extends RangeError {
  override name = 'MalformedMessage';
}

/** `decodeAgentMessage`, with a malformed message answered as an UnreadableMessage. */
export function readAgentMessage(buffer: Buffer): ReceivedAgentMessage {
  try {
    return decodeAgentMessage(buffer);
  } catch (error) {
    if (error instanceof MalformedMessage) return { body: 'unreadable', error: error.message };
    throw error;
  }
}

/** The service definition, for `server.addService`: agents' messages are read by `readAgentMessage`. */
export const telemetryService: grpc.ServiceDefinition = {
  ...loadedService,
  Push: { ...loadedService['Push']!, requestDeserialize: readAgentMessage },
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
 * numbers, `body` naming the member of the oneof that is set), only faster: agents send the same few hundred series
 * in every batch, so the metric and labels of a sample are decoded once per distinct run of their bytes (kept across
 * messages, see SERIES_CACHE_LIMIT), and the samples of one series share one frozen `labels` object (which lets
 * validation and storage judge a series once). A truncated or malformed message throws MalformedMessage (a RangeError,
 * as the generic decoder throws).
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

/** A sample's metric and labels, shared by the samples whose bytes for them are the same. */
type Series = Pick<Sample, 'metric' | 'labels'>;

/**
 * Series decoded before, by the bytes of their metric and label fields (as latin1 text, one character per byte). Kept
 * across messages and streams: a node sends the same series in batch after batch, and decoding their strings again
 * for every batch was most of the decoder's cost. Bounded, since label values (a pod name, a GPU's UUID) change over
 * time: the cache starts afresh when it holds this many.
 */
const SERIES_CACHE_LIMIT = 50_000;
const seriesCache = new Map<string, Series>();

function readBatch(reader: WireReader, end: number): Batch {
  const batch: Batch = { samples: [], agentId: '', nodeName: '', clusterId: '', sequence: 0, droppedSamples: 0, sentAtUnixMs: 0 };
  while (reader.pos < end) {
    const tag = reader.varint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 5 && wire === 2) batch.samples.push(readSample(reader, reader.lengthEnd()));
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

function readSample(reader: WireReader, end: number): Sample {
  const start = reader.pos;
  // Where the run of metric and label fields at the start of the sample ends (an encoder writes them first). When
  // they are not all at the start (fields in another order), the sample's series is decoded on its own, uncached.
  let seriesEnd = start;
  let leading = true;
  let value = 0;
  let timestampUnixMs = 0;
  while (reader.pos < end) {
    const fieldStart = reader.pos;
    const tag = reader.varint32();
    if (tag === 10 || tag === 18) {
      // Field 1 (metric) or 2 (a labels entry), length-delimited: only their extent is read here.
      if (fieldStart !== seriesEnd) leading = false;
      seriesEnd = reader.pos = reader.lengthEnd();
    } else if (tag === 25) {
      value = reader.double();
    } else if (tag === 32) {
      timestampUnixMs = reader.int64(false);
    } else {
      reader.skip(tag & 7);
    }
  }
  reader.expectAt(end);
  let series: Series | undefined;
  if (leading) {
    const key = reader.buffer.toString('latin1', start, seriesEnd);
    series = seriesCache.get(key);
    if (!series) {
      series = readSeries(reader, start, end);
      if (seriesCache.size >= SERIES_CACHE_LIMIT) seriesCache.clear();
      seriesCache.set(key, series);
    }
  } else {
    series = readSeries(reader, start, end);
  }
  reader.pos = end;
  return { labels: series.labels, metric: series.metric, value, timestampUnixMs };
}

/** The metric and labels of the sample between `start` and `end` (its other fields were read already). */
function readSeries(reader: WireReader, start: number, end: number): Series {
  let metric = '';
  const labels: Record<string, string> = {};
  reader.pos = start;
  while (reader.pos < end) {
    const tag = reader.varint32();
    if (tag === 10) metric = reader.string();
    else if (tag === 18) {
      const entryEnd = reader.lengthEnd();
      let name = '';
      let labelValue = '';
      while (reader.pos < entryEnd) {
        const entryTag = reader.varint32();
        if (entryTag === 10) name = reader.string();
        else if (entryTag === 18) labelValue = reader.string();
        else reader.skip(entryTag & 7);
      }
      reader.expectAt(entryEnd);
      labels[name] = labelValue;
    } else reader.skip(tag & 7);
  }
  return { metric, labels: Object.freeze(labels) };
}

/** The protobuf wire format, as far as AgentMessage needs it. */
class WireReader {
  pos = 0;

  constructor(readonly buffer: Buffer) {}

  varint32(): number {
    // Tags and lengths of a sample's fields take one byte.
    const byte = this.buffer[this.pos];
    if (byte !== undefined && byte < 0x80) {
      this.pos++;
      return byte;
    }
    const { low } = this.varint();
    return low;
  }

  /** A 64-bit varint as a number: unsigned, or two's complement signed (int64). */
  int64(unsigned: boolean): number {
    // Up to seven bytes (below 2^49: millisecond times, sequences) add up exactly as a number; longer ones (negative
    // numbers among them) take the general path.
    const { buffer } = this;
    let value = 0;
    let scale = 1;
    for (let at = this.pos; at < this.pos + 7 && at < buffer.length; at++) {
      const byte = buffer[at]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        this.pos = at + 1;
        return value;
      }
      scale *= 128;
    }
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

  /** Skips a field this decoder does not read, as protobuf requires of unknown fields (groups included). */
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.advance(8);
    else if (wire === 2) this.pos = this.lengthEnd();
    else if (wire === 5) this.advance(4);
    else if (wire === 3) {
      for (let tag = this.varint32(); (tag & 7) !== 4; tag = this.varint32()) this.skip(tag & 7);
    } else throw new MalformedMessage(`wire type ${wire} (none such) before offset ${this.pos}`);
  }

  expectAt(end: number): void {
    if (this.pos !== end) throw new MalformedMessage(`a field runs past the end of its enclosing message (${end}) to offset ${this.pos}`);
  }

  private advance(bytes: number): void {
    this.need(bytes);
    this.pos += bytes;
  }

  private need(bytes: number): void {
    if (this.pos + bytes > this.buffer.length) throw new MalformedMessage(`a field of ${bytes} bytes at offset ${this.pos} runs past the end of the message (${this.buffer.length} bytes): it is truncated`);
  }

  /** Up to ten bytes, seven bits each: the low and high 32 bits, unsigned. */
  private varint(): { low: number; high: number } {
    let low = 0;
    let high = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.buffer.length) throw new MalformedMessage(`a varint runs past the end of the message (${this.buffer.length} bytes): it is truncated`);
      const byte = this.buffer[this.pos++]!;
      const bits = byte & 0x7f;
      if (shift < 28) low |= bits << shift;
      else if (shift === 28) {
        low |= (bits & 0x0f) << 28;
        high |= bits >>> 4;
      } else high |= bits << (shift - 32);
      if (byte < 0x80) return { low: low >>> 0, high: high >>> 0 };
    }
    throw new MalformedMessage(`a varint longer than ten bytes before offset ${this.pos}`);
  }
}
