// RFC 9457 problem details: the one shape every HTTP error of Sentinel takes.
import type { Response } from 'express';

export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  errors?: { path: string; message: string }[];
}

const TYPE = 'urn:sentinel:problem:';

/** The type of a problem sent without one, by status: every answer names a Sentinel problem type, never about:blank. */
const TYPES_BY_STATUS: Record<number, string> = {
  400: 'validation-failed',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  413: 'body-too-large',
  415: 'unsupported-media-type',
  431: 'headers-too-large',
  500: 'internal-error',
  503: 'unavailable',
};

export function problemType(status: number): string {
  return TYPE + (TYPES_BY_STATUS[status] ?? (status >= 500 ? 'internal-error' : 'bad-request'));
}

export function sendProblem(res: Response, { type, ...problem }: Problem): void {
  res
    .status(problem.status)
    .type('application/problem+json')
    .json({ type: type ?? problemType(problem.status), ...problem });
}

/**
 * A whole HTTP/1.1 answer carrying a problem, for a request Node's parser refused before any route saw it (the
 * connection closes after it).
 */
export function rawProblemResponse(problem: Problem): string {
  const body = JSON.stringify({ type: problem.type ?? problemType(problem.status), ...problem });
  return [
    `HTTP/1.1 ${problem.status} ${problem.title}`,
    'Content-Type: application/problem+json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}
