// How many events a catch-up read asks for: a live batch first, twice as many after each full page, never more
// than the catch-up batch size or the memory budget allows.
import { expect } from 'chai';
import type { RecordedEvent } from '../../domain/event-store.js';
import { CatchUpPages } from '../../projections/shared-read.js';

/** `count` events whose data is about `bytes` of JSON each. */
const events = (count: number, bytes = 100): RecordedEvent[] =>
  Array.from({ length: count }, () => ({ data: { blob: 'x'.repeat(Math.max(0, bytes - 11)) } }) as unknown as RecordedEvent);

describe('catch-up pages', () => {
  it('given nothing read yet, then the first page is a live batch', () => {
    expect(new CatchUpPages(10, 200).limit).to.equal(10);
  });

  it('given pages that come back full, then each doubles the next, up to the catch-up batch size', () => {
    const pages = new CatchUpPages(10, 200);
    const limits = [pages.limit];
    for (let i = 0; i < 6; i++) {
      pages.measured(events(pages.limit));
      limits.push(pages.limit);
    }
    expect(limits).to.deep.equal([10, 20, 40, 80, 160, 200, 200]);
  });

  it('given a page that comes back short, then the next asks for no more', () => {
    const pages = new CatchUpPages(10, 200);
    pages.measured(events(10));
    pages.measured(events(5));
    expect(pages.limit).to.equal(20);
  });

  it('given a first page larger than the memory budget allows before anything was measured, then it starts within it', () => {
    // PageSize's first page, before it has seen an event's size, is 64.
    expect(new CatchUpPages(500, 5000).limit).to.equal(64);
  });

  it('given a page of large events, then the next fits the byte budget at once', () => {
    const pages = new CatchUpPages(64, 5000);
    pages.measured(events(64, 300 * 1024));
    expect(pages.limit).to.equal(Math.floor((8 * 1024 * 1024) / (300 * 1024)));
  });
});
