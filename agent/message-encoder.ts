// The bytes of the AgentMessages the push writes (proto/telemetry.proto), written straight into one buffer per message.
import type { AgentMessageOut, Batch, Hello } from '../adapters/grpc/telemetry-proto.js';

/*
 * The generic encoder (protobufjs, through proto-loader) builds an object per field of every sample before it writes
 * a byte: for a batch of 1,000 samples that was the agent's largest allocation, and so most of its garbage
 * collection. This writes the same bytes, field for field in the order protobufjs writes them (by field number,
 * labels in their key order), so the ingest's decoder (adapters/grpc/telemetry-proto.ts), which recognises a series
 * by the bytes of its metric and labels, sees no difference. The lengths of the samples are worked out first, then
 * everything is written into one buffer of the right size.
 *
 * A batch is written only every half minute or so, so this code seldom runs long enough for V8 to optimise it: the
 * work per sample is kept to a few calls into Buffer's native code. The bytes of a sample's labels are kept with its
 * labels object (the GPU collector gives the sixteen samples of a GPU one object), and those of each metric name by
 * name; collected samples are never changed afterwards, so the kept bytes stay true.
 */

// Tags: field number << 3 | wire type (0 varint, 1 fixed 64-bit, 2 length-delimited).
const AGENT_HELLO = (1 << 3) | 2;
const AGENT_BATCH = (2 << 3) | 2;
const FIELD1_STRING = (1 << 3) | 2;
const FIELD2_STRING = (2 << 3) | 2;
const FIELD3_STRING = (3 << 3) | 2;
const FIELD4_STRING = (4 << 3) | 2;
const BATCH_SEQUENCE = (4 << 3) | 0;
const BATCH_SAMPLE = (5 << 3) | 2;
const BATCH_DROPPED = (6 << 3) | 0;
const BATCH_SENT_AT = (7 << 3) | 0;
const SAMPLE_LABEL = (2 << 3) | 2;
const SAMPLE_VALUE = (3 << 3) | 1;
const SAMPLE_TIMESTAMP = (4 << 3) | 0;

const TWO_63 = 2 ** 63;

/** An AgentMessage as proto-loader's serializer writes it for the same object. */
export function encodeAgentMessage(message: AgentMessageOut): Buffer {
  if ('hello' in message) {
    const length = helloLength(message.hello);
    const writer = new Writer(1 + varintLength(length) + length);
    writer.varint(AGENT_HELLO);
    writer.varint(length);
    writeHello(writer, message.hello);
    return writer.buffer;
  }
  const { batch } = message;
  const sampleLengths = new Array<number>(batch.samples.length);
  let length = stringField(batch.agentId) + stringField(batch.nodeName) + stringField(batch.clusterId);
  length += 1 + int64Length(batch.sequence) + 1 + int64Length(batch.droppedSamples) + 1 + int64Length(batch.sentAtUnixMs);
  for (let i = 0; i < batch.samples.length; i++) {
    const sample = batch.samples[i]!;
    const sampleLength = metricBytes(sample.metric).length + labelBytes(sample.labels).length + 9 + 1 + int64Length(sample.timestampUnixMs);
    sampleLengths[i] = sampleLength;
    length += 1 + varintLength(sampleLength) + sampleLength;
  }
  const writer = new Writer(1 + varintLength(length) + length);
  writer.varint(AGENT_BATCH);
  writer.varint(length);
  writeBatch(writer, batch, sampleLengths);
  return writer.buffer;
}

/** How many metric names' bytes are kept; a source that makes up names without end only empties the cache now and then. */
const METRIC_CACHE_LIMIT = 10_000;
const metricCache = new Map<string, Buffer>();
const labelCache = new WeakMap<Readonly<Record<string, string>>, Buffer>();

/** A sample's metric field: tag, length and name. */
function metricBytes(metric: string): Buffer {
  let bytes = metricCache.get(metric);
  if (bytes === undefined) {
    const writer = new Writer(stringField(metric));
    writer.string(FIELD1_STRING, metric);
    bytes = writer.buffer;
    if (metricCache.size >= METRIC_CACHE_LIMIT) metricCache.clear();
    metricCache.set(metric, bytes);
  }
  return bytes;
}

/** A sample's label entries (map entries: field 2, each a key and a value), in the labels' key order. */
function labelBytes(labels: Readonly<Record<string, string>>): Buffer {
  let bytes = labelCache.get(labels);
  if (bytes === undefined) {
    const names = Object.keys(labels);
    const entries = names.map((name) => stringField(name) + stringField(labels[name]!));
    const writer = new Writer(entries.reduce((sum, entry) => sum + 1 + varintLength(entry) + entry, 0));
    names.forEach((name, i) => {
      writer.varint(SAMPLE_LABEL);
      writer.varint(entries[i]!);
      writer.string(FIELD1_STRING, name);
      writer.string(FIELD2_STRING, labels[name]!);
    });
    bytes = writer.buffer;
    labelCache.set(labels, bytes);
  }
  return bytes;
}

function helloLength(hello: Hello): number {
  return stringField(hello.agentId) + stringField(hello.nodeName) + stringField(hello.clusterId) + stringField(hello.agentVersion);
}

function writeHello(writer: Writer, hello: Hello): void {
  writer.string(FIELD1_STRING, hello.agentId);
  writer.string(FIELD2_STRING, hello.nodeName);
  writer.string(FIELD3_STRING, hello.clusterId);
  writer.string(FIELD4_STRING, hello.agentVersion);
}

function writeBatch(writer: Writer, batch: Batch, sampleLengths: number[]): void {
  writer.string(FIELD1_STRING, batch.agentId);
  writer.string(FIELD2_STRING, batch.nodeName);
  writer.string(FIELD3_STRING, batch.clusterId);
  writer.varint(BATCH_SEQUENCE);
  writer.int64(batch.sequence);
  for (let i = 0; i < batch.samples.length; i++) {
    const sample = batch.samples[i]!;
    writer.varint(BATCH_SAMPLE);
    writer.varint(sampleLengths[i]!);
    writer.bytes(metricBytes(sample.metric));
    writer.bytes(labelBytes(sample.labels));
    writer.varint(SAMPLE_VALUE);
    writer.double(sample.value);
    writer.varint(SAMPLE_TIMESTAMP);
    writer.int64(sample.timestampUnixMs);
  }
  writer.varint(BATCH_DROPPED);
  writer.int64(batch.droppedSamples);
  writer.varint(BATCH_SENT_AT);
  writer.int64(batch.sentAtUnixMs);
}

/** A string field's length with its tag and length prefix (tags here take one byte). */
function stringField(value: string): number {
  const bytes = Buffer.byteLength(value, 'utf8');
  return 1 + varintLength(bytes) + bytes;
}

export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

function int64Length(value: number): number {
  const bits = unusualInt64(value);
  if (bits === undefined) return varintLength(Math.trunc(value));
  let length = 1;
  for (let rest = bits; rest >= 0x80n; rest >>= 7n) length++;
  return length;
}

/**
 * The 64 bits of an int64 that is not a safe non-negative integer, as protobufjs makes them from a number (through
 * long.js: truncated, NaN as 0, clamped to the int64 range, negative ones in two's complement, so ten bytes);
 * undefined for the usual one.
 */
function unusualInt64(value: number): bigint | undefined {
  if (value >= 0 && value <= Number.MAX_SAFE_INTEGER) return undefined;
  if (Number.isNaN(value)) return 0n;
  if (value <= -TWO_63) return BigInt.asUintN(64, -(2n ** 63n));
  if (value + 1 >= TWO_63) return 2n ** 63n - 1n;
  return BigInt.asUintN(64, BigInt(Math.trunc(value)));
}

class Writer {
  readonly buffer: Buffer;
  private pos = 0;

  constructor(length: number) {
    this.buffer = Buffer.allocUnsafe(length);
  }

  /** A non-negative integer below 2^53. */
  varint(value: number): void {
    while (value >= 0x80) {
      this.buffer[this.pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buffer[this.pos++] = value;
  }

  /** An int64 or uint64 as a varint, as protobufjs writes it from a number. */
  int64(value: number): void {
    let bits = unusualInt64(value);
    if (bits === undefined) {
      this.varint(Math.trunc(value));
      return;
    }
    while (bits >= 0x80n) {
      this.buffer[this.pos++] = Number(bits & 0x7fn) | 0x80;
      bits >>= 7n;
    }
    this.buffer[this.pos++] = Number(bits);
  }

  double(value: number): void {
    this.pos = this.buffer.writeDoubleLE(value, this.pos);
  }

  string(tag: number, value: string): void {
    this.varint(tag);
    this.varint(Buffer.byteLength(value, 'utf8'));
    this.pos += this.buffer.write(value, this.pos, 'utf8');
  }

  bytes(value: Buffer): void {
    this.pos += value.copy(this.buffer, this.pos);
  }
}
