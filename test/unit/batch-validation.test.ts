// What the telemetry ingest accepts in a hello and a batch, and how a refusal names the field.
import { expect } from 'chai';
import type { Batch, Hello } from '../../adapters/grpc/telemetry-proto.js';
import { fieldPath, InvalidTelemetry, validateBatch, validateHello } from '../../telemetry/batch-validation.js';

const NOW = Date.parse('2030-01-01T12:00:00Z');
const DAY = 86_400_000;
const hello: Hello = { agentId: 'agent-1', nodeName: 'gpu-node-1', clusterId: 'cluster-a', agentVersion: '0.1.0' };
const context = { hello, nowMs: NOW, retentionMs: 7 * DAY };

function batch(overrides: Record<string, unknown> = {}): Batch {
  return {
    agentId: 'agent-1',
    nodeName: 'gpu-node-1',
    clusterId: 'cluster-a',
    sequence: 1,
    samples: [
      { metric: 'DCGM_FI_DEV_GPU_UTIL', labels: { gpu: '0', UUID: 'GPU-1', modelName: 'NVIDIA H100' }, value: 97, timestampUnixMs: NOW - 1000 },
      { metric: 'node_cpu_seconds_total', labels: { cpu: '0', mode: 'idle' }, value: 12.5, timestampUnixMs: NOW },
    ],
    droppedSamples: 0,
    sentAtUnixMs: NOW,
    ...overrides,
  } as Batch;
}

function withSample(index: number, overrides: Record<string, unknown>): Batch {
  const base = batch();
  return { ...base, samples: base.samples.map((s, i) => (i === index ? { ...s, ...overrides } : s)) } as Batch;
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidTelemetry);
    return (error as InvalidTelemetry).message;
  }
  throw new Error('expected a refusal');
}

describe('telemetry batch validation', () => {
  it('accepts a well-formed batch of the stream\'s agent', () => {
    expect(validateBatch(batch(), context)).to.deep.equal(batch());
  });

  it('accepts a hello with identities and an optional version, and refuses empty or overlong identities', () => {
    expect(validateHello({ ...hello, agentVersion: '' })).to.deep.equal({ ...hello, agentVersion: '' });
    expect(refusal(() => validateHello({ ...hello, agentId: '' }))).to.equal('agentId: must not be empty');
    expect(refusal(() => validateHello({ ...hello, clusterId: 'c'.repeat(254) }))).to.equal('clusterId: at most 253 characters');
    expect(refusal(() => validateHello({ ...hello, nodeName: 'node\0' }))).to.equal('nodeName: no NUL characters');
  });

  const refusals: [string, () => Batch, string][] = [
    ['a value that is not a number', () => withSample(1, { value: NaN }), 'samples[1].value: a finite number'],
    ['an infinite value', () => withSample(0, { value: -Infinity }), 'samples[0].value: a finite number'],
    ['a metric name with a dash', () => withSample(0, { metric: 'gpu-util' }), 'samples[0].metric: a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)'],
    ['a metric name starting with a digit', () => withSample(1, { metric: '9lives' }), 'samples[1].metric: a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)'],
    ['a label name with a colon', () => withSample(0, { labels: { 'a:b': 'x' } }), 'samples[0].labels.a:b: a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)'],
    ['a reserved label name', () => withSample(0, { labels: { __name__: 'x' } }), 'samples[0].labels.__name__: a label name not starting with "__" (reserved)'],
    ['a label value too long', () => withSample(0, { labels: { gpu: 'x'.repeat(1025) } }), 'samples[0].labels.gpu: a value of at most 1024 characters'],
    ['a label value with a NUL character', () => withSample(1, { labels: { mode: 'idle\0cpu' } }), 'samples[1].labels.mode: a value without NUL characters'],
    ['33 labels', () => withSample(0, { labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`l${i}`, 'v'])) }), 'samples[0].labels: at most 32 labels'],
    ['a timestamp beyond the retention', () => withSample(1, { timestampUnixMs: NOW - 7 * DAY - 1 }), 'samples[1].timestampUnixMs: a time between 2029-12-25T12:00:00.000Z (the retention) and 2030-01-01T12:05:00.000Z'],
    ['a timestamp over 5 minutes ahead', () => withSample(0, { timestampUnixMs: NOW + 5 * 60_000 + 1 }), 'samples[0].timestampUnixMs: a time between'],
    ['a fractional timestamp', () => withSample(0, { timestampUnixMs: NOW + 0.5 }), 'samples[0].timestampUnixMs: whole milliseconds since the epoch'],
    ['sequence 0', () => batch({ sequence: 0 }), 'sequence: a positive integer'],
    ['a fractional sequence', () => batch({ sequence: 1.5 }), 'sequence: a positive integer'],
    ['no samples', () => batch({ samples: [] }), 'samples: at least one sample'],
    ['10,001 samples', () => batch({ samples: Array.from({ length: 10_001 }, () => batch().samples[0]) }), 'samples: at most 10000 samples'],
    ['a negative dropped count', () => batch({ droppedSamples: -1 }), 'droppedSamples: a count of at least 0'],
    ['an empty node name', () => batch({ nodeName: '' }), 'nodeName: must not be empty'],
    ["another agent's id", () => batch({ agentId: 'agent-2' }), 'agentId: the agentId of the stream\'s hello ("agent-1")'],
    ['another cluster', () => batch({ clusterId: 'cluster-b' }), 'clusterId: the clusterId of the stream\'s hello ("cluster-a")'],
  ];
  for (const [name, input, message] of refusals) {
    it(`refuses ${name}, naming the field`, () => {
      expect(refusal(() => validateBatch(input(), context))).to.contain(message);
    });
  }

  it('accepts exactly 32 labels, 10,000 samples, and timestamps at both ends of the window', () => {
    const labels = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`l${i}`, 'v']));
    expect(() => validateBatch(withSample(0, { labels }), context)).not.to.throw();
    expect(() => validateBatch(batch({ samples: Array.from({ length: 10_000 }, () => batch().samples[0]) }), context)).not.to.throw();
    expect(() => validateBatch(withSample(0, { timestampUnixMs: NOW - 7 * DAY }), context)).not.to.throw();
    expect(() => validateBatch(withSample(0, { timestampUnixMs: NOW + 5 * 60_000 }), context)).not.to.throw();
  });

  it('writes field paths the way a reader would', () => {
    expect(fieldPath(['samples', 3, 'labels', 'gpu'])).to.equal('samples[3].labels.gpu');
    expect(fieldPath(['sequence'])).to.equal('sequence');
  });
});
