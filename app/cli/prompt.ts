// Asking on the terminal: a line with echo, a secret without, and a secret piped on stdin for scripts.
import readline from 'node:readline/promises';
import { Exit, EXIT_USAGE } from './exit.js';
import { readStdin } from './stdin.js';

const NO_TERMINAL = 'no terminal to ask on: pass --username, and the password on stdin with --password-stdin';

export async function askLine(question: string): Promise<string> {
  if (!process.stdin.isTTY) throw new Exit(NO_TERMINAL, EXIT_USAGE);
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

/** Reads a line with the terminal's echo off; Ctrl-C ends the command. */
export async function askSecret(question: string): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) throw new Exit(NO_TERMINAL, EXIT_USAGE);
  process.stderr.write(question);
  input.setRawMode(true);
  input.resume();
  input.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let secret = '';
      const onData = (chunk: string) => {
        for (const char of chunk) {
          if (char === '\r' || char === '\n' || char === '\u0004') {
            input.off('data', onData);
            resolve(secret);
            return;
          }
          if (char === '\u0003') {
            input.off('data', onData);
            reject(new Exit('interrupted', 130));
            return;
          }
          if (char === '\u007f' || char === '\b') secret = secret.slice(0, -1);
          else secret += char;
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
    process.stderr.write('\n');
  }
}

/** All of stdin, less the one line ending a shell's `echo` or a file adds. */
export async function readStdinSecret(): Promise<string> {
  return (await readStdin()).replace(/\r?\n$/, '');
}
