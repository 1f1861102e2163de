// What every source of samples on a node looks like to the agent, and the one shape its failures take.
import type { Sample } from '../adapters/grpc/telemetry-proto.js';

export type { Sample };

/**
 * One source of samples. `collect` answers the current values or throws a CollectorFailure; the agent runs every
 * collector each round, and one that fails is counted and logged while the others carry on.
 */
export interface Collector {
  /** The `collector` label of sentinel_agent_collector_failures_total, and the name in logs. */
  readonly name: string;
  collect(): Promise<Sample[]>;
}

/**
 * The source of GPU samples: nvidia-smi on a real node; the embedded default injects a simulated one in its place,
 * so everything downstream of it (/metrics, the push, the ingest) runs the same either way.
 */
export type GpuSource = Collector;

/** timeout: a command hung and was killed; exit: a command failed; parse: output not understood; io: a file could not be read. */
export type FailureReason = 'timeout' | 'exit' | 'parse' | 'io';

export class CollectorFailure extends Error {
  override name = 'CollectorFailure';
  constructor(
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
  }
}

/** Any error as a CollectorFailure: one a collector did not classify is an I/O failure (a read, a spawn). */
export function asFailure(error: unknown): CollectorFailure {
  if (error instanceof CollectorFailure) return error;
  return new CollectorFailure('io', error instanceof Error ? error.message : String(error));
}
