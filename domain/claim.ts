// The Claim aggregate: a key that must be unique across aggregates (a workload's namespace and name, a workload on
// a cluster), held by one owner at a time. Taken before the owner is created, so that two creations cannot both pass.
import { z } from 'zod';
import { defineEvents, type Decider, type EventOf } from './decider.js';

export const claimEvents = defineEvents({
  /** `ownerId` holds the key from now on; `previousOwnerId` held it and no longer needs it (retired, deleted, never made). */
  ClaimTaken: {
    version: 1,
    schema: z.object({ key: z.string(), ownerId: z.string(), takenAt: z.string(), previousOwnerId: z.string().optional() }),
  },
});
export type ClaimEvent = EventOf<typeof claimEvents>;

export type Claim = { owner: undefined } | { owner: string; takenAt: string };

/** `goneHolder`: the holder the caller found to no longer need the key; taken over only while it still holds it. */
export type ClaimCommand = { type: 'TakeClaim'; key: string; ownerId: string; at: string; goneHolder?: string };

/** The key is held by another owner, which still needs it. */
export class ClaimHeld extends Error {
  override name = 'ClaimHeld';
  constructor(
    readonly key: string,
    readonly holder: string,
  ) {
    super(`${key} is held by ${holder}`);
  }
}

export const initialState: Claim = { owner: undefined };

export function evolve(_state: Claim, event: ClaimEvent): Claim {
  return { owner: event.data.ownerId, takenAt: event.data.takenAt };
}

export function decide(command: ClaimCommand, state: Claim): ClaimEvent[] {
  const { key, ownerId } = command;
  if (state.owner === ownerId) return [];
  if (state.owner === undefined) return [{ type: 'ClaimTaken', data: { key, ownerId, takenAt: command.at } }];
  if (state.owner !== command.goneHolder) throw new ClaimHeld(key, state.owner);
  return [{ type: 'ClaimTaken', data: { key, ownerId, takenAt: command.at, previousOwnerId: state.owner } }];
}

export const claimDecider: Decider<ClaimCommand, ClaimEvent, Claim> = { initialState, evolve, decide };
