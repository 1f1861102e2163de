// The kubeconfig policy: which programs, files and servers a cluster's credentials may make Sentinel run, read and trust.
import { expect } from 'chai';
import { chmod, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeconfigPolicy, type KubeconfigPolicyOptions, type KubeconfigVerdict } from '../../adapters/kubernetes/kubeconfig-policy.js';

const ALLOW_NOTHING = 'is not in SENTINEL_KUBECONFIG_EXEC_ALLOW';

/** A kubeconfig with one cluster and one user, as YAML text. */
function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
}

function problems(verdict: KubeconfigVerdict): string[] {
  return verdict.ok ? [] : verdict.problems;
}

describe('kubeconfig policy', () => {
  let root: string;
  let kubeconfigs: string;
  let bin: string;
  let plugin: string;
  let policy: (options?: Partial<KubeconfigPolicyOptions>) => KubeconfigPolicy;

  before(async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'sentinel-policy-')));
    kubeconfigs = join(root, 'kubeconfigs');
    bin = join(root, 'bin');
    await mkdir(kubeconfigs);
    await mkdir(bin);
    plugin = join(bin, 'token-plugin');
    await writeFile(plugin, '#!/bin/sh\necho {}\n');
    await chmod(plugin, 0o755);
    policy = (options = {}) => new KubeconfigPolicy({ execAllow: [], kubeconfigDirs: [kubeconfigs], allowInsecure: false, searchPath: bin, ...options });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('exec plugins', () => {
    it('given an exec user whose command is not allowed, then refused, naming the user and the command', async () => {
      const verdict = await policy().check(kubeconfig({}, { exec: { command: '/bin/sh', args: ['-c', 'id > /tmp/pwned'] } }));
      expect(problems(verdict)).to.have.length(1);
      expect(problems(verdict)[0]).to.match(new RegExp(`^users\\[0\\]\\.user\\.exec: command /bin/sh( \\(\\S+\\))? ${ALLOW_NOTHING}$`));
    });
    it('given an allowed absolute path, then the plugin is kept with its real path, and taken out of the document client-node reads', async () => {
      const verdict = await policy({ execAllow: [plugin] }).check(kubeconfig({}, { exec: { command: plugin, args: ['get-token', '$(id)'], env: [{ name: 'PROFILE', value: 'prod' }] } }));
      expect(verdict.ok).to.equal(true);
      if (!verdict.ok) return;
      expect(verdict.kubeconfig.plugins.get('u')).to.deep.equal({
        command: plugin,
        args: ['get-token', '$(id)'],
        env: [{ name: 'PROFILE', value: 'prod' }],
        apiVersion: 'client.authentication.k8s.io/v1beta1',
      });
      expect(JSON.stringify(verdict.kubeconfig.document)).not.to.include('exec');
    });
    it('given an allowed name, then the kubeconfig may name the program by name, by its path or through a link to it', async () => {
      await symlink(plugin, join(root, 'plugin-link'));
      const allowed = policy({ execAllow: ['token-plugin'] });
      for (const command of ['token-plugin', plugin, join(root, 'plugin-link')]) {
        const verdict = await allowed.check(kubeconfig({}, { exec: { command } }));
        expect(problems(verdict), command).to.deep.equal([]);
        if (verdict.ok) expect(verdict.kubeconfig.plugins.get('u')?.command).to.equal(plugin);
      }
    });
    it('given another program of the same name, or a relative path, then refused', async () => {
      const other = join(root, 'elsewhere');
      await mkdir(other);
      await writeFile(join(other, 'token-plugin'), '#!/bin/sh\n');
      await chmod(join(other, 'token-plugin'), 0o755);
      const allowed = policy({ execAllow: ['token-plugin'] });
      expect(problems(await allowed.check(kubeconfig({}, { exec: { command: join(other, 'token-plugin') } })))[0]).to.include(ALLOW_NOTHING);
      expect(problems(await allowed.check(kubeconfig({}, { exec: { command: './token-plugin' } })))).to.deep.equal([
        'users[0].user.exec: command ./token-plugin must be a program name or an absolute path',
      ]);
    });
    it('given an allowed program with variables that make it load other code, then refused', async () => {
      const verdict = await policy({ execAllow: [plugin] }).check(
        kubeconfig({}, { exec: { command: plugin, env: [{ name: 'LD_PRELOAD', value: '/tmp/evil.so' }, { name: 'PATH', value: '/tmp' }] } }),
      );
      expect(problems(verdict)).to.deep.equal([
        'users[0].user.exec.env: LD_PRELOAD may not be set for a credential plugin',
        'users[0].user.exec.env: PATH may not be set for a credential plugin',
      ]);
    });
    it('given an auth-provider user, then refused outright', async () => {
      const verdict = await policy().check(kubeconfig({}, { 'auth-provider': { name: 'oidc', config: { 'id-token': 'x' } } }));
      expect(problems(verdict)[0]).to.match(/^users\[0\]\.user\.auth-provider: auth-provider plugins \(gcp, azure, oidc\) are not supported/);
    });
  });

  describe('servers', () => {
    it('given a plain http:// server or insecure-skip-tls-verify, then refused unless insecure clusters are allowed', async () => {
      const text = kubeconfig({ server: 'http://10.0.0.1:8080', 'insecure-skip-tls-verify': true }, { token: 'x' });
      expect(problems(await policy().check(text))).to.deep.equal([
        'clusters[0].cluster.server: a plain http:// server is refused: use https, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true',
        "clusters[0].cluster.insecure-skip-tls-verify: refused: give the cluster's CA, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true",
      ]);
      expect((await policy({ allowInsecure: true }).check(text)).ok).to.equal(true);
    });
    it('given a server that is neither https nor http, then refused whatever the allowance', async () => {
      expect(problems(await policy({ allowInsecure: true }).check(kubeconfig({ server: 'file:///etc/shadow' }, {})))).to.deep.equal([
        'clusters[0].cluster.server: only https:// servers are allowed, not file://',
      ]);
    });
  });

  describe('files a kubeconfig names', () => {
    it('given an inline kubeconfig that names a file, then refused: only the -data fields', async () => {
      const text = kubeconfig({ 'certificate-authority': '/etc/ssl/ca.pem' }, { 'client-certificate': '/etc/shadow', 'client-key': 'key.pem', 'token-file': '/etc/shadow' });
      expect(problems(await policy().check(text))).to.deep.equal([
        'clusters[0].cluster.certificate-authority: an inline kubeconfig may not name files; use certificate-authority-data',
        'users[0].user.client-certificate: an inline kubeconfig may not name files; use client-certificate-data',
        'users[0].user.client-key: an inline kubeconfig may not name files; use client-key-data',
        'users[0].user.token-file: an inline kubeconfig may not name files; use token',
      ]);
    });
    it('given a kubeconfig file that names files in the directory, then kept, as real paths', async () => {
      await writeFile(join(kubeconfigs, 'ca.crt'), 'ca');
      await writeFile(join(kubeconfigs, 'token'), 'token');
      const verdict = await policy().check(kubeconfig({ 'certificate-authority': 'ca.crt' }, { 'token-file': join(kubeconfigs, 'token') }), kubeconfigs);
      expect(verdict.ok).to.equal(true);
      if (!verdict.ok) return;
      const document = verdict.kubeconfig.document as { clusters: { cluster: Record<string, unknown> }[]; users: { user: Record<string, unknown> }[] };
      expect(document.clusters[0]!.cluster['certificate-authority']).to.equal(join(kubeconfigs, 'ca.crt'));
      expect(document.users[0]!.user['token-file']).to.equal(join(kubeconfigs, 'token'));
    });
    it('given a kubeconfig file that names a file outside the directory, through a link or not, or one that is missing, then refused', async () => {
      await symlink('/etc/passwd', join(kubeconfigs, 'sneaky'));
      const text = kubeconfig({ 'certificate-authority': 'sneaky' }, { 'client-certificate': '/etc/passwd', 'client-key': 'missing.pem' });
      expect(problems(await policy().check(text, kubeconfigs))).to.deep.equal([
        `clusters[0].cluster.certificate-authority: sneaky is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})`,
        `users[0].user.client-certificate: /etc/passwd is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})`,
        'users[0].user.client-key: missing.pem does not exist',
      ]);
    });
  });

  describe('kubeconfig files', () => {
    it('given a path outside the directory, with "..", relative, or a link out of it, then refused without reading it', async () => {
      await symlink('/etc/passwd', join(kubeconfigs, 'passwd-link'));
      const p = policy();
      expect(await p.readFile('/etc/passwd')).to.deep.equal({ problem: `/etc/passwd is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})` });
      expect(await p.readFile(`${kubeconfigs}/../../etc/passwd`)).to.deep.equal({ problem: `${kubeconfigs}/../../etc/passwd must not contain ".."` });
      expect(await p.readFile('kubeconfigs/config')).to.deep.equal({ problem: 'kubeconfigs/config is not an absolute path' });
      expect(await p.readFile(join(kubeconfigs, 'passwd-link'))).to.deep.equal({
        problem: `${join(kubeconfigs, 'passwd-link')} is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})`,
      });
    });
    it('given a file in the directory, then its text; a missing one is missing; a directory is not a kubeconfig', async () => {
      await writeFile(join(kubeconfigs, 'east'), 'apiVersion: v1\nkind: Config\n');
      await mkdir(join(kubeconfigs, 'sub'));
      const p = policy();
      expect(await p.readFile(join(kubeconfigs, 'east'))).to.deep.equal({ text: 'apiVersion: v1\nkind: Config\n', dir: kubeconfigs });
      expect(await p.readFile(join(kubeconfigs, 'west'))).to.deep.equal({ missing: true });
      expect(await p.readFile(join(kubeconfigs, 'sub'))).to.deep.equal({ problem: `${join(kubeconfigs, 'sub')} is not a regular file` });
    });
  });

  describe('what is not a kubeconfig', () => {
    it('given YAML whose aliases expand to billions of values, or to a list inside itself, then refused before it is expanded', async () => {
      let bomb = 'l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n';
      for (let level = 1; level < 10; level++) bomb += `l${level}: &l${level} [${Array(10).fill(`*l${level - 1}`).join(', ')}]\n`;
      for (const text of [bomb, 'loop: &loop [*loop]\n']) {
        const verdict = await policy().check(text);
        expect(verdict).to.deep.equal({
          ok: false,
          invalid: true,
          problems: ['not a valid kubeconfig: more than 100000 values, or nested deeper than 32, once its aliases are expanded'],
        });
      }
    });
    it('given another kind of Kubernetes object, then refused', async () => {
      expect(problems(await policy().check('apiVersion: apps/v1\nkind: Deployment\n'))).to.deep.equal(['not a valid kubeconfig: apiVersion must be v1 and kind Config']);
    });
  });

  describe('refusals of a request', () => {
    it('given a request, then each refusal names its field: apiServer, credentials.path, credentials.data', async () => {
      const p = policy();
      expect(await p.refusals({ apiServer: 'http://10.0.0.1', credentials: { source: 'kubeconfig-file', path: '/etc/shadow' } })).to.deep.equal([
        { path: 'apiServer', message: 'a plain http:// server is refused: use https, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true' },
        { path: 'credentials.path', message: `/etc/shadow is outside SENTINEL_KUBECONFIG_DIR (${kubeconfigs})` },
      ]);
      const data = Buffer.from(kubeconfig({}, { exec: { command: '/bin/sh' } })).toString('base64');
      const [refusal] = await p.refusals({ credentials: { source: 'kubeconfig-base64', data } });
      expect(refusal?.path).to.equal('credentials.data');
      expect(refusal?.message).to.include(ALLOW_NOTHING);
      // Not on this host yet: the reactor checks it when it connects.
      expect(await p.refusals({ apiServer: 'https://10.0.0.1', credentials: { source: 'kubeconfig-file', path: join(kubeconfigs, 'later') } })).to.deep.equal([]);
      expect(await p.refusals({ credentials: { source: 'in-cluster' } })).to.deep.equal([]);
    });
  });
});
