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
  /** The partition the event goes to: the same for every event of a stream. */
  partitionOf(event: RecordedEvent): Promise<string>;
  /**
   * The position of the last event stored in each partition that holds any, read from the log itself; limited
   * to `partitions` when given. Fails soon after `signal` aborts (the reactor stops while it reads).
   */
  lastPositions(partitions?: ReadonlySet<string>, signal?: AbortSignal): Promise<Map<string, Position>>;
  /**
   * Stores events, each in its partition and in the order given within each, in one request; resolves once the
   * log has them all durably. A failure may leave any of them stored.
   */
  publishAll(events: readonly PartitionedEvent[]): Promise<void>;
  connect(): Promise<void>;
  close(): Promise<void>;
}

/** An event and the partition it goes to. */
export interface PartitionedEvent {
  event: RecordedEvent;
  partition: string;
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
 * The runtime hands over events in batches, at least once: it moves the checkpoint only after `handleBatch`
 * returns, so after a crash the events since the checkpoint come again, and some of them may already be in the
 * log. Each partition holds its events in log order (one batch at a time, in log order within it, through an
 * idempotent producer), so its last position says exactly which events it already has: on start the publisher
 * reads every partition's last position, and an event at or below its partition's is skipped. A batch is one
 * request to the log and one checkpoint, rather than a round trip to each per event.
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

  async start(signal?: AbortSignal): Promise<void> {
    await this.log.connect();
    this.unsure.clear();
    this.published = await this.log.lastPositions(undefined, signal);
  }

  /** One event: what the runtime falls back to when a batch failed for good, and a parked event's retry. */
  async handle(event: RecordedEvent): Promise<void> {
    await this.handleBatch([event]);
  }

  async handleBatch(events: readonly RecordedEvent[]): Promise<void> {
    const partitions = await Promise.all(events.map((event) => this.log.partitionOf(event)));
    for (const partition of new Set(partitions)) if (this.unsure.has(partition)) await this.reread(partition);
    const due = events
      .map((event, i) => ({ event, partition: partitions[i]! }))
      .filter(({ event, partition }) => !this.alreadyPublished(partition, event.position));
    if (due.length === 0) return;
    try {
      await this.log.publishAll(due);
    } catch (error) {
      for (const { partition } of due) this.unsure.add(partition);
      throw error;
    }
    for (const { event, partition } of due) this.published.set(partition, event.position);
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
