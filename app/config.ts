// Sentinel's configuration: environment variables parsed and checked by zod, with defaults for a local run, and
// the files and address they name checked before anything is opened or written.
import { readFile } from 'node:fs/promises';
import { createServer, isIP } from 'node:net';
import { z } from 'zod';
import { emptyAsUndefined, integer } from '../adapters/config/environment.js';
import { healthFile } from '../adapters/policy/file-health-source.js';
import { DEFAULT_PRICES, priceOverrides, withOverrides, type PriceTable } from '../domain/pricing.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** api: the HTTP API; projector: the read-side projectors; reactor: the reactors that drive clusters and plans. */
export const ROLES = ['api', 'projector', 'reactor', 'telemetry', 'inframind'] as const;
export type Role = (typeof ROLES)[number];
const ROLE_RULE = `one of: all, ${ROLES.join(', ')}, or a comma-separated list of them such as "api,projector"`;

/** `all`, one role, or several separated by commas: the set of roles this process runs. */
const roles = z
  .string()
  .default('all')
  .transform((text, context): Role[] => {
    const named = text.split(',').map((part) => part.trim());
    if (named.includes('all') && named.length === 1) return [...ROLES];
    const unknown = named.filter((part) => !(ROLES as readonly string[]).includes(part));
    if (unknown.length > 0 || named.length === 0) {
      context.addIssue({ code: 'custom', message: ROLE_RULE, input: text });
      return z.NEVER;
    }
    return ROLES.filter((role) => named.includes(role));
  });

const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\/\S+$/, 'a PostgreSQL connection URL such as postgres://user@host:5432/sentinel');

const kurrentUrl = z
  .string()
  .regex(
    /^(esdb|esdb\+discover|kurrentdb|kurrentdb\+discover|kdb|kdb\+discover):\/\/\S+$/,
    'a KurrentDB connection string such as kurrentdb://localhost:2113?tls=false',
  );

const HOST_RULE =
  'an address of this machine to listen on: an IP address such as 127.0.0.1, 0.0.0.0 or ::, or a host name that resolves to one';
const HOST_NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

const flag = z
  .enum(['true', 'false', '1', '0'], { error: 'true or false' })
  .default('false')
  .transform((value) => value === 'true' || value === '1');

/** A comma-separated list; blanks are dropped, so an empty value is an empty list. */
const list = (item: z.ZodString, rule: string) =>
  z
    .string()
    .default('')
    .transform((text) => text.split(',').map((part) => part.trim()).filter((part) => part.length > 0))
    .pipe(z.array(item.regex(/^[^\s]+$/, rule)));

const schema = z.object({
  SENTINEL_ROLE: roles,
  // Loopback unless told otherwise: a fresh `npm start` is reachable from this machine only.
  HOST: z
    .string()
    .refine((host) => isIP(host) !== 0 || HOST_NAME.test(host), HOST_RULE)
    .default('127.0.0.1'),
  PORT: integer(0, 65535).default(8080),
  SENTINEL_DATA_DIR: z.string().min(1, 'a directory path').default('./data'),
  DATABASE_URL: z.preprocess(emptyAsUndefined, postgresUrl.optional()),
  DATABASE_POOL_MAX: integer(1, 1000).default(10),
  KURRENTDB_URL: z.preprocess(emptyAsUndefined, kurrentUrl.optional()),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `one of: ${LOG_LEVELS.join(', ')}` }).default('info'),
  SHUTDOWN_TIMEOUT_MS: integer(0, 600_000).default(10_000),
  SENTINEL_JWT_SECRET: z.preprocess(
    emptyAsUndefined,
    z.string().min(32, 'a secret of at least 32 characters, e.g. from `openssl rand -base64 48`').optional(),
  ),
  SENTINEL_JWT_SECRET_FILE: z.preprocess(emptyAsUndefined, z.string().min(1, 'a file path').optional()),
  SENTINEL_ADMIN_PASSWORD: z.preprocess(emptyAsUndefined, z.string().min(12, 'at least 12 characters').optional()),
  SENTINEL_ACCESS_TOKEN_TTL_SECONDS: integer(30, 86_400).default(900),
  SENTINEL_REFRESH_TOKEN_TTL_SECONDS: integer(60, 90 * 86_400).default(7 * 86_400),
  SENTINEL_PLAN_TTL_SECONDS: integer(1, 604_800).default(3600),
  SENTINEL_PRICES_FILE: z.preprocess(emptyAsUndefined, z.string().min(1, 'a file path').optional()),
  SENTINEL_HEALTH_FILE: z.preprocess(emptyAsUndefined, z.string().min(1, 'a file path').optional()),
  /** Prometheus the SLO rules read workload latency and success rate from (vLLM metrics for inference); none when unset. */
  PROMETHEUS_URL: z.preprocess(emptyAsUndefined, z.url({ protocol: /^https?$/, error: 'an http(s) URL of a Prometheus server, e.g. http://prometheus:9090' }).optional()),
  SENTINEL_HEALTH_REFRESH_SECONDS: integer(1, 3600).default(15),
  SENTINEL_CLUSTER_SIMULATOR: z.enum(['auto', 'on', 'off'], { error: 'one of: auto, on, off' }).default('auto'),
  SENTINEL_PROGRESS_DEADLINE_SECONDS: integer(1, 86_400).default(600),
  SENTINEL_PLAN_ACTION_TIMEOUT_SECONDS: integer(1, 86_400).default(1800),
  SENTINEL_EVICTION_TIMEOUT_SECONDS: integer(1, 3600).default(120),
  /** How often each cluster reactor compares every deployment with its cluster; 0 only on start. */
  SENTINEL_RESYNC_SECONDS: integer(0, 86_400).default(300),
  /** How often the admission ledger is compared with what every deployment can run; 0 only on start. */
  SENTINEL_LEDGER_AUDIT_SECONDS: integer(0, 86_400).default(60),
  /** Aggregates whose folded state is kept in memory (least recently used go first); 0: none. */
  SENTINEL_AGGREGATE_CACHE_SIZE: integer(0, 10_000_000).default(10_000),
  /** Events between two snapshots of an aggregate's state; 0: no snapshots. */
  SENTINEL_SNAPSHOT_EVERY: integer(0, 1_000_000).default(100),
  // The Ed25519 key (PEM) audit checkpoints are signed with: `sentinel audit export`, and the anchors below.
  AUDIT_SIGNING_KEY_FILE: z.preprocess(emptyAsUndefined, z.string().min(1, 'a file path').optional()),
  // A file the projector role appends a signed anchor of the audit trail's head to (needs AUDIT_SIGNING_KEY_FILE);
  // GET /audit/verify then also checks the live chain against the last one.
  AUDIT_ANCHOR_FILE: z.preprocess(emptyAsUndefined, z.string().min(1, 'a file path').optional()),
  AUDIT_ANCHOR_INTERVAL_SECONDS: integer(1, 86_400).default(300),
  // The same anchors on a Kafka topic (needs KAFKA_BROKERS): true for sentinel.audit-anchors.v1, or a topic name.
  AUDIT_ANCHOR_KAFKA: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^(true|false|[A-Za-z0-9._-]{1,249})$/, 'true (the topic sentinel.audit-anchors.v1), false, or a topic name: letters, digits, ".", "_" or "-"')
      .optional(),
  ),
  // Fleet snapshots at a time (POST /forensics/snapshots) are dropped this long after they were asked for.
  SENTINEL_FLEET_SNAPSHOT_TTL_SECONDS: integer(60, 7 * 86_400).default(3600),
  // The api role verifies the audit chain every interval: the rows appended since the last verification, and the
  // whole chain from the first row on every AUDIT_VERIFY_FULL_EVERY-th one (and the first after a start).
  AUDIT_VERIFY_INTERVAL_SECONDS: integer(1, 86_400).default(300),
  AUDIT_VERIFY_FULL_EVERY: integer(1, 10_000).default(12),
  // Cluster credentials are data, not code: what a kubeconfig may make this process run, read or trust.
  SENTINEL_KUBECONFIG_EXEC_ALLOW: list(z.string(), 'command names or absolute paths, comma-separated, e.g. aws,kubelogin'),
  // Its default (<SENTINEL_DATA_DIR>/kubeconfigs) is derived where it is used: an empty value is refused here.
  SENTINEL_KUBECONFIG_DIR: z.string().min(1, 'a directory path').optional(),
  SENTINEL_ALLOW_INSECURE_CLUSTERS: flag,
  // Login abuse: failures per user name and per client address before a temporary lock.
  SENTINEL_LOGIN_MAX_FAILURES: integer(1, 1000).default(5),
  SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: integer(1, 100_000).default(50),
  SENTINEL_LOGIN_LOCK_SECONDS: integer(1, 86_400).default(900),
  // The InfraMind link: one bidirectional gRPC stream per InfraMind, service-account authenticated.
  INFRAMIND_GRPC_HOST: z
    .string()
    .refine((host) => isIP(host) !== 0 || HOST_NAME.test(host), HOST_RULE)
    .default('127.0.0.1'),
  INFRAMIND_GRPC_PORT: integer(0, 65535).default(50052),
  INFRAMIND_MAX_UNACKED: integer(1, 100_000).default(256),
  INFRAMIND_KEEPALIVE_SECONDS: integer(1, 3600).default(30),
  INFRAMIND_STALE_AFTER_SECONDS: integer(1, 86_400).default(120),
  INFRAMIND_PLANS_PER_MINUTE: integer(1, 100_000).default(60),
  INFRAMIND_OBSERVATION_SECONDS: integer(1, 3600).default(30),
  // Every domain event on Kafka, exactly once, when brokers are named; off otherwise.
  KAFKA_BROKERS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\s*[^\s,:]+:[0-9]{1,5}\s*(,\s*[^\s,:]+:[0-9]{1,5}\s*)*$/, 'host:port of one or more brokers, comma-separated, e.g. 127.0.0.1:9092')
      .transform((value) => value.split(',').map((broker) => broker.trim()))
      .optional(),
  ),
  KAFKA_TOPIC_PREFIX: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,100}$/, 'lower-case letters, digits, ".", "_" or "-", e.g. sentinel').default('sentinel'),
  KAFKA_TOPIC_PARTITIONS: z.preprocess(emptyAsUndefined, integer(1, 10_000).optional()),
  KAFKA_CLIENT_ID: z.string().min(1, 'a client id').max(255, 'at most 255 characters').default('sentinel'),
  // The telemetry pipeline: node agents push over gRPC; samples kept by day, 1-minute rollups longer.
  TELEMETRY_GRPC_HOST: z
    .string()
    .refine((host) => isIP(host) !== 0 || HOST_NAME.test(host), HOST_RULE)
    .default('127.0.0.1'),
  TELEMETRY_GRPC_PORT: integer(0, 65535).default(50051),
  TELEMETRY_TLS_CERT_FILE: z.preprocess(emptyAsUndefined, z.string().min(1, 'a file path').optional()),
  TELEMETRY_TLS_KEY_FILE: z.preprocess(emptyAsUndefined, z.string().min(1, 'a file path').optional()),
  SENTINEL_TELEMETRY_RETENTION_DAYS: integer(1, 3650).default(7),
  SENTINEL_TELEMETRY_ROLLUP_RETENTION_DAYS: integer(1, 3650).default(30),
  /** How often the telemetry ingest writes the 1-minute rollups it accumulated: how far rollups trail the samples. */
  TELEMETRY_ROLLUP_FLUSH_MS: integer(100, 60_000).default(2000),
  /** A node is silent after this long without a batch; checked every SENTINEL_NODE_CHECK_SECONDS. */
  SENTINEL_NODE_SILENT_SECONDS: integer(1, 86_400).default(90),
  SENTINEL_NODE_CHECK_SECONDS: integer(1, 3600).default(30),
  SENTINEL_REMEDIATION_MODE: z.enum(['off', 'propose', 'execute'], { error: 'one of: off, propose, execute' }).default('propose'),
  /** One simulated node agent per node of the built-in cluster simulator, when it runs. */
  SENTINEL_SIMULATED_AGENTS: z.enum(['auto', 'on', 'off'], { error: 'one of: auto, on, off' }).default('auto'),
  SENTINEL_METRICS_TOKEN: z.preprocess(
    emptyAsUndefined,
    z.string().min(16, 'a token of at least 16 characters').regex(/^[\x21-\x7e]+$/, 'visible ASCII characters only').optional(),
  ),
});

export type Config = z.infer<typeof schema>;

const refined = schema
  .refine((config) => (config.TELEMETRY_TLS_CERT_FILE === undefined) === (config.TELEMETRY_TLS_KEY_FILE === undefined), {
    path: ['TELEMETRY_TLS_KEY_FILE'],
    message: 'set both TELEMETRY_TLS_CERT_FILE and TELEMETRY_TLS_KEY_FILE for TLS, or neither',
  })
  .refine((config) => !(config.SENTINEL_JWT_SECRET && config.SENTINEL_JWT_SECRET_FILE), {
    path: ['SENTINEL_JWT_SECRET_FILE'],
    message: 'set SENTINEL_JWT_SECRET or SENTINEL_JWT_SECRET_FILE, not both',
  })
  .refine((config) => config.AUDIT_ANCHOR_KAFKA === undefined || config.AUDIT_ANCHOR_KAFKA === 'false' || config.KAFKA_BROKERS !== undefined, {
    path: ['AUDIT_ANCHOR_KAFKA'],
    message: 'anchors on Kafka need KAFKA_BROKERS: set it, or AUDIT_ANCHOR_KAFKA=false',
  })
  // The embedded database is one process's alone: no other process could keep this one's read side moving.
  .refine((config) => !embedded(config) || !config.SENTINEL_ROLE.includes('api') || config.SENTINEL_ROLE.includes('projector'), {
    path: ['SENTINEL_ROLE'],
    message: 'on the embedded database (no DATABASE_URL) a process serving the api must also run the projector: use all, or set DATABASE_URL to split roles across processes',
  });

/** No database server: PGlite under SENTINEL_DATA_DIR, which one process opens at a time. */
export function embedded(config: Pick<Config, 'DATABASE_URL'>): boolean {
  return !config.DATABASE_URL;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = refined.safeParse(env);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? '(environment)'),
      message: `${issue.message} (got ${shown(String(issue.path[0]), env[String(issue.path[0])])})`,
    })),
  );
}

/** What the configuration names outside the environment, read once it has been checked. */
export interface ConfigFiles {
  /** The token signing secret from SENTINEL_JWT_SECRET_FILE, when that is set. */
  jwtSecret?: string;
  /** The default prices with SENTINEL_PRICES_FILE's over them. */
  prices: PriceTable;
  /** The telemetry gRPC server's certificate and key (PEM), when TELEMETRY_TLS_CERT_FILE and _KEY_FILE are set. */
  telemetryTls?: { cert: string; key: string };
}

const SECRET_FILE_RULE = 'a readable file holding a secret of at least 32 characters, e.g. written by `openssl rand -base64 48`';
const PRICES_RULE =
  'a JSON file of hourly US dollar prices, any of: gpuHourlyUsd {"<sku>": n}, defaultGpuHourlyUsd, vcpuHourlyUsd, memoryGibHourlyUsd, clusters {"<clusterId>": {...}}';
const HEALTH_RULE =
  'a JSON file of health by deployment id: {"<deploymentId>": {"uptime": {"<days>": ratio}, "latencyP99Ms": n, "successRate": ratio}}';

/**
 * Checks what the variables point at (the listen address, the secret, prices and health files) and reads the
 * files, before anything is opened or written: a mistake there is a ConfigError naming the variable, like one
 * in the environment itself.
 */
export async function checkConfig(config: Config): Promise<ConfigFiles> {
  const problems: { variable: string; message: string }[] = [];
  const check = async <T>(variable: keyof Config & string, rule: string, value: string | undefined, read: (value: string) => Promise<T>) => {
    if (value === undefined) return undefined;
    try {
      return await read(value);
    } catch (error) {
      if (!(error instanceof Unusable)) throw error;
      problems.push({ variable, message: `${rule} (got ${shown(variable, value)}: ${error.message})` });
      return undefined;
    }
  };
  const [jwtSecret, overrides, , , cert, key] = await Promise.all([
    check('SENTINEL_JWT_SECRET_FILE', SECRET_FILE_RULE, config.SENTINEL_JWT_SECRET_FILE, secretFrom),
    check('SENTINEL_PRICES_FILE', PRICES_RULE, config.SENTINEL_PRICES_FILE, (file) => jsonFile(file, priceOverrides)),
    check('SENTINEL_HEALTH_FILE', HEALTH_RULE, config.SENTINEL_HEALTH_FILE, (file) => jsonFile(file, healthFile)),
    check('HOST', HOST_RULE, config.HOST, canListenOn),
    check('TELEMETRY_TLS_CERT_FILE', PEM_RULE('CERTIFICATE'), config.TELEMETRY_TLS_CERT_FILE, (file) => pemFrom(file, 'CERTIFICATE')),
    check('TELEMETRY_TLS_KEY_FILE', PEM_RULE('PRIVATE KEY'), config.TELEMETRY_TLS_KEY_FILE, (file) => pemFrom(file, 'PRIVATE KEY')),
  ]);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...(jwtSecret === undefined ? {} : { jwtSecret }),
    prices: overrides ? withOverrides(DEFAULT_PRICES, overrides) : DEFAULT_PRICES,
    ...(cert !== undefined && key !== undefined ? { telemetryTls: { cert, key } } : {}),
  };
}

/** Why a file or address named by a variable cannot be used; its message completes "(got <value>: ...)". */
class Unusable extends Error {}

async function text(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Unusable('no such file');
    if (code === 'EACCES' || code === 'EPERM') throw new Unusable('this process may not read it');
    if (code === 'EISDIR') throw new Unusable('a directory, not a file');
    throw new Unusable(`it cannot be read: ${(error as Error).message}`);
  }
}

const PEM_RULE = (kind: string) => `a readable PEM file with a ${kind.toLowerCase()} ("-----BEGIN ...${kind}-----")`;

/** A PEM file's text, when it holds a block of the kind (an RSA, EC or PKCS#8 key for PRIVATE KEY). */
async function pemFrom(file: string, kind: 'CERTIFICATE' | 'PRIVATE KEY'): Promise<string> {
  const pem = await text(file);
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(pem)) throw new Unusable(`no ${kind} block in it`);
  return pem;
}

/** The file's secret, trimmed; its length is all an error may say about it. */
async function secretFrom(file: string): Promise<string> {
  const secret = (await text(file)).trim();
  if (secret.length < 32) throw new Unusable(`it holds ${secret.length} characters`);
  return secret;
}

async function jsonFile<S extends z.ZodType>(file: string, schema: S): Promise<z.output<S>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await text(file));
  } catch (error) {
    if (error instanceof Unusable) throw error;
    throw new Unusable(`not JSON: ${(error as Error).message}`);
  }
  const checked = schema.safeParse(parsed);
  if (checked.success) return checked.data;
  throw new Unusable(
    checked.error.issues
      .slice(0, 5)
      .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'the top level'}: ${issue.message}`)
      .join('; '),
  );
}

/**
 * Binds the address on a free port and lets it go: the same name resolution and the same check that the
 * address belongs to this machine as the real listen, but before any data is touched.
 */
async function canListenOn(host: string): Promise<void> {
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(0, host, resolve);
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') throw new Unusable('it does not resolve to an address');
    if (code === 'EADDRNOTAVAIL') throw new Unusable('not an address of this machine');
    throw new Unusable(`it cannot be listened on: ${(error as Error).message}`);
  } finally {
    if (probe.listening) await new Promise((resolve) => probe.close(resolve));
  }
}

/** Variables whose value is a secret: an error describes it by its length and never shows it. */
const SECRET_VARIABLE = /(SECRET|PASSWORD|TOKEN)$/;

/** A value for an error message; secrets are described, never echoed, and URLs lose their password. */
function shown(variable: string, value: string | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === '') return `an empty value; unset ${variable} for its default`;
  if (SECRET_VARIABLE.test(variable)) return `${value.length} characters`;
  return JSON.stringify(value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/i, '$1***@'));
}
