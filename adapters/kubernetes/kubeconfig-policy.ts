// What a cluster's credentials may make Sentinel run, read and trust: the one check of a kubeconfig, made when a
// cluster is registered or changed and again each time a reactor connects to it.
import { constants } from 'node:fs';
import { access, open, realpath, stat } from 'node:fs/promises';
import { basename, delimiter, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { loadYaml } from '@kubernetes/client-node';
import type { ClusterBody } from '../../domain/cluster.js';

export interface KubeconfigPolicyOptions {
  /**
   * Programs an exec user may run (SENTINEL_KUBECONFIG_EXEC_ALLOW): a name is looked up on PATH, an absolute path
   * taken as it is; both are compared by their real path, at every check.
   */
  execAllow: readonly string[];
  /** Directories that kubeconfig files, and the files a kubeconfig names, must really be in. */
  kubeconfigDirs: readonly string[];
  /** Plain http:// servers and insecure-skip-tls-verify (SENTINEL_ALLOW_INSECURE_CLUSTERS). */
  allowInsecure: boolean;
  /** Where command names are looked up; this process's PATH by default. */
  searchPath?: string;
}

/** A user's exec credential plugin as checked: `command` is the real path of an allowed program. */
export interface ExecPlugin {
  command: string;
  args: string[];
  env: { name: string; value: string }[];
  apiVersion: string;
}

/** A kubeconfig that passed: the document to load, with exec plugins taken out and file references as real paths. */
export interface CheckedKubeconfig {
  document: Record<string, unknown>;
  /** The exec plugin of each user that has one, by user name (the first user of a name, as client-node finds it). */
  plugins: Map<string, ExecPlugin>;
}

/** `invalid` when the text is not a kubeconfig at all, rather than one the policy refuses. */
export type KubeconfigVerdict = { ok: true; kubeconfig: CheckedKubeconfig } | { ok: false; problems: string[]; invalid?: true };

/** What reading a kubeconfig file came to: its text, no file there (yet), or why it may not be read. */
export type KubeconfigFile = { text: string; dir: string } | { missing: true } | { problem: string };

/** One refused field of a cluster request, named as the request names it. */
export interface Refusal {
  path: 'apiServer' | 'credentials.path' | 'credentials.data';
  message: string;
}

/** Files larger than this are not kubeconfigs. */
const MAX_KUBECONFIG_BYTES = 1024 * 1024;
/** Values in a kubeconfig, counting each use of a YAML alias again: a few aliases can otherwise stand for billions. */
const MAX_KUBECONFIG_VALUES = 100_000;
/** Nesting deeper than any kubeconfig has; an alias of a list inside itself never ends. */
const MAX_KUBECONFIG_DEPTH = 32;
/** Variables that make a program load code, or look programs up, where the kubeconfig's author says. */
const LOADER_VARIABLES = /^(LD_\w*|DYLD_\w*|NODE_OPTIONS|BASH_ENV|ENV|PATH|PYTHONPATH|PYTHONSTARTUP|PYTHONHOME|PERL5OPT|PERL5LIB|RUBYOPT|RUBYLIB|GCONV_PATH|KUBERNETES_EXEC_INFO)$/;
/** Fields that name a file the client reads, and the inline field that holds the same thing. */
const CLUSTER_FILES = { 'certificate-authority': 'certificate-authority-data' } as const;
const USER_FILES = { 'client-certificate': 'client-certificate-data', 'client-key': 'client-key-data', 'token-file': 'token' } as const;

export class KubeconfigPolicy {
  readonly dirs: readonly string[];

  constructor(private readonly options: KubeconfigPolicyOptions) {
    this.dirs = options.kubeconfigDirs.map((dir) => resolve(dir));
  }

  /** Every refusal of a cluster's API server and credentials, as a registration or a change states them. */
  async refusals(request: { apiServer?: string; credentials?: ClusterBody['credentials'] }): Promise<Refusal[]> {
    const refusals: Refusal[] = [];
    if (request.apiServer !== undefined) {
      const problem = this.serverProblem(request.apiServer);
      if (problem) refusals.push({ path: 'apiServer', message: problem });
    }
    const credentials = request.credentials;
    if (credentials?.source === 'kubeconfig-file') {
      // The file may not be on this host yet (an API process apart from the reactors); the reactor checks it on connecting.
      const file = await this.readFile(credentials.path);
      const problems = 'problem' in file ? [file.problem] : 'text' in file ? problemsOf(await this.check(file.text, file.dir)) : [];
      refusals.push(...problems.map((message) => ({ path: 'credentials.path' as const, message })));
    } else if (credentials?.source === 'kubeconfig-base64') {
      const problems = problemsOf(await this.check(Buffer.from(credentials.data, 'base64').toString('utf8')));
      refusals.push(...problems.map((message) => ({ path: 'credentials.data' as const, message })));
    }
    return refusals;
  }

  /** Why Sentinel will not talk to this API server, or undefined when it will. */
  serverProblem(server: unknown): string | undefined {
    if (typeof server !== 'string') return 'not a URL';
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      return 'not a URL';
    }
    if (url.protocol === 'https:') return undefined;
    if (url.protocol === 'http:') {
      return this.options.allowInsecure ? undefined : 'a plain http:// server is refused: use https, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true';
    }
    return `only https:// servers are allowed, not ${url.protocol}//`;
  }

  /**
   * Reads a kubeconfig file that is really (after symbolic links) in an allowed directory. The path must be
   * absolute and free of `..`, so that what an admin registers is what is read.
   */
  async readFile(path: string): Promise<KubeconfigFile> {
    if (!isAbsolute(path)) return { problem: `${shown(path)} is not an absolute path` };
    if (path.split(/[\\/]/).includes('..')) return { problem: `${shown(path)} must not contain ".."` };
    if (path.includes('\0')) return { problem: 'a path cannot hold a NUL character' };
    let located: Location;
    try {
      located = await locate(path);
    } catch (error) {
      return { problem: `${shown(path)} cannot be resolved (${codeOf(error)})` };
    }
    if (!(await this.inside(located.real))) return { problem: `${shown(path)} is outside ${this.dirNames()}` };
    if (!located.exists) return { missing: true };
    try {
      const handle = await open(located.real, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const info = await handle.stat();
        if (!info.isFile()) return { problem: `${shown(path)} is not a regular file` };
        if (info.size > MAX_KUBECONFIG_BYTES) return { problem: `${shown(path)} is larger than ${MAX_KUBECONFIG_BYTES} bytes` };
        return { text: await handle.readFile('utf8'), dir: dirname(path) };
      } finally {
        await handle.close();
      }
    } catch (error) {
      const code = codeOf(error);
      return code === 'ENOENT' ? { missing: true } : { problem: `${shown(path)} ${code === 'EACCES' ? 'is not readable by this process' : `cannot be read (${code})`}` };
    }
  }

  /**
   * Checks kubeconfig text. `dir` is the directory of the kubeconfig file, against which relative file references
   * are resolved; an inline kubeconfig (no `dir`) may name no files at all. Every cluster and every user of the
   * kubeconfig is checked, not only the current context's.
   */
  async check(text: string, dir?: string): Promise<KubeconfigVerdict> {
    const parsed = parse(text);
    if ('problem' in parsed) return { ok: false, problems: [parsed.problem], invalid: true };
    const document = parsed.document;
    const problems: string[] = [];
    const plugins = new Map<string, ExecPlugin>();

    for (const [index, entry] of entries(document, 'clusters', problems)) {
      const at = `clusters[${index}].cluster`;
      const cluster = entry['cluster'];
      if (!isRecord(cluster)) continue;
      if (cluster['server'] !== undefined) {
        const problem = this.serverProblem(cluster['server']);
        if (problem) problems.push(`${at}.server: ${problem}`);
      }
      if (cluster['insecure-skip-tls-verify'] !== undefined && cluster['insecure-skip-tls-verify'] !== false && !this.options.allowInsecure) {
        problems.push(`${at}.insecure-skip-tls-verify: refused: give the cluster's CA, or set SENTINEL_ALLOW_INSECURE_CLUSTERS=true`);
      }
      await this.fileReferences(cluster, CLUSTER_FILES, at, dir, problems);
    }

    const allowed = await this.allowedCommands();
    for (const [index, entry] of entries(document, 'users', problems)) {
      const at = `users[${index}].user`;
      const user = entry['user'];
      if (!isRecord(user)) continue;
      if (user['auth-provider'] !== undefined) {
        problems.push(`${at}.auth-provider: auth-provider plugins (gcp, azure, oidc) are not supported; use a token, a client certificate, or an exec plugin allowed by SENTINEL_KUBECONFIG_EXEC_ALLOW`);
      }
      if (user['exec'] !== undefined) {
        const plugin = await this.execPlugin(user['exec'], `${at}.exec`, allowed, problems);
        const name = entry['name'];
        if (plugin && typeof name === 'string' && !plugins.has(name)) plugins.set(name, plugin);
        // client-node's own exec authenticator never sees it: Sentinel runs the checked program itself.
        delete user['exec'];
      }
      await this.fileReferences(user, USER_FILES, at, dir, problems);
    }
    return problems.length > 0 ? { ok: false, problems } : { ok: true, kubeconfig: { document, plugins } };
  }

  private async execPlugin(exec: unknown, at: string, allowed: Set<string>, problems: string[]): Promise<ExecPlugin | undefined> {
    if (!isRecord(exec) || typeof exec['command'] !== 'string' || exec['command'] === '') {
      problems.push(`${at}.command: a command is required`);
      return undefined;
    }
    const command = exec['command'];
    const args = exec['args'] ?? [];
    const env = exec['env'] ?? [];
    const apiVersion = exec['apiVersion'] ?? 'client.authentication.k8s.io/v1beta1';
    const before = problems.length;
    if (!Array.isArray(args) || !args.every((arg) => typeof arg === 'string')) problems.push(`${at}.args: a list of strings`);
    if (!Array.isArray(env) || !env.every((item) => isRecord(item) && typeof item['name'] === 'string' && typeof item['value'] === 'string')) {
      problems.push(`${at}.env: a list of {name, value} strings`);
    } else {
      for (const { name } of env as { name: string }[]) {
        if (LOADER_VARIABLES.test(name)) problems.push(`${at}.env: ${shown(name)} may not be set for a credential plugin`);
      }
    }
    if (typeof apiVersion !== 'string') problems.push(`${at}.apiVersion: a string`);
    if (/[\\/]/.test(command) && !isAbsolute(command)) {
      problems.push(`${at}: command ${shown(command)} must be a program name or an absolute path`);
      return undefined;
    }
    const real = await resolveCommand(command, this.searchPath());
    if (real === undefined) {
      problems.push(`${at}: command ${shown(command)} is not an executable file${command.includes('/') ? '' : ' on PATH'}`);
      return undefined;
    }
    if (!allowed.has(real)) {
      problems.push(`${at}: command ${shown(command)}${real === command ? '' : ` (${shown(real)})`} is not in SENTINEL_KUBECONFIG_EXEC_ALLOW`);
      return undefined;
    }
    if (problems.length > before) return undefined;
    return { command: real, args: args as string[], env: env as { name: string; value: string }[], apiVersion: apiVersion as string };
  }

  /**
   * File references of a cluster or user: refused in an inline kubeconfig; in a kubeconfig file, resolved against
   * its directory, and kept only where they really are in an allowed directory, replaced by that real path.
   */
  private async fileReferences(
    object: Record<string, unknown>,
    fields: Record<string, string>,
    at: string,
    dir: string | undefined,
    problems: string[],
  ): Promise<void> {
    for (const [field, inline] of Object.entries(fields)) {
      const value = object[field];
      if (value === undefined || value === null || value === '') continue;
      if (dir === undefined) {
        problems.push(`${at}.${field}: an inline kubeconfig may not name files; use ${inline}`);
        continue;
      }
      if (typeof value !== 'string' || value.includes('\0')) {
        problems.push(`${at}.${field}: a file path`);
        continue;
      }
      try {
        const located = await locate(resolve(dir, value));
        if (!(await this.inside(located.real))) problems.push(`${at}.${field}: ${shown(value)} is outside ${this.dirNames()}`);
        else if (!located.exists) problems.push(`${at}.${field}: ${shown(value)} does not exist`);
        else object[field] = located.real;
      } catch (error) {
        problems.push(`${at}.${field}: ${shown(value)} cannot be resolved (${codeOf(error)})`);
      }
    }
  }

  /** The real paths of the allowed programs, as they are now. */
  private async allowedCommands(): Promise<Set<string>> {
    const resolved = await Promise.all(this.options.execAllow.map((entry) => resolveCommand(entry, this.searchPath())));
    return new Set(resolved.filter((path): path is string => path !== undefined));
  }

  private async inside(real: string): Promise<boolean> {
    for (const dir of this.dirs) {
      let root: string;
      try {
        root = (await locate(dir)).real;
      } catch {
        continue;
      }
      if (real.startsWith(root.endsWith(sep) ? root : root + sep)) return true;
    }
    return false;
  }

  private dirNames(): string {
    return `SENTINEL_KUBECONFIG_DIR (${this.dirs.join(', ')})`;
  }

  private searchPath(): string {
    return this.options.searchPath ?? process.env['PATH'] ?? '';
  }
}

interface Location {
  /** The path with every symbolic link resolved; for a missing file, its deepest existing directory's real path plus the rest. */
  real: string;
  exists: boolean;
}

async function locate(path: string): Promise<Location> {
  try {
    return { real: await realpath(path), exists: true };
  } catch (error) {
    const parent = dirname(path);
    if (codeOf(error) !== 'ENOENT' || parent === path) throw error;
    return { real: join((await locate(parent)).real, basename(path)), exists: false };
  }
}

/** The real path of an executable file: a name is looked up on `searchPath`, an absolute path taken as it is. */
export async function resolveCommand(command: string, searchPath: string): Promise<string | undefined> {
  const candidates = isAbsolute(command)
    ? [command]
    : /[\\/]/.test(command)
      ? []
      : searchPath
          .split(delimiter)
          .filter((dir) => isAbsolute(dir))
          .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      const real = await realpath(candidate);
      if (!(await stat(real)).isFile()) continue;
      await access(real, constants.X_OK);
      return real;
    } catch {
      // Not here: the next directory on the path, as a shell would.
    }
  }
  return undefined;
}

/** The kubeconfig as data; the YAML parser's messages quote the text, so only its reason and place are kept. */
function parse(text: string): { document: Record<string, unknown> } | { problem: string } {
  let value: unknown;
  try {
    value = loadYaml(text);
  } catch (error) {
    const { reason, mark } = error as { reason?: unknown; mark?: { line?: number; column?: number } };
    if (typeof reason === 'string' && mark && typeof mark.line === 'number') {
      return { problem: `not a valid kubeconfig: YAML error: ${reason} (line ${mark.line + 1}, column ${(mark.column ?? 0) + 1})` };
    }
    return { problem: 'not a valid kubeconfig: YAML error' };
  }
  if (!isRecord(value)) return { problem: 'not a valid kubeconfig: not a YAML mapping' };
  if (!fits(value)) {
    return { problem: `not a valid kubeconfig: more than ${MAX_KUBECONFIG_VALUES} values, or nested deeper than ${MAX_KUBECONFIG_DEPTH}, once its aliases are expanded` };
  }
  // Anything else would be read as a Kubernetes object of that kind rather than as a kubeconfig.
  if ((value['apiVersion'] !== undefined && value['apiVersion'] !== 'v1') || (value['kind'] !== undefined && value['kind'] !== 'Config')) {
    return { problem: 'not a valid kubeconfig: apiVersion must be v1 and kind Config' };
  }
  // A copy of plain JSON data: what is checked is exactly what client-node is given.
  return { document: JSON.parse(JSON.stringify(value)) as Record<string, unknown> };
}

/** Whether the value, walked as JSON.stringify would walk it, stays within the bounds on values and depth. */
function fits(root: unknown): boolean {
  const pending: { value: unknown; depth: number }[] = [{ value: root, depth: 0 }];
  for (let seen = 0; pending.length > 0; seen += 1) {
    const { value, depth } = pending.pop()!;
    if (seen >= MAX_KUBECONFIG_VALUES || depth > MAX_KUBECONFIG_DEPTH) return false;
    if (value === null || typeof value !== 'object') continue;
    for (const item of Array.isArray(value) ? value : Object.values(value)) pending.push({ value: item, depth: depth + 1 });
  }
  return true;
}

function* entries(document: Record<string, unknown>, list: 'clusters' | 'users', problems: string[]): Generator<[number, Record<string, unknown>]> {
  const value = document[list];
  if (value === undefined || value === null) return;
  if (!Array.isArray(value)) {
    problems.push(`${list}: a list`);
    return;
  }
  for (const [index, entry] of value.entries()) if (isRecord(entry)) yield [index, entry];
}

function problemsOf(verdict: KubeconfigVerdict): string[] {
  return verdict.ok ? [] : verdict.problems;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function codeOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'unknown error';
}

/** A value from a kubeconfig or a request, as an error message may show it: plain when it is a plain path, else quoted and cut short. */
function shown(value: string): string {
  return /^[\w./@+:-]{1,200}$/.test(value) ? value : JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}
