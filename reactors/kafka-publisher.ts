// Publishes every domain event to a partitioned log (Kafka) exactly once, in log order per stream, across crashes.
import { accessEvents } from '../domain/access.js';
import { autonomyEvents } from '../domain/autonomy.js';
import { actionPlanEvents } from '../domain/action-plan.js';
import { analysisEvents } from '../domain/analysis/analysis.js';
import { claimEvents } from '../domain/claim.js';
import { clusterEvents } from '../domain/cluster.js';
import { deploymentEvents } from '../domain/deployment.js';
import { comparePositions, type Position, type RecordedEvent } from '../domain/event-store.js';
import { ledgerEvents } from '../domain/ledger.js';
import { ledgerAuditEvents } from '../domain/ledger-audit.js';
import { nodeEvents } from '../domain/node.js';
import { policyEvents } from '../domain/policy-evaluation.js';
import { policySetEvents } from '../domain/policy-set.js';
import { rolloutEvents } from '../domain/rollout.js';
import { timerEvents } from '../domain/timer.js';
import { workloadEvents } from '../domain/workload.js';
import type { Reactor } from './reactor-runtime.js';

/**
 * Where events are published: a log split into partitions, each of which keeps the order it was written in and
 * can say what was written last. Partitions are named by the log; the publisher only compares and remembers them.
 */
export interface PartitionedEventLog {
  /**
   * Events of one lane may share a partition, so the publisher sends them one at a time in log order; events of
   * different lanes never share one and go out side by side. Synchronous: the reactor runtime asks it per event.
   */
  laneOf(event: RecordedEvent): string;
  /** The partition the event goes to: the same for every event of a stream. */
  partitionOf(event: RecordedEvent): Promise<string>;
  /**
   * The position of the last event stored in each partition that holds any, read from the log itself; limited
   * to `partitions` when given.
   */
  lastPositions(partitions?: ReadonlySet<string>): Promise<Map<string, Position>>;
  /** Stores one event in its partition; resolves once the log has it durably. */
  publish(event: RecordedEvent, partition: string): Promise<void>;
  connect(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Every event type of every domain catalogue. The reactor runtime subscribes by type, so a catalogue left out
 * here is not published; `test/unit/kafka-publisher.test.ts` fails when a catalogue in `domain/` is missing.
 */
export const DOMAIN_EVENT_TYPES: readonly string[] = [
  ...new Set(
    [
      accessEvents,
      actionPlanEvents,
      analysisEvents,
      autonomyEvents,
      claimEvents,
      clusterEvents,
      deploymentEvents,
      ledgerEvents,
      ledgerAuditEvents,
      nodeEvents,
      policyEvents,
      policySetEvents,
      rolloutEvents,
      timerEvents,
      workloadEvents,
    ].flatMap((catalogue): readonly string[] => catalogue.types),
  ),
].sort();

export const KAFKA_PUBLISHER = 'kafka-publisher';

/**
 * The runtime handles an event at least once: it moves the checkpoint only after `handle` returns, so after a
 * crash the events since the checkpoint come again, and some of them may already be in the log. Each partition
 * holds its events in log order (the lanes of `laneOf` one event at a time, an idempotent producer),
 * so its last position says exactly which events it already has: on start the publisher reads every partition's
 * last position, and an event at or below its partition's is skipped.
 */
export class KafkaPublisher implements Reactor {
  readonly name = KAFKA_PUBLISHER;
  readonly eventTypes = DOMAIN_EVENT_TYPES;
  /** The position of the last event each partition holds, as far as this instance knows. */
  private published = new Map<string, Position>();
  /**
   * Partitions where a publish failed: the event may have been stored anyway (the answer was lost), so the
   * partition's last position is read from the log again before the event is tried again.
   */
  private readonly unsure = new Set<string>();

  constructor(private readonly log: PartitionedEventLog) {}

  async start(): Promise<void> {
    await this.log.connect();
    this.unsure.clear();
    this.published = await this.log.lastPositions();
  }

  keyOf(event: RecordedEvent): string {
    return this.log.laneOf(event);
  }

  async handle(event: RecordedEvent): Promise<void> {
    const partition = await this.log.partitionOf(event);
    if (this.unsure.has(partition)) await this.reread(partition);
    if (this.alreadyPublished(partition, event.position)) return;
    try {
      await this.log.publish(event, partition);
    } catch (error) {
      this.unsure.add(partition);
      throw error;
    }
    this.published.set(partition, event.position);
  }

  async stop(): Promise<void> {
    await this.log.close();
  }

  private alreadyPublished(partition: string, position: Position): boolean {
    const last = this.published.get(partition);
    return last !== undefined && comparePositions(position, last) <= 0;
  }

  private async reread(partition: string): Promise<void> {
    const last = (await this.log.lastPositions(new Set([partition]))).get(partition);
    if (last === undefined) this.published.delete(partition);
    else this.published.set(partition, last);
    this.unsure.delete(partition);
  }
}
