// The ingest's decoder of AgentMessage against the generic proto-loader decoder, on random messages: the same answer
// for every valid encoding (fields in any order, unknown fields anywhere, map entries in either order), and a
// refusal that says what is wrong for bytes that are not a message.
import { expect } from 'chai';
import type * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../adapters/grpc/grpc-common.js';
import { decodeAgentMessage, MalformedMessage, readAgentMessage, TELEMETRY_PROTO, type Batch, type Sample } from '../../adapters/grpc/telemetry-proto.js';

const generic = (loadProto(TELEMETRY_PROTO) as unknown as { sentinel: { telemetry: { v1: { Telemetry: grpc.ServiceClientConstructor } } } }).sentinel.telemetry.v1
  .Telemetry.service['Push']!;

/** A small seeded generator (mulberry32), so that a failure names a seed that reproduces it. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (below: number) => Math.floor(next() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const shuffle = <T>(items: T[]): T[] => {
    for (let i = items.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  };
  return { next, int, pick, shuffle };
}
type Random = ReturnType<typeof random>;

const TEXTS = ['', 'gpu', '0', 'GPU-3f0c', 'NVIDIA H100 80GB HBM3', 'ü∂✓', 'a b\tc', 'x'.repeat(300), '🚀'];
const VALUES = [0, -0, 1, -1, 0.5, -3.25e-7, 97.5, 2 ** 53, -(2 ** 60), Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity];
const TIMES = [0, 1, -1, -5, 1_900_000_000_123, 2 ** 49 - 1, 2 ** 49, 2 ** 52, -(2 ** 40)];

// ---- an encoder that writes what any valid encoder may write ------------------------------------------------

function varint(value: bigint): number[] {
  let rest = BigInt.asUintN(64, value);
  const bytes: number[] = [];
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return bytes;
}
const tag = (field: number, wire: number) => varint(BigInt((field << 3) | wire));
const lengthDelimited = (field: number, bytes: number[]) => [...tag(field, 2), ...varint(BigInt(bytes.length)), ...bytes];
const text = (field: number, value: string) => lengthDelimited(field, [...Buffer.from(value, 'utf8')]);
const varintField = (field: number, value: number) => [...tag(field, 0), ...varint(BigInt(value))];
function doubleField(field: number, value: number): number[] {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return [...tag(field, 1), ...bytes];
}

/** A field no version of the contract has: each wire type, a group holding fields of its own among them. */
function unknownField(rng: Random): number[] {
  const field = 100 + rng.int(1000);
  switch (rng.int(5)) {
    case 0:
      return varintField(field, rng.int(2 ** 31));
    case 1:
      return doubleField(field, rng.next());
    case 2:
      return text(field, rng.pick(TEXTS));
    case 3:
      return [...tag(field, 5), 1, 2, 3, 4];
    default:
      return [...tag(field, 3), ...varintField(field + 1, 7), ...text(field + 2, 'in a group'), ...tag(field, 4)];
  }
}

/** The fields, in a random order when `shuffle`, with unknown fields between them when `unknown`. */
function message(rng: Random, fields: number[][], options: { shuffle: boolean; unknown: boolean }): number[] {
  const parts = options.shuffle ? rng.shuffle([...fields]) : [...fields];
  if (options.unknown) for (let i = rng.int(3); i > 0; i--) parts.splice(rng.int(parts.length + 1), 0, unknownField(rng));
  return parts.flat();
}

function randomLabels(rng: Random): Record<string, string> {
  const labels: Record<string, string> = {};
  for (let i = rng.int(6); i > 0; i--) labels[rng.pick(['gpu', 'UUID', 'modelName', 'Hostname', 'device', 'mode', '', 'ü'])] = rng.pick(TEXTS);
  return labels;
}

function encodeSample(rng: Random, sample: Sample, options: { shuffle: boolean; unknown: boolean }): number[] {
  const entries = Object.entries(sample.labels).map(([name, value]) =>
    // A map entry is a message of its own: key and value in either order, either left out when empty.
    lengthDelimited(2, message(rng, [...(name || rng.int(2) ? [text(1, name)] : []), ...(value || rng.int(2) ? [text(2, value)] : [])], options)),
  );
  const fields = [text(1, sample.metric), ...entries, doubleField(3, sample.value), varintField(4, sample.timestampUnixMs)];
  return message(rng, fields, options);
}

function encodeBatch(rng: Random, batch: Batch, options: { shuffle: boolean; unknown: boolean }): Buffer {
  const fields = [
    text(1, batch.agentId),
    text(2, batch.nodeName),
    text(3, batch.clusterId),
    varintField(4, batch.sequence),
    ...batch.samples.map((sample) => lengthDelimited(5, encodeSample(rng, sample, options))),
    varintField(6, batch.droppedSamples),
    varintField(7, batch.sentAtUnixMs),
  ];
  return Buffer.from(message(rng, [lengthDelimited(2, message(rng, fields, options))], options));
}

function randomBatch(rng: Random): Batch {
  // A few series repeated, as agents send them, and some samples of their own.
  const series = Array.from({ length: 1 + rng.int(4) }, () => ({ metric: rng.pick(['DCGM_FI_DEV_GPU_UTIL', 'node_cpu_seconds_total', '', 'ü']), labels: randomLabels(rng) }));
  const samples = Array.from({ length: rng.int(40) }, () => ({
    ...(rng.int(4) ? rng.pick(series) : { metric: rng.pick(TEXTS), labels: randomLabels(rng) }),
    value: rng.int(3) ? rng.pick(VALUES) : (rng.next() - 0.5) * 10 ** rng.int(30),
    timestampUnixMs: rng.pick(TIMES),
  }));
  return {
    agentId: rng.pick(TEXTS),
    nodeName: rng.pick(TEXTS),
    clusterId: rng.pick(TEXTS),
    sequence: rng.pick([0, 1, 2 ** 40 + 7, 2 ** 53 - 1]),
    samples,
    droppedSamples: rng.pick([0, 12, 2 ** 45]),
    sentAtUnixMs: rng.pick(TIMES),
  };
}

describe('the batch decoder against the generic decoder', () => {
  for (const [name, options] of [
    ['fields in field order', { shuffle: false, unknown: false }],
    ['fields in any order', { shuffle: true, unknown: false }],
    ['unknown fields among them', { shuffle: false, unknown: true }],
    ['fields in any order and unknown fields among them', { shuffle: true, unknown: true }],
  ] as const) {
    it(`given 100 random batches with ${name}, then it reads what the generic decoder reads`, () => {
      for (let seed = 1; seed <= 100; seed++) {
        const rng = random(seed);
        const bytes = encodeBatch(rng, randomBatch(rng), options);
        expect(decodeAgentMessage(bytes), `seed ${seed}`).to.deep.equal(generic.requestDeserialize(bytes));
      }
    });
  }

  it('given a batch as the generic encoder writes it, then it reads it back as it was written', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const batch = randomBatch(random(seed));
      const decoded = decodeAgentMessage(generic.requestSerialize({ batch }));
      expect(decoded, `seed ${seed}`).to.deep.equal({ body: 'batch', batch });
    }
  });

  it('given an empty batch, then it reads a batch with no samples', () => {
    const batch = { agentId: 'a', nodeName: 'n', clusterId: 'c', sequence: 1, samples: [], droppedSamples: 0, sentAtUnixMs: 5 };
    const bytes = generic.requestSerialize({ batch });
    expect(decodeAgentMessage(bytes)).to.deep.equal(generic.requestDeserialize(bytes)).and.to.deep.equal({ body: 'batch', batch });
  });

  it('given the same series in two messages, then their samples share one frozen labels object', () => {
    const batch = { agentId: 'a', nodeName: 'n', clusterId: 'c', sequence: 1, samples: [{ metric: 'm', labels: { gpu: '7', only: 'here' }, value: 1, timestampUnixMs: 2 }] };
    const first = decodeAgentMessage(generic.requestSerialize({ batch }));
    const second = decodeAgentMessage(generic.requestSerialize({ batch: { ...batch, sequence: 2 } }));
    if (first.body !== 'batch' || second.body !== 'batch') throw new Error('expected batches');
    expect(second.batch.samples[0]!.labels).to.equal(first.batch.samples[0]!.labels);
    expect(Object.isFrozen(first.batch.samples[0]!.labels)).to.equal(true);
  });
});

describe('bytes that are not an AgentMessage', () => {
  // The batch alone, as one length-delimited field of the message: any cut inside it leaves that field short.
  const bytes = generic.requestSerialize({ batch: randomBatch(random(42)) });

  it('given a batch cut short anywhere, then both decoders refuse it, this one saying it is truncated', () => {
    // Every cut in the head of the message (the batch's own fields, the first samples), then every seventh.
    for (let cut = 1; cut < bytes.length; cut += cut < 300 ? 1 : 7) {
      const truncated = bytes.subarray(0, cut);
      expect(() => generic.requestDeserialize(truncated), `generic, cut at ${cut}`).to.throw();
      expect(() => decodeAgentMessage(truncated), `cut at ${cut}`).to.throw(MalformedMessage, /truncated|runs past/);
    }
  });

  it('given garbled bytes, then it either reads a message or refuses them as malformed, never anything else', () => {
    const garbler = random(7);
    for (let round = 0; round < 2000; round++) {
      const garbled = Buffer.from(bytes);
      for (let flips = 1 + garbler.int(4); flips > 0; flips--) garbled[garbler.int(garbled.length)] = garbler.int(256);
      try {
        decodeAgentMessage(garbled);
      } catch (error) {
        expect(error, `round ${round}`).to.be.instanceOf(MalformedMessage);
      }
    }
  });

  it('given a wire type that does not exist, then it is refused naming the wire type', () => {
    expect(() => decodeAgentMessage(Buffer.from([(9 << 3) | 7, 0]))).to.throw(MalformedMessage, 'wire type 7');
  });

  it('given a varint longer than ten bytes, then it is refused as such', () => {
    expect(() => decodeAgentMessage(Buffer.from([(9 << 3) | 0, ...Array(11).fill(0xff), 1]))).to.throw(MalformedMessage, 'longer than ten bytes');
  });

  it('given a sample whose field runs past the end of the sample, then it is refused', () => {
    // A sample of 2 bytes holding a metric that says it is 5 bytes long, followed by more of the batch.
    const batch = [...lengthDelimited(5, [...tag(1, 2), 5]), ...text(1, 'agent')];
    expect(() => decodeAgentMessage(Buffer.from(lengthDelimited(2, batch)))).to.throw(MalformedMessage, 'runs past the end of its enclosing message');
  });

  it('given malformed bytes to the service deserializer, then it answers an unreadable message saying what is wrong rather than throw', () => {
    expect(readAgentMessage(bytes.subarray(0, 10))).to.deep.include({ body: 'unreadable' });
    const answer = readAgentMessage(bytes.subarray(0, 10));
    expect(answer.body === 'unreadable' && answer.error).to.match(/truncated/);
    expect(readAgentMessage(bytes)).to.deep.equal(decodeAgentMessage(bytes));
  });
});
