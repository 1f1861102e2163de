// Sentinel's configuration: environment variables parsed and checked by zod, with defaults for a local run.
import { z } from 'zod';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** api: the HTTP API; projector: the read-side projectors; reactor: the reactors that drive clusters and plans. */
export const ROLES = ['api', 'projector', 'reactor'] as const;
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

const integer = (min: number, max: number) =>
  z.coerce
    .number({ error: `an integer from ${min} to ${max}` })
    .int(`an integer from ${min} to ${max}`)
    .min(min, `an integer from ${min} to ${max}`)
    .max(max, `an integer from ${min} to ${max}`);

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);

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
  HOST: z.string().min(1, 'a host name or address to listen on').default('127.0.0.1'),
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
  SENTINEL_CLUSTER_SIMULATOR: z.enum(['auto', 'on', 'off'], { error: 'one of: auto, on, off' }).default('auto'),
  SENTINEL_PROGRESS_DEADLINE_SECONDS: integer(1, 86_400).default(600),
  SENTINEL_PLAN_ACTION_TIMEOUT_SECONDS: integer(1, 86_400).default(1800),
  SENTINEL_EVICTION_TIMEOUT_SECONDS: integer(1, 3600).default(120),
  // Cluster credentials are data, not code: what a kubeconfig may make this process run, read or trust.
  SENTINEL_KUBECONFIG_EXEC_ALLOW: list(z.string(), 'command names or absolute paths, comma-separated, e.g. aws,kubelogin'),
  SENTINEL_KUBECONFIG_DIR: z.preprocess(emptyAsUndefined, z.string().min(1, 'a directory path').optional()),
  SENTINEL_ALLOW_INSECURE_CLUSTERS: flag,
  // Login abuse: failures per user name and per client address before a temporary lock.
  SENTINEL_LOGIN_MAX_FAILURES: integer(1, 1000).default(5),
  SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: integer(1, 100_000).default(50),
  SENTINEL_LOGIN_LOCK_SECONDS: integer(1, 86_400).default(900),
  SENTINEL_METRICS_TOKEN: z.preprocess(
    emptyAsUndefined,
    z.string().min(16, 'a token of at least 16 characters').regex(/^[\x21-\x7e]+$/, 'visible ASCII characters only').optional(),
  ),
});

export type Config = z.infer<typeof schema>;

const refined = schema
  .refine((config) => !(config.SENTINEL_JWT_SECRET && config.SENTINEL_JWT_SECRET_FILE), {
    path: ['SENTINEL_JWT_SECRET_FILE'],
    message: 'set SENTINEL_JWT_SECRET or SENTINEL_JWT_SECRET_FILE, not both',
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

/** A value for an error message; secrets are described, never echoed, and URLs lose their password. */
function shown(variable: string, value: string | undefined): string {
  if (value === undefined) return 'nothing';
  if (/SECRET|PASSWORD|TOKEN$/.test(variable)) return `${value.length} characters`;
  return JSON.stringify(value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/i, '$1***@'));
}
