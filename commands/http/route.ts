// One table row per command route: what it accepts, who may call it, and what it does. The router, the
// OpenAPI document and the RBAC test are all built from the same rows.
import { z } from 'zod';
import type { Principal, Role } from '../../domain/access.js';
import type { CommandContext } from '../command-handler.js';

export type Method = 'get' | 'post' | 'patch' | 'delete';

export interface RouteRequest<Body, Query = Record<string, string>> {
  body: Body;
  params: Record<string, string>;
  /** Query parameters as the route's `query` schema parsed them; a parameter given more than once keeps its first value. */
  query: Query;
  /** Absent only on public routes. */
  principal: Principal | undefined;
  context: CommandContext;
  /** The id for a resource this request creates; derived from the Idempotency-Key when there is one. */
  newId: () => string;
  /** The client's IP address as the connection reports it (no proxy headers are trusted). */
  clientAddress?: string;
}

export interface RouteReply {
  status: number;
  body: unknown;
  /** Path of the resource, relative to /api/v1, for a Location header. */
  location?: string;
}

/** Request headers a route reads, declared in the OpenAPI document. */
export type RequestHeader = 'Idempotency-Key' | 'X-Correlation-Id' | 'X-Sentinel-Emergency' | 'traceparent';

export interface Route<Body = unknown, Query = Record<string, string>> {
  method: Method;
  /** Express path under /api/v1, e.g. `/deployments/:id/scale`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** `public` routes need no token; otherwise the roles that may call it. */
  access: 'public' | readonly Role[];
  /** The JSON body, checked strictly; a route without one refuses a body. */
  body?: z.ZodType<Body>;
  /** The body may be left out entirely (it is then `{}`). */
  bodyOptional?: boolean;
  /**
   * The query parameters it accepts (made with `queryParameters`): an unknown parameter or a malformed value is a
   * 400 naming it. A route without one takes no query parameters.
   */
  query?: QueryParameters<Query>;
  /** Writes take an Idempotency-Key. */
  idempotent: boolean;
  /** Request headers the route reads besides Authorization and Idempotency-Key, for the OpenAPI document. */
  headers?: readonly RequestHeader[];
  /** The success status and the schema of its body, for the OpenAPI document; `location` when it sets a Location header. */
  success: { status: number; schema: z.ZodType; description: string; location?: boolean };
  handle(request: RouteRequest<Body, Query>): Promise<RouteReply>;
}

/** A strict object of string parameters: what the router checks a query against and the OpenAPI document lists. */
export type QueryParameters<Query = unknown> = z.ZodType<Query> & { shape: Record<string, z.ZodType> };

export function queryParameters<Shape extends Record<string, z.ZodType<unknown, string | undefined>>>(shape: Shape) {
  return z.strictObject(shape);
}

/** Keeps each row's body and query types tied to its handler while the table holds rows of many types. */
export function route<Body, Query = Record<string, string>>(definition: Route<Body, Query>): Route {
  return definition as unknown as Route;
}

export const writeResult = z
  .object({
    id: z.string(),
    revision: z.number().int().describe('revision of the stream after the write'),
    position: z.string().nullable().describe('global position of the last event; pass as ?after= to read your write'),
  })
  .meta({ id: 'WriteResult' });

export const problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem' });
