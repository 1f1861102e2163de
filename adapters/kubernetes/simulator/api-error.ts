// Errors as the Kubernetes API reports them: a typed error that becomes a `Status` body with the right code and reason.
import type { ResourceDef } from './resources.js';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** The reason the API server gives for each status code it answers with. */
const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export function reasonFor(code: number): string {
  return REASONS[code] ?? (code >= 500 ? 'InternalError' : 'BadRequest');
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason: string = reasonFor(code),
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): StatusBody {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export function successStatus(details?: StatusDetails): StatusBody {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', ...(details ? { details } : {}), code: 200 };
}

/** `deployments.apps`, `pods`: how the API server names a resource in its messages. */
export function qualifiedResource(def: ResourceDef): string {
  return def.group ? `${def.plural}.${def.group}` : def.plural;
}

export function notFound(def: ResourceDef, name: string): ApiError {
  return new ApiError(404, `${qualifiedResource(def)} "${name}" not found`, 'NotFound', {
    name,
    group: def.group,
    kind: def.plural,
  });
}

export function alreadyExists(def: ResourceDef, name: string): ApiError {
  return new ApiError(409, `${qualifiedResource(def)} "${name}" already exists`, 'AlreadyExists', {
    name,
    group: def.group,
    kind: def.plural,
  });
}

export function conflict(def: ResourceDef, name: string): ApiError {
  return new ApiError(
    409,
    `Operation cannot be fulfilled on ${qualifiedResource(def)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    'Conflict',
    { name, group: def.group, kind: def.plural },
  );
}

/** 422 Invalid with one cause per field, worded as the API server words them. */
export function invalid(def: ResourceDef, name: string, causes: { field: string; message: string; type?: string }[]): ApiError {
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  const qualifiedKind = def.group ? `${def.kind}.${def.group}` : def.kind;
  return new ApiError(422, `${qualifiedKind} "${name}" is invalid: ${text}`, 'Invalid', {
    name,
    group: def.group,
    kind: def.kind,
    causes: causes.map((c) => ({ reason: c.type ?? 'FieldValueInvalid', message: c.message, field: c.field })),
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, message, 'BadRequest');
}
