// `sentinel login` and `logout`: a session with one server, kept in the credentials file.
import type { Command } from 'commander';
import { CredentialsFile, configDir } from './credentials.js';
import { Exit, EXIT_USAGE } from './exit.js';
import { ApiClient, serverUrl } from './http-client.js';
import { print } from './output.js';
import { askLine, askSecret, readStdinSecret } from './prompt.js';
import { sessionOf, tokenPair } from './session.js';
import { principal } from './views.js';

export const URL_OPTION = ['--url <url>', "Sentinel's address (default: $SENTINEL_URL, else http://127.0.0.1:8080)"] as const;

interface LoginOptions {
  url?: string;
  username?: string;
  passwordStdin?: boolean;
}

async function login(options: LoginOptions): Promise<void> {
  const server = serverUrl(options.url);
  if (options.passwordStdin && !options.username) throw new Exit('--password-stdin needs --username', EXIT_USAGE);
  const username = options.username ?? (await askLine('Username: '));
  const password = options.passwordStdin ? await readStdinSecret() : await askSecret(`Password for ${username}: `);
  if (!username) throw new Exit('no username given', EXIT_USAGE);
  if (!password) throw new Exit(options.passwordStdin ? 'no password on stdin' : 'no password given', EXIT_USAGE);
  const pair = await new ApiClient(server).post('/auth/login', tokenPair, { username, password });
  const file = new CredentialsFile(configDir());
  await file.locked(() => file.put(server, sessionOf(username, pair)));
  const me = await new ApiClient(server, { token: () => Promise.resolve(pair.accessToken), refusedHint: '' }).get('/auth/me', principal);
  print(`logged in to ${server} as ${me.name} (${me.role}); the session is kept in ${file.path}`);
}

async function logout(options: { url?: string }): Promise<void> {
  const server = serverUrl(options.url);
  const file = new CredentialsFile(configDir());
  if (await file.locked(() => file.remove(server))) print(`logged out of ${server}: its tokens are deleted from ${file.path}`);
  else print(`not logged in to ${server}; nothing to do`);
}

export function registerAuthVerbs(program: Command): void {
  program
    .command('login')
    .description('log in to Sentinel and keep the session for the other commands (asks for the password with echo off)')
    .option(...URL_OPTION)
    .option('--username <name>', 'the user name (asked for when not given)')
    .option('--password-stdin', 'read the password from stdin, for scripts (needs --username)')
    .exitOverride()
    .action(login);

  program
    .command('logout')
    .description("forget the session with a server: its tokens are deleted from the credentials file")
    .option(...URL_OPTION)
    .exitOverride()
    .action(logout);
}
