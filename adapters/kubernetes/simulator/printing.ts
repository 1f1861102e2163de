// Server-side printing: the meta.k8s.io Table that kubectl asks for, with the columns and cells the API server's
// printers give each kind, and NAME/AGE for kinds without a printer of their own.
import { ApiError, badRequest } from './api-error.js';
import { isReady } from './pods.js';
import { DEPLOYMENTS, EVENTS, EVENTS_V1, JOBS, NAMESPACES, NODES, PDBS, PODS, STATEFULSETS, type ResourceDef } from './resources.js';
import { selectorString } from './selectors.js';
import type { Condition, ContainerSpec, KubeObject, LabelSelector, NodeSpec, Pod, PodTemplate } from './types.js';

export interface TableColumnDefinition {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format: string;
  description: string;
  /** 0 for the default view; kubectl shows higher priorities only with `-o wide`. */
  priority: number;
}

export type Cell = string | number | boolean;

export interface TableRow {
  cells: Cell[];
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
  object?: unknown;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

/** The Table version a request asked for (meta.k8s.io v1 or v1beta1), or undefined for a plain JSON answer. */
export type TableVersion = 'v1' | 'v1beta1';

const NAME_DOC = 'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names';
const AGE_DOC = 'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata';

function column(name: string, type: TableColumnDefinition['type'], description: string, priority = 0, format = ''): TableColumnDefinition {
  return { name, type, format, description, priority };
}

const NAME = column('Name', 'string', NAME_DOC, 0, 'name');
const AGE = column('Age', 'string', AGE_DOC);
const CONTAINERS = column('Containers', 'string', 'Names of each container in the template.', 1);
const IMAGES = column('Images', 'string', 'Images referenced by each container in the template.', 1);

/**
 * How long ago `since` was, in kubectl's words (`duration.HumanDuration`): 45s, 3m12s, 5h20m, 3d4h, 2y30d.
 * `<unknown>` for an absent timestamp, `<invalid>` for one more than a second in the future.
 */
export function humanAge(since: string | undefined, now: number): string {
  if (!since) return '<unknown>';
  const at = Date.parse(since);
  if (Number.isNaN(at)) return '<unknown>';
  return humanDuration(now - at);
}

export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${hours / 24}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

const none = (value: string | undefined): string => (value ? value : '<none>');

function containerCells(template: PodTemplate | undefined): [string, string] {
  const containers: ContainerSpec[] = template?.spec?.containers ?? [];
  return [containers.map((c) => c.name).join(','), containers.map((c) => c.image ?? '').join(',')];
}

function selectorCell(selector: LabelSelector | undefined): string {
  if (!selector) return '<none>';
  const text = selectorString(selector);
  return text === '' ? '<none>' : text;
}

function conditionTrue(object: KubeObject, type: string): boolean {
  return ((object.status?.conditions ?? []) as Condition[]).some((c) => c.type === type && c.status === 'True');
}

interface ContainerStatus {
  name?: string;
  ready?: boolean;
  restartCount?: number;
  state?: { waiting?: { reason?: string }; running?: unknown; terminated?: { reason?: string; exitCode?: number; signal?: number } };
}

/** The pod's STATUS cell, as printPod reasons it: the phase, overridden by a container's waiting or terminated reason. */
function podCells(pod: Pod): { ready: string; status: string; restarts: string } {
  const statuses = (pod.status?.containerStatuses ?? []) as ContainerStatus[];
  let reason: string = (pod.status?.reason as string | undefined) || pod.status?.phase || '';
  let readyCount = 0;
  let restarts = 0;
  let running = false;
  for (const status of [...statuses].reverse()) {
    restarts += status.restartCount ?? 0;
    const state = status.state ?? {};
    if (state.waiting?.reason) reason = state.waiting.reason;
    else if (state.terminated) {
      reason = state.terminated.reason || (state.terminated.signal ? `Signal:${state.terminated.signal}` : `ExitCode:${state.terminated.exitCode ?? 0}`);
    } else if (state.running && status.ready) {
      running = true;
      readyCount++;
    }
  }
  if (reason === 'Completed' && running) reason = isReady(pod) ? 'Running' : 'NotReady';
  if (pod.metadata.deletionTimestamp) reason = 'Terminating';
  return { ready: `${readyCount}/${(pod.spec.containers ?? []).length}`, status: reason, restarts: String(restarts) };
}

interface Printer {
  columns: TableColumnDefinition[];
  row(object: KubeObject, now: number): Omit<TableRow, 'object'>;
}

const podPrinter: Printer = {
  columns: [
    NAME,
    column('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
    column('Status', 'string', 'The aggregate status of the containers in this pod.'),
    column('Restarts', 'string', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
    AGE,
    column('IP', 'string', 'podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.', 1),
    column('Node', 'string', 'NodeName indicates in which node this pod is scheduled.', 1),
    column('Nominated Node', 'string', 'nominatedNodeName is set only when this pod preempts other pods on the node.', 1),
    column('Readiness Gates', 'string', 'If specified, all readiness gates will be evaluated for pod readiness.', 1),
  ],
  row(object, now) {
    const pod = object as Pod;
    const { ready, status, restarts } = podCells(pod);
    const row: Omit<TableRow, 'object'> = {
      cells: [pod.metadata.name!, ready, status, restarts, humanAge(pod.metadata.creationTimestamp, now), none(pod.status?.podIP), none(pod.spec.nodeName), '<none>', '<none>'],
    };
    // Finished pods carry a Completed row condition, as the API server marks them.
    if (pod.status?.phase === 'Succeeded') row.conditions = [{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }];
    if (pod.status?.phase === 'Failed') row.conditions = [{ type: 'Completed', status: 'True', reason: 'Failed', message: 'The pod failed.' }];
    return row;
  },
};

const deploymentPrinter: Printer = {
  columns: [
    NAME,
    column('Ready', 'string', 'Number of the pod with ready state'),
    column('Up-to-date', 'integer', 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.'),
    column('Available', 'integer', 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.'),
    AGE,
    CONTAINERS,
    IMAGES,
    column('Selector', 'string', 'Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.', 1),
  ],
  row(object, now) {
    const spec = (object.spec ?? {}) as { replicas?: number; template?: PodTemplate; selector?: LabelSelector };
    const status = object.status ?? {};
    const [names, images] = containerCells(spec.template);
    return {
      cells: [
        object.metadata.name!,
        `${Number(status.readyReplicas ?? 0)}/${spec.replicas ?? 0}`,
        Number(status.updatedReplicas ?? 0),
        Number(status.availableReplicas ?? 0),
        humanAge(object.metadata.creationTimestamp, now),
        names,
        images,
        selectorCell(spec.selector),
      ],
    };
  },
};

const statefulSetPrinter: Printer = {
  columns: [NAME, column('Ready', 'string', 'Number of the pod with ready state'), AGE, CONTAINERS, IMAGES],
  row(object, now) {
    const spec = (object.spec ?? {}) as { replicas?: number; template?: PodTemplate };
    const [names, images] = containerCells(spec.template);
    return {
      cells: [object.metadata.name!, `${Number(object.status?.readyReplicas ?? 0)}/${spec.replicas ?? 0}`, humanAge(object.metadata.creationTimestamp, now), names, images],
    };
  },
};

const jobPrinter: Printer = {
  columns: [
    NAME,
    column('Status', 'string', 'Status of the job.'),
    column('Completions', 'string', 'The number of pods which reached phase Succeeded.'),
    column('Duration', 'string', 'Time required to complete the job.'),
    AGE,
    CONTAINERS,
    IMAGES,
    column('Selector', 'string', 'A label query over pods that should match the pod count.', 1),
  ],
  row(object, now) {
    const spec = (object.spec ?? {}) as { completions?: number; parallelism?: number; template?: PodTemplate; selector?: LabelSelector };
    const status = object.status ?? {};
    const succeeded = Number(status.succeeded ?? 0);
    let completions: string;
    if (spec.completions !== undefined) completions = `${succeeded}/${spec.completions}`;
    else if ((spec.parallelism ?? 0) > 1) completions = `${succeeded}/1 of ${spec.parallelism}`;
    else completions = `${succeeded}/1`;
    const started = typeof status.startTime === 'string' ? Date.parse(status.startTime) : undefined;
    const completed = typeof status.completionTime === 'string' ? Date.parse(status.completionTime) : undefined;
    const duration = started === undefined ? '' : humanDuration((completed ?? now) - started);
    let state = 'Running';
    if (conditionTrue(object, 'Complete')) state = 'Complete';
    else if (conditionTrue(object, 'Failed')) state = 'Failed';
    else if (object.metadata.deletionTimestamp) state = 'Terminating';
    else if (conditionTrue(object, 'Suspended')) state = 'Suspended';
    else if (conditionTrue(object, 'FailureTarget')) state = 'FailureTarget';
    else if (conditionTrue(object, 'SuccessCriteriaMet')) state = 'SuccessCriteriaMet';
    const [names, images] = containerCells(spec.template);
    return { cells: [object.metadata.name!, state, completions, duration, humanAge(object.metadata.creationTimestamp, now), names, images, selectorCell(spec.selector)] };
  },
};

const NODE_ROLE_PREFIX = 'node-role.kubernetes.io/';

const nodePrinter: Printer = {
  columns: [
    NAME,
    column('Status', 'string', 'The status of the node'),
    column('Roles', 'string', 'The roles of the node'),
    AGE,
    column('Version', 'string', 'Kubelet Version reported by the node.'),
    column('Internal-IP', 'string', 'List of addresses reachable to the node.', 1),
    column('External-IP', 'string', 'List of addresses reachable to the node.', 1),
    column('OS-Image', 'string', 'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).', 1),
    column('Kernel-Version', 'string', "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
    column('Container-Runtime', 'string', 'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).', 1),
  ],
  row(object, now) {
    const conditions = (object.status?.conditions ?? []) as Condition[];
    const ready = conditions.find((c) => c.type === 'Ready');
    const states = [ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown'];
    if ((object.spec as NodeSpec | undefined)?.unschedulable) states.push('SchedulingDisabled');
    const labels = object.metadata.labels ?? {};
    const roles = new Set<string>();
    for (const [key, value] of Object.entries(labels)) {
      if (key.startsWith(NODE_ROLE_PREFIX) && key.length > NODE_ROLE_PREFIX.length) roles.add(key.slice(NODE_ROLE_PREFIX.length));
      else if (key === 'kubernetes.io/role' && value) roles.add(value);
    }
    const addresses = (object.status?.addresses ?? []) as { type: string; address: string }[];
    const address = (type: string) => none(addresses.find((a) => a.type === type)?.address);
    const info = (object.status?.nodeInfo ?? {}) as Record<string, string>;
    return {
      cells: [
        object.metadata.name!,
        states.join(','),
        roles.size > 0 ? [...roles].sort().join(',') : '<none>',
        humanAge(object.metadata.creationTimestamp, now),
        info.kubeletVersion ?? '',
        address('InternalIP'),
        address('ExternalIP'),
        none(info.osImage),
        none(info.kernelVersion),
        none(info.containerRuntimeVersion),
      ],
    };
  },
};

const namespacePrinter: Printer = {
  columns: [NAME, column('Status', 'string', 'The status of the namespace'), AGE],
  row: (object, now) => ({ cells: [object.metadata.name!, String(object.status?.phase ?? ''), humanAge(object.metadata.creationTimestamp, now)] }),
};

const pdbPrinter: Printer = {
  columns: [
    NAME,
    column('Min Available', 'string', 'The minimum number of pods that must be available.'),
    column('Max Unavailable', 'string', 'The maximum number of pods that may be unavailable.'),
    column('Allowed Disruptions', 'integer', 'Calculated number of pods that may be disrupted at this time.'),
    AGE,
  ],
  row(object, now) {
    const spec = (object.spec ?? {}) as { minAvailable?: number | string; maxUnavailable?: number | string };
    return {
      cells: [
        object.metadata.name!,
        spec.minAvailable === undefined ? 'N/A' : String(spec.minAvailable),
        spec.maxUnavailable === undefined ? 'N/A' : String(spec.maxUnavailable),
        Number(object.status?.disruptionsAllowed ?? 0),
        humanAge(object.metadata.creationTimestamp, now),
      ],
    };
  },
};

interface EventReference {
  kind?: string;
  name?: string;
  fieldPath?: string;
}

interface EventSourceFields {
  component?: string;
  host?: string;
}

/** The fields of an Event in both its core/v1 and its events.k8s.io/v1 names. */
interface EventFields {
  involvedObject?: EventReference;
  regarding?: EventReference;
  reason?: string;
  message?: string;
  note?: string;
  type?: string;
  count?: number;
  deprecatedCount?: number;
  firstTimestamp?: string;
  deprecatedFirstTimestamp?: string;
  lastTimestamp?: string;
  deprecatedLastTimestamp?: string;
  eventTime?: string;
  series?: { count?: number; lastObservedTime?: string };
  source?: EventSourceFields;
  deprecatedSource?: EventSourceFields;
  reportingComponent?: string;
  reportingController?: string;
  reportingInstance?: string;
}

const eventPrinter: Printer = {
  columns: [
    column('Last Seen', 'string', 'The time at which the most recent occurrence of this event was recorded.'),
    column('Type', 'string', 'Type of this event (Normal, Warning), new types could be added in the future'),
    column('Reason', 'string', 'This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.'),
    column('Object', 'string', 'The object that this event is about.'),
    column('Subobject', 'string', 'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].', 1),
    column('Source', 'string', 'The component reporting this event. Should be a short machine understandable string.', 1),
    column('Message', 'string', 'A human-readable description of the status of this operation.'),
    column('First Seen', 'string', 'The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)', 1),
    column('Count', 'string', 'The number of times this event has occurred.', 1),
    { ...NAME, priority: 1 },
  ],
  row(object, now) {
    const event = object as KubeObject & EventFields;
    const first = humanAge(event.firstTimestamp ?? event.deprecatedFirstTimestamp ?? event.eventTime, now);
    const lastAt = event.series?.lastObservedTime ?? event.lastTimestamp ?? event.deprecatedLastTimestamp;
    const last = lastAt ? humanAge(lastAt, now) : first;
    const regarding = event.involvedObject ?? event.regarding;
    const kind = (regarding?.kind ?? '').toLowerCase();
    const target = regarding?.name ? `${kind}/${regarding.name}` : kind;
    const from = event.source ?? event.deprecatedSource;
    const source = from?.component
      ? [from.component, from.host].filter(Boolean).join(', ')
      : [event.reportingComponent ?? event.reportingController, event.reportingInstance].filter(Boolean).join(', ');
    const count = event.series?.count ?? event.count ?? event.deprecatedCount ?? 0;
    return {
      cells: [last, event.type ?? '', event.reason ?? '', target, regarding?.fieldPath ?? '', source, (event.message ?? event.note ?? '').trim(), first, count > 0 ? count : 1, event.metadata.name!],
    };
  },
};

/** What the API server's default table convertor gives a kind without a printer. */
const genericPrinter: Printer = {
  columns: [NAME, AGE],
  row: (object, now) => ({ cells: [object.metadata.name!, humanAge(object.metadata.creationTimestamp, now)] }),
};

const PRINTERS = new Map<ResourceDef, Printer>([
  [PODS, podPrinter],
  [DEPLOYMENTS, deploymentPrinter],
  [STATEFULSETS, statefulSetPrinter],
  [JOBS, jobPrinter],
  [NODES, nodePrinter],
  [NAMESPACES, namespacePrinter],
  [PDBS, pdbPrinter],
  [EVENTS, eventPrinter],
  [EVENTS_V1, eventPrinter],
]);

interface MediaRange {
  type: string;
  params: Map<string, string>;
}

function parseAccept(header: string): MediaRange[] {
  return header
    .split(',')
    .map((part) => {
      const [type = '', ...params] = part.split(';').map((s) => s.trim());
      return {
        type: type.toLowerCase(),
        params: new Map(
          params.map((p) => {
            const eq = p.indexOf('=');
            return eq < 0 ? [p.toLowerCase(), ''] : [p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim()];
          }),
        ),
      };
    })
    .filter((range) => range.type !== '');
}

const JSON_TYPES = new Set(['application/json', 'application/*', '*/*']);

/**
 * Negotiates the answer's shape from the Accept header, in the client's order of preference: a Table
 * (`application/json;as=Table;v=v1;g=meta.k8s.io`) or the objects as they are. An Accept naming only transformed
 * forms the simulator does not serve (another `as=`, `g` or `v`) is 406 Not Acceptable, as the API server answers.
 */
export function negotiateTable(accept: string | undefined): TableVersion | undefined {
  if (!accept) return undefined;
  const ranges = parseAccept(accept);
  let plainAllowed = ranges.length === 0;
  for (const range of ranges) {
    const as = range.params.get('as');
    if (as === undefined) {
      // Protobuf and YAML clients get JSON, as they always have from the simulator.
      plainAllowed = true;
      if (JSON_TYPES.has(range.type)) return undefined;
      continue;
    }
    if (as !== 'Table' || !JSON_TYPES.has(range.type) || range.params.get('g') !== 'meta.k8s.io') continue;
    const version = range.params.get('v');
    if (version === 'v1' || version === 'v1beta1') return version;
  }
  if (plainAllowed) return undefined;
  throw new ApiError(406, `only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1beta1;g=meta.k8s.io`, 'NotAcceptable');
}

/** The `includeObject` parameter: Metadata (PartialObjectMetadata) unless the request says None or Object. */
export function includeObjectOf(query: URLSearchParams): IncludeObject {
  const value = query.get('includeObject');
  if (value === null || value === '') return 'Metadata';
  if (value === 'None' || value === 'Metadata' || value === 'Object') return value;
  throw badRequest(`includeObject: Unsupported value: "${value}": supported values: "Metadata", "None", "Object"`);
}

export interface TableOptions {
  version: TableVersion;
  includeObject: IncludeObject;
  now: number;
}

/** The object a row carries: nothing, the object's metadata as a PartialObjectMetadata, or the whole object. */
function rowObject(def: ResourceDef, object: KubeObject, options: TableOptions): unknown {
  const apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
  switch (options.includeObject) {
    case 'None':
      return undefined;
    case 'Object':
      return { ...object, kind: def.kind, apiVersion };
    case 'Metadata':
      return { kind: 'PartialObjectMetadata', apiVersion: `meta.k8s.io/${options.version}`, metadata: object.metadata };
  }
}

/** A Table of `objects` of one resource, with `listMeta` (resourceVersion, continue) as its metadata. */
export function toTable(def: ResourceDef, objects: KubeObject[], listMeta: Record<string, unknown>, options: TableOptions): Record<string, unknown> {
  const printer = PRINTERS.get(def) ?? genericPrinter;
  return {
    kind: 'Table',
    apiVersion: `meta.k8s.io/${options.version}`,
    metadata: listMeta,
    columnDefinitions: printer.columns,
    rows: objects.map((object) => {
      const row: TableRow = printer.row(object, options.now);
      const embedded = rowObject(def, object, options);
      return embedded === undefined ? row : { ...row, object: embedded };
    }),
  };
}
