// The configuration of authentication and plans: the JWT secret (inline or from a file), the admin password,
// token and plan lifetimes, and that a refusal never repeats a secret back.
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../app/config.js';

const SECRET = 'k3Y5-wNh9Qz-Rf2v-Lp8s-Xc4m-Jt6b-Gy1d'; // 37 characters
const PASSWORD = 'Adm1n-Passw0rd!';

function refusal(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected the configuration to be refused');
}

const problemsOf = (env: NodeJS.ProcessEnv) => refusal(env).problems.map((p) => `${p.variable}: ${p.message}`);

/** Every way a refusal could reach a log: the message, the problems, the stack. */
const everythingSaid = (error: ConfigError) => [error.message, String(error), error.stack ?? '', JSON.stringify(error.problems)].join('\n');

describe('auth configuration', () => {
  describe('defaults', () => {
    it('given an empty environment, then no secret, no admin password, and the default lifetimes', () => {
      const config = loadConfig({});
      expect(config.SENTINEL_JWT_SECRET).to.equal(undefined);
      expect(config.SENTINEL_JWT_SECRET_FILE).to.equal(undefined);
      expect(config.SENTINEL_ADMIN_PASSWORD).to.equal(undefined);
      expect(config).to.deep.include({
        SENTINEL_ACCESS_TOKEN_TTL_SECONDS: 900,
        SENTINEL_REFRESH_TOKEN_TTL_SECONDS: 7 * 86_400,
        SENTINEL_PLAN_TTL_SECONDS: 3600,
      });
    });

    it('given empty strings, then they count as unset', () => {
      const config = loadConfig({ SENTINEL_JWT_SECRET: '', SENTINEL_JWT_SECRET_FILE: '', SENTINEL_ADMIN_PASSWORD: '' });
      expect(config.SENTINEL_JWT_SECRET).to.equal(undefined);
      expect(config.SENTINEL_JWT_SECRET_FILE).to.equal(undefined);
      expect(config.SENTINEL_ADMIN_PASSWORD).to.equal(undefined);
    });
  });

  describe('SENTINEL_JWT_SECRET and SENTINEL_JWT_SECRET_FILE', () => {
    it('given a secret of 32 characters or more, then it is read as given', () => {
      expect(loadConfig({ SENTINEL_JWT_SECRET: SECRET }).SENTINEL_JWT_SECRET).to.equal(SECRET);
      expect(loadConfig({ SENTINEL_JWT_SECRET: 'x'.repeat(32) }).SENTINEL_JWT_SECRET).to.equal('x'.repeat(32));
    });

    it('given a secret of 31 characters, then refused, naming the variable and the minimum', () => {
      const problems = problemsOf({ SENTINEL_JWT_SECRET: 'x'.repeat(31) });
      expect(problems).to.have.length(1);
      expect(problems[0]).to.match(/^SENTINEL_JWT_SECRET: a secret of at least 32 characters.*\(got 31 characters\)$/);
    });

    it('given a secret file path, then it is read', () => {
      expect(loadConfig({ SENTINEL_JWT_SECRET_FILE: '/run/secrets/jwt' }).SENTINEL_JWT_SECRET_FILE).to.equal('/run/secrets/jwt');
    });

    it('given both a secret and a secret file, then refused on SENTINEL_JWT_SECRET_FILE', () => {
      const problems = problemsOf({ SENTINEL_JWT_SECRET: SECRET, SENTINEL_JWT_SECRET_FILE: '/run/secrets/jwt' });
      expect(problems).to.have.length(1);
      expect(problems[0]).to.match(/^SENTINEL_JWT_SECRET_FILE: set SENTINEL_JWT_SECRET or SENTINEL_JWT_SECRET_FILE, not both/);
    });
  });

  describe('SENTINEL_ADMIN_PASSWORD', () => {
    it('given 12 characters or more, then it is read', () => {
      expect(loadConfig({ SENTINEL_ADMIN_PASSWORD: PASSWORD }).SENTINEL_ADMIN_PASSWORD).to.equal(PASSWORD);
      expect(loadConfig({ SENTINEL_ADMIN_PASSWORD: 'p'.repeat(12) }).SENTINEL_ADMIN_PASSWORD).to.equal('p'.repeat(12));
    });

    it('given 11 characters, then refused with the minimum and the length only', () => {
      const problems = problemsOf({ SENTINEL_ADMIN_PASSWORD: 'p'.repeat(11) });
      expect(problems).to.deep.equal(['SENTINEL_ADMIN_PASSWORD: at least 12 characters (got 11 characters)']);
    });
  });

  describe('lifetimes', () => {
    const bounds: [string, number, number][] = [
      ['SENTINEL_ACCESS_TOKEN_TTL_SECONDS', 30, 86_400],
      ['SENTINEL_REFRESH_TOKEN_TTL_SECONDS', 60, 90 * 86_400],
      ['SENTINEL_PLAN_TTL_SECONDS', 1, 604_800],
    ];
    for (const [variable, min, max] of bounds) {
      it(`given ${variable} at ${min} and at ${max}, then each is read as a number`, () => {
        expect(loadConfig({ [variable]: String(min) })[variable as keyof ReturnType<typeof loadConfig>]).to.equal(min);
        expect(loadConfig({ [variable]: String(max) })[variable as keyof ReturnType<typeof loadConfig>]).to.equal(max);
      });

      for (const value of [String(min - 1), String(max + 1), '1.5', 'ten', '-5']) {
        it(`given ${variable}=${value}, then refused with the range it accepts`, () => {
          const problems = problemsOf({ [variable]: value });
          expect(problems).to.have.length(1);
          expect(problems[0]).to.equal(`${variable}: an integer from ${min} to ${max} (got ${JSON.stringify(value)})`);
        });
      }
    }
  });

  describe('refusals never repeat a secret', () => {
    const cases: [string, NodeJS.ProcessEnv, string[]][] = [
      ['a too-short secret', { SENTINEL_JWT_SECRET: 'short-but-secret' }, ['short-but-secret']],
      ['a too-short admin password', { SENTINEL_ADMIN_PASSWORD: 'hunter2!' }, ['hunter2!']],
      ['a secret and a secret file together', { SENTINEL_JWT_SECRET: SECRET, SENTINEL_JWT_SECRET_FILE: '/run/secrets/jwt' }, [SECRET]],
      [
        'a good secret and password beside another bad variable',
        { SENTINEL_JWT_SECRET: SECRET, SENTINEL_ADMIN_PASSWORD: PASSWORD, PORT: 'eighty', SENTINEL_PLAN_TTL_SECONDS: '0' },
        [SECRET, PASSWORD],
      ],
      [
        'a bad secret, a bad password and a bad lifetime together',
        { SENTINEL_JWT_SECRET: 'tiny-secret', SENTINEL_ADMIN_PASSWORD: 'tiny-pass', SENTINEL_ACCESS_TOKEN_TTL_SECONDS: '1' },
        ['tiny-secret', 'tiny-pass'],
      ],
    ];
    for (const [what, env, secrets] of cases) {
      it(`given ${what}, then the refusal names the variable but not the value`, () => {
        const error = refusal(env);
        const said = everythingSaid(error);
        for (const secret of secrets) expect(said).to.not.include(secret);
        expect(error.problems.length).to.be.at.least(1);
      });
    }

    it('given a database URL it cannot use, then the refusal shows the URL without its password', () => {
      const said = everythingSaid(refusal({ DATABASE_URL: 'mysql://sentinel:hunter2-db-pass@db/x' }));
      expect(said).to.not.include('hunter2-db-pass');
      expect(said).to.include('mysql://sentinel:***@db/x');
    });

    it('given a too-short secret, then the refusal says how long it was instead', () => {
      expect(refusal({ SENTINEL_JWT_SECRET: 'short-but-secret' }).message).to.include('(got 16 characters)');
    });
  });
});
