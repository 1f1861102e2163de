// One read of the log for every projector a process runs: each batch is read once and handed to every projector
// that is in step, each applying its own events at its own pace and keeping its own checkpoint.
import type { EventFilter, EventStore, Position, RecordedEvent, Subscription } from '../domain/event-store.js';
import { comparePositions } from '../domain/event-store.js';
import { batchesOf, type Held } from '../domain/log-follower.js';
import { PageSize } from '../domain/read-pages.js';
import type { Projector, TableNames } from './projector.js';

/** A projector this process projects, and where it stands. */
export interface Member {
  projector: Projector;
  /** The event types it reads; every type when absent. */
  types: ReadonlySet<string> | undefined;
  generation: number;
  tables: TableNames;
  /** Its checkpoint as the registry holds it: everything up to here is applied (or not its to apply). */
  position: Position | null;
  /** Events the shared read has handed out since its checkpoint last moved. */
  unsaved: number;
  /** Its lease, confirmed after each batch it applies. */
  lease: Held;
}

/** How a member left the shared read without an error. */
export type Parting = 'stopped' | 'behind';

export interface SharedReadOptions {
  /** What the shared read reads: every projector's events. */
  filter: EventFilter | undefined;
  /** Events per batch once the read has reached the head of the log. */
  batchSize: number;
  /** The most events per batch while the read is behind the head (a read came back full). */
  catchUpBatchSize: number;
  signal: AbortSignal;
  /** Applies a batch of the log to one member; a throw takes that member off the shared read. */
  deliver(member: Member, batch: readonly RecordedEvent[]): Promise<void>;
  /** Applies a member's own events, read for it alone, with its checkpoint moving to `last`. */
  apply(member: Member, events: readonly RecordedEvent[], last: Position): Promise<void>;
  onError(error: unknown): void;
}

interface Waiting {
  resolve(parting: Parting): void;
  reject(error: unknown): void;
}

/** The batches handed to one member and not yet applied, and the work applying them. */
interface Lane {
  queue: (readonly RecordedEvent[])[];
  /** Events in `queue`. */
  queued: number;
  applying: Promise<void> | undefined;
}

const WOKEN = Symbol('woken');

export class SharedRead {
  private readonly members = new Map<Member, Waiting>();
  private readonly lanes = new Map<Member, Lane>();
  private readonly joining = new Map<Member, Waiting>();
  /** Projectors on their way to joining (taking their lease, registering): the first read waits for them. */
  private readonly starting = new Set<string>();
  private subscription: Subscription | undefined;
  /** Set when the read in hand is closed: its catch-up, still reading ahead, then opens no subscription. */
  private closed: { closed: boolean } = { closed: false };
  private batches: AsyncGenerator<RecordedEvent[]> | undefined;
  private next: Promise<IteratorResult<RecordedEvent[]>> | undefined;
  /** The last event handed out; null when the read started at the beginning and has handed out nothing yet. */
  private position: Position | null = null;
  private onWake: (() => void) | undefined;
  /** Resolves the read's wait for a member to make room in its lane. */
  private onRoom: (() => void) | undefined;
  /** How many events a read of a member's own asks for: fewer when they are large. */
  private readonly pages: PageSize;

  constructor(
    private readonly store: EventStore,
    private readonly options: SharedReadOptions,
  ) {
    this.pages = new PageSize(options.batchSize);
    options.signal.addEventListener('abort', () => this.wake(), { once: true });
  }

  /** Marks a projector as on its way (or no longer on its way) to joining. */
  registering(name: string, on: boolean): void {
    if (on) this.starting.add(name);
    else if (this.starting.delete(name)) this.wake();
  }

  /**
   * Puts a member on the shared read. Settles when it leaves: 'behind' when it is too far back to join and
   * should catch up on its own first, 'stopped' when the runtime stops; rejects with the error that took it off.
   */
  join(member: Member): Promise<Parting> {
    return new Promise<Parting>((resolve, reject) => {
      if (this.options.signal.aborted) return resolve('stopped');
      this.joining.set(member, { resolve, reject });
      this.wake();
    });
  }

  /** The read loop; resolves once the runtime stops. */
  async run(): Promise<void> {
    try {
      while (!this.options.signal.aborted) {
        try {
          await this.step();
        } catch (error) {
          if (this.options.signal.aborted) break;
          // The read itself failed: every member leaves with the error and comes back through its own loop, once
          // the batches it was handed are applied.
          this.options.onError(error);
          await this.lanesApplied();
          for (const [member, waiting] of this.members) {
            this.members.delete(member);
            this.lanes.delete(member);
            waiting.reject(error);
          }
          await this.close();
        }
      }
    } finally {
      await this.close();
      // A member stops once the batches it was handed are applied: its checkpoint then says what it has done.
      await this.lanesApplied();
      for (const waiting of [...this.members.values(), ...this.joining.values()]) waiting.resolve('stopped');
      this.members.clear();
      this.lanes.clear();
      this.joining.clear();
    }
  }

  private async step(): Promise<void> {
    if (this.members.size === 0) {
      await this.close();
      // Projectors started together begin together, from the earliest checkpoint among them.
      if (this.joining.size === 0 || this.starting.size > 0) return this.idle();
      return this.open();
    }
    if (this.joining.size > 0) return this.admit();
    // A member whose lane is full holds the read back; the others go on with what they were handed meanwhile.
    if (this.laneFull()) return this.roomOrWake();
    const next = await this.batchOrWake();
    if (next === WOKEN) return;
    if (next.done) {
      if (this.options.signal.aborted) return;
      throw new Error('the subscription to the log ended');
    }
    this.next = this.batches!.next();
    const batch = next.value;
    this.position = batch.at(-1)!.position;
    for (const [member, waiting] of this.members) this.hand(member, waiting, batch);
  }

  /**
   * Hands a batch to a member. Each member applies its batches in order, one at a time, on its own: a projector
   * whose batches are quick (a small read model) never waits for a slow one (the audit trail) to finish the same
   * batch. Live batches that queue up while one is being applied are applied together (see `takeFrom`).
   */
  private hand(member: Member, waiting: Waiting, batch: readonly RecordedEvent[]): void {
    let lane = this.lanes.get(member);
    if (!lane) this.lanes.set(member, (lane = { queue: [], queued: 0, applying: undefined }));
    lane.queue.push(batch);
    lane.queued += batch.length;
    lane.applying ??= this.applyLane(member, waiting, lane);
  }

  private async applyLane(member: Member, waiting: Waiting, lane: Lane): Promise<void> {
    try {
      while (lane.queue.length > 0) {
        const batch = this.takeFrom(lane);
        this.room();
        try {
          await this.options.deliver(member, batch);
        } catch (error) {
          // The member leaves the read; what was queued for it is read again from its checkpoint when it is back.
          this.members.delete(member);
          this.lanes.delete(member);
          waiting.reject(error);
          return;
        }
      }
    } finally {
      lane.applying = undefined;
      this.room();
    }
  }

  /**
   * The batches at the head of a lane that go together: at least one, and together no more events than a live
   * batch holds. A catch-up page goes alone; live batches that queued up go as one, no larger than the batches a
   * subscription hands out, so a transaction that holds the log's visible horizon back stays as short as before.
   */
  private takeFrom(lane: Lane): readonly RecordedEvent[] {
    let count = 1;
    let events = lane.queue[0]!.length;
    const most = Math.max(events, this.options.batchSize);
    while (count < lane.queue.length && events + lane.queue[count]!.length <= most) {
      events += lane.queue[count]!.length;
      count += 1;
    }
    const taken = lane.queue.splice(0, count);
    lane.queued -= events;
    return taken.length === 1 ? taken[0]! : taken.flat();
  }

  /** Whether some member has a catch-up batch's worth of events waiting: the read then waits for it. */
  private laneFull(): boolean {
    for (const lane of this.lanes.values()) if (lane.queued >= this.options.catchUpBatchSize) return true;
    return false;
  }

  private roomOrWake(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.onWake = undefined;
        this.onRoom = undefined;
        resolve();
      };
      this.onWake = done;
      this.onRoom = done;
      if (this.options.signal.aborted) done();
    });
  }

  private room(): void {
    const room = this.onRoom;
    this.onRoom = undefined;
    room?.();
  }

  /** Settles once every member has applied what it was handed (or left). */
  private async lanesApplied(): Promise<void> {
    for (;;) {
      const applying = [...this.lanes.values()].map((lane) => lane.applying).filter((running) => running !== undefined);
      if (applying.length === 0) return;
      await Promise.all(applying);
    }
  }

  /**
   * Starts reading for the members waiting to join, from the earliest of their checkpoints; those more than a
   * batch behind the latest go and catch up on their own, so the others do not read their history again.
   */
  private async open(): Promise<void> {
    const candidates = [...this.joining];
    this.joining.clear();
    const latest = candidates.reduce<Position | null>((max, [{ position }]) => (position !== null && (max === null || position > max) ? position : max), null);
    const near: [Member, Waiting][] = [];
    for (const [member, waiting] of candidates) {
      if (member.position === latest) {
        near.push([member, waiting]);
        continue;
      }
      try {
        const limit = this.pages.limit;
        const page = await this.store.readAll({ after: member.position ?? undefined, filter: this.options.filter, limit });
        this.pages.measured(page.events);
        const last = page.events.at(-1);
        if (page.events.length === limit && last && latest !== null && comparePositions(last.position, latest) < 0) waiting.resolve('behind');
        else near.push([member, waiting]);
      } catch (error) {
        waiting.reject(error);
      }
    }
    if (near.length === 0) return;
    const start = near.some(([member]) => member.position === null)
      ? null
      : near.reduce<Position>((min, [{ position }]) => (comparePositions(position!, min) < 0 ? position! : min), near[0]![0].position!);
    this.closed = { closed: false };
    this.batches = this.batchesFrom(start, this.closed);
    this.next = this.batches.next();
    this.position = start;
    for (const [member, waiting] of near) this.members.set(member, waiting);
  }

  /**
   * Joins members to a read already going, between two batches. A member at or past the last event handed out
   * joins as it is. One behind reads its own events once: when that read comes back short it has everything
   * up to a moment after the last batch was read, and joins; otherwise it goes and catches up on its own.
   */
  private async admit(): Promise<void> {
    const joining = [...this.joining];
    this.joining.clear();
    for (const [member, waiting] of joining) {
      if (this.position === null || (member.position !== null && comparePositions(member.position, this.position) >= 0)) {
        this.members.set(member, waiting);
        continue;
      }
      try {
        const limit = this.pages.limit;
        const page = await this.store.readAll({ after: member.position ?? undefined, filter: filterOf(member.projector), limit });
        this.pages.measured(page.events);
        const last = page.events.at(-1);
        if (last) await this.options.apply(member, page.events, last.position);
        if (page.events.length < limit) {
          member.unsaved = 0;
          this.members.set(member, waiting);
        } else {
          waiting.resolve('behind');
        }
      } catch (error) {
        waiting.reject(error);
      }
    }
  }

  /**
   * The batches of the log after `start`: pages read directly while the read is behind, then the batches of a
   * subscription once a page comes back short. A page that comes back full means there is more to read, so the
   * next asks for up to twice as many, to `catchUpBatchSize` (see `CatchUpPages`): far fewer transactions and round
   * trips per event while catching up. Once at the head the batches are what has arrived, up to `batchSize`: a
   * live batch's transaction stays short, since while it runs it holds back the horizon up to which writes to the
   * log are visible. Each page is read while the one before is being applied.
   */
  private async *batchesFrom(start: Position | null, state: { closed: boolean }): AsyncGenerator<RecordedEvent[]> {
    const { filter, batchSize, catchUpBatchSize } = this.options;
    let after = start ?? undefined;
    if (catchUpBatchSize > batchSize) {
      const pages = new CatchUpPages(batchSize, catchUpBatchSize);
      const read = (from: Position | undefined) => {
        const { limit } = pages;
        const page = this.store.readAll({ after: from, filter, limit });
        // Its failure is reported when the batch is asked for; a read ahead that nobody asks for is not unhandled.
        page.catch(() => undefined);
        return { limit, page };
      };
      let reading = read(after);
      try {
        for (;;) {
          const { events, checkpoint } = await reading.page;
          if (state.closed) return;
          pages.measured(events);
          after = checkpoint ?? after;
          if (events.length < reading.limit) {
            if (events.length > 0) yield events;
            break;
          }
          reading = read(after);
          yield events;
        }
      } finally {
        // Ended early, with a page read ahead: that read finishes first, so none is left running against the store.
        await reading.page.catch(() => undefined);
      }
    }
    if (state.closed) return;
    const subscription = this.store.subscribe({ after, filter, batchSize });
    this.subscription = subscription;
    yield* batchesOf(subscription, batchSize);
  }

  private batchOrWake(): Promise<IteratorResult<RecordedEvent[]> | typeof WOKEN> {
    return new Promise((resolve, reject) => {
      this.onWake = () => resolve(WOKEN);
      this.next!.then(resolve, reject);
    });
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      this.onWake = resolve;
      if (this.options.signal.aborted) resolve();
    });
  }

  private wake(): void {
    const wake = this.onWake;
    this.onWake = undefined;
    wake?.();
  }

  private async close(): Promise<void> {
    this.closed.closed = true;
    const subscription = this.subscription;
    const batches = this.batches;
    const next = this.next;
    this.subscription = undefined;
    this.batches = undefined;
    this.next = undefined;
    this.position = null;
    await subscription?.close();
    // A read of the catch-up still in flight finishes before the store may close: with the read closed, the
    // batches end without opening a subscription, and a page read ahead is waited for.
    await next?.catch(() => undefined);
    await batches?.return(undefined).catch(() => undefined);
  }
}

/**
 * The page size of a read that catches up with the log. The first page is a live batch's size, so that a read
 * which starts near the head goes live after one short read. A page that comes back full means there is more to
 * read, and the next asks for twice as many, up to `max`: far fewer transactions and round trips per event while
 * behind. Every page also stays within the memory budget of `PageSize`, which shrinks it at once for large events.
 */
export class CatchUpPages {
  private size: number;
  private readonly budget: PageSize;

  constructor(
    first: number,
    private readonly max: number,
  ) {
    this.size = Math.max(1, Math.min(first, max));
    this.budget = new PageSize(max);
  }

  /** How many events to ask for next. */
  get limit(): number {
    return Math.min(this.size, this.budget.limit);
  }

  /** Learns from the page read with the current `limit`. */
  measured(events: readonly RecordedEvent[]): void {
    const full = events.length >= this.limit;
    this.budget.measured(events);
    if (full) this.size = Math.min(this.max, this.size * 2);
  }
}

/** The event-store filter for the events a projector reads. */
export function filterOf(projector: Projector | undefined): EventFilter | undefined {
  return projector?.eventTypes ? { types: [...projector.eventTypes] } : undefined;
}

/** The filter for a set of projectors: every type any of them reads, or everything when one reads everything. */
export function filterOfAll(projectors: readonly Projector[]): EventFilter | undefined {
  if (projectors.some((projector) => !projector.eventTypes)) return undefined;
  return { types: [...new Set(projectors.flatMap((projector) => projector.eventTypes!))] };
}
