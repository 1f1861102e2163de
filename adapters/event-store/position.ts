// Positions as fixed-width hex pairs, so that string order is log order on every adapter.
import { InvalidEventStoreRequest, type Position } from '../../domain/event-store.js';

const PART = /^[0-9a-f]{16}$/;
const MAX = (1n << 64n) - 1n;

export function encodePosition(major: bigint, minor: bigint): Position {
  if (major < 0n || minor < 0n || major > MAX || minor > MAX) {
    throw new RangeError(`position parts out of range: ${major}, ${minor}`);
  }
  return `${major.toString(16).padStart(16, '0')}-${minor.toString(16).padStart(16, '0')}`;
}

export function decodePosition(position: Position): [bigint, bigint] {
  const [major, minor, ...rest] = typeof position === 'string' ? position.split('-') : [];
  if (major === undefined || minor === undefined || rest.length > 0 || !PART.test(major) || !PART.test(minor)) {
    throw new InvalidEventStoreRequest(
      `invalid position ${JSON.stringify(position)}: expected a checkpoint returned by this store, ` +
        'such as "00000000000002f1-0000000000000004"',
      [{ path: 'after', message: 'not a position of this store' }],
    );
  }
  return [BigInt(`0x${major}`), BigInt(`0x${minor}`)];
}
