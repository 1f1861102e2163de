// GPU remediation: when a node becomes unfit, propose draining it, as a plan that goes through policy like any other.
// It follows the node facts in the log from a checkpoint (a reactor), so a fact recorded while it was away (a crash
// between the fact and the plan, a restart) still gets its plan, and a replay proposes nothing new.
import { v5 as uuidv5 } from 'uuid';
import { activeTraceparent } from '../adapters/tracing.js';
import type { ActionPlanCommands } from '../commands/action-plan-commands.js';
import type { CommandContext } from '../commands/command-handler.js';
import { planAction } from '../domain/action-plan.js';
import { PolicyViolation } from '../domain/decider.js';
import type { EventStore, RecordedEvent } from '../domain/event-store.js';
import { factKey, initialState, isUnfit, nodeDecider, nodeEvents, type Node, type UnfitCause } from '../domain/node.js';
import type { Reactor } from '../reactors/reactor-runtime.js';

/**
 * `off`: nothing is proposed. `propose`: a shadow plan, judged by policy and recorded, never carried out.
 * `execute`: a real plan, carried out by the plan reactor once policy approves it.
 */
export type RemediationMode = 'off' | 'propose' | 'execute';
export const REMEDIATION_MODES: readonly RemediationMode[] = ['off', 'propose', 'execute'];

/** Who proposes remediation plans. */
export const REMEDIATION_ACTOR = { id: 'sentinel-remediation', kind: 'system' as const };

/** The reactor's name: its checkpoint and its lease. */
export const REMEDIATION = 'remediation';

/** The facts that can make a node unfit (`unfitReason` in domain/node-health.ts): the only ones it needs to see. */
const UNFIT_FACTS = ['GpuXidErrorObserved', 'GpuEccDoubleBitErrorsGrew', 'GpuFellOffBus'] as const;

/** Namespace of remediation plan ids and their event ids (uuid v5). */
const REMEDIATION_NAMESPACE = 'd17b5e82-4c09-5a3f-b6e1-08f2a9c4d735';

export interface RemediationLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface RemediationOptions {
  mode?: RemediationMode;
  logger?: RemediationLogger;
}

/** The id of the drain plan for the unfit episode a fact opened: one per episode, whoever proposes it, however often. */
export function remediationPlanId(nodeId: string, eventKey: string): string {
  return uuidv5(`${nodeId}\u0000${eventKey}`, REMEDIATION_NAMESPACE);
}

export class Remediation implements Reactor {
  readonly name = REMEDIATION;
  readonly eventTypes: readonly string[] = UNFIT_FACTS;
  readonly mode: RemediationMode;

  constructor(
    private readonly plans: Pick<ActionPlanCommands, 'proposeFromSentinel'>,
    private readonly store: Pick<EventStore, 'readStream'>,
    private readonly options: RemediationOptions = {},
  ) {
    this.mode = options.mode ?? 'propose';
  }

  /** Node facts of different nodes are independent; those of one node are handled in log order. */
  keyOf(event: RecordedEvent): string {
    return event.stream;
  }

  /**
   * Proposes draining the node when this fact opened an unfit episode that is still open now. Its stream is read
   * whole: the state before the fact tells whether it opened the episode, the facts after it whether the episode has
   * closed since (a replay long after, or a catch-up over an old log, proposes nothing for a node fit again).
   */
  async handle(event: RecordedEvent): Promise<void> {
    await this.react(event);
  }

  /** What `handle` does; answers the plan's id, or undefined when nothing was proposed. */
  async react(event: RecordedEvent): Promise<string | undefined> {
    if (this.mode === 'off') return undefined;
    const episode = openedEpisode(await this.store.readStream(event.stream), event);
    if (!episode) return undefined;
    const { node, cause } = episode;
    const nodeId = event.stream.slice('node-'.length);
    const drain = planAction.safeParse({ kind: 'drain', clusterId: node.clusterId, node: node.nodeName });
    if (!drain.success) {
      this.warn({ nodeId, clusterId: node.clusterId, node: node.nodeName, cause: cause.reason },
        `node is unfit but cannot be drained by a plan: ${drain.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
      return undefined;
    }
    const planId = remediationPlanId(nodeId, cause.eventKey);
    const reason = `node ${node.nodeName} in cluster ${node.clusterId} is unfit: ${cause.reason}`;
    try {
      await this.plans.proposeFromSentinel(planId, { reason, actions: [drain.data], shadow: this.mode === 'propose' }, contextFor(planId, event));
    } catch (error) {
      // A refused real plan is recorded as rejected in its stream: the refusal is the outcome, not a failure.
      if (!(error instanceof PolicyViolation)) throw error;
      this.warn({ planId, nodeId, violations: error.errors }, 'drain plan for an unfit node was rejected by policy');
    }
    return planId;
  }

  private warn(fields: Record<string, unknown>, message: string): void {
    if (this.options.logger) this.options.logger.warn(fields, message);
    else process.emitWarning(`${message} (${JSON.stringify(fields)})`, 'RemediationWarning');
  }
}

type Reporting = Exclude<Node, { status: 'absent' }>;

/**
 * When `fact` made its fit node unfit and the node has stayed unfit through every later fact of `stream`: the node
 * as the fact left it and the cause that opened the episode.
 */
export function openedEpisode(stream: readonly RecordedEvent[], fact: RecordedEvent): { node: Reporting; cause: UnfitCause } | undefined {
  let state: Node = initialState;
  let opened: { node: Reporting; cause: UnfitCause } | undefined;
  for (const recorded of stream) {
    const before = state;
    state = nodeDecider.evolve(state, nodeEvents.parse(recorded.type, recorded.schemaVersion, recorded.data));
    if (recorded.id === fact.id) {
      if (isUnfit(before) || !isUnfit(state) || state.status === 'absent') return undefined;
      const cause = state.unfit[0]!;
      if (cause.eventKey !== factKey(nodeEvents.parse(fact.type, fact.schemaVersion, fact.data))) return undefined;
      opened = { node: state, cause };
    } else if (opened && !isUnfit(state)) {
      return undefined;
    }
  }
  return opened;
}

/**
 * The plan's events get ids derived from the plan, so a repeat is recognised as already recorded. Its trace goes on
 * from the reaction's span, or from the fact when none is active.
 */
function contextFor(planId: string, fact: RecordedEvent): CommandContext {
  const traceparent = activeTraceparent() ?? fact.metadata.traceparent;
  return {
    actor: REMEDIATION_ACTOR,
    correlationId: fact.metadata.correlationId ?? fact.id,
    causationId: fact.id,
    ...(traceparent ? { traceparent } : {}),
    source: 'telemetry:remediation',
    eventIds: (index) => uuidv5(`${planId}\u0000${index}`, REMEDIATION_NAMESPACE),
  };
}
