import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { checkConfig, ConfigError, loadConfig, type Config } from '../../app/config.js';
import { DEFAULT_PRICES } from '../../domain/pricing.js';

const HOST_RULE =
  'an address of this machine to listen on: an IP address such as 127.0.0.1, 0.0.0.0 or ::, or a host name that resolves to one';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as ConfigError).problems.map((p) => `${p.variable}: ${p.message}`);
  }
  throw new Error('expected the configuration to be refused');
}

/** The refusal of what the environment names (files, the listen address), once the environment itself is read. */
async function checkRefusal(env: NodeJS.ProcessEnv): Promise<ConfigError> {
  try {
    await checkConfig(loadConfig(env));
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected the configuration to be refused');
}

const checkProblemsOf = async (env: NodeJS.ProcessEnv) => (await checkRefusal(env)).problems.map((p) => `${p.variable}: ${p.message}`);

describe('configuration', () => {
  it('given an empty environment, then the embedded defaults apply', () => {
    expect(loadConfig({})).to.deep.include({
      SENTINEL_ROLE: ['api', 'projector', 'reactor', 'telemetry', 'inframind'],
      SENTINEL_CLUSTER_SIMULATOR: 'auto',
      TELEMETRY_GRPC_HOST: '127.0.0.1',
      TELEMETRY_GRPC_PORT: 50051,
      SENTINEL_REMEDIATION_MODE: 'propose',
      KAFKA_TOPIC_PREFIX: 'sentinel',
      HOST: '127.0.0.1',
      PORT: 8080,
      SENTINEL_DATA_DIR: './data',
      DATABASE_POOL_MAX: 10,
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: 10_000,
    });
    expect(loadConfig({}).DATABASE_URL).to.equal(undefined);
    expect(loadConfig({}).KURRENTDB_URL).to.equal(undefined);
    expect(loadConfig({}).KAFKA_BROKERS).to.equal(undefined);
  });

  it('reads the Kafka brokers as a list, and refuses a broker without a port', () => {
    expect(loadConfig({ KAFKA_BROKERS: '127.0.0.1:9092, kafka-1.internal:9093' }).KAFKA_BROKERS).to.deep.equal(['127.0.0.1:9092', 'kafka-1.internal:9093']);
    expect(problemsOf({ KAFKA_BROKERS: 'kafka-1.internal' })).to.deep.equal([
      'KAFKA_BROKERS: host:port of one or more brokers, comma-separated, e.g. 127.0.0.1:9092 (got "kafka-1.internal")',
    ]);
  });

  it('takes TLS for the telemetry port only with both a certificate and a key', () => {
    expect(problemsOf({ TELEMETRY_TLS_CERT_FILE: '/etc/sentinel/tls.crt' })).to.deep.equal([
      'TELEMETRY_TLS_KEY_FILE: set both TELEMETRY_TLS_CERT_FILE and TELEMETRY_TLS_KEY_FILE for TLS, or neither (got nothing)',
    ]);
    expect(problemsOf({ SENTINEL_REMEDIATION_MODE: 'auto' })).to.deep.equal(['SENTINEL_REMEDIATION_MODE: one of: off, propose, execute (got "auto")']);
  });

  it('reads every variable it documents', () => {
    const config = loadConfig({
      PORT: '9090',
      HOST: '127.0.0.1',
      SENTINEL_DATA_DIR: '/var/lib/sentinel',
      DATABASE_URL: 'postgres://sentinel@db:5432/sentinel',
      DATABASE_POOL_MAX: '32',
      KURRENTDB_URL: 'kurrentdb://localhost:2113?tls=false',
      LOG_LEVEL: 'debug',
      SHUTDOWN_TIMEOUT_MS: '500',
    });
    expect(config).to.deep.include({
      PORT: 9090,
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://sentinel@db:5432/sentinel',
      DATABASE_POOL_MAX: 32,
      KURRENTDB_URL: 'kurrentdb://localhost:2113?tls=false',
      LOG_LEVEL: 'debug',
      SHUTDOWN_TIMEOUT_MS: 500,
    });
  });

  it('reads the security settings, with safe defaults', () => {
    expect(loadConfig({})).to.deep.include({
      SENTINEL_KUBECONFIG_EXEC_ALLOW: [],
      SENTINEL_ALLOW_INSECURE_CLUSTERS: false,
      SENTINEL_LOGIN_MAX_FAILURES: 5,
      SENTINEL_LOGIN_ADDRESS_MAX_FAILURES: 50,
      SENTINEL_LOGIN_LOCK_SECONDS: 900,
    });
    expect(loadConfig({}).SENTINEL_METRICS_TOKEN).to.equal(undefined);
    expect(
      loadConfig({
        SENTINEL_KUBECONFIG_EXEC_ALLOW: 'aws, /usr/local/bin/kubelogin,',
        SENTINEL_KUBECONFIG_DIR: '/etc/sentinel/kubeconfigs',
        SENTINEL_ALLOW_INSECURE_CLUSTERS: 'true',
        SENTINEL_METRICS_TOKEN: 'scrape-token-0123456789',
      }),
    ).to.deep.include({
      SENTINEL_KUBECONFIG_EXEC_ALLOW: ['aws', '/usr/local/bin/kubelogin'],
      SENTINEL_KUBECONFIG_DIR: '/etc/sentinel/kubeconfigs',
      SENTINEL_ALLOW_INSECURE_CLUSTERS: true,
      SENTINEL_METRICS_TOKEN: 'scrape-token-0123456789',
    });
  });

  it('never echoes the metrics token in an error', () => {
    expect(problemsOf({ SENTINEL_METRICS_TOKEN: 'shorttoken' })).to.deep.equal([
      'SENTINEL_METRICS_TOKEN: a token of at least 16 characters (got 10 characters)',
    ]);
  });

  it('treats an empty DATABASE_URL as unset', () => {
    expect(loadConfig({ DATABASE_URL: '' }).DATABASE_URL).to.equal(undefined);
  });

  const bad: [string, NodeJS.ProcessEnv, RegExp][] = [
    ['a port that is not a number', { PORT: 'eighty' }, /^PORT: an integer from 0 to 65535 \(got "eighty"\)$/],
    ['a port out of range', { PORT: '70000' }, /^PORT: an integer from 0 to 65535/],
    ['a database URL of another scheme', { DATABASE_URL: 'mysql://x' }, /^DATABASE_URL: a PostgreSQL connection URL/],
    ['a KurrentDB URL of another scheme', { KURRENTDB_URL: 'http://x' }, /^KURRENTDB_URL: a KurrentDB connection string/],
    ['an unknown log level', { LOG_LEVEL: 'loud' }, /^LOG_LEVEL: one of: fatal, error, warn, info, debug, trace, silent/],
    ['an unknown role', { SENTINEL_ROLE: 'everything' }, /^SENTINEL_ROLE: one of: all, api, projector, reactor, telemetry, inframind, or a comma-separated list/],
    ['a list with an unknown role', { SENTINEL_ROLE: 'api,indexer' }, /^SENTINEL_ROLE: one of: all/],
    ['an unknown simulator setting', { SENTINEL_CLUSTER_SIMULATOR: 'yes' }, /^SENTINEL_CLUSTER_SIMULATOR: one of: auto, on, off/],
    ['an insecure-clusters flag that is not a boolean', { SENTINEL_ALLOW_INSECURE_CLUSTERS: 'yes' }, /^SENTINEL_ALLOW_INSECURE_CLUSTERS: true or false/],
    ['an api without its projector on the embedded database', { SENTINEL_ROLE: 'api' }, /^SENTINEL_ROLE: on the embedded database \(no DATABASE_URL\) a process serving the api must also run the projector/],
    ['a pool of zero connections', { DATABASE_POOL_MAX: '0' }, /^DATABASE_POOL_MAX: an integer from 1 to 1000/],
  ];
  it('given a database server, then the api may run without a projector', () => {
    expect(loadConfig({ SENTINEL_ROLE: 'api', DATABASE_URL: 'postgres://sentinel@db:5432/sentinel' }).SENTINEL_ROLE).to.deep.equal(['api']);
  });

  it('given a list of roles, then it runs those, in a fixed order', () => {
    expect(loadConfig({ SENTINEL_ROLE: 'projector, api' }).SENTINEL_ROLE).to.deep.equal(['api', 'projector']);
    expect(loadConfig({ SENTINEL_ROLE: 'reactor' }).SENTINEL_ROLE).to.deep.equal(['reactor']);
  });

  for (const [what, env, message] of bad) {
    it(`refuses ${what}, naming the variable and what it accepts`, () => {
      const problems = problemsOf(env);
      expect(problems).to.have.length(1);
      expect(problems[0]).to.match(message);
    });
  }

  it('reports every bad variable at once', () => {
    expect(problemsOf({ PORT: '-1', LOG_LEVEL: 'x' })).to.have.length(2);
  });
});

describe('configuration: empty values and integers', () => {
  // A variable with a default refuses an empty value; one without a default (it turns something on) reads it as unset.
  const defaulted = [
    'SENTINEL_ROLE',
    'HOST',
    'PORT',
    'SENTINEL_DATA_DIR',
    'DATABASE_POOL_MAX',
    'LOG_LEVEL',
    'SHUTDOWN_TIMEOUT_MS',
    'SENTINEL_ACCESS_TOKEN_TTL_SECONDS',
    'SENTINEL_REFRESH_TOKEN_TTL_SECONDS',
    'SENTINEL_PLAN_TTL_SECONDS',
    'SENTINEL_CLUSTER_SIMULATOR',
    'SENTINEL_PROGRESS_DEADLINE_SECONDS',
    'SENTINEL_PLAN_ACTION_TIMEOUT_SECONDS',
    'SENTINEL_EVICTION_TIMEOUT_SECONDS',
    'SENTINEL_RESYNC_SECONDS',
    'SENTINEL_LEDGER_AUDIT_SECONDS',
    'SENTINEL_AGGREGATE_CACHE_SIZE',
    'SENTINEL_SNAPSHOT_EVERY',
    'SENTINEL_ALLOW_INSECURE_CLUSTERS',
    'SENTINEL_LOGIN_MAX_FAILURES',
    'SENTINEL_LOGIN_ADDRESS_MAX_FAILURES',
    'SENTINEL_LOGIN_LOCK_SECONDS',
    'SENTINEL_KUBECONFIG_DIR',
  ];
  const optional = [
    'DATABASE_URL',
    'KURRENTDB_URL',
    'SENTINEL_JWT_SECRET',
    'SENTINEL_JWT_SECRET_FILE',
    'SENTINEL_ADMIN_PASSWORD',
    'SENTINEL_PRICES_FILE',
    'SENTINEL_HEALTH_FILE',
    'SENTINEL_METRICS_TOKEN',
  ];

  for (const variable of defaulted) {
    it(`given ${variable}= (empty), then refused, naming it and how to get its default`, () => {
      const problems = problemsOf({ [variable]: '' });
      expect(problems).to.have.length(1);
      expect(problems[0]).to.match(new RegExp(`^${variable}: .+ \\(got an empty value; unset ${variable} for its default\\)$`));
    });
  }

  it('given PORT= (empty), then refused rather than listening on a random port', () => {
    expect(problemsOf({ PORT: '' })).to.deep.equal(['PORT: an integer from 0 to 65535 (got an empty value; unset PORT for its default)']);
  });

  for (const variable of optional) {
    it(`given ${variable}= (empty), then it is unset`, () => {
      expect(loadConfig({ [variable]: '' })[variable as keyof Config]).to.equal(undefined);
    });
  }

  it('given SENTINEL_KUBECONFIG_EXEC_ALLOW= (empty), then no command is allowed, as when it is unset', () => {
    expect(loadConfig({ SENTINEL_KUBECONFIG_EXEC_ALLOW: '' }).SENTINEL_KUBECONFIG_EXEC_ALLOW).to.deep.equal([]);
  });

  for (const value of ['0x50', '1e3', ' 80', '80 ', '+80', '80.0', '0b1010', '٨٠']) {
    it(`given PORT=${JSON.stringify(value)}, then refused: decimal digits only`, () => {
      expect(problemsOf({ PORT: value })).to.deep.equal([`PORT: an integer from 0 to 65535 (got ${JSON.stringify(value)})`]);
    });
  }

  it('given PORT with leading zeros or 0, then read as the decimal number', () => {
    expect(loadConfig({ PORT: '0080' }).PORT).to.equal(80);
    expect(loadConfig({ PORT: '0' }).PORT).to.equal(0);
  });
});

describe('configuration: HOST', () => {
  for (const host of ['127.0.0.1', '0.0.0.0', '::', '::1', 'localhost', 'sentinel.example.com']) {
    it(`given HOST=${host}, then it is read`, () => {
      expect(loadConfig({ HOST: host }).HOST).to.equal(host);
    });
  }

  for (const host of ['http://localhost', 'localhost:8080', '[::1]', 'two words', '-leading-dash', 'under_score']) {
    it(`given HOST=${JSON.stringify(host)}, then refused as not an address or host name`, () => {
      expect(problemsOf({ HOST: host })).to.deep.equal([`HOST: ${HOST_RULE} (got ${JSON.stringify(host)})`]);
    });
  }

  it('given a host name that does not resolve, then checkConfig refuses it', async () => {
    expect(await checkProblemsOf({ HOST: 'not-a-host.invalid' })).to.deep.equal([
      `HOST: ${HOST_RULE} (got "not-a-host.invalid": it does not resolve to an address)`,
    ]);
  });

  it('given an address of another machine, then checkConfig refuses it', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    expect(await checkProblemsOf({ HOST: '192.0.2.1' })).to.deep.equal([`HOST: ${HOST_RULE} (got "192.0.2.1": not an address of this machine)`]);
  });

  it('given the loopback address or name, then checkConfig accepts it', async () => {
    await checkConfig(loadConfig({ HOST: '127.0.0.1' }));
    await checkConfig(loadConfig({ HOST: 'localhost' }));
  });
});

describe('configuration: the files it names', () => {
  let dir: string;
  const file = async (name: string, content: string) => {
    const at = path.join(dir, name);
    await writeFile(at, content);
    return at;
  };
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sentinel-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('SENTINEL_JWT_SECRET_FILE', () => {
    it('given a file with a long enough secret, then its trimmed content is the secret', async () => {
      const secret = 'f'.repeat(40);
      const files = await checkConfig(loadConfig({ SENTINEL_JWT_SECRET_FILE: await file('jwt', `${secret}\n`) }));
      expect(files.jwtSecret).to.equal(secret);
    });

    it('given a file that does not exist, then refused, naming the path', async () => {
      const problems = await checkProblemsOf({ SENTINEL_JWT_SECRET_FILE: '/nonexistent' });
      expect(problems).to.have.length(1);
      expect(problems[0]).to.match(/^SENTINEL_JWT_SECRET_FILE: a readable file holding a secret of at least 32 characters.* \(got "\/nonexistent": no such file\)$/);
    });

    it('given a directory, then refused', async () => {
      expect((await checkProblemsOf({ SENTINEL_JWT_SECRET_FILE: dir }))[0]).to.match(/: a directory, not a file\)$/);
    });

    it('given a file whose secret is too short, then refused with its length, never its content', async () => {
      const error = await checkRefusal({ SENTINEL_JWT_SECRET_FILE: await file('short', ' short-secret-value \n') });
      expect(error.problems).to.have.length(1);
      expect(error.problems[0]!.message).to.match(/\(got ".*short": it holds 18 characters\)$/);
      expect([error.message, error.stack, JSON.stringify(error.problems)].join('\n')).to.not.include('short-secret-value');
    });

    it('given both a secret and a secret file, then the refusal shows the path, not the length of the path as a secret', () => {
      expect(problemsOf({ SENTINEL_JWT_SECRET: 's'.repeat(40), SENTINEL_JWT_SECRET_FILE: '/run/secrets/jwt' })).to.deep.equal([
        'SENTINEL_JWT_SECRET_FILE: set SENTINEL_JWT_SECRET or SENTINEL_JWT_SECRET_FILE, not both (got "/run/secrets/jwt")',
      ]);
    });
  });

  const jsonFiles: [string, string, string][] = [
    ['SENTINEL_PRICES_FILE', '{"gpuHourlyUsd": {"nvidia-h100-80gb": "expensive"}}', 'gpuHourlyUsd.nvidia-h100-80gb: US dollars per hour, zero or more'],
    ['SENTINEL_HEALTH_FILE', '{"deployment-1": {"successRate": 1.5}}', 'deployment-1.successRate: Too big: expected number to be <=1'],
  ];
  for (const [variable, offSchema, why] of jsonFiles) {
    describe(variable, () => {
      it('given a file that does not exist, then refused, naming the variable and what it accepts', async () => {
        const problems = await checkProblemsOf({ [variable]: path.join(dir, 'missing.json') });
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(new RegExp(`^${variable}: a JSON file of .+ \\(got ".*missing\\.json": no such file\\)$`));
      });

      it('given a file that is not JSON, then refused', async () => {
        const problems = await checkProblemsOf({ [variable]: await file(`${variable}-broken.json`, '{"half": ') });
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(new RegExp(`^${variable}: a JSON file of .+ \\(got ".*broken\\.json": not JSON: .+\\)$`));
      });

      it('given JSON off the schema, then refused, naming the field and what it accepts', async () => {
        const problems = await checkProblemsOf({ [variable]: await file(`${variable}-off.json`, offSchema) });
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(new RegExp(`^${variable}: a JSON file of `));
        expect(problems[0]).to.include(`.json": ${why})`);
      });

      it('given JSON with an unknown field, then refused', async () => {
        const problems = await checkProblemsOf({ [variable]: await file(`${variable}-unknown.json`, '{"deployment-1": {"latencyP99Ms": 1, "typo": 2}}') });
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(/Unrecognized key/);
      });
    });
  }

  it('given a valid prices file, then its prices are merged over the defaults', async () => {
    const files = await checkConfig(loadConfig({ SENTINEL_PRICES_FILE: await file('prices.json', '{"gpuHourlyUsd": {"nvidia-h100-80gb": 5}}') }));
    expect(files.prices.gpuHourlyUsd['nvidia-h100-80gb']).to.equal(5);
    expect(files.prices.gpuHourlyUsd['nvidia-l4']).to.equal(DEFAULT_PRICES.gpuHourlyUsd['nvidia-l4']);
  });

  it('given no files, then the default prices and no secret', async () => {
    expect(await checkConfig(loadConfig({}))).to.deep.equal({ prices: DEFAULT_PRICES });
  });

  it('given a valid health file, then it is accepted', async () => {
    await checkConfig(loadConfig({ SENTINEL_HEALTH_FILE: await file('health.json', '{"d-1": {"uptime": {"30": 0.999}, "latencyP99Ms": 180, "successRate": 0.999}}') }));
  });

  it('reports every unusable file and address at once', async () => {
    const problems = await checkProblemsOf({
      HOST: '192.0.2.1',
      SENTINEL_JWT_SECRET_FILE: '/nonexistent',
      SENTINEL_PRICES_FILE: '/nonexistent',
      SENTINEL_HEALTH_FILE: '/nonexistent',
    });
    expect(problems.map((problem) => problem.split(':')[0])).to.have.members(['HOST', 'SENTINEL_JWT_SECRET_FILE', 'SENTINEL_PRICES_FILE', 'SENTINEL_HEALTH_FILE']);
  });
});
