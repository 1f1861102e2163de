// Child process for the Kafka exactly-once test: runs the Kafka publisher on a PostgreSQL store until it is killed.
// Prints `published <position> <event id>` per event Kafka acknowledged. With PUBLISHER_STALL_AFTER=n, the handler of
// the n-th acknowledged event's batch never returns (it prints `stalled <position> <event id>`), so the runtime's
// checkpoint can never cover that event: the process is then killed with an event in Kafka beyond its checkpoint.
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { parseBrokers } from '../../adapters/kafka/client.js';
import { KafkaEventLog } from '../../adapters/kafka/kafka-event-log.js';
import { AdvisoryLease } from '../../adapters/postgres/advisory-lease.js';
import { openPostgres } from '../../adapters/postgres/database.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { KafkaPublisher, type PartitionedEvent } from '../../reactors/kafka-publisher.js';
import { ReactorRuntime } from '../../reactors/reactor-runtime.js';

const url = required('PUBLISHER_DATABASE_URL');
const stallAfter = Number(process.env.PUBLISHER_STALL_AFTER ?? 0);

class AnnouncingEventLog extends KafkaEventLog {
  private acknowledged = 0;

  override async publishAll(events: readonly PartitionedEvent[]): Promise<void> {
    await super.publishAll(events);
    await this.announce(events.map(({ event }) => event));
  }

  private async announce(events: readonly RecordedEvent[]): Promise<void> {
    for (const event of events) {
      this.acknowledged += 1;
      if (this.acknowledged === stallAfter) {
        process.stdout.write(`stalled ${event.position} ${event.id}\n`);
        await new Promise<never>(() => undefined);
      }
      process.stdout.write(`published ${event.position} ${event.id}\n`);
    }
  }
}

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const db = openPostgres(url);
const store = await PostgresEventStore.open(db);
const runtime = new ReactorRuntime(db.knex, store, { logger, lease: new AdvisoryLease(url), standbyRetryMs: 100, retryBaseMs: 50 });
const log = new AnnouncingEventLog({
  brokers: parseBrokers(required('KAFKA_BROKERS')),
  topicPrefix: required('PUBLISHER_TOPIC_PREFIX'),
  partitions: 3,
  logger,
});
runtime.add(new KafkaPublisher(log));

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set for the publisher child process`);
  return value;
}
