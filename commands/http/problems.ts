// Every error a command route can meet, mapped in one place to an RFC 9457 problem.
import type { z } from 'zod';
import { bearerChallenge } from '../../adapters/http/bearer.js';
import type { Problem } from '../../adapters/http/problem.js';
import { DomainError, NotFound, PolicyViolation, RuleViolation } from '../../domain/decider.js';
import { NoRolloutInProgress } from '../../domain/rollout.js';
import { InvalidEventStoreRequest } from '../../domain/event-store.js';
import { InvalidPrincipalQuery, LoginThrottled, NameTaken, Unauthenticated } from '../access.js';
import { ConflictAfterRetries } from '../command-handler.js';
import { IdempotencyKeyInFlight, IdempotencyKeyReused } from '../idempotency.js';

const TYPE = 'urn:sentinel:problem:';

export interface HttpProblem extends Problem {
  headers?: Record<string, string>;
  currentRevision?: number | null;
  recordedIn?: { id: string; revision: number; position: string | null };
}

export class Forbidden extends Error {
  override name = 'Forbidden';
}

/** Read-your-writes: the read side has not reached the position asked for within the wait. */
export class NotYetVisible extends Error {
  override name = 'NotYetVisible';
}

/** A problem with the request itself (body, headers, path), found before any command runs. */
export class BadRequest extends Error {
  override name = 'BadRequest';
  constructor(
    readonly status: 400 | 404 | 413 | 415,
    message: string,
    readonly errors?: { path: string; message: string }[],
  ) {
    super(message);
  }
}

/** Most field errors one answer lists, and the longest message of each: a body of many bad fields gets a short answer. */
const MAX_FIELD_ERRORS = 20;
const MAX_MESSAGE_LENGTH = 300;

export function validationProblem(error: z.ZodError, input: unknown): BadRequest {
  const errors: { path: string; message: string }[] = [];
  let more = 0;
  for (const issue of error.issues) {
    for (const field of fieldErrors(issue, input)) {
      if (errors.length === MAX_FIELD_ERRORS) more += 1;
      else errors.push({ path: field.path, message: shortened(field.message) });
    }
  }
  if (more > 0) errors.push({ path: '', message: `and ${more} more like these` });
  return new BadRequest(400, 'the request body is not valid', errors);
}

function shortened(message: string): string {
  return message.length <= MAX_MESSAGE_LENGTH ? message : `${message.slice(0, MAX_MESSAGE_LENGTH - 1)}…`;
}

/** One entry per field: an unknown key is named by its own path, a missing one says it is required. */
function fieldErrors(issue: z.core.$ZodIssue, input: unknown): { path: string; message: string }[] {
  const path = issue.path.map(String);
  if (issue.code === 'invalid_type' && isMissing(input, issue.path)) {
    return [{ path: path.join('.'), message: `required: ${issue.message.startsWith('Invalid input') ? issue.expected : issue.message}` }];
  }
  if (issue.code === 'unrecognized_keys') {
    const message = issue.message.startsWith('Unrecognized key') ? 'unknown field' : issue.message;
    return issue.keys.map((key) => ({ path: [...path, key].join('.'), message }));
  }
  return [{ path: path.join('.'), message: issue.message }];
}

function isMissing(input: unknown, path: PropertyKey[]): boolean {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return false;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value === undefined;
}

/** The problem for an error, or undefined when it is a fault of Sentinel's (a 500, logged by the caller). */
export function toProblem(error: unknown): HttpProblem | undefined {
  if (error instanceof BadRequest) {
    const titles = { 400: 'Bad Request', 404: 'Not Found', 413: 'Content Too Large', 415: 'Unsupported Media Type' } as const;
    const slugs = { 400: 'validation-failed', 404: 'not-found', 413: 'body-too-large', 415: 'unsupported-media-type' } as const;
    return { type: TYPE + slugs[error.status], title: titles[error.status], status: error.status, detail: error.message, errors: error.errors };
  }
  if (error instanceof Unauthenticated) {
    return {
      type: `${TYPE}unauthenticated`,
      title: 'Unauthorized',
      status: 401,
      detail: error.message,
      headers: { 'WWW-Authenticate': bearerChallenge() },
    };
  }
  if (error instanceof LoginThrottled) {
    return {
      type: `${TYPE}login-throttled`,
      title: 'Too Many Requests',
      status: 429,
      detail: error.message,
      headers: { 'Retry-After': String(error.retryAfterSeconds) },
    };
  }
  if (error instanceof NotYetVisible) {
    return { type: `${TYPE}not-yet-visible`, title: 'Service Unavailable', status: 503, detail: error.message, headers: { 'Retry-After': '1' } };
  }
  if (error instanceof Forbidden) return { type: `${TYPE}forbidden`, title: 'Forbidden', status: 403, detail: error.message };
  if (error instanceof NotFound) return { type: `${TYPE}not-found`, title: 'Not Found', status: 404, detail: error.message };
  if (error instanceof ConflictAfterRetries) {
    return {
      type: `${TYPE}concurrency-conflict`,
      title: 'Conflict',
      status: 409,
      detail: `${error.message}; read it again and retry`,
      currentRevision: error.currentRevision === 'no_stream' ? null : error.currentRevision,
    };
  }
  if (error instanceof NameTaken) {
    return { type: `${TYPE}name-taken`, title: 'Conflict', status: 409, detail: error.message, errors: [{ path: error.field, message: error.message }] };
  }
  if (error instanceof IdempotencyKeyInFlight) {
    return {
      type: `${TYPE}idempotency-key-in-flight`,
      title: 'Conflict',
      status: 409,
      detail: error.message,
      headers: { 'Retry-After': String(error.retryAfterSeconds) },
    };
  }
  if (error instanceof IdempotencyKeyReused) {
    return { type: `${TYPE}idempotency-key-reused`, title: 'Unprocessable Content', status: 422, detail: error.message };
  }
  if (error instanceof NoRolloutInProgress) {
    return { type: `${TYPE}no-rollout-in-progress`, title: 'Conflict', status: 409, detail: error.message };
  }
  if (error instanceof DomainError) {
    return {
      type: `${TYPE}${error.code.replaceAll('_', '-')}`,
      title: 'Unprocessable Content',
      status: 422,
      detail: error.message,
      errors: (error instanceof RuleViolation || error instanceof PolicyViolation) && error.errors.length > 0 ? error.errors : undefined,
      ...(error instanceof PolicyViolation && error.recordedIn ? { recordedIn: error.recordedIn } : {}),
    };
  }
  if (error instanceof InvalidPrincipalQuery) {
    return { type: `${TYPE}validation-failed`, title: 'Bad Request', status: 400, detail: error.message, errors: error.errors };
  }
  if (error instanceof InvalidEventStoreRequest) {
    return { type: `${TYPE}validation-failed`, title: 'Bad Request', status: 400, detail: error.message, errors: error.issues };
  }
  return undefined;
}
