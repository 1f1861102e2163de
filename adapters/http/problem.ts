// RFC 9457 problem details: the one shape every HTTP error of Sentinel takes.
import type { Response } from 'express';

export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  errors?: { path: string; message: string }[];
}

export function sendProblem(res: Response, problem: Problem): void {
  res
    .status(problem.status)
    .type('application/problem+json')
    .json({ type: problem.type ?? 'about:blank', ...problem });
}
