// given / when / then for deciders: given these past events, when this command, then these events or this error.
import { expect } from 'chai';
import { fold, type Decider, type DomainError } from '../../domain/decider.js';

type ErrorClass = abstract new (...args: never[]) => DomainError;

export function given<Command, Event, State>(decider: Decider<Command, Event, State>, past: Event[] = []) {
  const state = fold(decider, past);
  return {
    state,
    when(command: Command) {
      const run = () => decider.decide(command, state);
      return {
        then(expected: Event[]): void {
          expect(run()).to.deep.equal(expected);
        },
        /** The decision, for assertions that look at parts of it. */
        events(): Event[] {
          return run();
        },
        thenThrows(kind: ErrorClass, message?: RegExp): void {
          expect(run).to.throw(kind as unknown as new () => Error, message);
        },
      };
    },
  };
}
