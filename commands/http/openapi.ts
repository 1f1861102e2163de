// The OpenAPI 3.1 document of the API, generated from the same route rows and zod schemas that serve it.
import { z } from 'zod';
import { problem, type Route } from './route.js';

type JsonSchema = Record<string, unknown>;

const PROBLEMS: Record<number, string> = {
  400: 'the body, a header or a path parameter is not valid; `errors` names each field',
  401: 'no valid bearer token',
  403: 'the caller’s role may not do this',
  404: 'no such resource',
  409: 'the resource changed on every retry (`currentRevision` says where it is now), the name is taken, or the Idempotency-Key is in use',
  413: 'the body is too large',
  415: 'the body is not application/json',
  422: 'a domain rule refuses the command, or the Idempotency-Key was used for a different request',
};

export function openApiDocument(routes: readonly Route[], info: { version: string }): Record<string, unknown> {
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
    const parameters = [...route.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string', format: 'uuid' },
    }));
    if (route.idempotent) {
      parameters.push({
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        schema: { type: 'string', maxLength: 255 } as never,
      });
    }
    const errors = [400, ...(route.access === 'public' ? [] : [401, 403]), ...(parameters.some((p) => p.in === 'path') ? [404] : [])];
    if (route.body) errors.push(413, 415, 422);
    if (route.idempotent) errors.push(409, 422);

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
