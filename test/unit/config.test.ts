import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../app/config.js';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as ConfigError).problems.map((p) => `${p.variable}: ${p.message}`);
  }
  throw new Error('expected the configuration to be refused');
}

describe('configuration', () => {
  it('given an empty environment, then the embedded defaults apply', () => {
    expect(loadConfig({})).to.deep.include({
      SENTINEL_ROLE: ['api', 'projector', 'reactor'],
      SENTINEL_CLUSTER_SIMULATOR: 'auto',
      HOST: '127.0.0.1',
      PORT: 8080,
      SENTINEL_DATA_DIR: './data',
      DATABASE_POOL_MAX: 10,
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: 10_000,
    });
    expect(loadConfig({}).DATABASE_URL).to.equal(undefined);
    expect(loadConfig({}).KURRENTDB_URL).to.equal(undefined);
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
    ['an unknown role', { SENTINEL_ROLE: 'everything' }, /^SENTINEL_ROLE: one of: all, api, projector, reactor, or a comma-separated list/],
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
