// The admission ledger's history, indexed as the ledger folds: each admission used to filter the whole history (to
// drop what aged out and what a retry replaces) and each rate-limit reading walked it again, so a command cost as
// much as the day's admissions. Here the histories a fold makes, one after the other, share one index: the entries by
// target and by actor, and the live entries by time, so that the next history and a scope's entries are found at a
// cost that grows with what changes or what is read, not with the day.
//
// The ledger stays plain data: a history is an ordinary array, never changed once made, and the index sits beside
// it (keyed by the array itself). A history made any other way (read from a snapshot, built by hand) has no index;
// its first admission filters it as before and starts one. Whatever the path, the arrays are the same.
import type { PastAction } from './policy.js';
import { instantAt } from './rules/instant.js';

export type HistoryEntry = PastAction & { targetRevision?: number };

/** The log the histories of one fold are windows of: a position is an index into it. */
class Chain {
  readonly log: HistoryEntry[] = [];
  /** Each entry's time; an unreadable one as -Infinity, which every horizon drops (as `NaN > horizon` does). */
  readonly instants: number[] = [];
  readonly byTarget = new Map<string, number[]>();
  readonly byActor = new Map<string, number[]>();
  readonly byRevision = new Map<string, number[]>();
  /** Positions by time, earliest first: those of the newest history, and some already gone from it (skipped). */
  readonly byTime = new MinHeap((position) => this.instantOf(position));
  /** The newest history: the only one the log can grow from. */
  tip: Span | undefined;

  get end(): number {
    return this.log.length;
  }

  entryAt(position: number): HistoryEntry {
    return this.log[position]!;
  }

  instantOf(position: number): number {
    return this.instants[position]!;
  }

  append(entry: HistoryEntry): void {
    const position = this.end;
    this.log.push(entry);
    const at = instantAt(entry);
    this.instants.push(Number.isNaN(at) ? -Infinity : at);
    push(this.byTarget, entry.targetId, position);
    push(this.byActor, entry.actorId, position);
    if (entry.targetRevision !== undefined) push(this.byRevision, revisionKey(entry.targetId, entry.targetRevision), position);
    this.byTime.push(position);
  }
}

/** A history's place in its chain: positions `start` to `end`, less `holes` (entries dropped out of order). */
interface Span {
  chain: Chain;
  start: number;
  end: number;
  holes: ReadonlySet<number>;
}

const NO_HOLES: ReadonlySet<number> = new Set();
const spans = new WeakMap<readonly HistoryEntry[], Span>();

/**
 * The history after an admission: the entries of `history` whose time is after `horizon`, less the one a retry
 * replaces (same target, same `targetRevision`), then `entry` when given. The same array, entry for entry, as
 * `history.filter(...)` and a push, and indexed for the next admission and for `entriesOf`.
 */
export function nextHistory(
  history: readonly HistoryEntry[],
  horizon: number,
  replaces: { targetId: string; targetRevision?: number | undefined },
  entry: HistoryEntry | undefined,
): HistoryEntry[] {
  const span = spans.get(history);
  if (!span || span.chain.tip !== span || span.end !== span.chain.end || Number.isNaN(horizon)) return fresh(history, horizon, replaces, entry);
  const { chain } = span;
  const live = (position: number) => position >= span.start && position < span.end && !span.holes.has(position);

  // What aged out, earliest first; then what the retry replaces.
  const dropped = new Set<number>();
  while (chain.byTime.size > 0 && chain.instantOf(chain.byTime.peek()) <= horizon) {
    const position = chain.byTime.pop();
    if (live(position)) dropped.add(position);
  }
  if (replaces.targetRevision !== undefined) {
    for (const position of chain.byRevision.get(revisionKey(replaces.targetId, replaces.targetRevision)) ?? []) {
      if (live(position)) dropped.add(position);
    }
  }

  let start = span.start;
  let front = 0;
  while (start < span.end && (dropped.has(start) || span.holes.has(start))) {
    if (dropped.has(start)) front += 1;
    start += 1;
  }
  const holes = new Set<number>();
  for (const position of [...span.holes, ...dropped]) if (position > start) holes.add(position);

  // Usually only the oldest entries go, and the rest is copied as it stands.
  let next: HistoryEntry[];
  if (![...dropped].some((position) => position > start)) next = history.slice(front);
  else {
    next = [];
    let index = 0;
    for (let position = span.start; position < span.end; position += 1) {
      if (span.holes.has(position)) continue;
      if (!dropped.has(position)) next.push(history[index]!);
      index += 1;
    }
  }
  if (entry) {
    next.push(entry);
    chain.append(entry);
  }
  const nextSpan: Span = { chain, start, end: chain.end, holes: holes.size === 0 ? NO_HOLES : holes };
  // The log keeps what older histories still show; once it is twice what the newest holds, the newest starts afresh.
  if (chain.log.length > 2 * next.length + 1024) return index(next);
  chain.tip = nextSpan;
  spans.set(next, nextSpan);
  return next;
}

/**
 * The entries of `history` for one target or by one actor, in history order, with their times; undefined when
 * the history has no index (the caller walks it instead).
 */
export function entriesOf(history: readonly HistoryEntry[], by: 'target' | 'actor', id: string): { entries: HistoryEntry[]; instants: number[] } | undefined {
  const span = spans.get(history);
  if (!span) return undefined;
  const { chain } = span;
  const positions = (by === 'target' ? chain.byTarget : chain.byActor).get(id) ?? [];
  const entries: HistoryEntry[] = [];
  const instants: number[] = [];
  for (let i = firstAtOrAfter(positions, span.start); i < positions.length; i += 1) {
    const position = positions[i]!;
    if (position >= span.end) break;
    if (span.holes.has(position)) continue;
    entries.push(chain.entryAt(position));
    // As `instantAt` reads it: NaN where the time is unreadable.
    const at = chain.instantOf(position);
    instants.push(at === -Infinity ? instantAt(chain.entryAt(position)) : at);
  }
  return { entries, instants };
}

/** The next history the slow way, as it always was; indexed from then on. */
function fresh(
  history: readonly HistoryEntry[],
  horizon: number,
  replaces: { targetId: string; targetRevision?: number | undefined },
  entry: HistoryEntry | undefined,
): HistoryEntry[] {
  const next = history.filter(
    (past) =>
      instantAt(past) > horizon &&
      !(past.targetId === replaces.targetId && past.targetRevision !== undefined && past.targetRevision === replaces.targetRevision),
  );
  if (entry) next.push(entry);
  return index(next);
}

/** Starts a chain whose newest history is `history`. */
function index(history: HistoryEntry[]): HistoryEntry[] {
  const chain = new Chain();
  for (const entry of history) chain.append(entry);
  const span: Span = { chain, start: 0, end: chain.end, holes: NO_HOLES };
  chain.tip = span;
  spans.set(history, span);
  return history;
}

function revisionKey(targetId: string, targetRevision: number): string {
  return `${targetRevision} ${targetId}`;
}

function push(index: Map<string, number[]>, key: string, position: number): void {
  const positions = index.get(key);
  if (positions) positions.push(position);
  else index.set(key, [position]);
}

/** The first index of ascending `positions` at or after `position`. */
function firstAtOrAfter(positions: readonly number[], position: number): number {
  let low = 0;
  let high = positions.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (positions[middle]! < position) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** A binary heap of positions, least `key` on top. */
class MinHeap {
  private readonly items: number[] = [];

  constructor(private readonly key: (item: number) => number) {}

  get size(): number {
    return this.items.length;
  }

  peek(): number {
    return this.items[0]!;
  }

  push(item: number): void {
    const { items, key } = this;
    items.push(item);
    let at = items.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (key(items[parent]!) <= key(item)) break;
      items[at] = items[parent]!;
      at = parent;
    }
    items[at] = item;
  }

  pop(): number {
    const { items, key } = this;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length === 0) return top;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && key(items[right]!) < key(items[left]!) ? right : left;
      if (key(items[child]!) >= key(last)) break;
      items[at] = items[child]!;
      at = child;
    }
    items[at] = last;
    return top;
  }
}
