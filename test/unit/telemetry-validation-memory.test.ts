// Batch validation remembers what passed across batches (agents send the same series in every batch): only what
// cannot change may be remembered, and nothing that failed.
import { expect } from 'chai';
import type { Batch, Hello, Sample } from '../../adapters/grpc/telemetry-proto.js';
import { InvalidTelemetry, validateBatch } from '../../telemetry/batch-validation.js';

const NOW = Date.parse('2030-01-01T12:00:00Z');
const hello: Hello = { agentId: 'agent-1', nodeName: 'gpu-node-1', clusterId: 'cluster-a', agentVersion: '0.1.0' };
const context = { hello, nowMs: NOW, retentionMs: 7 * 86_400_000 };

function batchOf(samples: Sample[], sequence = 1): Batch {
  return { ...hello, sequence, samples, droppedSamples: 0, sentAtUnixMs: NOW };
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

describe('batch validation across batches', () => {
  it('given a labels object that passed and is not frozen, when it is changed to break a rule, then the next batch holding it is refused', () => {
    const labels: Record<string, string> = { gpu: '0', pass: 'memory-1' };
    validateBatch(batchOf([{ metric: 'm_1', labels, value: 1, timestampUnixMs: NOW }]), context);
    labels['__reserved'] = 'x';
    expect(refusal(() => validateBatch(batchOf([{ metric: 'm_1', labels, value: 1, timestampUnixMs: NOW }], 2), context))).to.equal(
      'samples[0].labels.__reserved: a label name not starting with "__" (reserved)',
    );
  });

  it('given a labels object that passed and is not frozen, when a value is changed to a number, then the next batch holding it is refused', () => {
    const labels: Record<string, unknown> = { gpu: '0', pass: 'memory-2' };
    const sample = { metric: 'm_2', labels, value: 1, timestampUnixMs: NOW } as Sample;
    validateBatch(batchOf([sample]), context);
    labels['gpu'] = 7;
    expect(refusal(() => validateBatch(batchOf([sample], 2), context))).to.equal('samples[0].labels.gpu: a string');
  });

  it('given a frozen labels object that was refused, when it comes again, then it is refused again', () => {
    const labels = Object.freeze({ gpu: 'with\0nul' });
    const sample = { metric: 'm_3', labels, value: 1, timestampUnixMs: NOW };
    const first = refusal(() => validateBatch(batchOf([sample]), context));
    expect(refusal(() => validateBatch(batchOf([sample], 2), context))).to.equal(first).and.to.equal('samples[0].labels.gpu: a value without NUL characters');
  });

  it('given a frozen labels object that passed, then each later sample holding it is still judged on its own value and time', () => {
    const labels = Object.freeze({ gpu: '0', pass: 'memory-4' });
    validateBatch(batchOf([{ metric: 'm_4', labels, value: 1, timestampUnixMs: NOW }]), context);
    const samples = [
      { metric: 'm_4', labels, value: 1, timestampUnixMs: NOW },
      { metric: 'm_4', labels, value: NaN, timestampUnixMs: NOW },
    ];
    expect(refusal(() => validateBatch(batchOf(samples, 2), context))).to.equal('samples[1].value: a finite number');
    const late = [{ metric: 'm_4', labels, value: 1, timestampUnixMs: NOW + 3_600_000 }];
    expect(refusal(() => validateBatch(batchOf(late, 3), context))).to.match(/^samples\[0\]\.timestampUnixMs: a time between/);
  });
});
