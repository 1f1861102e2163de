// Cluster commands: register, update, cordon, uncordon, deregister.
import type { ClusterBody, ClusterPatchBody, Credentials, ClusterSpec } from '../domain/cluster.js';
import { clusters } from './aggregates.js';
import type { CommandContext, CommandHandler, WriteResult } from './command-handler.js';
import type { SecretStore } from './secrets.js';

export class ClusterCommands {
  constructor(
    private readonly handler: CommandHandler,
    private readonly secrets: SecretStore,
  ) {}

  async register(clusterId: string, body: ClusterBody, context: CommandContext): Promise<WriteResult> {
    const spec: ClusterSpec = { ...body, credentials: await this.recordable(body.credentials) };
    return this.handler.execute(clusters, clusterId, { type: 'RegisterCluster', clusterId, spec }, context);
  }

  async update(clusterId: string, patch: ClusterPatchBody, context: CommandContext): Promise<WriteResult> {
    const { credentials, ...rest } = patch;
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

  /** An inline kubeconfig goes to the secret store; the log records only its reference. */
  private async recordable(credentials: ClusterBody['credentials']): Promise<Credentials> {
    if (credentials.source !== 'kubeconfig-base64') return credentials;
    return { source: 'kubeconfig-base64', secretRef: await this.secrets.put(credentials.data) };
  }
}
