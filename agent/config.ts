// The node agent's configuration: AGENT_* environment variables checked by zod and turned into one structured object.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { z } from 'zod';
import { emptyAsUndefined, integer } from '../adapters/config/environment.js';

/** Where the service-account token comes from; a file is read again on every connect, so a rotated token is picked up. */
export type TokenSource = { value: string } | { file: string };

/** How the telemetry channel is secured: plaintext, TLS with the system's roots, or TLS with one CA's PEM file. */
export type TlsSetting = { mode: 'plaintext' } | { mode: 'system-roots' } | { mode: 'ca-file'; caFile: string };

export interface PushConfig {
  /** host:port of Sentinel's telemetry gRPC service. */
  address: string;
  token: TokenSource;
  tls: TlsSetting;
}

export interface AgentConfig {
  agentId: string;
  nodeName: string;
  clusterId: string;
  /** Absent when AGENT_PUSH=off: the agent only serves /metrics. */
  push?: PushConfig;
  collectSeconds: number;
  batchMaxSamples: number;
  batchMaxSeconds: number;
  bufferSamples: number;
  /** Absent when AGENT_METRICS_PORT=0; port 0 here (only in code, never from the environment) asks for any free port. */
  metrics?: { host: string; port: number };
  procRoot: string;
  sysRoot: string;
  nvidiaSmi: string;
  commandTimeoutMs: number;
  /** A kernel log to follow for NVIDIA XID lines; absent: XID collection is off. */
  xidLog?: string;
  logLevel: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const optionalText = (rule: string) => z.preprocess(emptyAsUndefined, z.string().min(1, rule).optional());

const HOST_PORT = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+):[0-9]{1,5}$/i;
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const schema = z.object({
  AGENT_SENTINEL_ADDRESS: z.string().regex(HOST_PORT, 'host:port of Sentinel\'s telemetry gRPC service, e.g. sentinel.sentinel.svc:50051').default('127.0.0.1:50051'),
  AGENT_PUSH: z.enum(['on', 'off'], { error: 'on or off' }).default('on'),
  AGENT_TOKEN: optionalText('a service-account token'),
  AGENT_TOKEN_FILE: optionalText('a file path'),
  AGENT_ID: optionalText('an agent id such as <cluster>/<node>'),
  AGENT_NODE_NAME: z.string().regex(ID, 'a node name: letters, digits, ".", "_" or "-"').default(os.hostname()),
  AGENT_CLUSTER_ID: z.string({ error: 'the id of the cluster this node belongs to (required)' }).regex(ID, 'a cluster id: letters, digits, ".", "_" or "-"'),
  AGENT_COLLECT_SECONDS: integer(1, 3600).default(10),
  AGENT_BATCH_MAX_SAMPLES: integer(1, 100_000).default(1000),
  AGENT_BATCH_MAX_SECONDS: integer(1, 3600).default(30),
  AGENT_BUFFER_SAMPLES: integer(1, 100_000_000).default(100_000),
  AGENT_METRICS_HOST: z.string().min(1, 'an address to listen on, such as 0.0.0.0 or ::').default('0.0.0.0'),
  AGENT_METRICS_PORT: integer(0, 65535).default(9400),
  AGENT_PROC_ROOT: z.string().min(1, 'a directory path').default('/proc'),
  AGENT_SYS_ROOT: z.string().min(1, 'a directory path').default('/sys'),
  AGENT_NVIDIA_SMI: z.string().min(1, 'a command name or path').default('nvidia-smi'),
  AGENT_COMMAND_TIMEOUT_MS: integer(100, 600_000).default(5000),
  AGENT_XID_LOG: optionalText('a file path such as /var/log/kern.log'),
  AGENT_TLS_CA: optionalText('a PEM file of the CA that signed Sentinel\'s certificate'),
  AGENT_TLS: z
    .enum(['true', 'false', '1', '0'], { error: 'true or false' })
    .default('false')
    .transform((value) => value === 'true' || value === '1'),
  AGENT_LOG_LEVEL: z.enum(LOG_LEVELS, { error: `one of: ${LOG_LEVELS.join(', ')}` }).default('info'),
});

type Environment = z.infer<typeof schema>;

const refined = schema
  .refine((env) => !(env.AGENT_TOKEN && env.AGENT_TOKEN_FILE), {
    path: ['AGENT_TOKEN_FILE'],
    message: 'set AGENT_TOKEN or AGENT_TOKEN_FILE, not both',
  })
  .refine((env) => env.AGENT_PUSH === 'off' || env.AGENT_TOKEN || env.AGENT_TOKEN_FILE, {
    path: ['AGENT_TOKEN'],
    message: 'a service-account token is required to push: set AGENT_TOKEN or AGENT_TOKEN_FILE, or AGENT_PUSH=off',
  });

export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(`invalid agent configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`);
  }
}

/** The environment's agent configuration, or an AgentConfigError naming every variable that is wrong. */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const result = refined.safeParse(env);
  if (!result.success) {
    throw new AgentConfigError(
      result.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? '(environment)');
        return { variable, message: `${issue.message} (got ${shown(variable, env[variable])})` };
      }),
    );
  }
  return structured(result.data);
}

function structured(env: Environment): AgentConfig {
  const tls: TlsSetting = env.AGENT_TLS_CA
    ? { mode: 'ca-file', caFile: env.AGENT_TLS_CA }
    : env.AGENT_TLS
      ? { mode: 'system-roots' }
      : { mode: 'plaintext' };
  const token: TokenSource | undefined = env.AGENT_TOKEN ? { value: env.AGENT_TOKEN } : env.AGENT_TOKEN_FILE ? { file: env.AGENT_TOKEN_FILE } : undefined;
  return {
    agentId: env.AGENT_ID ?? `${env.AGENT_CLUSTER_ID}/${env.AGENT_NODE_NAME}`,
    nodeName: env.AGENT_NODE_NAME,
    clusterId: env.AGENT_CLUSTER_ID,
    ...(env.AGENT_PUSH === 'on' && token ? { push: { address: env.AGENT_SENTINEL_ADDRESS, token, tls } } : {}),
    collectSeconds: env.AGENT_COLLECT_SECONDS,
    batchMaxSamples: env.AGENT_BATCH_MAX_SAMPLES,
    batchMaxSeconds: env.AGENT_BATCH_MAX_SECONDS,
    bufferSamples: env.AGENT_BUFFER_SAMPLES,
    ...(env.AGENT_METRICS_PORT === 0 ? {} : { metrics: { host: env.AGENT_METRICS_HOST, port: env.AGENT_METRICS_PORT } }),
    procRoot: env.AGENT_PROC_ROOT,
    sysRoot: env.AGENT_SYS_ROOT,
    nvidiaSmi: env.AGENT_NVIDIA_SMI,
    commandTimeoutMs: env.AGENT_COMMAND_TIMEOUT_MS,
    ...(env.AGENT_XID_LOG ? { xidLog: env.AGENT_XID_LOG } : {}),
    logLevel: env.AGENT_LOG_LEVEL,
  };
}

/**
 * The token, read now: from a file it is trimmed and read afresh each time, because Kubernetes rotates projected
 * service-account tokens in place. An unreadable or empty file is an AgentConfigError naming AGENT_TOKEN_FILE.
 */
export async function readToken(source: TokenSource): Promise<string> {
  if ('value' in source) return source.value;
  let token: string;
  try {
    token = (await readFile(source.file, 'utf8')).trim();
  } catch (error) {
    throw new AgentConfigError([{ variable: 'AGENT_TOKEN_FILE', message: `a readable file holding the token (got "${source.file}": ${(error as Error).message})` }]);
  }
  if (token.length === 0) throw new AgentConfigError([{ variable: 'AGENT_TOKEN_FILE', message: `a file holding the token (got "${source.file}": it is empty)` }]);
  return token;
}

/** The CA certificate for AGENT_TLS_CA, read once at start; an unreadable file is an AgentConfigError naming it. */
export async function readCa(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new AgentConfigError([{ variable: 'AGENT_TLS_CA', message: `a readable PEM file (got "${file}": ${(error as Error).message})` }]);
  }
}

/** A value for an error message: the token is described by its length, never echoed. */
function shown(variable: string, value: string | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === '') return `an empty value; unset ${variable} for its default`;
  if (variable === 'AGENT_TOKEN') return `${value.length} characters`;
  return JSON.stringify(value);
}
