// The PostgreSQL event store's group commit (appends that wait for a statement go together in one) and its shared
// stream reads (identical reads that wait for one under way share the next), on PGlite and, when reachable, PostgreSQL.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { openPglite, openPostgres, type Database } from '../../adapters/postgres/database.js';
import { PostgresEventStore } from '../../adapters/event-store/postgres/postgres-event-store.js';
import { ConcurrencyConflict, comparePositions, type AppendResult, type EventToAppend } from '../../domain/event-store.js';
import { decodePosition } from '../../adapters/event-store/position.js';
import { allVisible } from '../support/events.js';
import { SKIP_POSTGRES_REASON, TEST_DATABASE_URL, createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';

/** A database that counts the statements sent, by prepared name (or text), and can hold back reads' answers. */
class WatchedDatabase {
  readonly sent = new Map<string, number>();
  /** Stream reads the server has answered. */
  readsAnswered = 0;
  private held: Promise<void> | undefined;
  private releaseHeld: (() => void) | undefined;

  constructor(readonly inner: Database) {}

  get db(): Database {
    return {
      ...this.inner,
      query: async <Row>(text: string, params?: unknown[], prepareAs?: string): Promise<Row[]> => {
        const name = prepareAs ?? text;
        this.sent.set(name, (this.sent.get(name) ?? 0) + 1);
        const rows = await this.inner.query<Row>(text, params, prepareAs);
        // The answer, read on the statement's snapshot, reaches the caller only once released.
        if (prepareAs === 'sentinel_read_stream') {
          this.readsAnswered += 1;
          if (this.held) await this.held;
        }
        return rows;
      },
    };
  }

  count(name: string): number {
    return this.sent.get(name) ?? 0;
  }

  holdReads(): void {
    this.held = new Promise((resolve) => (this.releaseHeld = resolve));
  }

  releaseReads(): void {
    this.held = undefined;
    this.releaseHeld?.();
  }
}

function events(count: number, data: Record<string, unknown> = {}): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Tested', data: { i, ...data } }));
}

function groupCommitSuite(open: () => Promise<{ db: Database; done: () => Promise<void> }>): void {
  let watched: WatchedDatabase;
  let store: PostgresEventStore;
  let done: () => Promise<void>;

  beforeEach(async () => {
    const opened = await open();
    done = opened.done;
    watched = new WatchedDatabase(opened.db);
    // One statement at a time: whatever comes while it runs waits, and goes in the next.
    store = await PostgresEventStore.open(watched.db, { appendStatements: 1, notifyOtherProcesses: false });
  });
  afterEach(async () => {
    await store?.close();
    await done?.();
  });

  /** Starts `first`, then the rest while it runs: the rest go together in the next statement. */
  async function grouped(first: () => Promise<AppendResult>, rest: (() => Promise<AppendResult>)[]): Promise<PromiseSettledResult<AppendResult>[]> {
    const running = first();
    const outcomes = await Promise.allSettled(rest.map((append) => append()));
    await running;
    return outcomes;
  }

  describe('group commit', () => {
    it('given appends that come while one runs, when they are stored, then they go in one statement and each gets its own answer', async () => {
      const streams = Array.from({ length: 12 }, () => `group-${randomUUID()}`);
      const before = watched.count('sentinel_append_many');
      const written = streams.map((stream, i) => events(1 + (i % 3)));
      const outcomes = await grouped(
        () => store.append(`group-${randomUUID()}`, events(1)),
        streams.map((stream, i) => () => store.append(stream, written[i]!, { expected: 'no_stream' })),
      );
      expect(watched.count('sentinel_append_many') - before).to.equal(1);
      for (const [i, outcome] of outcomes.entries()) {
        expect(outcome.status).to.equal('fulfilled');
        const result = (outcome as PromiseFulfilledResult<AppendResult>).value;
        expect(result.revision).to.equal(written[i]!.length - 1);
        expect(result.duplicate).to.equal(false);
        const stored = await store.readStream(streams[i]!);
        expect(stored.map((e) => e.id)).to.deep.equal(written[i]!.map((e) => e.id));
        expect(stored.at(-1)!.position).to.equal(result.position);
      }
      // One transaction, the appends' events in the order they came.
      const positions = streams.map((stream, i) => (outcomes[i] as PromiseFulfilledResult<AppendResult>).value.position).map(decodePosition);
      expect(new Set(positions.map(([tx]) => tx)).size).to.equal(1);
      const seqs = positions.map(([, seq]) => seq);
      expect(seqs).to.deep.equal([...seqs].sort((a, b) => (a < b ? -1 : 1)));
    });

    it('given a grouped append whose expected revision does not hold, when the group is stored, then it alone fails and the others are stored', async () => {
      const taken = `group-${randomUUID()}`;
      await store.append(taken, events(2));
      const others = Array.from({ length: 5 }, () => `group-${randomUUID()}`);
      const outcomes = await grouped(() => store.append(`group-${randomUUID()}`, events(1)), [
        () => store.append(others[0]!, events(1)),
        () => store.append(others[1]!, events(1), { expected: 'no_stream' }),
        () => store.append(taken, events(1), { expected: 0 }),
        () => store.append(others[2]!, events(2)),
        () => store.append(others[3]!, events(1)),
        () => store.append(others[4]!, events(1)),
      ]);
      expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
      const conflict = (outcomes[2] as PromiseRejectedResult).reason as ConcurrencyConflict;
      expect(conflict).to.be.instanceOf(ConcurrencyConflict);
      expect(conflict.stream).to.equal(taken);
      expect(conflict.actual).to.equal(1);
      expect((await store.readStream(taken)).length).to.equal(2);
      for (const stream of others) expect((await store.readStream(stream)).length).to.be.greaterThan(0);
    });

    it('given a grouped append of an event PostgreSQL refuses, when the group is stored, then it alone fails with its error', async () => {
      const good = Array.from({ length: 3 }, () => `group-${randomUUID()}`);
      const bad = `group-${randomUUID()}`;
      const outcomes = await grouped(() => store.append(`group-${randomUUID()}`, events(1)), [
        () => store.append(good[0]!, events(1)),
        // jsonb holds no NUL character.
        () => store.append(bad, events(1, { text: 'nul \u0000 here' })),
        () => store.append(good[1]!, events(1)),
        () => store.append(good[2]!, events(1)),
      ]);
      expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect(await store.readStream(bad)).to.deep.equal([]);
      for (const stream of good) expect((await store.readStream(stream)).length).to.equal(1);
    });

    it('given a grouped retry of an append already stored, when the group is stored, then it is answered as a duplicate and the others are stored', async () => {
      const stream = `group-${randomUUID()}`;
      const sent = events(2);
      const first = await store.append(stream, sent);
      const other = `group-${randomUUID()}`;
      const outcomes = await grouped(() => store.append(`group-${randomUUID()}`, events(1)), [
        () => store.append(stream, sent),
        () => store.append(other, events(1)),
      ]);
      const [retry, stored] = outcomes.map((o) => (o as PromiseFulfilledResult<AppendResult>).value);
      expect(retry).to.deep.equal({ ...first, duplicate: true });
      expect(stored!.duplicate).to.equal(false);
      expect((await store.readStream(stream)).length).to.equal(2);
      expect((await store.readStream(other)).length).to.equal(1);
    });

    it('given grouped appends to one stream, when they are stored, then none is lost and revisions follow the order they came in', async () => {
      const stream = `group-${randomUUID()}`;
      const sent = Array.from({ length: 6 }, () => events(2));
      const outcomes = await grouped(
        () => store.append(`group-${randomUUID()}`, events(1)),
        sent.map((batch) => () => store.append(stream, batch)),
      );
      expect(outcomes.map((o) => (o as PromiseFulfilledResult<AppendResult>).value.revision)).to.deep.equal([1, 3, 5, 7, 9, 11]);
      expect((await store.readStream(stream)).map((e) => e.id)).to.deep.equal(sent.flat().map((e) => e.id));
    });

    it('given many concurrent appends, when every one is acknowledged, then each is readable in the log in position order', async () => {
      const category = `groupall${Date.now().toString(36)}`;
      const start = (await store.readAll({ limit: 1_000_000 })).checkpoint;
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => store.append(`${category}-${i % 7}`, events(1 + (i % 2)))));
      await allVisible(store);
      const read = await store.readAll({ after: start, filter: { streamPrefixes: [`${category}-`] }, limit: 1000 });
      const positions = read.events.map((e) => e.position);
      for (const result of results) expect(positions).to.include(result.position);
      expect(read.events.length).to.equal(60);
      for (let s = 0; s < 7; s++) {
        const revisions = read.events.filter((e) => e.stream === `${category}-${s}`).map((e) => e.revision);
        expect(revisions).to.deep.equal([...revisions.keys()]);
      }
    });
  });

  describe('shared stream reads', () => {
    it('given identical reads at once, when they are answered, then they cost at most two statements and each gets its own events', async () => {
      const stream = `shared-${randomUUID()}`;
      await store.append(stream, events(3));
      const before = watched.count('sentinel_read_stream');
      const reads = await Promise.all(Array.from({ length: 16 }, () => store.readStream(stream, { from: 1 })));
      expect(watched.count('sentinel_read_stream') - before).to.be.at.most(2);
      for (const read of reads) expect(read.map((e) => e.revision)).to.deep.equal([1, 2]);
      (reads[1]![0]!.data as { i: number }).i = 99;
      expect(reads.filter((read) => (read[0]!.data as { i: number }).i === 99)).to.have.length(1);
    });

    it('given a read under way from before an append, when the same read starts after the append is acknowledged, then it sees the append', async () => {
      const stream = `shared-${randomUUID()}`;
      await store.append(stream, events(1));
      watched.holdReads();
      const early = store.readStream(stream);
      // The early read's statement has run (on a snapshot without what comes next) and waits to answer.
      while (watched.readsAnswered === 0) await new Promise((resolve) => setImmediate(resolve));
      await store.append(stream, events(1));
      const late = store.readStream(stream);
      watched.releaseReads();
      expect((await early).length).to.equal(1);
      expect((await late).length).to.equal(2);
    });
  });
}

describe('PostgresEventStore group commit and shared reads on embedded PGlite', () => {
  groupCommitSuite(async () => {
    const db = await openPglite();
    return { db, done: () => db.close() };
  });
});

describe('PostgresEventStore group commit and shared reads on PostgreSQL', function () {
  let scratch: ScratchDatabase | undefined;
  before(async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    scratch = await createScratchDatabase();
  });
  after(async () => {
    await scratch?.drop();
  });
  groupCommitSuite(async () => {
    const db = openPostgres(scratch!.url, { poolMax: 20 });
    return { db, done: () => db.close() };
  });
});

describe('PostgresEventStore multi-stream statement on PostgreSQL: each stream in log order', function () {
  let scratch: ScratchDatabase | undefined;
  let db: Database;
  let store: PostgresEventStore;
  let other: pg.Client;
  before(async function () {
    if (!TEST_DATABASE_URL) {
      console.log(`      skipped: ${SKIP_POSTGRES_REASON}`);
      return this.skip();
    }
    scratch = await createScratchDatabase();
    db = openPostgres(scratch.url, { poolMax: 20 });
    store = await PostgresEventStore.open(db, { notifyOtherProcesses: false });
    other = new pg.Client({ connectionString: scratch.url });
    await other.connect();
  });
  after(async () => {
    await other?.end();
    await store?.close();
    await db?.close();
    await scratch?.drop();
  });

  it('given a statement whose first stream waits while another append writes its second stream, when both are stored, then the second stream reads in log order', async () => {
    const [first, second] = [`heads-${randomUUID()}`, `heads-${randomUUID()}`];
    // An open transaction holds revision 0 of the first stream: the statement inserts there (and so has its transaction
    // id) and waits on it.
    await other.query('begin');
    await other.query(`insert into sentinel_events (id, stream, revision, type, schema_version, data, metadata) values ($1, $2, 0, 'Held', 1, '{}', '{}')`, [randomUUID(), first]);
    const both = store.appendMany([
      { stream: first, events: events(1) },
      { stream: second, events: events(1) },
    ]);
    // Wait until the statement is blocked behind the open transaction.
    for (;;) {
      // Asked on a connection of its own: within the open transaction the activity view would not change.
      const [row] = await db.query<{ waiting: boolean }>(
        `select exists (select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%sentinel_append_many%') as waiting`,
      );
      if (row!.waiting) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Meanwhile an append of the second stream commits, under a transaction id newer than the statement's.
    await store.append(second, events(1));
    await other.query('rollback');
    await both;
    const stored = await store.readStream(second);
    expect(stored.map((e) => e.revision)).to.deep.equal([0, 1]);
    expect(comparePositions(stored[0]!.position, stored[1]!.position)).to.equal(-1);
  });
});
