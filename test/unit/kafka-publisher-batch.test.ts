// The Kafka publisher's batches against an in-memory partitioned log: one request per batch, and the exactly-once rule.
import { expect } from 'chai';
import { encodePosition } from '../../adapters/event-store/position.js';
import type { Position, RecordedEvent } from '../../domain/event-store.js';
import { KafkaPublisher, type PartitionedEvent, type PartitionedEventLog } from '../../reactors/kafka-publisher.js';

/** Partitions named after the stream's category; every request is recorded; `loseAnswers` stores a batch but fails the call. */
class BatchLog implements PartitionedEventLog {
  readonly partitions = new Map<string, RecordedEvent[]>();
  readonly requests: string[][] = [];
  loseAnswers = 0;

  async partitionOf(event: RecordedEvent): Promise<string> {
    return event.stream.split('-')[0]!;
  }
  async lastPositions(only?: ReadonlySet<string>): Promise<Map<string, Position>> {
    const last = new Map<string, Position>();
    for (const [name, events] of this.partitions) if ((!only || only.has(name)) && events.length > 0) last.set(name, events.at(-1)!.position);
    return last;
  }
  async publish(event: RecordedEvent, partition: string): Promise<void> {
    await this.publishAll([{ event, partition }]);
  }
  async publishAll(events: readonly PartitionedEvent[]): Promise<void> {
    this.requests.push(events.map(({ event }) => event.id));
    for (const { event, partition } of events) this.partitions.set(partition, [...(this.partitions.get(partition) ?? []), event]);
    if (this.loseAnswers-- > 0) throw new Error('request timed out');
  }
  async connect(): Promise<void> {}
  async close(): Promise<void> {}
  ids(partition: string): string[] {
    return (this.partitions.get(partition) ?? []).map((event) => event.id);
  }
}

function recorded(stream: string, at: bigint): RecordedEvent {
  return {
    id: `${stream}@${at}`,
    stream,
    type: 'DeploymentScaled',
    schemaVersion: 1,
    revision: Number(at),
    position: encodePosition(at, 0n),
    recordedAt: new Date(0),
    data: {},
    metadata: {},
  };
}

describe('Kafka publisher: batches', () => {
  it('given a batch across partitions, then it goes to the log in one request, in log order', async () => {
    const log = new BatchLog();
    const publisher = new KafkaPublisher(log);
    await publisher.start();
    await publisher.handleBatch([recorded('deployment-a', 1n), recorded('cluster-a', 2n), recorded('deployment-a', 3n)]);
    expect(log.requests).to.deep.equal([['deployment-a@1', 'cluster-a@2', 'deployment-a@3']]);
    expect(log.ids('deployment')).to.deep.equal(['deployment-a@1', 'deployment-a@3']);
  });

  it('given a batch that comes again after a crash, then only the events its partitions lack are sent', async () => {
    const log = new BatchLog();
    log.partitions.set('deployment', [recorded('deployment-a', 1n), recorded('deployment-a', 2n)]);
    const publisher = new KafkaPublisher(log);
    await publisher.start();
    await publisher.handleBatch([1n, 2n, 3n].map((at) => recorded('deployment-a', at)).concat(recorded('cluster-a', 4n)));
    expect(log.requests).to.deep.equal([['deployment-a@3', 'cluster-a@4']]);
  });

  it('given a batch whose answer was lost after the log stored it, when the runtime tries it again, then nothing is stored twice', async () => {
    const log = new BatchLog();
    const publisher = new KafkaPublisher(log);
    await publisher.start();
    const batch = [recorded('plan-a', 1n), recorded('cluster-a', 2n)];
    log.loseAnswers = 1;
    let error: unknown;
    await publisher.handleBatch(batch).catch((thrown: unknown) => (error = thrown));
    expect(error).to.be.an('error');
    await publisher.handleBatch([...batch, recorded('plan-a', 3n)]);
    expect(log.ids('plan')).to.deep.equal(['plan-a@1', 'plan-a@3']);
    expect(log.ids('cluster')).to.deep.equal(['cluster-a@2']);
  });
});
