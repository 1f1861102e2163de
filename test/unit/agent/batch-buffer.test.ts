// The agent's buffer: batches close at their size, sequences are given on first write and kept, overflow drops the oldest.
import { expect } from 'chai';
import { BatchBuffer } from '../../../agent/batch-buffer.js';
import type { Sample } from '../../../agent/collector.js';

const samples = (from: number, count: number): Sample[] =>
  Array.from({ length: count }, (_, i) => ({ metric: 'm', labels: {}, value: from + i, timestampUnixMs: 0 }));
const values = (batch: { samples: Sample[] }) => batch.samples.map((s) => s.value);

describe('agent batch buffer', () => {
  it('given samples past the batch size, then full batches close and the rest stays open until closed', () => {
    const buffer = new BatchBuffer({ capacity: 100, batchMaxSamples: 4 });
    buffer.add(samples(1, 10));
    expect(buffer.toWrite(0).map(values)).to.deep.equal([[1, 2, 3, 4], [5, 6, 7, 8]]);
    expect(buffer.hasOpen).to.equal(true);
    buffer.closeOpen();
    expect(buffer.toWrite(2).map((b) => [b.sequence, values(b)])).to.deep.equal([[3, [9, 10]]]);
    expect(buffer.size).to.equal(10);
  });

  it('given a sequence given on first write, then a resend keeps it and acknowledged batches go', () => {
    const buffer = new BatchBuffer({ capacity: 100, batchMaxSamples: 2 });
    buffer.add(samples(1, 6));
    expect(buffer.toWrite(0).map((b) => b.sequence)).to.deep.equal([1, 2, 3]);
    expect(buffer.acknowledge(1)).to.equal(1);
    // Reconnected: the server stored 2 as well.
    expect(buffer.resumeAbove(2)).to.equal(1);
    expect(buffer.toWrite(2).map((b) => [b.sequence, values(b)])).to.deep.equal([[3, [5, 6]]]);
    expect(buffer.size).to.equal(2);
  });

  it('given a server that holds more than this agent sent (a restart), then new batches are numbered above its mark', () => {
    const buffer = new BatchBuffer({ capacity: 100, batchMaxSamples: 2 });
    buffer.add(samples(1, 2));
    buffer.resumeAbove(41);
    expect(buffer.toWrite(41).map((b) => b.sequence)).to.deep.equal([42]);
  });

  it('given more samples than it holds, then the oldest are dropped and counted', () => {
    const buffer = new BatchBuffer({ capacity: 5, batchMaxSamples: 3 });
    expect(buffer.add(samples(1, 4))).to.equal(0);
    expect(buffer.add(samples(5, 4))).to.equal(3);
    expect(buffer.dropped).to.equal(3);
    expect(buffer.size).to.equal(5);
    buffer.closeOpen();
    expect(buffer.toWrite(0).map(values)).to.deep.equal([[4, 5, 6], [7, 8]]);
  });

  it('given the oldest written batch refused, then it is dropped and its samples counted, and the next goes out', () => {
    const buffer = new BatchBuffer({ capacity: 100, batchMaxSamples: 2 });
    buffer.add(samples(1, 4));
    buffer.toWrite(0);
    expect(buffer.refuseOldestWritten()).to.equal(2);
    expect(buffer.dropped).to.equal(2);
    expect(buffer.toWrite(1).map((b) => [b.sequence, values(b)])).to.deep.equal([[2, [3, 4]]]);
  });
});
