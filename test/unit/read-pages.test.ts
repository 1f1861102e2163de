// How many events a reader asks for: fewer when they are large, never more than configured, never fewer than a few.
import { expect } from 'chai';
import type { RecordedEvent } from '../../domain/event-store.js';
import { PageSize } from '../../domain/read-pages.js';

/** `count` events whose data is about `bytes` of JSON each. */
const events = (count: number, bytes: number): RecordedEvent[] =>
  Array.from({ length: count }, () => ({ data: { blob: 'x'.repeat(Math.max(0, bytes - 11)) } }) as unknown as RecordedEvent);

describe('page size', () => {
  it('given nothing read yet, then the first page is small enough for large events', () => {
    expect(new PageSize(500).limit).to.equal(64);
    expect(new PageSize(10).limit).to.equal(10);
  });

  it('given pages of small events, then the count doubles a page up to the configured maximum', () => {
    const pages = new PageSize(500, 8 * 1024 * 1024);
    const limits: number[] = [];
    for (let i = 0; i < 5; i++) {
      pages.measured(events(pages.limit, 1000));
      limits.push(pages.limit);
    }
    expect(limits).to.deep.equal([128, 256, 500, 500, 500]);
  });

  it('given a page of large events, then the next page fits the byte budget at once', () => {
    const pages = new PageSize(500, 8 * 1024 * 1024);
    pages.measured(events(64, 300 * 1024));
    expect(pages.limit).to.equal(27);
  });

  it('given events larger than the whole budget, then still a few to a page, so that reading moves on', () => {
    const pages = new PageSize(500, 1024);
    pages.measured(events(64, 300 * 1024));
    expect(pages.limit).to.equal(8);
  });

  it('given an empty page, then the count stays', () => {
    const pages = new PageSize(500);
    pages.measured([]);
    expect(pages.limit).to.equal(64);
  });
});
