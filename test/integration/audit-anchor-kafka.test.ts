// Anchors of the audit trail on Kafka, against the real broker (KAFKA_BROKERS; infra/kafka/broker.sh start): the
// periodic anchoring publishes a signed anchor of the chain's head to a topic of its own; another process's view of
// the topic reads the last one back; a forged one published last does not verify; the chain verifies against it while untouched and grows, and not once it is
// rewritten with its hashes recomputed.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { openPglite, type Database } from '../../adapters/postgres/database.js';
import { parseBrokers } from '../../adapters/kafka/client.js';
import {
  anchorOf,
  anchorTopicOf,
  DEFAULT_ANCHOR_TOPIC,
  KafkaAnchorLog,
  startAnchoring,
  verifyAgainstAnchor,
  type AnchoredVerification,
} from '../../commands/audit-export-anchor.js';
import type { EventStore } from '../../domain/event-store.js';
import { auditProjector, auditRowHash } from '../../projections/audit-trail.js';
import { readAuditChain, verifyAuditTrail } from '../../projections/audit-chain-read.js';
import { anEvent } from '../support/events.js';
import { eventually } from '../support/eventually.js';
import { KAFKA_BROKERS, SKIP_KAFKA_REASON } from '../support/kafka.js';
import { startTestApi } from '../support/sentinel-api.js';

const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

describe('AUDIT_ANCHOR_KAFKA: which topic', () => {
  it('is the default topic for true, none for false or nothing, and the name given otherwise', () => {
    expect(anchorTopicOf('true')).to.equal(DEFAULT_ANCHOR_TOPIC);
    expect(DEFAULT_ANCHOR_TOPIC).to.equal('sentinel.audit-anchors.v1');
    expect(anchorTopicOf('false')).to.equal(undefined);
    expect(anchorTopicOf('')).to.equal(undefined);
    expect(anchorTopicOf(undefined)).to.equal(undefined);
    expect(anchorTopicOf('acme.audit-anchors')).to.equal('acme.audit-anchors');
  });
});

describe('audit trail anchors on Kafka (PGlite)', function () {
  this.timeout(90_000);
  let db: Database;
  let store: EventStore;
  const table = 'audit_anchor_kafka';
  const topic = `test-${randomBytes(6).toString('hex')}.audit-anchors.v1`;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const logs: KafkaAnchorLog[] = [];
  const anchorLog = () => {
    const log = new KafkaAnchorLog({ brokers: parseBrokers(KAFKA_BROKERS!), topic, logger });
    logs.push(log);
    return log;
  };

  async function append(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await store.append(`deployment-${randomUUID()}`, [anEvent('DeploymentScaled', { replicas: i })]);
    const head = (await db.knex(table).orderBy('position', 'desc').first('position')) as { position: string } | undefined;
    const page = await store.readAll({ after: head?.position, limit: 1000 });
    if (page.events.length > 0) await db.knex.transaction((trx) => auditProjector.apply(page.events, trx, { audit: table }));
  }

  before(async function () {
    if (!KAFKA_BROKERS) {
      console.log(`      skipped: ${SKIP_KAFKA_REASON}`);
      return this.skip();
    }
    db = await openPglite();
    store = await PostgresEventStore.open(db);
    await db.knex.transaction((trx) => auditProjector.createTables(trx, { audit: table }));
  });
  after(async () => {
    await Promise.allSettled(logs.map((log) => log.close()));
    await store?.close();
    await db?.close();
  });

  it('given no anchor published yet, then the topic has no last anchor', async () => {
    expect(await anchorLog().last()).to.equal(undefined);
  });

  it('when the anchoring runs, then every new head is published, and another reader of the topic sees the last', async () => {
    const publisher = anchorLog();
    await append(5);
    const anchoring = startAnchoring({ knex: db.knex, table: async () => table, key: privateKey, logs: [publisher], intervalSeconds: 1, logger });
    try {
      const first = await eventually('an anchor of 5 rows on Kafka', () => publisher.last(), (anchor) => anchor?.rows === 5, 30_000);
      await append(3);
      const second = await eventually('an anchor of 8 rows on Kafka', () => publisher.last(), (anchor) => anchor?.rows === 8, 30_000);
      expect(second!.lastPosition! > first!.lastPosition!).to.equal(true);
    } finally {
      await anchoring.stop();
    }
    const head = (await anchorOf(db.knex, table, privateKey))!;
    const elsewhere = (await anchorLog().last())!;
    expect(elsewhere).to.include({ rows: 8, lastPosition: head.lastPosition, lastHash: head.lastHash });
    const verified = await verifyAgainstAnchor(db.knex, table, elsewhere, publicKey);
    expect(verified).to.deep.include({ ok: true, rows: 8 });
    expect(verified.anchor).to.include({ ok: true, rows: 8 });
  });

  it('when a forged anchor is published last, then the chain does not verify against it; a real one published after restores it', async () => {
    const publisher = anchorLog();
    const real = (await anchorOf(db.knex, table, privateKey))!;
    const forged = { ...real, rows: real.rows - 1 };
    await publisher.append(forged);
    expect(await anchorLog().last()).to.deep.equal(forged);
    const verified = await verifyAgainstAnchor(db.knex, table, forged, publicKey);
    expect(verified.ok).to.equal(false);
    expect(verified.anchor!.reason).to.match(/signature does not verify/);
    await publisher.append(real);
    expect(await publisher.last()).to.deep.equal(real);
    expect((await verifyAgainstAnchor(db.knex, table, await anchorLog().last(), publicKey)).ok).to.equal(true);
  });

  it('when the chain is rewritten with its hashes recomputed, then it verifies alone but not against the anchor on Kafka', async () => {
    const chain = [];
    for await (const page of readAuditChain(db.knex, table, {})) chain.push(...page);
    let prev = chain[2]!.prevHash;
    for (const [i, row] of chain.entries()) {
      if (i < 2) continue;
      const record = i === 2 ? { ...row.record, summary: `${row.record.summary} (rewritten)` } : row.record;
      const hash = auditRowHash(prev, record, row.content);
      await db.knex(table).where({ position: record.position }).update({ summary: record.summary, prev_hash: prev, hash });
      prev = hash;
    }
    expect(await verifyAuditTrail(db.knex, table)).to.deep.equal({ ok: true, rows: 8 });
    const verified = await verifyAgainstAnchor(db.knex, table, await anchorLog().last(), publicKey);
    expect(verified.ok).to.equal(false);
    expect(verified.anchor!.reason).to.match(/no longer holds the anchored hash: the chain up to it was rewritten/);
  });
});

describe('audit trail anchors on Kafka through the server (PGlite)', function () {
  this.timeout(90_000);

  it('the projector role publishes anchors to the AUDIT_ANCHOR_KAFKA topic, and GET /audit/verify checks the chain against the last', async function () {
    if (!KAFKA_BROKERS) {
      console.log(`      skipped: ${SKIP_KAFKA_REASON}`);
      return this.skip();
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'sentinel-anchor-kafka-'));
    const { privateKey } = generateKeyPairSync('ed25519');
    const keyFile = path.join(dir, 'audit-signing.pem');
    await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const topic = `test-${randomBytes(6).toString('hex')}.audit-anchors.v1`;
    const api = await startTestApi(undefined, { AUDIT_SIGNING_KEY_FILE: keyFile, AUDIT_ANCHOR_KAFKA: topic, KAFKA_BROKERS, AUDIT_ANCHOR_INTERVAL_SECONDS: '1' });
    const reader = new KafkaAnchorLog({ brokers: parseBrokers(KAFKA_BROKERS), topic, logger });
    try {
      const head = await api.head();
      const anchored = await eventually('an anchor of the head on Kafka', () => reader.last(), (anchor) => anchor?.lastPosition === head, 30_000);
      const reply = await api.request<AnchoredVerification>('get', '/audit/verify', { as: 'viewer' });
      expect(reply.status).to.equal(200);
      expect(reply.body.ok).to.equal(true);
      expect(reply.body.anchor).to.include({ ok: true, position: anchored!.lastPosition, hash: anchored!.lastHash });
    } finally {
      await reader.close();
      await api.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
