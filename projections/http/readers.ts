// What every route of the query API shares: its OpenAPI tag, who may read (viewer and up, and service accounts),
// and that a read is safe to repeat.
import { rolesFrom } from '../../domain/access.js';

export const readers = { tag: 'queries', access: rolesFrom('viewer', { system: true }), idempotent: false } as const;
