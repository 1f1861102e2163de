// Defaulting and validation of objects on their way into the store, with the field paths and wording of the API server.
import { isDeepStrictEqual } from 'node:util';
import { invalid } from './api-error.js';
import { DEPLOYMENTS, HPAS, HTTP_ROUTES, JOBS, NAMESPACES, NODES, PDBS, PODS, SERVICES, STATEFULSETS, type ResourceDef } from './resources.js';
import { selectorMatches } from './selectors.js';
import { defaultService, validateHttpRoute, validateService, type Cause } from './service-admission.js';
import { isRecord, type KubeObject, type LabelSelector } from './types.js';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PERCENT_OR_INT = /^\d+%$/;

/** The labels the Job controller puts on a Job's selector and pod template, from the Job's uid and name. */
export function jobLabels(uid: string, name: string): Record<string, string> {
  return {
    'batch.kubernetes.io/controller-uid': uid,
    'batch.kubernetes.io/job-name': name,
    'controller-uid': uid,
    'job-name': name,
  };
}

function record(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

function setDefault(target: Record<string, unknown>, key: string, value: unknown): void {
  if (target[key] === undefined) target[key] = value;
}

function defaultPodSpec(spec: Record<string, unknown>, restartPolicy: string | undefined): void {
  if (restartPolicy) setDefault(spec, 'restartPolicy', restartPolicy);
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'schedulerName', 'default-scheduler');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  for (const list of ['containers', 'initContainers']) {
    const containers = spec[list];
    if (!Array.isArray(containers)) continue;
    for (const container of containers) {
      if (!isRecord(container)) continue;
      setDefault(container, 'terminationMessagePath', '/dev/termination-log');
      setDefault(container, 'terminationMessagePolicy', 'File');
      const image = typeof container.image === 'string' ? container.image : '';
      const tagged = /:[^/]+$/.test(image) && !image.endsWith(':latest');
      setDefault(container, 'imagePullPolicy', tagged || image.includes('@') ? 'IfNotPresent' : 'Always');
    }
  }
}

function validatePodSpec(spec: unknown, prefix: string, causes: Cause[]): void {
  const podSpec = record(spec);
  const containers = podSpec.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push({ field: `${prefix}.containers`, message: 'Required value', type: 'FieldValueRequired' });
    return;
  }
  containers.forEach((container, i) => {
    const c = record(container);
    if (typeof c.name !== 'string' || c.name === '') {
      causes.push({ field: `${prefix}.containers[${i}].name`, message: 'Required value', type: 'FieldValueRequired' });
    }
    if (typeof c.image !== 'string' || c.image === '') {
      causes.push({ field: `${prefix}.containers[${i}].image`, message: 'Required value', type: 'FieldValueRequired' });
    }
  });
}

function validateReplicas(value: unknown, field: string, causes: Cause[]): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    causes.push({ field, message: `Invalid value: ${JSON.stringify(value)}: must be greater than or equal to 0` });
  }
}

function validateIntOrPercent(value: unknown, field: string, causes: Cause[]): void {
  if (value === undefined) return;
  const ok = (typeof value === 'number' && Number.isInteger(value) && value >= 0) || (typeof value === 'string' && PERCENT_OR_INT.test(value));
  if (!ok) causes.push({ field, message: `Invalid value: ${JSON.stringify(value)}: must be an integer or percentage (e.g '5%')` });
}

function validateSelectorAndTemplate(spec: Record<string, unknown>, causes: Cause[]): void {
  const selector = spec.selector as LabelSelector | undefined;
  const template = record(spec.template);
  const labels = record(template.metadata).labels as Record<string, string> | undefined;
  const empty = !selector || ((!selector.matchLabels || Object.keys(selector.matchLabels).length === 0) && (!selector.matchExpressions || selector.matchExpressions.length === 0));
  if (empty) {
    causes.push({ field: 'spec.selector', message: 'Required value', type: 'FieldValueRequired' });
  } else if (!selectorMatches(selector, labels)) {
    causes.push({
      field: 'spec.template.metadata.labels',
      message: `Invalid value: ${JSON.stringify(labels ?? {})}: \`selector\` does not match template \`labels\``,
    });
  }
  validatePodSpec(template.spec, 'spec.template.spec', causes);
}

function immutable(old: KubeObject | undefined, object: KubeObject, field: 'selector' | 'template', causes: Cause[]): void {
  if (!old) return;
  const before = record(old.spec)[field];
  const after = record(object.spec)[field];
  if (!isDeepStrictEqual(before, after)) {
    causes.push({ field: `spec.${field}`, message: `Invalid value: ${JSON.stringify(after)}: field is immutable` });
  }
}

/** Fills the defaults the API server fills. Runs on every write, so it must only fill what is absent. */
export function applyDefaults(def: ResourceDef, object: KubeObject): void {
  const spec = object.spec ?? {};
  switch (def) {
    case NAMESPACES:
      object.spec = { finalizers: ['kubernetes'], ...spec };
      object.status = { phase: 'Active', ...object.status };
      break;
    case PODS:
      object.spec = spec;
      defaultPodSpec(spec, 'Always');
      break;
    case DEPLOYMENTS: {
      object.spec = spec;
      setDefault(spec, 'replicas', 1);
      setDefault(spec, 'revisionHistoryLimit', 10);
      setDefault(spec, 'progressDeadlineSeconds', 600);
      const strategy = record(spec.strategy);
      setDefault(strategy, 'type', 'RollingUpdate');
      if (strategy.type === 'RollingUpdate') {
        const rolling = record(strategy.rollingUpdate);
        setDefault(rolling, 'maxSurge', '25%');
        setDefault(rolling, 'maxUnavailable', '25%');
        strategy.rollingUpdate = rolling;
      }
      spec.strategy = strategy;
      const template = record(spec.template);
      template.spec = record(template.spec);
      defaultPodSpec(template.spec as Record<string, unknown>, 'Always');
      spec.template = template;
      break;
    }
    case STATEFULSETS: {
      object.spec = spec;
      setDefault(spec, 'replicas', 1);
      setDefault(spec, 'revisionHistoryLimit', 10);
      setDefault(spec, 'podManagementPolicy', 'OrderedReady');
      const strategy = record(spec.updateStrategy);
      setDefault(strategy, 'type', 'RollingUpdate');
      if (strategy.type === 'RollingUpdate') {
        strategy.rollingUpdate = { partition: 0, ...record(strategy.rollingUpdate) };
      }
      spec.updateStrategy = strategy;
      const template = record(spec.template);
      template.spec = record(template.spec);
      defaultPodSpec(template.spec as Record<string, unknown>, 'Always');
      spec.template = template;
      break;
    }
    case JOBS: {
      object.spec = spec;
      if (spec.parallelism === undefined && spec.completions === undefined) {
        spec.parallelism = 1;
        spec.completions = 1;
      }
      setDefault(spec, 'parallelism', 1);
      setDefault(spec, 'backoffLimit', 6);
      setDefault(spec, 'completionMode', 'NonIndexed');
      setDefault(spec, 'suspend', false);
      const uid = object.metadata.uid!;
      if (!spec.manualSelector && spec.selector === undefined) {
        spec.selector = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
      }
      const template = record(spec.template);
      const templateMeta = record(template.metadata);
      if (!spec.manualSelector) templateMeta.labels = { ...record(templateMeta.labels), ...jobLabels(uid, object.metadata.name!) };
      template.metadata = templateMeta;
      template.spec = record(template.spec);
      defaultPodSpec(template.spec as Record<string, unknown>, undefined);
      spec.template = template;
      break;
    }
    case NODES:
      object.spec = spec;
      break;
    case SERVICES:
      defaultService(object);
      break;
    default:
      break;
  }
}

/**
 * Validates a write. `old` is the stored object on an update, undefined on a create; `applied` the body as the
 * client sent it on a create (where a Job's hand-written selector is refused).
 */
export function validate(def: ResourceDef, object: KubeObject, old: KubeObject | undefined, sent?: KubeObject): void {
  const causes: Cause[] = [];
  const name = object.metadata.name ?? '';
  if (!name) {
    causes.push({ field: 'metadata.name', message: 'Required value: name or generateName is required', type: 'FieldValueRequired' });
  } else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    causes.push({
      field: 'metadata.name',
      message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    });
  }
  const spec = record(object.spec);
  switch (def) {
    case PODS:
      validatePodSpec(spec, 'spec', causes);
      break;
    case DEPLOYMENTS: {
      validateReplicas(spec.replicas, 'spec.replicas', causes);
      validateSelectorAndTemplate(spec, causes);
      immutable(old, object, 'selector', causes);
      const rolling = record(record(spec.strategy).rollingUpdate);
      validateIntOrPercent(rolling.maxSurge, 'spec.strategy.rollingUpdate.maxSurge', causes);
      validateIntOrPercent(rolling.maxUnavailable, 'spec.strategy.rollingUpdate.maxUnavailable', causes);
      const zero = (v: unknown) => v === 0 || v === '0%';
      if (record(spec.strategy).type === 'RollingUpdate' && zero(rolling.maxSurge) && zero(rolling.maxUnavailable)) {
        causes.push({ field: 'spec.strategy.rollingUpdate.maxUnavailable', message: 'Invalid value: 0: may not be 0 when `maxSurge` is 0' });
      }
      const restart = record(record(spec.template).spec).restartPolicy;
      if (restart !== undefined && restart !== 'Always') {
        causes.push({ field: 'spec.template.spec.restartPolicy', message: `Unsupported value: "${String(restart)}": supported values: "Always"`, type: 'FieldValueNotSupported' });
      }
      break;
    }
    case STATEFULSETS:
      validateReplicas(spec.replicas, 'spec.replicas', causes);
      validateSelectorAndTemplate(spec, causes);
      immutable(old, object, 'selector', causes);
      break;
    case JOBS: {
      validateReplicas(spec.parallelism, 'spec.parallelism', causes);
      validateReplicas(spec.completions, 'spec.completions', causes);
      const template = record(spec.template);
      validatePodSpec(template.spec, 'spec.template.spec', causes);
      const restart = record(template.spec).restartPolicy;
      if (restart !== 'Never' && restart !== 'OnFailure') {
        causes.push({
          field: 'spec.template.spec.restartPolicy',
          message: restart === undefined ? 'Required value: valid values: "OnFailure", "Never"' : `Unsupported value: "${String(restart)}": supported values: "OnFailure", "Never"`,
          type: restart === undefined ? 'FieldValueRequired' : 'FieldValueNotSupported',
        });
      }
      if (!old && sent && record(sent.spec).selector !== undefined && !record(sent.spec).manualSelector) {
        causes.push({ field: 'spec.selector', message: `Invalid value: ${JSON.stringify(record(sent.spec).selector)}: \`selector\` will be auto-generated` });
      }
      immutable(old, object, 'selector', causes);
      immutable(old, object, 'template', causes);
      break;
    }
    case PDBS:
      validateIntOrPercent(spec.minAvailable, 'spec.minAvailable', causes);
      validateIntOrPercent(spec.maxUnavailable, 'spec.maxUnavailable', causes);
      if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
        causes.push({ field: 'spec', message: 'Invalid value: minAvailable and maxUnavailable cannot be both set' });
      }
      break;
    case HPAS: {
      const target = record(spec.scaleTargetRef);
      if (!target.kind) causes.push({ field: 'spec.scaleTargetRef.kind', message: 'Required value', type: 'FieldValueRequired' });
      if (!target.name) causes.push({ field: 'spec.scaleTargetRef.name', message: 'Required value', type: 'FieldValueRequired' });
      if (typeof spec.maxReplicas !== 'number' || spec.maxReplicas < 1) {
        causes.push({ field: 'spec.maxReplicas', message: `Invalid value: ${JSON.stringify(spec.maxReplicas ?? 0)}: must be greater than or equal to 1` });
      }
      break;
    }
    case SERVICES:
      validateService(object, old, causes);
      break;
    case HTTP_ROUTES:
      validateHttpRoute(object, causes);
      break;
    default:
      break;
  }
  if (causes.length > 0) throw invalid(def, name, causes);
}
