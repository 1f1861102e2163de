// infra/kubernetes, the Dockerfile and docker-compose.yml: the kustomize base and overlays render, every object
// passes the Kubernetes schema, the ClusterRole grants exactly what the Kubernetes driver calls, and compose
// validates. The schema is generated from @kubernetes/client-node's models (their field types, and the required
// fields their declarations mark), which client-node 1.4 generates from the Kubernetes OpenAPI document.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';

const KUSTOMIZATIONS = ['infra/kubernetes/base', 'infra/kubernetes/overlays/dev', 'infra/kubernetes/overlays/production'];
const MODELS_DIR = path.join(path.dirname(createRequire(import.meta.url).resolve('@kubernetes/client-node')), 'gen', 'models');
const KUBECTL_SKIP_REASON = spawnSync('kubectl', ['version', '--client']).error ? 'kubectl is not installed (it renders the kustomizations)' : undefined;
const COMPOSE_SKIP_REASON = spawnSync('docker-compose', ['version']).error
  ? 'docker-compose is not installed (apt-get install -y --no-install-recommends docker-compose)'
  : undefined;

type KubeObject = { apiVersion: string; kind: string; metadata: { name: string }; [field: string]: unknown };
type Attribute = { name: string; baseName: string; type: string };
type ModelClass = { getAttributeTypeMap(): Attribute[] };

function render(kustomization: string): KubeObject[] {
  const run = spawnSync('kubectl', ['kustomize', kustomization], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`kubectl kustomize ${kustomization} failed: ${run.stderr}`);
  return parseAllDocuments(run.stdout).map((document) => document.toJS() as KubeObject);
}

// ---- the schema, from client-node's models --------------------------------------------------------------

/** `apps/v1` + `Deployment` → `V1Deployment`, as client-node names its models. */
function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop()!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

function model(name: string): ModelClass | undefined {
  const candidate = (k8s as unknown as Record<string, unknown>)[name];
  return typeof candidate === 'function' && 'getAttributeTypeMap' in candidate ? (candidate as unknown as ModelClass) : undefined;
}

const requiredCache = new Map<string, Set<string>>();

/** The fields a model's TypeScript declaration marks as required (`'name': type;` rather than `'name'?: type;`). */
function requiredFields(name: string): Set<string> {
  let required = requiredCache.get(name);
  if (!required) {
    const declaration = readFileSync(path.join(MODELS_DIR, `${name}.d.ts`), 'utf8');
    required = new Set([...declaration.matchAll(/^\s+'(\w+)': /gm)].map((match) => match[1]!));
    requiredCache.set(name, required);
  }
  return required;
}

/** Every way `value` at `where` departs from the client-node type `type`. */
function check(value: unknown, type: string, where: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((item, index) => check(item, array[1]!, `${where}[${index}]`)) : [`${where}: expected a list`];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) return [`${where}: expected a map`];
    return Object.entries(value).flatMap(([key, item]) => check(item, map[1]!, `${where}.${key}`));
  }
  switch (type) {
    case 'string':
      return typeof value === 'string' ? [] : [`${where}: expected a string, got ${JSON.stringify(value)}`];
    case 'number':
      return typeof value === 'number' ? [] : [`${where}: expected a number, got ${JSON.stringify(value)}`];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${where}: expected a boolean, got ${JSON.stringify(value)}`];
    case 'IntOrString':
      return typeof value === 'string' || Number.isInteger(value) ? [] : [`${where}: expected an integer or a string`];
    case 'Date':
      return typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? [] : [`${where}: expected a timestamp`];
    case 'any':
      return [];
  }
  return checkObject(value, type, where);
}

function checkObject(value: unknown, type: string, where: string): string[] {
  const modelClass = model(type);
  if (!modelClass) return [`${where}: no model ${type} in @kubernetes/client-node`];
  if (typeof value !== 'object' || Array.isArray(value)) return [`${where}: expected an object (${type})`];
  const attributes = new Map(modelClass.getAttributeTypeMap().map((attribute) => [attribute.baseName, attribute]));
  const problems: string[] = [];
  for (const [field, fieldValue] of Object.entries(value as Record<string, unknown>)) {
    const attribute = attributes.get(field);
    if (!attribute) problems.push(`${where}.${field}: not a field of ${type}`);
    else problems.push(...check(fieldValue, attribute.type, `${where}.${field}`));
  }
  for (const name of requiredFields(type)) {
    const field = modelClass.getAttributeTypeMap().find((attribute) => attribute.name === name)!.baseName;
    if ((value as Record<string, unknown>)[field] === undefined) problems.push(`${where}.${field}: required by ${type}`);
  }
  return problems;
}

function schemaProblems(object: KubeObject): string[] {
  return check(object, modelName(object.apiVersion, object.kind), `${object.kind}/${object.metadata.name}`);
}

// ---- what the driver calls ------------------------------------------------------------------------------

const API_GROUPS: Record<string, string> = { apps: 'apps', batch: 'batch', core: '', autoscaling: 'autoscaling' };
const VERBS: Record<string, string> = { read: 'get', list: 'list', patch: 'patch', delete: 'delete', create: 'create', replace: 'update' };
const SUBRESOURCES = ['Scale', 'Eviction', 'Status'];

/**
 * `group resource verb` for each client call in kube-driver.ts, `watch` for each path the informers watch, and the
 * HTTPRoute calls of http-route-router.ts.
 */
function driverPermissions(): Set<string> {
  const source = readFileSync('adapters/kubernetes/kube-driver.ts', 'utf8');
  const permissions = new Set<string>();
  for (const [, client, verb, rest] of source.matchAll(/this\.(apps|batch|core|autoscaling)\.(read|list|patch|delete|create|replace)(\w+)\(/g)) {
    const name = rest!.replace(/^Namespaced/, '').replace(/ForAllNamespaces$/, '');
    const subresource = SUBRESOURCES.find((candidate) => name.endsWith(candidate) && name !== candidate);
    const kind = subresource ? name.slice(0, -subresource.length) : name;
    const resource = `${kind.toLowerCase()}s${subresource ? `/${subresource.toLowerCase()}` : ''}`;
    permissions.add(`${API_GROUPS[client!]} ${resource} ${VERBS[verb!]}`);
  }
  for (const [, group, resource] of source.matchAll(/path: '\/apis\/(\w+)\/v\d+\/(\w+)'/g)) permissions.add(`${group} ${resource} watch`);
  // The HTTPRoute router reaches the one custom resource it names (HTTP_ROUTE_API) through the custom objects API.
  const router = readFileSync('adapters/kubernetes/http-route-router.ts', 'utf8');
  for (const [, verb] of router.matchAll(/this\.custom\.(get|replace)NamespacedCustomObject\(/g)) {
    permissions.add(`gateway.networking.k8s.io httproutes ${verb === 'get' ? 'get' : 'update'}`);
  }
  return permissions;
}

function rolePermissions(role: KubeObject): Set<string> {
  const rules = role.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  return new Set(
    rules.flatMap((rule) => rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${group} ${resource} ${verb}`)))),
  );
}

// ---- the tests ------------------------------------------------------------------------------------------

describe('infra: Kubernetes manifests, Dockerfile and compose', function () {
  this.timeout(30_000);

  describe('the kustomizations', () => {
    const rendered = new Map<string, KubeObject[]>();

    before(function () {
      if (KUBECTL_SKIP_REASON) {
        console.log(`SKIP: ${KUBECTL_SKIP_REASON}`);
        return this.skip();
      }
      for (const kustomization of KUSTOMIZATIONS) rendered.set(kustomization, render(kustomization));
    });

    it('render, and every object passes the schema generated from @kubernetes/client-node', () => {
      for (const [kustomization, objects] of rendered) {
        expect(objects, kustomization).to.have.length.above(0);
        const problems = objects.flatMap(schemaProblems);
        expect(problems, kustomization).to.deep.equal([]);
      }
    });

    it('the schema check finds a misspelt field, a wrong type and a missing required field', () => {
      const deployment = rendered.get('infra/kubernetes/base')!.find((object) => object.kind === 'Deployment')!;
      const broken = structuredClone(deployment) as KubeObject & { spec: Record<string, unknown> };
      broken.spec.replica = 2;
      broken.spec.paused = 'no';
      delete broken.spec.selector;
      expect(schemaProblems(broken)).to.have.members([
        `Deployment/${deployment.metadata.name}.spec.replica: not a field of V1DeploymentSpec`,
        `Deployment/${deployment.metadata.name}.spec.paused: expected a boolean, got "no"`,
        `Deployment/${deployment.metadata.name}.spec.selector: required by V1DeploymentSpec`,
      ]);
    });

    it('the ClusterRole grants exactly the verbs the Kubernetes driver uses', () => {
      const role = rendered.get('infra/kubernetes/base')!.find((object) => object.kind === 'ClusterRole')!;
      expect([...rolePermissions(role)].sort()).to.deep.equal([...driverPermissions()].sort());
    });

    it('runs one Deployment per role, probed on /healthz and /readyz, non-root, each with a PodDisruptionBudget', () => {
      for (const [kustomization, objects] of rendered) {
        const deployments = objects.filter((object) => object.kind === 'Deployment') as unknown as k8s.V1Deployment[];
        const roles = deployments.map((d) => d.spec!.template.spec!.containers[0]!.env!.find((e) => e.name === 'SENTINEL_ROLE')!.value);
        expect(roles, kustomization).to.have.members(['api', 'projector', 'reactor', 'telemetry']);
        for (const deployment of deployments) {
          const pod = deployment.spec!.template.spec!;
          const container = pod.containers[0]!;
          expect(container.livenessProbe?.httpGet?.path, deployment.metadata!.name).to.equal('/healthz');
          expect(container.readinessProbe?.httpGet?.path, deployment.metadata!.name).to.equal('/readyz');
          expect(pod.securityContext?.runAsNonRoot, deployment.metadata!.name).to.equal(true);
          const budgets = objects.filter((object) => object.kind === 'PodDisruptionBudget') as unknown as k8s.V1PodDisruptionBudget[];
          const labels = deployment.spec!.template.metadata!.labels!;
          const covered = budgets.some((pdb) => Object.entries(pdb.spec!.selector!.matchLabels!).every(([key, value]) => labels[key] === value));
          expect(covered, `${kustomization}: a PodDisruptionBudget for ${deployment.metadata!.name}`).to.equal(true);
        }
      }
    });

    it('caps the Node.js heap of the api, reactor, telemetry and projector at half to three quarters of the memory limit', () => {
      const mebibytes = (quantity: string) => {
        const [, amount, unit] = /^(\d+)(Mi|Gi)$/.exec(quantity) ?? [];
        if (!amount) throw new Error(`a memory limit in Mi or Gi, not ${quantity}`);
        return Number(amount) * (unit === 'Gi' ? 1024 : 1);
      };
      for (const [kustomization, objects] of rendered) {
        for (const deployment of objects.filter((object) => object.kind === 'Deployment') as unknown as k8s.V1Deployment[]) {
          const container = deployment.spec!.template.spec!.containers[0]!;
          const where = `${kustomization}: ${deployment.metadata!.name}`;
          const options = container.env!.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
          const heap = Number(/--max-old-space-size=(\d+)/.exec(options)?.[1]);
          expect(heap, `${where}: NODE_OPTIONS --max-old-space-size`).to.be.above(0);
          const limit = mebibytes(String(container.resources!.limits!['memory']));
          expect(heap / limit, `${where}: heap ${heap} MiB of a ${limit} MiB limit`).to.be.within(0.5, 0.75);
        }
      }
    });

    it('the dev overlay generates every Secret the pods refer to', () => {
      const objects = rendered.get('infra/kubernetes/overlays/dev')!;
      const secrets = new Set(objects.filter((object) => object.kind === 'Secret').map((object) => object.metadata.name));
      const referred = new Set<string>();
      for (const object of objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet') as unknown as k8s.V1Deployment[]) {
        const pod = object.spec!.template.spec!;
        for (const volume of pod.volumes ?? []) if (volume.secret) referred.add(volume.secret.secretName!);
        for (const env of pod.containers.flatMap((c) => c.env ?? [])) if (env.valueFrom?.secretKeyRef) referred.add(env.valueFrom.secretKeyRef.name!);
      }
      expect(referred.size).to.be.above(0);
      expect([...referred].filter((name) => !secrets.has(name))).to.deep.equal([]);
    });

    it('runs the node agent on GPU nodes with the host /proc and the agent port', () => {
      const agent = rendered.get('infra/kubernetes/base')!.find((object) => object.kind === 'DaemonSet') as unknown as k8s.V1DaemonSet;
      const pod = agent.spec!.template.spec!;
      expect(pod.nodeSelector).to.deep.equal({ 'nvidia.com/gpu.present': 'true' });
      expect(pod.volumes!.find((v) => v.name === 'proc')!.hostPath!.path).to.equal('/proc');
      expect(pod.containers[0]!.ports!.map((p) => p.containerPort)).to.deep.equal([9400]);
    });
  });

  it('the Dockerfile builds in stages, installs production dependencies only, runs as non-root with a health check', () => {
    const dockerfile = readFileSync('Dockerfile', 'utf8');
    expect(dockerfile.match(/^FROM /gm)).to.have.length.above(1);
    expect(dockerfile).to.match(/^RUN npm ci --omit=dev/m);
    expect(dockerfile).to.match(/^USER 10001/m);
    expect(dockerfile).to.match(/^HEALTHCHECK .*\n.*\/healthz/m);
  });

  it('docker-compose config accepts docker-compose.yml', function () {
    if (COMPOSE_SKIP_REASON) {
      console.log(`SKIP: ${COMPOSE_SKIP_REASON}`);
      return this.skip();
    }
    const run = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { encoding: 'utf8' });
    expect(run.status, run.stderr).to.equal(0);
  });
});
