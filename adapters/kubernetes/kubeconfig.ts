// Builds a client-node KubeConfig from a cluster's recorded credentials, after the kubeconfig policy has checked them,
// with errors that say what is wrong with them.
import { access } from 'node:fs/promises';
import { constants } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { Credentials } from '../../domain/cluster.js';
import { ClusterError } from '../../reactors/cluster-driver.js';
import { ExecCredentialPlugins } from './exec-credentials.js';
import type { CheckedKubeconfig, KubeconfigPolicy } from './kubeconfig-policy.js';

/** Resolves a secret reference from the event log to the secret itself, or undefined when no such secret is stored. */
export type SecretLookup = (ref: string) => Promise<string | undefined>;

/** The credentials cannot be turned into a working configuration, or the policy refuses them; retrying will not change that. */
export class CredentialsError extends ClusterError {
  constructor(message: string) {
    super(message, undefined, false);
    this.name = 'CredentialsError';
  }
}

/** Where a pod finds its service account token and the cluster's CA certificate. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigOptions {
  /** What a kubeconfig may make this process run, read and trust; checked again on every connect. */
  policy: KubeconfigPolicy;
  /** Prefix for the service account files of in-cluster credentials (client-node's `loadFromCluster(pathPrefix)`). */
  inClusterPathPrefix?: string;
  /** How long an exec credential plugin may run before it is killed; default 30 s. */
  execTimeoutMs?: number;
}

export async function kubeConfigFor(credentials: Credentials, lookupSecret: SecretLookup, options: KubeConfigOptions): Promise<KubeConfig> {
  switch (credentials.source) {
    case 'kubeconfig-file':
      return fromFile(credentials.path, options);
    case 'kubeconfig-base64':
      return fromSecret(credentials.secretRef, lookupSecret, options);
    case 'in-cluster':
      return inCluster(options.inClusterPathPrefix ?? '');
  }
}

async function fromFile(path: string, options: KubeConfigOptions): Promise<KubeConfig> {
  const what = `kubeconfig file ${path}`;
  const file = await options.policy.readFile(path);
  if ('missing' in file) throw new CredentialsError(`${what} does not exist`);
  if ('problem' in file) throw new CredentialsError(`${what} is refused: ${file.problem}`);
  // As kubectl does: files named in the kubeconfig are relative to the kubeconfig itself.
  return load(await checked(options.policy, file.text, what, file.dir), what, options);
}

async function fromSecret(secretRef: string, lookupSecret: SecretLookup, options: KubeConfigOptions): Promise<KubeConfig> {
  const what = `kubeconfig secret ${secretRef}`;
  const encoded = await lookupSecret(secretRef);
  if (encoded === undefined) throw new CredentialsError(`${what} was not found in the secret store`);
  const compact = encoded.replace(/\s+/g, '');
  // Buffer.from skips characters outside the alphabet without a word, so check the alphabet first.
  if (compact.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    throw new CredentialsError(`${what} is not valid base64`);
  }
  return load(await checked(options.policy, Buffer.from(compact, 'base64').toString('utf8'), what), what, options);
}

/** The kubeconfig as the policy lets it be used; its problems name fields and files, never the file's contents. */
async function checked(policy: KubeconfigPolicy, text: string, what: string, dir?: string): Promise<CheckedKubeconfig> {
  const verdict = await policy.check(text, dir);
  if (verdict.ok) return verdict.kubeconfig;
  if (verdict.invalid) throw new CredentialsError(`${what} is ${verdict.problems.join('; ')}`);
  throw new CredentialsError(`${what} is refused: ${verdict.problems.join('; ')}`);
}

function load(kubeconfig: CheckedKubeconfig, what: string, options: KubeConfigOptions): KubeConfig {
  const config = new KubeConfig();
  try {
    // The checked document as JSON: client-node reads exactly what the policy saw, with no exec plugin left in it.
    config.loadFromString(JSON.stringify(kubeconfig.document));
  } catch (error) {
    throw new CredentialsError(`${what} is not a valid kubeconfig: ${(error as Error).message}`);
  }
  if (kubeconfig.plugins.size > 0) {
    config.addAuthenticator(new ExecCredentialPlugins(kubeconfig.plugins, { ...(options.execTimeoutMs ? { timeoutMs: options.execTimeoutMs } : {}) }));
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
