// The Kafka publisher against an in-memory partitioned log: its exactly-once rule, one request per batch, and its coverage of every domain event type.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { encodePosition } from '../../adapters/event-store/position.js';
import type { Position, RecordedEvent } from '../../domain/event-store.js';
import { DOMAIN_EVENT_TYPES, KafkaPublisher, type PartitionedEvent, type PartitionedEventLog } from '../../reactors/kafka-publisher.js';

/**
 * Partitions named after the stream's category; every request is recorded (a batch is one); `loseAnswers` stores
 * what was sent but fails the call, as a lost answer does.
 */
class MemoryLog implements PartitionedEventLog {
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

/** What the reactor runtime does with one event: handle it, and try again after a throw. */
async function handleUntilDone(publisher: KafkaPublisher, event: RecordedEvent): Promise<void> {
  for (;;) {
    try {
      return await publisher.handle(event);
    } catch {
      continue;
    }
  }
}

describe('Kafka publisher: exactly once from an at-least-once runtime', () => {
  it('given a crash after events reached the log but before the checkpoint, when they come again, then only the ones the log lacks are published', async () => {
    const log = new MemoryLog();
    const first = new KafkaPublisher(log);
    await first.start();
    for (const at of [1n, 2n, 3n]) await first.handle(recorded('deployment-a', at));
    await first.handle(recorded('cluster-a', 4n));
    // the process dies here; the checkpoint was still before position 1
    const second = new KafkaPublisher(log);
    await second.start();
    for (const event of [1n, 2n, 3n, 5n].map((at) => recorded('deployment-a', at))) await second.handle(event);
    for (const event of [4n, 6n].map((at) => recorded('cluster-a', at))) await second.handle(event);
    expect(log.ids('deployment')).to.deep.equal(['deployment-a@1', 'deployment-a@2', 'deployment-a@3', 'deployment-a@5']);
    expect(log.ids('cluster')).to.deep.equal(['cluster-a@4', 'cluster-a@6']);
  });

  it('given partitions that hold different amounts, when events come again, then each is judged by its own partition', async () => {
    const log = new MemoryLog();
    log.partitions.set('deployment', [recorded('deployment-a', 9n)]);
    const publisher = new KafkaPublisher(log);
    await publisher.start();
    await publisher.handle(recorded('deployment-b', 8n));
    await publisher.handle(recorded('cluster-a', 8n));
    expect(log.ids('deployment')).to.deep.equal(['deployment-a@9']);
    expect(log.ids('cluster')).to.deep.equal(['cluster-a@8']);
  });

  it('given a publish whose answer was lost after the log stored it, when the runtime tries again, then it is not stored twice', async () => {
    const log = new MemoryLog();
    const publisher = new KafkaPublisher(log);
    await publisher.start();
    log.loseAnswers = 1;
    await handleUntilDone(publisher, recorded('plan-a', 1n));
    await handleUntilDone(publisher, recorded('plan-a', 2n));
    expect(log.ids('plan')).to.deep.equal(['plan-a@1', 'plan-a@2']);
  });
});

describe('Kafka publisher: event types', () => {
  it('given every event catalogue exported from domain/, then the publisher subscribes to each of its types', async () => {
    const domain = path.resolve('domain');
    const missing: string[] = [];
    for (const file of (await readdir(domain)).filter((name) => name.endsWith('.ts'))) {
      const module = (await import(pathToFileURL(path.join(domain, file)).href)) as Record<string, unknown>;
      for (const [name, value] of Object.entries(module)) {
        if (!isCatalogue(value)) continue;
        for (const type of value.types) if (!DOMAIN_EVENT_TYPES.includes(type)) missing.push(`${file} ${name}.${type}`);
      }
    }
    expect(missing, 'event types the publisher would not publish').to.deep.equal([]);
    expect(DOMAIN_EVENT_TYPES).to.include.members(['DeploymentCreated', 'PolicyEvaluated', 'ClusterRegistered']);
  });
});

function isCatalogue(value: unknown): value is { types: readonly string[] } {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return Array.isArray(candidate.types) && typeof candidate.parse === 'function' && typeof candidate.version === 'function';
}

describe('Kafka publisher: batches', () => {
  it('given a batch across partitions, then it goes to the log in one request, in log order', async () => {
    const log = new MemoryLog();
    const publisher = new KafkaPublisher(log);
    await publisher.start();
    await publisher.handleBatch([recorded('deployment-a', 1n), recorded('cluster-a', 2n), recorded('deployment-a', 3n)]);
    expect(log.requests).to.deep.equal([['deployment-a@1', 'cluster-a@2', 'deployment-a@3']]);
    expect(log.ids('deployment')).to.deep.equal(['deployment-a@1', 'deployment-a@3']);
  });

  it('given a batch that comes again after a crash, then only the events its partitions lack are sent', async () => {
    const log = new MemoryLog();
    log.partitions.set('deployment', [recorded('deployment-a', 1n), recorded('deployment-a', 2n)]);
    const publisher = new KafkaPublisher(log);
    await publisher.start();
    await publisher.handleBatch([1n, 2n, 3n].map((at) => recorded('deployment-a', at)).concat(recorded('cluster-a', 4n)));
    expect(log.requests).to.deep.equal([['deployment-a@3', 'cluster-a@4']]);
  });

  it('given a batch whose answer was lost after the log stored it, when the runtime tries it again, then nothing is stored twice', async () => {
    const log = new MemoryLog();
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
