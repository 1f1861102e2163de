// Forensics on the query API: the causal timeline of a request, from the log itself rather than a read model.
import { z } from 'zod';
import { BadRequest } from '../../commands/http/problems.js';
import { queryParameters, route, type Route } from '../../commands/http/route.js';
import { readers } from './readers.js';
import { NotFound } from '../../domain/decider.js';
import type { CorrelationReader } from '../../domain/event-store.js';
import { timelineOf } from '../timeline.js';

export interface ForensicsRoutesOptions {
  /** Reads a correlation's events across streams; the event store when it can (both adapters can). */
  correlations?: CorrelationReader;
}

const timelineQuery = queryParameters({
  correlationId: z
    .string({ error: 'a correlation id, as the X-Correlation-Id of the request or the metadata of its events' })
    .min(1, 'a non-empty correlation id')
    .max(512, 'at most 512 characters')
    .refine((value) => !/\p{Cc}/u.test(value), 'no control characters')
    // Required, but checked in the handler: a parameter the route does not know is the first thing named.
    .optional()
    .describe('required: the correlation id of a request, its X-Correlation-Id header or `metadata.correlationId` of any of its events'),
  maxEvents: z
    .string()
    .regex(/^[0-9]{1,4}$/, 'a whole number from 1 to 5000')
    .transform(Number)
    .pipe(z.number().int().min(1, 'a whole number from 1 to 5000').max(5000, 'a whole number from 1 to 5000'))
    .optional()
    .describe('at most this many events (default 5000); `truncated` says when there were more'),
});

export function forensicsRoutes(options: ForensicsRoutesOptions): Route[] {
  return [
    route({
      ...readers,
      method: 'get',
      path: '/timeline',
      operationId: 'timeline',
      summary: 'Show every event of a request, across streams, as a tree by causation',
      query: timelineQuery,
      success: {
        status: 200,
        schema: z.record(z.string(), z.unknown()).meta({ id: 'Timeline' }),
        description:
          '{correlationId, events, truncated, roots: [{causationId, events: [node]}]}; a node is {id, stream, type, revision, position, recordedAt, ' +
          'actor, source, causationId, traceId, decision? (at PolicyEvaluated: command, verdict, policySet, evaluations with each rule’s result), children: [node]}',
      },
      handle: async ({ query }) => {
        if (query.correlationId === undefined) {
          throw new BadRequest(400, 'correlationId is required', [{ path: 'correlationId', message: 'the correlation id of a request, as its X-Correlation-Id header' }]);
        }
        if (!options.correlations) throw new Error('this server was started without a reader of events by correlation id');
        const timeline = await timelineOf(options.correlations, query.correlationId, query.maxEvents ?? 5000);
        if (timeline === undefined) throw new NotFound('correlation', query.correlationId);
        return { status: 200, body: timeline };
      },
    }),
  ];
}
