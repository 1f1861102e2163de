// The OpenAPI 3.1 document of the API, generated from the same route rows and zod schemas that serve it.
import { z } from 'zod';
import { problem, type RequestHeader, type Route } from './route.js';

type JsonSchema = Record<string, unknown>;

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

/** The request headers the router reads, as each route that reads them declares them. */
const REQUEST_HEADERS: Record<RequestHeader, { description: string; schema: JsonSchema }> = {
  'Idempotency-Key': {
    description: 'makes a retried write safe: the same key and body answer with the first reply (`Idempotent-Replayed: true`)',
    schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
  },
  'X-Correlation-Id': {
    description: 'ties the events a request records to a caller\'s id; echoed back, and a request id is used when absent or not valid',
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
  },
  traceparent: {
    description: 'W3C trace context, copied into the metadata of every event the request records',
    schema: { type: 'string', pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' },
  },
  'X-Sentinel-Emergency': {
    description: 'break glass (admin only): a justification of 10 to 500 characters that lets the change through a change freeze, recorded with the decision',
    schema: { type: 'string', minLength: 10, maxLength: 500 },
  },
};

const PROBLEMS: Record<number, string> = {
  400: 'the body, a header, a query or path parameter is not valid, or a query parameter is unknown; `errors` names each',
  401: 'no valid bearer token',
  403: 'the caller’s role may not do this',
  404: 'no such resource',
  409: 'the resource changed on every retry (`currentRevision` says where it is now), the name is taken, or the Idempotency-Key is in use',
  413: 'the body is too large',
  415: 'the body is not application/json',
  422: 'a domain rule refuses the command, or the Idempotency-Key was used for a different request',
  503: 'the read side has not reached the position given as `after` yet; retry after Retry-After',
};

/**
 * `served`: path items written by hand for what is served beside the route table (a stream, whose answer is not
 * JSON); a path the table serves too is refused.
 */
export function openApiDocument(
  routes: readonly Route[],
  info: { version: string },
  served: Record<string, Record<string, unknown>> = {},
): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {};
  const toSchema = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
    const { $schema: _ignored, $defs, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' });
    Object.assign(components, $defs ?? {});
    return rest as JsonSchema;
  };
  const problemRef = { $ref: '#/components/schemas/Problem' };
  toSchema(problem, 'output');

  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    const parameters: Parameter[] = [...route.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
      name: name!,
      in: 'path',
      required: true,
      schema: { type: 'string', format: 'uuid' },
    }));
    for (const [name, schema] of Object.entries(route.query?.shape ?? {})) {
      const { description, ...json } = toSchema(schema, 'input');
      parameters.push({
        name,
        in: 'query',
        required: !schema.safeParse(undefined).success,
        ...(typeof description === 'string' ? { description } : {}),
        schema: json,
      });
    }
    const headers = [
      ...(route.idempotent ? (['Idempotency-Key'] as const) : []),
      'X-Correlation-Id' as const,
      ...(route.method === 'get' ? [] : (['traceparent'] as const)),
      ...(route.headers ?? []),
    ];
    for (const name of new Set(headers)) parameters.push({ name, in: 'header', required: false, ...REQUEST_HEADERS[name] });
    const successHeaders = {
      'X-Correlation-Id': { description: 'the X-Correlation-Id sent, or this request\'s id', schema: { type: 'string' } },
      ...(route.success.location ?? route.success.status === 201
        ? { Location: { description: 'where the resource can be read, under /api/v1', schema: { type: 'string' } } }
        : {}),
    };
    const errors = [400, ...(route.access === 'public' ? [] : [401, 403]), ...(parameters.some((p) => p.in === 'path') ? [404] : [])];
    if (route.body) errors.push(413, 415, 422);
    if (route.idempotent) errors.push(409, 422);
    if (parameters.some((p) => p.in === 'query' && p.name === 'after')) errors.push(503);

    paths[path] ??= {};
    paths[path][route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      ...(route.access === 'public' ? { security: [] } : { 'x-sentinel-roles': route.access }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body
        ? { requestBody: { required: !route.bodyOptional, content: { 'application/json': { schema: toSchema(route.body, 'input') } } } }
        : {}),
      responses: {
        [route.success.status]: {
          description: route.success.description,
          headers: successHeaders,
          content: { 'application/json': { schema: toSchema(route.success.schema, 'output') } },
        },
        ...Object.fromEntries(
          [...new Set(errors)].sort().map((status) => [
            status,
            { description: PROBLEMS[status], content: { 'application/problem+json': { schema: problemRef } } },
          ]),
        ),
      },
    };
  }

  for (const [path, item] of Object.entries(served)) {
    if (paths[path]) throw new Error(`${path} is served by the route table; it needs no path item written by hand`);
    paths[path] = item;
  }

  const document = {
    openapi: '3.1.0',
    info: {
      title: 'Sentinel API',
      version: info.version,
      description: 'Commands that change the fleet. Every write is recorded as events; a write answers with the position to read it back at.',
    },
    servers: [{ url: '/api/v1' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: components,
    },
    security: [{ bearer: [] }],
    paths,
  };
  return JSON.parse(JSON.stringify(document).replaceAll('"#/$defs/', '"#/components/schemas/')) as Record<string, unknown>;
}
