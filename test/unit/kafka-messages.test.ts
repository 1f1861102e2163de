// Kafka topic names, CloudEvents headers and broker lists: the layout consumers of Sentinel's topics rely on.
import { expect } from 'chai';
import { encodePosition } from '../../adapters/event-store/position.js';
import { HEADERS, positionOf, toEventMessage } from '../../adapters/kafka/cloudevents.js';
import { parseBrokers } from '../../adapters/kafka/client.js';
import { parsePartitionName, partitionName } from '../../adapters/kafka/partition-tails.js';
import { isEventTopic, topicOf } from '../../adapters/kafka/topics.js';
import type { RecordedEvent } from '../../domain/event-store.js';

function recorded(overrides: Partial<RecordedEvent> = {}): RecordedEvent {
  return {
    id: '6f1c2a4e-1b7d-4c1e-9a35-2f0f3f6b9d10',
    stream: 'deployment-42',
    type: 'DeploymentScaled',
    schemaVersion: 2,
    revision: 7,
    position: encodePosition(754n, 3n),
    recordedAt: new Date('2026-03-01T12:00:00.250Z'),
    data: { replicas: 3, reason: 'load' },
    metadata: { correlationId: 'c-1', actor: { id: 'alice', kind: 'user' } },
    ...overrides,
  };
}

describe('Kafka topics for domain events', () => {
  for (const [stream, topic] of [
    ['deployment-42', 'sentinel.deployments.v1'],
    ['cluster-eu-west-1', 'sentinel.clusters.v1'],
    ['plan-7f3e', 'sentinel.plans.v1'],
    ['policyset-global', 'sentinel.policysets.v1'],
    ['quota-global', 'sentinel.quotas.v1'],
    ['node-a1b2', 'sentinel.nodes.v1'],
    ['serviceaccount-9', 'sentinel.serviceaccounts.v1'],
  ] as const) {
    it(`given stream ${stream}, then its topic is ${topic}`, () => {
      expect(topicOf(stream)).to.equal(topic);
      expect(isEventTopic(topic)).to.equal(true);
    });
  }

  it('given a prefix, then topics are named under it and only those count as event topics', () => {
    expect(topicOf('deployment-1', 'staging.sentinel')).to.equal('staging.sentinel.deployments.v1');
    expect(isEventTopic('staging.sentinel.deployments.v1', 'staging.sentinel')).to.equal(true);
    expect(isEventTopic('sentinel.deployments.v1', 'staging.sentinel')).to.equal(false);
  });

  for (const topic of ['sentinel.deployments.v2', 'sentinel.telemetry', 'other.deployments.v1', 'sentinel.Deployments.v1', 'sentinel.s.v1']) {
    it(`given topic ${topic}, then it is not an event topic`, () => {
      expect(isEventTopic(topic)).to.equal(false);
    });
  }

  for (const stream of ['deployment', 'deployment-', '-42', 'Deployment-42', 'de_ploy-1', '$all']) {
    it(`given stream ${JSON.stringify(stream)}, then naming its topic fails and says what a stream name must be`, () => {
      expect(() => topicOf(stream)).to.throw(/<category>-<id>/);
    });
  }

  it('given a prefix Kafka would refuse, then naming a topic fails and names the prefix', () => {
    expect(() => topicOf('deployment-1', 'bad prefix')).to.throw(/"bad prefix"/);
  });
});

describe('Kafka messages in CloudEvents binary mode', () => {
  it('given an event, then the key is its stream, the value its data as JSON, the envelope in ce_ headers', () => {
    const event = recorded();
    const message = toEventMessage(event);
    expect(message.key).to.equal('deployment-42');
    expect(JSON.parse(message.value)).to.deep.equal({ replicas: 3, reason: 'load' });
    expect(message.timestamp).to.equal(String(event.recordedAt.getTime()));
    expect(message.headers).to.deep.equal({
      ce_specversion: '1.0',
      ce_id: event.id,
      ce_type: 'sentinel.DeploymentScaled.v2',
      ce_source: '/sentinel/deployment-42',
      ce_time: '2026-03-01T12:00:00.250Z',
      'content-type': 'application/json',
      sentinel_position: '00000000000002f2-0000000000000003',
      sentinel_revision: '7',
    });
  });

  it('given an event with a traceparent, then the message carries it', () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const message = toEventMessage(recorded({ metadata: { traceparent } }));
    expect(message.headers[HEADERS.traceparent]).to.equal(traceparent);
  });

  it('given a stream name with characters outside a URI path segment, then ce_source escapes them', () => {
    expect(toEventMessage(recorded({ stream: 'policyset-team a/b' })).headers[HEADERS.source]).to.equal('/sentinel/policyset-team%20a%2Fb');
  });

  it('given headers as a consumer receives them (buffers), then the position reads back', () => {
    const position = encodePosition(1n, 2n);
    expect(positionOf({ [HEADERS.position]: Buffer.from(position) })).to.equal(position);
    expect(positionOf({ [HEADERS.position]: [Buffer.from('x'), Buffer.from(position)] })).to.equal(position);
    expect(positionOf({})).to.equal(undefined);
  });
});

describe('Kafka configuration and partition names', () => {
  it('given KAFKA_BROKERS with spaces and IPv6, then it parses to host:port entries', () => {
    expect(parseBrokers(' 127.0.0.1:9092, kafka-0.kafka:9092,[::1]:9094 ')).to.deep.equal(['127.0.0.1:9092', 'kafka-0.kafka:9092', '[::1]:9094']);
  });

  for (const value of ['', ' , ', 'kafka', 'kafka:port', 'http://kafka:9092']) {
    it(`given KAFKA_BROKERS=${JSON.stringify(value)}, then parsing fails and says what is expected`, () => {
      expect(() => parseBrokers(value)).to.throw(/KAFKA_BROKERS/);
    });
  }

  it('given a partition name, then it round-trips, and a malformed one is refused', () => {
    expect(parsePartitionName(partitionName('sentinel.nodes.v1', 2))).to.deep.equal({ topic: 'sentinel.nodes.v1', partition: 2 });
    expect(() => parsePartitionName('sentinel.nodes.v1')).to.throw(/<topic>:<partition>/);
  });
});
