// What timer tests share: a clock moved by hand, and a timer owner whose handler rings a probe (stream
// `timerprobe-<timerId>`) that records every ring, so that a handler called twice for one firing shows as two rings
// unless its command's ids are derived from the firing.
import { z } from 'zod';
import type { Aggregate, CommandHandler } from '../../commands/command-handler.js';
import { defineEvents, type EventOf } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/event-store.js';
import { reactionTo } from '../../reactors/reaction-context.js';
import type { FiredTimer, TimerClock, TimerHandler } from '../../reactors/timers.js';

/** A clock the test moves by hand, from `start`: wake-ups come when it is moved past them, never on their own. */
export class ManualClock implements TimerClock {
  private time: number;
  private readonly waiting = new Set<{ at: number; wake: () => void }>();

  constructor(start: Date) {
    this.time = start.getTime();
  }

  now(): Date {
    return new Date(this.time);
  }

  wakeAt(at: Date, wake: () => void): () => void {
    const entry = { at: at.getTime(), wake };
    this.waiting.add(entry);
    if (entry.at <= this.time) setImmediate(() => this.ring(entry));
    return () => this.waiting.delete(entry);
  }

  advance(seconds: number): void {
    this.time += seconds * 1000;
    for (const entry of [...this.waiting]) if (entry.at <= this.time) this.ring(entry);
  }

  private ring(entry: { at: number; wake: () => void }): void {
    if (this.waiting.delete(entry)) entry.wake();
  }
}

export const PROBE_OWNER = 'probe';

const probeEvents = defineEvents({ TimerProbeRang: { version: 1, schema: z.object({ timerId: z.string(), firedAt: z.string() }) } });
type ProbeEvent = EventOf<typeof probeEvents>;
type ProbeCommand = { type: 'Ring'; timerId: string; firedAt: string };

/** Records every ring, even a second one for the same firing: only derived ids keep a replay out. */
export const probes: Aggregate<ProbeCommand, ProbeEvent, { rings: number }> = {
  category: 'timerprobe',
  decider: {
    initialState: { rings: 0 },
    evolve: (state) => ({ rings: state.rings + 1 }),
    decide: (command) => [{ type: 'TimerProbeRang', data: { timerId: command.timerId, firedAt: command.firedAt } }],
  },
  events: probeEvents,
};

export const probePayload = z.object({ note: z.string() });
export type ProbePayload = z.infer<typeof probePayload>;

export interface ProbeHooks {
  /** Before the ring; what it throws fails the delivery before any effect. */
  delivering?(timer: FiredTimer<ProbePayload>): Promise<void> | void;
  /** After the ring; what it throws fails the delivery after its effect, as a crash there would. */
  delivered?(timer: FiredTimer<ProbePayload>): Promise<void> | void;
}

/** The probe owner's handler: rings the timer's probe with ids derived from the firing, as any owner should. */
export function probeHandler(handler: CommandHandler, hooks: ProbeHooks = {}): TimerHandler<ProbePayload> {
  return {
    payload: probePayload,
    async fire(timer, cause: RecordedEvent) {
      await hooks.delivering?.(timer);
      await handler.execute(probes, timer.timerId, { type: 'Ring', timerId: timer.timerId, firedAt: timer.firedAt }, reactionTo(PROBE_OWNER, cause, 'ring'));
      await hooks.delivered?.(timer);
    },
  };
}
