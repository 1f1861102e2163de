// Builds a client-node KubeConfig from a cluster's recorded credentials, with errors that say what is wrong with them.
import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { Credentials } from '../../domain/cluster.js';
import { ClusterError } from '../../reactors/cluster-driver.js';

/** Resolves a secret reference from the event log to the secret itself, or undefined when no such secret is stored. */
export type SecretLookup = (ref: string) => Promise<string | undefined>;

/** The credentials cannot be turned into a working configuration; retrying will not change that. */
export class CredentialsError extends ClusterError {
  constructor(message: string) {
    super(message, undefined, false);
    this.name = 'CredentialsError';
  }
}

/** Where a pod finds its service account token and the cluster's CA certificate. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigOptions {
  /** Prefix for the service account files of in-cluster credentials (client-node's `loadFromCluster(pathPrefix)`). */
  inClusterPathPrefix?: string;
}

export async function kubeConfigFor(credentials: Credentials, lookupSecret: SecretLookup, options: KubeConfigOptions = {}): Promise<KubeConfig> {
  switch (credentials.source) {
    case 'kubeconfig-file':
      return fromFile(credentials.path);
    case 'kubeconfig-base64':
      return fromSecret(credentials.secretRef, lookupSecret);
    case 'in-cluster':
      return inCluster(options.inClusterPathPrefix ?? '');
  }
}

async function fromFile(path: string): Promise<KubeConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this process' : (error as Error).message;
    throw new CredentialsError(`kubeconfig file ${path} ${why}`);
  }
  const config = parse(text, `kubeconfig file ${path}`);
  // As kubectl does: certificate and key files named in the kubeconfig are relative to the kubeconfig itself.
  config.makePathsAbsolute(dirname(resolve(path)));
  return config;
}

async function fromSecret(secretRef: string, lookupSecret: SecretLookup): Promise<KubeConfig> {
  const encoded = await lookupSecret(secretRef);
  if (encoded === undefined) throw new CredentialsError(`kubeconfig secret ${secretRef} was not found in the secret store`);
  const compact = encoded.replace(/\s+/g, '');
  // Buffer.from skips characters outside the alphabet without a word, so check the alphabet first.
  if (compact.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    throw new CredentialsError(`kubeconfig secret ${secretRef} is not valid base64`);
  }
  return parse(Buffer.from(compact, 'base64').toString('utf8'), `kubeconfig secret ${secretRef}`);
}

function parse(text: string, what: string): KubeConfig {
  const config = new KubeConfig();
  try {
    config.loadFromString(text);
  } catch (error) {
    throw new CredentialsError(`${what} is not a valid kubeconfig: ${(error as Error).message}`);
  }
  const context = config.getCurrentContext();
  if (!context) throw new CredentialsError(`${what} names no current-context`);
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new CredentialsError(`${what}: current-context ${context} names no cluster that the file defines`);
  if (!cluster.server) throw new CredentialsError(`${what}: cluster ${cluster.name} has no server URL`);
  return config;
}

async function inCluster(pathPrefix: string): Promise<KubeConfig> {
  const missing = ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'].filter((name) => !process.env[name]);
  if (missing.length > 0) {
    throw new CredentialsError(`in-cluster credentials need ${missing.join(' and ')} in the environment: is Sentinel running in a pod?`);
  }
  for (const file of ['token', 'ca.crt']) {
    const path = `${pathPrefix}${SERVICE_ACCOUNT_DIR}/${file}`;
    try {
      await access(path, constants.R_OK);
    } catch {
      throw new CredentialsError(`in-cluster credentials need the service account ${file} at ${path}, which is missing or unreadable`);
    }
  }
  const config = new KubeConfig();
  config.loadFromCluster(pathPrefix);
  return config;
}
