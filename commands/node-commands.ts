// Node health commands: record what one stored telemetry batch says of its node, and which nodes went silent.
import { randomUUID } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import type { EventStore } from '../domain/event-store.js';
import { factEventId, factKey, isUnfit, nodeDecider, nodeId, type Node, type NodeCommand, type NodeEvent, type UnfitCause } from '../domain/node.js';
import { healthSamples, type RawSample } from '../domain/node-health.js';
import { nodes } from './aggregates.js';
import { streamOf, type CommandContext, type CommandHandler } from './command-handler.js';

/** Who records node facts. */
export const TELEMETRY_ACTOR = { id: 'sentinel-telemetry', kind: 'system' as const };

/** Namespace of the correlation ids derived from batches (uuid v5). */
const BATCH_NAMESPACE = '9a4e0c71-2d5b-5f3e-8b16-c7d2e9f04a63';

/** What the ingest stored: the telemetry contract's `Batch`, as far as health facts read it. */
export interface ObservedBatch {
  agentId: string;
  nodeName: string;
  clusterId: string;
  sequence: number;
  samples: readonly RawSample[];
}

/** A fact a command appended, with its event id. */
export interface RecordedFact {
  id: string;
  event: NodeEvent;
}

/** What one command recorded about one node. */
export interface RecordedFacts {
  nodeId: string;
  stream: string;
  clusterId: string;
  nodeName: string;
  /** The facts appended, in order; none when nothing changed or another writer had already recorded them. */
  facts: RecordedFact[];
  /** When the node was fit before the command and these facts made it unfit: the cause that opened the episode. */
  becameUnfit?: { cause: UnfitCause; factId: string };
}

export interface SilenceRule {
  /** How often the check runs; the `intervals` of a `NodeWentSilent` count these. */
  intervalMs: number;
  /** How long without a batch before a node counts as silent. */
  silentAfterMs: number;
}

export class NodeHealthCommands {
  /** When this process last received a batch from each node it knows of, by node id. */
  private readonly lastHeard = new Map<string, Date>();

  constructor(private readonly handler: CommandHandler) {}

  /** The nodes the silence check looks at. */
  knownNodes(): string[] {
    return [...this.lastHeard.keys()];
  }

  /**
   * Learns the nodes the log knows of. Whether they reported while this process was not listening cannot be told,
   * so each counts as heard from at `now` and gets a full silence period before it can be judged silent. A node
   * whose registration is too recent for a read of the whole log to show is learned when it next reports.
   */
  async loadKnownNodes(store: EventStore, now: Date): Promise<void> {
    const prefix = `${nodes.category}-`;
    let after: string | undefined;
    for (;;) {
      const page = await store.readAll({ after, filter: { types: ['NodeRegistered'] }, limit: 1000 });
      for (const event of page.events) {
        const id = event.stream.slice(prefix.length);
        if (event.stream.startsWith(prefix) && !this.lastHeard.has(id)) this.lastHeard.set(id, now);
      }
      if (page.events.length === 0 || !page.checkpoint || page.checkpoint === after) return;
      after = page.checkpoint;
    }
  }

  /** Records the facts a stored batch establishes about its node (registering the node on its first batch). */
  async observe(batch: ObservedBatch, receivedAt: Date): Promise<RecordedFacts> {
    const id = nodeId(batch.clusterId, batch.nodeName);
    const previous = this.lastHeard.get(id);
    if (!previous || previous < receivedAt) this.lastHeard.set(id, receivedAt);
    const causationId = uuidv5(`${batch.agentId}\u0000${batch.sequence}`, BATCH_NAMESPACE);
    const command: NodeCommand = {
      type: 'ObserveBatch',
      clusterId: batch.clusterId,
      nodeName: batch.nodeName,
      agentId: batch.agentId,
      samples: healthSamples(batch.samples, receivedAt),
      observedAt: receivedAt.toISOString(),
    };
    return this.record(id, command, { clusterId: batch.clusterId, nodeName: batch.nodeName }, causationId);
  }

  /** Records `NodeWentSilent` for each known node that has sent nothing for longer than the rule allows. */
  async checkSilence(now: Date, rule: SilenceRule): Promise<RecordedFacts[]> {
    const recorded: RecordedFacts[] = [];
    for (const [id, heard] of [...this.lastHeard]) {
      const command: NodeCommand = {
        type: 'CheckSilence',
        now: now.toISOString(),
        silentAfterMs: rule.silentAfterMs,
        intervalMs: rule.intervalMs,
        lastHeardAt: heard.toISOString(),
      };
      const result = await this.record(id, command, undefined, randomUUID());
      if (result.facts.length > 0) recorded.push(result);
    }
    return recorded;
  }

  /**
   * Runs the command with event ids derived from each fact it decides (`factEventId`). The ids are known only once
   * the decision is, so the command is given as a function of the state the handler loaded: it decides there, and
   * the handler, deciding the same pure function on the same state, appends those events under those ids.
   */
  private async record(
    id: string,
    command: NodeCommand,
    names: { clusterId: string; nodeName: string } | undefined,
    causationId: string,
  ): Promise<RecordedFacts> {
    const stream = streamOf(nodes, id);
    let decided: { before: Node; events: NodeEvent[] } | undefined;
    const context: CommandContext = {
      actor: TELEMETRY_ACTOR,
      correlationId: causationId,
      causationId,
      source: 'telemetry',
      // Before the first decision there is nothing this command could have appended: an id no fact has.
      eventIds: (index) => (decided?.events[index] ? factEventId(stream, decided.events[index]) : uuidv5(`${stream}\u0000undecided`, BATCH_NAMESPACE)),
    };
    const result = await this.handler.execute(
      nodes,
      id,
      async (state: Node) => {
        decided = { before: state, events: nodeDecider.decide(command, state) };
        return command;
      },
      context,
    );
    const facts = result.appended > 0 && decided ? decided.events.map((event) => ({ id: factEventId(stream, event), event })) : [];
    const after = facts.length > 0 ? facts.reduce((state, fact) => nodeDecider.evolve(state, fact.event), decided!.before) : undefined;
    const known = after ?? decided?.before;
    return {
      nodeId: id,
      stream,
      clusterId: names?.clusterId ?? (known && known.status !== 'absent' ? known.clusterId : ''),
      nodeName: names?.nodeName ?? (known && known.status !== 'absent' ? known.nodeName : ''),
      facts,
      ...(after && decided ? openedEpisode(decided.before, after, facts) : {}),
    };
  }
}

/** The cause that made a fit node unfit, with the id of the fact (among those just recorded) that recorded it. */
function openedEpisode(before: Node, after: Node, facts: RecordedFact[]): Pick<RecordedFacts, 'becameUnfit'> {
  if (isUnfit(before) || !isUnfit(after) || after.status === 'absent') return {};
  const cause = after.unfit[0]!;
  const fact = facts.find((recorded) => factKey(recorded.event) === cause.eventKey);
  return fact ? { becameUnfit: { cause, factId: fact.id } } : {};
}
