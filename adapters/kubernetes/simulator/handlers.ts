// The REST verbs on a resource: get, list, create, replace, patch, delete, and the status, scale and eviction subresources.
import { ApiError, badRequest, conflict, notFound, successStatus } from './api-error.js';
import { checkEviction } from './disruption.js';
import { PATCH_TYPES, jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import type { Propagation, Registry, WriteResult } from './registry.js';
import { apiVersionOf, PODS, type ResourceDef } from './resources.js';
import type { ResourceTarget } from './routes.js';
import { fieldsMatch, parseFieldSelector, parseLabelSelector, matches, selectorString } from './selectors.js';
import { isRecord, type KubeObject, type LabelSelector, type Pod } from './types.js';

export interface ApiRequest {
  method: string;
  query: URLSearchParams;
  /** The media type of the body, without parameters. */
  contentType: string;
  /** The parsed JSON body, or undefined when there was none. */
  body: unknown;
  userAgent: string;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

const ok = (body: unknown, status = 200): ApiResponse => ({ status, body });

function asObject(body: unknown, what: string): KubeObject {
  if (!isRecord(body)) throw badRequest(`${what} must be a JSON object`);
  const metadata = isRecord(body.metadata) ? body.metadata : {};
  return { ...body, metadata } as KubeObject;
}

/** The field manager of a write: the `fieldManager` parameter, else the client's user agent as the API server derives it. */
function managerOf(request: ApiRequest): string {
  const explicit = request.query.get('fieldManager');
  if (explicit) return explicit;
  return request.userAgent.split('/')[0] || 'unknown';
}

function isDryRun(request: ApiRequest): boolean {
  return request.query.getAll('dryRun').includes('All');
}

function checkTypeMeta(def: ResourceDef, body: KubeObject): void {
  if (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(def)) {
    throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`);
  }
  if (body.kind !== undefined && body.kind !== def.kind) {
    throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${def.kind})`);
  }
}

/** The API verb each method means on a collection or on one object. */
const VERBS: Record<string, string> = {
  'GET collection': 'list',
  'POST collection': 'create',
  'DELETE collection': 'deletecollection',
  'GET object': 'get',
  'PUT object': 'update',
  'PATCH object': 'patch',
  'DELETE object': 'delete',
};

function methodNotAllowed(): ApiError {
  return new ApiError(405, 'the server does not allow this method on the requested resource', 'MethodNotAllowed');
}

export function requireVerb(def: ResourceDef, verb: string | undefined): void {
  if (!verb || !def.verbs.includes(verb)) throw methodNotAllowed();
}

function written(result: WriteResult): ApiResponse {
  return ok(result.object, result.created ? 201 : 200);
}

export class Handlers {
  constructor(private readonly registry: Registry) {}

  handle(target: ResourceTarget, request: ApiRequest): ApiResponse {
    const { def, name, subresource } = target;
    if (subresource && !def.subresources.includes(subresource)) throw new ApiError(404, 'the server could not find the requested resource', 'NotFound');
    if (def.namespaced && name !== undefined && target.namespace === undefined) throw new ApiError(404, 'the server could not find the requested resource', 'NotFound');
    const method = request.method.toUpperCase();
    if (!subresource) requireVerb(def, VERBS[`${method} ${name === undefined ? 'collection' : 'object'}`]);
    if (name === undefined) {
      if (method === 'GET') return this.list(target, request);
      if (method === 'POST') return this.create(target, request);
      if (method === 'DELETE') return this.deleteCollection(target, request);
      throw methodNotAllowed();
    }
    if (subresource === 'scale') return this.scale(target, name, method, request);
    if (subresource === 'eviction') {
      if (method !== 'POST') throw methodNotAllowed();
      return this.evict(target, name, request);
    }
    if (subresource === 'log') {
      if (method !== 'GET') throw methodNotAllowed();
      return this.log(target, name, request);
    }
    switch (method) {
      case 'GET':
        return ok(this.view(def, this.registry.get(def, target.namespace, name)));
      case 'PUT':
        return this.replace(target, name, request);
      case 'PATCH':
        return this.patch(target, name, request);
      case 'DELETE':
        if (subresource) break;
        return this.delete(target, name, request);
      default:
        break;
    }
    throw methodNotAllowed();
  }

  /** A stored object as the resource presents it (the same object, but for a view such as events.k8s.io). */
  view(def: ResourceDef, object: KubeObject): KubeObject {
    return def.viewOf ? def.viewOf.read(object) : object;
  }

  /** The objects a list or watch selects: namespace, labelSelector and fieldSelector (on the fields the resource shows). */
  selector(target: ResourceTarget, query: URLSearchParams): (object: KubeObject) => boolean {
    const labels = parseLabelSelector(query.get('labelSelector') ?? undefined);
    const fields = parseFieldSelector(query.get('fieldSelector') ?? undefined);
    const namespace = target.def.namespaced ? target.namespace : undefined;
    return (object) =>
      (namespace === undefined || object.metadata.namespace === namespace) &&
      matches(labels, object.metadata.labels) &&
      fieldsMatch(fields, this.view(target.def, object));
  }

  private list(target: ResourceTarget, request: ApiRequest): ApiResponse {
    const { def } = target;
    const revision = String(this.registry.store.currentRevision());
    const selected = this.registry.list(def, target.namespace).filter(this.selector(target, request.query));
    const items = selected.map((o) => {
      // Items of a typed list carry no kind or apiVersion of their own, as the API server sends them.
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = this.view(def, o);
      return rest;
    });
    const limit = Number(request.query.get('limit') ?? 0);
    const start = this.continueFrom(request.query.get('continue'));
    const metadata: Record<string, unknown> = { resourceVersion: revision };
    let page = items.slice(start);
    if (limit > 0 && page.length > limit) {
      page = page.slice(0, limit);
      metadata.continue = Buffer.from(JSON.stringify({ start: start + limit })).toString('base64url');
      metadata.remainingItemCount = items.length - start - limit;
    }
    return ok({ kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata, items: page });
  }

  private continueFrom(token: string | null): number {
    if (!token) return 0;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
      if (isRecord(parsed) && typeof parsed.start === 'number' && parsed.start >= 0) return parsed.start;
    } catch {
      // Falls through to the API server's answer for a token it cannot read.
    }
    throw badRequest('continue key is not valid: the continue token could not be decoded');
  }

  private create(target: ResourceTarget, request: ApiRequest): ApiResponse {
    const { def } = target;
    if (def.namespaced && target.namespace === undefined) throw methodNotAllowed();
    const body = asObject(request.body, 'the object');
    checkTypeMeta(def, body);
    return written(this.registry.create(def, target.namespace, body, { manager: managerOf(request), dryRun: isDryRun(request) }));
  }

  private replace(target: ResourceTarget, name: string, request: ApiRequest): ApiResponse {
    const { def } = target;
    const body = asObject(request.body, 'the object');
    checkTypeMeta(def, body);
    const subresource = target.subresource === 'status' ? 'status' : undefined;
    return written(
      this.registry.update(def, target.namespace, name, body, {
        manager: managerOf(request),
        dryRun: isDryRun(request),
        ...(subresource ? { subresource } : {}),
      }),
    );
  }

  private patch(target: ResourceTarget, name: string, request: ApiRequest): ApiResponse {
    const { def } = target;
    const dryRun = isDryRun(request);
    if (request.contentType === PATCH_TYPES.apply) {
      const manager = request.query.get('fieldManager');
      if (!manager) throw new ApiError(422, 'PATCH, application/apply-patch+yaml: fieldManager: Required value: is required for apply patch', 'Invalid');
      const body = asObject(request.body, 'an apply patch');
      checkTypeMeta(def, body);
      if (target.subresource === 'status') {
        const current = this.registry.get(def, target.namespace, name);
        const merged = mergePatch(current, { status: body.status ?? null }) as KubeObject;
        return written(this.registry.update(def, target.namespace, name, merged, { manager, dryRun, subresource: 'status' }));
      }
      return written(this.registry.apply(def, target.namespace, name, body, { manager, force: request.query.get('force') === 'true', dryRun }));
    }
    if (request.query.get('force') !== null) throw badRequest('force must be unset for non-apply patch requests');
    const current = this.registry.get(def, target.namespace, name);
    const next = this.patched(current, request) as KubeObject;
    if (!isRecord(next) || !isRecord(next.metadata)) throw new ApiError(422, 'the patched object has no metadata', 'Invalid');
    const subresource = target.subresource === 'status' ? 'status' : undefined;
    return written(
      this.registry.update(def, target.namespace, name, next, { manager: managerOf(request), dryRun, ...(subresource ? { subresource } : {}) }),
    );
  }

  /** A non-apply patch of `current`, by the flavour the Content-Type names. */
  private patched(current: unknown, request: ApiRequest): unknown {
    switch (request.contentType) {
      case PATCH_TYPES.merge:
        if (!isRecord(request.body)) throw badRequest('a merge patch must be a JSON object');
        return mergePatch(current, request.body);
      case PATCH_TYPES.strategic:
        if (!isRecord(request.body)) throw badRequest('a strategic merge patch must be a JSON object');
        return strategicMergePatch(current, request.body);
      case PATCH_TYPES.json:
        return jsonPatch(current, request.body);
      default:
        throw new ApiError(
          415,
          `the body of the request was in an unknown format - accepted media types include: ${Object.values(PATCH_TYPES).join(', ')}`,
          'UnsupportedMediaType',
        );
    }
  }

  private deleteOptions(request: ApiRequest): { propagation: Propagation; preconditions: { uid?: string; resourceVersion?: string } } {
    const body = isRecord(request.body) ? request.body : {};
    const policy = request.query.get('propagationPolicy') ?? (typeof body.propagationPolicy === 'string' ? body.propagationPolicy : undefined);
    const orphan = request.query.get('orphanDependents') ?? (typeof body.orphanDependents === 'boolean' ? String(body.orphanDependents) : undefined);
    let propagation: Propagation = 'Background';
    if (policy !== undefined) {
      if (policy !== 'Foreground' && policy !== 'Background' && policy !== 'Orphan') {
        throw badRequest(`propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
      }
      propagation = policy;
    } else if (orphan === 'true') {
      propagation = 'Orphan';
    }
    const preconditions = isRecord(body.preconditions) ? (body.preconditions as { uid?: string; resourceVersion?: string }) : {};
    return { propagation, preconditions };
  }

  private delete(target: ResourceTarget, name: string, request: ApiRequest): ApiResponse {
    const { def } = target;
    const { propagation, preconditions } = this.deleteOptions(request);
    const current = this.registry.get(def, target.namespace, name);
    if (preconditions.uid && preconditions.uid !== current.metadata.uid) {
      throw new ApiError(409, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata.uid}`, 'Conflict', {
        name,
        group: def.group,
        kind: def.plural,
      });
    }
    if (preconditions.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) throw conflict(def, name);
    const gone = this.registry.delete(def, target.namespace, name, propagation, isDryRun(request));
    // A deleted pod comes back as the object; other resources answer with a Status naming what went.
    if (def === PODS) return ok(gone);
    return ok({ ...successStatus({ name, group: def.group, kind: def.plural, uid: gone.metadata.uid! }) });
  }

  private deleteCollection(target: ResourceTarget, request: ApiRequest): ApiResponse {
    const { def } = target;
    const { propagation } = this.deleteOptions(request);
    const selected = this.registry.list(def, target.namespace).filter(this.selector(target, request.query));
    const dryRun = isDryRun(request);
    for (const object of selected) {
      if (this.registry.find(def, object.metadata.namespace, object.metadata.name!)) {
        this.registry.delete(def, object.metadata.namespace, object.metadata.name!, propagation, dryRun);
      }
    }
    return ok(successStatus());
  }

  /** The autoscaling/v1 Scale view of a Deployment or StatefulSet. */
  private scaleOf(object: KubeObject): Record<string, unknown> {
    const spec = (object.spec ?? {}) as { replicas?: number; selector?: LabelSelector };
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: {
        name: object.metadata.name,
        namespace: object.metadata.namespace,
        uid: object.metadata.uid,
        resourceVersion: object.metadata.resourceVersion,
        creationTimestamp: object.metadata.creationTimestamp,
      },
      spec: { replicas: spec.replicas ?? 0 },
      status: { replicas: Number(object.status?.replicas ?? 0), selector: selectorString(spec.selector) },
    };
  }

  private scale(target: ResourceTarget, name: string, method: string, request: ApiRequest): ApiResponse {
    const { def } = target;
    const current = this.registry.get(def, target.namespace, name);
    const view = this.scaleOf(current);
    if (method === 'GET') return ok(view);
    let wanted: unknown;
    if (method === 'PUT') wanted = request.body;
    else if (method === 'PATCH') {
      wanted = request.contentType === PATCH_TYPES.apply ? mergePatch(view, request.body) : this.patched(view, request);
    } else {
      throw methodNotAllowed();
    }
    const scale = asObject(wanted, 'the Scale');
    const replicas = isRecord(scale.spec) ? scale.spec.replicas : undefined;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw new ApiError(422, `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas ?? null)}: must be greater than or equal to 0`, 'Invalid', {
        name,
        group: 'autoscaling',
        kind: 'Scale',
        causes: [{ reason: 'FieldValueInvalid', message: 'must be greater than or equal to 0', field: 'spec.replicas' }],
      });
    }
    const wantedVersion = scale.metadata.resourceVersion;
    if (wantedVersion && wantedVersion !== current.metadata.resourceVersion) throw conflict(def, name);
    const next = structuredClone(current);
    next.spec = { ...next.spec, replicas };
    const result = this.registry.update(def, target.namespace, name, next, { manager: managerOf(request), dryRun: isDryRun(request) });
    return ok(this.scaleOf(result.object));
  }

  /**
   * GET pods/log. The simulator runs no containers, so there is never a log to give; it answers 400 BadRequest with a
   * Status that says so, rather than a 200 text body. That is how the API server answers for a container with no log
   * to give (one still waiting to start), so kubectl prints it as `Error from server (BadRequest): ...` and exits 1:
   * a script that pipes or stores logs is not handed the explanation as if a container had printed it, and
   * `kubectl logs -f` ends at once instead of waiting on a stream that never gets a line.
   */
  private log(target: ResourceTarget, name: string, request: ApiRequest): never {
    const pod = this.registry.get(PODS, target.namespace, name) as Pod;
    const containers = [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])].map((c) => c.name);
    const container = request.query.get('container');
    if (container && !containers.includes(container)) {
      throw badRequest(`container ${container} is not valid for pod ${name}`);
    }
    const which = container ? `container "${container}"` : `containers (${containers.join(', ')})`;
    throw badRequest(
      `pod "${name}" has no logs: the cluster simulator runs no containers, so its ${which} never printed anything; its state is in its status and events (kubectl describe pod ${name})`,
    );
  }

  /** POST pods/eviction: deletes the pod unless a PodDisruptionBudget forbids it (429). */
  private evict(target: ResourceTarget, name: string, request: ApiRequest): ApiResponse {
    const eviction = asObject(request.body ?? {}, 'the Eviction');
    if (eviction.metadata.name !== undefined && eviction.metadata.name !== name) {
      throw badRequest(`name in URL does not match name in Eviction object`);
    }
    const pod = this.registry.find(PODS, target.namespace, name);
    if (!pod) throw notFound(PODS, name);
    checkEviction(this.registry, pod as Pod);
    if (!isDryRun(request)) this.registry.delete(PODS, target.namespace, name);
    return ok({ ...successStatus(), code: 201 }, 201);
  }
}
