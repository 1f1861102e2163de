// Sentinel's configuration: environment variables parsed and checked by zod, with defaults for a local run.
import { z } from 'zod';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

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

const schema = z.object({
  SENTINEL_ROLE: z.enum(['all'], { error: 'one of: all' }).default('all'),
  HOST: z.string().min(1, 'a host name or address to listen on').default('0.0.0.0'),
  PORT: integer(0, 65535).default(8080),
  SENTINEL_DATA_DIR: z.string().min(1, 'a directory path').default('./data'),
  DATABASE_URL: z.preprocess(emptyAsUndefined, postgresUrl.optional()),
  DATABASE_POOL_MAX: integer(1, 1000).default(10),
  KURRENTDB_URL: z.preprocess(emptyAsUndefined, kurrentUrl.optional()),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `one of: ${LOG_LEVELS.join(', ')}` }).default('info'),
  SHUTDOWN_TIMEOUT_MS: integer(0, 600_000).default(10_000),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? '(environment)'),
      message: `${issue.message} (got ${JSON.stringify(env[String(issue.path[0])])})`,
    })),
  );
}
