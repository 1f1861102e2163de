// Small helpers the route tables share: path ids and the shapes of write replies.
import { z } from 'zod';
import { NotFound } from '../../domain/decider.js';
import type { WriteResult } from '../command-handler.js';
import type { RouteReply } from './route.js';

const uuid = z.uuid();

/** The `:id` of a path; an id that is not a UUID names nothing, so it is a 404. */
export function pathId(params: Record<string, string>, kind: string): string {
  const id = params['id'] ?? '';
  if (!uuid.safeParse(id).success) throw new NotFound(kind, id);
  return id;
}

/** 201 for a resource that now exists under `collection`, e.g. `/clusters`. */
export function created(result: WriteResult, collection: string): RouteReply {
  return { status: 201, body: written(result), location: `${collection}/${result.id}` };
}

/** 202: the change is recorded; the read side and the reactors carry it on from here. */
export function accepted(result: WriteResult): RouteReply {
  return { status: 202, body: written(result) };
}

function written(result: WriteResult) {
  return { id: result.id, revision: result.revision, position: result.position };
}
