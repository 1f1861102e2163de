// The kill switch for InfraMind: admins pause and resume autonomy; plan submission reads it (action-plan-commands.ts).
import { autonomies } from './aggregates.js';
import type { Clock } from './clock.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';
import { GLOBAL_AUTONOMY } from '../domain/autonomy.js';

export class AutonomyCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly clock: Clock,
  ) {}

  /** From now on every InfraMind plan is refused, and the refusal recorded, until `resume`. */
  pause(reason: string, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      autonomies,
      GLOBAL_AUTONOMY,
      { type: 'PauseAutonomy', actor: context.actor, reason, at: this.clock.now().toISOString() },
      context,
    );
  }

  resume(reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(
      autonomies,
      GLOBAL_AUTONOMY,
      { type: 'ResumeAutonomy', actor: context.actor, ...(reason ? { reason } : {}), at: this.clock.now().toISOString() },
      context,
    );
  }
}
