// Runs the exec credential plugins of a checked kubeconfig in place of client-node's own authenticator, which would
// run any command with Sentinel's whole environment and no time limit: here the checked program itself, no shell,
// bounded in time and output.
import { execFile } from 'node:child_process';
import type { KubeConfig, User } from '@kubernetes/client-node';
import { ClusterError } from '../../reactors/cluster-driver.js';
import type { ExecPlugin } from './kubeconfig-policy.js';

type Authenticator = Parameters<KubeConfig['addAuthenticator']>[0];
type RequestOptions = Parameters<Authenticator['applyAuthentication']>[1];

export interface ExecPluginOptions {
  /** A plugin that has not answered after this long is killed; default 30 s. */
  timeoutMs?: number;
  /** A credential printed without an expiry is used this long before the plugin runs again; default 5 minutes. */
  reuseMs?: number;
}

/** The plugin did not give a credential this time. It may next time (an expired session, a slow identity provider). */
export class ExecPluginError extends ClusterError {
  constructor(message: string) {
    super(message, undefined, true);
    this.name = 'ExecPluginError';
  }
}

interface Credential {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  /** Epoch milliseconds after which the plugin runs again. */
  until: number;
}

const MAX_OUTPUT_BYTES = 1024 * 1024;
/** Sentinel's own secrets stay out of a plugin's environment. */
const SENTINEL_OWN = /^(SENTINEL_\w*|DATABASE_URL|TEST_DATABASE_URL|KURRENTDB_URL|KAFKA_\w*)$/;

export class ExecCredentialPlugins implements Authenticator {
  private readonly cache = new Map<string, Promise<Credential>>();

  constructor(
    private readonly plugins: ReadonlyMap<string, ExecPlugin>,
    private readonly options: ExecPluginOptions = {},
  ) {}

  isAuthProvider(user: User): boolean {
    return this.plugins.has(user.name);
  }

  async applyAuthentication(user: User, opts: RequestOptions): Promise<void> {
    const credential = await this.credential(user.name);
    const target = opts as { cert?: string; key?: string; headers?: Record<string, string> };
    if (credential.clientCertificateData && credential.clientKeyData) {
      target.cert = credential.clientCertificateData;
      target.key = credential.clientKeyData;
    }
    if (credential.token) {
      target.headers ??= {};
      target.headers['Authorization'] = `Bearer ${credential.token}`;
    }
  }

  /** The user's credential: the one in hand while it lasts, else one run of the plugin shared by every caller. */
  private async credential(userName: string): Promise<Credential> {
    for (let cached = this.cache.get(userName); cached; cached = this.cache.get(userName)) {
      // A failed run fails everyone who waited on it; it is no longer cached, so the next request runs the plugin again.
      const credential = await cached;
      if (credential.until > Date.now()) return credential;
      if (this.cache.get(userName) === cached) this.cache.delete(userName);
    }
    const running = this.run(userName);
    this.cache.set(userName, running);
    running.catch(() => {
      if (this.cache.get(userName) === running) this.cache.delete(userName);
    });
    return running;
  }

  private run(userName: string): Promise<Credential> {
    const plugin = this.plugins.get(userName)!;
    const timeoutMs = this.options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      execFile(
        plugin.command,
        plugin.args,
        { env: environment(plugin), shell: false, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, windowsHide: true, encoding: 'utf8' },
        (error, stdout) => {
          // What the plugin printed on stderr is its own business (it may name accounts or tokens): not repeated here.
          const what = `exec credential plugin ${plugin.command} of user ${userName}`;
          if (error) {
            const { code, killed, signal } = error as { code?: unknown; killed?: boolean; signal?: unknown };
            if (killed && signal === 'SIGKILL') reject(new ExecPluginError(`${what} did not answer within ${timeoutMs} ms`));
            else if (code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') reject(new ExecPluginError(`${what} printed more than ${MAX_OUTPUT_BYTES} bytes`));
            else if (typeof code === 'number') reject(new ExecPluginError(`${what} exited with code ${code}`));
            else if (typeof signal === 'string') reject(new ExecPluginError(`${what} was ended by ${signal}`));
            else reject(new ExecPluginError(`${what} could not be started (${typeof code === 'string' ? code : 'unknown error'})`));
            return;
          }
          const credential = parseCredential(stdout, this.options.reuseMs ?? 300_000);
          if (credential) resolve(credential);
          else reject(new ExecPluginError(`${what} did not print an ExecCredential with a token or a client certificate and key`));
        },
      );
    });
  }
}

/** This process's environment less Sentinel's own settings, the plugin's variables, and what kubectl tells a plugin. */
function environment(plugin: ExecPlugin): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!SENTINEL_OWN.test(name)) env[name] = value;
  for (const { name, value } of plugin.env) env[name] = value;
  env['KUBERNETES_EXEC_INFO'] = JSON.stringify({ apiVersion: plugin.apiVersion, kind: 'ExecCredential', spec: { interactive: false } });
  return env;
}

function parseCredential(stdout: string, reuseMs: number): Credential | undefined {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  const status = (value as { status?: unknown } | null)?.status;
  if (!status || typeof status !== 'object') return undefined;
  const { token, clientCertificateData, clientKeyData, expirationTimestamp } = status as Record<string, unknown>;
  const text = (field: unknown) => (typeof field === 'string' && field.length > 0 ? field : undefined);
  const credential = { token: text(token), clientCertificateData: text(clientCertificateData), clientKeyData: text(clientKeyData) };
  if (!credential.token && !(credential.clientCertificateData && credential.clientKeyData)) return undefined;
  const expires = typeof expirationTimestamp === 'string' ? Date.parse(expirationTimestamp) : Number.NaN;
  return { ...credential, until: Number.isNaN(expires) ? Date.now() + reuseMs : expires };
}
