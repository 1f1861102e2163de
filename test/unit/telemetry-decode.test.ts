// The ingest's own decoder of AgentMessage reads exactly what the generic proto-loader decoder reads.
import { expect } from 'chai';
import type * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../adapters/grpc/grpc-common.js';
import { decodeAgentMessage, TELEMETRY_PROTO, type AgentMessageOut, type Sample } from '../../adapters/grpc/telemetry-proto.js';

const generic = (loadProto(TELEMETRY_PROTO) as unknown as { sentinel: { telemetry: { v1: { Telemetry: grpc.ServiceClientConstructor } } } }).sentinel.telemetry.v1
  .Telemetry.service['Push']!;
const encode = (message: AgentMessageOut | Record<string, never>) => generic.requestSerialize(message);

const gpu = (index: number) => ({ gpu: String(index), UUID: `GPU-${index}`, modelName: 'NVIDIA H100 80GB HBM3', Hostname: 'gpu-node-ü' });
const samples: Sample[] = [
  { metric: 'DCGM_FI_DEV_GPU_UTIL', labels: gpu(0), value: 97.5, timestampUnixMs: 1_900_000_000_123 },
  { metric: 'DCGM_FI_DEV_GPU_UTIL', labels: gpu(1), value: 0, timestampUnixMs: 1_900_000_000_124 },
  { metric: 'DCGM_FI_DEV_GPU_UTIL', labels: gpu(0), value: -3.25e-7, timestampUnixMs: -5 },
  { metric: 'node_memory_MemAvailable_bytes', labels: {}, value: 2 ** 60, timestampUnixMs: 0 },
  { metric: '', labels: { empty: '' }, value: Number.MAX_VALUE, timestampUnixMs: 2 ** 52 },
];
const batch = { agentId: 'agent-1', nodeName: 'gpu-node-1', clusterId: 'cluster-a', sequence: 2 ** 40 + 7, samples, droppedSamples: 12, sentAtUnixMs: 1_900_000_000_200 };

describe('decoding an agent message', () => {
  const cases: [string, AgentMessageOut | Record<string, never>][] = [
    ['a hello', { hello: { agentId: 'agent-1', nodeName: 'gpu-node-1', clusterId: 'cluster-a', agentVersion: '0.1.0 ✓' } }],
    ['a hello with every field empty', { hello: { agentId: '', nodeName: '', clusterId: '', agentVersion: '' } }],
    ['a batch of several series, repeated, with negative and large numbers', { batch }],
    ['a batch with nothing set', { batch: { ...batch, samples: [], sequence: 0, droppedSamples: 0, sentAtUnixMs: 0, agentId: '' } }],
    ['an empty message', {}],
  ];
  for (const [name, message] of cases) {
    it(`given ${name}, then it reads what the generic decoder reads`, () => {
      const bytes = encode(message);
      expect(decodeAgentMessage(bytes)).to.deep.equal(generic.requestDeserialize(bytes));
    });
  }

  it('given fields it does not know, then it skips them as the generic decoder does', () => {
    // Field 15 as a varint, field 14 as 8 bytes, field 13 length-delimited: a newer agent's additions.
    const bytes = Buffer.concat([encode({ batch }), Buffer.from([15 << 3, 1, (14 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8, (13 << 3) | 2, 2, 0x68, 0x69])]);
    expect(decodeAgentMessage(bytes)).to.deep.equal(generic.requestDeserialize(bytes));
  });

  it('given samples of one series, then they share one frozen labels object', () => {
    const decoded = decodeAgentMessage(encode({ batch }));
    if (decoded.body !== 'batch') throw new Error('expected a batch');
    const [first, second, third] = decoded.batch.samples;
    expect(third!.labels).to.equal(first!.labels);
    expect(second!.labels).not.to.equal(first!.labels);
    expect(Object.isFrozen(first!.labels)).to.equal(true);
  });

  it('given a truncated message, then it throws rather than read past the end', () => {
    const bytes = encode({ batch });
    for (const cut of [1, 7, bytes.length - 3]) expect(() => decodeAgentMessage(bytes.subarray(0, cut)), `cut at ${cut}`).to.throw(RangeError);
  });
});
