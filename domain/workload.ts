// The Workload aggregate: a container image Sentinel runs for inference, training or batch, kept with every spec revision.
import { z } from 'zod';
import { changedFields, defineEvents, InvalidTransition, NotFound, type Decider, type EventOf } from './decider.js';
import { cpu, gpuSku, labels, memory, name, reason } from './schemas.js';

// ---- bodies and records ------------------------------------------------------------------------------

/** Strict-object options whose unknown-field error names the fields that are accepted. */
function onlyFields(accepted: string) {
  return {
    error: (issue: z.core.$ZodRawIssue) =>
      issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}: accepted are ${accepted}` : undefined,
  };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_NAME_RULE = 'an environment variable name: a letter or "_", then letters, digits or "_"';

const image = z
  .string()
  .min(1, 'a container image reference such as "ghcr.io/acme/llm:1.2"')
  .max(512, 'at most 512 characters')
  .regex(/^\S*$/, 'a container image reference without whitespace');

const env = z.record(z.string().regex(ENV_NAME, ENV_NAME_RULE), z.string(), {
  // zod reports a bad record key as "Invalid key in record"; say what a key may be instead.
  error: (issue) => (issue.code === 'invalid_key' ? ENV_NAME_RULE : undefined),
});

const GPU_COUNT_RULE = 'a whole number of GPUs from 1 to 64';
const gpu = z.strictObject(
  { count: z.int({ error: GPU_COUNT_RULE }).min(1, GPU_COUNT_RULE).max(64, GPU_COUNT_RULE), sku: gpuSku },
  onlyFields('count, sku'),
);

const resources = z.strictObject({ cpu, memory, gpu: gpu.optional() }, onlyFields('cpu, memory, gpu'));

const SUCCESS_RATE_RULE = 'a ratio above 0 and at most 1, such as 0.999';
const slo = z.strictObject(
  {
    latencyP99Ms: z.number().positive('a positive number of milliseconds').optional(),
    successRate: z.number().gt(0, SUCCESS_RATE_RULE).lte(1, SUCCESS_RATE_RULE).optional(),
  },
  onlyFields('latencyP99Ms, successRate'),
);

/** What a workload is: fixed for its life, so a patch may not name these. */
const identityFields = {
  name,
  namespace: name,
  type: z.enum(['inference', 'training', 'batch'], { error: 'one of inference, training, batch' }),
};

/** What a spec update may change. Each field a patch names replaces that field whole. */
const mutableFields = {
  image,
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: env.optional(),
  resources,
  labels,
  slo: slo.optional(),
};
const MUTABLE = Object.keys(mutableFields).join(', ');

/** `POST /workloads` */
export const workloadBody = z.strictObject(
  { ...identityFields, ...mutableFields, labels: labels.default({}) },
  onlyFields(`name, namespace, type, ${MUTABLE}`),
);
export type WorkloadBody = z.infer<typeof workloadBody>;

/** The fields of a spec update, as the command carries them and `WorkloadSpecUpdated` records them. */
export const workloadChanges = z.strictObject(mutableFields).partial();
export type WorkloadChanges = z.infer<typeof workloadChanges>;

/** `PATCH /workloads/:id`: any subset of the mutable fields, at least one. */
export const workloadPatchBody = z
  .strictObject(mutableFields, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `cannot patch ${issue.keys.join(', ')}: name, namespace and type are fixed, and a patch may set only ${MUTABLE}`
        : undefined,
  })
  .partial()
  .refine((patch) => Object.values(patch).some((value) => value !== undefined), `at least one field to change (${MUTABLE})`);
export type WorkloadPatchBody = z.infer<typeof workloadPatchBody>;

/** `DELETE /workloads/:id` may say why. */
export const workloadRetireBody = z.strictObject({ reason: reason.optional() }, onlyFields('reason'));

export const workloadSpec = z.strictObject({ ...identityFields, ...mutableFields });
export type WorkloadSpec = z.infer<typeof workloadSpec>;
export type GpuRequest = z.infer<typeof gpu>;

// ---- events -------------------------------------------------------------------------------------------

export const workloadEvents = defineEvents({
  WorkloadRegistered: {
    version: 1,
    schema: z.object({ workloadId: z.string(), specRevision: z.literal(1), spec: workloadSpec }),
  },
  WorkloadSpecUpdated: {
    version: 1,
    schema: z.object({ workloadId: z.string(), specRevision: z.int().min(2), spec: workloadSpec, changes: workloadChanges }),
  },
  WorkloadRetired: { version: 1, schema: z.object({ workloadId: z.string(), reason: z.string().optional() }) },
});
export type WorkloadEvent = EventOf<typeof workloadEvents>;

// ---- state and commands -------------------------------------------------------------------------------

export type WorkloadStatus = 'active' | 'retired';

export type Workload =
  | { status: 'absent' }
  | {
      status: WorkloadStatus;
      id: string;
      specRevision: number;
      spec: WorkloadSpec;
      /** Every revision the spec has had, by number; the latest is `spec`. */
      revisions: Record<number, WorkloadSpec>;
    };

export type WorkloadCommand =
  | { type: 'RegisterWorkload'; workloadId: string; spec: WorkloadSpec }
  | { type: 'UpdateWorkloadSpec'; workloadId: string; changes: WorkloadChanges }
  | { type: 'RetireWorkload'; workloadId: string; reason?: string };

export const initialState: Workload = { status: 'absent' };

export function evolve(state: Workload, event: WorkloadEvent): Workload {
  switch (event.type) {
    case 'WorkloadRegistered': {
      const { workloadId, specRevision, spec } = event.data;
      return { status: 'active', id: workloadId, specRevision, spec, revisions: { [specRevision]: spec } };
    }
    case 'WorkloadSpecUpdated': {
      if (state.status === 'absent') return state;
      const { specRevision, spec } = event.data;
      return { ...state, specRevision, spec, revisions: { ...state.revisions, [specRevision]: spec } };
    }
    case 'WorkloadRetired':
      return state.status === 'absent' ? state : { ...state, status: 'retired' };
  }
}

export function decide(command: WorkloadCommand, state: Workload): WorkloadEvent[] {
  const { workloadId } = command;
  if (command.type === 'RegisterWorkload') {
    if (state.status !== 'absent') throw new InvalidTransition('workload', workloadId, state.status, 'register', 'it is already registered');
    return [{ type: 'WorkloadRegistered', data: { workloadId, specRevision: 1, spec: command.spec } }];
  }
  if (state.status === 'absent') throw new NotFound('workload', workloadId);
  if (state.status === 'retired') throw new InvalidTransition('workload', workloadId, state.status, verbs[command.type]);

  switch (command.type) {
    case 'UpdateWorkloadSpec': {
      const changes = changedFields<WorkloadChanges>(state.spec, command.changes);
      if (Object.keys(changes).length === 0) return [];
      const spec: WorkloadSpec = { ...state.spec, ...changes };
      return [{ type: 'WorkloadSpecUpdated', data: { workloadId, specRevision: state.specRevision + 1, spec, changes } }];
    }
    case 'RetireWorkload':
      return [{ type: 'WorkloadRetired', data: { workloadId, reason: command.reason } }];
  }
}

export const workloadDecider: Decider<WorkloadCommand, WorkloadEvent, Workload> = { initialState, evolve, decide };

/** The spec as it stood at a revision, or undefined for a workload or revision that never existed. */
export function specAt(state: Workload, revision: number): WorkloadSpec | undefined {
  return state.status === 'absent' ? undefined : state.revisions[revision];
}

/** The GPUs a spec asks for, or undefined for a CPU-only workload. */
export function gpuRequest(spec: WorkloadSpec): GpuRequest | undefined {
  return spec.resources.gpu;
}

const verbs: Record<WorkloadCommand['type'], string> = {
  RegisterWorkload: 'register',
  UpdateWorkloadSpec: 'update spec',
  RetireWorkload: 'retire',
};
