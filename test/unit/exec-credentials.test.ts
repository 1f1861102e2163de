// Exec credential plugins as Sentinel runs them: the checked program with its arguments as given (no shell), without
// Sentinel's own settings in its environment, killed when it takes too long, its stderr never repeated.
import { expect } from 'chai';
import { chmod, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { User } from '@kubernetes/client-node';
import { ExecCredentialPlugins, ExecPluginError } from '../../adapters/kubernetes/exec-credentials.js';
import type { ExecPlugin } from '../../adapters/kubernetes/kubeconfig-policy.js';
import { rejectedError as rejection } from '../support/rejection.js';

const user = { name: 'u' } as User;

describe('exec credential plugins', () => {
  let dir: string;
  before(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), 'sentinel-exec-')));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function script(name: string, body: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
    return path;
  }

  function plugins(plugin: Partial<ExecPlugin> & { command: string }, options = {}): ExecCredentialPlugins {
    return new ExecCredentialPlugins(new Map([['u', { args: [], env: [], apiVersion: 'client.authentication.k8s.io/v1', ...plugin }]]), options);
  }

  it('given arguments that a shell would expand, then the program gets them as they are, and its token goes on the request', async () => {
    const seen = join(dir, 'argv');
    const marker = join(dir, 'marker');
    const command = await script(
      'args',
      `printf '%s\\n' "$@" > "${seen}"\necho "SENTINEL=$SENTINEL_JWT_SECRET INFO=$KUBERNETES_EXEC_INFO PROFILE=$PROFILE" >> "${seen}"\n` +
        `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t-1"}}'`,
    );
    const args = [`$(touch ${marker})`, `; touch ${marker}`, '`id`'];
    const previous = process.env['SENTINEL_JWT_SECRET'];
    process.env['SENTINEL_JWT_SECRET'] = 'not-for-plugins';
    try {
      const opts: { headers?: Record<string, string> } = {};
      await plugins({ command, args, env: [{ name: 'PROFILE', value: 'prod' }] }).applyAuthentication(user, opts);
      expect(opts.headers).to.deep.equal({ Authorization: 'Bearer t-1' });
    } finally {
      if (previous === undefined) delete process.env['SENTINEL_JWT_SECRET'];
      else process.env['SENTINEL_JWT_SECRET'] = previous;
    }
    const lines = (await readFile(seen, 'utf8')).trim().split('\n');
    expect(lines.slice(0, 3)).to.deep.equal(args);
    expect(lines[3]).to.equal(
      'SENTINEL= INFO={"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}} PROFILE=prod',
    );
    expect(await stat(marker).catch(() => undefined), 'a shell ran the arguments').to.equal(undefined);
  });

  it('given a credential that has not expired, then the plugin runs once for many requests; an expired one runs it again', async () => {
    const runs = join(dir, 'runs');
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const lasting = await script('lasting', `echo run >> "${runs}"\necho '{"status":{"token":"t","expirationTimestamp":"${future}"}}'`);
    const auth = plugins({ command: lasting });
    await Promise.all([1, 2, 3].map(() => auth.applyAuthentication(user, {})));
    await auth.applyAuthentication(user, {});
    expect((await readFile(runs, 'utf8')).trim().split('\n')).to.have.length(1);

    const expiredRuns = join(dir, 'expired-runs');
    const expired = await script('expired', `echo run >> "${expiredRuns}"\necho '{"status":{"token":"t","expirationTimestamp":"2000-01-01T00:00:00Z"}}'`);
    const again = plugins({ command: expired });
    await again.applyAuthentication(user, {});
    await again.applyAuthentication(user, {});
    expect((await readFile(expiredRuns, 'utf8')).trim().split('\n')).to.have.length(2);
  });

  it('given a plugin that fails, then a transient ExecPluginError with its exit code and none of its stderr', async () => {
    const failing = await script('failing', 'echo "token=s3cr3t-value" >&2\nexit 3');
    const error = await rejection(plugins({ command: failing }).applyAuthentication(user, {}));
    expect(error).to.be.instanceOf(ExecPluginError).and.include({ transient: true });
    expect(error.message).to.equal(`exec credential plugin ${failing} of user u exited with code 3`);
  });

  it('given a plugin that prints no credential, then an error that does not repeat what it printed', async () => {
    const chatty = await script('chatty', 'echo "token=s3cr3t-value"');
    const error = await rejection(plugins({ command: chatty }).applyAuthentication(user, {}));
    expect(error.message).to.equal(`exec credential plugin ${chatty} of user u did not print an ExecCredential with a token or a client certificate and key`);
  });

  it('given a plugin that hangs, then it is killed at the timeout', async () => {
    const hanging = await script('hanging', 'exec sleep 30');
    const started = Date.now();
    const error = await rejection(plugins({ command: hanging }, { timeoutMs: 200 }).applyAuthentication(user, {}));
    expect(error.message).to.equal(`exec credential plugin ${hanging} of user u did not answer within 200 ms`);
    expect(Date.now() - started).to.be.below(5_000);
  });
});
