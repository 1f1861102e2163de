// The projection registry: one row per projector with its version, serving generation and checkpoint. Named here
// so the runtime and the rebuild, which both read and move it, need not import each other.

/** The registry table (migration 002-projections). */
export const PROJECTION_REGISTRY = 'sentinel_projections';
