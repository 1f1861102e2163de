// Defaulting and validation of Services and Gateway API HTTPRoutes, with the API server's field paths and wording.
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { isRecord, type KubeObject } from './types.js';

export interface Cause {
  field: string;
  message: string;
  type?: string;
}

const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE_HELP =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const LABEL_NAME_HELP =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

function record(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

/**
 * The cluster IP a Service is given, from the service CIDR 10.96.0.0/12 as kubeadm sets it. Derived from the
 * object's uid, which every write keeps, so that defaulting on an update gives the same address.
 */
export function clusterIpOf(uid: string): string {
  const digest = createHash('sha256').update(uid).digest();
  return `10.${96 + (digest[0]! % 16)}.${digest[1]!}.${1 + (digest[2]! % 254)}`;
}

/** What the API server fills in a Service: its type, session affinity, cluster IP and each port's protocol and target. */
export function defaultService(object: KubeObject): void {
  const spec = record(object.spec);
  object.spec = spec;
  if (spec.type === undefined) spec.type = 'ClusterIP';
  if (spec.sessionAffinity === undefined) spec.sessionAffinity = 'None';
  if (spec.type !== 'ExternalName' && spec.clusterIP === undefined) spec.clusterIP = clusterIpOf(object.metadata.uid ?? '');
  if (spec.type !== 'ExternalName' && spec.clusterIPs === undefined && typeof spec.clusterIP === 'string') spec.clusterIPs = [spec.clusterIP];
  if (Array.isArray(spec.ports)) {
    for (const port of spec.ports) {
      if (!isRecord(port)) continue;
      if (port.protocol === undefined) port.protocol = 'TCP';
      if (port.targetPort === undefined) port.targetPort = port.port;
    }
  }
  if (object.status === undefined) object.status = { loadBalancer: {} };
}

/** A label key: an optional DNS-subdomain prefix and a name of at most 63 characters. */
function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return 'prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character';
  }
  if (name.length === 0) return 'name part must be non-empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  if (!LABEL_NAME.test(name)) return LABEL_NAME_HELP;
  return undefined;
}

/** The selector of a Service: a map of label keys to label values, as metav1 validates labels. */
function validateSelector(selector: unknown, causes: Cause[]): void {
  if (selector === undefined || selector === null) return;
  if (!isRecord(selector)) {
    causes.push({ field: 'spec.selector', message: `Invalid value: ${JSON.stringify(selector)}: must be a map of label keys to values` });
    return;
  }
  for (const [key, value] of Object.entries(selector)) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) causes.push({ field: 'spec.selector', message: `Invalid value: ${JSON.stringify(key)}: ${keyProblem}` });
    if (typeof value !== 'string') {
      causes.push({ field: `spec.selector.${key}`, message: `Invalid value: ${JSON.stringify(value)}: must be a string` });
    } else if (value.length > 63 || !LABEL_VALUE.test(value)) {
      causes.push({ field: 'spec.selector', message: `Invalid value: ${JSON.stringify(value)}: ${value.length > 63 ? 'must be no more than 63 characters' : LABEL_VALUE_HELP}` });
    }
  }
}

function validatePorts(spec: Record<string, unknown>, causes: Cause[]): void {
  const ports = spec.ports;
  if (spec.type === 'ExternalName') return;
  if (!Array.isArray(ports) || ports.length === 0) {
    // A headless Service may have no ports; every other one needs at least one.
    if (spec.clusterIP !== 'None') causes.push({ field: 'spec.ports', message: 'Required value', type: 'FieldValueRequired' });
    return;
  }
  const names = new Set<string>();
  ports.forEach((entry, i) => {
    const port = record(entry);
    const at = `spec.ports[${i}]`;
    const name = port.name;
    if (ports.length > 1 && (name === undefined || name === '')) {
      causes.push({ field: `${at}.name`, message: 'Required value', type: 'FieldValueRequired' });
    } else if (typeof name === 'string' && name !== '') {
      if (name.length > 63 || !PORT_NAME.test(name)) {
        causes.push({ field: `${at}.name`, message: `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character` });
      }
      if (names.has(name)) causes.push({ field: `${at}.name`, message: `Duplicate value: ${JSON.stringify(name)}`, type: 'FieldValueDuplicate' });
      names.add(name);
    }
    const number = port.port;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > 65535) {
      causes.push({ field: `${at}.port`, message: `Invalid value: ${JSON.stringify(number ?? 0)}: must be between 1 and 65535, inclusive` });
    }
    if (typeof port.protocol === 'string' && !PROTOCOLS.includes(port.protocol)) {
      causes.push({ field: `${at}.protocol`, message: `Unsupported value: ${JSON.stringify(port.protocol)}: supported values: "SCTP", "TCP", "UDP"`, type: 'FieldValueNotSupported' });
    }
    const target = port.targetPort;
    const validTarget =
      (typeof target === 'number' && Number.isInteger(target) && target >= 1 && target <= 65535) || (typeof target === 'string' && target.length <= 15 && PORT_NAME.test(target));
    if (!validTarget) causes.push({ field: `${at}.targetPort`, message: `Invalid value: ${JSON.stringify(target)}: must be between 1 and 65535, inclusive, or an IANA port name` });
  });
}

export function validateService(object: KubeObject, old: KubeObject | undefined, causes: Cause[]): void {
  const spec = record(object.spec);
  if (typeof spec.type !== 'string' || !SERVICE_TYPES.includes(spec.type)) {
    causes.push({
      field: 'spec.type',
      message: `Unsupported value: ${JSON.stringify(spec.type)}: supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`,
      type: 'FieldValueNotSupported',
    });
  }
  validateSelector(spec.selector, causes);
  validatePorts(spec, causes);
  if (old) {
    const before = record(old.spec).clusterIP;
    // An update that leaves the address out keeps it (defaulting fills the same one); naming another is refused.
    if (before !== undefined && spec.clusterIP !== undefined && !isDeepStrictEqual(before, spec.clusterIP)) {
      causes.push({ field: 'spec.clusterIP', message: `Invalid value: ${JSON.stringify(spec.clusterIP)}: field is immutable` });
    }
  }
}

/**
 * An HTTPRoute as far as the API server's schema checks it for what Sentinel writes: parent references named, and each
 * backend reference a named Service (or other kind) with a weight from 0 to 1,000,000.
 */
export function validateHttpRoute(object: KubeObject, causes: Cause[]): void {
  const spec = record(object.spec);
  const parents = spec.parentRefs;
  if (parents !== undefined) {
    if (!Array.isArray(parents)) causes.push({ field: 'spec.parentRefs', message: `Invalid value: ${JSON.stringify(parents)}: must be a list` });
    else parents.forEach((parent, i) => {
      if (typeof record(parent).name !== 'string' || record(parent).name === '') {
        causes.push({ field: `spec.parentRefs[${i}].name`, message: 'Required value', type: 'FieldValueRequired' });
      }
    });
  }
  const rules = spec.rules;
  if (rules === undefined) return;
  if (!Array.isArray(rules)) {
    causes.push({ field: 'spec.rules', message: `Invalid value: ${JSON.stringify(rules)}: must be a list` });
    return;
  }
  if (rules.length > 16) causes.push({ field: 'spec.rules', message: `Too many: ${rules.length}: must have at most 16 items`, type: 'FieldValueTooMany' });
  rules.forEach((rule, i) => {
    const backends = record(rule).backendRefs;
    if (backends === undefined) return;
    if (!Array.isArray(backends)) {
      causes.push({ field: `spec.rules[${i}].backendRefs`, message: `Invalid value: ${JSON.stringify(backends)}: must be a list` });
      return;
    }
    backends.forEach((backend, j) => {
      const ref = record(backend);
      const at = `spec.rules[${i}].backendRefs[${j}]`;
      if (typeof ref.name !== 'string' || ref.name === '') causes.push({ field: `${at}.name`, message: 'Required value', type: 'FieldValueRequired' });
      const weight = ref.weight;
      if (weight !== undefined && (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 1_000_000)) {
        causes.push({ field: `${at}.weight`, message: `Invalid value: ${JSON.stringify(weight)}: spec.rules[${i}].backendRefs[${j}].weight in body should be between 0 and 1000000` });
      }
      const port = ref.port;
      if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)) {
        causes.push({ field: `${at}.port`, message: `Invalid value: ${JSON.stringify(port)}: must be between 1 and 65535, inclusive` });
      }
    });
  });
}
