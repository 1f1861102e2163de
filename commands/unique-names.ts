// Keys that must be unique across aggregates, claimed as the aggregate that needs one is created: a workload's
// namespace and name, a workload on a cluster. A claim whose holder no longer needs it is taken over.
import { claimDecider, claimEvents, ClaimHeld, type Claim, type ClaimCommand, type ClaimEvent } from '../domain/claim.js';
import { NameTaken } from './access.js';
import type { Clock } from './clock.js';
import type { DomainEvent } from '../domain/decider.js';
import type { Aggregate, CommandContext, CommandHandler, Gate, GateVerdict } from './command-handler.js';

export const claims: Aggregate<ClaimCommand, ClaimEvent, Claim> = {
  category: 'claim',
  decider: claimDecider,
  events: claimEvents,
  snapshotVersion: 1,
};

/**
 * A holder that does not exist may be a creation under way (claimed, not yet created): only once the claim is this
 * old is it taken to be a creation that never finished (the process stopped in between) and taken over.
 */
export const ABANDONED_AFTER_MS = 60_000;

/** What a holder of a key is now, as the caller's aggregate knows it. */
export type HolderState = 'absent' | 'live' | 'gone';

/** The key is held by another that still needs it: 409, naming the field and the holder. */
export class AlreadyTaken extends NameTaken {
  override name = 'AlreadyTaken';
  constructor(
    field: string,
    value: string,
    readonly holder: string,
    what: string,
  ) {
    super(field, value);
    this.message = `${what} already exists as ${holder}`;
  }
}

export interface ClaimRequest {
  /** The unique key, such as `workload:<namespace>/<name>`. */
  key: string;
  ownerId: string;
  /** The request field the key comes from, and its value, for the 409. */
  field: string;
  value: string;
  /** How the conflict reads: "workload ml/llm", "a deployment of workload W on cluster C". */
  what: string;
  /** Whether the current holder still needs the key. */
  holder(id: string): Promise<HolderState>;
}

export class UniqueNames {
  constructor(
    private readonly handler: CommandHandler,
    private readonly clock: Clock,
  ) {}

  /** Takes the key for the owner (again, harmlessly, for the same owner), or throws AlreadyTaken naming who holds it. */
  async claim(request: ClaimRequest, context: CommandContext): Promise<void> {
    const { key, ownerId } = request;
    const now = this.clock.now();
    try {
      await this.handler.execute(
        claims,
        key,
        async (state: Claim): Promise<ClaimCommand> => {
          const take: ClaimCommand = { type: 'TakeClaim', key, ownerId, at: now.toISOString() };
          if (state.owner === undefined || state.owner === ownerId) return take;
          const holder = await request.holder(state.owner);
          const abandoned = holder === 'absent' && now.getTime() - Date.parse(state.takenAt) >= ABANDONED_AFTER_MS;
          return holder === 'gone' || abandoned ? { ...take, goneHolder: state.owner } : take;
        },
        context,
      );
    } catch (error) {
      if (error instanceof ClaimHeld) throw new AlreadyTaken(request.field, request.value, error.holder, request.what);
      throw error;
    }
  }

  /**
   * A gate for the command that creates the owner: once the command has decided (and been judged), the key is
   * claimed just before the owner's events are appended. A command refused for any other reason claims nothing.
   * Should the append then fail, the claim is left to an owner that does not exist, and is taken over once abandoned.
   */
  gate<Command, Event, State>(request: ClaimRequest, context: CommandContext, inner?: Gate<Command, Event, State>): Gate<Command, Event, State> {
    return async (decision) => {
      const verdict: GateVerdict = inner ? await inner(decision) : { events: decision.events as DomainEvent[] };
      if (verdict.refusal || decision.events.length === 0) return verdict;
      const admit = verdict.admit;
      return {
        ...verdict,
        admit: async (append) => {
          await this.claim(request, context);
          return admit ? admit(append) : this.handler.store.append(append.stream, append.events, { expected: append.expected ?? 'any' });
        },
      };
    };
  }}
