// The push's own encoder writes the bytes proto-loader's serializer writes, so the ingest reads the same messages.
import { expect } from 'chai';
import { decodeAgentMessage, telemetryService, type AgentMessageOut, type Batch, type Sample } from '../../adapters/grpc/telemetry-proto.js';
import { encodeAgentMessage } from '../../agent/message-encoder.js';

const protobufjs = (message: AgentMessageOut): Buffer => telemetryService['Push']!.requestSerialize(message);

const gpuLabels = { gpu: '3', UUID: 'GPU-5e1c0c3a', device: 'nvidia3', modelName: 'NVIDIA A100-SXM4-80GB', pci_bus_id: '00000000:1F:00.0', Hostname: 'gpu-node-1' };

function batch(samples: Sample[], overrides: Partial<Batch> = {}): AgentMessageOut {
  return { batch: { agentId: 'c1/gpu-node-1', nodeName: 'gpu-node-1', clusterId: 'c1', sequence: 42, samples, droppedSamples: 0, sentAtUnixMs: 1_765_000_000_123, ...overrides } };
}

describe('agent message encoder', () => {
  it('given a hello, then its bytes are the generic encoder\'s', () => {
    const hello: AgentMessageOut = { hello: { agentId: 'c1/gpu-node-1', nodeName: 'gpu-node-1', clusterId: 'c1', agentVersion: '0.1.0' } };
    expect(encodeAgentMessage(hello).equals(protobufjs(hello))).to.equal(true);
  });

  it('given a batch of host and GPU samples, then its bytes are the generic encoder\'s and decode to the same batch', () => {
    const at = 1_765_000_000_000;
    const samples: Sample[] = [
      ...Array.from({ length: 300 }, (_, i) => ({ metric: 'node_cpu_seconds_total', labels: { cpu: String(i % 16), mode: 'user' }, value: i * 1.25, timestampUnixMs: at + i })),
      { metric: 'DCGM_FI_DEV_POWER_USAGE', labels: gpuLabels, value: 312.45, timestampUnixMs: at },
      { metric: 'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', labels: gpuLabels, value: 2 ** 40 + 3, timestampUnixMs: at },
      { metric: 'node_memory_MemTotal_bytes', labels: {}, value: 0, timestampUnixMs: at },
      { metric: 'node_network_up', labels: { device: 'ünïcode-ɛth0' }, value: -0.5, timestampUnixMs: at },
      { metric: 'x'.repeat(200), labels: { long: 'v'.repeat(300) }, value: Number.NaN, timestampUnixMs: at },
    ];
    const message = batch(samples, { sequence: 2 ** 40, droppedSamples: 123_456 });
    const bytes = encodeAgentMessage(message);
    expect(bytes.equals(protobufjs(message))).to.equal(true);
    const decoded = decodeAgentMessage(bytes);
    expect(decoded.body).to.equal('batch');
    if (decoded.body !== 'batch') return;
    expect(decoded.batch.samples.map((s) => [s.metric, { ...s.labels }, s.timestampUnixMs])).to.deep.equal(samples.map((s) => [s.metric, s.labels, s.timestampUnixMs]));
    expect(decoded.batch.sequence).to.equal(2 ** 40);
  });

  it('given integers outside the usual range, then they are written as protobufjs writes them from a number', () => {
    for (const timestampUnixMs of [-1, -1_765_000_000_000, 1.9, -1.9, 2 ** 53 + 2, 2 ** 63, -(2 ** 64), Number.NaN]) {
      const message = batch([{ metric: 'm', labels: { a: 'b' }, value: 1, timestampUnixMs }], { sentAtUnixMs: timestampUnixMs });
      expect(encodeAgentMessage(message).equals(protobufjs(message)), `timestamp ${timestampUnixMs}`).to.equal(true);
    }
  });

  it('given an empty batch, then its bytes are the generic encoder\'s', () => {
    const message = batch([], { agentId: '', sequence: 0 });
    expect(encodeAgentMessage(message).equals(protobufjs(message))).to.equal(true);
  });
});
