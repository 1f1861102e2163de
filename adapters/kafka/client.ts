// One kafkajs client for Sentinel: brokers from configuration, its log lines in Sentinel's log.
import { Kafka, logLevel, type LogEntry, type logCreator } from 'kafkajs';
import type { Logger } from 'pino';

/** `host:port`, with a host name, an IPv4 address or a bracketed IPv6 address. */
const BROKER = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;

/** Parses `KAFKA_BROKERS`: comma-separated `host:port` entries; throws naming the entry that is not one. */
export function parseBrokers(value: string): string[] {
  const brokers = value.split(',').map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  if (brokers.length === 0) throw new Error('KAFKA_BROKERS names no broker: expected host:port[,host:port...]');
  for (const broker of brokers) {
    if (!BROKER.test(broker)) throw new Error(`KAFKA_BROKERS entry ${JSON.stringify(broker)} is not host:port`);
  }
  return brokers;
}

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  /** Where kafkajs logs; silent when absent. */
  logger?: Logger;
}

export function createKafka(options: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: options.logger ? logLevel.WARN : logLevel.NOTHING,
    ...(options.logger ? { logCreator: toPino(options.logger) } : {}),
  });
}

/**
 * kafkajs logs every failed request as an error, also those it retries and that then succeed (a coordinator still
 * loading); what does not heal reaches Sentinel as a thrown error. So its errors are warnings here.
 */
function toPino(logger: Logger): logCreator {
  const child = logger.child({ component: 'kafkajs' });
  return () => (entry: LogEntry) => {
    const { message, ...fields } = entry.log;
    const level = entry.level <= logLevel.WARN ? 'warn' : entry.level === logLevel.INFO ? 'info' : 'debug';
    child[level]({ ...fields, namespace: entry.namespace }, message);
  };
}
