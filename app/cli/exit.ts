// How a sentinel command ends: its exit codes, and the error that carries a message and a code to the top.

export const EXIT_OK = 0;
/** The command did not do what was asked: refused by the server, the server unreachable, a rollout that failed. */
export const EXIT_FAILURE = 1;
/** The command line itself was wrong. */
export const EXIT_USAGE = 2;

/** Ends the command with a message on stderr and an exit code. */
export class Exit extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
