// The agent's bounded buffer of samples waiting to be stored by Sentinel: batching, sequence numbers, overflow and acknowledgements.
import type { Sample } from './collector.js';

export interface BufferedBatch {
  /** Given when the batch is first written to a stream, never before, and kept for every resend. */
  sequence?: number;
  samples: Sample[];
}

export interface BufferLimits {
  /** Samples held in all, open and closed batches together; beyond it the oldest go. */
  capacity: number;
  /** A batch closes as soon as it holds this many samples. */
  batchMaxSamples: number;
}

/**
 * Samples in order: closed batches (those written but not yet acknowledged first, then those never written), and
 * the open batch still filling up. Sequence numbers are handed out only when a batch is first written, so that
 * after a restart the agent numbers from the server's high-water mark up: the server never sees a number it has
 * stored reused, and the agent keeps no state file.
 */
export class BatchBuffer {
  private readonly closed: BufferedBatch[] = [];
  private open: Sample[] = [];
  private held = 0;
  private nextSequence = 1;
  /** Samples dropped since start, by overflow or with a batch the server refused; it rides on every batch. */
  dropped = 0;

  constructor(private readonly limits: BufferLimits) {}

  /** Samples held, in every batch. */
  get size(): number {
    return this.held;
  }

  /** Whether the open batch holds anything (its age decides when it closes). */
  get hasOpen(): boolean {
    return this.open.length > 0;
  }

  /** Appends samples, closing batches as they fill; answers how many of the oldest samples went to make room. */
  add(samples: readonly Sample[]): number {
    for (let start = 0; start < samples.length; ) {
      const room = this.limits.batchMaxSamples - this.open.length;
      const part = samples.slice(start, start + room);
      this.open.push(...part);
      start += part.length;
      if (this.open.length >= this.limits.batchMaxSamples) this.closeOpen();
    }
    this.held += samples.length;
    return this.dropOverflow();
  }

  /** Closes the open batch, when it holds anything. */
  closeOpen(): void {
    if (this.open.length === 0) return;
    this.closed.push({ samples: this.open });
    this.open = [];
  }

  /**
   * The closed batches not yet written since `afterSequence`, in order, each numbered now if it never was: those
   * already numbered above it (resends) and then the new ones.
   */
  toWrite(afterSequence: number): Required<BufferedBatch>[] {
    const batches: Required<BufferedBatch>[] = [];
    for (const batch of this.closed) {
      if (batch.sequence !== undefined && batch.sequence <= afterSequence) continue;
      batch.sequence ??= this.nextSequence++;
      batches.push(batch as Required<BufferedBatch>);
    }
    return batches;
  }

  /** Drops every batch numbered up to `sequence` (the server has stored them); answers how many. */
  acknowledge(sequence: number): number {
    let count = 0;
    while (this.closed[0]?.sequence !== undefined && this.closed[0].sequence <= sequence) {
      this.held -= this.closed.shift()?.samples.length ?? 0;
      count += 1;
    }
    return count;
  }

  /** After the server said it has stored up to `highWater`: drops what that covers, and numbers new batches above it. */
  resumeAbove(highWater: number): number {
    this.nextSequence = Math.max(this.nextSequence, highWater + 1);
    return this.acknowledge(highWater);
  }

  /** Drops the oldest written batch, one the server refused and would refuse again; answers its sample count. */
  refuseOldestWritten(): number {
    if (this.closed[0]?.sequence === undefined) return 0;
    const count = this.closed.shift()?.samples.length ?? 0;
    this.held -= count;
    this.dropped += count;
    return count;
  }

  private dropOverflow(): number {
    let excess = this.held - this.limits.capacity;
    if (excess <= 0) return 0;
    const dropped = excess;
    while (excess > 0) {
      const oldest = this.closed[0];
      const samples = oldest ? oldest.samples : this.open;
      const taken = Math.min(excess, samples.length);
      samples.splice(0, taken);
      excess -= taken;
      if (oldest && oldest.samples.length === 0) this.closed.shift();
    }
    this.held -= dropped;
    this.dropped += dropped;
    return dropped;
  }
}
