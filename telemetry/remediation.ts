// GPU remediation: when a node becomes unfit, propose draining it, as a plan that goes through policy like any other.
import { v5 as uuidv5 } from 'uuid';
import type { ActionPlanCommands } from '../commands/action-plan-commands.js';
import type { CommandContext } from '../commands/command-handler.js';
import type { RecordedFacts } from '../commands/node-commands.js';
import { planAction } from '../domain/action-plan.js';
import { PolicyViolation } from '../domain/decider.js';

/**
 * `off`: nothing is proposed. `propose`: a shadow plan, judged by policy and recorded, never carried out.
 * `execute`: a real plan, carried out by the plan reactor once policy approves it.
 */
export type RemediationMode = 'off' | 'propose' | 'execute';
export const REMEDIATION_MODES: readonly RemediationMode[] = ['off', 'propose', 'execute'];

/** Who proposes remediation plans. */
export const REMEDIATION_ACTOR = { id: 'sentinel-remediation', kind: 'system' as const };

/** Namespace of remediation plan ids and their event ids (uuid v5). */
const REMEDIATION_NAMESPACE = 'd17b5e82-4c09-5a3f-b6e1-08f2a9c4d735';

export interface RemediationLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface RemediationOptions {
  mode?: RemediationMode;
  logger?: RemediationLogger;
}

export class Remediation {
  readonly mode: RemediationMode;

  constructor(
    private readonly plans: Pick<ActionPlanCommands, 'proposeFromSentinel'>,
    private readonly options: RemediationOptions = {},
  ) {
    this.mode = options.mode ?? 'propose';
  }

  /**
   * Proposes draining the node when the recorded facts opened an unfit episode; answers the plan's id, or undefined
   * when nothing was proposed. One plan per episode: its id is derived from the node and the fact that made it
   * unfit, so the same facts seen again propose nothing new.
   */
  async react(recorded: RecordedFacts): Promise<string | undefined> {
    const opened = recorded.becameUnfit;
    if (this.mode === 'off' || !opened) return undefined;
    const drain = planAction.safeParse({ kind: 'drain', clusterId: recorded.clusterId, node: recorded.nodeName });
    if (!drain.success) {
      this.warn({ nodeId: recorded.nodeId, clusterId: recorded.clusterId, node: recorded.nodeName, cause: opened.cause.reason },
        `node is unfit but cannot be drained by a plan: ${drain.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
      return undefined;
    }
    const planId = uuidv5(`${recorded.nodeId}\u0000${opened.cause.eventKey}`, REMEDIATION_NAMESPACE);
    try {
      await this.plans.proposeFromSentinel(planId, { reason: reasonFor(recorded, opened.cause.reason), actions: [drain.data], shadow: this.mode === 'propose' }, contextFor(planId, opened.factId));
    } catch (error) {
      // A refused real plan is recorded as rejected in its stream: the refusal is the outcome, not a failure.
      if (!(error instanceof PolicyViolation)) throw error;
      this.warn({ planId, nodeId: recorded.nodeId, violations: error.errors }, 'drain plan for an unfit node was rejected by policy');
    }
    return planId;
  }

  private warn(fields: Record<string, unknown>, message: string): void {
    if (this.options.logger) this.options.logger.warn(fields, message);
    else process.emitWarning(`${message} (${JSON.stringify(fields)})`, 'RemediationWarning');
  }
}

function reasonFor(recorded: RecordedFacts, cause: string): string {
  return `node ${recorded.nodeName} in cluster ${recorded.clusterId} is unfit: ${cause}`;
}

/** The plan's events get ids derived from the plan, so a repeat is recognised as already recorded. */
function contextFor(planId: string, factId: string): CommandContext {
  return {
    actor: REMEDIATION_ACTOR,
    correlationId: factId,
    causationId: factId,
    source: 'telemetry:remediation',
    eventIds: (index) => uuidv5(`${planId}\u0000${index}`, REMEDIATION_NAMESPACE),
  };
}
