// How a reactor failure is handled, by its type: transient ones are tried again with backoff; permanent ones park the
// event so the reactor moves on; a bug (an error of the kind only a mistake in code throws) is parked and logged with its stack.
import { ZodError } from 'zod';
import { ConflictAfterRetries } from '../commands/command-handler.js';
import { ClusterError } from './cluster-driver.js';

export type FailureKind = 'transient' | 'permanent' | 'bug';

/** A failure that may heal by waiting: the same event is tried again, with backoff. */
export class TransientFailure extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientFailure';
  }
}

/** A failure that no retry will heal: the event is parked, to be looked at and tried again by hand. */
export class PermanentFailure extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentFailure';
  }
}

/** What JavaScript and schema parsing throw for a mistake in code or in the data a handler trusted: retrying repeats it. */
const BUG_TYPES = [TypeError, ReferenceError, RangeError, SyntaxError, ZodError] as const;

/**
 * The kind of a failure, by its type alone. A cluster error carries its own verdict; a stream that kept moving under
 * every attempt will settle. Errors of no known type stay transient, as every failure was before the taxonomy, so that
 * an outage of a dependency that throws untyped errors (a broker, a socket) never parks events.
 */
export function classifyFailure(error: unknown): FailureKind {
  if (declaredTransient(error)) return 'transient';
  if (error instanceof PermanentFailure) return 'permanent';
  if (error instanceof ClusterError) return 'permanent';
  if (BUG_TYPES.some((type) => error instanceof type)) return 'bug';
  return 'transient';
}

/**
 * Whether the failure's type says that waiting heals it: a `TransientFailure`, a cluster error judged transient, a
 * stream that kept moving. For callers that take every other failure as final, such as a plan action.
 */
export function declaredTransient(error: unknown): boolean {
  return (
    error instanceof TransientFailure ||
    error instanceof ConflictAfterRetries ||
    (error instanceof ClusterError && error.transient)
  );
}
