// Cluster commands: register, update, cordon, uncordon, deregister.
import type { ClusterBody, ClusterPatchBody, Credentials, ClusterSpec } from '../domain/cluster.js';
import { RuleViolation, type FieldError } from '../domain/decider.js';
import { clusters } from './aggregates.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';
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
