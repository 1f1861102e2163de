// The types of audit-export-rows.mjs, the fast reading of an export's row lines.

/** A row that verified on the fast path: where it lies in the log, and its hash. */
export interface HashedRow {
  position: string;
  eventId: string;
  hash: string;
}

/** The leading run of rows `leadingRows` found: how many, where the lines after them begin, its first and last rows. */
export interface RowRun {
  count: number;
  end: number;
  first: (HashedRow & { link: string }) | undefined;
  last: HashedRow | undefined;
}

export const ROW_START: string;
export const HASH_MEMBER: string;
export const POSITION_MEMBER: string;
export const EVENT_ID_MEMBER: string;
export const RECORDED_AT_MEMBER: string;
export function recordStart(prevHash: string): number;
export function statedHash(head: string, prevHash: string): string | undefined;
export function unquoted(literal: string): string;
export function hashedRowBytes(line: Buffer, prevHash: string): HashedRow | undefined;
export function leadingRows(bytes: Buffer): RowRun;
