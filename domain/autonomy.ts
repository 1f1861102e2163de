// The Autonomy aggregate: the kill switch that stops Sentinel from taking plans from InfraMind (stream `autonomy-global`).
import { z } from 'zod';
import { defineEvents, type Decider, type EventOf } from './decider.js';
import { reason, timestamp } from './schemas.js';

/** The one switch there is: its stream is `autonomy-global`. */
export const GLOBAL_AUTONOMY = 'global';

// ---- bodies -------------------------------------------------------------------------------------------

/** `POST /autonomy/pause`: whoever stops the autonomous caller says why, for whoever resumes it. */
export const pauseBody = z.strictObject({ reason });
export type PauseBody = z.infer<typeof pauseBody>;

/** `POST /autonomy/resume` may say why. */
export const resumeBody = z.strictObject({ reason: reason.optional() });
export type ResumeBody = z.infer<typeof resumeBody>;

// ---- events -------------------------------------------------------------------------------------------

const actor = z.object({ id: z.string().min(1), kind: z.enum(['user', 'service', 'system']) });
export type AutonomyActor = z.infer<typeof actor>;

export const autonomyEvents = defineEvents({
  AutonomyPaused: { version: 1, schema: z.object({ actor, reason: z.string(), at: timestamp }) },
  AutonomyResumed: { version: 1, schema: z.object({ actor, reason: z.string().optional(), at: timestamp }) },
});
export type AutonomyEvent = EventOf<typeof autonomyEvents>;

// ---- state and commands -------------------------------------------------------------------------------

export type Autonomy = { paused: false } | { paused: true; since: string; by: AutonomyActor; reason: string };

export type AutonomyCommand =
  | { type: 'PauseAutonomy'; actor: AutonomyActor; reason: string; at: string }
  | { type: 'ResumeAutonomy'; actor: AutonomyActor; reason?: string; at: string };

export const initialState: Autonomy = { paused: false };

export function evolve(_state: Autonomy, event: AutonomyEvent): Autonomy {
  switch (event.type) {
    case 'AutonomyPaused':
      return { paused: true, since: event.data.at, by: event.data.actor, reason: event.data.reason };
    case 'AutonomyResumed':
      return { paused: false };
  }
}

/** Pausing what is paused, or resuming what runs, asks for what is already so: nothing is recorded. */
export function decide(command: AutonomyCommand, state: Autonomy): AutonomyEvent[] {
  switch (command.type) {
    case 'PauseAutonomy':
      if (state.paused) return [];
      return [{ type: 'AutonomyPaused', data: { actor: command.actor, reason: command.reason, at: command.at } }];
    case 'ResumeAutonomy':
      if (!state.paused) return [];
      return [{ type: 'AutonomyResumed', data: { actor: command.actor, ...(command.reason ? { reason: command.reason } : {}), at: command.at } }];
  }
}

export const autonomyDecider: Decider<AutonomyCommand, AutonomyEvent, Autonomy> = { initialState, evolve, decide };

/** Why an InfraMind plan is refused while autonomy is paused; recorded as the plan's violation. */
export function pausedRefusal(state: Extract<Autonomy, { paused: true }>): { path: string; message: string } {
  return {
    path: 'source',
    message: `autonomy is paused since ${state.since} by ${state.by.id} (${state.reason}): InfraMind plans are refused until an admin resumes it`,
  };
}
