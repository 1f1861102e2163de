// Cluster commands: register, update, cordon, uncordon, deregister; and the start of a node's drain, judged by policy.
import type { Cluster, ClusterBody, ClusterCommand, ClusterEvent, ClusterPatchBody, Credentials, ClusterSpec } from '../domain/cluster.js';
import { RuleViolation, type FieldError } from '../domain/decider.js';
import { policyEvents, type PolicyResult } from '../domain/policy-evaluation.js';
import type { Change } from '../domain/policy.js';
import { clusters } from './aggregates.js';
import type { Clock } from './clock.js';
import { streamOf, type CommandContext, type CommandHandler, type Gate, type WriteResult } from './command-handler.js';
import { PolicyEngine } from './policy-engine.js';
import type { SecretStore } from './secrets.js';

/**
 * Judges how Sentinel is to reach a cluster before it is recorded: whether the API server may be talked to, and
 * what the credentials would make Sentinel run, read or trust. Each refusal names the request's field.
 */
export interface ClusterAccessPolicy {
  refusals(access: { apiServer?: string; credentials?: ClusterBody['credentials'] }): Promise<FieldError[]>;
}

/** Where no policy was given: nothing about how to reach a cluster is accepted. */
export const refuseClusterAccess: ClusterAccessPolicy = {
  async refusals({ apiServer, credentials }) {
    const message = 'no cluster access policy is configured in this process';
    return [...(apiServer !== undefined ? [{ path: 'apiServer', message }] : []), ...(credentials ? [{ path: 'credentials', message }] : [])];
  },
};

export class ClusterCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly secrets: SecretStore,
    private readonly access: ClusterAccessPolicy,
  ) {}

  async register(clusterId: string, body: ClusterBody, context: CommandContext): Promise<WriteResult> {
    await this.admit({ apiServer: body.apiServer, credentials: body.credentials });
    const spec: ClusterSpec = { ...body, credentials: await this.recordable(body.credentials) };
    return this.handler.execute(clusters, clusterId, { type: 'RegisterCluster', clusterId, spec }, context);
  }

  async update(clusterId: string, patch: ClusterPatchBody, context: CommandContext): Promise<WriteResult> {
    const { credentials, ...rest } = patch;
    await this.admit({ ...(rest.apiServer !== undefined ? { apiServer: rest.apiServer } : {}), ...(credentials ? { credentials } : {}) });
    const changes: Partial<ClusterSpec> = credentials ? { ...rest, credentials: await this.recordable(credentials) } : rest;
    return this.handler.execute(clusters, clusterId, { type: 'UpdateCluster', clusterId, changes }, context);
  }

  cordon(clusterId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(clusters, clusterId, { type: 'CordonCluster', clusterId, reason }, context);
  }

  uncordon(clusterId: string, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(clusters, clusterId, { type: 'UncordonCluster', clusterId }, context);
  }

  deregister(clusterId: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    return this.handler.execute(clusters, clusterId, { type: 'DeregisterCluster', clusterId, reason }, context);
  }

  /** Refused access is refused before anything is stored: no secret, no event. */
  private async admit(access: Parameters<ClusterAccessPolicy['refusals']>[0]): Promise<void> {
    if (access.apiServer === undefined && access.credentials === undefined) return;
    const refusals = await this.access.refusals(access);
    if (refusals.length === 0) return;
    throw new RuleViolation(`Sentinel will not reach the cluster this way: ${refusals.map((r) => `${r.path}: ${r.message}`).join('; ')}`, refusals);
  }

  /** An inline kubeconfig goes to the secret store; the log records only its reference. */
  private async recordable(credentials: ClusterBody['credentials']): Promise<Credentials> {
    if (credentials.source !== 'kubeconfig-base64') return credentials;
    return { source: 'kubeconfig-base64', secretRef: await this.secrets.put(credentials.data) };
  }
}

/**
 * A drain as policy sees it: a change to the cluster that holds the node, moving no resources. Plan validation
 * judges this same change as a forecast; the drain is judged again when it starts.
 */
export function drainChange(clusterId: string, context: CommandContext, now: Date): Change {
  return {
    action: 'drain',
    at: now.toISOString(),
    actor: context.actor,
    target: { kind: 'cluster', id: clusterId },
    clusterId,
    labels: {},
    ...(context.emergency ? { emergency: context.emergency } : {}),
  };
}

/**
 * The start of a node's drain, before the node is cordoned: judged by policy at that moment and admitted to the
 * ledger like a deployment change, so that a change freeze or a rate limit holds for drains at the time they run.
 */
export class NodeDrainCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly clock: Clock,
    private readonly policy: PolicyEngine,
  ) {}

  /**
   * Records `NodeDrainStarted` with its judgement, or the judgement alone and a `PolicyViolation`: the node must
   * then not be touched. Sent again with the same event ids, it answers as the first time did, refusal included.
   */
  async start(clusterId: string, node: string, reason: string | undefined, context: CommandContext): Promise<WriteResult> {
    const written = await this.handler.execute(clusters, clusterId, { type: 'StartNodeDrain', clusterId, node, reason }, context, this.judged(clusterId, node, context));
    if (written.appended === 0) await this.refusedBefore(clusterId, node, written);
    return written;
  }

  /**
   * The policy gate, as a deployment command's: judge the drain with the ledger to itself, then either record the
   * refusal alone, or admit the drain to the ledger in the same step as its events.
   */
  private judged(clusterId: string, node: string, context: CommandContext): Gate<ClusterCommand, ClusterEvent, Cluster> {
    return async ({ command, revision, events }) => {
      const change = drainChange(clusterId, context, this.clock.now());
      return this.policy.gate({
        command: command.type,
        judged: { change },
        events,
        context,
        subject: drainSubject(clusterId, node),
        admission: { at: change.at, action: 'drain', targetId: clusterId, actorId: context.actor.id, targetRevision: revision + 1 + events.length },
      });
    };
  }

  /** A command answered from what it recorded before: when that was a refusal, it is refused again, in its words. */
  private async refusedBefore(clusterId: string, node: string, written: WriteResult): Promise<void> {
    const [recorded] = await this.handler.store.readStream(streamOf(clusters, clusterId), { from: written.revision, limit: 1 });
    if (recorded?.type !== 'PolicyEvaluated') return;
    const { data: decision } = policyEvents.parse(recorded.type, recorded.schemaVersion, recorded.data);
    if (decision.verdict !== 'deny') return;
    // The results were recorded from the engine's own evaluations; read back, their names are plain strings again.
    const evaluations = decision.evaluations.map(({ verdict, results }) => ({ verdict, results: results as PolicyResult[] }));
    const refusal = PolicyEngine.refusal({ verdict: decision.verdict, decision, evaluations }, drainSubject(clusterId, node));
    refusal.recordedIn = { id: clusterId, revision: recorded.revision, position: recorded.position };
    throw refusal;
  }
}

function drainSubject(clusterId: string, node: string): string {
  return `drain of node ${node} on cluster ${clusterId}`;
}
