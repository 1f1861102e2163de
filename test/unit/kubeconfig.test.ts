import { expect } from 'chai';
import { mkdtemp, mkdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialsError, SERVICE_ACCOUNT_DIR, kubeConfigFor, type KubeConfigOptions, type SecretLookup } from '../../adapters/kubernetes/kubeconfig.js';
import { KubeconfigPolicy } from '../../adapters/kubernetes/kubeconfig-policy.js';
import { ClusterError } from '../../reactors/cluster-driver.js';
import { rejectedError as rejection } from '../support/rejection.js';

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: east
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority: certs/ca.crt
users:
- name: sentinel
  user:
    token: abc
contexts:
- name: east
  context: { cluster: east, user: sentinel }
current-context: east
`;

/** The same kubeconfig with everything inline, as a base64 kubeconfig must be. */
const INLINE_KUBECONFIG = KUBECONFIG.replace('certificate-authority: certs/ca.crt', 'certificate-authority-data: Y2E=');

const noSecrets: SecretLookup = async () => undefined;

describe('Kubeconfig from cluster credentials', () => {
  let dir: string;
  let options: KubeConfigOptions;
  before(async () => {
    // Real paths throughout: the policy compares where files really are, and tmpdir() may be a symbolic link.
    dir = await realpath(await mkdtemp(join(tmpdir(), 'sentinel-kubeconfig-')));
    options = { policy: new KubeconfigPolicy({ execAllow: [], kubeconfigDirs: [dir], allowInsecure: false }) };
    await mkdir(join(dir, 'certs'));
    await writeFile(join(dir, 'certs/ca.crt'), 'ca');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('kubeconfig-file', () => {
    it('given a kubeconfig file, then its current cluster, with file paths relative to the file', async () => {
      const path = join(dir, 'config');
      await writeFile(path, KUBECONFIG);
      const config = await kubeConfigFor({ source: 'kubeconfig-file', path }, noSecrets, options);
      expect(config.getCurrentCluster()).to.deep.include({ name: 'east', server: 'https://10.0.0.1:6443', caFile: join(dir, 'certs/ca.crt') });
      expect(config.getCurrentUser()).to.deep.include({ token: 'abc' });
    });
    it('given a kubeconfig file outside the allowed directory, then a CredentialsError, and the file is not read', async () => {
      const outside = await realpath(await mkdtemp(join(tmpdir(), 'sentinel-elsewhere-')));
      try {
        const path = join(outside, 'config');
        await writeFile(path, KUBECONFIG);
        const error = await rejection(kubeConfigFor({ source: 'kubeconfig-file', path }, noSecrets, options));
        expect(error).to.be.instanceOf(CredentialsError).and.include({ transient: false });
        expect(error.message).to.equal(`kubeconfig file ${path} is refused: ${path} is outside SENTINEL_KUBECONFIG_DIR (${dir})`);
        // A link inside the directory to the file outside is the same file outside.
        await symlink(path, join(dir, 'link-out'));
        const linked = await rejection(kubeConfigFor({ source: 'kubeconfig-file', path: join(dir, 'link-out') }, noSecrets, options));
        expect(linked.message).to.match(/link-out is outside SENTINEL_KUBECONFIG_DIR/);
      } finally {
        await rm(outside, { recursive: true, force: true });
      }
    });
    it('given a kubeconfig file that gained an exec plugin after it was registered, then a CredentialsError at connect that quotes none of the file', async () => {
      const path = join(dir, 'changed');
      await writeFile(path, KUBECONFIG.replace('token: abc', 'token: very-secret-token\n    exec: { command: /bin/sh, args: [-c, "id > /tmp/pwned"] }'));
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-file', path }, noSecrets, options));
      expect(error).to.be.instanceOf(CredentialsError);
      expect(error.message).to.match(/^kubeconfig file .* is refused: users\[0\]\.user\.exec: command \/bin\/sh( \(.*\))? is not in SENTINEL_KUBECONFIG_EXEC_ALLOW$/);
      expect(error.message).not.to.include('very-secret-token');
      expect(error.message).not.to.include('pwned');
    });
    it('given a path with no file, then a CredentialsError naming the path', async () => {
      const path = join(dir, 'missing');
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-file', path }, noSecrets, options));
      expect(error).to.be.instanceOf(CredentialsError).and.instanceOf(ClusterError);
      expect(error).to.include({ transient: false });
      expect(error.message).to.equal(`kubeconfig file ${path} does not exist`);
    });
    it('given a file that is not YAML, then a CredentialsError saying so', async () => {
      const path = join(dir, 'broken');
      await writeFile(path, 'clusters: [\n  secret-value-on-the-line,\n');
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-file', path }, noSecrets, options));
      expect(error.message).to.match(new RegExp(`^kubeconfig file ${path} is not a valid kubeconfig: YAML error: .*\\(line \\d+, column \\d+\\)$`));
      // The parser's own message quotes the text around the error; none of it is repeated.
      expect(error.message).not.to.include('secret-value');
    });
    it('given a kubeconfig with no current-context, then a CredentialsError saying so', async () => {
      const path = join(dir, 'no-context');
      await writeFile(path, KUBECONFIG.replace('current-context: east\n', ''));
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-file', path }, noSecrets, options));
      expect(error.message).to.equal(`kubeconfig file ${path} names no current-context`);
    });
    it('given a current-context whose cluster is not defined, then a CredentialsError saying so', async () => {
      const path = join(dir, 'dangling');
      await writeFile(path, KUBECONFIG.replace('cluster: east, user', 'cluster: west, user'));
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-file', path }, noSecrets, options));
      expect(error.message).to.match(/current-context east names no cluster/);
    });
  });

  describe('kubeconfig-base64', () => {
    const secrets: Record<string, string> = {
      good: Buffer.from(INLINE_KUBECONFIG).toString('base64'),
      'names-files': Buffer.from(KUBECONFIG).toString('base64'),
      'not-base64': 'this is *not* base64!',
      'not-yaml': Buffer.from('clusters: [').toString('base64'),
      'not-kubeconfig': Buffer.from('hello').toString('base64'),
    };
    const lookup: SecretLookup = async (ref) => secrets[ref];

    it('given the reference of a stored base64 kubeconfig, then its current cluster', async () => {
      const config = await kubeConfigFor({ source: 'kubeconfig-base64', secretRef: 'good' }, lookup, options);
      expect(config.getCurrentCluster()?.server).to.equal('https://10.0.0.1:6443');
    });
    it('given a reference the secret store does not hold, then a CredentialsError naming it', async () => {
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-base64', secretRef: 'sha256:abc' }, lookup, options));
      expect(error).to.be.instanceOf(CredentialsError);
      expect(error.message).to.equal('kubeconfig secret sha256:abc was not found in the secret store');
    });
    it('given a secret that is not base64, then a CredentialsError saying so', async () => {
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-base64', secretRef: 'not-base64' }, lookup, options));
      expect(error.message).to.equal('kubeconfig secret not-base64 is not valid base64');
    });
    it('given base64 of something that is not a kubeconfig, then a CredentialsError saying so', async () => {
      expect((await rejection(kubeConfigFor({ source: 'kubeconfig-base64', secretRef: 'not-yaml' }, lookup, options))).message).to.match(
        /^kubeconfig secret not-yaml is not a valid kubeconfig: /,
      );
      expect((await rejection(kubeConfigFor({ source: 'kubeconfig-base64', secretRef: 'not-kubeconfig' }, lookup, options))).message).to.equal(
        'kubeconfig secret not-kubeconfig is not a valid kubeconfig: not a YAML mapping',
      );
    });
    it('given a base64 kubeconfig that names files, then a CredentialsError: an inline kubeconfig reads no files of the server', async () => {
      const error = await rejection(kubeConfigFor({ source: 'kubeconfig-base64', secretRef: 'names-files' }, lookup, options));
      expect(error.message).to.equal(
        'kubeconfig secret names-files is refused: clusters[0].cluster.certificate-authority: an inline kubeconfig may not name files; use certificate-authority-data',
      );
    });
  });

  describe('in-cluster', () => {
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    afterEach(() => {
      for (const [name, value] of [
        ['KUBERNETES_SERVICE_HOST', saved.host],
        ['KUBERNETES_SERVICE_PORT', saved.port],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });

    it('given no service environment, then a CredentialsError saying what is missing', async () => {
      delete process.env.KUBERNETES_SERVICE_HOST;
      delete process.env.KUBERNETES_SERVICE_PORT;
      const error = await rejection(kubeConfigFor({ source: 'in-cluster' }, noSecrets, options));
      expect(error.message).to.match(/need KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT in the environment/);
    });
    it('given the environment but no service account token, then a CredentialsError naming the file', async () => {
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      const prefix = join(dir, 'empty-pod');
      const error = await rejection(kubeConfigFor({ source: 'in-cluster' }, noSecrets, { ...options, inClusterPathPrefix: prefix }));
      expect(error.message).to.equal(`in-cluster credentials need the service account token at ${prefix}${SERVICE_ACCOUNT_DIR}/token, which is missing or unreadable`);
    });
    it('given the environment and the service account files, then the API server of the pod', async () => {
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      const prefix = join(dir, 'pod');
      await mkdir(`${prefix}${SERVICE_ACCOUNT_DIR}`, { recursive: true });
      await writeFile(`${prefix}${SERVICE_ACCOUNT_DIR}/token`, 'token');
      await writeFile(`${prefix}${SERVICE_ACCOUNT_DIR}/ca.crt`, 'ca');
      const config = await kubeConfigFor({ source: 'in-cluster' }, noSecrets, { ...options, inClusterPathPrefix: prefix });
      expect(config.getCurrentCluster()).to.deep.include({ server: 'https://10.96.0.1:443', caFile: `${prefix}${SERVICE_ACCOUNT_DIR}/ca.crt` });
    });
  });
});
